//! A turn: the person's message, the decision on it, the assistant's reply and, when a human
//! takes over, the ticket. Above the modules it composes: [`conversations`] stores the
//! message, the decision and the reply, [`DecisionEngine`] decides, [`tickets`] opens or joins
//! the ticket and resumes the ones pending on the person.
//!
//! A turn runs in five steps, each a function below: [`admit`] (a retry of a completed turn is
//! answered from the database), [`context`] (what the decision needs to know of the
//! conversation), the decision (outside any transaction: retrieval reads only), [`write`]
//! (message, decision and reply in one transaction, under the conversation's row lock) and
//! [`hand_over`] within it for SUPPORT. The crisis gate is assessed once, first, and its
//! assessment passed along: a person in crisis must reach a human, always, so what would
//! refuse their message (a closed conversation, a key reused for other text) gives way to it.

use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::config::RoutingSettings;
use crate::conversations::{
    self, ConversationError, DecisionRecord, MAX_CLIENT_MESSAGE_ID_CHARS, Message, MessageContent,
    NewDecision, NewReply, TurnTarget,
};
use crate::db::person::Scope;
use crate::decision::auto::{Decision, DecisionEngine, Mode, Route, TurnContext, reason};
use crate::decision::crisis::{self, CrisisMatch};
use crate::decision::replies;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::knowledge::chunk::count_tokens;
use crate::lang::{Lang, message_language};
use crate::routing::{self, Outcome, RouteRequest};
use crate::sla;
use crate::staff::Actor;
use crate::tickets::{self, HandOver, HandOverReason, Subject, Ticket, TicketError, Tier};

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The message or its conversation was refused.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// Opening or joining the ticket failed.
    #[error(transparent)]
    Ticket(#[from] TicketError),
}

impl From<sqlx::Error> for TurnError {
    fn from(e: sqlx::Error) -> Self {
        TurnError::Conversation(ConversationError::Sql(e))
    }
}

/// The ticket a turn opened or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

