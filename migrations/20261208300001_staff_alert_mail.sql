-- E-mail alerts to on-call staff when a ticket finds nobody who can take it (issue 19), through
-- the same outbox as reply notices (`mail` module).
--
-- A staff alert names its ticket (ticket_id) and nothing else of it: the mail is composed when
-- it is sent, from the ticket's number, priority, category, language and how long it has
-- waited, never its subject, description, messages or notes. An alert whose ticket was taken or
-- closed before it went out is not sent: status 'skipped'.
ALTER TABLE mail_deliveries
    ADD COLUMN ticket_id uuid,
    ADD CONSTRAINT mail_deliveries_ticket_id_fkey
        FOREIGN KEY (ticket_id) REFERENCES support_tickets (id) ON DELETE CASCADE,
    DROP CONSTRAINT mail_deliveries_kind_check,
    ADD CONSTRAINT mail_deliveries_kind_check
        CHECK (kind IN ('magic_link', 'reply_notice', 'staff_alert')),
    DROP CONSTRAINT mail_deliveries_status_check,
    ADD CONSTRAINT mail_deliveries_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'skipped')),
    ADD CONSTRAINT mail_deliveries_staff_alert_ticket_check
        CHECK (kind <> 'staff_alert' OR (ticket_id IS NOT NULL AND user_id IS NOT NULL));

-- The rate limit's look-up: the latest alert about a ticket to a member.
CREATE INDEX mail_deliveries_staff_alert_idx ON mail_deliveries (ticket_id, user_id, created_at)
    WHERE kind = 'staff_alert';
