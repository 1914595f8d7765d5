-- Database roles and privileges.
--
--   amal_app       the engine and console: read/write DML on every table,
--                  EXECUTE on functions, USAGE on sequences.
--   amal_readonly  analytics: SELECT only.
--   amal_admin     administration: all privileges on the schema's objects.
--
-- The roles are NOLOGIN group roles without passwords (the documented
-- CREATE ROLE ... LOGIN PASSWORD '...' put credentials in version control).
-- Deployments create login roles and GRANT these groups to them.
--
-- Roles are cluster-wide while this migration runs once per database, and test
-- suites migrate several databases of one cluster at the same time. CREATE
-- ROLE is therefore idempotent and race-tolerant: an existing role raises
-- duplicate_object; a role created by a concurrent transaction that committed
-- while we waited raises unique_violation (on pg_authid's name index). Both
-- mean the role exists. Shared catalogs are otherwise left alone (no role
-- comments, no role memberships) because concurrent updates of the same
-- shared row fail with "tuple concurrently updated".

DO $$
BEGIN
    CREATE ROLE amal_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

DO $$
BEGIN
    CREATE ROLE amal_readonly NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

DO $$
BEGIN
    CREATE ROLE amal_admin NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

-- The database name differs per environment (and per test database).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO amal_app, amal_readonly, amal_admin',
                   current_database());
END;
$$;

GRANT USAGE ON SCHEMA public TO amal_app, amal_readonly;
GRANT USAGE, CREATE ON SCHEMA public TO amal_admin;

-- Existing objects. "ALL TABLES" includes views and the materialized view.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO amal_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO amal_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO amal_app;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO amal_readonly;

GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO amal_admin;
GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO amal_admin;
GRANT ALL PRIVILEGES ON ALL FUNCTIONS IN SCHEMA public TO amal_admin;

-- Maintenance functions are not for everyone: PUBLIC gets EXECUTE on new
-- functions by default. refresh_daily_statistics() is SECURITY DEFINER, and
-- set_embedding_dimension() rewrites a table (owner only in practice).
REVOKE EXECUTE ON FUNCTION archive_old_conversations(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cleanup_expired_magic_links() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION refresh_daily_statistics() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION set_embedding_dimension(text, integer) FROM PUBLIC, amal_app;

-- Objects created later by the role running migrations.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO amal_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO amal_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO amal_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT ON TABLES TO amal_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL PRIVILEGES ON TABLES TO amal_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL PRIVILEGES ON SEQUENCES TO amal_admin;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL PRIVILEGES ON FUNCTIONS TO amal_admin;
