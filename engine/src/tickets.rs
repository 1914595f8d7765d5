//! Support tickets: creation (from an escalated conversation or by staff), the work queue,
//! taking and assigning, the status lifecycle, escalation tiers and comments.
//!
//! Permissions are enforced here: an agent works unassigned tickets and their own; a supervisor
//! assigns, reassigns, releases and escalates anyone's; an admin can do all of that too. Every
//! operation runs in one transaction (a savepoint when the caller already has one), writes one
//! `audit_logs` row and queues one notice, and takes the instant `now` so that SLA arithmetic
//! is exact and testable.
//!
//! Lifecycle (anything else is refused with [`TicketError::InvalidTransition`]):
//!
//! | from | to |
//! | --- | --- |
//! | open | in_progress, pending, resolved, closed |
//! | in_progress | open (releases it), pending, resolved, closed |
//! | pending | in_progress, resolved, closed |
//! | resolved | closed, or reopened to open / in_progress |
//! | closed | reopened to open / in_progress |
//!
//! The SLA clock runs in open and in_progress and stands still in the other statuses
//! ([`crate::sla`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
// AssertSqlSafe: the only text spliced into SQL here is constant column lists, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::{self, violated_constraint};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::sla::{self, RAW_CLOCK_COLUMNS, RawClock, SlaClock, clock_inputs};
use crate::staff::{self, Actor, StaffError, StaffRole};

/// Why a ticket operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// No ticket has this number.
    #[error("no ticket {0}")]
    NotFound(String),
    /// Another staff member holds the ticket.
    #[error("ticket {number} is already taken by {holder_name} <{holder_email}>")]
    HeldBy {
        /// The ticket.
        number: String,
        /// The holder's e-mail.
        holder_email: String,
        /// The holder's name.
        holder_name: String,
    },
    /// An agent acted on a ticket assigned to someone else.
    #[error(
        "ticket {number} is assigned to {holder_name} <{holder_email}>; agents work unassigned \
         tickets and their own (a supervisor can reassign it)"
    )]
    NotYours {
        /// The ticket.
        number: String,
        /// The holder's e-mail.
        holder_email: String,
        /// The holder's name.
        holder_name: String,
    },
    /// The status change is not part of the lifecycle.
    #[error("ticket {number} is {from}; it cannot go to {to} (allowed from {from}: {allowed})")]
    InvalidTransition {
        /// The ticket.
        number: String,
        /// Current status.
        from: TicketStatus,
        /// Requested status.
        to: TicketStatus,
        /// What is allowed from the current status.
        allowed: String,
    },
    /// The ticket is resolved or closed, and the operation needs an open one.
    #[error("ticket {number} is {status}; reopen it first")]
    NotOpen {
        /// The ticket.
        number: String,
        /// Its status.
        status: TicketStatus,
    },
    /// Not allowed for the actor's role, or no such staff account.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// Input that fails validation.
    #[error("{0}")]
    Invalid(String),
    /// Unknown ticket category.
    #[error(
        "unknown category `{0}` (expected addiction, mental_health, prevention, resources or crisis)"
    )]
    UnknownCategory(String),
    /// Unknown ticket priority.
    #[error("unknown priority `{0}` (expected low, medium, high or urgent)")]
    UnknownPriority(String),
    /// No user or conversation with this id.
    #[error("no {0}")]
    UnknownReference(String),
    /// No live comment with this id.
    #[error("no comment {0}")]
    CommentNotFound(Uuid),
    /// The ticket was committed, but the wait for its commit to reach the disk failed (the
    /// connection or the server went away), so it may or may not survive a crash of the server:
    /// the same uncertainty as a commit whose answer was lost, named so that nobody opens the
    /// ticket a second time without looking.
    #[error(
        "ticket {number} was written but the database did not confirm that it is on disk \
         ({source}); look it up before opening it again"
    )]
    Unconfirmed {
        /// The ticket.
        number: String,
        /// Why the confirmation failed.
        source: sqlx::Error,
    },
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl From<sla::SlaError> for TicketError {
    fn from(e: sla::SlaError) -> Self {
        match e {
            sla::SlaError::Sql(e) => TicketError::Sql(e),
            sla::SlaError::Staff(e) => TicketError::Staff(e),
            other => TicketError::Invalid(other.to_string()),
        }
    }
}

/// A ticket's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting for staff.
    Open,
    /// A staff member works on it.
    InProgress,
    /// Waiting on the user (the SLA clock stands still).
    Pending,
    /// Done; can be reopened or closed.
    Resolved,
    /// Finished; can be reopened.
    Closed,
}

