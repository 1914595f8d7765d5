//! Routing: which online member a new ticket goes to, and the offers of `offer` mode.
//!
//! A ticket goes to an online member (fresh heartbeat) who speaks the conversation's language,
//! whose tier is at least the ticket's, below their capacity (open tickets held plus offers
//! pending), least loaded first (then the lowest sufficient tier, then the longest online).
//! Every decision is one `ticket_routing` row with every member considered and the verdict on
//! each (`offline`, `away`, `language`, `tier`, `full`, `declined`, `eligible`, `chosen`).
//!
//! Concurrency: a routing decision runs under one transaction-level advisory lock
//! ([`ROUTING_LOCK`]), taken after the ticket's insert and held until the caller's commit, so
//! that concurrent creations count each other's assignments (no one over capacity, no ticket
//! routed twice); the chosen member's presence row is then locked `FOR KEY SHARE` and
//! re-checked online, which waits for a concurrent sign-out (which locks that row to update it)
//! without blocking heartbeats. Owns `ticket_routing`, `ticket_offers` and `staff_alerts`.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::config::{RoutingMode, RoutingSettings};
use crate::decision::crisis;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::lang::Lang;
use crate::mail;
use crate::presence::Presence;
use crate::staff::Actor;
use crate::tickets::{self, OPEN_STATUSES, TicketError, Tier};

/// The advisory lock key under which routing decisions are made one at a time (the bytes of
/// "amal-rte").
pub const ROUTING_LOCK: i64 = 0x616d_616c_2d72_7465;

/// Why a routing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The ticket or the actor.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// There is no pending offer of this ticket for this member.
    #[error("{number} is not offered to {email} (no pending offer)")]
    NoOffer {
        /// The ticket.
        number: String,
        /// The member.
        email: String,
    },
    /// The offer expired before the answer.
    #[error("the offer of {number} expired at {at}; it has gone to the next member")]
    Expired {
        /// The ticket.
        number: String,
        /// When it expired.
        at: DateTime<Utc>,
    },
}

impl From<sqlx::Error> for RoutingError {
    fn from(e: sqlx::Error) -> Self {
        RoutingError::Ticket(TicketError::Sql(e))
    }
}

/// The ticket to route.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest {
    /// `support_tickets.id`.
    pub ticket_id: Uuid,
    /// The conversation's language (Darija is Arabic).
    pub language: Lang,
    /// The ticket's tier.
    pub tier: Tier,
    /// A crisis ticket.
    pub crisis: bool,
}

/// What routing concluded about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Offline, never signed in, or the heartbeat stopped.
    Offline,
    /// Away from the console.
    Away,
    /// Does not speak the conversation's language.
    Language,
    /// Their tier is below the ticket's.
    Tier,
    /// At capacity.
    Full,
    /// Declined this ticket, or let its offer expire.
    Declined,
    /// Could have taken it; someone less loaded was chosen.
    Eligible,
    /// Given (or offered) the ticket.
    Chosen,
}

/// One member considered, with the figures behind the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Considered {
    /// `users.id`.
    pub staff_id: Uuid,
    /// E-mail.
    pub email: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Open tickets held plus offers pending.
    pub load: i64,
    /// Their capacity.
    pub capacity: i32,
    /// Their tier.
    pub tier: String,
}

/// How a routing decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Assigned to the chosen member.
    Assigned,
    /// Offered to the chosen member.
    Offered,
    /// Routing off: left in the shared queue, with someone who could take it online.
    Queued,
    /// Nobody who could take it is online (or all are full).
    Nobody,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Assigned => "assigned",
            Outcome::Offered => "offered",
            Outcome::Queued => "queued",
            Outcome::Nobody => "nobody",
        }
    }
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    /// How it ended.
    pub outcome: Outcome,
    /// The member chosen (assigned or offered).
    pub chosen: Option<Uuid>,
    /// Everyone considered.
    pub considered: Vec<Considered>,
    /// On-call members alerted because nobody could take it.
    pub alerted: u64,
}

impl Routed {
    /// Whether someone who can take the conversation is online: what the person may be told.
    /// Off: someone online speaks the language at the tier (full or not: they see the queue).
    pub fn staffed(&self) -> bool {
        match self.outcome {
            Outcome::Assigned | Outcome::Offered | Outcome::Queued => true,
            Outcome::Nobody => false,
        }
    }
}

