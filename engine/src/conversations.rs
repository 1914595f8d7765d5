//! Conversations and messages: start, post a message and get the turn, read page by page,
//! close, archive and search.
//!
//! A turn (the person's message, its decision, and the assistant's reply — with the support
//! ticket when a human takes over) is written in **one** transaction, so a crash leaves either
//! the whole turn or nothing. The client's message id is an idempotency key: a retry with the
//! same key returns the stored turn and writes nothing. Retrieval runs before the transaction
//! (it only reads approved knowledge), so the transaction holds its locks for milliseconds.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::decision::auto::Mode;
use crate::events::{self, ChangeKind, ChangeNotice};

use crate::lang::Lang;

mod overview;
pub mod person;
mod reading;
pub(crate) use overview::transcript_unaudited;
pub use overview::{
    ConversationFilter, ConversationSummary, MAX_LIST, TranscriptEntry, list, transcript,
};
pub use reading::StaffReader;

/// Most characters a message may have (after trimming), as `chk_messages_content_length`.
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// Most characters of a client message id, as the column.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;
/// Most messages per page.
pub const MAX_PAGE: i64 = 200;

/// Why message content was refused; each variant names the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Nothing left after trimming.
    #[error("the message is empty (rule: at least 1 character after trimming spaces)")]
    Empty,
    /// Longer than [`MAX_CONTENT_CHARS`].
    #[error("the message has {chars} characters (rule: at most 10,000 characters after trimming)")]
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// A control character other than newline and tab.
    #[error(
        "the message contains the control character U+{code:04X} at character {position} \
         (rule: no control characters other than newline and tab)"
    )]
    ControlCharacter {
        /// The character's code point.
        code: u32,
        /// Its 1-based position in the trimmed text.
        position: usize,
    },
    /// The bytes are not UTF-8.
    #[error("the message is not valid UTF-8 (rule: text must be valid UTF-8)")]
    InvalidUtf8,
}

/// Validated message text: trimmed, 1..=10,000 characters, no control characters but `\n`
/// and `\t`. (A `&str` is UTF-8 by construction; [`MessageContent::parse_bytes`] checks raw
/// input.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageContent(String);

