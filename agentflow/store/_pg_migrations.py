"""Versioned schema of the PostgreSQL store, mirroring the SQLite one version for version
(``_migrations.py``). Append, never edit: each entry runs once, in order, inside one
transaction, and the one-row table ``agentflow_schema`` records how far a database got.
A migration must keep every existing row (nothing is lost on upgrade).

Dialect notes: times are ``double precision`` epoch seconds, as in SQLite; values stay
``text`` (the engine encodes and decodes JSON itself); keys are ``COLLATE "C"`` so that
orderings (listings, key prefixes) match SQLite's byte order whatever the database's
locale; ``plan_versions.seq`` stands in for SQLite's rowid (versions list in the order
they were submitted).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE instances (
            id text COLLATE "C" PRIMARY KEY,
            workflow text COLLATE "C" NOT NULL,
            status text NOT NULL,
            payload text NOT NULL,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            output text,
            error text,
            waiting_on text,
            due_at double precision,
            lease_owner text,
            lease_until double precision,
            fence bigint NOT NULL DEFAULT 0
        )""",
        # The scheduler reads only due rows: sleeping instances cost no memory or CPU.
        "CREATE INDEX instances_due ON instances (due_at) WHERE due_at IS NOT NULL",
        "CREATE INDEX instances_listing ON instances (workflow, status, created_at)",
        "CREATE INDEX instances_lease ON instances (lease_owner) WHERE lease_owner IS NOT NULL",
        """CREATE TABLE steps (
            instance_id text COLLATE "C" NOT NULL,
            seq integer NOT NULL,
            name text NOT NULL,
            n integer NOT NULL,
            kind text NOT NULL,
            status text NOT NULL,
            attempts integer NOT NULL,
            started_at double precision NOT NULL,
            result text,
            error text,
            finished_at double precision,
            wake_at double precision,
            PRIMARY KEY (instance_id, seq)
        )""",
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            instance_id text COLLATE "C" NOT NULL,
            type text COLLATE "C" NOT NULL,
            payload text NOT NULL,
            created_at double precision NOT NULL,
            consumed_seq integer
        )""",
        "CREATE INDEX events_pending ON events (instance_id, type, id) WHERE consumed_seq IS NULL",
    ]),
    (2, [
        # Who an instance belongs to (an agent, a tenant): listings and lookups are scoped.
        'ALTER TABLE instances ADD COLUMN scope text COLLATE "C"',
        "CREATE INDEX instances_scope ON instances (scope, status, created_at)"
        " WHERE scope IS NOT NULL",
        # Immutable plan versions, identified by the hash of their source.
        """CREATE TABLE plan_versions (
            scope text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            version text COLLATE "C" NOT NULL,
            source text NOT NULL,
            created_at double precision NOT NULL,
            created_by text NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (scope, name, version)
        )""",
        """CREATE TABLE plans (
            scope text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            current_version text COLLATE "C" NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (scope, name)
        )""",
        # Per-scope durable key-value storage (the `kv` capability).
        """CREATE TABLE kv (
            scope text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            value text NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (scope, key)
        )""",
    ]),
    (3, [
        # What a step did besides its result: each attempt's error and time, and the
        # lines its plan printed (JSON; NULL for a step that has nothing to add).
        "ALTER TABLE steps ADD COLUMN detail text",
    ]),
    (4, [
        """CREATE TABLE schedules (
            scope text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            sid text NOT NULL,
            workflow text NOT NULL,
            spec text NOT NULL,
            paused integer NOT NULL DEFAULT 0,
            next_fire_at double precision,
            last_fire_at double precision,
            last_instance_id text,
            buffered_fire_at double precision,
            revision bigint NOT NULL DEFAULT 0,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (scope, name)
        )""",
        "CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0",
        """CREATE TABLE workers (
            owner text PRIMARY KEY,
            seen_at double precision NOT NULL,
            alive_until double precision NOT NULL
        )""",
        "CREATE INDEX instances_finished ON instances (updated_at)"
        " WHERE status IN ('complete', 'errored', 'terminated')",
        "CREATE INDEX events_instance ON events (instance_id)",
        """CREATE TABLE retention (
            scope text COLLATE "C" PRIMARY KEY,
            keep_seconds double precision NOT NULL,
            updated_at double precision NOT NULL
        )""",
    ]),
    (5, [
        # What operators decided, append-only (see the SQLite migration 5).
        """CREATE TABLE operator_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text COLLATE "C" NOT NULL,
            subject text COLLATE "C" NOT NULL,
            value text NOT NULL,
            at double precision NOT NULL,
            actor text NOT NULL
        )""",
        "CREATE INDEX operator_log_subject ON operator_log (kind, subject, id)",
    ]),
    (6, [
        # The change feed (`Store.read_changes`), as in SQLite, but numbered in two
        # stages. A trigger can only take a number from a sequence, and concurrent
        # transactions commit in another order than they took numbers: a reader that
        # saw 11 could later find 10 appear, and a cursor at 11 would lose it. So the
        # trigger writes the row unnumbered (``id`` only orders rows of one instance,
        # which its row lock serializes), and a reader numbers the committed rows it
        # finds, under an advisory lock, in one transaction, before it reads: numbers
        # become visible only in increasing order, with no gap.
        """CREATE TABLE changes (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            seq bigint UNIQUE,
            instance_id text COLLATE "C" NOT NULL,
            scope text COLLATE "C",
            workflow text COLLATE "C" NOT NULL,
            kind text NOT NULL,
            status text,
            step text,
            at double precision NOT NULL
        )""",
        "CREATE INDEX changes_unnumbered ON changes (id) WHERE seq IS NULL",
        """CREATE FUNCTION agentflow_instance_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
                VALUES (NEW.id, NEW.scope, NEW.workflow, 'created', NEW.status,
                        extract(epoch FROM clock_timestamp()));
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
                VALUES (OLD.id, OLD.scope, OLD.workflow, 'deleted', NULL,
                        extract(epoch FROM clock_timestamp()));
            ELSIF OLD.status IS DISTINCT FROM NEW.status
               OR OLD.waiting_on IS DISTINCT FROM NEW.waiting_on
               OR OLD.output IS DISTINCT FROM NEW.output
               OR OLD.error IS DISTINCT FROM NEW.error
               OR OLD.payload IS DISTINCT FROM NEW.payload THEN
                INSERT INTO changes (instance_id, scope, workflow, kind, status, at)
                VALUES (NEW.id, NEW.scope, NEW.workflow, 'status', NEW.status,
                        extract(epoch FROM clock_timestamp()));
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER changes_instance AFTER INSERT OR UPDATE OR DELETE ON instances
        FOR EACH ROW EXECUTE FUNCTION agentflow_instance_change()""",
        """CREATE FUNCTION agentflow_step_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status
               OR OLD.attempts IS DISTINCT FROM NEW.attempts THEN
                INSERT INTO changes (instance_id, scope, workflow, kind, status, step, at)
                SELECT i.id, i.scope, i.workflow, 'step', NEW.status, NEW.name,
                       extract(epoch FROM clock_timestamp())
                FROM instances i WHERE i.id = NEW.instance_id;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER changes_step AFTER INSERT OR UPDATE ON steps
        FOR EACH ROW EXECUTE FUNCTION agentflow_step_change()""",
        # The console's list, newest first, paged by (created_at, id) with no filter:
        # without it the first page sorts every instance.
        "CREATE INDEX instances_created ON instances (created_at, id)",
    ]),
    # Since when a run of this instance has waited for a worker slot (every one of the
    # pool's max_workers busy), as recorded by the process that runs it, so that other
    # processes can show the wait too; NULL when not waiting.
    (7, [
        "ALTER TABLE instances ADD COLUMN slot_wait_since DOUBLE PRECISION",
    ]),
    (8, [
        # Fires a schedule could not start (the agent's instance quota, a plan gone):
        # counted, with the last reason and when, so an operator sees why it did not run.
        "ALTER TABLE schedules ADD COLUMN skipped_fires integer NOT NULL DEFAULT 0",
        "ALTER TABLE schedules ADD COLUMN last_error text",
        "ALTER TABLE schedules ADD COLUMN last_error_at double precision",
    ]),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