type CandidateRow = (Uuid, String, Vec<String>, String, i32, String, i64, bool);

/// Every active staff member with what routing weighs: languages, tier, capacity, presence as
/// it counts now, load (open tickets held plus other pending offers) and whether they declined
/// this ticket. Longest online first, so that ties go to who has waited longest.
async fn candidates(
    tx: &mut PgConnection,
    ticket_id: Uuid,
    timeout_seconds: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<CandidateRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT u.id, u.email::text, \
                coalesce(p.languages::text[], ARRAY[left(u.locale, 2)]::text[]), \
                coalesce(p.tier, 'T1')::text, coalesce(p.capacity, 5), \
                CASE WHEN s.heartbeat_at >= $2 - make_interval(secs => $3) THEN s.status \
                     ELSE 'offline' END, \
                (SELECT count(*) FROM support_tickets t \
                  WHERE t.assigned_to = u.id AND t.status IN {OPEN_STATUSES}) \
              + (SELECT count(*) FROM ticket_offers o \
                  WHERE o.staff_id = u.id AND o.status = 'pending' AND o.ticket_id <> $1), \
                EXISTS (SELECT 1 FROM ticket_offers o WHERE o.ticket_id = $1 AND o.staff_id = u.id \
                          AND o.status IN ('declined', 'expired')) \
           FROM users u \
           LEFT JOIN staff_profiles p ON p.user_id = u.id \
           LEFT JOIN staff_presence s ON s.user_id = u.id \
          WHERE u.staff_role IS NOT NULL AND u.is_active AND u.deleted_at IS NULL \
          ORDER BY s.since NULLS LAST, u.id"
    )))
    .bind(ticket_id)
    .bind(now)
    .bind(timeout_seconds as f64)
    .fetch_all(tx)
    .await
}

fn tier_of(code: &str) -> Tier {
    code.parse().unwrap_or(Tier::T1)
}

/// The verdict on one member for `req`, before the choice (`Eligible` at best).
fn verdict(row: &CandidateRow, req: &RouteRequest, capacity_counts: bool) -> Verdict {
    let (_, _, langs, tier, capacity, presence, load, declined) = row;
    match presence.parse::<Presence>() {
        Ok(Presence::Online) => {}
        Ok(Presence::Away) => return Verdict::Away,
        _ => return Verdict::Offline,
    }
    if !langs.iter().any(|l| l == req.language.code()) {
        return Verdict::Language;
    }
    if tier_of(tier) < req.tier {
        return Verdict::Tier;
    }
    if *declined {
        return Verdict::Declined;
    }
    if capacity_counts && *load >= i64::from(*capacity) {
        return Verdict::Full;
    }
    Verdict::Eligible
}

/// Whether someone who could take a conversation in `language` at `tier` is online now
/// (capacity aside: they see the queue). For a ticket that already exists and is joined.
pub async fn coverage(
    tx: &mut PgConnection,
    language: Lang,
    tier: Tier,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let req = RouteRequest {
        ticket_id: Uuid::nil(),
        language,
        tier,
        crisis: false,
    };
    let rows = candidates(tx, req.ticket_id, settings.presence_timeout_seconds, now).await?;
    Ok(rows
        .iter()
        .any(|r| matches!(verdict(r, &req, false), Verdict::Eligible)))
}

/// Routes a new ticket inside the caller's transaction (the one that created it) and records
/// the decision; when nobody can take it, on-call members are alerted. `off`: the ticket stays
/// in the shared queue and the decision says whether anyone who could take it is online.
pub async fn route(
    tx: &mut PgConnection,
    settings: &RoutingSettings,
    req: &RouteRequest,
    now: DateTime<Utc>,
) -> sqlx::Result<Routed> {
    route_but(tx, settings, req, None, now).await
}

