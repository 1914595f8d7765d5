//! Comments on a ticket: public ones are the team's replies in the person's conversation,
//! internal ones stay among staff.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::lifecycle::{lock, may_work, record};
use super::model::{Comment, CommentText, TicketStatus, Visibility, normalize_number};
use super::queue::comments;
use super::{TicketError, clock};
use crate::conversations;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::staff::{self, Actor, StaffRole};

/// Comments on a ticket. A public comment is delivered into the user's conversation as a
/// `staff` message (a conversation is opened for a ticket that has none) and, the first time,
/// stops the first-response clock. An internal comment stays among staff. Closed tickets take
/// internal comments only.
pub async fn comment(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    text: &CommentText,
    visibility: Visibility,
    now: DateTime<Utc>,
) -> Result<Comment, TicketError> {
    let mut tx = conn.begin().await?;
    // Locks in a turn's order, the conversation before the ticket: a turn locks its
    // conversation and then the tickets it resumes, and a reply that held the ticket while
    // its message waited for the conversation row (foreign key, message count) deadlocked
    // with it.
    let conversation: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT conversation_id FROM support_tickets WHERE ticket_number = $1")
            .bind(normalize_number(number))
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(Some(c)) = conversation {
        conversations::lock(&mut tx, c).await?;
    }
    let t = lock(&mut tx, number).await?;
    may_work(actor, &t)?;
    let public = visibility == Visibility::Public;
    if public && t.status == TicketStatus::Closed {
        return Err(TicketError::NotOpen {
            number: t.ticket_number,
            status: t.status,
        });
    }
    let comment_id = Uuid::new_v4();
    let mut notice = ChangeNotice::new(ChangeKind::Comment).ticket(t.id);
    let mut message_id = None;
    let mut conversation_id = t.conversation_id;
    let mut first_response = false;
    if public {
        let conv = match t.conversation_id {
            Some(c) => c,
            None => {
                // No title: the ticket's subject is staff wording (the person sees their
                // conversations' titles), and the first message says what it is about.
                let c = conversations::open_for_ticket(&mut tx, t.user_id, now).await?;
                sqlx::query("UPDATE support_tickets SET conversation_id = $2 WHERE id = $1")
                    .bind(t.id)
                    .bind(c)
                    .execute(&mut *tx)
                    .await?;
                notice = notice.with(ChangeKind::ConversationCreated);
                c
            }
        };
        conversation_id = Some(conv);
        // Stamped when written, under the conversation's lock, as the person's turns stamp
        // theirs: live streams deliver messages in (created_at, id) order from a cursor, and a
        // reply stamped with `now` from before a wait for the lock (a turn of the person
        // resuming this ticket) would sort before messages already delivered and never be.
        let m = conversations::post_staff_message(
            &mut tx,
            conv,
            text.as_str(),
            actor.id,
            &json!({
                "ticket_id": t.id,
                "ticket_number": t.ticket_number,
                "ticket_comment_id": comment_id,
                "author_name": actor.name,
            }),
        )
        .await?;
        message_id = Some(m);
        notice = notice.with(ChangeKind::Message).conversation(conv);
        if t.first_response_at.is_none() {
            // A late answer is recorded as a breach before the clock stops.
            clock::record_breaches(&mut tx, t.id, now).await?;
            sqlx::query("UPDATE support_tickets SET first_response_at = $2 WHERE id = $1")
                .bind(t.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            first_response = true;
            notice = notice.with(ChangeKind::TicketChanged);
        }
    }
    let comment: Comment = sqlx::query_as(
        "WITH c AS (INSERT INTO ticket_comments (id, ticket_id, user_id, content, is_internal, \
                                                 message_id, created_at, updated_at) \
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *) \
         SELECT c.id, c.ticket_id, u.email::text AS author_email, u.name AS author_name, \
                c.content, c.is_internal, c.message_id, c.created_at, c.edited_at, c.deleted_at \
           FROM c JOIN users u ON u.id = c.user_id",
    )
    .bind(comment_id)
    .bind(t.id)
    .bind(actor.id)
    .bind(text.as_str())
    .bind(!public)
    .bind(message_id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    record(
        &mut tx,
        actor,
        "ticket.comment",
        t.id,
        json!({
            "comment_id": comment.id,
            "internal": !public,
            "message_id": message_id,
            "conversation_id": conversation_id,
            "first_response": first_response,
            "characters": text.as_str().chars().count(),
        }),
    )
    .await?;
    events::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    Ok(comment)
}

/// A live comment locked for a change by its author or a supervisor.
#[derive(sqlx::FromRow)]
struct LockedComment {
    id: Uuid,
    ticket_id: Uuid,
    author: Uuid,
    content: String,
    message_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
}

/// Locks a live comment for a change that `actor` may make: their own comment, or anyone's
/// for a supervisor (`doing` names the change in the refusal).
async fn lock_comment(
    conn: &mut PgConnection,
    actor: &Actor,
    comment_id: Uuid,
    doing: &'static str,
) -> Result<LockedComment, TicketError> {
    let c: LockedComment = sqlx::query_as(
        "SELECT c.id, c.ticket_id, c.user_id AS author, c.content, c.message_id, t.conversation_id \
           FROM ticket_comments c JOIN support_tickets t ON t.id = c.ticket_id \
          WHERE c.id = $1 AND c.deleted_at IS NULL FOR UPDATE OF c",
    )
    .bind(comment_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(TicketError::CommentNotFound(comment_id))?;
    if c.author != actor.id {
        staff::require(actor, StaffRole::Supervisor, doing)?;
    }
    Ok(c)
}

/// Records a change to a comment in the audit trail and tells the consoles (and the person's
/// stream, when the comment was delivered to them).
async fn changed(
    tx: &mut PgConnection,
    actor: &Actor,
    c: &LockedComment,
    action: &'static str,
) -> Result<(), TicketError> {
    record(
        tx,
        actor,
        action,
        c.ticket_id,
        json!({ "comment_id": c.id, "message_id": c.message_id }),
    )
    .await?;
    events::notify(
        tx,
        &comment_notice(c.ticket_id, c.message_id, c.conversation_id),
    )
    .await?;
    Ok(())
}

/// Edits a comment (its author, or a supervisor). The previous text goes to
/// `ticket_comment_edits`; a delivered public comment's message is edited too.
pub async fn edit_comment(
    conn: &mut PgConnection,
    actor: &Actor,
    comment_id: Uuid,
    text: &CommentText,
    now: DateTime<Utc>,
) -> Result<Comment, TicketError> {
    let mut tx = conn.begin().await?;
    let c = lock_comment(&mut tx, actor, comment_id, "editing someone else's comment").await?;
    if c.content != text.as_str() {
        sqlx::query(
            "INSERT INTO ticket_comment_edits (comment_id, previous_content, edited_by, edited_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(comment_id)
        .bind(&c.content)
        .bind(actor.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE ticket_comments SET content = $2 WHERE id = $1")
            .bind(comment_id)
            .bind(text.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(m) = c.message_id {
            conversations::edit_message(&mut tx, m, text.as_str()).await?;
        }
        changed(&mut tx, actor, &c, "ticket.comment_edit").await?;
    }
    let comment = comments(&mut tx, c.ticket_id)
        .await?
        .into_iter()
        .find(|c| c.id == comment_id)
        .ok_or(TicketError::CommentNotFound(comment_id))?;
    tx.commit().await?;
    Ok(comment)
}

/// Soft-deletes a comment (its author, or a supervisor); its text stays for the record, and a
/// delivered public comment's message is withdrawn from the conversation.
pub async fn delete_comment(
    conn: &mut PgConnection,
    actor: &Actor,
    comment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    let mut tx = conn.begin().await?;
    let c = lock_comment(
        &mut tx,
        actor,
        comment_id,
        "deleting someone else's comment",
    )
    .await?;
    sqlx::query("UPDATE ticket_comments SET deleted_at = $2 WHERE id = $1")
        .bind(comment_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if let Some(m) = c.message_id {
        conversations::withdraw_message(&mut tx, m, now).await?;
    }
    changed(&mut tx, actor, &c, "ticket.comment_delete").await?;
    tx.commit().await?;
    Ok(())
}

fn comment_notice(
    ticket_id: Uuid,
    message_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
) -> ChangeNotice {
    let mut notice = ChangeNotice::new(ChangeKind::Comment).ticket(ticket_id);
    if message_id.is_some()
        && let Some(c) = conversation_id
    {
        notice = notice.with(ChangeKind::Message).conversation(c);
    }
    notice
}
