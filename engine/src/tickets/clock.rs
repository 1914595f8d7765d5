//! The SLA clock of a ticket as stored: stopping and starting it, and recording missed targets
//! (one ticket at a time, or the sweeper over all of them). The arithmetic of targets and
//! working time is [`crate::sla`]'s; this is where it is written down.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::model::running_statuses;
use crate::audit::{self, AuditEntry};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::sla::Target;

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
const SWEEP_FIRST_RESPONSE: &str = concat!(
    "\
WITH due AS (
    SELECT id, first_response_deadline_at AS due_at FROM support_tickets
     WHERE first_response_at IS NULL AND NOT first_response_breached AND sla_paused_at IS NULL
       AND status IN ",
    running_statuses!(),
    " AND first_response_deadline_at <= $1
     ORDER BY first_response_deadline_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), flagged AS (
    UPDATE support_tickets t SET first_response_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'first_response', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING"
);

const SWEEP_RESOLUTION: &str = concat!(
    "\
WITH due AS (
    SELECT id, resolution_deadline_at AS due_at FROM support_tickets
     WHERE NOT resolution_breached AND sla_paused_at IS NULL
       AND status IN ",
    running_statuses!(),
    " AND resolution_deadline_at <= $1
     ORDER BY resolution_deadline_at
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), flagged AS (
    UPDATE support_tickets t SET resolution_breached = true FROM due WHERE t.id = due.id
    RETURNING t.id, due.due_at
)
INSERT INTO sla_breach_events (ticket_id, target, due_at, recorded_at)
SELECT id, 'resolution', due_at, $1 FROM flagged
ON CONFLICT (ticket_id, target) DO NOTHING"
);

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

/// The person wrote in `conversation_id`: its tickets pending on them go back to
/// `in_progress` and their clocks resume at `now`. Returns the tickets changed.
///
/// Meant to be called by the turn inside the transaction that stores the person's message; it writes one audit row per ticket but sends no notice, so that the caller's one
/// notice per transaction names [`ChangeKind::TicketChanged`] too when this returns any ticket.
pub async fn resume_pending(
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