impl MessageContent {
    /// Validates and trims `raw`.
    pub fn parse(raw: &str) -> Result<Self, ContentError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(ContentError::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_CONTENT_CHARS {
            return Err(ContentError::TooLong { chars });
        }
        // `\r` is a control character too: clients normalise line ends to `\n`.
        if let Some((i, c)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
        {
            return Err(ContentError::ControlCharacter {
                code: c as u32,
                position: i + 1,
            });
        }
        Ok(MessageContent(text.to_string()))
    }

    /// Validates raw bytes (e.g. a request body), refusing invalid UTF-8.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, ContentError> {
        Self::parse(std::str::from_utf8(raw).map_err(|_| ContentError::InvalidUtf8)?)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a conversation operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The content breaks a rule.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// No conversation with this id.
    #[error("no conversation {0}")]
    NotFound(Uuid),
    /// No user with this id.
    #[error("no user {0}")]
    UnknownUser(Uuid),
    /// The conversation is closed or archived and takes no new messages.
    #[error("conversation {id} is {status} and takes no new messages")]
    NotActive {
        /// The conversation.
        id: Uuid,
        /// Its status.
        status: String,
    },
    /// The client message id is empty, too long or holds control characters.
    #[error("the client message id must have 1 to 128 characters and no control characters")]
    InvalidClientMessageId,
    /// The same client message id was used before for different content.
    #[error(
        "client message id {0:?} was already used for a different message in this conversation"
    )]
    IdempotencyConflict(String),
    /// A page cursor that does not parse.
    #[error("bad cursor {0:?}")]
    BadCursor(String),
    /// A parameter out of range.
    #[error("{0}")]
    Invalid(String),
    /// The staff member may not do this.
    #[error(transparent)]
    Staff(#[from] crate::staff::StaffError),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Maps a database error to a domain error by the constraint it violated.
fn map_sql(
    e: sqlx::Error,
    conversation_id: Option<Uuid>,
    user_id: Option<Uuid>,
) -> ConversationError {
    match violated_constraint(&e) {
        Some("conversations_user_id_fkey") => {
            ConversationError::UnknownUser(user_id.unwrap_or_default())
        }
        Some("messages_conversation_id_fkey") | Some("decision_logs_conversation_id_fkey") => {
            ConversationError::NotFound(conversation_id.unwrap_or_default())
        }
        Some("chk_messages_content_length") => ConversationError::Content(ContentError::Empty),
        Some("chk_messages_client_message_id") => ConversationError::InvalidClientMessageId,
        _ => ConversationError::Sql(e),
    }
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Conversation {
    /// `conversations.id`.
    pub id: Uuid,
    /// The end user.
    pub user_id: Uuid,
    /// Title, if any.
    pub title: Option<String>,
    /// AUTO, RAG or SUPPORT.
    pub mode: String,
    /// active, escalated, closed or archived.
    pub status: String,
    /// Locale (ar-DZ, fr-FR, en-US), `None` until known.
    pub language: Option<String>,
    /// Messages not deleted.
    pub message_count: i32,
    /// Latest message.
    pub last_message_at: Option<DateTime<Utc>>,
    /// When handed over to staff.
    pub escalated_at: Option<DateTime<Utc>>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Archival.
    pub archived_at: Option<DateTime<Utc>>,
}

/// The columns of a [`Conversation`] row, for the modules that select conversations themselves.
pub const CONVERSATION_COLUMNS: &str = "id, user_id, title, mode, status, language::text AS language, message_count, \
     last_message_at, escalated_at, created_at, updated_at, archived_at";

/// A message row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Message {
    /// `messages.id`.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// user, assistant, system or staff.
    pub role: String,
    /// The text.
    pub content: String,
    /// Metadata (for assistant replies: the decision, cited documents, ticket).
    pub metadata: Value,
    /// Tokens of an assistant reply.
    pub tokens_used: Option<i32>,
    /// Time to produce an assistant reply.
    pub processing_time_ms: Option<i32>,
    /// The client's idempotency key.
    pub client_message_id: Option<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, role, content, metadata, tokens_used, processing_time_ms, \
     client_message_id, created_at";

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DecisionRecord {
    /// `decision_logs.id`.
    pub id: Uuid,
    /// The message decided on.
    pub message_id: Option<Uuid>,
    /// rag or support.
    pub decision: String,
    /// Stable reason code.
    pub reason_code: Option<String>,
    /// Reason in Arabic.
    pub reason_ar: Option<String>,
    /// Reason in French.
    pub reason_fr: Option<String>,
    /// Reason in English.
    pub reason_en: Option<String>,
    /// Confidence in 0..1.
    pub confidence: f64,
    /// Evidence (with the ticket category and priority for SUPPORT).
    pub evidence: Value,
    /// The answer's composer, if any.
    pub model_used: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

const DECISION_COLUMNS: &str = "id, message_id, decision, reason_code, reason_ar, reason_fr, reason_en, confidence, \
     evidence, model_used, created_at";

/// Starts a conversation for `user_id`. `lang` `None` leaves the language to be detected from
/// the first message (readers fall back to the user's locale meanwhile).
pub async fn start(
    pool: &PgPool,
    user_id: Uuid,
    mode: Mode,
    lang: Option<Lang>,
) -> Result<Conversation, ConversationError> {
    start_on(&mut *pool.acquire().await?, user_id, mode, lang).await
}

/// [`start`] on a connection, or in the caller's transaction.
pub async fn start_on(
    conn: &mut PgConnection,
    user_id: Uuid,
    mode: Mode,
    lang: Option<Lang>,
) -> Result<Conversation, ConversationError> {
    let mut tx = conn.begin().await?;
    let conversation: Conversation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversations (user_id, mode, language) VALUES ($1, $2, $3) RETURNING {CONVERSATION_COLUMNS}"
    )))
    .bind(user_id)
    .bind(mode.as_str())
    .bind(lang.map(|l| l.locale()))
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| map_sql(e, None, Some(user_id)))?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::ConversationCreated).conversation(conversation.id),
    )
    .await?;
    tx.commit().await?;
    Ok(conversation)
}

