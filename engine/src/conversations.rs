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
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::decision::auto::{Decision, DecisionEngine, Mode, Route, TurnContext, message_language};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::knowledge::chunk::count_tokens;
use crate::lang::Lang;
use crate::tickets::{self, TicketError};

mod overview;
pub mod person;
pub use overview::{
    ConversationFilter, ConversationSummary, MAX_LIST, TranscriptEntry, list, transcript,
};

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
    /// The client message id is empty or too long.
    #[error("the client message id must have 1 to 128 characters")]
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
    /// Opening the ticket failed.
    #[error(transparent)]
    Ticket(#[from] TicketError),
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

/// The ticket a turn opened or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TicketRef {
    /// `support_tickets.id`.
    pub id: Uuid,
    /// `TKT-YYYY-NNNNNN`.
    pub ticket_number: String,
    /// Category code.
    pub category: String,
    /// Priority code.
    pub priority: String,
    /// Status code.
    pub status: String,
}

/// One complete turn: the person's message, the decision and the reply (with the ticket when a
/// human takes over).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// The person's message.
    pub user_message: Message,
    /// The decision on it.
    pub decision: DecisionRecord,
    /// The assistant's reply: the answer, the clarifying question, the safety message or the
    /// hand-over notice.
    pub reply: Message,
    /// The ticket for SUPPORT.
    pub ticket: Option<TicketRef>,
    /// True when this is a retry that returned the stored turn.
    pub replayed: bool,
}

/// Starts a conversation for `user_id`. `lang` `None` leaves the language to be detected from
/// the first message (readers fall back to the user's locale meanwhile).
pub async fn start(
    pool: &PgPool,
    user_id: Uuid,
    mode: Mode,
    lang: Option<Lang>,
) -> Result<Conversation, ConversationError> {
    let mut tx = pool.begin().await?;
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(ConversationError::NotFound(id))
}

#[derive(sqlx::FromRow)]
struct TurnTarget {
    status: String,
    mode: String,
    language: Option<String>,
    user_locale: String,
}

impl TurnTarget {
    /// Whether the conversation takes messages (closed and archived ones do not).
    fn is_active(&self) -> bool {
        self.status != "closed" && self.status != "archived"
    }
}

async fn target(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
    crisis: bool,
) -> Result<TurnTarget, ConversationError> {
    let sql = format!(
        "SELECT c.status, c.mode, c.language::text AS language, u.locale::text AS user_locale \
           FROM conversations c JOIN users u ON u.id = c.user_id WHERE c.id = $1{}",
        if lock { " FOR UPDATE OF c" } else { "" }
    );
    let t: TurnTarget = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ConversationError::NotFound(id))?;
    // A message in crisis is never refused: the turn reopens the conversation instead.
    if !crisis && !t.is_active() {
        return Err(ConversationError::NotActive {
            id,
            status: t.status,
        });
    }
    Ok(t)
}

/// The stored turn of a user message, if it is complete (has its decision and reply).
async fn stored_turn(
    conn: &mut PgConnection,
    user_message: Message,
) -> Result<Option<Turn>, ConversationError> {
    let decision: Option<DecisionRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DECISION_COLUMNS} FROM decision_logs WHERE message_id = $1 ORDER BY created_at, id LIMIT 1"
    )))
    .bind(user_message.id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(decision) = decision else {
        return Ok(None);
    };
    let reply: Option<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND role = 'assistant' \
            AND metadata->>'reply_to' = $2 ORDER BY created_at, id LIMIT 1"
    )))
    .bind(user_message.conversation_id)
    .bind(user_message.id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(reply) = reply else {
        return Ok(None);
    };
    let ticket_id = reply
        .metadata
        .get("ticket_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    let ticket = match ticket_id {
        Some(id) => ticket_ref(conn, id).await?,
        None => None,
    };
    Ok(Some(Turn {
        user_message,
        decision,
        reply,
        ticket,
        replayed: true,
    }))
}

