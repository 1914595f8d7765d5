//! Who is on shift: each staff member's routing profile (languages, tier, capacity, on-call)
//! and presence (online, away, offline) with its heartbeat and history.
//!
//! Owns `staff_profiles`, `staff_presence` and `staff_presence_history`. A presence counts only
//! while its heartbeat is fresh: a console that was killed stops beating and its member counts
//! as offline after the timeout, before the sweeper records it (see [`crate::roster`]). The
//! changes that reach into tickets (going offline hands back unanswered tickets) are composed
//! in [`crate::roster`]; routing itself is [`crate::routing`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::lang::Lang;
use crate::staff::{self, Actor, StaffError, StaffRole};
use crate::tickets::Tier;

/// Most open tickets a profile may take at once.
pub const MAX_CAPACITY: i32 = 100;
/// Capacity of a member whose profile was never set.
pub const DEFAULT_CAPACITY: i32 = 5;

/// Why a profile or presence change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The account or the actor's rights.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// A value that is not valid (names the value and what is expected).
    #[error("{0}")]
    Invalid(String),
    /// A database error.
    #[error(transparent)]
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for PresenceError {
    fn from(e: sqlx::Error) -> Self {
        match violated_constraint(&e) {
            Some("chk_staff_profiles_capacity") => PresenceError::Invalid(format!(
                "capacity must be from 0 to {MAX_CAPACITY} open tickets"
            )),
            Some("chk_staff_profiles_languages") => {
                PresenceError::Invalid("languages are ar, fr and en".into())
            }
            _ => PresenceError::Sql(e),
        }
    }
}

/// A staff member's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Signed in and working: routing may give them tickets.
    Online,
    /// Signed in but not at the console (idle, or set by themselves): not routed to.
    Away,
    /// Not signed in, or the console's heartbeat stopped.
    Offline,
}

impl Presence {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Presence {
    type Err = PresenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "online" => Ok(Presence::Online),
            "away" => Ok(Presence::Away),
            "offline" => Ok(Presence::Offline),
            other => Err(PresenceError::Invalid(format!(
                "unknown presence `{other}` (expected online, away or offline)"
            ))),
        }
    }
}

/// Who or what changed a presence (kept in the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceCause {
    /// The member, at the CLI.
    SelfSet,
    /// An admin, for the member.
    Admin,
    /// The console: sign-in, quit, or back from idle.
    Console,
    /// The console, after the configured idle time.
    Idle,
    /// The heartbeat stopped for longer than the timeout.
    HeartbeatExpired,
}

impl PresenceCause {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceCause::SelfSet => "self",
            PresenceCause::Admin => "admin",
            PresenceCause::Console => "console",
            PresenceCause::Idle => "idle",
            PresenceCause::HeartbeatExpired => "heartbeat_expired",
        }
    }
}

/// Parses a list of languages such as `ar,fr,en` (Darija is `ar`; `darija` and `dz` are taken
/// as `ar`). Repeats collapse; an empty list is refused (a member who speaks no language could
/// never be routed to: set the capacity to 0 for that).
pub fn parse_languages(list: &str) -> Result<Vec<Lang>, PresenceError> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let lang = match part.to_ascii_lowercase().as_str() {
            "ar" | "darija" | "dz" => Lang::Ar,
            "fr" => Lang::Fr,
            "en" => Lang::En,
            other => {
                return Err(PresenceError::Invalid(format!(
                    "unknown language `{other}` (expected ar, fr or en; Darija counts as ar)"
                )));
            }
        };
        if !out.contains(&lang) {
            out.push(lang);
        }
    }
    if out.is_empty() {
        return Err(PresenceError::Invalid(
            "no language given (expected a list such as ar,fr,en)".into(),
        ));
    }
    Ok(out)
}

/// Parses a tier as the CLI spells it.
pub fn parse_tier(s: &str) -> Result<Tier, PresenceError> {
    s.parse::<Tier>().map_err(|_| {
        PresenceError::Invalid(format!(
            "unknown tier `{s}` (expected T1, T2, T3 or manager)"
        ))
    })
}

/// Parses an on-call flag (`true` or `false`).
pub fn parse_on_call(s: &str) -> Result<bool, PresenceError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(PresenceError::Invalid(format!(
            "on-call must be true or false, not `{other}`"
        ))),
    }
}

/// A member's routing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffProfile {
    /// `users.id`.
    pub user_id: Uuid,
    /// Their e-mail.
    pub email: String,
    /// Languages they answer in.
    pub languages: Vec<Lang>,
    /// Their tier: they take tickets at this tier and below.
    pub tier: Tier,
    /// Open tickets routing may give them at once.
    pub capacity: i32,
    /// Alerted when a ticket finds nobody online.
    pub on_call: bool,
}