/// [`route`], never to `gave_back`: the member who just gave the ticket back.
async fn route_but(
    tx: &mut PgConnection,
    settings: &RoutingSettings,
    req: &RouteRequest,
    gave_back: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<Routed> {
    let routed = decide(tx, settings, req, gave_back, now).await?;
    let alerted = if routed.outcome == Outcome::Nobody {
        alert_on_call(tx, settings, req, now).await?
    } else {
        0
    };
    record(tx, settings.mode, req, &routed, now).await?;
    let mut notice = ChangeNotice::new(ChangeKind::TicketChanged).ticket(req.ticket_id);
    if routed.outcome == Outcome::Offered {
        notice = notice.with(ChangeKind::Offer);
    }
    if alerted > 0 {
        notice = notice.with(ChangeKind::Alert);
    }
    if routed.outcome != Outcome::Queued && (routed.chosen.is_some() || alerted > 0) {
        events::notify(tx, &notice).await?;
    }
    Ok(Routed { alerted, ..routed })
}

/// The choice itself: candidates, verdicts, the least-loaded eligible member, and the
/// assignment or offer.
async fn decide(
    tx: &mut PgConnection,
    settings: &RoutingSettings,
    req: &RouteRequest,
    gave_back: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<Routed> {
    let routing = settings.mode != RoutingMode::Off;
    if routing {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ROUTING_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let rows = candidates(tx, req.ticket_id, settings.presence_timeout_seconds, now).await?;
    let mut considered: Vec<Considered> = rows
        .iter()
        .map(|r| Considered {
            staff_id: r.0,
            email: r.1.clone(),
            verdict: match verdict(r, req, routing) {
                // Whoever just gave the ticket back is not handed it again at once.
                Verdict::Eligible if Some(r.0) == gave_back => Verdict::Declined,
                v => v,
            },
            load: r.6,
            capacity: r.4,
            tier: r.3.clone(),
        })
        .collect();
    let mut order: Vec<usize> = (0..considered.len())
        .filter(|&i| considered[i].verdict == Verdict::Eligible)
        .collect();
    // Least loaded, then the lowest tier that suffices (keeping specialists free), then the
    // candidates' order (longest online first); the sort is stable.
    order.sort_by_key(|&i| (considered[i].load, tier_of(&considered[i].tier)));
    if !routing {
        let outcome = if order.is_empty() {
            Outcome::Nobody
        } else {
            Outcome::Queued
        };
        return Ok(Routed {
            outcome,
            chosen: None,
            considered,
            alerted: 0,
        });
    }
    for i in order {
        let id = considered[i].staff_id;
        // Waits for a concurrent sign-out of this member, then sees its result.
        let still_online: Option<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM staff_presence WHERE user_id = $1 AND status = 'online' \
             FOR KEY SHARE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if still_online.is_none() {
            considered[i].verdict = Verdict::Offline;
            continue;
        }
        let outcome = match settings.mode {
            RoutingMode::Assign => {
                if !tickets::assign_routed(tx, req.ticket_id, id, "routing", now).await? {
                    // Someone took the ticket meanwhile: nothing to route.
                    return Ok(Routed {
                        outcome: Outcome::Assigned,
                        chosen: None,
                        considered,
                        alerted: 0,
                    });
                }
                Outcome::Assigned
            }
            _ => {
                sqlx::query(
                    "INSERT INTO ticket_offers (ticket_id, staff_id, offered_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(req.ticket_id)
                .bind(id)
                .bind(now)
                .bind(now + Duration::seconds(settings.offer_seconds))
                .execute(&mut *tx)
                .await?;
                Outcome::Offered
            }
        };
        considered[i].verdict = Verdict::Chosen;
        return Ok(Routed {
            outcome,
            chosen: Some(id),
            considered,
            alerted: 0,
        });
    }
    Ok(Routed {
        outcome: Outcome::Nobody,
        chosen: None,
        considered,
        alerted: 0,
    })
}

async fn record(
    tx: &mut PgConnection,
    mode: RoutingMode,
    req: &RouteRequest,
    routed: &Routed,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_routing (ticket_id, decided_at, mode, outcome, staff_id, language, \
                                     tier, crisis, considered) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(req.ticket_id)
    .bind(now)
    .bind(mode.as_str())
    .bind(routed.outcome.as_str())
    .bind(routed.chosen)
    .bind(req.language.code())
    .bind(req.tier.as_str())
    .bind(req.crisis)
    .bind(json!(routed.considered))
    .execute(tx)
    .await?;
    Ok(())
}

/// Alerts every active on-call member that a ticket found nobody online (the console's banner
/// and bell; by e-mail too unless `AMAL_ALERT_EMAIL=off`, rate-limited per ticket, see
/// [`mail::queue_staff_alerts`]); returns how many were alerted. A member who has not yet seen
/// an alert about this ticket (as grave) gets no second one.
async fn alert_on_call(
    tx: &mut PgConnection,
    settings: &RoutingSettings,
    req: &RouteRequest,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO staff_alerts (staff_id, ticket_id, kind, crisis, created_at) \
         SELECT u.id, $1, 'nobody_online', $2, $3 \
           FROM users u JOIN staff_profiles p ON p.user_id = u.id AND p.on_call \
          WHERE u.staff_role IS NOT NULL AND u.is_active AND u.deleted_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM staff_alerts a \
                             WHERE a.staff_id = u.id AND a.ticket_id = $1 AND a.seen_at IS NULL \
                               AND (a.crisis OR NOT $2))",
    )
    .bind(req.ticket_id)
    .bind(req.crisis)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if settings.alert_email {
        mail::queue_staff_alerts(tx, req.ticket_id, req.crisis, now).await?;
    }
    Ok(done.rows_affected())
}

/// One alert for an on-call member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Alert {
    /// `staff_alerts.id`.
    pub id: Uuid,
    /// The ticket that found nobody.
    pub ticket_id: Option<Uuid>,
    /// Its number.
    pub ticket_number: Option<String>,
    /// A crisis ticket.
    pub crisis: bool,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A member's unseen alerts, newest first (the console's banner).
pub async fn unseen_alerts(conn: &mut PgConnection, staff_id: Uuid) -> sqlx::Result<Vec<Alert>> {
    sqlx::query_as(
        "SELECT a.id, a.ticket_id, t.ticket_number, a.crisis, a.created_at \
           FROM staff_alerts a LEFT JOIN support_tickets t ON t.id = a.ticket_id \
          WHERE a.staff_id = $1 AND a.seen_at IS NULL ORDER BY a.created_at DESC LIMIT 50",
    )
    .bind(staff_id)
    .fetch_all(conn)
    .await
}

/// Marks a member's alerts seen.
pub async fn mark_alerts_seen(
    conn: &mut PgConnection,
    staff_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("UPDATE staff_alerts SET seen_at = $2 WHERE staff_id = $1 AND seen_at IS NULL")
            .bind(staff_id)
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// The routing request of an existing ticket: its language (set at creation from the
/// conversation, changed by a re-triage), else its conversation's, else its person's locale;
/// its tier; and whether it is a crisis.
async fn request_of(tx: &mut PgConnection, ticket_id: Uuid) -> sqlx::Result<RouteRequest> {
    let (lang, tier, crisis): (String, String, bool) = sqlx::query_as(
        "SELECT coalesce(t.language::text, c.language::text, left(u.locale, 2)), \
                t.escalation_tier::text, \
                (t.category = $2 OR t.priority = $3) \
           FROM support_tickets t JOIN users u ON u.id = t.user_id \
           LEFT JOIN conversations c ON c.id = t.conversation_id WHERE t.id = $1",
    )
    .bind(ticket_id)
    .bind(crisis::CATEGORY)
    .bind(crisis::PRIORITY)
    .fetch_one(tx)
    .await?;
    Ok(RouteRequest {
        ticket_id,
        language: lang.parse().unwrap_or(Lang::Ar),
        tier: tier_of(&tier),
        crisis,
    })
}

/// Routes the tickets waiting in the shared queue (unassigned, open, no pending offer), crisis
/// first, then oldest: run when a member comes online and by the sweeper. A waiting ticket for
/// which nobody is found is left as it is (no new decision row, no new alert: it was recorded
/// and alerted when it was opened). Returns how many were assigned or offered.
pub async fn route_waiting(
    conn: &mut PgConnection,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    if settings.mode == RoutingMode::Off {
        return Ok(0);
    }
    // With nobody online (the common case at night) there is nothing to try.
    let anyone: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM staff_presence WHERE status = 'online' \
                          AND heartbeat_at >= $1 - make_interval(secs => $2))",
    )
    .bind(now)
    .bind(settings.presence_timeout_seconds as f64)
    .fetch_one(&mut *conn)
    .await?;
    if !anyone {
        return Ok(0);
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let waiting: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT t.id FROM support_tickets t \
          WHERE t.assigned_to IS NULL AND t.status IN {OPEN_STATUSES} \
            AND NOT EXISTS (SELECT 1 FROM ticket_offers o \
                             WHERE o.ticket_id = t.id AND o.status = 'pending') \
          ORDER BY (t.category = $1 OR t.priority = $2) DESC, t.created_at, t.id LIMIT 200"
    )))
    .bind(crisis::CATEGORY)
    .bind(crisis::PRIORITY)
    .fetch_all(&mut *tx)
    .await?;
    let mut routed = 0;
    for id in waiting {
        let req = request_of(&mut tx, id).await?;
        let r = decide(&mut tx, settings, &req, None, now).await?;
        if r.chosen.is_some() {
            record(&mut tx, settings.mode, &req, &r, now).await?;
            routed += 1;
        }
    }
    if routed > 0 {
        events::notify(&mut tx, &ChangeNotice::new(ChangeKind::TicketChanged)).await?;
    }
    tx.commit().await?;
    Ok(routed)
}

