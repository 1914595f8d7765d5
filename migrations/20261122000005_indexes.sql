-- Secondary indexes. Primary keys and UNIQUE constraints already have theirs.
--
-- Rules followed here:
--   * Partial "WHERE deleted_at IS NULL" indexes serve the application's reads
--     of live rows. Indexes that back a foreign key stay non-partial (or only
--     exclude NULL keys) so cascades and FK checks never scan the table.
--   * Every column referencing users has an index: hard-deleting a user must
--     not scan messages, tickets or the audit log.
--   * Full-text indexes are per language (arabic, french, english) on
--     to_tsvector('<config>', content) expressions: a query must use the same
--     expression, e.g. to_tsvector('arabic', content) @@ to_tsquery('arabic', $1).
--   * Migrations run in a transaction, so no CREATE INDEX CONCURRENTLY here;
--     later migrations on large tables should use a no-transaction migration.

------------------------------------------------------------------------------
-- users and authentication
------------------------------------------------------------------------------

-- users_email_key already indexes email exactly (the documented idx_users_email
-- would duplicate it). Login lookups that ignore case use this one.
CREATE INDEX idx_users_email_lower ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX idx_users_active ON users (is_active) WHERE deleted_at IS NULL;
CREATE INDEX idx_users_created_at ON users (created_at DESC);
CREATE INDEX idx_users_last_login_at ON users (last_login_at DESC)
    WHERE is_active AND deleted_at IS NULL;
CREATE INDEX idx_users_staff_role ON users (staff_role)
    WHERE staff_role IS NOT NULL AND deleted_at IS NULL;

CREATE INDEX idx_user_sessions_user_id ON user_sessions (user_id);
CREATE INDEX idx_user_sessions_expires_at ON user_sessions (expires_at)
    WHERE revoked_at IS NULL;

CREATE INDEX idx_magic_links_email ON magic_links (email, created_at DESC);
CREATE INDEX idx_magic_links_expires_at ON magic_links (expires_at);
CREATE INDEX idx_magic_links_used_at ON magic_links (used_at) WHERE used_at IS NOT NULL;

------------------------------------------------------------------------------
-- conversations, messages, decisions
------------------------------------------------------------------------------

-- A user's conversation list, most recently active first (also the FK index).
CREATE INDEX idx_conversations_user_updated ON conversations (user_id, updated_at DESC);
CREATE INDEX idx_conversations_user_last_message ON conversations
    (user_id, last_message_at DESC NULLS LAST) WHERE archived_at IS NULL;
CREATE INDEX idx_conversations_status ON conversations (status);
CREATE INDEX idx_conversations_created_at ON conversations (created_at);
-- archive_old_conversations(): last activity of conversations not yet archived.
CREATE INDEX idx_conversations_last_activity ON conversations
    ((coalesce(last_message_at, created_at))) WHERE archived_at IS NULL;

-- History of a conversation in order (also the FK index, hence not partial).
CREATE INDEX idx_messages_conversation_created ON messages (conversation_id, created_at);
CREATE INDEX idx_messages_created_at ON messages (created_at);
CREATE INDEX idx_messages_author_id ON messages (author_id) WHERE author_id IS NOT NULL;
CREATE INDEX idx_messages_content_fts_ar ON messages
    USING gin (to_tsvector('arabic'::regconfig, content)) WHERE deleted_at IS NULL;
CREATE INDEX idx_messages_content_fts_fr ON messages
    USING gin (to_tsvector('french'::regconfig, content)) WHERE deleted_at IS NULL;
CREATE INDEX idx_messages_content_fts_en ON messages
    USING gin (to_tsvector('english'::regconfig, content)) WHERE deleted_at IS NULL;

