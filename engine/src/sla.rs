//! SLA clocks: per-priority targets, pause and resume, the business-hours calendar, the time
//! left per target, and the breach sweeper.
//!
//! Every ticket has two targets from its priority (`ticket_priorities`): a first response (the
//! first public staff comment) and a resolution. A ticket's clock runs while its status is
//! `open` or `in_progress` and stands still otherwise; the paused working time pushes both
//! deadlines back. At 80% of a target the state is `warning`, at 100% `breached`.
//!
//! The calendar arithmetic lives in one place, the database (`sla_add_working_seconds`,
//! `sla_working_seconds`, `ticket_sla_at` in `migrations/20261122100001_tickets_sla.sql`),
//! because the due dates of a new ticket come from a trigger and must agree with what the
//! engine computes. This module drives it and takes the instant `now` as a parameter, so that
//! callers (and tests) decide what time it is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
// AssertSqlSafe: the only text spliced into SQL here is constant column lists, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::staff::{self, Actor, StaffError, StaffRole};

/// Why an SLA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    /// Not allowed for the actor's role.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// The calendar settings are inconsistent.
    #[error("invalid business-hours calendar: {0}")]
    InvalidCalendar(String),
    /// No priority has this code.
    #[error("unknown priority `{0}` (expected low, medium, high or urgent)")]
    UnknownPriority(String),
    /// The targets are not positive, or the first response is not before the resolution.
    #[error("invalid SLA targets: {0}")]
    InvalidTargets(String),
    /// No ticket has this id.
    #[error("no ticket with id {0}")]
    TicketNotFound(Uuid),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The two SLA targets of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The first public staff comment.
    FirstResponse,
    /// The ticket resolved.
    Resolution,
}

impl Target {
    /// The value stored in `sla_breach_events.target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::Resolution => "resolution",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state of one target, ordered from good to bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// Below 80% of the target, or met in time.
    Ok,
    /// From 80% of the target.
    Warning,
    /// The target was missed.
    Breached,
}

impl FromStr for SlaState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(SlaState::Ok),
            "warning" => Ok(SlaState::Warning),
            "breached" => Ok(SlaState::Breached),
            other => Err(format!("unknown SLA state {other}")),
        }
    }
}

impl fmt::Display for SlaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            SlaState::Ok => "ok",
            SlaState::Warning => "warning",
            SlaState::Breached => "breached",
        })
    }
}

/// A ticket's SLA clock at one instant: what the console's countdowns show.
///
/// Deadlines are the effective ones (the nominal target pushed back by paused time). Remaining
/// seconds are working seconds, negative once late, frozen while the clock stands still, and
/// absent once the target is met or the ticket is no longer open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SlaClock {
    /// Effective first-response deadline.
    pub first_response_due_at: Option<DateTime<Utc>>,
    /// The first-response target in working seconds.
    pub first_response_target_seconds: Option<i64>,
    /// Working seconds left to respond.
    pub first_response_remaining_seconds: Option<i64>,
    /// `ok`, `warning` or `breached`.
    #[sqlx(try_from = "String")]
    pub first_response_state: SlaStateText,
    /// Effective resolution deadline.
    pub resolution_due_at: Option<DateTime<Utc>>,
    /// The resolution target in working seconds.
    pub resolution_target_seconds: Option<i64>,
    /// Working seconds left to resolve.
    pub resolution_remaining_seconds: Option<i64>,
    /// `ok`, `warning` or `breached`.
    #[sqlx(try_from = "String")]
    pub resolution_state: SlaStateText,
    /// The worse of the two states.
    #[sqlx(try_from = "String")]
    pub sla_state: SlaStateText,
    /// True while the clock stands still (pending, resolved or closed).
    pub sla_paused: bool,
}

/// An [`SlaState`] read from SQL (serialized as its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SlaStateText(pub SlaState);

impl TryFrom<String> for SlaStateText {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(SlaStateText)
    }
}

