//! Support statistics for the console and `amal-engine stats`: the queue, SLA compliance and
//! breaches, response and resolution times, agent workload, AUTO decisions, activity and crisis
//! escalations.
//!
//! The figures come from the reporting views (`migrations/20261122000008_views.sql` and
//! `20261122100002_ticket_statistics.sql`) and the materialized `mv_daily_statistics`, which
//! [`refresh`] brings up to date. Days are calendar days in the service time zone
//! (Africa/Algiers).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
// AssertSqlSafe: the only text spliced into SQL here is constant column names, never input.
use sqlx::{AssertSqlSafe, PgConnection};

/// Open tickets per status, priority and category.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueCount {
    /// Status code.
    pub status: String,
    /// Priority code.
    pub priority: String,
    /// Category code.
    pub category: String,
    /// Tickets.
    pub tickets: i64,
}

/// SLA outcomes of the tickets created on one day, for one target.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ComplianceDay {
    /// Day of creation.
    pub date: NaiveDate,
    /// `first_response` or `resolution`.
    pub target: String,
    /// Targets met.
    pub met: i64,
    /// Targets missed.
    pub breached: i64,
    /// Clocks still running.
    pub running: i64,
    /// met / (met + breached), when any finished.
    pub compliance: Option<f64>,
}

/// Breach events whose deadline fell on one day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BreachDay {
    /// Day of the missed deadline.
    pub date: NaiveDate,
    /// `first_response` or `resolution`.
    pub target: String,
    /// Breaches.
    pub breaches: i64,
}

/// Count, mean and 90th percentile of a duration, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct TimeSummary {
    /// Tickets measured.
    pub tickets: i64,
    /// Mean.
    pub avg_seconds: Option<f64>,
    /// 90th percentile.
    pub p90_seconds: Option<f64>,
}

/// First-response or resolution times on one day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TimesDay {
    /// Day of the response or resolution.
    pub date: NaiveDate,
    /// `first_response` or `resolution`.
    pub metric: String,
    /// Tickets.
    pub tickets: i64,
    /// Mean seconds.
    pub avg_seconds: Option<f64>,
    /// 90th percentile seconds.
    pub p90_seconds: Option<f64>,
}

/// The open tickets one staff member holds.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AgentWorkload {
    /// E-mail.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub staff_role: Option<String>,
    /// Open, in progress and pending.
    pub open_tickets: i64,
    /// In progress.
    pub in_progress: i64,
    /// Pending on the user.
    pub pending: i64,
    /// Open tickets that missed a target.
    pub breached_open: i64,
    /// Crisis tickets not yet started.
    pub crisis_open: i64,
    /// The earliest deadline among them.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// AUTO decisions on one day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DecisionDay {
    /// Day.
    pub date: NaiveDate,
    /// `rag` (knowledge base) or `support` (human).
    pub decision: String,
    /// Decisions.
    pub count: i64,
    /// Mean confidence.
    pub avg_confidence: Option<f64>,
    /// Of those, messages outside the service's subjects (`out_of_scope`, answered without a
    /// ticket).
    pub out_of_scope: i64,
}

/// Conversations started and messages posted on one day.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActivityDay {
    /// Day.
    pub date: NaiveDate,
    /// Conversations started.
    pub conversations: i64,
    /// Messages posted.
    pub messages: i64,
}

/// Crisis tickets opened on one day and how fast a human answered.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CrisisDay {
    /// Day.
    pub date: NaiveDate,
    /// Crisis tickets opened.
    pub tickets: i64,
    /// Answered so far.
    pub answered: i64,
    /// First responses late.
    pub first_response_breached: i64,
    /// Mean seconds to the first response.
    pub avg_first_response_seconds: Option<f64>,
    /// 90th percentile.
    pub p90_first_response_seconds: Option<f64>,
    /// Slowest.
    pub max_first_response_seconds: Option<f64>,
}

/// Everything `amal-engine stats` reports, over the last `window_days` days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    /// The instant the figures describe.
    pub generated_at: DateTime<Utc>,
    /// Days covered by the per-day series (including today).
    pub window_days: i32,
    /// Open tickets by status, priority and category.
    pub queue: Vec<QueueCount>,
    /// Open tickets in total.
    pub open_tickets: i64,
    /// First-response times over the window.
    pub first_response: TimeSummary,
    /// Resolution times over the window.
    pub resolution: TimeSummary,
    /// SLA outcomes per day of creation.
    pub sla_compliance: Vec<ComplianceDay>,
    /// Breaches per day.
    pub sla_breaches: Vec<BreachDay>,
    /// Response and resolution times per day.
    pub times: Vec<TimesDay>,
    /// Open tickets per staff member.
    pub workload: Vec<AgentWorkload>,
    /// RAG versus SUPPORT decisions per day.
    pub decisions: Vec<DecisionDay>,
    /// Conversations and messages per day.
    pub activity: Vec<ActivityDay>,
    /// Crisis escalations per day.
    pub crisis: Vec<CrisisDay>,
    /// Who was on shift and how tickets reached them.
    pub routing: RoutingStats,
}

