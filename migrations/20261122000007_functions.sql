-- Maintenance and query functions.

------------------------------------------------------------------------------
-- archive_old_conversations(days)
------------------------------------------------------------------------------

-- Archives conversations not yet archived whose last activity (latest message,
-- or creation when there is none) is more than `days` days old: sets
-- archived_at and status 'archived'. Returns the number archived.
CREATE FUNCTION archive_old_conversations(days integer) RETURNS integer
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

    UPDATE conversations
       SET archived_at = now(),
           status = 'archived'
     WHERE archived_at IS NULL
       AND coalesce(last_message_at, created_at) < now() - days * interval '1 day';
    GET DIAGNOSTICS archived = ROW_COUNT;
    RETURN archived;
END;
$$;

------------------------------------------------------------------------------
-- cleanup_expired_magic_links()
------------------------------------------------------------------------------

-- Deletes magic links that expired, or were used, more than 7 days ago
-- (the documented retention). Recent expired or used links are kept for a
-- week so that login problems and abuse can still be investigated.
-- Returns the number deleted.
CREATE FUNCTION cleanup_expired_magic_links() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
BEGIN
    DELETE FROM magic_links
     WHERE expires_at < now() - interval '7 days'
        OR used_at < now() - interval '7 days';
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END;
$$;

------------------------------------------------------------------------------
-- get_conversation_summary(conversation id)
------------------------------------------------------------------------------

-- One row describing a conversation (no row if it does not exist). Message
-- counts ignore soft-deleted messages; message_count is the trigger-maintained
-- counter and equals their sum. The ticket is the conversation's latest one.
CREATE FUNCTION get_conversation_summary(p_conversation_id uuid)
RETURNS TABLE (
    id                         uuid,
    user_id                    uuid,
    title                      varchar,
    mode                       varchar,
    status                     varchar,
    language                   varchar,
    message_count              integer,
    user_message_count         bigint,
    assistant_message_count    bigint,
    staff_message_count        bigint,
    system_message_count       bigint,
    first_message_at           timestamptz,
    last_message_at            timestamptz,
    decision_count             bigint,
    latest_decision            varchar,
    latest_decision_confidence double precision,
    latest_decision_at         timestamptz,
    ticket_id                  uuid,
    ticket_number              varchar,
    ticket_status              varchar,
    created_at                 timestamptz,
    escalated_at               timestamptz,
    archived_at                timestamptz
)
LANGUAGE sql STABLE AS $$
    SELECT c.id,
           c.user_id,
           c.title,
           c.mode,
           c.status,
           c.language,
           c.message_count,
           m.user_count,
           m.assistant_count,
           m.staff_count,
           m.system_count,
           m.first_at,
           c.last_message_at,
           d.decision_count,
           ld.decision,
           ld.confidence,
           ld.created_at,
           t.id,
           t.ticket_number,
           t.status,
           c.created_at,
           c.escalated_at,
           c.archived_at
      FROM conversations c
     CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE msg.role = 'user')      AS user_count,
                   count(*) FILTER (WHERE msg.role = 'assistant') AS assistant_count,
                   count(*) FILTER (WHERE msg.role = 'staff')     AS staff_count,
                   count(*) FILTER (WHERE msg.role = 'system')    AS system_count,
                   min(msg.created_at)                            AS first_at
              FROM messages msg
             WHERE msg.conversation_id = c.id
               AND msg.deleted_at IS NULL
           ) m
     CROSS JOIN LATERAL (
            SELECT count(*) AS decision_count
              FROM decision_logs dl
             WHERE dl.conversation_id = c.id
           ) d
      LEFT JOIN LATERAL (
            SELECT dl.decision, dl.confidence, dl.created_at
              FROM decision_logs dl
             WHERE dl.conversation_id = c.id
             ORDER BY dl.created_at DESC, dl.id DESC
             LIMIT 1
           ) ld ON true
      LEFT JOIN LATERAL (
            SELECT st.id, st.ticket_number, st.status
              FROM support_tickets st
             WHERE st.conversation_id = c.id
             ORDER BY st.created_at DESC, st.id DESC
             LIMIT 1
           ) t ON true
     WHERE c.id = p_conversation_id;
$$;

------------------------------------------------------------------------------
-- refresh_daily_statistics()
------------------------------------------------------------------------------

-- Refreshes mv_daily_statistics (defined with the views). CONCURRENTLY keeps
-- the view readable during the refresh; it needs the view's unique index and
-- a populated view, so an unpopulated view (REFRESH ... WITH NO DATA) gets a
-- plain refresh first.
--
-- SECURITY DEFINER: refreshing requires owning the view; this lets amal_app
-- refresh it without owning anything. No arguments, fixed search_path.
CREATE FUNCTION refresh_daily_statistics() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF (SELECT relispopulated FROM pg_class WHERE oid = 'mv_daily_statistics'::regclass) THEN
        REFRESH MATERIALIZED VIEW CONCURRENTLY mv_daily_statistics;
    ELSE
        REFRESH MATERIALIZED VIEW mv_daily_statistics;
    END IF;
END;
$$;

------------------------------------------------------------------------------
-- set_embedding_dimension(model, dimension)
------------------------------------------------------------------------------

-- KNOWN DEFECT FIXED (dimension scattered as 1536): the single place where the
-- embedding model and dimension change. In one transaction it
--   1. drops the HNSW index,
--   2. retypes document_chunks.embedding to vector(dimension) USING NULL and
--      clears embedding_model: vectors of another model are meaningless, every
--      chunk must be re-embedded,
--   3. recreates idx_document_chunks_embedding_hnsw,
--   4. records the model and dimension in embedding_settings.
-- Calling it with the current model and dimension changes nothing.
-- It alters a table, so only the schema owner can run it (a migration, or the
-- CLI connected as the owner); EXECUTE is not granted to the application role.
CREATE FUNCTION set_embedding_dimension(model text, dim integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    settings embedding_settings%ROWTYPE;
BEGIN
    IF model IS NULL OR btrim(model) = '' THEN
        RAISE EXCEPTION 'set_embedding_dimension: model must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 2000: pgvector's maximum dimension for an HNSW index on vector.
    IF dim IS NULL OR dim < 1 OR dim > 2000 THEN
        RAISE EXCEPTION 'set_embedding_dimension: dimension must be between 1 and 2000 (got %)',
                coalesce(dim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT * INTO settings FROM embedding_settings WHERE id;
    IF FOUND AND settings.model = set_embedding_dimension.model
             AND settings.dimension = dim THEN
        RETURN;
    END IF;

    DROP INDEX IF EXISTS idx_document_chunks_embedding_hnsw;
    EXECUTE format(
        'ALTER TABLE document_chunks ALTER COLUMN embedding TYPE vector(%s) USING NULL', dim);
    UPDATE document_chunks SET embedding_model = NULL WHERE embedding_model IS NOT NULL;
    CREATE INDEX idx_document_chunks_embedding_hnsw ON document_chunks
        USING hnsw (embedding vector_cosine_ops);

    INSERT INTO embedding_settings AS s (id, model, dimension, updated_at)
    VALUES (true, set_embedding_dimension.model, dim, now())
    ON CONFLICT (id) DO UPDATE
        SET model = EXCLUDED.model,
            dimension = EXCLUDED.dimension,
            updated_at = EXCLUDED.updated_at;
END;
$$;