/// Routes, at once, tickets that have just come to wait for someone outside a turn: opened or
/// escalated by staff or the system, re-triaged (priority, tier, language), released, reopened,
/// or handed back when their holder went offline or was disabled. The one place these changes
/// reach routing; called right after the change's commit, each ticket in a transaction of its
/// own that takes [`ROUTING_LOCK`] before anything else.
///
/// After the commit, not inside the change's transaction: ticket changes lock the ticket row
/// first, while presence changes take the routing lock before the rows of the tickets they hand
/// back; taking the routing lock after a ticket row would invert that order and could deadlock.
/// A change also stands if routing it fails, and the gap is covered: a ticket left waiting (the
/// process died in between) is routed by the shift worker's pass over waiting tickets. The turn
/// is the exception: it routes its new ticket in its own transaction, since the reply it stores
/// must say what routing found, and a ticket row not yet committed is locked by nobody else.
///
/// A ticket that is assigned, offered, or no longer open is left alone (`None`). Otherwise the
/// decision is recorded as for a new ticket, in every mode (`off`: whether anyone who could take
/// it is online), and when nobody can take it the on-call members are alerted (deduplicated per
/// ticket, see [`alert_on_call`]). `gave_back` is the member who just released it, who is not
/// given it again (verdict `declined`).
pub async fn route_now(
    conn: &mut PgConnection,
    settings: &RoutingSettings,
    ticket_id: Uuid,
    gave_back: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Routed>> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let waiting: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM support_tickets t \
                         WHERE t.id = $1 AND t.assigned_to IS NULL AND t.status IN {OPEN_STATUSES} \
                           AND NOT EXISTS (SELECT 1 FROM ticket_offers o \
                                            WHERE o.ticket_id = t.id AND o.status = 'pending'))"
    )))
    .bind(ticket_id)
    .fetch_one(&mut *tx)
    .await?;
    if !waiting {
        return Ok(None);
    }
    let req = request_of(&mut tx, ticket_id).await?;
    let routed = route_but(&mut tx, settings, &req, gave_back, now).await?;
    tx.commit().await?;
    Ok(Some(routed))
}