/// The SQL select-list of an [`SlaClock`] over `ticket_sla_at(..) AS s`.
pub(crate) const CLOCK_COLUMNS: &str = "s.first_response_deadline_at AS first_response_due_at, \
     s.first_response_target_seconds, s.first_response_remaining_seconds, \
     s.first_response_state, s.resolution_deadline_at AS resolution_due_at, \
     s.resolution_target_seconds, s.resolution_remaining_seconds, s.resolution_state, \
     s.sla_state, s.sla_paused";

/// What [`SlaClock`] is computed from, read straight off `support_tickets` (alias `t`) with the
/// instant and the calendar's mode in `n` ([`clock_inputs`]): the working-time spans come from SQL (the calendar's one
/// implementation), the states from [`RawClock::clock`]. List queries use this instead of
/// `ticket_sla_at`, whose plan costs milliseconds to build; both follow the same rules and the
/// tests compare them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RawClock {
    status: String,
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    sla_paused_at: Option<DateTime<Utc>>,
    first_response_breached: bool,
    resolution_breached: bool,
    first_response_deadline_at: Option<DateTime<Utc>>,
    resolution_deadline_at: Option<DateTime<Utc>>,
    clock_fr_target: Option<f64>,
    clock_res_target: Option<f64>,
    clock_fr_left: Option<f64>,
    clock_res_left: Option<f64>,
}

/// A one-row relation `n` with the instant (`n.at`, from the given placeholder) and the calendar
/// mode (`n.bh`). A scalar subquery rather than a join: the planner then knows it is one row (an
/// unanalyzed `sla_calendar` is estimated at hundreds, which inflated plan costs past the JIT
/// threshold and cost a compilation per query).
pub(crate) fn clock_inputs(placeholder: &str) -> String {
    format!(
        "(SELECT {placeholder}::timestamptz AS at, \
                 (SELECT business_hours FROM sla_calendar WHERE id) AS bh) n"
    )
}

/// The select-list of a [`RawClock`] (needs `n` from [`clock_inputs`]).
pub(crate) const RAW_CLOCK_COLUMNS: &str = "t.status, t.first_response_at, t.resolved_at, \
     t.sla_paused_at, t.first_response_breached, t.resolution_breached, \
     t.first_response_deadline_at, t.resolution_deadline_at, \
     sla_seconds_between(n.bh, t.created_at, t.first_response_due_at) AS clock_fr_target, \
     sla_seconds_between(n.bh, t.created_at, t.resolution_due_at) AS clock_res_target, \
     sla_seconds_between(n.bh, coalesce(t.sla_paused_at, n.at), \
                         t.first_response_deadline_at) AS clock_fr_left, \
     sla_seconds_between(n.bh, coalesce(t.sla_paused_at, n.at), \
                         t.resolution_deadline_at) AS clock_res_left";

/// The state of a running target from the working seconds left and the target: what a
/// countdown shows between two reads of the clock (the same rule as [`SlaClock`]'s states).
pub fn state_for_remaining(remaining_seconds: i64, target_seconds: i64) -> SlaState {
    state_of(
        (target_seconds - remaining_seconds) as f64,
        target_seconds as f64,
    )
}

/// The state of a target from the time used and the target (both in working seconds).
fn state_of(elapsed: f64, target: f64) -> SlaState {
    if elapsed >= target {
        SlaState::Breached
    } else if elapsed * 5.0 >= target * 4.0 {
        // 80%, compared without the rounding of 0.8 * target.
        SlaState::Warning
    } else {
        SlaState::Ok
    }
}