/// Reads a conversation.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Conversation, ConversationError> {
    get_on(&mut *pool.acquire().await?, id).await
}

/// [`get`] on a connection, or in the caller's transaction.
pub async fn get_on(conn: &mut PgConnection, id: Uuid) -> Result<Conversation, ConversationError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(ConversationError::NotFound(id))
}

/// What a turn needs to know of its conversation before deciding.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TurnTarget {
    /// Its person.
    pub user_id: Uuid,
    /// active, escalated, closed or archived.
    pub status: String,
    /// AUTO, RAG or SUPPORT.
    pub mode: String,
    /// Its locale, `None` until the first message set it.
    pub language: Option<String>,
    /// The person's locale: the language when the message gives none.
    pub user_locale: String,
    /// The reason code of the assistant's latest reply (read only without the lock: what the
    /// decision needs to know before the turn writes).
    pub last_reason_code: Option<String>,
}

impl TurnTarget {
    /// Whether the conversation takes messages (closed and archived ones do not).
    pub fn is_active(&self) -> bool {
        self.status != "closed" && self.status != "archived"
    }
}

/// The conversation a message goes to. With `lock`, its row stays locked until the caller's
/// transaction ends: that serializes the turns of one conversation. Without it, the reason of
/// the assistant's latest reply comes along (one round trip for what the decision needs).
pub async fn target(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<TurnTarget, ConversationError> {
    let (last_reason, lock_clause) = if lock {
        ("NULL::text", " FOR UPDATE OF c")
    } else {
        (
            "(SELECT m.metadata->>'reason_code' FROM messages m WHERE m.conversation_id = c.id \
                AND m.role = 'assistant' AND m.deleted_at IS NULL \
              ORDER BY m.created_at DESC, m.id DESC LIMIT 1)",
            "",
        )
    };
    let sql = format!(
        "SELECT c.user_id, c.status, c.mode, c.language::text AS language, \
                u.locale::text AS user_locale, {last_reason} AS last_reason_code \
           FROM conversations c JOIN users u ON u.id = c.user_id WHERE c.id = $1{lock_clause}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ConversationError::NotFound(id))
}

/// Locks a conversation's row until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM conversations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The texts a ticket's subject is made from: the title and the person's first message.
pub async fn subject_sources(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<(Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT c.title, (SELECT m.content FROM messages m WHERE m.conversation_id = c.id \
                AND m.role = 'user' AND m.deleted_at IS NULL ORDER BY m.created_at, m.id LIMIT 1) \
           FROM conversations c WHERE c.id = $1",
    )
    .bind(conversation_id)
    .fetch_one(conn)
    .await
}

/// Opens a closed or archived conversation again (a message in crisis is never refused),
/// audited.
pub async fn reopen_for_crisis(
    conn: &mut PgConnection,
    id: Uuid,
    from_status: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE conversations SET status = 'active', archived_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    audit::record(
        conn,
        &AuditEntry {
            actor: None,
            action: "conversation.reopen",
            resource_type: "conversation",
            resource_id: Some(id),
            details: json!({"from": from_status, "reason": "crisis_message"}),
        },
    )
    .await?;
    Ok(())
}

/// Sets the conversation's language when it has none yet, so that later turns (and the
/// console) use the language detected from its first message.
pub async fn settle_language(conn: &mut PgConnection, id: Uuid, lang: Lang) -> sqlx::Result<()> {
    sqlx::query("UPDATE conversations SET language = $2 WHERE id = $1 AND language IS NULL")
        .bind(id)
        .bind(lang.locale())
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a conversation as handed over to the team (it stays so while its ticket is open,
/// even if staff had set it back to active).
pub async fn mark_escalated(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE conversations SET status = 'escalated', escalated_at = coalesce(escalated_at, $2) \
         WHERE id = $1 AND status <> 'escalated'",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Opens a conversation for a ticket that has none, for the team's first public reply. No
/// title: the ticket's subject is staff wording (the person sees their conversations'
/// titles), and the first message says what it is about.
pub async fn open_for_ticket(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO conversations (user_id, mode, status, escalated_at, created_at, updated_at) \
         VALUES ($1, 'SUPPORT', 'escalated', $2, $2, $2) RETURNING id",
    )
    .bind(user_id)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Stores the person's message under its client key (`None`: no key). Returns `None` when the
/// key exists already (a concurrent retry committed first).
pub async fn insert_user_message(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    content: &MessageContent,
    client_message_id: Option<&str>,
) -> Result<Option<Message>, ConversationError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (conversation_id, role, content, client_message_id, created_at) \
         VALUES ($1, 'user', $2, $3, clock_timestamp()) \
         ON CONFLICT (conversation_id, client_message_id) DO NOTHING RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(content.as_str())
    .bind(client_message_id)
    .fetch_optional(conn)
    .await
    .map_err(|e| map_sql(e, Some(conversation_id), None))
}

/// The assistant's reply to a message, as a turn stores it.
#[derive(Debug, Clone)]
pub struct NewReply<'a> {
    /// The text.
    pub content: &'a str,
    /// The decision, cited documents and ticket.
    pub metadata: &'a Value,
    /// Its tokens.
    pub tokens: i32,
    /// The turn's time so far.
    pub processing_time_ms: i32,
}

/// Stores the assistant's reply. Stamped when written, under the conversation's lock, so that
/// it sorts after everything live streams have delivered.
pub async fn insert_reply(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    reply: &NewReply<'_>,
) -> sqlx::Result<Message> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (conversation_id, role, content, metadata, tokens_used, processing_time_ms, created_at) \
         VALUES ($1, 'assistant', $2, $3, $4, $5, clock_timestamp()) RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(reply.content)
    .bind(reply.metadata)
    .bind(reply.tokens)
    .bind(reply.processing_time_ms)
    .fetch_one(conn)
    .await
}

/// Delivers a staff member's public reply into the conversation as a `staff` message. Stamped
/// when written, under the conversation's lock (the caller's), as the person's turns stamp
/// theirs: live streams deliver messages in (created_at, id) order from a cursor, and a reply
/// stamped from before a wait for the lock (a turn of the person resuming the ticket) would
/// sort before messages already delivered and never be.
pub async fn post_staff_message(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    content: &str,
    author_id: Uuid,
    metadata: &Value,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content, author_id, metadata, created_at) \
         VALUES ($1, 'staff', $2, $3, $4, clock_timestamp()) RETURNING id",
    )
    .bind(conversation_id)
    .bind(content)
    .bind(author_id)
    .bind(metadata)
    .fetch_one(conn)
    .await
}