/// What `staff set` changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    /// New languages.
    pub languages: Option<Vec<Lang>>,
    /// New tier.
    pub tier: Option<Tier>,
    /// New capacity.
    pub capacity: Option<i32>,
    /// New on-call flag.
    pub on_call: Option<bool>,
}

fn langs_text(langs: &[Lang]) -> Vec<String> {
    langs.iter().map(|l| l.code().to_string()).collect()
}

fn langs_parse(codes: &[String]) -> Vec<Lang> {
    codes.iter().filter_map(|c| c.parse().ok()).collect()
}

/// The profile's columns with the defaults of a member who has none: the language of their
/// account's locale, T1, [`DEFAULT_CAPACITY`], not on call.
const PROFILE_SELECT: &str = "SELECT u.id, u.email::text, \
        coalesce(p.languages::text[], ARRAY[left(u.locale, 2)]::text[]), \
        coalesce(p.tier, 'T1')::text, coalesce(p.capacity, 5), coalesce(p.on_call, false) \
   FROM users u LEFT JOIN staff_profiles p ON p.user_id = u.id";

type ProfileRow = (Uuid, String, Vec<String>, String, i32, bool);

fn profile_from(r: ProfileRow) -> StaffProfile {
    StaffProfile {
        user_id: r.0,
        email: r.1,
        languages: langs_parse(&r.2),
        tier: r.3.parse().unwrap_or(Tier::T1),
        capacity: r.4,
        on_call: r.5,
    }
}

/// A member's profile (the defaults when it was never set).
pub async fn profile(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<StaffProfile, PresenceError> {
    let row: Option<ProfileRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} WHERE u.id = $1 AND u.staff_role IS NOT NULL"
    )))
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    row.map(profile_from)
        .ok_or_else(|| StaffError::NotStaff(user_id.to_string()).into())
}

/// Sets a member's profile (admins only; audited as `staff.profile` with the values before and
/// after; announced as a staff change).
pub async fn set_profile(
    conn: &mut PgConnection,
    by: &Actor,
    email: &str,
    change: &ProfileChange,
) -> Result<StaffProfile, PresenceError> {
    staff::require(by, StaffRole::Admin, "setting staff profiles")?;
    if change
        .capacity
        .is_some_and(|c| !(0..=MAX_CAPACITY).contains(&c))
    {
        return Err(PresenceError::Invalid(format!(
            "capacity must be from 0 to {MAX_CAPACITY} open tickets, not {}",
            change.capacity.unwrap_or_default()
        )));
    }
    if change.languages.as_ref().is_some_and(Vec::is_empty) {
        return Err(PresenceError::Invalid("no language given".into()));
    }
    let member = staff::actor_by_email(conn, email).await?;
    let mut tx = conn.begin().await?;
    let before = profile(&mut tx, member.id).await?;
    let after = StaffProfile {
        languages: change.languages.clone().unwrap_or(before.languages.clone()),
        tier: change.tier.unwrap_or(before.tier),
        capacity: change.capacity.unwrap_or(before.capacity),
        on_call: change.on_call.unwrap_or(before.on_call),
        ..before.clone()
    };
    sqlx::query(
        "INSERT INTO staff_profiles (user_id, languages, tier, capacity, on_call) \
         VALUES ($1, $2::varchar(2)[], $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET languages = EXCLUDED.languages, tier = EXCLUDED.tier, \
             capacity = EXCLUDED.capacity, on_call = EXCLUDED.on_call, updated_at = now()",
    )
    .bind(member.id)
    .bind(langs_text(&after.languages))
    .bind(after.tier.as_str())
    .bind(after.capacity)
    .bind(after.on_call)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(by.id),
            action: "staff.profile",
            resource_type: "user",
            resource_id: Some(member.id),
            details: json!({ "email": member.email, "before": before, "after": after }),
        },
    )
    .await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::Staff).user(member.id),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// A presence change that happened (the previous status, for the caller's audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceChange {
    /// The status before (offline when there was none).
    pub from: Presence,
    /// The status now.
    pub to: Presence,
}