impl TicketStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TicketStatus; 5] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::Pending,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    /// The code stored in `support_tickets.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::Pending => "pending",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Still needs staff work (open, in_progress, pending).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TicketStatus::Open | TicketStatus::InProgress | TicketStatus::Pending
        )
    }

    /// The statuses reachable from this one.
    pub fn allowed_next(self) -> &'static [TicketStatus] {
        use TicketStatus::*;
        match self {
            Open => &[InProgress, Pending, Resolved, Closed],
            InProgress => &[Open, Pending, Resolved, Closed],
            Pending => &[InProgress, Resolved, Closed],
            Resolved => &[Closed, Open, InProgress],
            Closed => &[Open, InProgress],
        }
    }

    /// True when `self -> to` is part of the lifecycle.
    pub fn can_go_to(self, to: TicketStatus) -> bool {
        self.allowed_next().contains(&to)
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for TicketStatus {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TicketStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s.trim())
            .ok_or_else(|| {
                TicketError::Invalid(format!(
                    "unknown status `{s}` (expected open, in_progress, pending, resolved or closed)"
                ))
            })
    }
}

impl TryFrom<String> for TicketStatus {
    type Error = TicketError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Support tiers, in escalation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// First line.
    T1,
    /// Second line.
    T2,
    /// Third line (specialists).
    T3,
    /// The service manager.
    #[serde(rename = "manager")]
    Manager,
}

impl Tier {
    /// The code stored in `escalation_tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::T1 => "T1",
            Tier::T2 => "T2",
            Tier::T3 => "T3",
            Tier::Manager => "manager",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "T1" | "t1" => Ok(Tier::T1),
            "T2" | "t2" => Ok(Tier::T2),
            "T3" | "t3" => Ok(Tier::T3),
            "manager" | "Manager" => Ok(Tier::Manager),
            other => Err(TicketError::Invalid(format!(
                "unknown tier `{other}` (expected T1, T2, T3 or manager)"
            ))),
        }
    }
}

/// Text of a comment: 1 to 10,000 characters (characters, not bytes, like messages), not only
/// whitespace, and no control characters other than newline and tab (`\r\n` becomes `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentText(String);