/// Replaces a delivered message's text (an edited staff reply).
pub async fn edit_message(conn: &mut PgConnection, id: Uuid, content: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE messages SET content = $2 WHERE id = $1")
        .bind(id)
        .bind(content)
        .execute(conn)
        .await?;
    Ok(())
}

/// Withdraws a delivered message from the conversation (a deleted staff reply).
pub async fn withdraw_message(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE messages SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// A message by its client key.
pub async fn find_by_client_id(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    client_message_id: &str,
) -> sqlx::Result<Option<Message>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND client_message_id = $2"
    )))
    .bind(conversation_id)
    .bind(client_message_id)
    .fetch_optional(conn)
    .await
}

/// The assistant's stored reply to a message, if any.
pub async fn reply_to(conn: &mut PgConnection, message: &Message) -> sqlx::Result<Option<Message>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND role = 'assistant' \
            AND metadata->>'reply_to' = $2 ORDER BY created_at, id LIMIT 1"
    )))
    .bind(message.conversation_id)
    .bind(message.id.to_string())
    .fetch_optional(conn)
    .await
}

/// A decision as a turn stores it in `decision_logs`.
#[derive(Debug, Clone)]
pub struct NewDecision<'a> {
    /// rag or support.
    pub decision: &'a str,
    /// Stable reason code.
    pub reason_code: &'a str,
    /// The reason in Arabic, French and English.
    pub reason: [&'a str; 3],
    /// Evidence.
    pub evidence: &'a Value,
    /// Confidence in 0..1.
    pub confidence: f64,
    /// The answer's composer.
    pub model_used: Option<&'a str>,
    /// The chat model's prompt tokens.
    pub prompt_tokens: Option<i32>,
    /// The answer's tokens.
    pub completion_tokens: Option<i32>,
}

