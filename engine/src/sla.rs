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

/// The state of a running target from the working seconds left and the target: what a
/// countdown shows between two reads of the clock (the same rule as [`SlaClock`]'s states).
pub fn state_for_remaining(remaining_seconds: i64, target_seconds: i64) -> SlaState {
    state_of(
        (target_seconds - remaining_seconds) as f64,
        target_seconds as f64,
    )
}

/// The state of a target from the time used and the target (both in working seconds).
pub(crate) fn state_of(elapsed: f64, target: f64) -> SlaState {
    if elapsed >= target {
        SlaState::Breached
    } else if elapsed * 5.0 >= target * 4.0 {
        // 80%, compared without the rounding of 0.8 * target.
        SlaState::Warning
    } else {
        SlaState::Ok
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
    let before: Calendar = sqlx::query_as(
        "SELECT business_hours, timezone::text AS timezone, workday_start, workday_end, working_days \
         FROM sla_calendar WHERE id FOR UPDATE",
    )
    .fetch_one(&mut *tx)
    .await?;
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
            details: json!({ "before": before, "after": calendar }),
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
    let name = name.trim();
    if name.is_empty() || name.chars().count() > HOLIDAY_NAME_MAX_CHARS {
        return Err(SlaError::InvalidCalendar(format!(
            "a holiday needs a name of 1 to {HOLIDAY_NAME_MAX_CHARS} characters"
        )));
    }
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO sla_holidays (day, name) VALUES ($1, $2) \
         ON CONFLICT (day) DO UPDATE SET name = EXCLUDED.name",
    )
    .bind(day)
    .bind(name)
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
            details: json!({ "day": day, "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Longest holiday name.
pub const HOLIDAY_NAME_MAX_CHARS: usize = 100;

/// A day without working time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Holiday {
    /// The day, in the calendar's time zone.
    pub day: NaiveDate,
    /// What it is.
    pub name: String,
}

/// The holidays, in date order.
pub async fn holidays(conn: &mut PgConnection) -> sqlx::Result<Vec<Holiday>> {
    sqlx::query_as("SELECT day, name FROM sla_holidays ORDER BY day")
        .fetch_all(conn)
        .await
}

/// Removes a holiday (admin; audited `sla.holiday_remove`); a day that is not a holiday is
/// refused, naming the day.
pub async fn remove_holiday(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    day: NaiveDate,
) -> Result<Holiday, SlaError> {
    if let Some(actor) = by {
        staff::require(actor, StaffRole::Admin, "editing holidays")?;
    }
    let mut tx = conn.begin().await?;
    let removed: Option<Holiday> =
        sqlx::query_as("DELETE FROM sla_holidays WHERE day = $1 RETURNING day, name")
            .bind(day)
            .fetch_optional(&mut *tx)
            .await?;
    let removed =
        removed.ok_or_else(|| SlaError::InvalidCalendar(format!("{day} is not a holiday")))?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "sla.holiday_remove",
            resource_type: "sla_holiday",
            resource_id: None,
            details: json!({ "day": removed.day, "name": removed.name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Working days as typed: names or numbers (0 = Sunday), separated by commas, with ranges
/// (`sun-thu`, `0-4`, `mon,wed,fri`).
pub fn parse_working_days(text: &str) -> Result<Vec<i16>, SlaError> {
    let day = |t: &str| -> Result<i16, SlaError> {
        let t = t.trim().to_lowercase();
        if let Some(i) = DAY_NAMES
            .iter()
            .position(|d| t.starts_with(d) && t.len() >= 3)
        {
            return Ok(i as i16);
        }
        t.parse::<i16>()
            .ok()
            .filter(|n| (0..=6).contains(n))
            .ok_or_else(|| {
                SlaError::InvalidCalendar(format!(
                    "`{t}` is not a day (sun, mon, ... sat, or 0 = Sunday to 6 = Saturday)"
                ))
            })
    };
    let mut days = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days.push(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days.push(day(part)?),
        }
    }
    days.sort_unstable();
    days.dedup();
    if days.is_empty() {
        return Err(SlaError::InvalidCalendar("no working day given".into()));
    }
    Ok(days)
}

/// Working days as [`parse_working_days`] reads them: `sun,mon,tue`.
pub fn working_days_text(days: &[i16]) -> String {
    days.iter()
        .filter_map(|d| DAY_NAMES.get(usize::try_from(*d).ok()?))
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

/// A working day's hours as typed: `08:00-17:00`.
pub fn parse_hours(text: &str) -> Result<(NaiveTime, NaiveTime), SlaError> {
    let bad = || {
        SlaError::InvalidCalendar(format!(
            "hours must read like 08:00-17:00 (start before end), not `{}`",
            text.trim()
        ))
    };
    let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
    let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
    let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
    if start >= end {
        return Err(bad());
    }
    Ok((start, end))
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

/// When the team can next answer, by the business-hours calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TeamReturn {
    /// Around the clock, or within the working hours now: as soon as someone is back online.
    WhenBack,
    /// Outside the working hours: the next opening, in the calendar's time zone.
    At {
        /// The opening's local date and time.
        local: chrono::NaiveDateTime,
        /// The calendar's IANA time zone.
        timezone: String,
    },
}

/// When the team can next answer after `now`: the next moment of working time under the
/// calendar in force (the same arithmetic as the due dates), or [`TeamReturn::WhenBack`] when
/// that moment is now.
pub async fn team_return(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<TeamReturn> {
    // One working millisecond after now, less that millisecond: the first working moment.
    let (opening, local, timezone): (DateTime<Utc>, chrono::NaiveDateTime, String) =
        sqlx::query_as(
            "SELECT o, o AT TIME ZONE c.timezone, c.timezone::text \
               FROM (SELECT sla_add_working_seconds($1, 0.001) - interval '1 millisecond' AS o) s, \
                    sla_calendar c WHERE c.id",
        )
        .bind(now)
        .fetch_one(conn)
        .await?;
    // Within the hours (or around the clock) the opening is now.
    if opening - now < chrono::Duration::seconds(60) {
        return Ok(TeamReturn::WhenBack);
    }
    Ok(TeamReturn::At { local, timezone })
}