impl RawClock {
    /// The clock, by the rules of `ticket_sla_at` (see the migration).
    pub(crate) fn clock(&self) -> SlaClock {
        let is_open = matches!(self.status.as_str(), "open" | "in_progress" | "pending");
        let fr_state = if self.first_response_breached {
            SlaState::Breached
        } else if let Some(answered) = self.first_response_at {
            // Answered while the clock stood still counts at the pause start.
            let at = self.sla_paused_at.map_or(answered, |p| answered.min(p));
            match self.first_response_deadline_at {
                Some(deadline) if at > deadline => SlaState::Breached,
                _ => SlaState::Ok,
            }
        } else {
            match (self.clock_fr_target, self.clock_fr_left) {
                (Some(target), Some(left)) => state_of(target - left, target),
                _ => SlaState::Ok,
            }
        };
        let res_state = if self.resolution_breached {
            SlaState::Breached
        } else if let (Some(resolved), false) = (self.resolved_at, is_open) {
            match self.resolution_deadline_at {
                Some(deadline) if resolved > deadline => SlaState::Breached,
                _ => SlaState::Ok,
            }
        } else {
            match (self.clock_res_target, self.clock_res_left) {
                (Some(target), Some(left)) => state_of(target - left, target),
                _ => SlaState::Ok,
            }
        };
        let worst = if fr_state == SlaState::Breached || res_state == SlaState::Breached {
            SlaState::Breached
        } else if fr_state == SlaState::Warning || res_state == SlaState::Warning {
            SlaState::Warning
        } else {
            SlaState::Ok
        };
        let floor = |v: Option<f64>| v.map(|v| v.floor() as i64);
        SlaClock {
            first_response_due_at: self.first_response_deadline_at,
            first_response_target_seconds: floor(self.clock_fr_target),
            first_response_remaining_seconds: if self.first_response_at.is_none() && is_open {
                floor(self.clock_fr_left)
            } else {
                None
            },
            first_response_state: SlaStateText(fr_state),
            resolution_due_at: self.resolution_deadline_at,
            resolution_target_seconds: floor(self.clock_res_target),
            resolution_remaining_seconds: if is_open {
                floor(self.clock_res_left)
            } else {
                None
            },
            resolution_state: SlaStateText(res_state),
            sla_state: SlaStateText(worst),
            sla_paused: self.sla_paused_at.is_some(),
        }
    }
}

/// A ticket's SLA clock at `now`: the time left and state per target, in one call.
pub async fn clock(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    now: DateTime<Utc>,
) -> Result<SlaClock, SlaError> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CLOCK_COLUMNS} FROM ticket_sla_at($2) s WHERE s.id = $1"
    )))
    .bind(ticket_id)
    .bind(now)
    .fetch_optional(conn)
    .await?
    .ok_or(SlaError::TicketNotFound(ticket_id))
}

/// True when the clock of a ticket in this status runs.
pub fn clock_runs(status: &str) -> bool {
    matches!(status, "open" | "in_progress")
}

/// Stops the clock at `at` (no-op when it already stands still). Call [`record_breaches`]
/// first: a target missed before the stop must be recorded, because the sweeper only looks at
/// running clocks.
pub async fn pause(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE support_tickets SET sla_paused_at = $2 WHERE id = $1 AND sla_paused_at IS NULL",
    )
    .bind(ticket_id)
    .bind(at)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Starts the clock again at `at`: the working seconds it stood still are added to
/// `sla_paused_seconds`, which pushes both deadlines back (trigger). Returns the seconds added,
/// or `None` when the clock was running.
pub async fn resume(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "WITH old AS (SELECT id, sla_paused_at FROM support_tickets WHERE id = $1 FOR UPDATE) \
         UPDATE support_tickets t \
            SET sla_paused_seconds = t.sla_paused_seconds \
                    + GREATEST(0, floor(sla_working_seconds(old.sla_paused_at, $2)))::int, \
                sla_paused_at = NULL \
           FROM old \
          WHERE t.id = old.id AND old.sla_paused_at IS NOT NULL \
         RETURNING GREATEST(0, floor(sla_working_seconds(old.sla_paused_at, $2)))::int",
    )
    .bind(ticket_id)
    .bind(at)
    .fetch_optional(conn)
    .await
}

