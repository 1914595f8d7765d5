//! How a ticket comes to be: opened by staff or the system, or by a conversation handed over
//! to the team. Both paths are one INSERT statement with its audit row and notice.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
// AssertSqlSafe: the only text spliced into SQL here is constant column lists, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use super::TicketError;
use super::model::{RAW_CLOCK_COLUMNS, Subject, TICKET_SELECT, Ticket, TicketRow, clock_inputs};
use super::queue::{get, open_ticket_of};
use crate::audit::{self, AuditEntry};
use crate::db::{self, violated_constraint};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::staff::Actor;

/// A new ticket opened by staff (or by the system when `by` is `None`).
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The end user it is for.
    pub user_id: Uuid,
    /// Their conversation, if the ticket belongs to one.
    pub conversation_id: Option<Uuid>,
    /// Subject.
    pub subject: Subject,
    /// Details.
    pub description: Option<String>,
    /// Category code.
    pub category: String,
    /// Priority code.
    pub priority: String,
}

/// A failed ticket insert as the caller's mistake when it is one.
fn insert_error(e: sqlx::Error, new: &NewTicket) -> TicketError {
    match violated_constraint(&e) {
        Some("support_tickets_category_fkey") => TicketError::UnknownCategory(new.category.clone()),
        Some("support_tickets_priority_fkey") => TicketError::UnknownPriority(new.priority.clone()),
        Some("support_tickets_user_id_fkey") => {
            TicketError::UnknownReference(format!("user {}", new.user_id))
        }
        Some("support_tickets_conversation_id_fkey") => TicketError::UnknownReference(format!(
            "conversation {}",
            new.conversation_id.unwrap_or_default()
        )),
        _ => TicketError::Sql(e),
    }
}

/// Opens a ticket (any staff member; `None` for the system). Number and due dates come from
/// the database's trigger.
///
/// The ticket, its audit row and its notice are one statement and one transaction (the
/// caller's, when `conn` is in one). Numbers come from the year's sequence (migration
/// `20261122600001`): unique without a lock held until commit.
///
/// The notice is what would still serialise creations: a notifying transaction holds the
/// cluster-wide notify lock through its commit's WAL flush. So, on a connection outside a
/// transaction, the statement commits without waiting for its flush (the lock is released at
/// once) and [`db::wait_for_wal_flush`] then waits for it outside the lock, where concurrent
/// creations share flushes. When this function returns the ticket is durable, as before; a
/// console may hear of the ticket a moment before it is on disk. Inside a caller's
/// transaction, the caller's commit decides.
pub async fn create(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    new: &NewTicket,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let id = Uuid::new_v4();
    let details = json!({
        "source": if by.is_some() { "staff" } else { "system" },
        "category": new.category,
        "priority": new.priority,
        "conversation_id": new.conversation_id,
    });
    let mut notice = ChangeNotice::new(ChangeKind::TicketCreated).ticket(id);
    if let Some(c) = new.conversation_id {
        notice = notice.conversation(c);
    }
    insert(conn, id, by, new, &details, &notice, now).await
}

/// The one INSERT of a ticket, with its audit row and notice in the same statement (see
/// [`create`] on durability).
async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    by: Option<&Actor>,
    new: &NewTicket,
    details: &Value,
    notice: &ChangeNotice,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    // Inside a caller's transaction, its commit decides durability: never change it.
    let deferred_flush = !conn.is_in_transaction();
    // The unreferenced data-modifying CTE (audit) runs to completion anyway; the others are
    // joined so that they run. `set_config(.., true)` lasts until this statement's implicit
    // commit.
    let sql = format!(
        "WITH commit_mode AS ( \
             SELECT set_config('synchronous_commit', 'off', true) WHERE $12), \
         audit AS ( \
             INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details) \
             VALUES ($9, 'ticket.create', 'support_ticket', $8, $10)), \
         notice AS (SELECT pg_notify('{channel}', $11)), \
         t AS ( \
             INSERT INTO support_tickets (id, user_id, conversation_id, subject, description, \
                                          category, priority, status, created_at, updated_at, \
                                          language) \
             VALUES ($8, $1, $2, $3, $4, $5, $6, 'open', $7, $7, \
                     (SELECT c.lang FROM conversations c WHERE c.id = $2)) RETURNING *) \
         {TICKET_SELECT}{RAW_CLOCK_COLUMNS} \
         FROM t CROSS JOIN {inputs} CROSS JOIN notice \
         CROSS JOIN (SELECT count(*) FROM commit_mode) m \
         LEFT JOIN users u ON u.id = t.assigned_to",
        channel = events::CHANNEL,
        inputs = clock_inputs("$7"),
    );
    let row: TicketRow = sqlx::query_as(AssertSqlSafe(sql))
        .bind(new.user_id)
        .bind(new.conversation_id)
        .bind(new.subject.as_str())
        .bind(new.description.as_deref())
        .bind(&new.category)
        .bind(&new.priority)
        .bind(now)
        .bind(id)
        .bind(by.map(|a| a.id))
        .bind(details)
        .bind(events::payload(notice))
        .bind(deferred_flush)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| insert_error(e, new))?;
    if deferred_flush && let Err(source) = db::wait_for_wal_flush(conn).await {
        return Err(TicketError::Unconfirmed {
            number: row.ticket_number,
            source,
        });
    }
    Ok(Ticket::from(row))
}

