-- Support statistics: SLA compliance, breaches, response and resolution times, agent workload
-- and crisis escalations. Days are calendar days in the service time zone. Queue sizes come
-- from v_ticket_statistics, decisions from v_decision_statistics, conversations and messages
-- per day from mv_daily_statistics (refreshed by the engine before it reports).

-- Per day of ticket creation and per target: targets met, missed, and still running.
-- A target is met when it was reached by its effective deadline without a breach record.
CREATE VIEW v_sla_compliance_daily AS
WITH outcome AS (
    SELECT service_local_date(created_at) AS date,
           'first_response'::text AS target,
           CASE
               WHEN first_response_breached
                    OR first_response_at > first_response_deadline_at THEN 'breached'
               WHEN first_response_at IS NOT NULL THEN 'met'
               ELSE 'running'
           END AS outcome
      FROM support_tickets
    UNION ALL
    SELECT service_local_date(created_at),
           'resolution',
           CASE
               WHEN resolution_breached OR resolved_at > resolution_deadline_at THEN 'breached'
               WHEN resolved_at IS NOT NULL THEN 'met'
               ELSE 'running'
           END
      FROM support_tickets
)
SELECT date,
       target,
       count(*) FILTER (WHERE outcome = 'met')      AS met,
       count(*) FILTER (WHERE outcome = 'breached') AS breached,
       count(*) FILTER (WHERE outcome = 'running')  AS running,
       -- Share of finished targets that were met; NULL when none finished.
       (count(*) FILTER (WHERE outcome = 'met'))::double precision
           / NULLIF(count(*) FILTER (WHERE outcome <> 'running'), 0) AS compliance
  FROM outcome
 GROUP BY date, target;

-- Breach events per day of the missed deadline and per target.
CREATE VIEW v_sla_breaches_daily AS
SELECT service_local_date(due_at) AS date,
       target,
       count(*) AS breaches
  FROM sla_breach_events
 GROUP BY 1, 2;

-- First-response times per day of the response, resolution times per day of the resolution:
-- count, mean and 90th percentile in seconds (wall-clock time the person waited).
CREATE VIEW v_ticket_times_daily AS
SELECT service_local_date(first_response_at) AS date,
       'first_response'::text AS metric,
       count(*) AS tickets,
       avg(extract(epoch FROM first_response_at - created_at))::double precision AS avg_seconds,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM first_response_at - created_at)) AS p90_seconds
  FROM support_tickets
 WHERE first_response_at IS NOT NULL
 GROUP BY 1
UNION ALL
SELECT service_local_date(resolved_at),
       'resolution',
       count(*),
       avg(extract(epoch FROM resolved_at - created_at))::double precision,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
  FROM support_tickets
 WHERE resolved_at IS NOT NULL
 GROUP BY 1;

-- Every active staff account with the tickets it holds, by status, and how many of them have
-- missed a target.
CREATE VIEW v_agent_workload AS
SELECT u.id AS user_id,
       u.email::text AS email,
       u.name,
       u.staff_role,
       count(t.id) FILTER (WHERE t.status IN ('open', 'in_progress', 'pending')) AS open_tickets,
       count(t.id) FILTER (WHERE t.status = 'in_progress') AS in_progress,
       count(t.id) FILTER (WHERE t.status = 'pending') AS pending,
       count(t.id) FILTER (WHERE t.status IN ('open', 'in_progress', 'pending')
                             AND (t.first_response_breached OR t.resolution_breached))
           AS breached_open,
       count(t.id) FILTER (WHERE t.status = 'open' AND t.category = 'crisis') AS crisis_open,
       min(t.sla_next_due_at) FILTER (WHERE t.status IN ('open', 'in_progress'))
           AS next_due_at
  FROM users u
  LEFT JOIN support_tickets t
         ON t.assigned_to = u.id AND t.status IN ('open', 'in_progress', 'pending')
 WHERE u.staff_role IS NOT NULL AND u.is_active AND u.deleted_at IS NULL
 GROUP BY u.id, u.email, u.name, u.staff_role;

-- Crisis tickets per day of creation, with the time to their first staff response.
CREATE VIEW v_crisis_escalations_daily AS
SELECT service_local_date(created_at) AS date,
       count(*) AS tickets,
       count(first_response_at) AS answered,
       count(*) FILTER (WHERE first_response_breached
                           OR first_response_at > first_response_deadline_at)
           AS first_response_breached,
       avg(extract(epoch FROM first_response_at - created_at))::double precision
           AS avg_first_response_seconds,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM first_response_at - created_at)) AS p90_first_response_seconds,
       max(extract(epoch FROM first_response_at - created_at))::double precision
           AS max_first_response_seconds
  FROM support_tickets
 WHERE category = 'crisis'
 GROUP BY 1;
