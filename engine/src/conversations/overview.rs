//! The staff's view of conversations: the live list with its filters, and a transcript that
//! shows, beside each assistant reply, the decision that produced it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    ConversationError, DECISION_COLUMNS, DecisionRecord, MESSAGE_COLUMNS, Message, StaffReader,
};
use crate::decision::answer::Citation;
use crate::lang::Lang;

/// Most conversations one list read returns.
pub const MAX_LIST: i64 = 1_000;

/// Which conversations the staff list shows. Archived conversations appear only when asked for
/// by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only this status (active, escalated, closed, archived).
    pub status: Option<String>,
    /// Only this mode (AUTO, RAG, SUPPORT).
    pub mode: Option<String>,
    /// Only this language.
    pub language: Option<Lang>,
    /// Only conversations handed over to staff (`true`) or never handed over (`false`).
    pub escalated: Option<bool>,
    /// Words to find in the messages (full text, all three languages), the title or the
    /// ticket number.
    pub text: Option<String>,
    /// Most rows.
    pub limit: i64,
}

impl ConversationFilter {
    /// The words to find, trimmed; `None` when there are none.
    pub fn search_text(&self) -> Option<&str> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

/// One row of the staff conversation list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ConversationSummary {
    /// `conversations.id`.
    pub id: Uuid,
    /// The person's display name.
    pub user_name: String,
    /// Title, if any.
    pub title: Option<String>,
    /// AUTO, RAG or SUPPORT.
    pub mode: String,
    /// active, escalated, closed or archived.
    pub status: String,
    /// ar, fr or en, once known.
    pub language: Option<String>,
    /// Messages not deleted.
    pub message_count: i32,
    /// Latest activity (the last message, else the creation).
    pub last_activity_at: DateTime<Utc>,
    /// When handed over to staff.
    pub escalated_at: Option<DateTime<Utc>>,
    /// The newest message's first line (at most 120 characters).
    pub last_message: Option<String>,
    /// Who wrote it (user, assistant, staff, system).
    pub last_role: Option<String>,
    /// The newest ticket of the conversation.
    pub ticket_number: Option<String>,
    /// That ticket's priority.
    pub ticket_priority: Option<String>,
}

/// The staff conversation list, most recently active first. A search over the words of the
/// conversations is audited once per search `reader` runs.
pub async fn list(
    conn: &mut PgConnection,
    reader: &mut StaffReader,
    filter: &ConversationFilter,
) -> Result<Vec<ConversationSummary>, ConversationError> {
    if !(1..=MAX_LIST).contains(&filter.limit) {
        return Err(ConversationError::Invalid(format!(
            "the list size must be 1 to {MAX_LIST}"
        )));
    }
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT c.id, u.name AS user_name, c.title, c.mode, c.status, \
                left(c.language::text, 2) AS language, c.message_count, \
                coalesce(c.last_message_at, c.created_at) AS last_activity_at, c.escalated_at, \
                lm.last_message, lm.last_role, tk.ticket_number, tk.priority AS ticket_priority \
           FROM conversations c JOIN users u ON u.id = c.user_id \
           LEFT JOIN LATERAL (SELECT left(split_part(m.content, E'\\n', 1), 120) AS last_message, \
                                     m.role AS last_role \
                                FROM messages m \
                               WHERE m.conversation_id = c.id AND m.deleted_at IS NULL \
                               ORDER BY m.created_at DESC LIMIT 1) lm ON true \
           LEFT JOIN LATERAL (SELECT t.ticket_number, t.priority FROM support_tickets t \
                               WHERE t.conversation_id = c.id \
                               ORDER BY t.created_at DESC LIMIT 1) tk ON true \
          WHERE ",
    );
    match &filter.status {
        Some(status) => {
            qb.push("c.status = ").push_bind(status.clone());
        }
        // Written as the activity index's predicate so the newest-first scan uses it.
        None => {
            qb.push("c.archived_at IS NULL");
        }
    }
    if let Some(mode) = &filter.mode {
        qb.push(" AND c.mode = ").push_bind(mode.clone());
    }
    if let Some(lang) = filter.language {
        qb.push(" AND c.language = ").push_bind(lang.locale());
    }
    match filter.escalated {
        Some(true) => {
            qb.push(" AND c.escalated_at IS NOT NULL");
        }
        Some(false) => {
            qb.push(" AND c.escalated_at IS NULL");
        }
        None => {}
    }
    if let Some(text) = filter.search_text() {
        qb.push(" AND (c.title ILIKE ")
            .push_bind(format!("%{}%", like_escape(text)))
            .push(" OR EXISTS (SELECT 1 FROM support_tickets t WHERE t.conversation_id = c.id AND t.ticket_number = ")
            .push_bind(text.to_uppercase())
            .push(") OR c.id IN (");
        // One branch per language, written as its partial GIN index so that index is used.
        for (i, lang) in Lang::ALL.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ");
            }
            let cfg = lang.ts_config();
            qb.push(format!(
                "SELECT conversation_id FROM messages WHERE deleted_at IS NULL \
                 AND to_tsvector('{cfg}'::regconfig, content) @@ websearch_to_tsquery('{cfg}'::regconfig, "
            ))
            .push_bind(text.to_string())
            .push(")");
        }
        qb.push("))");
    }
    qb.push(format!(
        " ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id LIMIT {}",
        filter.limit
    ));
    let list: Vec<ConversationSummary> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let search = filter
        .search_text()
        .map(|text| (text, filter.language, list.len()));
    reader.searched(conn, search).await;
    Ok(list)
}