async fn ticket_ref(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TicketRef>> {
    sqlx::query_as(
        "SELECT id, ticket_number, category, priority, status FROM support_tickets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

async fn find_by_client_id(
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

/// The completed turn stored under `key`, if any ([`replay`]'s rules).
async fn replay_key(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    key: &str,
    content: &MessageContent,
) -> Result<Option<Turn>, ConversationError> {
    match find_by_client_id(conn, conversation_id, key).await? {
        Some(existing) => replay(conn, existing, content).await,
        None => Ok(None),
    }
}

/// The stored turn for a retried key, or an error when the key was used for other content.
async fn replay(
    conn: &mut PgConnection,
    existing: Message,
    content: &MessageContent,
) -> Result<Option<Turn>, ConversationError> {
    if existing.content != content.as_str() {
        return Err(ConversationError::IdempotencyConflict(
            existing.client_message_id.clone().unwrap_or_default(),
        ));
    }
    stored_turn(conn, existing).await
}

/// Posts the person's message and answers it: decision, reply, and for SUPPORT the ticket, all
/// in one transaction. With a `client_message_id` a retry returns the stored turn
/// (`replayed: true`) and writes nothing.
pub async fn post_message(
    pool: &PgPool,
    engine: &DecisionEngine,
    conversation_id: Uuid,
    client_message_id: Option<&str>,
    content: &MessageContent,
) -> Result<Turn, ConversationError> {
    let started = Instant::now();
    if let Some(key) = client_message_id {
        let n = key.chars().count();
        if n == 0 || n > MAX_CLIENT_MESSAGE_ID_CHARS {
            return Err(ConversationError::InvalidClientMessageId);
        }
    }
    // A person in crisis must reach a human, always: what would refuse their message (a closed
    // or archived conversation, a key reused for other text) gives way to the crisis gate.
    let crisis = engine.is_crisis(content.as_str());
    let mut client_message_id = client_message_id;
    let crisis_key;
    let mut conn = pool.acquire().await?;
    // A retry of a completed turn is answered from the database without deciding again.
    if let Some(key) = client_message_id {
        match replay_key(&mut conn, conversation_id, key, content).await {
            Ok(Some(turn)) => return Ok(turn),
            Ok(None) => {}
            // The key is the client's mistake; the crisis is not: a message of its own, under
            // a key derived from the client's, so that retries of it stay idempotent.
            Err(ConversationError::IdempotencyConflict(_)) if crisis => {
                crisis_key = crisis_retry_key(key);
                client_message_id = Some(crisis_key.as_str());
                match replay_key(&mut conn, conversation_id, &crisis_key, content).await {
                    Ok(Some(turn)) => return Ok(turn),
                    Ok(None) => {}
                    // That key was taken by another crisis message: no key at all.
                    Err(ConversationError::IdempotencyConflict(_)) => client_message_id = None,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    let t = target(&mut conn, conversation_id, false, crisis).await?;
    let conversation_lang = t.language.as_deref().and_then(|l| l.parse::<Lang>().ok());
    let fallback = t.user_locale.parse::<Lang>().unwrap_or(Lang::Ar);
    let lang = conversation_lang.unwrap_or_else(|| message_language(content.as_str(), fallback));
    let mode = t.mode.parse::<Mode>().unwrap_or(Mode::Auto);
    let (clarified_before, ticket_open): (bool, bool) = sqlx::query_as(
        "SELECT coalesce((SELECT metadata->>'reason_code' = $2 FROM messages \
            WHERE conversation_id = $1 AND role = 'assistant' AND deleted_at IS NULL \
            ORDER BY created_at DESC, id DESC LIMIT 1), false), \
         EXISTS (SELECT 1 FROM support_tickets WHERE conversation_id = $1 \
            AND status IN ('open', 'in_progress', 'pending'))",
    )
    .bind(conversation_id)
    .bind(crate::decision::auto::reason::CLARIFY)
    .fetch_one(&mut *conn)
    .await?;

    // Retrieval reads approved knowledge only; it runs before the write transaction, with this
    // connection back in the pool: a turn holding one connection while retrieval waits for
    // another would, with as many concurrent turns as connections, leave every turn waiting.
    drop(conn);
    let decision = engine
        .decide_turn(
            pool,
            content.as_str(),
            lang,
            TurnContext {
                mode,
                clarified_before,
                ticket_open,
            },
        )
        .await;

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // The conversation's row lock serializes the turns of one conversation, and a concurrent
    // retry with the same key waits here and then finds the committed turn.
    let t = target(&mut tx, conversation_id, true, crisis).await?;
    if !t.is_active() {
        // Only a crisis gets here (see `target`): the conversation is open again, and the turn
        // below escalates it.
        sqlx::query("UPDATE conversations SET status = 'active', archived_at = NULL WHERE id = $1")
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: None,
                action: "conversation.reopen",
                resource_type: "conversation",
                resource_id: Some(conversation_id),
                details: json!({"from": t.status, "reason": "crisis_message"}),
            },
        )
        .await?;
    }
    let inserted: Option<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (conversation_id, role, content, client_message_id, created_at) \
         VALUES ($1, 'user', $2, $3, clock_timestamp()) \
         ON CONFLICT (conversation_id, client_message_id) DO NOTHING RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(content.as_str())
    .bind(client_message_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| map_sql(e, Some(conversation_id), None))?;
    let user_message = match inserted {
        Some(m) => m,
        None => {
            // The key exists: a concurrent retry committed first. Its turn is complete (one
            // transaction writes a whole turn), but a message left without a decision — written
            // by an older writer — is completed below rather than duplicated.
            let key = client_message_id.unwrap_or_default();
            let existing = find_by_client_id(&mut tx, conversation_id, key)
                .await?
                .ok_or_else(|| ConversationError::Invalid(format!("message {key:?} vanished")))?;
            if let Some(turn) = replay(&mut tx, existing.clone(), content).await? {
                tx.rollback().await?;
                return Ok(turn);
            }
            existing
        }
    };
    if t.language.is_none() {
        // The conversation takes the language detected from its first message, so later turns
        // (and the console) use it consistently.
        sqlx::query("UPDATE conversations SET language = $2 WHERE id = $1 AND language IS NULL")
            .bind(conversation_id)
            .bind(lang.locale())
            .execute(&mut *tx)
            .await?;
    }

    let now = Utc::now().trunc_subsecs(6);
    // The person wrote: tickets waiting on them are worked again and their clocks run, before
    // a SUPPORT decision joins the conversation's ticket.
    let resumed = crate::sla::on_user_message(&mut tx, conversation_id, now).await?;
    let mut ticket: Option<TicketRef> = None;
    let mut ticket_notified = false;
    if decision.decision == Route::Support {
        let (t, created) = open_ticket(&mut tx, conversation_id, &decision, now).await?;
        ticket = Some(t);
        ticket_notified = created;
    }

    let mut evidence = decision.evidence.clone();
    evidence["lang"] = json!(decision.lang.code());
    if let Some(t) = &ticket {
        evidence["category"] = json!(decision.category);
        evidence["priority"] = json!(decision.priority);
        evidence["ticket_id"] = json!(t.id);
    }
    // The model's own counts when a chat model wrote the answer; the answer's tokens otherwise.
    let completion_tokens = decision
        .completion_tokens
        .or_else(|| decision.answer.as_ref().map(|a| a.tokens as i32));
    let decision_record: DecisionRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO decision_logs (conversation_id, message_id, decision, reason, reason_code, reason_ar, \
                                    reason_fr, reason_en, evidence, confidence, model_used, prompt_tokens, \
                                    completion_tokens) \
         VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9, $10, $11, $12) RETURNING {DECISION_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(user_message.id)
    .bind(decision.decision.as_str())
    .bind(&decision.reason.ar)
    .bind(&decision.reason_code)
    .bind(&decision.reason.fr)
    .bind(&decision.reason.en)
    .bind(&evidence)
    .bind(decision.confidence)
    .bind(&decision.model_used)
    .bind(decision.prompt_tokens)
    .bind(completion_tokens)
    .fetch_one(&mut *tx)
    .await?;

    let reply_text = match (&ticket, decision.is_crisis()) {
        // The safety message stays exactly as written: nothing is appended to it.
        (_, true) | (None, _) => decision.reply.clone(),
        (Some(t), false) => format!(
            "{}\n{}",
            decision.reply,
            ticket_line(decision.lang, &t.ticket_number)
        ),
    };
    let citations = decision.answer.as_ref().map(|a| &a.citations);
    let metadata = json!({
        "reply_to": user_message.id,
        "decision_id": decision_record.id,
        "decision": decision.decision.as_str(),
        "reason_code": decision.reason_code,
        "lang": decision.lang.code(),
        "cited_documents": citations.map(|c| c.iter().map(|c| c.document_id).collect::<Vec<_>>()).unwrap_or_default(),
        "citations": citations,
        "ticket_id": ticket.as_ref().map(|t| t.id),
        "ticket_number": ticket.as_ref().map(|t| t.ticket_number.clone()),
    });
    let tokens = count_tokens(&reply_text).max(1) as i32;
    let elapsed_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let reply: Message = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (conversation_id, role, content, metadata, tokens_used, processing_time_ms, created_at) \
         VALUES ($1, 'assistant', $2, $3, $4, $5, clock_timestamp()) RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(conversation_id)
    .bind(&reply_text)
    .bind(&metadata)
    .bind(tokens)
    .bind(elapsed_ms)
    .fetch_one(&mut *tx)
    .await?;

    // One NOTIFY per transaction: when the ticket was opened here, its notice (ticket and
    // conversation ids) already announces this turn; otherwise this one does.
    if !ticket_notified {
        let mut notice = ChangeNotice::new(ChangeKind::Message)
            .with(ChangeKind::Decision)
            .conversation(conversation_id);
        if let Some(changed) = ticket.as_ref().map(|t| t.id).or(resumed.first().copied()) {
            notice = notice.with(ChangeKind::TicketChanged).ticket(changed);
        }
        events::notify(&mut tx, &notice).await?;
    }
    tx.commit().await?;
    Ok(Turn {
        user_message,
        decision: decision_record,
        reply,
        ticket,
        replayed: false,
    })
}

/// The key a crisis message takes when the client reused its key for other text: derived from
/// it, within the key's length limit, so that the client's retries find the same turn.
fn crisis_retry_key(key: &str) -> String {
    let head: String = key
        .chars()
        .take(MAX_CLIENT_MESSAGE_ID_CHARS - "crisis:".len())
        .collect();
    format!("crisis:{head}")
}

fn ticket_line(lang: Lang, number: &str) -> String {
    match lang {
        Lang::Ar => format!("رقم طلبك: {number}"),
        Lang::Fr => format!("Numéro de votre demande : {number}"),
        Lang::En => format!("Your request number: {number}"),
    }
}

/// Opens the conversation's ticket (or joins its open one) inside the turn's transaction.
/// Returns the ticket and whether it was created here (and so already notified).
async fn open_ticket(
    tx: &mut PgConnection,
    conversation_id: Uuid,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<(TicketRef, bool), ConversationError> {
    let category = decision.category.as_deref().unwrap_or("resources");
    let priority = decision.priority.as_deref().unwrap_or("medium");
    // The conversation row is locked by the caller, so this check and the creation cannot race.
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM support_tickets WHERE conversation_id = $1 \
            AND status IN ('open', 'in_progress', 'pending') ORDER BY created_at DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let ticket = tickets::create_from_conversation(
        tx,
        conversation_id,
        category,
        priority,
        &decision.reason.en,
        now,
    )
    .await?;
    let created = existing.is_none();
    if !created
        && decision.is_crisis()
        && (ticket.priority != crisis_priority() || ticket.category != crisis_category())
    {
        // A crisis in a conversation whose ticket is already open (say, for a request for a
        // human) makes that ticket a crisis: urgent, whatever it was. The SLA trigger
        // recomputes the due dates from the new priority.
        sqlx::query(
            "UPDATE support_tickets SET category = $2, priority = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(ticket.id)
        .bind(crisis_category())
        .bind(crisis_priority())
        .bind(now)
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
                    "conversation_id": conversation_id,
                    "from_category": ticket.category,
                    "from_priority": ticket.priority,
                    "reason_code": decision.reason_code,
                }),
            },
        )
        .await?;
    }
    // Joining an escalated conversation's open ticket leaves the conversation escalated; make
    // sure a conversation with an open ticket says so even if staff had set it back to active.
    sqlx::query(
        "UPDATE conversations SET status = 'escalated', escalated_at = coalesce(escalated_at, $2) \
         WHERE id = $1 AND status <> 'escalated'",
    )
    .bind(conversation_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let t = ticket_ref(tx, ticket.id)
        .await?
        .ok_or_else(|| ConversationError::Invalid(format!("ticket {} vanished", ticket.id)))?;
    Ok((t, created))
}

fn crisis_category() -> &'static str {
    crate::decision::crisis::CATEGORY
}

fn crisis_priority() -> &'static str {
    crate::decision::crisis::PRIORITY
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
        Ok(Cursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
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
    pool: &PgPool,
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
            .fetch_one(pool)
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
    .fetch_all(pool)
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
    pool: &PgPool,
    conversation_id: Uuid,
) -> Result<Conversation, ConversationError> {
    let mut tx = pool.begin().await?;
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
    tx.commit().await?;
    get(pool, conversation_id).await
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

/// What a staff member read of people's conversations, for the audit trail: people's words are
/// private, so reading them is recorded as changing them is.
#[derive(Debug, Clone, Copy)]
pub enum StaffRead<'a> {
    /// A search over message text (`conversation.search`).
    Search {
        /// The words searched for.
        query: &'a str,
        /// The one language searched in, if only one.
        lang: Option<Lang>,
        /// How many results were shown.
        found: usize,
    },
    /// A conversation's transcript opened (`conversation.read`).
    Transcript(Uuid),
    /// A ticket opened, with its conversation (`ticket.read`).
    Ticket(Uuid),
}

/// Records a [`StaffRead`] in `audit_logs`. Callers record an opening, not every refresh of
/// what is already on screen.
pub async fn record_staff_read(
    conn: &mut PgConnection,
    actor: &crate::staff::Actor,
    read: StaffRead<'_>,
) -> Result<(), ConversationError> {
    let (action, resource_type, resource_id, details) = match read {
        StaffRead::Search { query, lang, found } => (
            "conversation.search",
            "message",
            None,
            json!({"query": query, "lang": lang.map(|l| l.code()), "found": found}),
        ),
        StaffRead::Transcript(id) => ("conversation.read", "conversation", Some(id), json!({})),
        StaffRead::Ticket(id) => ("ticket.read", "support_ticket", Some(id), json!({})),
    };
    audit::record(
        conn,
        &AuditEntry {
            actor: Some(actor.id),
            action,
            resource_type,
            resource_id,
            details,
        },
    )
    .await?;
    Ok(())
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
    let read = StaffRead::Search {
        query,
        lang,
        found: hits.len(),
    };
    record_staff_read(&mut tx, actor, read).await?;
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
    }
}