/// [`route_now`] for several tickets (crisis ones first, as the caller lists them or not):
/// a failure is logged and the rest are still routed, since the changes behind them are
/// committed and the shift worker routes whatever is left. Returns how many were assigned or
/// offered.
pub async fn route_all_now(
    conn: &mut PgConnection,
    settings: &RoutingSettings,
    ticket_ids: &[Uuid],
    now: DateTime<Utc>,
) -> u64 {
    let mut placed = 0;
    for id in ticket_ids {
        match route_now(conn, settings, *id, None, now).await {
            Ok(Some(r)) if r.chosen.is_some() => placed += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(ticket = %id, "routing a waiting ticket failed: {e}"),
        }
    }
    placed
}

/// A member's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAnswer {
    /// They take it: the ticket is theirs.
    Accept,
    /// They decline: the next member is asked.
    Decline,
}

/// Answers the pending offer of ticket `number` made to `actor`. Accepting assigns it;
/// declining (or answering too late) asks the next member. Audited (`ticket.offer_accept`,
/// `ticket.offer_decline`).
pub async fn answer_offer(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    answer: OfferAnswer,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<Option<Routed>, RoutingError> {
    let ticket = tickets::find(conn, number, now).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let offer: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, expires_at FROM ticket_offers \
          WHERE ticket_id = $1 AND staff_id = $2 AND status = 'pending' FOR UPDATE",
    )
    .bind(ticket.id)
    .bind(actor.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((offer_id, expires_at)) = offer else {
        return Err(RoutingError::NoOffer {
            number: ticket.ticket_number,
            email: actor.email.clone(),
        });
    };
    if expires_at <= now {
        expire_and_pass_on(&mut tx, offer_id, ticket.id, settings, now).await?;
        tx.commit().await?;
        return Err(RoutingError::Expired {
            number: ticket.ticket_number,
            at: expires_at,
        });
    }
    let (status, action) = match answer {
        OfferAnswer::Accept => ("accepted", "ticket.offer_accept"),
        OfferAnswer::Decline => ("declined", "ticket.offer_decline"),
    };
    sqlx::query("UPDATE ticket_offers SET status = $2, answered_at = $3 WHERE id = $1")
        .bind(offer_id)
        .bind(status)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(actor.id),
            action,
            resource_type: "support_ticket",
            resource_id: Some(ticket.id),
            details: json!({ "ticket_number": ticket.ticket_number }),
        },
    )
    .await?;
    let next = match answer {
        OfferAnswer::Accept => {
            tickets::assign_routed(&mut tx, ticket.id, actor.id, "offer", now).await?;
            None
        }
        OfferAnswer::Decline => Some(pass_on(&mut tx, ticket.id, settings, now).await?),
    };
    let notice = ChangeNotice::new(ChangeKind::TicketChanged)
        .with(ChangeKind::Offer)
        .ticket(ticket.id);
    events::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    Ok(next)
}

