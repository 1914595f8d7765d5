-- Core tables of the ER diagram, plus the columns and tables later issues need
-- (each marked "Added:" with the reason).
--
-- Conventions
--   * uuid keys default gen_random_uuid(); timestamps are timestamptz, default now().
--   * Every constraint is named explicitly, so the application can map the
--     constraint name of a violation to a domain error:
--       <table>_pkey, <table>_<cols>_key (unique), <table>_<col>_fkey,
--       chk_<table>_<rule> (check).
--   * Soft delete (deleted_at) where the documentation has it: users, messages,
--     documents, ticket_comments.
--   * References to users from staff-authored or audit data never cascade:
--     staff accounts are soft-deleted; a hard delete of a user who authored
--     such rows is refused (NO ACTION) or leaves the row anonymous (SET NULL
--     where the column is optional).

------------------------------------------------------------------------------
-- Users
------------------------------------------------------------------------------

CREATE TABLE users (
    id                    uuid          NOT NULL DEFAULT gen_random_uuid(),
    email                 email_address NOT NULL,
    -- NOT NULL as documented. Accounts created through a magic link carry an
    -- unusable placeholder hash chosen by the application.
    password_hash         varchar(255)  NOT NULL,
    name                  varchar(255)  NOT NULL,
    locale                locale_code   NOT NULL DEFAULT 'ar-DZ',
    timezone              timezone_name NOT NULL DEFAULT 'Africa/Algiers',
    consent_data_storage  boolean       NOT NULL DEFAULT false,
    consent_timestamp     timestamptz,
    consent_ip_address    inet,
    is_active             boolean       NOT NULL DEFAULT true,
    is_verified           boolean       NOT NULL DEFAULT false,
    email_verified_at     timestamptz,
    failed_login_attempts integer       NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    last_login_at         timestamptz,
    last_login_ip         inet,
    -- Added: staff role; NULL for end users.
    staff_role            varchar(20),
    created_at            timestamptz   NOT NULL DEFAULT now(),
    updated_at            timestamptz   NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT chk_users_consent CHECK (
        consent_data_storage = false
        OR (consent_data_storage = true AND consent_timestamp IS NOT NULL)
    ),
    CONSTRAINT chk_users_staff_role
        CHECK (staff_role IS NULL OR staff_role IN ('agent', 'supervisor', 'admin')),
    CONSTRAINT chk_users_failed_login_attempts CHECK (failed_login_attempts >= 0)
);

COMMENT ON COLUMN users.staff_role IS
    'Staff role: agent, supervisor or admin; NULL for end users.';

