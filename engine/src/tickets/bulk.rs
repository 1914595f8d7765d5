//! Changes to several tickets at once from the queue: assign them all to one member, or close
//! them all.
//!
//! Each ticket is changed in its own transaction, exactly as if it were changed alone (locked,
//! checked, audited, announced). Not all-or-nothing: the tickets are independent pieces of
//! work, and one that cannot change (someone else closed it a second ago, it is not open any
//! more) must not undo the others nor keep a whole shift's reassignment waiting; the outcome
//! names every ticket with its result, so that the refused ones can be looked at.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use super::lifecycle::{assign, lock, set_status};
use super::model::TicketStatus;
use super::{Ticket, TicketError};
use crate::staff::{self, Actor, StaffRole};

/// What happened to one ticket of a bulk change.
#[derive(Debug)]
pub struct BulkOutcome {
    /// The ticket number as given.
    pub number: String,
    /// The ticket after the change, or why it was refused.
    pub result: Result<Ticket, TicketError>,
}

/// A summary for people: `3 done; TKT-…: why` for the refused ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkSummary {
    /// Tickets changed.
    pub done: usize,
    /// Tickets refused, with the reason.
    pub refused: Vec<(String, String)>,
}

impl BulkSummary {
    /// Counts the outcomes.
    pub fn of(outcomes: &[BulkOutcome]) -> Self {
        BulkSummary {
            done: outcomes.iter().filter(|o| o.result.is_ok()).count(),
            refused: outcomes
                .iter()
                .filter_map(|o| match &o.result {
                    Err(e) => Some((o.number.clone(), e.to_string())),
                    Ok(_) => None,
                })
                .collect(),
        }
    }
}

/// Assigns every ticket of `numbers` to `assignee_email` (supervisors and admins), one
/// transaction per ticket. A refusal of the whole (the actor is no supervisor, the assignee no
/// staff member) is an error; a refusal of one ticket is in its outcome.
pub async fn bulk_assign(
    conn: &mut PgConnection,
    actor: &Actor,
    numbers: &[String],
    assignee_email: &str,
    now: DateTime<Utc>,
) -> Result<Vec<BulkOutcome>, TicketError> {
    staff::require(actor, StaffRole::Supervisor, "assigning tickets")?;
    staff::actor_by_email(conn, assignee_email).await?;
    let mut outcomes = Vec::with_capacity(numbers.len());
    for number in numbers {
        let result = assign(conn, actor, number, assignee_email, now).await;
        outcomes.push(BulkOutcome {
            number: number.clone(),
            result,
        });
    }
    Ok(outcomes)
}

/// Closes every ticket of `numbers`, one transaction per ticket, with the permissions of a
/// single close. A crisis ticket is closed only when `crisis_confirmed`: otherwise it is
/// refused with [`TicketError::CrisisNotConfirmed`] (checked on the locked row, so a ticket
/// re-triaged to crisis a moment before is not closed by a stale confirmation).
pub async fn bulk_close(
    conn: &mut PgConnection,
    actor: &Actor,
    numbers: &[String],
    crisis_confirmed: bool,
    now: DateTime<Utc>,
) -> Vec<BulkOutcome> {
    let mut outcomes = Vec::with_capacity(numbers.len());
    for number in numbers {
        let result = close_one(conn, actor, number, crisis_confirmed, now).await;
        outcomes.push(BulkOutcome {
            number: number.clone(),
            result,
        });
    }
    outcomes
}

async fn close_one(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    crisis_confirmed: bool,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let mut tx = conn.begin().await?;
    let t = lock(&mut tx, number).await?;
    if t.category == "crisis" && !crisis_confirmed {
        return Err(TicketError::CrisisNotConfirmed(t.ticket_number));
    }
    // Inside this transaction: a savepoint, holding the lock taken above.
    let ticket = set_status(&mut tx, actor, number, TicketStatus::Closed, None, now).await?;
    tx.commit().await?;
    Ok(ticket)
}