/// Why and how a conversation goes to the team.
#[derive(Debug, Clone, Copy)]
pub struct HandOverReason<'a> {
    /// Category code.
    pub category: &'a str,
    /// Priority code.
    pub priority: &'a str,
    /// Why (the decision's reason), kept as a new ticket's description.
    pub reason: &'a str,
    /// The crisis gate fired: an open ticket of another category or priority becomes a crisis
    /// ticket (`category` and `priority` are then the crisis ones).
    pub crisis: bool,
    /// The decision's reason code, for the audit trail of a crisis upgrade.
    pub reason_code: &'a str,
}

/// A conversation handed over to the team.
#[derive(Debug, Clone)]
pub struct HandOver<'a> {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its person.
    pub user_id: Uuid,
    /// The subject a new ticket gets.
    pub subject: Subject,
    /// Why and how.
    pub reason: HandOverReason<'a>,
}

/// Opens the conversation's ticket, or joins its open one, inside the caller's transaction,
/// which must hold the conversation's row lock (so this check and the creation cannot race).
/// A crisis in a conversation whose ticket is already open (say, for a request for a human)
/// makes that ticket a crisis: urgent, whatever it was. Returns the ticket and whether it was
/// created here (and so already notified).
pub async fn hand_over(
    tx: &mut PgConnection,
    h: &HandOver<'_>,
    now: DateTime<Utc>,
) -> Result<(Ticket, bool), TicketError> {
    let e = &h.reason;
    if let Some(id) = open_ticket_of(tx, h.conversation_id).await? {
        let ticket = get(tx, id, now).await?;
        if e.crisis && (ticket.priority != e.priority || ticket.category != e.category) {
            upgrade_to_crisis(tx, &ticket, h, now).await?;
            return Ok((get(tx, id, now).await?, false));
        }
        return Ok((ticket, false));
    }
    let reason = e.reason.trim();
    let new = NewTicket {
        user_id: h.user_id,
        conversation_id: Some(h.conversation_id),
        subject: h.subject.clone(),
        description: (!reason.is_empty()).then(|| reason.to_string()),
        category: e.category.to_string(),
        priority: e.priority.to_string(),
    };
    let id = Uuid::new_v4();
    let details = json!({
        "source": "conversation",
        "conversation_id": h.conversation_id,
        "category": e.category,
        "priority": e.priority,
        "reason": reason,
    });
    let notice = ChangeNotice::new(ChangeKind::TicketCreated)
        .with(ChangeKind::ConversationChanged)
        .ticket(id)
        .conversation(h.conversation_id);
    Ok((
        insert(tx, id, None, &new, &details, &notice, now).await?,
        true,
    ))
}

/// The SLA trigger recomputes the due dates from the new priority.
async fn upgrade_to_crisis(
    tx: &mut PgConnection,
    ticket: &Ticket,
    h: &HandOver<'_>,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    // The subject becomes the message that raised the crisis: the queue must say what it is.
    sqlx::query(
        "UPDATE support_tickets SET category = $2, priority = $3, updated_at = $4, subject = $5 \
          WHERE id = $1",
    )
    .bind(ticket.id)
    .bind(h.reason.category)
    .bind(h.reason.priority)
    .bind(now)
    .bind(h.subject.as_str())
    .execute(&mut *tx)
    .await?;
    audit::record(
        tx,
        &AuditEntry {
            actor: None,
            action: "ticket.crisis_upgrade",
            resource_type: "support_ticket",
            resource_id: Some(ticket.id),
            details: json!({
                "conversation_id": h.conversation_id,
                "from_category": ticket.category,
                "from_priority": ticket.priority,
                "from_subject": ticket.subject,
                "reason_code": h.reason.reason_code,
            }),
        },
    )
    .await?;
    Ok(())
}