CREATE INDEX idx_decision_logs_conversation ON decision_logs (conversation_id, created_at DESC);
CREATE INDEX idx_decision_logs_message_id ON decision_logs (message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX idx_decision_logs_created_decision ON decision_logs (created_at, decision);

------------------------------------------------------------------------------
-- knowledge base
------------------------------------------------------------------------------

-- Approved, PII-stripped, live documents: the set retrieval draws from.
CREATE INDEX idx_documents_approved ON documents (lang, created_at DESC)
    WHERE review_status = 'approved' AND pii_stripped AND deleted_at IS NULL;
-- Review queue.
CREATE INDEX idx_documents_review_queue ON documents (created_at)
    WHERE review_status = 'pending' AND deleted_at IS NULL;
CREATE INDEX idx_documents_reviewed_by ON documents (reviewed_by) WHERE reviewed_by IS NOT NULL;
CREATE INDEX idx_documents_content_fts_ar ON documents
    USING gin (to_tsvector('arabic'::regconfig, content)) WHERE deleted_at IS NULL;
CREATE INDEX idx_documents_content_fts_fr ON documents
    USING gin (to_tsvector('french'::regconfig, content)) WHERE deleted_at IS NULL;
CREATE INDEX idx_documents_content_fts_en ON documents
    USING gin (to_tsvector('english'::regconfig, content)) WHERE deleted_at IS NULL;

-- KNOWN DEFECT FIXED: the documentation built
--   USING ivfflat (embedding vector_cosine_ops) WITH (lists = 100)
-- on an empty table. IVFFlat computes its list centroids from the rows present
-- at build time, so an index built empty has meaningless centroids, and with
-- the default ivfflat.probes = 1 a query searches 1% of the lists: recall
-- collapses as chunks arrive. HNSW needs no training data, stays accurate as
-- rows are added, and is pgvector's recommended default. Cosine distance (<=>)
-- as in the documented query. set_embedding_dimension() drops and recreates
-- this index under the same name.
CREATE INDEX idx_document_chunks_embedding_hnsw ON document_chunks
    USING hnsw (embedding vector_cosine_ops);
-- Fuzzy / partial matching on chunk text (ILIKE, %, similarity()).
CREATE INDEX idx_document_chunks_content_trgm ON document_chunks
    USING gin (content gin_trgm_ops);
CREATE INDEX idx_document_chunks_content_fts_ar ON document_chunks
    USING gin (to_tsvector('arabic'::regconfig, content));
CREATE INDEX idx_document_chunks_content_fts_fr ON document_chunks
    USING gin (to_tsvector('french'::regconfig, content));
CREATE INDEX idx_document_chunks_content_fts_en ON document_chunks
    USING gin (to_tsvector('english'::regconfig, content));

------------------------------------------------------------------------------
-- support
------------------------------------------------------------------------------

CREATE INDEX idx_support_tickets_user_created ON support_tickets (user_id, created_at DESC);
CREATE INDEX idx_support_tickets_conversation_id ON support_tickets (conversation_id)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX idx_support_tickets_status_priority ON support_tickets (status, priority, created_at);
CREATE INDEX idx_support_tickets_category ON support_tickets (category, created_at);
CREATE INDEX idx_support_tickets_created_at ON support_tickets (created_at);
CREATE INDEX idx_support_tickets_assigned_to ON support_tickets (assigned_to, status)
    WHERE assigned_to IS NOT NULL;
CREATE INDEX idx_support_tickets_escalated_by ON support_tickets (escalated_by)
    WHERE escalated_by IS NOT NULL;
CREATE INDEX idx_support_tickets_resolved_by ON support_tickets (resolved_by)
    WHERE resolved_by IS NOT NULL;
-- SLA queues. The predicate lists the statuses seeded with is_open = true
-- (open, in_progress, pending): an index predicate cannot consult
-- ticket_statuses. If an open status is added, add it here too.
CREATE INDEX idx_support_tickets_sla_queue ON support_tickets (sla_due_at)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_first_response_queue ON support_tickets (first_response_due_at)
    WHERE first_response_at IS NULL AND status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_tier_queue ON support_tickets (escalation_tier, created_at)
    WHERE status IN ('open', 'in_progress', 'pending');

CREATE INDEX idx_ticket_escalations_ticket ON ticket_escalations (ticket_id, created_at);
CREATE INDEX idx_ticket_escalations_actor_id ON ticket_escalations (actor_id)
    WHERE actor_id IS NOT NULL;

-- Comments of a ticket in order (also the FK index, hence not partial).
CREATE INDEX idx_ticket_comments_ticket_created ON ticket_comments (ticket_id, created_at);
CREATE INDEX idx_ticket_comments_user_id ON ticket_comments (user_id);

CREATE INDEX idx_ticket_comment_edits_comment ON ticket_comment_edits (comment_id, edited_at);
CREATE INDEX idx_ticket_comment_edits_edited_by ON ticket_comment_edits (edited_by);

------------------------------------------------------------------------------
-- audit
------------------------------------------------------------------------------

CREATE INDEX idx_audit_logs_user_created ON audit_logs (user_id, created_at DESC);
CREATE INDEX idx_audit_logs_resource ON audit_logs (resource_type, resource_id);
CREATE INDEX idx_audit_logs_action_created ON audit_logs (action, created_at DESC);
CREATE INDEX idx_audit_logs_created_at ON audit_logs (created_at);
