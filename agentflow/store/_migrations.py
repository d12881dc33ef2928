"""Versioned schema of the SQLite store. Append, never edit: each entry runs once, in
order, inside one transaction, and ``PRAGMA user_version`` records how far a file got.
A migration must keep every existing row (nothing is lost on upgrade)."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            workflow TEXT NOT NULL,
            status TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            output TEXT,
            error TEXT,
            waiting_on TEXT,
            due_at REAL,
            lease_owner TEXT,
            lease_until REAL,
            fence INTEGER NOT NULL DEFAULT 0
        )""",
        # The scheduler reads only due rows: sleeping instances cost no memory or CPU.
        "CREATE INDEX instances_due ON instances (due_at) WHERE due_at IS NOT NULL",
        "CREATE INDEX instances_listing ON instances (workflow, status, created_at)",
        "CREATE INDEX instances_lease ON instances (lease_owner) WHERE lease_owner IS NOT NULL",
        """CREATE TABLE steps (
            instance_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            n INTEGER NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            started_at REAL NOT NULL,
            result TEXT,
            error TEXT,
            finished_at REAL,
            wake_at REAL,
            PRIMARY KEY (instance_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            instance_id TEXT NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            consumed_seq INTEGER
        )""",
        "CREATE INDEX events_pending ON events (instance_id, type, id) WHERE consumed_seq IS NULL",
    ]),
    (2, [
        # Who an instance belongs to (an agent, a tenant): listings and lookups are scoped.
        "ALTER TABLE instances ADD COLUMN scope TEXT",
        "CREATE INDEX instances_scope ON instances (scope, status, created_at)"
        " WHERE scope IS NOT NULL",
        # Immutable plan versions, identified by the hash of their source.
        """CREATE TABLE plan_versions (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            PRIMARY KEY (scope, name, version)
        )""",  # a rowid table: versions list in the order they were submitted
        """CREATE TABLE plans (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            current_version TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, name)
        ) WITHOUT ROWID""",
        # Per-scope durable key-value storage (the `kv` capability).
        """CREATE TABLE kv (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        ) WITHOUT ROWID""",
    ]),
    (3, [
        # What a step did besides its result: each attempt's error and time, and the
        # lines its plan printed (JSON; NULL for a step that has nothing to add).
        "ALTER TABLE steps ADD COLUMN detail TEXT",
    ]),
    (4, [
        # Recurring work: one row per schedule. `revision` is bumped by every change, so
        # a fire is recorded (with the instances it creates) only by the one process
        # whose read is still current: a fire creates exactly one instance.
        """CREATE TABLE schedules (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            sid TEXT NOT NULL,
            workflow TEXT NOT NULL,
            spec TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            next_fire_at REAL,
            last_fire_at REAL,
            last_instance_id TEXT,
            buffered_fire_at REAL,
            revision INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, name)
        )""",
        "CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0",
        # Processes that run a scheduler say they are alive here, so a command can tell
        # a person that nothing will run what they just sent.
        """CREATE TABLE workers (
            owner TEXT PRIMARY KEY,
            seen_at REAL NOT NULL,
            alive_until REAL NOT NULL
        )""",
        # Retention: finished instances are found by when they finished.
        "CREATE INDEX instances_finished ON instances (updated_at)"
        " WHERE status IN ('complete', 'errored', 'terminated')",
        "CREATE INDEX events_instance ON events (instance_id)",
        # Per-scope retention policies ('' is the default for every scope).
        """CREATE TABLE retention (
            scope TEXT PRIMARY KEY,
            keep_seconds REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ]),
    (5, [
        # What operators decided, append-only: the human-only policy and the approvals
        # setting (kind 'policy', the latest row per subject wins), and operator restarts
        # (kind 'restart', subject = the instance). Nothing is updated in place, so the
        # log says who changed what, when.
        """CREATE TABLE operator_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            value TEXT NOT NULL,
            at REAL NOT NULL,
            actor TEXT NOT NULL
        )""",
        "CREATE INDEX operator_log_subject ON operator_log (kind, subject, id)",
    ]),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
