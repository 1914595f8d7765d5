//! The team as a whole: changes to a staff account that reach into the work it holds. Above
//! [`crate::staff`] (accounts) and [`crate::tickets`] (the work), so that neither writes the
//! other's tables.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::config::RoutingSettings;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::presence::{self, Presence, PresenceCause, PresenceChange, PresenceError};
use crate::routing;
use crate::staff::{self, Actor, StaffAccount, StaffError, StaffRole};
use crate::tickets;

/// Disables an account: it can no longer sign in, its sessions are revoked, and the open
/// tickets it held go back to the unassigned queue (a disabled agent would otherwise sit on
/// them while their SLA clocks run) and are routed at once ([`routing::route_now`]).
/// Disabling a disabled account changes nothing.
pub async fn disable(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<StaffAccount, StaffError> {
    let mut tx = conn.begin().await?;
    let (account, revoked) = staff::deactivate(&mut tx, by, email, now).await?;
    let Some(revoked) = revoked else {
        // Already disabled: nothing changed, nothing to commit.
        return Ok(account);
    };
    let released = tickets::release_all_held_by(&mut tx, account.id).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.disable",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({
                "email": account.email,
                "sessions_revoked": revoked,
                "tickets_released": released.iter().map(|(_, n)| n).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    let mut notice = ChangeNotice::new(ChangeKind::Staff);
    if !released.is_empty() {
        notice = notice.with(ChangeKind::TicketChanged);
    }
    events::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    let ids: Vec<Uuid> = released.iter().map(|(id, _)| *id).collect();
    routing::route_all_now(conn, settings, &ids, now).await;
    Ok(StaffAccount {
        is_active: false,
        ..account
    })
}

/// What a presence change did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresenceUpdate {
    /// The member.
    pub email: String,
    /// The change (`None`: the status was already that one; the heartbeat was refreshed).
    pub change: Option<PresenceChange>,
    /// Unanswered tickets handed back to the queue (going offline).
    pub tickets_released: Vec<String>,
    /// Pending offers withdrawn and passed on (going offline).
    pub offers_withdrawn: u64,
    /// Tickets routed to members: the waiting ones (coming online), or the ones handed back
    /// (going offline), routed to others at once.
    pub tickets_routed: u64,
    /// The ids of the tickets handed back, routed after the change's commit.
    #[serde(skip)]
    released_ids: Vec<Uuid>,
}