/// Records, once, every target of one ticket whose deadline passed by `now` (or by the moment
/// its clock stopped): the breach flag and a `sla_breach_events` row. Returns the targets newly
/// recorded. Used when a clock stops or a first response is written.
pub async fn record_breaches(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Target>> {
    let mut recorded = Vec::new();
    for (target, sql) in [
        (Target::FirstResponse, RECORD_ONE_FIRST_RESPONSE),
        (Target::Resolution, RECORD_ONE_RESOLUTION),
    ] {
        let n: Option<Uuid> = sqlx::query_scalar(sql)
            .bind(now)
            .bind(ticket_id)
            .fetch_optional(&mut *conn)
            .await?;
        if n.is_some() {
            recorded.push(target);
        }
    }
    Ok(recorded)
}

const RECORD_ONE_FIRST_RESPONSE: &str = "\
WITH due AS (
    SELECT id, first_response_deadline_at AS due_at FROM support_tickets
     WHERE id = $2 AND first_response_at IS NULL AND NOT first_response_breached
       AND first_response_deadline_at <= coalesce(sla_paused_at, $1)
       FOR UPDATE
), flagged AS (
    UPDATE support_tickets t SET first_response_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'first_response', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING
RETURNING ticket_id";

const RECORD_ONE_RESOLUTION: &str = "\
WITH due AS (
    SELECT id, resolution_deadline_at AS due_at FROM support_tickets
     WHERE id = $2 AND NOT resolution_breached
       AND resolution_deadline_at <= coalesce(sla_paused_at, $1)
       FOR UPDATE
), flagged AS (
    UPDATE support_tickets t SET resolution_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'resolution', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING
RETURNING ticket_id";

// The sweeper's statements. The WHERE clauses repeat the partial indexes' predicates
// (idx_support_tickets_sweep_*) so that each batch is a range scan of due, running, unbreached
// clocks. SKIP LOCKED lets several sweepers share the work; a row another sweeper has just
// flagged fails `NOT ..._breached` when re-checked under READ COMMITTED, and the UNIQUE
// (ticket_id, target) of the events makes a duplicate insert a no-op: exactly once.
const SWEEP_FIRST_RESPONSE: &str = "\
WITH due AS (
    SELECT id, first_response_deadline_at AS due_at FROM support_tickets
     WHERE first_response_at IS NULL AND NOT first_response_breached AND sla_paused_at IS NULL
       AND status IN ('open', 'in_progress') AND first_response_deadline_at <= $1
     ORDER BY first_response_deadline_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), flagged AS (
    UPDATE support_tickets t SET first_response_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'first_response', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING";

const SWEEP_RESOLUTION: &str = "\
WITH due AS (
    SELECT id, resolution_deadline_at AS due_at FROM support_tickets
     WHERE NOT resolution_breached AND sla_paused_at IS NULL
       AND status IN ('open', 'in_progress') AND resolution_deadline_at <= $1
     ORDER BY resolution_deadline_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), flagged AS (
    UPDATE support_tickets t SET resolution_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'resolution', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING";

/// Tickets flagged per sweeper transaction: keeps row locks and transactions short.
pub const SWEEP_BATCH: i64 = 20_000;

/// What one sweeper pass recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// First-response breaches newly recorded.
    pub first_response_breaches: u64,
    /// Resolution breaches newly recorded.
    pub resolution_breaches: u64,
}

impl SweepReport {
    /// Both targets together.
    pub fn total(&self) -> u64 {
        self.first_response_breaches + self.resolution_breaches
    }
}

