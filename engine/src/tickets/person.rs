//! What a person's data rights need of their tickets: the export and the erasure.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The tickets about a person as their data export shows them (no internal comments, no staff),
/// oldest first.
pub async fn export_for_person(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('ticket_number', ticket_number, 'conversation_id', conversation_id, \
                'subject', subject, 'category', category, 'priority', priority, 'status', status, \
                'created_at', created_at, 'first_response_at', first_response_at, \
                'resolved_at', resolved_at, 'closed_at', closed_at) \
           FROM support_tickets WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Erases every text of the tickets about a person (subject, description, resolution notes,
/// comments and their edit history) for the right to be forgotten, keeping the rows for the
/// statistics. Returns how many tickets were erased.
pub async fn redact_for_person(
    conn: &mut PgConnection,
    user_id: Uuid,
    placeholder: &str,
) -> sqlx::Result<u64> {
    let tickets = sqlx::query(
        "UPDATE support_tickets SET subject = $2, description = NULL, resolution_notes = NULL \
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(placeholder)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM ticket_comment_edits e USING ticket_comments c, support_tickets t \
          WHERE e.comment_id = c.id AND c.ticket_id = t.id AND t.user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ticket_comments c SET content = $2 FROM support_tickets t \
          WHERE c.ticket_id = t.id AND t.user_id = $1",
    )
    .bind(user_id)
    .bind(placeholder)
    .execute(&mut *conn)
    .await?;
    Ok(tickets)
}
