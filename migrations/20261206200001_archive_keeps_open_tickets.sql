-- archive_old_conversations() leaves alone a conversation whose ticket is still open.
--
-- It archived every conversation idle for `days` days. A ticket left waiting on the person that
-- long (pending) then lost its conversation: the person's return was refused (an archived
-- conversation takes no message) and staff replies went into an archived conversation. Such
-- conversations now stay until their ticket is resolved or closed. The body is the original's
-- (20261122000007) with that one condition added: applied migrations cannot change.
CREATE OR REPLACE FUNCTION archive_old_conversations(days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    archived integer;
BEGIN
    -- 0 or a negative value would archive every conversation, live ones included.
    IF days IS NULL OR days < 1 THEN
        RAISE EXCEPTION 'archive_old_conversations: days must be at least 1 (got %)',
                coalesce(days::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE conversations c
       SET archived_at = now(),
           status = 'archived'
     WHERE c.archived_at IS NULL
       AND coalesce(c.last_message_at, c.created_at) < now() - days * interval '1 day'
       AND NOT EXISTS (
           SELECT 1 FROM support_tickets t
            WHERE t.conversation_id = c.id
              AND t.status IN ('open', 'in_progress', 'pending'));
    GET DIAGNOSTICS archived = ROW_COUNT;
    RETURN archived;
END;
$$;
