-- Domain types shared by several tables, and the service time zone.
--
-- Each domain CHECK is named so that a violation can be mapped to a domain
-- error by constraint name (PostgreSQL reports it in the error's constraint
-- field, with the message "value for domain <name> violates check constraint").

-- E-mail address: a pragmatic shape check, not RFC 5322. Applications are
-- expected to store addresses lower-cased; uniqueness is on the stored value.
CREATE DOMAIN email_address AS varchar(255)
    CONSTRAINT chk_email_address_format
    CHECK (VALUE ~ '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$');

-- The three locales the service speaks.
CREATE DOMAIN locale_code AS varchar(10)
    CONSTRAINT chk_locale_code_supported
    CHECK (VALUE IN ('ar-DZ', 'fr-FR', 'en-US'));

-- IANA time zone name. The documented pattern '^[A-Za-z_]+/[A-Za-z_]+$'
-- rejected real names such as 'America/Argentina/Buenos_Aires' (three parts),
-- 'UTC' (one part) and 'Etc/GMT+1' (digits and sign); this accepts one to three
-- parts. It is a shape check only: a CHECK cannot consult pg_timezone_names
-- (the tz database changes between releases), so applications validate the
-- name against the zone list when a user picks it.
CREATE DOMAIN timezone_name AS varchar(64)
    CONSTRAINT chk_timezone_name_format
    CHECK (VALUE ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$');

-- The service operates on Algerian time: ticket-number years and the "day" of
-- every daily statistic are taken in this zone, whatever the server's TimeZone
-- setting. One definition, used by triggers and views.
CREATE FUNCTION service_timezone() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'Africa/Algiers';

CREATE FUNCTION service_local_date(ts timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (ts AT TIME ZONE service_timezone())::date;

COMMENT ON FUNCTION service_timezone() IS
    'Time zone of the service (Africa/Algiers): used for ticket-number years and daily statistics.';
COMMENT ON FUNCTION service_local_date(timestamptz) IS
    'Calendar date of a timestamp in the service time zone (Africa/Algiers).';
