//! Every change to one ticket: taking, assigning, releasing, its status and its tier. Each runs
//! in one transaction around the locked ticket row ([`change_locked`]): lock, check, change,
//! audit, notify, read back.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::model::{Ticket, TicketStatus, Tier, normalize_number, open_statuses};
use super::queue::get;
use super::{TicketError, clock};
use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::lang::Lang;
use crate::staff::{self, Actor, StaffRole};

/// The ticket row an operation works on, locked until the operation commits.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Locked {
    pub(super) id: Uuid,
    pub(super) ticket_number: String,
    #[sqlx(try_from = "String")]
    pub(super) status: TicketStatus,
    pub(super) assigned_to: Option<Uuid>,
    pub(super) holder_email: Option<String>,
    pub(super) holder_name: Option<String>,
    pub(super) conversation_id: Option<Uuid>,
    pub(super) user_id: Uuid,
    pub(super) escalation_tier: String,
    pub(super) first_response_at: Option<DateTime<Utc>>,
    pub(super) priority: String,
    pub(super) category: String,
    pub(super) language: Option<String>,
}

pub(super) async fn lock(conn: &mut PgConnection, number: &str) -> Result<Locked, TicketError> {
    let number = normalize_number(number);
    sqlx::query_as(
        "SELECT t.id, t.ticket_number, t.status, t.assigned_to, u.email::text AS holder_email, \
                u.name AS holder_name, t.conversation_id, t.user_id, \
                t.escalation_tier, t.first_response_at, t.priority, t.category, t.language \
           FROM support_tickets t LEFT JOIN users u ON u.id = t.assigned_to \
          WHERE t.ticket_number = $1 FOR UPDATE OF t",
    )
    .bind(&number)
    .fetch_optional(conn)
    .await?
    .ok_or(TicketError::NotFound(number))
}

/// Agents work unassigned tickets and their own; supervisors and admins any.
pub(super) fn may_work(actor: &Actor, t: &Locked) -> Result<(), TicketError> {
    match t.assigned_to {
        Some(holder) if holder != actor.id && !actor.is_at_least(StaffRole::Supervisor) => {
            Err(TicketError::NotYours {
                number: t.ticket_number.clone(),
                holder_email: t.holder_email.clone().unwrap_or_default(),
                holder_name: t.holder_name.clone().unwrap_or_default(),
            })
        }
        _ => Ok(()),
    }
}

pub(super) async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    ticket_id: Uuid,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    audit::record(
        conn,
        &AuditEntry {
            actor: Some(actor.id),
            action,
            resource_type: "support_ticket",
            resource_id: Some(ticket_id),
            details,
        },
    )
    .await
    .map(|_| ())
}

/// What a change did, for the audit trail.
struct Change {
    action: &'static str,
    details: Value,
}

/// The frame of every change to one ticket: in one transaction, lock the ticket row, let
/// `change` check and write (returning `None` when there was nothing to change), record the
/// audit row and the notice, and read the ticket back.
async fn change_locked(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
    change: impl AsyncFnOnce(&mut PgConnection, &Locked) -> Result<Option<Change>, TicketError>,
) -> Result<Ticket, TicketError> {
    let mut tx = conn.begin().await?;
    let t = lock(&mut tx, number).await?;
    if let Some(c) = change(&mut tx, &t).await? {
        record(&mut tx, actor, c.action, t.id, c.details).await?;
        events::notify(&mut tx, &changed(&t)).await?;
    }
    let ticket = get(&mut tx, t.id, now).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// Refuses unless the ticket still needs work.
fn require_open(t: &Locked) -> Result<(), TicketError> {
    if t.status.is_open() {
        Ok(())
    } else {
        Err(TicketError::NotOpen {
            number: t.ticket_number.clone(),
            status: t.status,
        })
    }
}

fn changed(t: &Locked) -> ChangeNotice {
    let notice = ChangeNotice::new(ChangeKind::TicketChanged).ticket(t.id);
    match t.conversation_id {
        Some(c) => notice.conversation(c),
        None => notice,
    }
}

/// Takes an unassigned ticket for `actor`. When two staff members take the same ticket at the
/// same moment exactly one gets it: the single conditional UPDATE below is decided by the row
/// lock, and the loser re-reads who holds it ([`TicketError::HeldBy`]). Taking a ticket one
/// already holds succeeds and changes nothing.
pub async fn take(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let number = normalize_number(number);
    let mut tx = conn.begin().await?;
    let taken: Option<(Uuid, Option<Uuid>, String)> = sqlx::query_as(concat!(
        "UPDATE support_tickets \
                SET assigned_to = $2, assigned_at = $3, \
                    status = CASE WHEN status = 'open' THEN 'in_progress' ELSE status END \
              WHERE ticket_number = $1 AND assigned_to IS NULL AND status IN ",
        open_statuses!(),
        " RETURNING id, conversation_id, status"
    ))
    .bind(&number)
    .bind(actor.id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, conversation_id, status)) = taken else {
        // Lost, or not takeable: say why.
        let t = lock(&mut tx, &number).await?;
        return match t.assigned_to {
            Some(holder) if holder == actor.id => {
                let ticket = get(&mut tx, t.id, now).await?;
                tx.commit().await?;
                Ok(ticket)
            }
            Some(_) => Err(TicketError::HeldBy {
                number: t.ticket_number,
                holder_email: t.holder_email.unwrap_or_default(),
                holder_name: t.holder_name.unwrap_or_default(),
            }),
            None => Err(TicketError::NotOpen {
                number: t.ticket_number,
                status: t.status,
            }),
        };
    };
    record(
        &mut tx,
        actor,
        "ticket.take",
        id,
        json!({ "status": status }),
    )
    .await?;
    let mut notice = ChangeNotice::new(ChangeKind::TicketChanged).ticket(id);
    if let Some(c) = conversation_id {
        notice = notice.conversation(c);
    }
    events::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    get(conn, id, now).await
}

