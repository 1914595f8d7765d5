-- Reporting views and the daily statistics materialized view.
-- "Days" are calendar days in the service time zone (service_local_date()).

------------------------------------------------------------------------------
-- v_active_conversations
------------------------------------------------------------------------------

-- Conversations not archived, of users not soft-deleted (documented), with the
-- added language columns.
CREATE VIEW v_active_conversations AS
SELECT c.id,
       c.user_id,
       u.email,
       u.name,
       c.title,
       c.mode,
       c.status,
       c.message_count,
       c.last_message_at,
       c.language,
       c.lang,
       c.escalated_at,
       c.created_at,
       c.updated_at
  FROM conversations c
  JOIN users u ON u.id = c.user_id
 WHERE c.archived_at IS NULL
   AND c.status <> 'archived'
   AND u.deleted_at IS NULL;

------------------------------------------------------------------------------
-- v_ticket_statistics (documented)
------------------------------------------------------------------------------

-- Open tickets count their age so far (COALESCE(resolved_at, now())).
-- double precision rather than numeric: readable by clients without a decimal type.
CREATE VIEW v_ticket_statistics AS
SELECT category,
       priority,
       status,
       count(*) AS ticket_count,
       avg(extract(epoch FROM (coalesce(resolved_at, now()) - created_at)) / 3600)::double precision
           AS avg_resolution_hours
  FROM support_tickets
 GROUP BY category, priority, status;

------------------------------------------------------------------------------
-- v_open_tickets_sla
------------------------------------------------------------------------------

-- SLA state of a clock: 'ok' below 80% of the target, 'warning' from 80%,
-- 'breached' from 100%. NULL when there is no target.
CREATE FUNCTION sla_state(elapsed_seconds numeric, target_seconds numeric) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN target_seconds IS NULL OR elapsed_seconds IS NULL THEN NULL
    WHEN elapsed_seconds >= target_seconds THEN 'breached'
    WHEN elapsed_seconds >= 0.8 * target_seconds THEN 'warning'
    ELSE 'ok'
END;

-- Tickets in an open status (ticket_statuses.is_open) with, per target, the
-- seconds remaining and the state. The SLA clock excludes paused time: elapsed
-- = (now, or sla_paused_at while paused) - created_at - sla_paused_seconds,
-- remaining = (due - created_at) - elapsed. A breach flag already set by the
-- SLA sweeper wins. Once answered, the first-response state says whether the
-- answer came in time (remaining is then NULL).
CREATE VIEW v_open_tickets_sla AS
WITH clock AS (
    SELECT t.*,
           p.level AS priority_level,
           extract(epoch FROM coalesce(t.sla_paused_at, now()) - t.created_at)
               - t.sla_paused_seconds                              AS elapsed_seconds,
           extract(epoch FROM t.first_response_due_at - t.created_at) AS first_response_target,
           extract(epoch FROM t.resolution_due_at - t.created_at)     AS resolution_target
      FROM support_tickets t
      JOIN ticket_statuses s ON s.code = t.status
      JOIN ticket_priorities p ON p.code = t.priority
     WHERE s.is_open
),
states AS (
    SELECT clock.*,
           CASE
               WHEN first_response_breached THEN 'breached'
               WHEN first_response_at IS NOT NULL THEN
                   CASE WHEN first_response_at > first_response_due_at
                                                 + make_interval(secs => sla_paused_seconds)
                        THEN 'breached' ELSE 'ok' END
               ELSE sla_state(elapsed_seconds, first_response_target)
           END AS first_response_state,
           CASE
               WHEN resolution_breached THEN 'breached'
               ELSE sla_state(elapsed_seconds, resolution_target)
           END AS resolution_state
      FROM clock
)
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
       sla_paused_at IS NOT NULL AS sla_paused,
       sla_paused_seconds,
       floor(elapsed_seconds)::bigint AS elapsed_seconds,
       CASE WHEN first_response_at IS NULL
            THEN floor(first_response_target - elapsed_seconds)::bigint
       END AS first_response_remaining_seconds,
       floor(resolution_target - elapsed_seconds)::bigint AS resolution_remaining_seconds,
       first_response_state,
       resolution_state,
       CASE
           WHEN 'breached' IN (first_response_state, resolution_state) THEN 'breached'
           WHEN 'warning' IN (first_response_state, resolution_state) THEN 'warning'
           ELSE 'ok'
       END AS sla_state
  FROM states;

------------------------------------------------------------------------------
-- v_decision_statistics
------------------------------------------------------------------------------

-- AUTO decisions per day and outcome (the documented analytics query, without
-- its 30-day window: callers filter on date).
CREATE VIEW v_decision_statistics AS
SELECT service_local_date(created_at) AS date,
       decision,
       count(*)                       AS count,
       avg(confidence)                AS avg_confidence
  FROM decision_logs
 GROUP BY service_local_date(created_at), decision;

------------------------------------------------------------------------------
-- mv_daily_statistics
------------------------------------------------------------------------------

-- One row per (day, metric). Refresh with refresh_daily_statistics().
--   users               accounts created (not soft-deleted)
--   conversations       conversations started
--   messages            messages posted (not soft-deleted)
--   tickets             tickets opened
--   crisis_tickets      tickets opened in category 'crisis'
--   tickets_resolved    tickets resolved (by resolved_at)
--   escalations         tier escalations recorded
--   decisions_rag       AUTO decisions routed to the knowledge base
--   decisions_support   AUTO decisions routed to human support
CREATE MATERIALIZED VIEW mv_daily_statistics AS
SELECT service_local_date(created_at) AS date, 'users'::text AS metric_type, count(*) AS count
  FROM users WHERE deleted_at IS NULL GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'conversations', count(*)
  FROM conversations GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'messages', count(*)
  FROM messages WHERE deleted_at IS NULL GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'tickets', count(*)
  FROM support_tickets GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'crisis_tickets', count(*)
  FROM support_tickets WHERE category = 'crisis' GROUP BY 1
UNION ALL
SELECT service_local_date(resolved_at), 'tickets_resolved', count(*)
  FROM support_tickets WHERE resolved_at IS NOT NULL GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'escalations', count(*)
  FROM ticket_escalations GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'decisions_rag', count(*)
  FROM decision_logs WHERE decision = 'rag' GROUP BY 1
UNION ALL
SELECT service_local_date(created_at), 'decisions_support', count(*)
  FROM decision_logs WHERE decision = 'support' GROUP BY 1
WITH DATA;

-- Required by REFRESH MATERIALIZED VIEW CONCURRENTLY; also the lookup key.
CREATE UNIQUE INDEX idx_mv_daily_statistics_date_metric
    ON mv_daily_statistics (date, metric_type);