/// One pass of the breach sweeper at `now`: every running clock past a deadline gets its breach
/// flag and event, exactly once, even with several sweepers running at the same time (in this
/// process or others). Each batch is its own transaction with one notice when it recorded any.
pub async fn sweep(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<SweepReport> {
    let mut report = SweepReport::default();
    for (target, sql) in [
        (Target::FirstResponse, SWEEP_FIRST_RESPONSE),
        (Target::Resolution, SWEEP_RESOLUTION),
    ] {
        loop {
            let mut tx = conn.begin().await?;
            // A batch is a short index range scan; JIT compilation would cost more than it.
            sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
            let recorded = sqlx::query(sql)
                .bind(now)
                .bind(SWEEP_BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if recorded > 0 {
                events::notify(&mut tx, &ChangeNotice::new(ChangeKind::TicketChanged)).await?;
            }
            tx.commit().await?;
            match target {
                Target::FirstResponse => report.first_response_breaches += recorded,
                Target::Resolution => report.resolution_breaches += recorded,
            }
            // A short batch means the range is exhausted (rows skipped because another sweeper
            // holds them are that sweeper's to record).
            if (recorded as i64) < SWEEP_BATCH {
                break;
            }
        }
    }
    Ok(report)
}

/// The user wrote in `conversation_id`: its tickets pending on the user go back to
/// `in_progress` and their clocks resume at `now`. Returns the tickets changed.
///
/// Meant to be called by the conversation engine inside the transaction that stores the user's
/// message; it writes one audit row per ticket but sends no notice, so that the caller's one
/// notice per transaction names [`ChangeKind::TicketChanged`] too when this returns any ticket.
pub async fn on_user_message(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    let pending: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM support_tickets WHERE conversation_id = $1 AND status = 'pending' FOR UPDATE",
    )
    .bind(conversation_id)
    .fetch_all(&mut *conn)
    .await?;
    for id in &pending {
        let added = resume(conn, *id, now).await?;
        sqlx::query("UPDATE support_tickets SET status = 'in_progress' WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        audit::record(
            conn,
            &AuditEntry {
                actor: None,
                action: "ticket.resume",
                resource_type: "support_ticket",
                resource_id: Some(*id),
                details: json!({
                    "from": "pending",
                    "to": "in_progress",
                    "reason": "user_message",
                    "paused_seconds_added": added,
                }),
            },
        )
        .await?;
    }
    Ok(pending)
}

/// SLA targets of one priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PriorityTargets {
    /// `low`, `medium`, `high` or `urgent`.
    pub code: String,
    /// Higher is more urgent.
    pub level: i32,
    /// First-response target.
    pub first_response_minutes: i32,
    /// Resolution target.
    pub resolution_minutes: i32,
}

/// The targets of every priority, most urgent first.
pub async fn targets(conn: &mut PgConnection) -> sqlx::Result<Vec<PriorityTargets>> {
    sqlx::query_as(
        "SELECT code, level, first_response_minutes, resolution_minutes FROM ticket_priorities \
         ORDER BY level DESC",
    )
    .fetch_all(conn)
    .await
}