/// Records the decision on a message.
pub async fn record_decision(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    message_id: Uuid,
    d: &NewDecision<'_>,
) -> sqlx::Result<DecisionRecord> {
    let [ar, fr, en] = d.reason;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO decision_logs (conversation_id, message_id, decision, reason, reason_code, reason_ar, \
                                    reason_fr, reason_en, evidence, confidence, model_used, prompt_tokens, \
                                    completion_tokens) \
         VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9, $10, $11, $12) RETURNING {DECISION_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(message_id)
    .bind(d.decision)
    .bind(ar)
    .bind(d.reason_code)
    .bind(fr)
    .bind(en)
    .bind(d.evidence)
    .bind(d.confidence)
    .bind(d.model_used)
    .bind(d.prompt_tokens)
    .bind(d.completion_tokens)
    .fetch_one(conn)
    .await
}

/// The decision recorded on a message, if any.
pub async fn decision_on(
    conn: &mut PgConnection,
    message_id: Uuid,
) -> sqlx::Result<Option<DecisionRecord>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DECISION_COLUMNS} FROM decision_logs WHERE message_id = $1 ORDER BY created_at, id LIMIT 1"
    )))
    .bind(message_id)
    .fetch_optional(conn)
    .await
}

/// A position in a conversation's history: the oldest message of the page already read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// That message's creation time.
    pub created_at: DateTime<Utc>,
    /// Its id (ties).
    pub id: Uuid,
}

impl fmt::Display for Cursor {
    /// `<microseconds since the epoch>.<uuid>`: opaque to clients, exact to the microsecond.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.timestamp_micros(), self.id)
    }
}

impl FromStr for Cursor {
    type Err = ConversationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConversationError::BadCursor(s.to_string());
        let (micros, id) = s.split_once('.').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        // Within the years PostgreSQL and every reader can compare (a cursor outside them
        // cannot name a message anyway).
        if !(1..=9999).contains(&chrono::Datelike::year(&created_at)) {
            return Err(bad());
        }
        Ok(Cursor {
            created_at,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

/// A page of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Pass as `before` for the previous (older) page; `None` at the beginning.
    #[serde(serialize_with = "serialize_cursor")]
    pub older: Option<Cursor>,
}

fn serialize_cursor<S: serde::Serializer>(c: &Option<Cursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_some(&c.to_string()),
        None => s.serialize_none(),
    }
}

/// The newest `limit` messages before `before` (the newest of all when `None`), oldest first.
pub async fn page(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Page, ConversationError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ConversationError::Invalid(format!(
            "the page size must be 1 to {MAX_PAGE}"
        )));
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1)")
            .bind(conversation_id)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Err(ConversationError::NotFound(conversation_id));
    }
    // One row more than asked tells whether an older page exists.
    let mut rows: Vec<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL \
            AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
          ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(conversation_id)
    .bind(before.map(|c| c.created_at))
    .bind(before.map(|c| c.id).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    let older = if more {
        rows.first().map(|m| Cursor {
            created_at: m.created_at,
            id: m.id,
        })
    } else {
        None
    };
    Ok(Page {
        messages: rows,
        older,
    })
}

/// Closes a conversation (the person or staff ended it). Closing a closed conversation changes
/// nothing; an archived one stays archived.
pub async fn close(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> Result<Conversation, ConversationError> {
    let mut tx = conn.begin().await?;
    let changed = sqlx::query(
        "UPDATE conversations SET status = 'closed', updated_at = now() \
          WHERE id = $1 AND status NOT IN ('closed', 'archived')",
    )
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        events::notify(
            &mut tx,
            &ChangeNotice::new(ChangeKind::ConversationChanged).conversation(conversation_id),
        )
        .await?;
    }
    let conversation = get_on(&mut tx, conversation_id).await?;
    tx.commit().await?;
    Ok(conversation)
}