/// `%`, `_` and `\` taken literally in an ILIKE pattern.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One message of a transcript, with the decision behind an assistant reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptEntry {
    /// The message.
    pub message: Message,
    /// For an assistant reply: the decision that produced it.
    pub decision: Option<DecisionRecord>,
    /// For an assistant answer: the knowledge it cites.
    pub citations: Vec<Citation>,
}

/// The newest `limit` messages of a conversation, oldest first, each assistant reply with its
/// decision (reason, confidence) and cited sources; audited once per opening by `reader`.
pub async fn transcript(
    conn: &mut PgConnection,
    reader: &mut StaffReader,
    conversation_id: Uuid,
    limit: i64,
) -> Result<Vec<TranscriptEntry>, ConversationError> {
    let entries = transcript_unaudited(conn, conversation_id, limit).await?;
    reader.read_transcript(conn, conversation_id).await;
    Ok(entries)
}

/// [`transcript`] for reads audited by their caller (a ticket's, as part of reading it).
pub(crate) async fn transcript_unaudited(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    limit: i64,
) -> Result<Vec<TranscriptEntry>, ConversationError> {
    let limit = limit.clamp(1, super::MAX_PAGE);
    let mut messages: Vec<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL \
          ORDER BY created_at DESC, id DESC LIMIT $2"
    )))
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    messages.reverse();
    // An assistant reply names its decision in its metadata.
    let decision_id =
        |m: &Message| -> Option<Uuid> { m.metadata.get("decision_id")?.as_str()?.parse().ok() };
    let decision_ids: Vec<Uuid> = messages.iter().filter_map(decision_id).collect();
    let decisions: Vec<DecisionRecord> = if decision_ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {DECISION_COLUMNS} FROM decision_logs WHERE id = ANY($1)"
        )))
        .bind(&decision_ids)
        .fetch_all(&mut *conn)
        .await?
    };
    Ok(messages
        .into_iter()
        .map(|message| {
            let decision =
                decision_id(&message).and_then(|id| decisions.iter().find(|d| d.id == id).cloned());
            let citations = message
                .metadata
                .get("citations")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default();
            TranscriptEntry {
                message,
                decision,
                citations,
            }
        })
        .collect())
}
