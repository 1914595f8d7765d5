//! The person's own view of their conversations: what an end user may read of them, and only of
//! their own. Staff read conversations through [`super::overview`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::{CONVERSATION_COLUMNS, Conversation, ConversationError, Cursor, Message};

/// What an end user may see of a message: its text and, for the assistant's replies, the
/// cited sources and the ticket reference. Everything else in the metadata (decision
/// internals, the staff author) stays inside the service.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicMessage {
    /// `messages.id`.
    pub id: Uuid,
    /// user, assistant, system or staff (a support worker's reply).
    pub role: String,
    /// The text.
    pub content: String,
    /// The sources an answer is based on (title, source, document id).
    #[schema(value_type = Option<Vec<Object>>)]
    pub citations: Option<Value>,
    /// The support ticket's number when the reply hands over to a human.
    pub ticket_number: Option<String>,
    /// The client's idempotency key for the person's own messages.
    pub client_message_id: Option<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Resume position for the live stream and paging.
    pub cursor: String,
}

impl From<&Message> for PublicMessage {
    fn from(m: &Message) -> Self {
        let citations = m
            .metadata
            .get("citations")
            .filter(|c| !c.is_null())
            .map(|c| {
                Value::Array(
                    c.as_array()
                        .map(|a| {
                            a.iter()
                                .map(|c| {
                                    json!({
                                        "document_id": c.get("document_id"),
                                        "title": c.get("title"),
                                        "source": c.get("source"),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            });
        PublicMessage {
            id: m.id,
            role: m.role.clone(),
            content: m.content.clone(),
            citations,
            ticket_number: m
                .metadata
                .get("ticket_number")
                .and_then(Value::as_str)
                .map(str::to_string),
            client_message_id: m.client_message_id.clone(),
            created_at: m.created_at,
            cursor: Cursor {
                created_at: m.created_at,
                id: m.id,
            }
            .to_string(),
        }
    }
}

/// Refuses unless `conversation_id` is one of the person's own conversations; another
/// person's conversation is reported as missing, so its existence is not revealed.
pub async fn own_conversation(
    conn: &mut PgConnection,
    user_id: Uuid,
    conversation_id: Uuid,
) -> Result<Conversation, ConversationError> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
    )))
    .bind(conversation_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?
    .ok_or(ConversationError::NotFound(conversation_id))
}

/// The person's conversations, most recently active first.
pub async fn conversations(
    conn: &mut PgConnection,
    user_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Conversation>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
          ORDER BY coalesce(last_message_at, created_at) DESC, id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Messages of a conversation after `after` (all when `None`), oldest first: what the live
/// stream delivers. Only messages of the conversation itself, never ticket comments.
pub async fn messages_after(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    after: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<Vec<PublicMessage>> {
    let rows: Vec<Message> = sqlx::query_as(
        "SELECT id, conversation_id, role, content, metadata, tokens_used, processing_time_ms, \
                client_message_id, created_at \
           FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL \
            AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
          ORDER BY created_at, id LIMIT $4",
    )
    .bind(conversation_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id).unwrap_or_default())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(PublicMessage::from).collect())
}

/// The position of a conversation's newest message, if any.
pub async fn latest_cursor(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Option<Cursor>> {
    let row: Option<(DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT created_at, id FROM messages WHERE conversation_id = $1 \
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(created_at, id)| Cursor { created_at, id }))
}