/// Assigns or reassigns a ticket to a staff member (supervisor or admin).
pub async fn assign(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    assignee_email: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    staff::require(actor, StaffRole::Supervisor, "assigning tickets")?;
    let assignee = staff::actor_by_email(conn, assignee_email).await?;
    change_locked(conn, actor, number, now, async |tx, t| {
        require_open(t)?;
        if t.assigned_to == Some(assignee.id) {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE support_tickets SET assigned_to = $2, assigned_at = $3, \
                    status = CASE WHEN status = 'open' THEN 'in_progress' ELSE status END \
              WHERE id = $1",
        )
        .bind(t.id)
        .bind(assignee.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(Some(Change {
            action: if t.assigned_to.is_some() {
                "ticket.reassign"
            } else {
                "ticket.assign"
            },
            details: json!({ "from": t.holder_email, "to": assignee.email }),
        }))
    })
    .await
}

/// Puts a ticket back in the unassigned queue (a supervisor, or the holder giving it back).
pub async fn release(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    change_locked(conn, actor, number, now, async |tx, t| {
        if t.assigned_to != Some(actor.id) {
            staff::require(
                actor,
                StaffRole::Supervisor,
                "releasing someone else's ticket",
            )?;
        }
        if t.assigned_to.is_none() {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, \
                    status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END \
              WHERE id = $1",
        )
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        Ok(Some(Change {
            action: "ticket.release",
            details: json!({ "from": t.holder_email }),
        }))
    })
    .await
}

/// Moves a ticket through its lifecycle (see the module's table). `note` becomes the
/// resolution notes when resolving. Stopping the clock (pending, resolved, closed) first
/// records any target already missed; starting it again (the user wrote, or a reopen) pushes
/// the deadlines back by the time it stood still. A reopen clears the resolution and closing
/// fields (their previous values stay in the audit trail).
pub async fn set_status(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    to: TicketStatus,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    change_locked(conn, actor, number, now, async |tx, t| {
        may_work(actor, t)?;
        let from = t.status;
        if !from.can_go_to(to) {
            return Err(TicketError::InvalidTransition {
                number: t.ticket_number.clone(),
                from,
                to,
                allowed: from
                    .allowed_next()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if let Some(n) = note
            && n.chars().count() > 10_000
        {
            return Err(TicketError::Invalid(
                "resolution notes have at most 10,000 characters".into(),
            ));
        }
        let mut breaches = Vec::new();
        if from.clock_runs() && !to.clock_runs() {
            breaches = clock::record_breaches(tx, t.id, now).await?;
            clock::pause(tx, t.id, now).await?;
        }
        let mut resumed = None;
        if !from.clock_runs() && to.clock_runs() {
            resumed = clock::resume(tx, t.id, now).await?;
        }
        let reopen = matches!(from, TicketStatus::Resolved | TicketStatus::Closed);
        sqlx::query(
            "UPDATE support_tickets SET status = $2, \
                    resolved_at = CASE WHEN $2 = 'resolved' THEN $3 WHEN $4 THEN NULL ELSE resolved_at END, \
                    resolved_by = CASE WHEN $2 = 'resolved' THEN $5 WHEN $4 THEN NULL ELSE resolved_by END, \
                    resolution_notes = CASE WHEN $2 = 'resolved' THEN coalesce($6, resolution_notes) \
                                            WHEN $4 THEN NULL ELSE resolution_notes END, \
                    closed_at = CASE WHEN $2 = 'closed' THEN $3 WHEN $4 THEN NULL ELSE closed_at END, \
                    assigned_to = CASE WHEN $7 THEN NULL ELSE assigned_to END, \
                    assigned_at = CASE WHEN $7 THEN NULL ELSE assigned_at END \
              WHERE id = $1",
        )
        .bind(t.id)
        .bind(to.as_str())
        .bind(now)
        .bind(reopen)
        .bind(actor.id)
        .bind(note)
        // Back to `open` from in_progress means giving the ticket back to the queue.
        .bind(from == TicketStatus::InProgress && to == TicketStatus::Open)
        .execute(&mut *tx)
        .await?;
        Ok(Some(Change {
            action: if reopen {
                "ticket.reopen"
            } else {
                "ticket.status"
            },
            details: json!({
                "from": from,
                "to": to,
                "note": note.is_some(),
                // Outside a resolution the note is the reason for the move (a crisis ticket
                // set to pending gives one); it is kept here, where the move is recorded.
                "reason": if to == TicketStatus::Resolved { None } else { note },
                "breaches_recorded": breaches,
                "paused_seconds_added": resumed,
            }),
        }))
    })
    .await
}

/// Reopens a resolved or closed ticket: back to in_progress when someone holds it, else open.
pub async fn reopen(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let held: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT assigned_to FROM support_tickets WHERE ticket_number = $1")
            .bind(normalize_number(number))
            .fetch_optional(&mut *conn)
            .await?;
    let to = match held {
        Some(Some(_)) => TicketStatus::InProgress,
        Some(None) => TicketStatus::Open,
        None => return Err(TicketError::NotFound(normalize_number(number))),
    };
    set_status(conn, actor, number, to, None, now).await
}

/// Moves a ticket to another support tier, with the reason, actor and time in its history.
/// Agents may escalate the tickets they work, upwards only; supervisors and admins any ticket,
/// either way.
pub async fn escalate(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    tier: Tier,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(TicketError::Invalid(
            "an escalation needs a reason (1 to 2,000 characters)".into(),
        ));
    }
    change_locked(conn, actor, number, now, async |tx, t| {
        may_work(actor, t)?;
        require_open(t)?;
        let from: Tier = t.escalation_tier.parse()?;
        if from == tier {
            return Err(TicketError::Invalid(format!(
                "ticket {} is already at tier {tier}",
                t.ticket_number
            )));
        }
        if tier < from {
            staff::require(actor, StaffRole::Supervisor, "moving a ticket down a tier")?;
        }
        move_tier(tx, actor, t.id, from, tier, reason, now).await?;
        Ok(Some(Change {
            action: "ticket.escalate",
            details: json!({ "from": from, "to": tier, "reason": reason }),
        }))
    })
    .await
}

/// Writes a tier change and its history row (`ticket_escalations`).
async fn move_tier(
    tx: &mut PgConnection,
    actor: &Actor,
    ticket_id: Uuid,
    from: Tier,
    to: Tier,
    reason: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_escalations (ticket_id, from_tier, to_tier, reason, actor_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ticket_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(reason)
    .bind(actor.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE support_tickets SET escalation_tier = $2, escalated = true, escalation_reason = $3, \
                escalated_at = $4, escalated_by = $5 WHERE id = $1",
    )
    .bind(ticket_id)
    .bind(to.as_str())
    .bind(reason)
    .bind(now)
    .bind(actor.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What a re-triage changes: each field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triage {
    /// New priority code (low, medium, high, urgent): the SLA targets follow.
    pub priority: Option<String>,
    /// New category code.
    pub category: Option<String>,
    /// New support tier.
    pub tier: Option<Tier>,
    /// New working language.
    pub language: Option<Lang>,
}

impl Triage {
    /// Nothing asked for.
    pub fn is_empty(&self) -> bool {
        *self == Triage::default()
    }
}

/// Re-triages a misfiled ticket (supervisors and admins): its priority, category, tier and
/// language, with a reason, in one audited change (`ticket.triage`, with each field's old and
/// new value). A new priority recomputes the SLA deadlines from the ticket's creation (the
/// database's due-date trigger, paused time kept); breaches already recorded stay recorded.
/// A tier change also enters the escalation history. The person's conversation is not
/// touched: they see nothing of it. Values equal to the current ones change nothing.
pub async fn triage(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    change: &Triage,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    staff::require(actor, StaffRole::Supervisor, "re-triaging tickets")?;
    if change.is_empty() {
        return Err(TicketError::Invalid(
            "a re-triage changes at least one of priority, category, tier or language".into(),
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(TicketError::Invalid(
            "a re-triage needs a reason (1 to 2,000 characters)".into(),
        ));
    }
    change_locked(conn, actor, number, now, async |tx, t| {
        require_open(t)?;
        let mut changes = serde_json::Map::new();
        let priority = change
            .priority
            .as_deref()
            .map(str::trim)
            .filter(|p| *p != t.priority);
        let category = change
            .category
            .as_deref()
            .map(str::trim)
            .filter(|c| *c != t.category);
        let language = change
            .language
            .map(Lang::code)
            .filter(|l| Some(*l) != t.language.as_deref());
        if let Some(p) = priority {
            changes.insert("priority".into(), json!({ "from": t.priority, "to": p }));
        }
        if let Some(c) = category {
            changes.insert("category".into(), json!({ "from": t.category, "to": c }));
        }
        if let Some(l) = language {
            changes.insert("language".into(), json!({ "from": t.language, "to": l }));
        }
        if priority.is_some() || category.is_some() || language.is_some() {
            sqlx::query(
                "UPDATE support_tickets SET priority = coalesce($2, priority), \
                        category = coalesce($3, category), language = coalesce($4, language) \
                  WHERE id = $1",
            )
            .bind(t.id)
            .bind(priority)
            .bind(category)
            .bind(language)
            .execute(&mut *tx)
            .await
            .map_err(|e| match violated_constraint(&e) {
                Some("support_tickets_category_fkey") => {
                    TicketError::UnknownCategory(category.unwrap_or_default().to_string())
                }
                Some("support_tickets_priority_fkey") => {
                    TicketError::UnknownPriority(priority.unwrap_or_default().to_string())
                }
                _ => TicketError::Sql(e),
            })?;
        }
        let from: Tier = t.escalation_tier.parse()?;
        if let Some(tier) = change.tier.filter(|tier| *tier != from) {
            move_tier(tx, actor, t.id, from, tier, reason, now).await?;
            changes.insert("tier".into(), json!({ "from": from, "to": tier }));
        }
        if changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(Change {
            action: "ticket.triage",
            details: json!({ "changes": changes, "reason": reason }),
        }))
    })
    .await
}

/// Hands every open ticket a staff member holds back to the unassigned queue (their account
/// is being disabled); returns the tickets' ids and numbers.
pub async fn release_all_held_by(
    conn: &mut PgConnection,
    staff_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(concat!(
        "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, \
                status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END \
          WHERE assigned_to = $1 AND status IN ",
        open_statuses!(),
        " RETURNING id, ticket_number"
    ))
    .bind(staff_id)
    .fetch_all(conn)
    .await
}

/// Gives an unassigned open ticket to a staff member chosen by routing, inside the caller's
/// transaction (which holds the routing lock). One conditional UPDATE, as [`take`] is: a
/// ticket someone took meanwhile stays theirs and `false` is returned. The first-response
/// clock is left alone: it runs in `open` and `in_progress` alike. Audited as `ticket.assign`
/// by the system, with the routing's reason.
pub async fn assign_routed(
    tx: &mut PgConnection,
    ticket_id: Uuid,
    staff_id: Uuid,
    how: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let number: Option<String> = sqlx::query_scalar(concat!(
        "UPDATE support_tickets SET assigned_to = $2, assigned_at = $3, \
                status = CASE WHEN status = 'open' THEN 'in_progress' ELSE status END, \
                updated_at = $3 \
          WHERE id = $1 AND assigned_to IS NULL AND status IN ",
        open_statuses!(),
        " RETURNING ticket_number"
    ))
    .bind(ticket_id)
    .bind(staff_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(number) = number else {
        return Ok(false);
    };
    audit::record(
        tx,
        &AuditEntry {
            actor: None,
            action: "ticket.assign",
            resource_type: "support_ticket",
            resource_id: Some(ticket_id),
            details: json!({ "ticket_number": number, "to_id": staff_id, "by": how }),
        },
    )
    .await?;
    Ok(true)
}

/// Hands back to the unassigned queue the open tickets a staff member holds that nobody has
/// answered yet (no first response): they went offline, and a person waiting for a first
/// answer must not wait on someone who is gone. Tickets already in conversation stay theirs.
/// Returns the tickets' ids and numbers.
pub async fn release_unanswered_held_by(
    tx: &mut PgConnection,
    staff_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(concat!(
        "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, \
                status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END \
          WHERE assigned_to = $1 AND first_response_at IS NULL AND status IN ",
        open_statuses!(),
        " RETURNING id, ticket_number"
    ))
    .bind(staff_id)
    .fetch_all(tx)
    .await
}
