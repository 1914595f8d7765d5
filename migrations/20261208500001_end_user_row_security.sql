-- Row-level security as a second wall between people (issue 21).
--
-- End-user requests of the server run, inside their transaction, as the NOLOGIN role
-- amal_end_user (db::enter_person: set_config('role', 'amal_end_user', true) and
-- set_config('amal.user_id', <the person>, true)). The policies below admit only that
-- person's rows, so a query that forgets its WHERE still returns nothing of anyone else's.
--
-- Who is subject to what:
--   * amal_end_user: the person's own rows only, and only the tables and columns granted here
--     (no staff tables, no knowledge tables, no internal ticket columns, no comments).
--   * amal_app, amal_readonly, amal_admin (deployments' login roles are members of these):
--     a permissive policy admitting every row, so staff, the console, the CLI and the workers
--     see what they saw before.
--   * The tables' owner (the role running migrations) and superusers bypass row-level
--     security. FORCE ROW LEVEL SECURITY is deliberately not used: the end-user role is never
--     the owner, so it is always subject to the policies, while forcing them on the owner
--     would hide every row from the staff paths of an owner-connected deployment.
--
-- The setting is transaction-local (set_config's third argument), like the role: a pooled
-- connection returns to the pool without either.

DO $$
BEGIN
    CREATE ROLE amal_end_user NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

-- The person the current transaction acts for; NULL outside an end-user request (and then
-- the end-user policies admit nothing).
CREATE FUNCTION amal_current_person() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NULLIF(current_setting('amal.user_id', true), '')::uuid
$$;

COMMENT ON FUNCTION amal_current_person() IS
    'The end user of the current transaction (setting amal.user_id), or NULL.';

-- The login role that runs the server must be able to SET ROLE amal_end_user. Superusers
-- (the embedded cluster, the tests) can already; any other role running the migrations is
-- made a member here when it may grant it. Otherwise an administrator runs
-- GRANT amal_end_user TO <login role>; doctor reports which applies.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'amal_end_user', 'MEMBER') THEN
        EXECUTE format('GRANT amal_end_user TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege OR unique_violation THEN
    RAISE NOTICE 'could not grant amal_end_user to %: an administrator must', current_user;
END;
$$;

GRANT USAGE ON SCHEMA public TO amal_end_user;

-- Reference data the person's rows point to.
GRANT SELECT ON conversation_modes, conversation_statuses, ticket_categories, ticket_priorities,
    ticket_statuses TO amal_end_user;

-- The account: read it; change consent and the language chosen in the preferences only (never
-- the address, staff role or lock-out columns).
GRANT SELECT ON users TO amal_end_user;
GRANT UPDATE (consent_data_storage, consent_timestamp, consent_ip_address, consent_withdrawn_at,
              locale, updated_at) ON users TO amal_end_user;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_staff ON users TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY users_own ON users TO amal_end_user
    USING (id = amal_current_person()) WITH CHECK (id = amal_current_person());

GRANT SELECT, INSERT, UPDATE, DELETE ON user_preferences TO amal_end_user;
ALTER TABLE user_preferences ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_preferences_staff ON user_preferences TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY user_preferences_own ON user_preferences TO amal_end_user
    USING (user_id = amal_current_person()) WITH CHECK (user_id = amal_current_person());

-- Sessions: read one's own, end them (sign-out, touch).
GRANT SELECT ON user_sessions TO amal_end_user;
GRANT UPDATE (last_activity_at, revoked_at) ON user_sessions TO amal_end_user;
ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_sessions_staff ON user_sessions TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY user_sessions_own ON user_sessions TO amal_end_user
    USING (user_id = amal_current_person()) WITH CHECK (user_id = amal_current_person());

-- Conversations: start, read, close, reopen in crisis; the message trigger keeps the counts.
GRANT SELECT, INSERT ON conversations TO amal_end_user;
GRANT UPDATE (status, language, archived_at, message_count, last_message_at, updated_at)
    ON conversations TO amal_end_user;
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversations_staff ON conversations TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY conversations_own ON conversations TO amal_end_user
    USING (user_id = amal_current_person()) WITH CHECK (user_id = amal_current_person());

-- Messages of one's own conversations; the person writes only messages of role 'user' (the
-- assistant's and staff replies are written in the engine's context).
GRANT SELECT, INSERT ON messages TO amal_end_user;
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_staff ON messages TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY messages_own_read ON messages FOR SELECT TO amal_end_user
    USING (conversation_id IN (SELECT id FROM conversations WHERE user_id = amal_current_person()));
CREATE POLICY messages_own_write ON messages FOR INSERT TO amal_end_user
    WITH CHECK (role = 'user' AND author_id IS NULL
                AND conversation_id IN (SELECT id FROM conversations
                                         WHERE user_id = amal_current_person()));

-- Decisions on one's own conversations (a retried turn is answered from them); written by
-- the engine.
GRANT SELECT ON decision_logs TO amal_end_user;
ALTER TABLE decision_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY decision_logs_staff ON decision_logs TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY decision_logs_own ON decision_logs FOR SELECT TO amal_end_user
    USING (conversation_id IN (SELECT id FROM conversations WHERE user_id = amal_current_person()));

-- Tickets about the person: their public parts only (no description, assignee, escalation
-- or resolution notes, SLA internals); written by the engine and staff.
GRANT SELECT (id, ticket_number, conversation_id, user_id, subject, category, priority, status,
              created_at, updated_at, first_response_at, resolved_at, closed_at)
    ON support_tickets TO amal_end_user;
ALTER TABLE support_tickets ENABLE ROW LEVEL SECURITY;
CREATE POLICY support_tickets_staff ON support_tickets TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY support_tickets_own ON support_tickets FOR SELECT TO amal_end_user
    USING (user_id = amal_current_person());

-- The person's own actions (consent given or withdrawn) are audited with them as the actor;
-- the id is read back (RETURNING), nothing else.
GRANT INSERT ON audit_logs TO amal_end_user;
GRANT SELECT (id) ON audit_logs TO amal_end_user;
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_staff ON audit_logs TO amal_app, amal_readonly, amal_admin
    USING (true) WITH CHECK (true);
CREATE POLICY audit_logs_own ON audit_logs TO amal_end_user
    USING (user_id = amal_current_person()) WITH CHECK (user_id = amal_current_person());
