//! Who has a ticket open: each console marks the ticket it shows and renews the mark with a
//! heartbeat; marks older than [`VIEWING_EXPIRY`] count for nothing (a console that crashed
//! or lost its connection stops showing within that time) and are deleted by the next mark on
//! the ticket. Marks are not audited: opening the ticket is (`ticket.read`).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::TicketError;
use super::model::normalize_number;
use crate::staff::Actor;

/// How long a viewing mark lasts without a heartbeat. The console renews it every 10 s.
pub const VIEWING_EXPIRY: Duration = Duration::seconds(30);

/// Another staff member with the ticket open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Viewer {
    /// Their e-mail.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// Their last heartbeat.
    pub seen_at: DateTime<Utc>,
}

/// Marks ticket `number` as open in `actor`'s console at `now` (a heartbeat renews it), drops
/// the ticket's expired marks, and returns the others who have it open, longest viewer first.
pub async fn viewing(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Viewer>, TicketError> {
    let number = normalize_number(number);
    let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH t AS (SELECT id FROM support_tickets WHERE ticket_number = $1), \
              expired AS (DELETE FROM ticket_viewers v USING t \
                           WHERE v.ticket_id = t.id AND v.seen_at < $3 - make_interval(secs => $4)), \
              mark AS (INSERT INTO ticket_viewers (ticket_id, staff_id, seen_at) \
                       SELECT t.id, $2, $3 FROM t \
                       ON CONFLICT (ticket_id, staff_id) DO UPDATE SET seen_at = EXCLUDED.seen_at \
                       RETURNING ticket_id) \
         SELECT u.email::text, u.name, v.seen_at \
           FROM ticket_viewers v JOIN t ON t.id = v.ticket_id JOIN users u ON u.id = v.staff_id \
          WHERE v.staff_id <> $2 AND v.seen_at >= $3 - make_interval(secs => $4) \
            AND EXISTS (SELECT 1 FROM mark) \
          ORDER BY v.seen_at, u.email",
    )
    .bind(&number)
    .bind(actor.id)
    .bind(now)
    .bind(VIEWING_EXPIRY.num_seconds() as f64)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        // The CTE's mark is only missing when the ticket is.
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM support_tickets WHERE ticket_number = $1)",
        )
        .bind(&number)
        .fetch_one(&mut *conn)
        .await?;
        if !exists {
            return Err(TicketError::NotFound(number));
        }
    }
    Ok(rows
        .into_iter()
        .map(|(email, name, seen_at)| Viewer {
            email,
            name,
            seen_at,
        })
        .collect())
}

/// `actor` closed ticket `number` (or left the ticket screen): their mark goes at once.
pub async fn stop_viewing(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
) -> Result<(), TicketError> {
    sqlx::query(
        "DELETE FROM ticket_viewers v USING support_tickets t \
          WHERE t.id = v.ticket_id AND t.ticket_number = $1 AND v.staff_id = $2",
    )
    .bind(normalize_number(number))
    .bind(actor.id)
    .execute(conn)
    .await?;
    Ok(())
}