/// Sets a member's presence inside the caller's transaction, under the presence row's lock
/// (which routing takes too, so a member never goes offline in the middle of being given a
/// ticket): the current row, the history (the open period closed, a new one opened with the
/// profile's languages) and the heartbeat. Setting the same status only refreshes the
/// heartbeat and returns `None`. An expired heartbeat counts as offline, so a console coming
/// back after the timeout is a change.
pub async fn set(
    tx: &mut PgConnection,
    user_id: Uuid,
    to: Presence,
    cause: PresenceCause,
    timeout_seconds: i64,
    now: DateTime<Utc>,
) -> Result<Option<PresenceChange>, PresenceError> {
    sqlx::query(
        "INSERT INTO staff_presence (user_id, status, since, heartbeat_at) \
         VALUES ($1, 'offline', $2, $2) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let (stored, heartbeat_at): (String, DateTime<Utc>) = sqlx::query_as(
        "SELECT status, heartbeat_at FROM staff_presence WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    let stored: Presence = stored.parse()?;
    let expired = heartbeat_at < now - chrono::Duration::seconds(timeout_seconds);
    // An expired presence counts as offline: asking for the stored status again is a change
    // (a console back after the timeout), except for offline itself.
    if stored == to && (to == Presence::Offline || !expired) {
        sqlx::query("UPDATE staff_presence SET heartbeat_at = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        return Ok(None);
    }
    let from = if stored == to {
        Presence::Offline
    } else {
        stored
    };
    sqlx::query(
        "UPDATE staff_presence SET status = $2, since = $3, heartbeat_at = $3 WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(to.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // A period that expired ends when its heartbeat stopped, not when it was noticed.
    let ended_at = if expired && stored != Presence::Offline {
        heartbeat_at
    } else {
        now
    };
    sqlx::query(
        "UPDATE staff_presence_history SET ended_at = greatest(started_at, $2) \
          WHERE user_id = $1 AND ended_at IS NULL",
    )
    .bind(user_id)
    .bind(ended_at)
    .execute(&mut *tx)
    .await?;
    let languages = profile(tx, user_id).await?.languages;
    // Recorded offline after an expiry: offline since the heartbeat stopped, no gap.
    let started_at = if to == Presence::Offline {
        ended_at
    } else {
        now
    };
    sqlx::query(
        "INSERT INTO staff_presence_history (user_id, status, languages, started_at, cause) \
         VALUES ($1, $2, $3::varchar(2)[], $4, $5)",
    )
    .bind(user_id)
    .bind(to.as_str())
    .bind(langs_text(&languages))
    .bind(started_at)
    .bind(cause.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(Some(PresenceChange { from, to }))
}

/// Refreshes a member's heartbeat; returns the presence as it now counts (an expired or
/// offline presence is not revived: the console sets it again with [`set`]).
pub async fn heartbeat(
    conn: &mut PgConnection,
    user_id: Uuid,
    timeout_seconds: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<Presence> {
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE staff_presence SET heartbeat_at = $2 \
          WHERE user_id = $1 AND status <> 'offline' AND heartbeat_at >= $2 - make_interval(secs => $3) \
          RETURNING status",
    )
    .bind(user_id)
    .bind(now)
    .bind(timeout_seconds as f64)
    .fetch_optional(conn)
    .await?;
    Ok(status
        .and_then(|s| s.parse().ok())
        .unwrap_or(Presence::Offline))
}

/// Members whose presence is not offline but whose heartbeat is older than the timeout, locked
/// for the caller (`SKIP LOCKED`: several sweepers share the work).
pub async fn expired(
    tx: &mut PgConnection,
    timeout_seconds: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT user_id FROM staff_presence \
          WHERE status <> 'offline' AND heartbeat_at < $1 - make_interval(secs => $2) \
          ORDER BY user_id FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(timeout_seconds as f64)
    .fetch_all(tx)
    .await
}

/// One member of the team as the shift board shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnShift {
    /// The routing profile.
    #[serde(flatten)]
    pub profile: StaffProfile,
    /// Display name.
    pub name: String,
    /// Presence as it counts now (an expired heartbeat is offline).
    pub presence: Presence,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
    /// Open tickets they hold.
    pub open_tickets: i64,
}

/// The active staff with their profiles, presence and load, online first.
pub async fn board(
    conn: &mut PgConnection,
    timeout_seconds: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<OnShift>> {
    type Row = (
        Uuid,
        String,
        Vec<String>,
        String,
        i32,
        bool,
        String,
        String,
        Option<DateTime<Utc>>,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT b.*, u.name, \
                CASE WHEN s.heartbeat_at >= $1 - make_interval(secs => $2) THEN s.status \
                     ELSE 'offline' END, \
                s.since, \
                (SELECT count(*) FROM support_tickets t WHERE t.assigned_to = u.id \
                    AND t.status IN {open}) \
           FROM ({PROFILE_SELECT} WHERE u.staff_role IS NOT NULL AND u.is_active \
                    AND u.deleted_at IS NULL) b \
           JOIN users u ON u.id = b.id \
           LEFT JOIN staff_presence s ON s.user_id = u.id \
          ORDER BY u.email",
        open = crate::tickets::OPEN_STATUSES,
    )))
    .bind(now)
    .bind(timeout_seconds as f64)
    .fetch_all(conn)
    .await?;
    let mut board: Vec<OnShift> = rows
        .into_iter()
        .map(|r| OnShift {
            profile: profile_from((r.0, r.1, r.2, r.3, r.4, r.5)),
            name: r.6,
            presence: r.7.parse().unwrap_or(Presence::Offline),
            since: r.8,
            open_tickets: r.9,
        })
        .collect();
    board.sort_by_key(|m| m.presence as u8);
    Ok(board)
}