/// Archives conversations idle for more than `days` days (`archive_old_conversations`);
/// returns how many.
pub async fn archive_old(pool: &PgPool, days: i32) -> Result<i64, ConversationError> {
    if days < 1 {
        return Err(ConversationError::Invalid(format!(
            "days must be at least 1 (got {days}); 0 would archive live conversations"
        )));
    }
    let mut tx = pool.begin().await?;
    let archived: i32 = sqlx::query_scalar("SELECT archive_old_conversations($1)")
        .bind(days)
        .fetch_one(&mut *tx)
        .await?;
    if archived > 0 {
        events::notify(&mut tx, &ChangeNotice::new(ChangeKind::ConversationChanged)).await?;
    }
    tx.commit().await?;
    Ok(archived.into())
}

/// Text that replaces a message's content at the end of its retention period.
pub const REDACTED_TEXT: &str = "[removed at the end of its retention period]";

/// The conversations retention may touch: closed or archived, inactive since before `$1`, with
/// no open ticket (the open statuses of `tickets::model::OPEN_STATUSES`; the condition of
/// `archive_old_conversations` too). A conversation a turn or a hand-over holds is skipped, and
/// comes back in a later batch.
macro_rules! retention_due_conversations {
    () => {
        "SELECT c.id FROM conversations c \
          WHERE c.status IN ('closed', 'archived') \
            AND coalesce(c.last_message_at, c.created_at) < $1 \
            AND NOT EXISTS (SELECT 1 FROM support_tickets t \
                             WHERE t.conversation_id = c.id \
                               AND t.status IN ('open', 'in_progress', 'pending'))"
    };
}