/// Sets a member's presence: oneself, or an admin for anyone (`by: None` is the machine's
/// administrator). Going offline hands their unanswered tickets back to the queue, routed to
/// others at once after the commit ([`routing::route_now`]), and passes their pending offers
/// on; coming online routes the waiting tickets (when routing is on).
/// Audited as `staff.presence` and announced live.
pub async fn set_presence(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    to: Presence,
    cause: PresenceCause,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<PresenceUpdate, PresenceError> {
    let member = staff::actor_by_email(conn, email).await?;
    if let Some(actor) = by
        && actor.id != member.id
    {
        staff::require(actor, StaffRole::Admin, "setting someone else's presence")?;
    }
    let mut tx = conn.begin().await?;
    // The routing lock first, as routing takes it before a presence row: the other order could
    // deadlock with a ticket being routed to this member.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(routing::ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let update = change_presence(&mut tx, by, &member, to, cause, settings, now).await?;
    tx.commit().await?;
    let mut update = update;
    if update.change.is_some_and(|c| c.to == Presence::Online) {
        update.tickets_routed = routing::route_waiting(conn, settings, now).await?;
    }
    update.tickets_routed +=
        routing::route_all_now(conn, settings, &update.released_ids, now).await;
    Ok(update)
}

/// [`set_presence`]'s work inside the caller's transaction, which holds the routing lock.
async fn change_presence(
    tx: &mut PgConnection,
    by: Option<&Actor>,
    member: &Actor,
    to: Presence,
    cause: PresenceCause,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<PresenceUpdate, PresenceError> {
    let change = presence::set(
        tx,
        member.id,
        to,
        cause,
        settings.presence_timeout_seconds,
        now,
    )
    .await?;
    let mut update = PresenceUpdate {
        email: member.email.clone(),
        change,
        tickets_released: Vec::new(),
        offers_withdrawn: 0,
        tickets_routed: 0,
        released_ids: Vec::new(),
    };
    let Some(change) = change else {
        return Ok(update);
    };
    let mut notice = ChangeNotice::new(ChangeKind::Presence)
        .with(ChangeKind::Staff)
        .user(member.id);
    if to == Presence::Offline {
        let released = tickets::release_unanswered_held_by(tx, member.id).await?;
        update.offers_withdrawn = routing::withdraw_offers_of(tx, member.id, settings, now).await?;
        if !released.is_empty() || update.offers_withdrawn > 0 {
            notice = notice.with(ChangeKind::TicketChanged);
        }
        update.released_ids = released.iter().map(|(id, _)| *id).collect();
        update.tickets_released = released.into_iter().map(|(_, n)| n).collect();
    }
    audit::record(
        tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.presence",
            resource_type: "user",
            resource_id: Some(member.id),
            details: json!({
                "email": member.email,
                "from": change.from,
                "to": change.to,
                "cause": cause.as_str(),
                "tickets_released": update.tickets_released,
                "offers_withdrawn": update.offers_withdrawn,
            }),
        },
    )
    .await?;
    events::notify(tx, &notice).await?;
    Ok(update)
}

/// Records as offline every member whose heartbeat stopped for longer than the timeout (a
/// killed console, a lost connection), with the same hand-back as signing out (the tickets
/// handed back are routed at once, after the commit); the sweeper and
/// the server's worker run it. Returns the members' e-mails.
pub async fn expire_presences(
    conn: &mut PgConnection,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<Vec<String>, PresenceError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(routing::ROUTING_LOCK)
        .execute(&mut *tx)
        .await?;
    let ids = presence::expired(&mut tx, settings.presence_timeout_seconds, now).await?;
    let mut expired = Vec::new();
    let mut released = Vec::new();
    for id in ids {
        let member = staff::actor_by_id(&mut tx, id).await?;
        let update = change_presence(
            &mut tx,
            None,
            &member,
            Presence::Offline,
            PresenceCause::HeartbeatExpired,
            settings,
            now,
        )
        .await?;
        released.extend(update.released_ids);
        expired.push(member.email);
    }
    tx.commit().await?;
    routing::route_all_now(conn, settings, &released, now).await;
    Ok(expired)
}

/// A console's side of its member's presence: online at sign-in, a heartbeat while it runs,
/// away after the idle time without input (online again at the next input), offline at quit.
/// A console that dies simply stops beating, and the sweeper records its member offline after
/// the timeout. The console calls [`ShiftKeeper::touch`] on input and [`ShiftKeeper::stop`]
/// at quit; [`ShiftKeeper::spawn`] runs the heartbeat.
pub struct ShiftKeeper {
    pool: sqlx::PgPool,
    member: Actor,
    settings: RoutingSettings,
    /// Unix seconds of the last input.
    last_input: std::sync::atomic::AtomicI64,
}

impl ShiftKeeper {
    /// Sets the member online (a sign-in) and returns the keeper.
    pub async fn start(
        pool: sqlx::PgPool,
        member: Actor,
        settings: RoutingSettings,
        now: DateTime<Utc>,
    ) -> Result<std::sync::Arc<Self>, PresenceError> {
        let keeper = ShiftKeeper {
            pool,
            member,
            settings,
            last_input: std::sync::atomic::AtomicI64::new(now.timestamp()),
        };
        keeper
            .set(Presence::Online, PresenceCause::Console, now)
            .await?;
        Ok(std::sync::Arc::new(keeper))
    }

    /// Seconds between heartbeats: a third of the timeout, at most 30.
    pub fn heartbeat_seconds(&self) -> u64 {
        (self.settings.presence_timeout_seconds / 3).clamp(1, 30) as u64
    }

    /// Records input now (cheap: called at every key).
    pub fn touch(&self) {
        self.last_input
            .store(Utc::now().timestamp(), std::sync::atomic::Ordering::Relaxed);
    }

    async fn set(
        &self,
        to: Presence,
        cause: PresenceCause,
        now: DateTime<Utc>,
    ) -> Result<PresenceUpdate, PresenceError> {
        let mut conn = self.pool.acquire().await?;
        set_presence(
            &mut conn,
            Some(&self.member),
            &self.member.email,
            to,
            cause,
            &self.settings,
            now,
        )
        .await
    }

    /// One heartbeat at `now`: away after the idle time, online again after input (or after
    /// the presence expired while the console could not reach the database). Returns the
    /// presence as it now counts.
    pub async fn beat(&self, now: DateTime<Utc>) -> Result<Presence, PresenceError> {
        let idle_seconds =
            now.timestamp() - self.last_input.load(std::sync::atomic::Ordering::Relaxed);
        let idle = idle_seconds >= self.settings.idle_seconds;
        let mut conn = self.pool.acquire().await?;
        let current = presence::heartbeat(
            &mut conn,
            self.member.id,
            self.settings.presence_timeout_seconds,
            now,
        )
        .await?;
        drop(conn);
        let wanted = if idle {
            Presence::Away
        } else {
            Presence::Online
        };
        if current == wanted {
            return Ok(current);
        }
        // Away set by the member themselves is not undone by typing; only an idle away is.
        if current == Presence::Away && !idle && !self.away_was_idle().await? {
            return Ok(current);
        }
        let cause = if idle {
            PresenceCause::Idle
        } else {
            PresenceCause::Console
        };
        self.set(wanted, cause, now).await?;
        Ok(wanted)
    }

    async fn away_was_idle(&self) -> Result<bool, PresenceError> {
        let mut conn = self.pool.acquire().await?;
        let cause: Option<String> = sqlx::query_scalar(
            "SELECT cause FROM staff_presence_history WHERE user_id = $1 AND ended_at IS NULL",
        )
        .bind(self.member.id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(cause.as_deref() == Some(PresenceCause::Idle.as_str()))
    }

    /// Sets the member offline (the console quits), handing back their unanswered tickets.
    pub async fn stop(&self, now: DateTime<Utc>) -> Result<(), PresenceError> {
        self.set(Presence::Offline, PresenceCause::Console, now)
            .await
            .map(|_| ())
    }

    /// Runs the heartbeat until the task is dropped; a failed beat is logged and retried at the
    /// next one (the presence expires if the database stays out of reach).
    pub fn spawn(self: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval(std::time::Duration::from_secs(self.heartbeat_seconds()));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = self.beat(Utc::now()).await {
                    tracing::warn!(error = %e, "presence heartbeat failed");
                }
            }
        })
    }
}
