-- Support tickets and SLA clocks: the business-hours calendar, effective deadlines kept on the
-- ticket row, breach events, the work-queue and sweeper indexes, and the per-ticket SLA clock.
--
-- The SLA model
--   * A ticket's clock runs while its status is open or in_progress and stands still otherwise
--     (pending: waiting on the user; resolved and closed: no work to do). The engine sets
--     sla_paused_at when the clock stops and, when it starts again, adds the stopped span (in
--     working seconds) to sla_paused_seconds.
--   * first_response_due_at / resolution_due_at stay the nominal targets: created_at plus the
--     priority's minutes, counted in working time (around the clock unless the business-hours
--     calendar is on).
--   * first_response_deadline_at / resolution_deadline_at (added here, kept by trigger) are the
--     effective deadlines: the nominal target pushed back by the paused working time. They do
--     not move while the clock stands still, so the time left on a stopped clock is the
--     working time between sla_paused_at and the deadline. Stored, so that the work queue and
--     the breach sweeper are index range scans at a million tickets.
--   * sla_next_due_at: the deadline the ticket faces next (first response while unanswered,
--     then resolution); the work queue is ordered by it.

------------------------------------------------------------------------------
-- Business-hours calendar
------------------------------------------------------------------------------

-- One row. business_hours = false (the default) counts SLA time around the clock. When true,
-- only the working window of working days counts, in the calendar's time zone, minus holidays.
-- Defaults: Sunday to Thursday (Algeria's working week), 08:00-17:00, Africa/Algiers.
CREATE TABLE sla_calendar (
    id             boolean       NOT NULL DEFAULT true,
    business_hours boolean       NOT NULL DEFAULT false,
    timezone       timezone_name NOT NULL DEFAULT 'Africa/Algiers',
    workday_start  time          NOT NULL DEFAULT '08:00',
    workday_end    time          NOT NULL DEFAULT '17:00',
    -- Days of the week as extract(dow): 0 = Sunday ... 6 = Saturday.
    working_days   smallint[]    NOT NULL DEFAULT '{0,1,2,3,4}',
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT sla_calendar_pkey PRIMARY KEY (id),
    CONSTRAINT chk_sla_calendar_singleton CHECK (id),
    CONSTRAINT chk_sla_calendar_window CHECK (workday_start < workday_end),
    -- At least one working day, each 0..6: otherwise a deadline would never arrive.
    CONSTRAINT chk_sla_calendar_working_days CHECK (
        cardinality(working_days) BETWEEN 1 AND 7
        AND working_days <@ '{0,1,2,3,4,5,6}'::smallint[]
    )
);

INSERT INTO sla_calendar DEFAULT VALUES;

CREATE TRIGGER update_sla_calendar_updated_at
    BEFORE UPDATE ON sla_calendar
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- Public holidays: no working time on these dates (in the calendar's time zone).
CREATE TABLE sla_holidays (
    day        date         NOT NULL,
    name       varchar(200) NOT NULL,
    created_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT sla_holidays_pkey PRIMARY KEY (day),
    CONSTRAINT chk_sla_holidays_name CHECK (length(btrim(name)) > 0)
);

-- p_from + p_seconds of working time. Around the clock this is plain addition; with business
-- hours it walks the working windows day by day (a loop bounded at about ten years so that a
-- misconfigured calendar fails loudly instead of spinning). The result of adding in two steps
-- equals adding the sum, which is what lets the effective deadline be computed from the
-- nominal one.
CREATE FUNCTION sla_add_working_seconds(p_from timestamptz, p_seconds double precision)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cal      sla_calendar%ROWTYPE;
    left_s   double precision := p_seconds;
    local_at timestamp;
    d        date;
    w_start  timestamp;
    w_end    timestamp;
    avail    double precision;
    i        integer := 0;
BEGIN
    IF p_from IS NULL OR p_seconds IS NULL THEN
        RETURN NULL;
    END IF;
    -- Fast path first: nothing to add needs no calendar.
    IF p_seconds <= 0 THEN
        RETURN p_from + make_interval(secs => p_seconds);
    END IF;
    SELECT * INTO cal FROM sla_calendar WHERE id;
    IF NOT FOUND OR NOT cal.business_hours THEN
        RETURN p_from + make_interval(secs => p_seconds);
    END IF;

    local_at := p_from AT TIME ZONE cal.timezone;
    d := local_at::date;
    LOOP
        i := i + 1;
        IF i > 3700 THEN
            RAISE EXCEPTION 'sla_add_working_seconds: no working time within ten years of %', p_from
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF extract(dow FROM d)::smallint = ANY (cal.working_days)
           AND NOT EXISTS (SELECT 1 FROM sla_holidays h WHERE h.day = d) THEN
            w_start := GREATEST(local_at, d + cal.workday_start);
            w_end := d + cal.workday_end;
            IF w_start < w_end THEN
                avail := extract(epoch FROM w_end - w_start)::double precision;
                IF left_s <= avail THEN
                    RETURN (w_start + make_interval(secs => left_s)) AT TIME ZONE cal.timezone;
                END IF;
                left_s := left_s - avail;
            END IF;
        END IF;
        d := d + 1;
        local_at := d::timestamp;
    END LOOP;
END;
$$;

-- Working seconds from p_from to p_to (negative when p_to is earlier).
CREATE FUNCTION sla_working_seconds(p_from timestamptz, p_to timestamptz)
RETURNS double precision
LANGUAGE plpgsql STABLE AS $$
DECLARE
    cal     sla_calendar%ROWTYPE;
    a       timestamp;
    b       timestamp;
    d       date;
    w_start timestamp;
    w_end   timestamp;
    total   double precision := 0;
BEGIN
    IF p_from IS NULL OR p_to IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO cal FROM sla_calendar WHERE id;
    IF NOT FOUND OR NOT cal.business_hours THEN
        RETURN extract(epoch FROM p_to - p_from)::double precision;
    END IF;
    IF p_to < p_from THEN
        RETURN -sla_working_seconds(p_to, p_from);
    END IF;

    a := p_from AT TIME ZONE cal.timezone;
    b := p_to AT TIME ZONE cal.timezone;
    d := a::date;
    WHILE d <= b::date LOOP
        IF extract(dow FROM d)::smallint = ANY (cal.working_days)
           AND NOT EXISTS (SELECT 1 FROM sla_holidays h WHERE h.day = d) THEN
            w_start := GREATEST(a, d + cal.workday_start);
            w_end := LEAST(b, d + cal.workday_end);
            IF w_start < w_end THEN
                total := total + extract(epoch FROM w_end - w_start)::double precision;
            END IF;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN total;
END;
$$;

-- The same, with the calendar's mode passed in: inlined into queries that read sla_calendar once,
-- so that around the clock (the default) no per-row function call or calendar lookup happens.
CREATE FUNCTION sla_seconds_between(p_business_hours boolean, p_from timestamptz, p_to timestamptz)
RETURNS double precision
LANGUAGE sql STABLE
RETURN CASE
    WHEN p_business_hours THEN sla_working_seconds(p_from, p_to)
    ELSE extract(epoch FROM p_to - p_from)::double precision
END;

COMMENT ON FUNCTION sla_add_working_seconds(timestamptz, double precision) IS
    'p_from plus p_seconds of SLA working time (sla_calendar; around the clock by default).';
COMMENT ON FUNCTION sla_working_seconds(timestamptz, timestamptz) IS
    'SLA working seconds between two instants (sla_calendar; around the clock by default).';

-- Nominal due dates in working time. Around the clock this is the foundation's
-- created_at + minutes, unchanged; with business hours the targets count working time only.
CREATE OR REPLACE FUNCTION calculate_sla_due_dates() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target   ticket_priorities%ROWTYPE;
    business boolean;
BEGIN
    SELECT * INTO target FROM ticket_priorities WHERE code = NEW.priority;
    IF FOUND THEN
        SELECT c.business_hours INTO business FROM sla_calendar c WHERE c.id;
        IF coalesce(business, false) THEN
            NEW.first_response_due_at :=
                sla_add_working_seconds(NEW.created_at, target.first_response_minutes * 60.0);
            NEW.resolution_due_at :=
                sla_add_working_seconds(NEW.created_at, target.resolution_minutes * 60.0);
        ELSE
            NEW.first_response_due_at :=
                NEW.created_at + make_interval(mins => target.first_response_minutes);
            NEW.resolution_due_at :=
                NEW.created_at + make_interval(mins => target.resolution_minutes);
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

------------------------------------------------------------------------------
-- Effective deadlines on the ticket
------------------------------------------------------------------------------

ALTER TABLE support_tickets
    ADD COLUMN first_response_deadline_at timestamptz,
    ADD COLUMN resolution_deadline_at     timestamptz,
    ADD COLUMN sla_next_due_at            timestamptz;

COMMENT ON COLUMN support_tickets.first_response_deadline_at IS
    'Effective first-response deadline: first_response_due_at plus the paused working time (trigger).';
COMMENT ON COLUMN support_tickets.resolution_deadline_at IS
    'Effective resolution deadline: resolution_due_at plus the paused working time (trigger).';
COMMENT ON COLUMN support_tickets.sla_next_due_at IS
    'The deadline faced next: first response while unanswered, else resolution (trigger). Queue order.';

-- Named to sort after trigger_calculate_sla_due_date and trigger_recalculate_sla_due_date:
-- BEFORE triggers fire in name order, and this one needs the due dates they set.
CREATE FUNCTION set_sla_deadlines() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Most tickets were never paused: no calendar arithmetic for them.
    IF NEW.sla_paused_seconds = 0 THEN
        NEW.first_response_deadline_at := NEW.first_response_due_at;
        NEW.resolution_deadline_at := NEW.resolution_due_at;
    ELSE
        NEW.first_response_deadline_at :=
            sla_add_working_seconds(NEW.first_response_due_at, NEW.sla_paused_seconds);
        NEW.resolution_deadline_at :=
            sla_add_working_seconds(NEW.resolution_due_at, NEW.sla_paused_seconds);
    END IF;
    NEW.sla_next_due_at := CASE
        WHEN NEW.first_response_at IS NULL THEN NEW.first_response_deadline_at
        ELSE NEW.resolution_deadline_at
    END;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_sla_deadlines
    BEFORE INSERT OR UPDATE OF created_at, priority, first_response_due_at, resolution_due_at,
                               sla_paused_seconds, first_response_at
    ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION set_sla_deadlines();

UPDATE support_tickets
   SET first_response_deadline_at =
           sla_add_working_seconds(first_response_due_at, sla_paused_seconds),
       resolution_deadline_at = sla_add_working_seconds(resolution_due_at, sla_paused_seconds);
UPDATE support_tickets
   SET sla_next_due_at = CASE WHEN first_response_at IS NULL THEN first_response_deadline_at
                              ELSE resolution_deadline_at END;

------------------------------------------------------------------------------
-- Public comments delivered into the conversation
------------------------------------------------------------------------------

-- The staff message a public comment was delivered as: edits and deletions of the comment
-- follow it into the conversation. NULL for internal comments, which are never delivered.
ALTER TABLE ticket_comments
    ADD COLUMN message_id uuid,
    ADD CONSTRAINT ticket_comments_message_id_fkey
        FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL,
    ADD CONSTRAINT chk_ticket_comments_internal_not_delivered
        CHECK (NOT (is_internal AND message_id IS NOT NULL));
CREATE INDEX idx_ticket_comments_message_id ON ticket_comments (message_id)
    WHERE message_id IS NOT NULL;

------------------------------------------------------------------------------
-- Breach events
------------------------------------------------------------------------------

-- One row per ticket and target that missed its deadline, written once (the UNIQUE makes a
-- second writer's insert a no-op) by the sweeper or by the engine when a clock stops late.
CREATE TABLE sla_breach_events (
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    ticket_id   uuid        NOT NULL,
    target      varchar(20) NOT NULL,
    -- The effective deadline that was missed.
    due_at      timestamptz NOT NULL,
    -- When the breach was noticed.
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sla_breach_events_pkey PRIMARY KEY (id),
    CONSTRAINT sla_breach_events_ticket_id_target_key UNIQUE (ticket_id, target),
    CONSTRAINT sla_breach_events_ticket_id_fkey
        FOREIGN KEY (ticket_id) REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT chk_sla_breach_events_target CHECK (target IN ('first_response', 'resolution'))
);

CREATE INDEX idx_sla_breach_events_due_at ON sla_breach_events (due_at);

------------------------------------------------------------------------------
-- Work-queue and sweeper indexes
------------------------------------------------------------------------------

-- Predicates list the statuses seeded with is_open = true (an index predicate cannot consult
-- ticket_statuses), or the two whose clock runs. The queue orders by (sla_next_due_at, id), id
-- keeping pages stable when deadlines tie, so the scans return rows already in order; the
-- assignee index also serves the unassigned queue (assigned_to IS NULL is an index condition).
CREATE INDEX idx_support_tickets_queue_due ON support_tickets (sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_queue_category ON support_tickets (category, sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_queue_assignee ON support_tickets (assigned_to, sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_queue_breached ON support_tickets (sla_next_due_at, id)
    WHERE (first_response_breached OR resolution_breached)
      AND status IN ('open', 'in_progress', 'pending');
-- Only running clocks that have not breached yet: the sweeper reads a range of these.
CREATE INDEX idx_support_tickets_sweep_first_response
    ON support_tickets (first_response_deadline_at)
    WHERE first_response_at IS NULL AND NOT first_response_breached AND sla_paused_at IS NULL
      AND status IN ('open', 'in_progress');
CREATE INDEX idx_support_tickets_sweep_resolution
    ON support_tickets (resolution_deadline_at)
    WHERE NOT resolution_breached AND sla_paused_at IS NULL
      AND status IN ('open', 'in_progress');

-- Superseded: they ordered by the nominal dates, which ignore paused time. Every index costs
-- each ticket insert; these no longer serve a query.
DROP INDEX idx_support_tickets_sla_queue;
DROP INDEX idx_support_tickets_first_response_queue;

------------------------------------------------------------------------------
-- The SLA clock of every ticket at a given instant
------------------------------------------------------------------------------

-- One row per ticket: the targets, the time left per target (working seconds; frozen while the
-- clock stands still; NULL once the target is met or the ticket is no longer open), and the
-- state per target ('ok' below 80% of the target, 'warning' from 80%, 'breached' from 100%, a
-- breach flag or event winning). An answered first response is 'ok' when it came in time.
-- p_now is a parameter so that callers (and tests) choose the instant. LANGUAGE sql, STABLE,
-- not STRICT: the planner inlines it, so filters, ORDER BY sla_next_due_at and LIMIT reach
-- the indexes above.
CREATE FUNCTION ticket_sla_at(p_now timestamptz)
RETURNS TABLE (
    id                               uuid,
    ticket_number                    varchar,
    user_id                          uuid,
    conversation_id                  uuid,
    subject                          varchar,
    category                         varchar,
    priority                         varchar,
    priority_level                   integer,
    status                           varchar,
    is_open                          boolean,
    escalation_tier                  varchar,
    assigned_to                      uuid,
    created_at                       timestamptz,
    updated_at                       timestamptz,
    first_response_due_at            timestamptz,
    first_response_deadline_at       timestamptz,
    first_response_at                timestamptz,
    resolution_due_at                timestamptz,
    resolution_deadline_at           timestamptz,
    sla_due_at                       timestamptz,
    sla_next_due_at                  timestamptz,
    resolved_at                      timestamptz,
    closed_at                        timestamptz,
    sla_paused                       boolean,
    sla_paused_at                    timestamptz,
    sla_paused_seconds               integer,
    first_response_breached          boolean,
    resolution_breached              boolean,
    first_response_target_seconds    bigint,
    resolution_target_seconds        bigint,
    elapsed_seconds                  bigint,
    first_response_remaining_seconds bigint,
    resolution_remaining_seconds     bigint,
    first_response_state             text,
    resolution_state                 text,
    sla_state                        text
)
LANGUAGE sql STABLE AS $$
    SELECT t.id, t.ticket_number, t.user_id, t.conversation_id, t.subject, t.category,
           t.priority, p.level, t.status, s.is_open, t.escalation_tier, t.assigned_to,
           t.created_at, t.updated_at,
           t.first_response_due_at, t.first_response_deadline_at, t.first_response_at,
           t.resolution_due_at, t.resolution_deadline_at, t.sla_due_at, t.sla_next_due_at,
           t.resolved_at, t.closed_at,
           t.sla_paused_at IS NOT NULL, t.sla_paused_at, t.sla_paused_seconds,
           t.first_response_breached, t.resolution_breached,
           v.fr_target, v.res_target, v.elapsed, v.fr_remaining, v.res_remaining,
           v.fr_state, v.res_state, v.sla_state
      FROM support_tickets t
      JOIN ticket_statuses s ON s.code = t.status
      JOIN ticket_priorities p ON p.code = t.priority
     JOIN sla_calendar c ON c.id -- the singleton's key: planned as one row
     -- The OFFSET 0 fences keep each level from being flattened into the next: every value is
     -- computed once per row instead of once per reference, and only for the rows the outer
     -- query keeps (its filters, ORDER BY and LIMIT act on support_tickets' indexes).
     CROSS JOIN LATERAL (
            SELECT floor(n.fr_target)::bigint AS fr_target,
                   floor(n.res_target)::bigint AS res_target,
                   floor(n.res_target - n.res_left)::bigint AS elapsed,
                   n.fr_remaining,
                   n.res_remaining,
                   n.fr_state,
                   n.res_state,
                   CASE
                       WHEN 'breached' IN (n.fr_state, n.res_state) THEN 'breached'
                       WHEN 'warning' IN (n.fr_state, n.res_state) THEN 'warning'
                       ELSE 'ok'
                   END AS sla_state
              FROM (
                    SELECT m.*,
                           CASE WHEN t.first_response_at IS NULL AND s.is_open
                                THEN floor(m.fr_left)::bigint END AS fr_remaining,
                           CASE WHEN s.is_open THEN floor(m.res_left)::bigint END AS res_remaining,
                           CASE
                               WHEN t.first_response_breached THEN 'breached'
                               WHEN t.first_response_at IS NOT NULL THEN
                                   -- Answered while the clock stood still counts at the pause start.
                                   CASE WHEN LEAST(t.first_response_at,
                                                   coalesce(t.sla_paused_at, t.first_response_at))
                                             > t.first_response_deadline_at
                                        THEN 'breached' ELSE 'ok' END
                               ELSE sla_state((m.fr_target - m.fr_left)::numeric,
                                              m.fr_target::numeric)
                           END AS fr_state,
                           CASE
                               WHEN t.resolution_breached THEN 'breached'
                               WHEN t.resolved_at IS NOT NULL AND NOT s.is_open THEN
                                   CASE WHEN t.resolved_at > t.resolution_deadline_at
                                        THEN 'breached' ELSE 'ok' END
                               ELSE sla_state((m.res_target - m.res_left)::numeric,
                                              m.res_target::numeric)
                           END AS res_state
                      FROM (
                            SELECT sla_seconds_between(c.business_hours, t.created_at,
                                                       t.first_response_due_at) AS fr_target,
                                   sla_seconds_between(c.business_hours, t.created_at,
                                                       t.resolution_due_at) AS res_target,
                                   sla_seconds_between(c.business_hours,
                                                       coalesce(t.sla_paused_at, p_now),
                                                       t.first_response_deadline_at) AS fr_left,
                                   sla_seconds_between(c.business_hours,
                                                       coalesce(t.sla_paused_at, p_now),
                                                       t.resolution_deadline_at) AS res_left
                            OFFSET 0
                           ) m
                    OFFSET 0
                   ) n
           ) v
$$;

COMMENT ON FUNCTION ticket_sla_at(timestamptz) IS
    'Every ticket with its SLA targets, time left and state per target at the given instant.';

-- Same columns as before (the view is recreated because its definition now reads the
-- effective deadlines and the calendar), plus the new ones at the end.
DROP VIEW v_open_tickets_sla;
CREATE VIEW v_open_tickets_sla AS
SELECT id,
       ticket_number,
       user_id,
       conversation_id,
       subject,
       category,
       priority,
       priority_level,
       status,
       escalation_tier,
       assigned_to,
       created_at,
       first_response_due_at,
       first_response_at,
       resolution_due_at,
       sla_due_at,
       sla_paused,
       sla_paused_seconds,
       elapsed_seconds,
       first_response_remaining_seconds,
       resolution_remaining_seconds,
       first_response_state,
       resolution_state,
       sla_state,
       first_response_deadline_at,
       resolution_deadline_at,
       sla_next_due_at
  FROM ticket_sla_at(now())
 WHERE is_open;