/// Staffed hours in one language.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StaffedHours {
    /// ar, fr or en.
    pub language: String,
    /// Hours online of members speaking it (two members for an hour are two hours).
    pub hours: f64,
}

/// Routing over the window (see [`crate::routing`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoutingStats {
    /// Hours online per language, from the presence history (an open period up to its
    /// member's last heartbeat).
    pub staffed_hours: Vec<StaffedHours>,
    /// Tickets routed (at least one routing decision).
    pub tickets_routed: i64,
    /// Tickets assigned by routing (directly or by an accepted offer).
    pub tickets_assigned: i64,
    /// Mean seconds from a ticket's creation to its routed assignment.
    pub avg_seconds_to_assignment: Option<f64>,
    /// 90th percentile.
    pub p90_seconds_to_assignment: Option<f64>,
    /// Offers declined.
    pub offers_declined: i64,
    /// Offers left to expire.
    pub offers_expired: i64,
    /// Tickets whose first routing decision (in any mode, `off` included) found nobody online
    /// who could take them.
    pub tickets_found_nobody: i64,
}

async fn routing_stats(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    window_days: i32,
) -> sqlx::Result<RoutingStats> {
    // A period still open ends, for now, at its member's last heartbeat: a console that died
    // counts no hours past it, before the shift worker records it offline (as it then will).
    let staffed_hours = sqlx::query_as(
        "WITH w AS (SELECT $1 - make_interval(days => $2) AS lo, $1::timestamptz AS hi), \
              h AS (SELECT h.languages, h.started_at, \
                           coalesce(h.ended_at, \
                                    greatest(h.started_at, least(p.heartbeat_at, $1))) AS ended_at \
                      FROM staff_presence_history h \
                      LEFT JOIN staff_presence p ON p.user_id = h.user_id \
                     WHERE h.status = 'online') \
         SELECT l.language::text AS language, \
                coalesce(sum(extract(epoch FROM least(coalesce(h.ended_at, w.hi), w.hi) \
                                              - greatest(h.started_at, w.lo))) / 3600.0, 0) \
                    ::double precision AS hours \
           FROM w, h, unnest(h.languages) AS l(language) \
          WHERE h.started_at < w.hi AND coalesce(h.ended_at, w.hi) > w.lo \
          GROUP BY 1 ORDER BY 1",
    )
    .bind(now)
    .bind(window_days)
    .fetch_all(&mut *conn)
    .await?;
    // Routed: a decision in `assign` or `offer` mode. Found nobody: the ticket's first decision,
    // in any mode (`off` records whether anyone who could take it was online too).
    let (tickets_routed, tickets_assigned, avg_s, p90_s, nobody): (
        i64,
        i64,
        Option<f64>,
        Option<f64>,
        i64,
    ) = sqlx::query_as(
        "WITH r AS ( \
             SELECT r.ticket_id, bool_or(r.mode <> 'off') AS routed, \
                    min(r.decided_at) FILTER (WHERE r.outcome = 'assigned') AS assigned_at, \
                    (array_agg(r.outcome ORDER BY r.id))[1] AS first_outcome \
               FROM ticket_routing r \
              WHERE r.decided_at >= $1 - make_interval(days => $2) \
              GROUP BY r.ticket_id), \
         o AS ( \
             SELECT ticket_id, min(answered_at) AS accepted_at FROM ticket_offers \
              WHERE status = 'accepted' GROUP BY ticket_id), \
         a AS ( \
             SELECT r.ticket_id, r.routed, r.first_outcome, \
                    extract(epoch FROM least(r.assigned_at, o.accepted_at) - t.created_at) AS s \
               FROM r JOIN support_tickets t ON t.id = r.ticket_id \
               LEFT JOIN o ON o.ticket_id = r.ticket_id) \
         SELECT count(*) FILTER (WHERE routed), count(s) FILTER (WHERE routed), \
                (avg(s) FILTER (WHERE routed))::double precision, \
                (percentile_cont(0.9) WITHIN GROUP (ORDER BY s) FILTER (WHERE routed))::double precision, \
                count(*) FILTER (WHERE first_outcome = 'nobody') \
           FROM a",
    )
    .bind(now)
    .bind(window_days)
    .fetch_one(&mut *conn)
    .await?;
    let (offers_declined, offers_expired): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'declined'),                 count(*) FILTER (WHERE status = 'expired')            FROM ticket_offers WHERE offered_at >= $1 - make_interval(days => $2)",
    )
    .bind(now)
    .bind(window_days)
    .fetch_one(&mut *conn)
    .await?;
    Ok(RoutingStats {
        staffed_hours,
        tickets_routed,
        tickets_assigned,
        avg_seconds_to_assignment: avg_s,
        p90_seconds_to_assignment: p90_s,
        offers_declined,
        offers_expired,
        tickets_found_nobody: nobody,
    })
}

