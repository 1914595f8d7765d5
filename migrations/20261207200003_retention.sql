-- Retention (issue 21): how long each kind of data is kept, set by an admin, and a record of
-- every run of the retention worker. Defaults from the platform documents.
CREATE TABLE retention_policies (
    kind       varchar(40) NOT NULL,
    keep_days  integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid,
    CONSTRAINT retention_policies_pkey PRIMARY KEY (kind),
    CONSTRAINT retention_policies_updated_by_fkey
        FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_retention_policies_kind
        CHECK (kind IN ('closed_conversation_messages', 'audit_logs', 'statistics')),
    -- At least 30 days: a slip of the finger must not erase last week.
    CONSTRAINT chk_retention_policies_keep_days CHECK (keep_days BETWEEN 30 AND 36500)
);

INSERT INTO retention_policies (kind, keep_days) VALUES
    ('closed_conversation_messages', 730),  -- 2 years
    ('audit_logs', 2557),                   -- 7 years
    ('statistics', 3653);                   -- 10 years

CREATE TABLE retention_runs (
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    kind          varchar(40) NOT NULL,
    cutoff        timestamptz NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    rows_affected bigint      NOT NULL,
    batches       integer     NOT NULL,
    error         text,
    CONSTRAINT retention_runs_pkey PRIMARY KEY (id),
    CONSTRAINT chk_retention_runs_kind
        CHECK (kind IN ('closed_conversation_messages', 'audit_logs', 'statistics'))
);
CREATE INDEX idx_retention_runs_kind_finished ON retention_runs (kind, finished_at DESC);

-- A message whose text was removed at the end of its retention period keeps its row (role,
-- time, counts) so that statistics stay intact.
ALTER TABLE messages ADD COLUMN redacted_at timestamptz;