CREATE TABLE user_preferences (
    user_id               uuid        NOT NULL,
    theme                 varchar(20) NOT NULL DEFAULT 'system',
    notifications_enabled boolean     NOT NULL DEFAULT true,
    email_notifications   boolean     NOT NULL DEFAULT true,
    -- NULL means "follow users.locale".
    language_preference   locale_code,
    accessibility_mode    boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_preferences_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_preferences_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE user_sessions (
    id                 uuid         NOT NULL DEFAULT gen_random_uuid(),
    user_id            uuid         NOT NULL,
    refresh_token_hash varchar(255) NOT NULL,
    ip_address         inet,
    user_agent         text,
    device_info        jsonb        NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz  NOT NULL DEFAULT now(),
    last_activity_at   timestamptz  NOT NULL DEFAULT now(),
    expires_at         timestamptz  NOT NULL,
    revoked_at         timestamptz,
    CONSTRAINT user_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT user_sessions_refresh_token_hash_key UNIQUE (refresh_token_hash),
    CONSTRAINT user_sessions_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT chk_user_sessions_expiry CHECK (expires_at > created_at)
);

CREATE TABLE magic_links (
    id         uuid          NOT NULL DEFAULT gen_random_uuid(),
    email      email_address NOT NULL,
    token      varchar(255)  NOT NULL,
    expires_at timestamptz   NOT NULL,
    used       boolean       NOT NULL DEFAULT false,
    used_at    timestamptz,
    ip_address inet,
    user_agent text,
    created_at timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT magic_links_pkey PRIMARY KEY (id),
    CONSTRAINT magic_links_token_key UNIQUE (token),
    -- cleanup_expired_magic_links() ages used links by used_at.
    CONSTRAINT chk_magic_links_used_at CHECK (NOT used OR used_at IS NOT NULL)
);

------------------------------------------------------------------------------
-- Conversations
------------------------------------------------------------------------------

CREATE TABLE conversations (
    id              uuid         NOT NULL DEFAULT gen_random_uuid(),
    user_id         uuid         NOT NULL,
    title           varchar(255),
    mode            varchar(20)  NOT NULL DEFAULT 'AUTO',
    status          varchar(20)  NOT NULL DEFAULT 'active',
    -- Added: language of the conversation (locale_code, like documents.language
    -- and user_preferences.language_preference). NULL until known; readers fall
    -- back to users.locale.
    language        locale_code,
    -- Added: short language code ('ar', 'fr', 'en') derived from language, the
    -- form retrieval filters on. Generated, so it cannot disagree.
    lang            char(2) GENERATED ALWAYS AS (left(language, 2)::char(2)) STORED,
    -- Maintained by trigger: number of messages not soft-deleted.
    message_count   integer      NOT NULL DEFAULT 0,
    -- Maintained by trigger: time of the latest message posted.
    last_message_at timestamptz,
    -- Added: when the conversation was handed over to staff.
    escalated_at    timestamptz,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    archived_at     timestamptz,
    CONSTRAINT conversations_pkey PRIMARY KEY (id),
    CONSTRAINT conversations_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT conversations_mode_fkey
        FOREIGN KEY (mode) REFERENCES conversation_modes (code),
    CONSTRAINT conversations_status_fkey
        FOREIGN KEY (status) REFERENCES conversation_statuses (code),
    CONSTRAINT chk_conversations_message_count CHECK (message_count >= 0),
    CONSTRAINT chk_conversations_lang CHECK (lang IN ('ar', 'fr', 'en'))
);

COMMENT ON COLUMN conversations.language IS
    'Conversation locale (ar-DZ, fr-FR, en-US); NULL until detected, then readers fall back to users.locale.';
COMMENT ON COLUMN conversations.lang IS
    'Short language code derived from language (ar, fr, en), as used by retrieval.';
COMMENT ON COLUMN conversations.escalated_at IS
    'When the conversation was escalated to human support.';

CREATE TABLE messages (
    id                 uuid        NOT NULL DEFAULT gen_random_uuid(),
    conversation_id    uuid        NOT NULL,
    role               varchar(20) NOT NULL,
    content            text        NOT NULL,
    metadata           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tokens_used        integer,
    processing_time_ms integer,
    -- Added: idempotency key chosen by the client; a retried send carries the
    -- same key and hits messages_conversation_id_client_message_id_key.
    client_message_id  varchar(128),
    -- Added: the staff member who wrote a 'staff' message.
    author_id          uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    edited_at          timestamptz,
    deleted_at         timestamptz,
    CONSTRAINT messages_pkey PRIMARY KEY (id),
    CONSTRAINT messages_conversation_id_fkey
        FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    CONSTRAINT messages_author_id_fkey
        FOREIGN KEY (author_id) REFERENCES users (id),
    -- A plain UNIQUE (not a partial index): NULL keys never conflict, and
    -- INSERT ... ON CONFLICT (conversation_id, client_message_id) works
    -- without repeating an index predicate.
    CONSTRAINT messages_conversation_id_client_message_id_key
        UNIQUE (conversation_id, client_message_id),
    -- 'staff' (added): a staff member's public reply delivered into the conversation.
    CONSTRAINT chk_messages_role
        CHECK (role IN ('user', 'assistant', 'system', 'staff')),
    -- Characters, not bytes: an Arabic message may use the full 10,000.
    CONSTRAINT chk_messages_content_length
        CHECK (length(content) > 0 AND length(content) <= 10000),
    CONSTRAINT chk_messages_tokens_used CHECK (tokens_used IS NULL OR tokens_used > 0),
    CONSTRAINT chk_messages_processing_time
        CHECK (processing_time_ms IS NULL OR processing_time_ms >= 0),
    CONSTRAINT chk_messages_client_message_id
        CHECK (client_message_id IS NULL OR length(client_message_id) > 0),
    CONSTRAINT chk_messages_staff_author CHECK (role <> 'staff' OR author_id IS NOT NULL)
);

COMMENT ON COLUMN messages.client_message_id IS
    'Idempotency key from the client; unique per conversation when not NULL.';
COMMENT ON COLUMN messages.author_id IS
    'Staff author of a role = ''staff'' message (required for that role).';

CREATE TABLE decision_logs (
    id                uuid             NOT NULL DEFAULT gen_random_uuid(),
    conversation_id   uuid             NOT NULL,
    message_id        uuid,
    decision          varchar(20)      NOT NULL,
    -- Documented free-text explanation (Arabic). Kept; the localized columns
    -- below let the console show the reason in the reader's language.
    reason            text,
    -- Added: stable machine-readable reason (e.g. 'crisis_keyword').
    reason_code       varchar(64),
    -- Added: the reason in each service language.
    reason_ar         text,
    reason_fr         text,
    reason_en         text,
    -- Added: what the decision was based on (matched signals, scores, ...).
    evidence          jsonb            NOT NULL DEFAULT '{}'::jsonb,
    confidence        double precision NOT NULL,
    model_used        varchar(100),
    prompt_tokens     integer,
    completion_tokens integer,
    created_at        timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT decision_logs_pkey PRIMARY KEY (id),
    CONSTRAINT decision_logs_conversation_id_fkey
        FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
    -- Decision analytics outlive a hard-deleted message.
    CONSTRAINT decision_logs_message_id_fkey
        FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL,
    CONSTRAINT chk_decision_logs_decision CHECK (decision IN ('rag', 'support')),
    CONSTRAINT chk_decision_logs_confidence CHECK (confidence >= 0 AND confidence <= 1),
    CONSTRAINT chk_decision_logs_tokens CHECK (
        (prompt_tokens IS NULL OR prompt_tokens >= 0)
        AND (completion_tokens IS NULL OR completion_tokens >= 0)
    )
);

COMMENT ON COLUMN decision_logs.reason_code IS 'Machine-readable reason of the decision.';
COMMENT ON COLUMN decision_logs.evidence IS 'Signals the decision was based on.';

------------------------------------------------------------------------------
-- Knowledge base (RAG)
------------------------------------------------------------------------------

CREATE TABLE documents (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    title         varchar(500) NOT NULL,
    content       text         NOT NULL,
    -- SHA-256 of the content, for deduplication.
    content_hash  varchar(64)  NOT NULL,
    metadata      jsonb        NOT NULL DEFAULT '{}'::jsonb,
    source        varchar(500),
    author        varchar(255),
    language      locale_code  NOT NULL,
    -- Added: short language code derived from language; retrieval filters on it.
    lang          char(2) GENERATED ALWAYS AS (left(language, 2)::char(2)) STORED,
    pii_stripped  boolean      NOT NULL DEFAULT false,
    review_status varchar(20)  NOT NULL DEFAULT 'pending',
    reviewed_by   uuid,
    reviewed_at   timestamptz,
    -- Maintained by the ingestion code (documented as manual).
    chunk_count   integer      NOT NULL DEFAULT 0,
    total_tokens  integer,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    updated_at    timestamptz  NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CONSTRAINT documents_pkey PRIMARY KEY (id),
    CONSTRAINT documents_content_hash_key UNIQUE (content_hash),
    CONSTRAINT documents_reviewed_by_fkey
        FOREIGN KEY (reviewed_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_documents_review_status
        CHECK (review_status IN ('pending', 'approved', 'rejected')),
    CONSTRAINT chk_documents_lang CHECK (lang IN ('ar', 'fr', 'en')),
    CONSTRAINT chk_documents_chunk_count CHECK (chunk_count >= 0),
    CONSTRAINT chk_documents_total_tokens CHECK (total_tokens IS NULL OR total_tokens >= 0)
);

COMMENT ON COLUMN documents.lang IS
    'Short language code derived from language (ar, fr, en), as used by retrieval.';

-- Embedding configuration. One row (id is always true): the model that
-- produced the vectors in document_chunks.embedding and the column's dimension.
-- Change both with set_embedding_dimension(model, dim), never by hand: the
-- column type, the HNSW index and this row must move together.
CREATE TABLE embedding_settings (
    id         boolean     NOT NULL DEFAULT true,
    model      text        NOT NULL,
    dimension  integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT embedding_settings_pkey PRIMARY KEY (id),
    CONSTRAINT chk_embedding_settings_singleton CHECK (id),
    -- 2000 is pgvector's limit for HNSW indexes on vector.
    CONSTRAINT chk_embedding_settings_dimension CHECK (dimension BETWEEN 1 AND 2000),
    CONSTRAINT chk_embedding_settings_model CHECK (length(btrim(model)) > 0)
);

-- KNOWN DEFECT FIXED: the documentation hard-coded vector(1536) (OpenAI
-- ada-002) in several places. The dimension belongs to the embedding model, so
-- it lives in embedding_settings; the column starts at the offline default
-- embedder's 384 and only set_embedding_dimension() changes it afterwards.
-- These two lines are the only place the initial value appears.
INSERT INTO embedding_settings (model, dimension) VALUES ('amal-hash-ngram-v1', 384);

CREATE TABLE document_chunks (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    document_id     uuid        NOT NULL,
    content         text        NOT NULL,
    -- NULL until the chunk is embedded. Dimension = embedding_settings.dimension.
    --
    -- Retrieval note (the query lives in the engine): the documented query put
    -- "WHERE 1 - (embedding <=> q) > 0.7" next to ORDER BY ... LIMIT k. Inside
    -- the index scan that condition is a row-by-row filter on the approximate
    -- search: with pgvector 0.8 iterative scans (hnsw.iterative_scan) a query
    -- whose neighbours all miss the threshold keeps walking the graph up to
    -- hnsw.max_scan_tuples, and the planner cannot estimate how many rows pass.
    -- Retrieval must take the k nearest in a MATERIALIZED CTE and apply
    -- thresholds outside it (as pgvector's documentation recommends):
    --   WITH nearest AS MATERIALIZED (
    --       SELECT id, embedding <=> $1 AS distance FROM document_chunks
    --       ORDER BY embedding <=> $1 LIMIT $2)
    --   SELECT ... FROM nearest WHERE 1 - distance > $3 ORDER BY distance;
    embedding       vector(384),
    -- Added: model that produced embedding (NULL when embedding is NULL).
    embedding_model varchar(100),
    chunk_index     integer     NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    token_count     integer,
    start_position  integer,
    end_position    integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT document_chunks_pkey PRIMARY KEY (id),
    CONSTRAINT document_chunks_document_id_fkey
        FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE,
    CONSTRAINT document_chunks_document_id_chunk_index_key UNIQUE (document_id, chunk_index),
    CONSTRAINT chk_document_chunks_chunk_index CHECK (chunk_index >= 0),
    CONSTRAINT chk_document_chunks_token_count CHECK (token_count IS NULL OR token_count >= 0),
    CONSTRAINT chk_document_chunks_positions CHECK (
        (start_position IS NULL OR start_position >= 0)
        AND (start_position IS NULL OR end_position IS NULL OR start_position <= end_position)
    ),
    -- A vector is only meaningful together with the model that produced it.
    CONSTRAINT chk_document_chunks_embedding_model
        CHECK (embedding IS NULL OR embedding_model IS NOT NULL)
);

COMMENT ON COLUMN document_chunks.embedding_model IS
    'Embedding model that produced embedding; compare with embedding_settings.model.';

------------------------------------------------------------------------------
-- Support
------------------------------------------------------------------------------

CREATE TABLE support_tickets (
    id                      uuid         NOT NULL DEFAULT gen_random_uuid(),
    -- Assigned by trigger: TKT-YYYY-NNNNNN (year in Africa/Algiers time).
    ticket_number           varchar(32)  NOT NULL,
    conversation_id         uuid,
    user_id                 uuid         NOT NULL,
    subject                 varchar(255) NOT NULL,
    -- Added: the requester's full description.
    description             text,
    category                varchar(30)  NOT NULL,
    priority                varchar(20)  NOT NULL DEFAULT 'medium',
    status                  varchar(20)  NOT NULL DEFAULT 'open',
    assigned_to             uuid,
    assigned_at             timestamptz,
    escalated               boolean      NOT NULL DEFAULT false,
    escalation_reason       text,
    escalated_at            timestamptz,
    escalated_by            uuid,
    -- Added: support tier currently handling the ticket (history in ticket_escalations).
    escalation_tier         varchar(10)  NOT NULL DEFAULT 'T1',
    -- Added: SLA targets, set by trigger from the priority: created_at + minutes.
    first_response_due_at   timestamptz,
    resolution_due_at       timestamptz,
    -- Documented column, kept: always equal to resolution_due_at (generated, so
    -- the two cannot drift; write resolution_due_at instead).
    sla_due_at              timestamptz GENERATED ALWAYS AS (resolution_due_at) STORED,
    -- Added: first staff reply (ends the first-response clock).
    first_response_at       timestamptz,
    -- Added: SLA pause. While sla_paused_at is set the clocks stand still;
    -- on resume the application adds the paused span to sla_paused_seconds.
    -- The due columns stay nominal (created_at + target); the effective
    -- deadline is due + sla_paused_seconds (see v_open_tickets_sla).
    sla_paused_at           timestamptz,
    sla_paused_seconds      integer      NOT NULL DEFAULT 0,
    -- Added: breach flags per target, set by the SLA sweeper.
    first_response_breached boolean      NOT NULL DEFAULT false,
    resolution_breached     boolean      NOT NULL DEFAULT false,
    -- Documented column, kept: mirrors resolution_breached (generated).
    sla_breached            boolean GENERATED ALWAYS AS (resolution_breached) STORED,
    resolution_notes        text,
    resolved_by             uuid,
    created_at              timestamptz  NOT NULL DEFAULT now(),
    updated_at              timestamptz  NOT NULL DEFAULT now(),
    resolved_at             timestamptz,
    closed_at               timestamptz,
    CONSTRAINT support_tickets_pkey PRIMARY KEY (id),
    CONSTRAINT support_tickets_ticket_number_key UNIQUE (ticket_number),
    CONSTRAINT support_tickets_conversation_id_fkey
        FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE SET NULL,
    CONSTRAINT support_tickets_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT support_tickets_category_fkey
        FOREIGN KEY (category) REFERENCES ticket_categories (code),
    CONSTRAINT support_tickets_priority_fkey
        FOREIGN KEY (priority) REFERENCES ticket_priorities (code),
    CONSTRAINT support_tickets_status_fkey
        FOREIGN KEY (status) REFERENCES ticket_statuses (code),
    CONSTRAINT support_tickets_assigned_to_fkey
        FOREIGN KEY (assigned_to) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT support_tickets_escalated_by_fkey
        FOREIGN KEY (escalated_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT support_tickets_resolved_by_fkey
        FOREIGN KEY (resolved_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_support_tickets_ticket_number_format
        CHECK (ticket_number ~ '^TKT-[0-9]{4}-[0-9]{6,}$'),
    CONSTRAINT chk_support_tickets_escalation_tier
        CHECK (escalation_tier IN ('T1', 'T2', 'T3', 'manager')),
    CONSTRAINT chk_support_tickets_sla_paused_seconds CHECK (sla_paused_seconds >= 0)
);

COMMENT ON COLUMN support_tickets.description IS 'Full description of the request.';
COMMENT ON COLUMN support_tickets.escalation_tier IS
    'Current support tier: T1, T2, T3 or manager; history in ticket_escalations.';
COMMENT ON COLUMN support_tickets.first_response_due_at IS
    'created_at + ticket_priorities.first_response_minutes (trigger).';
COMMENT ON COLUMN support_tickets.resolution_due_at IS
    'created_at + ticket_priorities.resolution_minutes (trigger); sla_due_at mirrors it.';
COMMENT ON COLUMN support_tickets.sla_due_at IS
    'Documented SLA deadline = resolution_due_at (generated, read-only).';
COMMENT ON COLUMN support_tickets.first_response_at IS 'First staff response.';
COMMENT ON COLUMN support_tickets.sla_paused_at IS
    'Start of the current SLA pause; NULL when the clock runs.';
COMMENT ON COLUMN support_tickets.sla_paused_seconds IS
    'Total seconds of completed SLA pauses; effective deadline = due + this.';
COMMENT ON COLUMN support_tickets.first_response_breached IS 'First-response target missed.';
COMMENT ON COLUMN support_tickets.resolution_breached IS 'Resolution target missed.';
COMMENT ON COLUMN support_tickets.sla_breached IS
    'Documented breach flag = resolution_breached (generated, read-only).';

-- Added: escalation history between tiers. support_tickets.escalation_tier is
-- the current tier; the application writes both in one transaction.
CREATE TABLE ticket_escalations (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    ticket_id  uuid        NOT NULL,
    from_tier  varchar(10) NOT NULL,
    to_tier    varchar(10) NOT NULL,
    reason     text        NOT NULL,
    -- NULL for automatic escalations (e.g. an SLA breach).
    actor_id   uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ticket_escalations_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_escalations_ticket_id_fkey
        FOREIGN KEY (ticket_id) REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT ticket_escalations_actor_id_fkey
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_ticket_escalations_tiers CHECK (
        from_tier IN ('T1', 'T2', 'T3', 'manager')
        AND to_tier IN ('T1', 'T2', 'T3', 'manager')
        AND from_tier <> to_tier
    ),
    CONSTRAINT chk_ticket_escalations_reason CHECK (length(btrim(reason)) > 0)
);

CREATE TABLE ticket_comments (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    ticket_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    content     text        NOT NULL,
    is_internal boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Added: last change of content (set by trigger); history in ticket_comment_edits.
    edited_at   timestamptz,
    deleted_at  timestamptz,
    CONSTRAINT ticket_comments_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_comments_ticket_id_fkey
        FOREIGN KEY (ticket_id) REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT ticket_comments_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT chk_ticket_comments_content_length
        CHECK (length(content) > 0 AND length(content) <= 10000)
);

COMMENT ON COLUMN ticket_comments.edited_at IS
    'Last change of content (trigger); previous versions in ticket_comment_edits.';

-- Added: previous versions of edited comments (who changed what, when).
CREATE TABLE ticket_comment_edits (
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    comment_id       uuid        NOT NULL,
    previous_content text        NOT NULL,
    edited_by        uuid        NOT NULL,
    edited_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ticket_comment_edits_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_comment_edits_comment_id_fkey
        FOREIGN KEY (comment_id) REFERENCES ticket_comments (id) ON DELETE CASCADE,
    CONSTRAINT ticket_comment_edits_edited_by_fkey
        FOREIGN KEY (edited_by) REFERENCES users (id)
);

-- KNOWN DEFECT FIXED (see generate_ticket_number()): per-year counter for
-- ticket numbers, replacing COUNT(*) + 1.
CREATE TABLE ticket_number_counters (
    year       integer NOT NULL,
    last_value integer NOT NULL,
    CONSTRAINT ticket_number_counters_pkey PRIMARY KEY (year),
    CONSTRAINT chk_ticket_number_counters_last_value CHECK (last_value >= 0)
);

------------------------------------------------------------------------------
-- Audit
------------------------------------------------------------------------------

CREATE TABLE audit_logs (
    id            uuid         NOT NULL DEFAULT gen_random_uuid(),
    -- The actor. SET NULL: the audit trail outlives a deleted account.
    user_id       uuid,
    action        varchar(100) NOT NULL,
    resource_type varchar(50),
    resource_id   uuid,
    details       jsonb        NOT NULL DEFAULT '{}'::jsonb,
    ip_address    inet,
    user_agent    text,
    status_code   integer,
    error_message text,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id),
    CONSTRAINT audit_logs_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_audit_logs_status_code
        CHECK (status_code IS NULL OR status_code BETWEEN 100 AND 599)
);
