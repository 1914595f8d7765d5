-- The engine server: anonymous end-user accounts and the workers' run ledger.

-- Anonymous sessions (where the service allows them) create an end-user account
-- without an e-mail address; it carries a generated placeholder address under
-- the reserved .invalid domain (RFC 2606) and this flag, so that nothing ever
-- mails it and exports say what it is.
ALTER TABLE users ADD COLUMN is_anonymous boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN users.is_anonymous IS
    'End-user account created by an anonymous session (placeholder e-mail address).';

-- One row per background job run by `amal-engine serve`. Several instances may
-- share a database: an instance runs a job only after claiming its row with one
-- UPDATE whose WHERE clause requires the previous start to be at least one
-- interval old. Row locking makes that claim atomic, so a job runs once per
-- interval across all instances (no double work), and an instance that dies
-- mid-run only delays the next run by one interval.
CREATE TABLE worker_runs (
    job              varchar(64) NOT NULL,
    last_started_at  timestamptz,
    last_finished_at timestamptz,
    -- Which instance (host and process) ran it last, for operators.
    last_instance    text,
    -- What the last run did (counts) or its error.
    last_result      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    runs             bigint      NOT NULL DEFAULT 0,
    CONSTRAINT worker_runs_pkey PRIMARY KEY (job),
    CONSTRAINT chk_worker_runs_runs CHECK (runs >= 0)
);

COMMENT ON TABLE worker_runs IS
    'Background jobs of the engine server: last run per job, claimed atomically across instances.';
