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
    (6, [
        # The change feed (`Store.read_changes`): one row per visible change to an
        # instance (created, a new status, wait, output or error) or to a step of its
        # journal, numbered in commit order. Triggers write it, so every process that
        # writes the file feeds it without knowing, and a reader in any other process
        # polls it by number. SQLite has one writer at a time, so numbers appear in
        # commit order with no gaps to wait out. A rowid is max + 1 and trimming never
        # deletes the newest row, so no number is reused; AUTOINCREMENT would say the
        # same at the cost of one more page written per step (sqlite_sequence).
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY,
            instance_id TEXT NOT NULL,
            scope TEXT,
            workflow TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT,
            step TEXT,
            at REAL NOT NULL
        )""",
        """CREATE TRIGGER changes_created AFTER INSERT ON instances BEGIN
            INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
            VALUES (NEW.id, NEW.scope, NEW.workflow, 'created', NEW.status,
                    (julianday('now') - 2440587.5) * 86400.0);
        END""",
        # Lease renewals and claims that change nothing a reader sees write no row.
        """CREATE TRIGGER changes_status AFTER UPDATE ON instances
        WHEN OLD.status IS NOT NEW.status OR OLD.waiting_on IS NOT NEW.waiting_on
          OR OLD.output IS NOT NEW.output OR OLD.error IS NOT NEW.error
          OR OLD.payload IS NOT NEW.payload BEGIN
            INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
            VALUES (NEW.id, NEW.scope, NEW.workflow, 'status', NEW.status,
                    (julianday('now') - 2440587.5) * 86400.0);
        END""",
        """CREATE TRIGGER changes_deleted AFTER DELETE ON instances BEGIN
            INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
            VALUES (OLD.id, OLD.scope, OLD.workflow, 'deleted', NULL,
                    (julianday('now') - 2440587.5) * 86400.0);
        END""",
        """CREATE TRIGGER changes_step_new AFTER INSERT ON steps BEGIN
            INSERT INTO changes (instance_id, scope, workflow, kind, status, step, at)
            SELECT i.id, i.scope, i.workflow, 'step', NEW.status, NEW.name,
                   (julianday('now') - 2440587.5) * 86400.0
            FROM instances i WHERE i.id = NEW.instance_id;
        END""",
        """CREATE TRIGGER changes_step_update AFTER UPDATE ON steps
        WHEN OLD.status IS NOT NEW.status OR OLD.attempts IS NOT NEW.attempts BEGIN
            INSERT INTO changes (instance_id, scope, workflow, kind, status, step, at)
            SELECT i.id, i.scope, i.workflow, 'step', NEW.status, NEW.name,
                   (julianday('now') - 2440587.5) * 86400.0
            FROM instances i WHERE i.id = NEW.instance_id;
        END""",
        # The console's list, newest first, paged by (created_at, id) with no filter:
        # without it the first page sorts every instance.
        "CREATE INDEX instances_created ON instances (created_at, id)",
    ]),
    # Since when a run of this instance has waited for a worker slot (every one of the
    # pool's max_workers busy), as recorded by the process that runs it, so that other
    # processes can show the wait too; NULL when not waiting.
    (7, [
        "ALTER TABLE instances ADD COLUMN slot_wait_since REAL",
    ]),
    (8, [
        # Fires a schedule could not start (the agent's instance quota, a plan gone):
        # counted, with the last reason and when, so an operator sees why it did not run.
        "ALTER TABLE schedules ADD COLUMN skipped_fires INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE schedules ADD COLUMN last_error TEXT",
        "ALTER TABLE schedules ADD COLUMN last_error_at REAL",
    ]),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