impl CommentText {
    /// Validates and normalizes.
    pub fn new(raw: &str) -> Result<Self, TicketError> {
        let text = raw.replace("\r\n", "\n");
        if text.trim().is_empty() {
            return Err(TicketError::Invalid("a comment cannot be empty".into()));
        }
        let chars = text.chars().count();
        if chars > 10_000 {
            return Err(TicketError::Invalid(format!(
                "a comment has at most 10,000 characters (this one has {chars})"
            )));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(TicketError::Invalid(
                "a comment cannot contain control characters other than newline and tab".into(),
            ));
        }
        Ok(CommentText(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ticket subject: one line of 1 to 255 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// Validates and trims.
    pub fn new(raw: &str) -> Result<Self, TicketError> {
        let s = raw.trim();
        if s.is_empty() || s.chars().count() > 255 {
            return Err(TicketError::Invalid(
                "a subject has 1 to 255 characters".into(),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(TicketError::Invalid(
                "a subject is one line without control characters".into(),
            ));
        }
        Ok(Subject(s.to_string()))
    }

    /// A subject made from free text: first line, whitespace collapsed, cut at 120 characters.
    pub fn summarize(text: &str) -> Option<Self> {
        let line: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut cut: String = line.chars().take(120).collect();
        if line.chars().count() > 120 {
            cut.push('…');
        }
        Subject::new(&cut).ok()
    }

    /// The subject.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who can read a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Delivered into the user's conversation as a staff message.
    Public,
    /// Staff only: never shown to the end user, never sent to a model.
    Internal,
}

/// A ticket with its SLA clock, as the queue and `ticket list --json` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    /// `support_tickets.id`.
    pub id: Uuid,
    /// `TKT-YYYY-NNNNNN`.
    pub ticket_number: String,
    /// Subject.
    pub subject: String,
    /// Category code.
    pub category: String,
    /// Priority code.
    pub priority: String,
    /// Status code.
    pub status: String,
    /// E-mail of the staff member holding it, if any.
    pub assigned_to: Option<String>,
    /// Their name.
    pub assigned_to_name: Option<String>,
    /// Their id.
    #[serde(skip)]
    pub assigned_to_id: Option<Uuid>,
    /// T1, T2, T3 or manager.
    pub escalation_tier: String,
    /// The end user the ticket is for.
    pub user_id: Uuid,
    /// The conversation it came from or replies go to.
    pub conversation_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First public staff comment.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Resolution time.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Closing time.
    pub closed_at: Option<DateTime<Utc>>,
    /// The SLA clock at the time of reading.
    #[serde(flatten)]
    pub sla: SlaClock,
}

/// A [`Ticket`] as read, before its clock is computed.
#[derive(sqlx::FromRow)]
struct TicketRow {
    id: Uuid,
    ticket_number: String,
    subject: String,
    category: String,
    priority: String,
    status: String,
    assigned_to: Option<String>,
    assigned_to_name: Option<String>,
    assigned_to_id: Option<Uuid>,
    escalation_tier: String,
    user_id: Uuid,
    conversation_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    clock: RawClock,
}

impl From<TicketRow> for Ticket {
    fn from(r: TicketRow) -> Self {
        Ticket {
            sla: r.clock.clock(),
            id: r.id,
            ticket_number: r.ticket_number,
            subject: r.subject,
            category: r.category,
            priority: r.priority,
            status: r.status,
            assigned_to: r.assigned_to,
            assigned_to_name: r.assigned_to_name,
            assigned_to_id: r.assigned_to_id,
            escalation_tier: r.escalation_tier,
            user_id: r.user_id,
            conversation_id: r.conversation_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            first_response_at: r.first_response_at,
            resolved_at: r.resolved_at,
            closed_at: r.closed_at,
        }
    }
}

/// A comment on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Comment {
    /// `ticket_comments.id`.
    pub id: Uuid,
    /// The ticket.
    pub ticket_id: Uuid,
    /// Author's e-mail.
    pub author_email: String,
    /// Author's name.
    pub author_name: String,
    /// Text.
    pub content: String,
    /// Staff-only note.
    pub is_internal: bool,
    /// The conversation message it was delivered as (public comments).
    pub message_id: Option<Uuid>,
    /// Written at.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One tier change in a ticket's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Escalation {
    /// Previous tier.
    pub from_tier: String,
    /// New tier.
    pub to_tier: String,
    /// Why.
    pub reason: String,
    /// Who (None: automatic).
    pub actor_email: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Everything `ticket show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TicketDetail {
    /// The ticket and its clock.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The requester's description.
    pub description: Option<String>,
    /// Resolution notes.
    pub resolution_notes: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Comments, oldest first (deleted ones included, marked).
    pub comments: Vec<Comment>,
    /// Tier changes, oldest first.
    pub escalations: Vec<Escalation>,
}

// Over `t` (support_tickets), `u` (the holder) and `n` (the instant and calendar mode).
const TICKET_SELECT: &str = "SELECT t.id, t.ticket_number, t.subject, t.category, t.priority, \
     u.email::text AS assigned_to, u.name AS assigned_to_name, \
     t.assigned_to AS assigned_to_id, t.escalation_tier, t.user_id, t.conversation_id, \
     t.created_at, t.updated_at, t.closed_at, ";

/// A ticket by id, with its clock at `now`.
pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let row: Option<TicketRow> = sqlx::query_as(AssertSqlSafe(format!(
        "{TICKET_SELECT}{RAW_CLOCK_COLUMNS} FROM support_tickets t CROSS JOIN {} \
         LEFT JOIN users u ON u.id = t.assigned_to WHERE t.id = $1",
        clock_inputs("$2")
    )))
    .bind(id)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(Ticket::from)
        .ok_or_else(|| TicketError::NotFound(id.to_string()))
}

/// A ticket by number, with its clock at `now`.
pub async fn find(
    conn: &mut PgConnection,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let number = normalize_number(number);
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM support_tickets WHERE ticket_number = $1")
            .bind(&number)
            .fetch_optional(&mut *conn)
            .await?;
    get(conn, id.ok_or(TicketError::NotFound(number))?, now).await
}

/// `tkt-2026-000001` and surrounding spaces are accepted for `TKT-2026-000001`.
fn normalize_number(number: &str) -> String {
    number.trim().to_uppercase()
}

/// A ticket, its description, notes, comments and escalation history.
pub async fn detail(
    conn: &mut PgConnection,
    number: &str,
    now: DateTime<Utc>,
) -> Result<TicketDetail, TicketError> {
    let ticket = find(conn, number, now).await?;
    let (description, resolution_notes, resolved_by): (
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT t.description, t.resolution_notes, u.email::text FROM support_tickets t \
         LEFT JOIN users u ON u.id = t.resolved_by WHERE t.id = $1",
    )
    .bind(ticket.id)
    .fetch_one(&mut *conn)
    .await?;
    let comments = comments(conn, ticket.id).await?;
    let escalations = sqlx::query_as(
        "SELECT e.from_tier, e.to_tier, e.reason, u.email::text AS actor_email, e.created_at \
           FROM ticket_escalations e LEFT JOIN users u ON u.id = e.actor_id \
          WHERE e.ticket_id = $1 ORDER BY e.created_at, e.id",
    )
    .bind(ticket.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(TicketDetail {
        ticket,
        description,
        resolution_notes,
        resolved_by,
        comments,
        escalations,
    })
}

/// A ticket's comments, oldest first, soft-deleted ones included (with `deleted_at`).
pub async fn comments(conn: &mut PgConnection, ticket_id: Uuid) -> sqlx::Result<Vec<Comment>> {
    sqlx::query_as(
        "SELECT c.id, c.ticket_id, u.email::text AS author_email, u.name AS author_name, \
                c.content, c.is_internal, c.message_id, c.created_at, c.edited_at, c.deleted_at \
           FROM ticket_comments c JOIN users u ON u.id = c.user_id \
          WHERE c.ticket_id = $1 ORDER BY c.created_at, c.id",
    )
    .bind(ticket_id)
    .fetch_all(conn)
    .await
}

/// Which tickets a queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// Open tickets held by the actor.
    Mine,
    /// Open tickets nobody holds.
    Unassigned,
    /// Open tickets that missed a target.
    Breached,
    /// Every open ticket (the console's main queue).
    Open,
    /// Every ticket: open ones by due time, then the others, newest first.
    All,
}

impl FromStr for Queue {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mine" => Ok(Queue::Mine),
            "unassigned" => Ok(Queue::Unassigned),
            "breached" => Ok(Queue::Breached),
            "open" => Ok(Queue::Open),
            "all" => Ok(Queue::All),
            other => Err(TicketError::Invalid(format!(
                "unknown queue `{other}` (expected mine, unassigned, breached, open or all)"
            ))),
        }
    }
}

/// A page of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFilter {
    /// Which queue.
    pub queue: Queue,
    /// Only this category.
    pub category: Option<String>,
    /// Only this priority.
    pub priority: Option<String>,
    /// Only tickets held by this staff member.
    pub assignee: Option<Uuid>,
    /// Page size.
    pub limit: i64,
}

impl QueueFilter {
    /// A queue with no extra filter and the console's page size (50).
    pub fn new(queue: Queue) -> Self {
        QueueFilter {
            queue,
            category: None,
            priority: None,
            assignee: None,
            limit: 50,
        }
    }
}

/// A page of a queue at `now`. Open tickets come by the deadline they face next (first
/// response while unanswered, then resolution), so the most urgent work is on top; `Mine`
/// needs the actor. Every filter combination is an index range scan (see the queue indexes in
/// `migrations/20261122100001_tickets_sla.sql`).
pub async fn queue(
    conn: &mut PgConnection,
    actor: Option<&Actor>,
    filter: &QueueFilter,
    now: DateTime<Utc>,
) -> Result<Vec<Ticket>, TicketError> {
    let limit = filter.limit.clamp(1, 10_000);
    let open = "t.status IN ('open', 'in_progress', 'pending')";
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(TICKET_SELECT);
    qb.push(RAW_CLOCK_COLUMNS);
    qb.push(" FROM (SELECT ");
    qb.push_bind(now);
    qb.push(INPUTS_TAIL);
    qb.push("CROSS JOIN LATERAL (SELECT * FROM support_tickets t WHERE ");
    qb.push(open);
    match filter.queue {
        Queue::Mine => {
            let actor = actor.ok_or_else(|| {
                TicketError::Invalid("the `mine` queue needs to know who you are (--as)".into())
            })?;
            qb.push(" AND t.assigned_to = ").push_bind(actor.id);
        }
        Queue::Unassigned => {
            qb.push(" AND t.assigned_to IS NULL");
        }
        Queue::Breached => {
            // Flagged by the sweeper, or past the deadline and not yet swept.
            qb.push(
                " AND (t.first_response_breached OR t.resolution_breached \
                  OR (t.sla_paused_at IS NULL AND t.sla_next_due_at <= n.at))",
            );
        }
        Queue::Open | Queue::All => {}
    }
    push_filters(&mut qb, filter);
    // A literal LIMIT (a clamped integer, not input text): with a bound one the planner's
    // generic plan looks dearer than the custom ones, and every page paid for a fresh plan.
    qb.push(format!(" ORDER BY t.sla_next_due_at, t.id LIMIT {limit}"));
    qb.push(
        ") t LEFT JOIN users u ON u.id = t.assigned_to \
         ORDER BY t.sla_next_due_at, t.id",
    );
    let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut tickets: Vec<Ticket> = rows.into_iter().map(Ticket::from).collect();

    if filter.queue == Queue::All && (tickets.len() as i64) < limit {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(TICKET_SELECT);
        qb.push(RAW_CLOCK_COLUMNS);
        qb.push(" FROM (SELECT ");
        qb.push_bind(now);
        qb.push(INPUTS_TAIL);
        qb.push("CROSS JOIN LATERAL (SELECT * FROM support_tickets t WHERE NOT ");
        qb.push(open);
        push_filters(&mut qb, filter);
        qb.push(format!(
            " ORDER BY t.created_at DESC, t.id LIMIT {}",
            limit - tickets.len() as i64
        ));
        qb.push(
            ") t LEFT JOIN users u ON u.id = t.assigned_to \
             ORDER BY t.created_at DESC, t.id",
        );
        let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        tickets.extend(rows.into_iter().map(Ticket::from));
    }
    Ok(tickets)
}

/// The rest of [`clock_inputs`] after the bound instant (a query builder binds it in place).
const INPUTS_TAIL: &str =
    "::timestamptz AS at, (SELECT business_hours FROM sla_calendar WHERE id) AS bh) n ";

fn push_filters(qb: &mut QueryBuilder<Postgres>, filter: &QueueFilter) {
    if let Some(category) = &filter.category {
        qb.push(" AND t.category = ").push_bind(category.clone());
    }
    if let Some(priority) = &filter.priority {
        qb.push(" AND t.priority = ").push_bind(priority.clone());
    }
    if let Some(assignee) = filter.assignee {
        qb.push(" AND t.assigned_to = ").push_bind(assignee);
    }
}

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

/// Inserts the ticket; its number and due dates come from the insert trigger.
async fn insert_ticket(
    conn: &mut PgConnection,
    id: Uuid,
    new: &NewTicket,
    now: DateTime<Utc>,
) -> Result<(), TicketError> {
    sqlx::query(
        "INSERT INTO support_tickets (id, user_id, conversation_id, subject, description, category, \
                                      priority, status, created_at, updated_at) \
         VALUES ($8, $1, $2, $3, $4, $5, $6, 'open', $7, $7)",
    )
    .bind(new.user_id)
    .bind(new.conversation_id)
    .bind(new.subject.as_str())
    .bind(new.description.as_deref())
    .bind(&new.category)
    .bind(&new.priority)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| insert_error(e, new))
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
                                          category, priority, status, created_at, updated_at) \
             VALUES ($8, $1, $2, $3, $4, $5, $6, 'open', $7, $7) RETURNING *) \
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
        .bind(&details)
        .bind(events::payload(&notice))
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

/// Hands a conversation over to humans: opens its ticket (subject from the conversation's
/// title, else its first user message) and marks the conversation escalated. If the
/// conversation already has an open ticket, that one is returned and nothing changes, so a
/// retried escalation never opens a second ticket.
pub async fn create_from_conversation(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    category: &str,
    priority: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let mut tx = conn.begin().await?;
    // The conversation's row lock serializes concurrent escalations of the same conversation.
    let conv: Option<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT user_id, title FROM conversations WHERE id = $1 FOR UPDATE")
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (user_id, title) = conv
        .ok_or_else(|| TicketError::UnknownReference(format!("conversation {conversation_id}")))?;
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM support_tickets WHERE conversation_id = $1 \
            AND status IN ('open', 'in_progress', 'pending') ORDER BY created_at DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = existing {
        let ticket = get(&mut tx, id, now).await?;
        tx.commit().await?;
        return Ok(ticket);
    }
    let first_message: Option<String> = sqlx::query_scalar(
        "SELECT content FROM messages WHERE conversation_id = $1 AND role = 'user' \
            AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(&mut *tx)
    .await?;
    let subject = title
        .as_deref()
        .and_then(Subject::summarize)
        .or_else(|| first_message.as_deref().and_then(Subject::summarize))
        .unwrap_or_else(|| Subject("Conversation escalated to support".into()));
    let reason = reason.trim();
    let new = NewTicket {
        user_id,
        conversation_id: Some(conversation_id),
        subject,
        description: (!reason.is_empty()).then(|| reason.to_string()),
        category: category.to_string(),
        priority: priority.to_string(),
    };
    let id = Uuid::new_v4();
    sqlx::query(
        "UPDATE conversations SET status = 'escalated', escalated_at = coalesce(escalated_at, $2) \
         WHERE id = $1",
    )
    .bind(conversation_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: None,
            action: "ticket.create",
            resource_type: "support_ticket",
            resource_id: Some(id),
            details: json!({
                "source": "conversation",
                "conversation_id": conversation_id,
                "category": category,
                "priority": priority,
                "reason": reason,
            }),
        },
    )
    .await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::TicketCreated)
            .with(ChangeKind::ConversationChanged)
            .ticket(id)
            .conversation(conversation_id),
    )
    .await?;
    insert_ticket(&mut tx, id, &new, now).await?;
    tx.commit().await?;
    get(conn, id, now).await
}

/// The ticket row an operation works on, locked until the operation commits.
#[derive(Debug, sqlx::FromRow)]
struct Locked {
    id: Uuid,
    ticket_number: String,
    #[sqlx(try_from = "String")]
    status: TicketStatus,
    assigned_to: Option<Uuid>,
    holder_email: Option<String>,
    holder_name: Option<String>,
    conversation_id: Option<Uuid>,
    user_id: Uuid,
    escalation_tier: String,
    first_response_at: Option<DateTime<Utc>>,
}

async fn lock(conn: &mut PgConnection, number: &str) -> Result<Locked, TicketError> {
    let number = normalize_number(number);
    sqlx::query_as(
        "SELECT t.id, t.ticket_number, t.status, t.assigned_to, u.email::text AS holder_email, \
                u.name AS holder_name, t.conversation_id, t.user_id, \
                t.escalation_tier, t.first_response_at \
           FROM support_tickets t LEFT JOIN users u ON u.id = t.assigned_to \
          WHERE t.ticket_number = $1 FOR UPDATE OF t",
    )
    .bind(&number)
    .fetch_optional(conn)
    .await?
    .ok_or(TicketError::NotFound(number))
}

/// Agents work unassigned tickets and their own; supervisors and admins any.
fn may_work(actor: &Actor, t: &Locked) -> Result<(), TicketError> {
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

async fn record(
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
    let taken: Option<(Uuid, Option<Uuid>, String)> = sqlx::query_as(
        "UPDATE support_tickets \
            SET assigned_to = $2, assigned_at = $3, \
                status = CASE WHEN status = 'open' THEN 'in_progress' ELSE status END \
          WHERE ticket_number = $1 AND assigned_to IS NULL \
            AND status IN ('open', 'in_progress', 'pending') \
         RETURNING id, conversation_id, status",
    )
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
    let mut tx = conn.begin().await?;
    let assignee = staff::actor_by_email(&mut tx, assignee_email).await?;
    let t = lock(&mut tx, number).await?;
    if !t.status.is_open() {
        return Err(TicketError::NotOpen {
            number: t.ticket_number,
            status: t.status,
        });
    }
    if t.assigned_to != Some(assignee.id) {
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
        record(
            &mut tx,
            actor,
            if t.assigned_to.is_some() {
                "ticket.reassign"
            } else {
                "ticket.assign"
            },
            t.id,
            json!({ "from": t.holder_email, "to": assignee.email }),
        )
        .await?;
        events::notify(&mut tx, &changed(&t)).await?;
    }
    let ticket = get(&mut tx, t.id, now).await?;
    tx.commit().await?;
    Ok(ticket)
}

/// Puts a ticket back in the unassigned queue (a supervisor, or the holder giving it back).
pub async fn release(
    conn: &mut PgConnection,
    actor: &Actor,
    number: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, TicketError> {
    let mut tx = conn.begin().await?;
    let t = lock(&mut tx, number).await?;
    if t.assigned_to != Some(actor.id) {
        staff::require(
            actor,
            StaffRole::Supervisor,
            "releasing someone else's ticket",
        )?;
    }
    if t.assigned_to.is_some() {
        sqlx::query(
            "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, \
                    status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END \
              WHERE id = $1",
        )
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            actor,
            "ticket.release",
            t.id,
            json!({ "from": t.holder_email }),
        )
        .await?;
        events::notify(&mut tx, &changed(&t)).await?;
    }
    let ticket = get(&mut tx, t.id, now).await?;
    tx.commit().await?;
    Ok(ticket)
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
    let mut tx = conn.begin().await?;
    let t = lock(&mut tx, number).await?;
    may_work(actor, &t)?;
    let from = t.status;
    if !from.can_go_to(to) {
        return Err(TicketError::InvalidTransition {
            number: t.ticket_number,
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
    let was_running = sla::clock_runs(from.as_str());
    let runs = sla::clock_runs(to.as_str());
    let mut breaches = Vec::new();
    if was_running && !runs {
        breaches = sla::record_breaches(&mut tx, t.id, now).await?;
        sla::pause(&mut tx, t.id, now).await?;
    }
    let mut resumed = None;
    if !was_running && runs {
        resumed = sla::resume(&mut tx, t.id, now).await?;
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
    record(
        &mut tx,
        actor,
        if reopen {
            "ticket.reopen"
        } else {
            "ticket.status"
        },
        t.id,
        json!({
            "from": from,
            "to": to,
            "note": note.is_some(),
            "breaches_recorded": breaches,
            "paused_seconds_added": resumed,
        }),
    )
    .await?;
    events::notify(&mut tx, &changed(&t)).await?;
    let ticket = get(&mut tx, t.id, now).await?;
    tx.commit().await?;
    Ok(ticket)
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
    let mut tx = conn.begin().await?;
    let t = lock(&mut tx, number).await?;
    may_work(actor, &t)?;
    if !t.status.is_open() {
        return Err(TicketError::NotOpen {
            number: t.ticket_number,
            status: t.status,
        });
    }
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
    sqlx::query(
        "INSERT INTO ticket_escalations (ticket_id, from_tier, to_tier, reason, actor_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id)
    .bind(from.as_str())
    .bind(tier.as_str())
    .bind(reason)
    .bind(actor.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE support_tickets SET escalation_tier = $2, escalated = true, escalation_reason = $3, \
                escalated_at = $4, escalated_by = $5 WHERE id = $1",
    )
    .bind(t.id)
    .bind(tier.as_str())
    .bind(reason)
    .bind(now)
    .bind(actor.id)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        actor,
        "ticket.escalate",
        t.id,
        json!({ "from": from, "to": tier, "reason": reason }),
    )
    .await?;
    events::notify(&mut tx, &changed(&t)).await?;
    let ticket = get(&mut tx, t.id, now).await?;
    tx.commit().await?;
    Ok(ticket)
}

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
    sqlx::query(
        "SELECT c.id FROM conversations c JOIN support_tickets t ON t.conversation_id = c.id \
          WHERE t.ticket_number = $1 FOR UPDATE OF c",
    )
    .bind(normalize_number(number))
    .fetch_optional(&mut *tx)
    .await?;
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
                let c: Uuid = sqlx::query_scalar(
                    "INSERT INTO conversations (user_id, mode, status, escalated_at, \
                                                created_at, updated_at) \
                     VALUES ($1, 'SUPPORT', 'escalated', $2, $2, $2) RETURNING id",
                )
                .bind(t.user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
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
        let m: Uuid = sqlx::query_scalar(
            "INSERT INTO messages (conversation_id, role, content, author_id, metadata, created_at) \
             VALUES ($1, 'staff', $2, $3, $4, clock_timestamp()) RETURNING id",
        )
        .bind(conv)
        .bind(text.as_str())
        .bind(actor.id)
        .bind(json!({
            "ticket_id": t.id,
            "ticket_number": t.ticket_number,
            "ticket_comment_id": comment_id,
            "author_name": actor.name,
        }))
        .fetch_one(&mut *tx)
        .await?;
        message_id = Some(m);
        notice = notice.with(ChangeKind::Message).conversation(conv);
        if t.first_response_at.is_none() {
            // A late answer is recorded as a breach before the clock stops.
            sla::record_breaches(&mut tx, t.id, now).await?;
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

/// A comment locked for a change, with what the permission check needs.
async fn lock_comment(
    conn: &mut PgConnection,
    comment_id: Uuid,
) -> Result<(Uuid, Uuid, String, Option<Uuid>, Uuid, Option<Uuid>), TicketError> {
    sqlx::query_as(
        "SELECT c.ticket_id, c.user_id, c.content, c.message_id, t.id, t.conversation_id \
           FROM ticket_comments c JOIN support_tickets t ON t.id = c.ticket_id \
          WHERE c.id = $1 AND c.deleted_at IS NULL FOR UPDATE OF c",
    )
    .bind(comment_id)
    .fetch_optional(conn)
    .await?
    .ok_or(TicketError::CommentNotFound(comment_id))
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
    let (ticket_id, author, previous, message_id, _, conversation_id) =
        lock_comment(&mut tx, comment_id).await?;
    if author != actor.id {
        staff::require(
            actor,
            StaffRole::Supervisor,
            "editing someone else's comment",
        )?;
    }
    if previous != text.as_str() {
        sqlx::query(
            "INSERT INTO ticket_comment_edits (comment_id, previous_content, edited_by, edited_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(comment_id)
        .bind(&previous)
        .bind(actor.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE ticket_comments SET content = $2 WHERE id = $1")
            .bind(comment_id)
            .bind(text.as_str())
            .execute(&mut *tx)
            .await?;
        if let Some(m) = message_id {
            sqlx::query("UPDATE messages SET content = $2 WHERE id = $1")
                .bind(m)
                .bind(text.as_str())
                .execute(&mut *tx)
                .await?;
        }
        record(
            &mut tx,
            actor,
            "ticket.comment_edit",
            ticket_id,
            json!({ "comment_id": comment_id, "message_id": message_id }),
        )
        .await?;
        events::notify(
            &mut tx,
            &comment_notice(ticket_id, message_id, conversation_id),
        )
        .await?;
    }
    let comment = comments(&mut tx, ticket_id)
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
    let (ticket_id, author, _, message_id, _, conversation_id) =
        lock_comment(&mut tx, comment_id).await?;
    if author != actor.id {
        staff::require(
            actor,
            StaffRole::Supervisor,
            "deleting someone else's comment",
        )?;
    }
    sqlx::query("UPDATE ticket_comments SET deleted_at = $2 WHERE id = $1")
        .bind(comment_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if let Some(m) = message_id {
        sqlx::query("UPDATE messages SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            .bind(m)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    record(
        &mut tx,
        actor,
        "ticket.comment_delete",
        ticket_id,
        json!({ "comment_id": comment_id, "message_id": message_id }),
    )
    .await?;
    events::notify(
        &mut tx,
        &comment_notice(ticket_id, message_id, conversation_id),
    )
    .await?;
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

/// Hands every open ticket a staff member holds back to the unassigned queue (their account
/// is being disabled); returns the tickets' numbers.
pub async fn release_all_held_by(
    conn: &mut PgConnection,
    staff_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, \
                status = CASE WHEN status = 'in_progress' THEN 'open' ELSE status END \
          WHERE assigned_to = $1 AND status IN ('open', 'in_progress', 'pending') \
         RETURNING ticket_number",
    )
    .bind(staff_id)
    .fetch_all(conn)
    .await
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table() {
        use TicketStatus::*;
        assert!(Open.can_go_to(InProgress));
        assert!(Resolved.can_go_to(Open) && Closed.can_go_to(InProgress));
        assert!(!Closed.can_go_to(Pending) && !Closed.can_go_to(Resolved));
        assert!(!Pending.can_go_to(Open));
        for s in TicketStatus::ALL {
            assert!(!s.can_go_to(s), "{s} -> {s}");
            assert_eq!(s.as_str().parse::<TicketStatus>().unwrap(), s);
        }
    }

    #[test]
    fn comment_text_rules() {
        assert!(CommentText::new("  \n ").is_err());
        assert!(CommentText::new("bell\u{7}").is_err());
        assert!(CommentText::new(&"ا".repeat(10_000)).is_ok());
        assert!(CommentText::new(&"ا".repeat(10_001)).is_err());
        assert_eq!(CommentText::new("a\r\nb\tc").unwrap().as_str(), "a\nb\tc");
    }

    #[test]
    fn subjects_are_one_line() {
        assert!(Subject::new("a\nb").is_err());
        let s = Subject::summarize("  Je   veux\nparler  ").unwrap();
        assert_eq!(s.as_str(), "Je veux parler");
        assert_eq!(
            Subject::summarize(&"x".repeat(300))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            121
        );
    }

    #[test]
    fn tiers_order() {
        assert!(Tier::T1 < Tier::T2 && Tier::T3 < Tier::Manager);
        assert_eq!("manager".parse::<Tier>().unwrap(), Tier::Manager);
    }
}