/// Edits a priority's targets (admin). They apply to tickets created or re-prioritized later;
/// existing deadlines are a promise already made and stay.
pub async fn set_targets(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    priority: &str,
    first_response_minutes: i32,
    resolution_minutes: i32,
) -> Result<PriorityTargets, SlaError> {
    if let Some(actor) = by {
        staff::require(actor, StaffRole::Admin, "editing SLA targets")?;
    }
    if first_response_minutes <= 0 || resolution_minutes <= 0 {
        return Err(SlaError::InvalidTargets("targets must be positive".into()));
    }
    if first_response_minutes > resolution_minutes {
        return Err(SlaError::InvalidTargets(
            "the first response cannot be due after the resolution".into(),
        ));
    }
    let mut tx = conn.begin().await?;
    let before: Option<PriorityTargets> = sqlx::query_as(
        "SELECT code, level, first_response_minutes, resolution_minutes FROM ticket_priorities \
         WHERE code = $1 FOR UPDATE",
    )
    .bind(priority)
    .fetch_optional(&mut *tx)
    .await?;
    let before = before.ok_or_else(|| SlaError::UnknownPriority(priority.to_string()))?;
    // sla_hours must stay ceil(resolution_minutes / 60) (chk_ticket_priorities_sla_hours).
    let after: PriorityTargets = sqlx::query_as(
        "UPDATE ticket_priorities SET first_response_minutes = $2, resolution_minutes = $3, \
                sla_hours = ceil($3 / 60.0)::int \
          WHERE code = $1 RETURNING code, level, first_response_minutes, resolution_minutes",
    )
    .bind(priority)
    .bind(first_response_minutes)
    .bind(resolution_minutes)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "sla.targets",
            resource_type: "ticket_priority",
            resource_id: None,
            details: json!({ "priority": priority, "before": before, "after": after }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// The business-hours calendar. Off by default: SLA time runs around the clock.
///
/// When on, only `workday_start..workday_end` of the working days counts, in `timezone`,
/// minus the holidays. Defaults: Africa/Algiers, Sunday to Thursday, 08:00 to 17:00, so a
/// ticket opened on Thursday at 16:00 with a 4-hour target is due on Sunday at 11:00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Calendar {
    /// Count only working time.
    pub business_hours: bool,
    /// IANA time zone of the working hours.
    pub timezone: String,
    /// Start of the working day.
    pub workday_start: NaiveTime,
    /// End of the working day.
    pub workday_end: NaiveTime,
    /// Working days, 0 = Sunday ... 6 = Saturday.
    pub working_days: Vec<i16>,
}

/// The calendar in force.
pub async fn calendar(conn: &mut PgConnection) -> sqlx::Result<Calendar> {
    sqlx::query_as(
        "SELECT business_hours, timezone::text AS timezone, workday_start, workday_end, working_days \
         FROM sla_calendar WHERE id",
    )
    .fetch_one(conn)
    .await
}

/// Replaces the calendar (admin). New tickets' due dates follow it; open tickets keep theirs.
pub async fn set_calendar(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    calendar: &Calendar,
) -> Result<(), SlaError> {
    if let Some(actor) = by {
        staff::require(actor, StaffRole::Admin, "editing the SLA calendar")?;
    }
    let mut tx = conn.begin().await?;
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
            .bind(&calendar.timezone)
            .fetch_one(&mut *tx)
            .await?;
    if !known {
        return Err(SlaError::InvalidCalendar(format!(
            "unknown time zone {}",
            calendar.timezone
        )));
    }
    sqlx::query(
        "UPDATE sla_calendar SET business_hours = $1, timezone = $2, workday_start = $3, \
                workday_end = $4, working_days = $5 WHERE id",
    )
    .bind(calendar.business_hours)
    .bind(&calendar.timezone)
    .bind(calendar.workday_start)
    .bind(calendar.workday_end)
    .bind(&calendar.working_days)
    .execute(&mut *tx)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("chk_sla_calendar_window") => {
            SlaError::InvalidCalendar("the working day must end after it starts".into())
        }
        Some("chk_sla_calendar_working_days") => SlaError::InvalidCalendar(
            "working days are 0 (Sunday) to 6 (Saturday), at least one".into(),
        ),
        Some("chk_timezone_name_format") => {
            SlaError::InvalidCalendar(format!("unknown time zone {}", calendar.timezone))
        }
        _ => SlaError::Sql(e),
    })?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "sla.calendar",
            resource_type: "sla_calendar",
            resource_id: None,
            details: serde_json::to_value(calendar).unwrap_or_default(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Adds (or renames) a holiday: no working time that day (admin).
pub async fn add_holiday(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    day: NaiveDate,
    name: &str,
) -> Result<(), SlaError> {
    if let Some(actor) = by {
        staff::require(actor, StaffRole::Admin, "editing holidays")?;
    }
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO sla_holidays (day, name) VALUES ($1, $2) \
         ON CONFLICT (day) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(day)
    .bind(name.trim())
    .execute(&mut *tx)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("chk_sla_holidays_name") => SlaError::InvalidCalendar("a holiday needs a name".into()),
        _ => SlaError::Sql(e),
    })?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "sla.holiday_add",
            resource_type: "sla_holiday",
            resource_id: None,
            details: json!({ "day": day, "name": name.trim() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `from` plus `seconds` of working time under the calendar in force.
pub async fn add_working_seconds(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    seconds: f64,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT sla_add_working_seconds($1, $2)")
        .bind(from)
        .bind(seconds)
        .fetch_one(conn)
        .await
}

/// Working seconds from `from` to `to` under the calendar in force (negative when `to` is
/// earlier).
pub async fn working_seconds(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<f64> {
    sqlx::query_scalar("SELECT sla_working_seconds($1, $2)")
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await
}