impl From<Ticket> for TicketRef {
    fn from(t: Ticket) -> Self {
        TicketRef {
            id: t.id,
            ticket_number: t.ticket_number,
            category: t.category,
            priority: t.priority,
            status: t.status,
        }
    }
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

impl Turn {
    /// Whether the reply is the crisis gate's safety message.
    pub fn is_safety_reply(&self) -> bool {
        self.decision
            .reason_code
            .as_deref()
            .is_some_and(reason::is_crisis)
    }
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
) -> Result<Turn, TurnError> {
    post_message_in(
        pool,
        engine,
        Scope::Engine,
        conversation_id,
        client_message_id,
        content,
    )
    .await
}

/// [`post_message`] for a request of `scope`: for [`Scope::Person`] the person's part of the
/// turn (reading their conversation, storing their message) runs behind the row-level wall,
/// and the engine's answer to it in the engine's role.
pub async fn post_message_in(
    pool: &PgPool,
    engine: &DecisionEngine,
    scope: Scope,
    conversation_id: Uuid,
    client_message_id: Option<&str>,
    content: &MessageContent,
) -> Result<Turn, TurnError> {
    let started = Instant::now();
    if let Some(key) = client_message_id {
        let n = key.chars().count();
        // A NUL cannot even be stored in PostgreSQL's text.
        if n == 0 || n > MAX_CLIENT_MESSAGE_ID_CHARS || key.chars().any(char::is_control) {
            return Err(ConversationError::InvalidClientMessageId.into());
        }
    }
    let crisis = engine.assess_crisis(content.as_str()).await;
    let key = match admit(
        pool,
        scope,
        conversation_id,
        client_message_id,
        content,
        &crisis,
    )
    .await?
    {
        Admitted::Replay(turn) => return Ok(*turn),
        Admitted::New(key) => key,
    };
    let ctx = context(pool, scope, conversation_id, content, &crisis).await?;
    // Retrieval reads approved knowledge only; it runs before the write transaction, with no
    // connection held: a turn holding one while retrieval waits for another would, with as
    // many concurrent turns as connections, leave every turn waiting.
    let decision = engine
        .decide_turn(pool, content.as_str(), ctx.lang, ctx.turn, crisis)
        .await;
    write(
        pool,
        engine,
        scope,
        conversation_id,
        key.as_deref(),
        content,
        ctx.lang,
        &decision,
        started,
    )
    .await
}

/// What [`admit`] found.
enum Admitted {
    /// A retry of a completed turn: its stored result.
    Replay(Box<Turn>),
    /// A new message, under this key (the client's, one derived from it, or none).
    New(Option<String>),
}

/// A retry of a completed turn is answered from the database without deciding again. A key
/// reused for other text is the client's mistake, and refused, unless the message is in
/// crisis: then it becomes a message of its own under a key derived from the client's, so that
/// retries of it stay idempotent.
async fn admit(
    pool: &PgPool,
    scope: Scope,
    conversation_id: Uuid,
    key: Option<&str>,
    content: &MessageContent,
    crisis: &Option<CrisisMatch>,
) -> Result<Admitted, TurnError> {
    let Some(key) = key else {
        return Ok(Admitted::New(None));
    };
    let mut conn = scope.begin(pool).await?;
    match replay_key(&mut conn, conversation_id, key, content).await {
        Ok(Some(turn)) => Ok(Admitted::Replay(Box::new(turn))),
        Ok(None) => Ok(Admitted::New(Some(key.to_string()))),
        Err(TurnError::Conversation(ConversationError::IdempotencyConflict(_)))
            if crisis.is_some() =>
        {
            let derived = crisis_retry_key(key);
            match replay_key(&mut conn, conversation_id, &derived, content).await {
                Ok(Some(turn)) => Ok(Admitted::Replay(Box::new(turn))),
                Ok(None) => Ok(Admitted::New(Some(derived))),
                // That key was taken by another crisis message: no key at all.
                Err(TurnError::Conversation(ConversationError::IdempotencyConflict(_))) => {
                    Ok(Admitted::New(None))
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
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

/// What the decision needs to know of the conversation.
struct Context {
    lang: Lang,
    turn: TurnContext,
}

async fn context(
    pool: &PgPool,
    scope: Scope,
    conversation_id: Uuid,
    content: &MessageContent,
    crisis: &Option<CrisisMatch>,
) -> Result<Context, TurnError> {
    let mut conn = scope.begin(pool).await?;
    let t = conversations::target(&mut conn, conversation_id, false).await?;
    refuse_inactive(conversation_id, &t, crisis)?;
    let conversation_lang = t.language.as_deref().and_then(|l| l.parse::<Lang>().ok());
    let fallback = t.user_locale.parse::<Lang>().unwrap_or(Lang::Ar);
    let lang = conversation_lang.unwrap_or_else(|| message_language(content.as_str(), fallback));
    let clarified_before = t.last_reason_code.as_deref() == Some(reason::CLARIFY);
    let ticket_open = tickets::open_ticket_of(&mut conn, conversation_id)
        .await?
        .is_some();
    Ok(Context {
        lang,
        turn: TurnContext {
            mode: t.mode.parse::<Mode>().unwrap_or(Mode::Auto),
            clarified_before,
            ticket_open,
        },
    })
}

/// Closed and archived conversations take no messages, except one in crisis: the turn reopens
/// the conversation instead.
fn refuse_inactive(
    id: Uuid,
    t: &TurnTarget,
    crisis: &Option<CrisisMatch>,
) -> Result<(), ConversationError> {
    if crisis.is_none() && !t.is_active() {
        return Err(ConversationError::NotActive {
            id,
            status: t.status.clone(),
        });
    }
    Ok(())
}

/// Writes the turn in one transaction under the conversation's row lock, which serializes the
/// turns of one conversation; a concurrent retry with the same key waits there and then finds
/// the committed turn.
#[allow(clippy::too_many_arguments)]
async fn write(
    pool: &PgPool,
    engine: &DecisionEngine,
    scope: Scope,
    conversation_id: Uuid,
    key: Option<&str>,
    content: &MessageContent,
    lang: Lang,
    decision: &Decision,
    started: Instant,
) -> Result<Turn, TurnError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // The person's part of the turn (their conversation, their message) runs behind the
    // row-level wall; the engine's answer to it (tickets, routing, the decision and the reply)
    // in the engine's role, below.
    scope.enter(&mut tx).await?;
    let t = conversations::target(&mut tx, conversation_id, true).await?;
    refuse_inactive(conversation_id, &t, &decision.crisis)?;
    if !t.is_active() {
        // Only a crisis gets here: the conversation is open again, and the turn escalates it.
        conversations::reopen_for_crisis(&mut tx, conversation_id, &t.status).await?;
    }
    let user_message =
        match conversations::insert_user_message(&mut tx, conversation_id, content, key).await? {
            Some(m) => m,
            None => {
                // The key exists: a concurrent retry committed first. Its turn is complete (one
                // transaction writes a whole turn), but a message left without a decision —
                // written by an older writer — is completed below rather than duplicated.
                let key = key.unwrap_or_default();
                let existing = conversations::find_by_client_id(&mut tx, conversation_id, key)
                    .await?
                    .ok_or_else(|| {
                        ConversationError::Invalid(format!("message {key:?} vanished"))
                    })?;
                if let Some(turn) = replay(&mut tx, existing.clone(), content).await? {
                    tx.rollback().await?;
                    return Ok(turn);
                }
                existing
            }
        };
    if t.language.is_none() {
        conversations::settle_language(&mut tx, conversation_id, lang).await?;
    }
    scope.leave(&mut tx).await?;
    let now = Utc::now().trunc_subsecs(6);
    // The person wrote: tickets waiting on them are worked again and their clocks run, before
    // a SUPPORT decision joins the conversation's ticket.
    let resumed = tickets::resume_pending(&mut tx, conversation_id, now).await?;
    let (ticket, ticket_notified, routed) = if decision.decision == Route::Support {
        let (ticket, created) = hand_over(
            &mut tx,
            conversation_id,
            &t,
            // A crisis ticket is named after the message that raised it.
            decision.is_crisis().then_some(content.as_str()),
            &HandOverReason {
                category: decision.category.as_deref().unwrap_or("resources"),
                priority: decision.priority.as_deref().unwrap_or("medium"),
                reason: &decision.reason.en,
                crisis: decision.is_crisis(),
                reason_code: &decision.reason_code,
            },
            now,
        )
        .await?;
        let routed =
            staff_the_ticket(&mut tx, engine, &ticket, created, lang, decision, now).await?;
        // Routing may have assigned it: the turn returns the ticket as it now is.
        let ticket = match routed {
            Some(Staffing {
                outcome: Some(Outcome::Assigned),
                ..
            }) => tickets::get(&mut tx, ticket.id, now).await?,
            _ => ticket,
        };
        (Some(TicketRef::from(ticket)), created, routed)
    } else {
        (None, false, None)
    };
    let reply_text = match &routed {
        Some(r) if !r.staffed => Some(unstaffed_reply(&mut tx, engine, decision, now).await?),
        _ => None,
    };
    let decision_record = record_decision(
        &mut tx,
        &user_message,
        decision,
        ticket.as_ref(),
        routed.as_ref(),
    )
    .await?;
    let reply = record_reply(
        &mut tx,
        &user_message,
        decision,
        reply_text.as_deref(),
        &decision_record,
        ticket.as_ref(),
        started,
    )
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
    // A crisis joining an open ticket nobody holds made it a crisis ticket: it is routed now,
    // crisis first, rather than at the shift worker's next pass (after the commit, see
    // routing::route_now on why).
    if let Some(t) = ticket
        .as_ref()
        .filter(|_| !ticket_notified && decision.is_crisis())
        && let Err(e) = routing::route_now(&mut conn, &engine.routing, t.id, None, now).await
    {
        tracing::warn!(ticket = %t.ticket_number, "routing the crisis ticket failed: {e}");
    }
    Ok(Turn {
        user_message,
        decision: decision_record,
        reply,
        ticket,
        replayed: false,
    })
}

/// Hands a conversation over to the team outside a turn (by the system or staff): opens its
/// ticket and marks it escalated, in one transaction, then routes it at once
/// ([`routing::route_now`], after the commit). If the conversation already has an open ticket,
/// that one is returned and nothing changes, so a retried escalation never opens a second
/// ticket. The ticket is returned as routing left it.
pub async fn escalate(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    category: &str,
    priority: &str,
    reason: &str,
    settings: &RoutingSettings,
    now: DateTime<Utc>,
) -> Result<Ticket, TurnError> {
    let mut tx = conn.begin().await?;
    let target = conversations::target(&mut tx, conversation_id, true).await?;
    let why = HandOverReason {
        category,
        priority,
        reason,
        crisis: false,
        reason_code: "",
    };
    let (ticket, created) = hand_over(&mut tx, conversation_id, &target, None, &why, now).await?;
    tx.commit().await?;
    if !created {
        return Ok(ticket);
    }
    match routing::route_now(conn, settings, ticket.id, None, now).await {
        Ok(Some(r)) if r.chosen.is_some() => Ok(tickets::get(conn, ticket.id, now).await?),
        Ok(_) => Ok(ticket),
        Err(e) => {
            // The escalation stands; the shift worker routes the ticket.
            tracing::warn!(ticket = %ticket.ticket_number, "routing the escalation failed: {e}");
            Ok(ticket)
        }
    }
}

/// A staff member steps into a live conversation: its ticket is opened (or its open one
/// joined) and taken by them, in one transaction (audited as the ticket's creation and
/// `ticket.take` by the staff member). While the ticket is open the assistant stays out of the
/// conversation (the decision's open-ticket rule).
pub async fn take_over(
    conn: &mut PgConnection,
    actor: &Actor,
    conversation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Ticket, TurnError> {
    let mut tx = conn.begin().await?;
    let target = conversations::target(&mut tx, conversation_id, true).await?;
    let why = HandOverReason {
        category: "resources",
        priority: "medium",
        reason: &format!("{} took over the conversation", actor.email),
        crisis: false,
        reason_code: "staff_take_over",
    };
    let (ticket, _) = hand_over(&mut tx, conversation_id, &target, None, &why, now).await?;
    let ticket = tickets::take(&mut tx, actor, &ticket.ticket_number, now).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// Hands the conversation over to the team: opens its ticket, or joins its open one (which a
/// crisis makes a crisis ticket), and marks the conversation escalated. The caller holds the
/// conversation's row lock. `raised_by` is the message that raised a crisis: the ticket's
/// subject (else the conversation's title or first message). Returns the ticket and whether
/// it was created here (and so already notified).
async fn hand_over(
    tx: &mut PgConnection,
    conversation_id: Uuid,
    target: &TurnTarget,
    raised_by: Option<&str>,
    why: &HandOverReason<'_>,
    now: DateTime<Utc>,
) -> Result<(Ticket, bool), TurnError> {
    let (title, first_message) = conversations::subject_sources(tx, conversation_id).await?;
    let subject = raised_by
        .and_then(Subject::summarize)
        .unwrap_or_else(|| Subject::for_conversation(title.as_deref(), first_message.as_deref()));
    let (ticket, created) = tickets::hand_over(
        tx,
        &HandOver {
            conversation_id,
            user_id: target.user_id,
            subject,
            reason: *why,
        },
        now,
    )
    .await?;
    conversations::mark_escalated(tx, conversation_id, now).await?;
    Ok((ticket, created))
}

/// Whether the ticket's person will be answered by someone online, the team's side of a
/// hand-over: a new ticket is routed (assigned, offered, or in `off` mode left in the queue,
/// the decision recorded either way); a crisis or a request for a human joining an open ticket
/// asks whether anyone who could take it is online. `None` when the reply promises nothing.
async fn staff_the_ticket(
    tx: &mut PgConnection,
    engine: &DecisionEngine,
    ticket: &Ticket,
    created: bool,
    lang: Lang,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<Option<Staffing>, TurnError> {
    let tier = ticket.escalation_tier.parse().unwrap_or(Tier::T1);
    if created {
        let routed = routing::route(
            tx,
            &engine.routing,
            &RouteRequest {
                ticket_id: ticket.id,
                language: lang,
                tier,
                crisis: decision.is_crisis(),
            },
            now,
        )
        .await?;
        return Ok(Some(Staffing {
            staffed: routed.staffed(),
            outcome: Some(routed.outcome),
            assigned_to: routed.chosen,
        }));
    }
    if !decision.is_crisis() && decision.reply != replies::handover_message(decision.lang) {
        return Ok(None);
    }
    let staffed = routing::coverage(tx, lang, tier, &engine.routing, now).await?;
    Ok(Some(Staffing {
        staffed,
        outcome: None,
        assigned_to: ticket.assigned_to_id,
    }))
}

/// The team's side of a hand-over, for the reply and the decision's evidence.
#[derive(Debug, Clone, Copy)]
struct Staffing {
    /// Someone who could take it is online.
    staffed: bool,
    /// The routing decision, for a new ticket.
    outcome: Option<Outcome>,
    /// Who holds (or was offered) it.
    assigned_to: Option<Uuid>,
}

/// The reply when nobody who could take the conversation is online: the safety message or the
/// hand-over notice that says when the team can answer, with the numbers to call meanwhile.
async fn unstaffed_reply(
    tx: &mut PgConnection,
    engine: &DecisionEngine,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<String, TurnError> {
    let when = replies::team_return(decision.lang, &sla::team_return(tx, now).await?);
    Ok(if decision.is_crisis() {
        crisis::unstaffed_safety_message(decision.lang, engine.numbers(), &when)
    } else {
        replies::unstaffed_handover_message(decision.lang, engine.numbers(), &when)
    })
}

async fn record_decision(
    tx: &mut PgConnection,
    user_message: &Message,
    decision: &Decision,
    ticket: Option<&TicketRef>,
    staffing: Option<&Staffing>,
) -> sqlx::Result<DecisionRecord> {
    let mut evidence = decision.evidence.clone();
    evidence["lang"] = json!(decision.lang.code());
    if let Some(s) = staffing {
        evidence["staffing"] = json!({
            "staffed": s.staffed,
            "routing": s.outcome,
            "assigned_to": s.assigned_to,
        });
    }
    if let Some(t) = ticket {
        evidence["category"] = json!(decision.category);
        evidence["priority"] = json!(decision.priority);
        evidence["ticket_id"] = json!(t.id);
    }
    // The model's own counts when a chat model wrote the answer; the answer's tokens otherwise.
    let completion_tokens = decision
        .completion_tokens
        .or_else(|| decision.answer.as_ref().map(|a| a.tokens as i32));
    conversations::record_decision(
        tx,
        user_message.conversation_id,
        user_message.id,
        &NewDecision {
            decision: decision.decision.as_str(),
            reason_code: &decision.reason_code,
            reason: [
                &decision.reason.ar,
                &decision.reason.fr,
                &decision.reason.en,
            ],
            evidence: &evidence,
            confidence: decision.confidence,
            model_used: decision.model_used.as_deref(),
            prompt_tokens: decision.prompt_tokens,
            completion_tokens,
        },
    )
    .await
}

async fn record_reply(
    tx: &mut PgConnection,
    user_message: &Message,
    decision: &Decision,
    reply_text: Option<&str>,
    decision_record: &DecisionRecord,
    ticket: Option<&TicketRef>,
    started: Instant,
) -> sqlx::Result<Message> {
    // The decision's reply, unless nobody online could keep its promise of a human.
    let text = reply_text.unwrap_or(&decision.reply);
    let content = match (ticket, decision.is_crisis()) {
        // The safety message stays exactly as written: nothing is appended to it.
        (_, true) | (None, _) => text.to_string(),
        (Some(t), false) => format!(
            "{}\n{}",
            text,
            replies::ticket_line(decision.lang, &t.ticket_number)
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
        "ticket_id": ticket.map(|t| t.id),
        "ticket_number": ticket.map(|t| t.ticket_number.clone()),
    });
    conversations::insert_reply(
        tx,
        user_message.conversation_id,
        &NewReply {
            content: &content,
            metadata: &metadata,
            tokens: count_tokens(&content).max(1) as i32,
            processing_time_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        },
    )
    .await
}

/// The completed turn stored under `key`, if any ([`replay`]'s rules).
async fn replay_key(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    key: &str,
    content: &MessageContent,
) -> Result<Option<Turn>, TurnError> {
    match conversations::find_by_client_id(conn, conversation_id, key).await? {
        Some(existing) => replay(conn, existing, content).await,
        None => Ok(None),
    }
}

/// The stored turn for a retried key, or an error when the key was used for other content.
async fn replay(
    conn: &mut PgConnection,
    existing: Message,
    content: &MessageContent,
) -> Result<Option<Turn>, TurnError> {
    if existing.content != content.as_str() {
        return Err(ConversationError::IdempotencyConflict(
            existing.client_message_id.clone().unwrap_or_default(),
        )
        .into());
    }
    stored_turn(conn, existing).await
}

/// The stored turn of a user message, if it is complete (has its decision and reply).
async fn stored_turn(
    conn: &mut PgConnection,
    user_message: Message,
) -> Result<Option<Turn>, TurnError> {
    let Some(decision) = conversations::decision_on(conn, user_message.id).await? else {
        return Ok(None);
    };
    let Some(reply) = conversations::reply_to(conn, &user_message).await? else {
        return Ok(None);
    };
    let ticket_id = reply
        .metadata
        .get("ticket_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    let ticket = match ticket_id {
        Some(id) => Some(TicketRef::from(tickets::get(conn, id, Utc::now()).await?)),
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
