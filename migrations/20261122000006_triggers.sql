-- Triggers. They live in the database so that every writer (engine, console,
-- scripts, psql) gets the same behaviour.

------------------------------------------------------------------------------
-- updated_at
------------------------------------------------------------------------------

CREATE FUNCTION update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER update_users_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_user_preferences_updated_at
    BEFORE UPDATE ON user_preferences
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_conversations_updated_at
    BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_documents_updated_at
    BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_support_tickets_updated_at
    BEFORE UPDATE ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_ticket_comments_updated_at
    BEFORE UPDATE ON ticket_comments
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

------------------------------------------------------------------------------
-- edited_at: set when the text of a message or comment actually changes
------------------------------------------------------------------------------

CREATE FUNCTION set_edited_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.edited_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_messages_edited_at
    BEFORE UPDATE OF content ON messages
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content)
    EXECUTE FUNCTION set_edited_at();
CREATE TRIGGER trigger_ticket_comments_edited_at
    BEFORE UPDATE OF content ON ticket_comments
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content)
    EXECUTE FUNCTION set_edited_at();

------------------------------------------------------------------------------
-- conversations.message_count and last_message_at
------------------------------------------------------------------------------

-- message_count counts the messages of a conversation that are not
-- soft-deleted, exactly:
--   INSERT of a live message                     +1
--   DELETE of a live message                     -1 (never below 0)
--   UPDATE setting deleted_at (soft delete)      -1
--   UPDATE clearing deleted_at (undelete)        +1
--   UPDATE moving a live message elsewhere       -1 on the old, +1 on the new
-- The UPDATE ... SET message_count = message_count +/- 1 takes the
-- conversation's row lock, so concurrent writers cannot lose increments.
--
-- last_message_at is the time of the latest message posted (activity): set on
-- insert, never moved back by deletes. GREATEST keeps it monotonic when rows
-- arrive out of order (imports, clock skew between writers); the documented
-- trigger overwrote it with NEW.created_at.
CREATE FUNCTION update_conversation_message_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_counted boolean := TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL;
    is_counted  boolean := TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL;
    moved       boolean := TG_OP = 'UPDATE' AND OLD.conversation_id <> NEW.conversation_id;
BEGIN
    IF was_counted AND (NOT is_counted OR moved) THEN
        UPDATE conversations
           SET message_count = GREATEST(message_count - 1, 0)
         WHERE id = OLD.conversation_id;
    END IF;

    IF is_counted AND (NOT was_counted OR moved) THEN
        UPDATE conversations
           SET message_count = message_count + 1,
               last_message_at = GREATEST(last_message_at, NEW.created_at)
         WHERE id = NEW.conversation_id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE TRIGGER trigger_update_conversation_message_count
    AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION update_conversation_message_count();
CREATE TRIGGER trigger_update_conversation_message_count_on_update
    AFTER UPDATE OF deleted_at, conversation_id ON messages
    FOR EACH ROW
    WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
          OR OLD.conversation_id <> NEW.conversation_id)
    EXECUTE FUNCTION update_conversation_message_count();

------------------------------------------------------------------------------
-- Ticket number: TKT-YYYY-NNNNNN
------------------------------------------------------------------------------

-- KNOWN DEFECT FIXED: the documented trigger computed
--   SELECT COUNT(*) + 1 FROM support_tickets WHERE year = this year
-- Concurrent inserts read the same count and got the same number (45%
-- duplicates with 8 clients), and every insert scanned the year's tickets.
-- The per-year counter row is incremented with an upsert: its row lock
-- serializes inserts of the same year until the inserting transaction ends, so
-- numbers are unique, and gapless (a rolled-back insert rolls the counter back
-- too). UNIQUE (ticket_number) backs this up.
--
-- The year is the ticket's created_at in the service time zone (Africa/Algiers),
-- not the server's. The sequence is zero-padded to 6 digits and widens past
-- 999999 instead of failing. A caller-supplied ticket_number is ignored.
CREATE FUNCTION generate_ticket_number() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ticket_year integer :=
        extract(year FROM coalesce(NEW.created_at, now()) AT TIME ZONE service_timezone());
    seq integer;
BEGIN
    INSERT INTO ticket_number_counters (year, last_value)
    VALUES (ticket_year, 1)
    ON CONFLICT (year) DO UPDATE
        SET last_value = ticket_number_counters.last_value + 1
    RETURNING last_value INTO seq;

    NEW.ticket_number := format('TKT-%s-%s',
        ticket_year, lpad(seq::text, GREATEST(6, length(seq::text)), '0'));
    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_generate_ticket_number
    BEFORE INSERT ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION generate_ticket_number();

------------------------------------------------------------------------------
-- SLA due dates from the priority
------------------------------------------------------------------------------

-- first_response_due_at = created_at + priority.first_response_minutes
-- resolution_due_at     = created_at + priority.resolution_minutes
--                         (sla_due_at is generated from it)
-- Computed on insert, and recomputed relative to created_at when the priority
-- (or created_at) changes. An unknown priority leaves the dates alone: the
-- priority foreign key rejects the row right after.
CREATE FUNCTION calculate_sla_due_dates() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target ticket_priorities%ROWTYPE;
BEGIN
    SELECT * INTO target FROM ticket_priorities WHERE code = NEW.priority;
    IF FOUND THEN
        NEW.first_response_due_at :=
            NEW.created_at + make_interval(mins => target.first_response_minutes);
        NEW.resolution_due_at :=
            NEW.created_at + make_interval(mins => target.resolution_minutes);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_calculate_sla_due_date
    BEFORE INSERT ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION calculate_sla_due_dates();
CREATE TRIGGER trigger_recalculate_sla_due_date
    BEFORE UPDATE OF priority, created_at ON support_tickets
    FOR EACH ROW
    WHEN (OLD.priority IS DISTINCT FROM NEW.priority
          OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION calculate_sla_due_dates();