/// Removes the text of at most `limit` messages of conversations closed before `cutoff`
/// (retention of what people wrote); the rows stay, so statistics are intact. One short
/// statement: its row locks last one batch. Returns how many were redacted.
pub async fn redact_closed_messages(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(concat!(
        "WITH due AS (SELECT m.id FROM messages m \
                       WHERE m.redacted_at IS NULL \
                         AND m.conversation_id IN (",
        retention_due_conversations!(),
        ") LIMIT $2 FOR UPDATE OF m SKIP LOCKED) \
         UPDATE messages m SET content = $3, metadata = '{}'::jsonb, redacted_at = now() \
           FROM due WHERE m.id = due.id"
    ))
    .bind(cutoff)
    .bind(limit)
    .bind(REDACTED_TEXT)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes at most `limit` conversations closed before `cutoff` with their messages and
/// decisions (the end of the statistics' retention: what they counted goes). Returns how many.
pub async fn delete_closed_before(
    conn: &mut PgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(concat!(
        "DELETE FROM conversations WHERE id IN (",
        retention_due_conversations!(),
        " LIMIT $2 FOR UPDATE OF c SKIP LOCKED)"
    ))
    .bind(cutoff)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A message found by [`search_messages`].
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MessageHit {
    /// The message.
    pub message_id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// user, assistant, system or staff.
    pub role: String,
    /// The matching passage, matches between `«` and `»`.
    pub snippet: String,
    /// Full-text rank.
    pub rank: f32,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// Full-text search over messages by a staff member, with the language's text-search
/// configuration (`None`: all three), best first. People's messages are private: every search
/// is audited (`conversation.search`, with the query and the number of messages found).
pub async fn search_messages(
    pool: &PgPool,
    actor: &crate::staff::Actor,
    query: &str,
    lang: Option<Lang>,
    limit: i64,
) -> Result<Vec<MessageHit>, ConversationError> {
    crate::staff::require(
        actor,
        crate::staff::StaffRole::Agent,
        "searching conversations",
    )?;
    let query = query.trim();
    if query.is_empty() {
        return Err(ConversationError::Invalid(
            "the search query is empty".into(),
        ));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ConversationError::Invalid(format!(
            "the limit must be 1 to {MAX_PAGE}"
        )));
    }
    let langs: Vec<Lang> = lang.map(|l| vec![l]).unwrap_or_else(|| Lang::ALL.to_vec());
    // One branch per language, each written exactly as its partial GIN index
    // (`to_tsvector('<cfg>'::regconfig, content) WHERE deleted_at IS NULL`) so the index is used.
    // Configurations come from `Lang`, never from input.
    let branches: Vec<String> = langs
        .iter()
        .map(|l| {
            let cfg = l.ts_config();
            format!(
                "SELECT id, conversation_id, role, created_at, \
                        ts_rank(to_tsvector('{cfg}'::regconfig, content), websearch_to_tsquery('{cfg}'::regconfig, $1)) AS rank, \
                        ts_headline('{cfg}'::regconfig, content, websearch_to_tsquery('{cfg}'::regconfig, $1), \
                                    'StartSel=«, StopSel=», MaxWords=30, MinWords=10') AS snippet \
                   FROM messages \
                  WHERE deleted_at IS NULL \
                    AND to_tsvector('{cfg}'::regconfig, content) @@ websearch_to_tsquery('{cfg}'::regconfig, $1)"
            )
        })
        .collect();
    let sql = format!(
        "SELECT DISTINCT ON (id) id AS message_id, conversation_id, role, snippet, rank, created_at \
           FROM ({}) hits ORDER BY id, rank DESC",
        branches.join(" UNION ALL ")
    );
    let sql = format!("SELECT * FROM ({sql}) best ORDER BY rank DESC, created_at DESC LIMIT $2");
    let mut tx = pool.begin().await?;
    let hits: Vec<MessageHit> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    reading::record_search(&mut tx, actor, query, lang, hits.len()).await?;
    tx.commit().await?;
    Ok(hits)
}

/// Erases every text of a person's conversations (messages, titles, decision evidence) for
/// the right to be forgotten, keeping the rows, dates and decisions for the statistics.
/// Returns how many messages were erased.
pub async fn redact_for_person(
    conn: &mut PgConnection,
    user_id: Uuid,
    placeholder: &str,
) -> sqlx::Result<u64> {
    let messages = sqlx::query(
        "UPDATE messages m SET content = $2, client_message_id = NULL, \
                metadata = m.metadata - 'citations' - 'author_name' \
           FROM conversations c WHERE c.id = m.conversation_id AND c.user_id = $1",
    )
    .bind(user_id)
    .bind(placeholder)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query("UPDATE conversations SET title = NULL WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE decision_logs d SET evidence = jsonb_strip_nulls(jsonb_build_object( \
                'lang', d.evidence->'lang', 'category', d.evidence->'category', \
                'priority', d.evidence->'priority')) \
           FROM conversations c WHERE c.id = d.conversation_id AND c.user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules_are_named() {
        assert_eq!(
            MessageContent::parse("  hello \n").unwrap().as_str(),
            "hello"
        );
        assert!(
            MessageContent::parse(" \n\t ")
                .unwrap_err()
                .to_string()
                .contains("at least 1 character")
        );
        let long = "a".repeat(10_001);
        assert!(
            MessageContent::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("at most 10,000")
        );
        assert!(MessageContent::parse(&"ب".repeat(10_000)).is_ok());
        let e = MessageContent::parse("a\u{7}b").unwrap_err();
        assert!(e.to_string().contains("no control characters"), "{e}");
        assert!(MessageContent::parse("line\n\tindented").is_ok());
        assert_eq!(
            MessageContent::parse_bytes(&[0xff, 0x41]).unwrap_err(),
            ContentError::InvalidUtf8
        );
    }

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::from_u128(7),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("nope".parse::<Cursor>().is_err());
        for micros in [
            "253402300800000000",
            "-62135596800000001",
            "9223372036854775807",
        ] {
            assert!(
                format!("{micros}.{}", Uuid::nil())
                    .parse::<Cursor>()
                    .is_err()
            );
        }
    }
}
