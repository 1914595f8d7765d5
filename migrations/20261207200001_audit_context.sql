-- Where an audited action came from (issue 21): the channel, and for the CLI and the console the
-- machine's user and the SSH client. The server's client address, user agent and outcome use
-- the columns audit_logs always had (ip_address, user_agent, status_code, error_message).
ALTER TABLE audit_logs
    ADD COLUMN channel    varchar(16),
    ADD COLUMN os_user    text,
    ADD COLUMN ssh_client text,
    ADD CONSTRAINT chk_audit_logs_channel
        CHECK (channel IS NULL OR channel IN ('server', 'cli', 'console'));

-- The audit screen filters by address; most rows (CLI, console on the machine) have none.
CREATE INDEX idx_audit_logs_ip_address ON audit_logs (ip_address, created_at DESC)
    WHERE ip_address IS NOT NULL;