/// Refreshes the materialized daily statistics (concurrently: readers are never blocked).
pub async fn refresh(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(conn)
        .await
        .map(|_| ())
}

/// Collects the statistics at `now` for the last `window_days` days (read-only; call
/// [`refresh`] first for up-to-date activity figures).
pub async fn collect(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    window_days: i32,
) -> sqlx::Result<Statistics> {
    let window_days = window_days.max(1);
    let since: NaiveDate = sqlx::query_scalar("SELECT service_local_date($1) - ($2 - 1)")
        .bind(now)
        .bind(window_days)
        .fetch_one(&mut *conn)
        .await?;
    let queue: Vec<QueueCount> = sqlx::query_as(
        "SELECT status, priority, category, ticket_count AS tickets FROM v_ticket_statistics \
          WHERE status IN (SELECT code FROM ticket_statuses WHERE is_open) \
          ORDER BY status, priority, category",
    )
    .fetch_all(&mut *conn)
    .await?;
    let open_tickets = queue.iter().map(|q| q.tickets).sum();
    let summary = |column: &'static str| {
        format!(
            "SELECT count(*) AS tickets, \
                    avg(extract(epoch FROM {column} - created_at))::double precision AS avg_seconds, \
                    percentile_cont(0.9) WITHIN GROUP \
                        (ORDER BY extract(epoch FROM {column} - created_at)) AS p90_seconds \
               FROM support_tickets WHERE {column} IS NOT NULL \
                AND service_local_date({column}) >= $1"
        )
    };
    let first_response = sqlx::query_as(AssertSqlSafe(summary("first_response_at")))
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
    let resolution = sqlx::query_as(AssertSqlSafe(summary("resolved_at")))
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
    let sla_compliance = sqlx::query_as(
        "SELECT date, target, met, breached, running, compliance FROM v_sla_compliance_daily \
          WHERE date >= $1 ORDER BY date, target",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let sla_breaches = sqlx::query_as(
        "SELECT date, target, breaches FROM v_sla_breaches_daily WHERE date >= $1 \
          ORDER BY date, target",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let times = sqlx::query_as(
        "SELECT date, metric, tickets, avg_seconds, p90_seconds FROM v_ticket_times_daily \
          WHERE date >= $1 ORDER BY date, metric",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let workload = sqlx::query_as(
        "SELECT email, name, staff_role, open_tickets, in_progress, pending, breached_open, \
                crisis_open, next_due_at \
           FROM v_agent_workload ORDER BY open_tickets DESC, email",
    )
    .fetch_all(&mut *conn)
    .await?;
    // v_decision_statistics with the out-of-scope count beside it.
    let decisions = sqlx::query_as(
        "SELECT service_local_date(created_at) AS date, decision, count(*) AS count, \
                avg(confidence) AS avg_confidence, \
                count(*) FILTER (WHERE reason_code = 'out_of_scope') AS out_of_scope \
           FROM decision_logs WHERE service_local_date(created_at) >= $1 \
          GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let activity = sqlx::query_as(
        "SELECT date, \
                coalesce(sum(count) FILTER (WHERE metric_type = 'conversations'), 0)::bigint \
                    AS conversations, \
                coalesce(sum(count) FILTER (WHERE metric_type = 'messages'), 0)::bigint \
                    AS messages \
           FROM mv_daily_statistics \
          WHERE date >= $1 AND metric_type IN ('conversations', 'messages') \
          GROUP BY date ORDER BY date",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let crisis = sqlx::query_as(
        "SELECT date, tickets, answered, first_response_breached, avg_first_response_seconds, \
                p90_first_response_seconds, max_first_response_seconds \
           FROM v_crisis_escalations_daily WHERE date >= $1 ORDER BY date",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    let routing = routing_stats(conn, now, window_days).await?;
    Ok(Statistics {
        generated_at: now,
        window_days,
        queue,
        open_tickets,
        first_response,
        resolution,
        sla_compliance,
        sla_breaches,
        times,
        workload,
        decisions,
        activity,
        crisis,
        routing,
    })
}