/// Offers the ticket to the next member (those who declined or let it expire are skipped) and
/// records the decision. Routing mode is `offer` whatever the settings say now: the ticket is
/// in an offer round.
async fn pass_on(
    tx: &mut PgConnection,
    ticket_id: Uuid,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<Routed> {
    let req = request_of(tx, ticket_id).await?;
    let offer = RoutingSettings {
        mode: RoutingMode::Offer,
        ..*settings
    };
    let r = decide(tx, &offer, &req, None, now).await?;
    record(tx, RoutingMode::Offer, &req, &r, now).await?;
    Ok(r)
}

async fn expire_and_pass_on(
    tx: &mut PgConnection,
    offer_id: i64,
    ticket_id: Uuid,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<Routed> {
    sqlx::query("UPDATE ticket_offers SET status = 'expired', answered_at = $2 WHERE id = $1")
        .bind(offer_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    audit::record(
        tx,
        &AuditEntry {
            actor: None,
            action: "ticket.offer_expire",
            resource_type: "support_ticket",
            resource_id: Some(ticket_id),
            details: json!({ "offer_id": offer_id }),
        },
    )
    .await?;
    pass_on(tx, ticket_id, settings, now).await
}

/// Expires the offers not answered in time and asks the next member for each; several
/// sweepers share the work (`SKIP LOCKED`). Returns how many expired.
pub async fn sweep_offers(
    conn: &mut PgConnection,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let due: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT id, ticket_id FROM ticket_offers WHERE status = 'pending' AND expires_at <= $1 \
          ORDER BY expires_at LIMIT 200 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for (offer_id, ticket_id) in &due {
        expire_and_pass_on(&mut tx, *offer_id, *ticket_id, settings, now).await?;
    }
    if !due.is_empty() {
        events::notify(
            &mut tx,
            &ChangeNotice::new(ChangeKind::TicketChanged).with(ChangeKind::Offer),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(due.len() as u64)
}

/// A ticket's pending offer for a member, if any (the console's prompt).
pub async fn pending_offers(
    conn: &mut PgConnection,
    staff_id: Uuid,
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT t.ticket_number, o.expires_at FROM ticket_offers o \
           JOIN support_tickets t ON t.id = o.ticket_id \
          WHERE o.staff_id = $1 AND o.status = 'pending' ORDER BY o.expires_at",
    )
    .bind(staff_id)
    .fetch_all(conn)
    .await
}

/// Withdraws a member's pending offers (they went offline) and passes each ticket on.
pub async fn withdraw_offers_of(
    tx: &mut PgConnection,
    staff_id: Uuid,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let withdrawn: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE ticket_offers SET status = 'withdrawn', answered_at = $2 \
          WHERE staff_id = $1 AND status = 'pending' RETURNING ticket_id",
    )
    .bind(staff_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for ticket_id in &withdrawn {
        pass_on(tx, *ticket_id, settings, now).await?;
    }
    Ok(withdrawn.len() as u64)
}
