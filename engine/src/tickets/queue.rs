//! Reading tickets: one by id or number, its detail, a queue's page, and the comments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
// AssertSqlSafe: the only text spliced into SQL here is constant column lists, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder};
use std::str::FromStr;
use uuid::Uuid;

use super::TicketError;
use super::model::{
    Comment, RAW_CLOCK_COLUMNS, TICKET_SELECT, Ticket, TicketDetail, TicketRow, Tier, clock_inputs,
    normalize_number, open_statuses,
};
use crate::conversations::{self, StaffReader, TranscriptEntry};
use crate::lang::Lang;
use crate::staff::Actor;

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

/// The open ticket of a conversation (the newest, should there be several), if any.
pub async fn open_ticket_of(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(concat!(
        "SELECT id FROM support_tickets WHERE conversation_id = $1 AND status IN ",
        open_statuses!(),
        " ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(conversation_id)
    .fetch_optional(conn)
    .await
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

/// A ticket, its description, notes, comments and escalation history, as a staff member
/// reads it: audited once per opening by `reader` (`ticket.read`).
pub async fn detail(
    conn: &mut PgConnection,
    reader: &mut StaffReader,
    number: &str,
    now: DateTime<Utc>,
) -> Result<TicketDetail, TicketError> {
    let detail = detail_unaudited(conn, number, now).await?;
    reader.read_ticket(conn, detail.ticket.id).await;
    Ok(detail)
}

/// What a staff member sees opening a ticket: its [`detail`] and the newest `limit` messages
/// of its conversation (empty when it has none, or they cannot be read), as one audited read.
pub async fn open(
    conn: &mut PgConnection,
    reader: &mut StaffReader,
    number: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<(TicketDetail, Vec<TranscriptEntry>), TicketError> {
    let detail = detail_unaudited(conn, number, now).await?;
    let transcript = match detail.ticket.conversation_id {
        Some(c) => conversations::transcript_unaudited(conn, c, limit)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    };
    reader.read_ticket(conn, detail.ticket.id).await;
    Ok((detail, transcript))
}

async fn detail_unaudited(
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
    /// Only tickets worked in this language.
    pub language: Option<Lang>,
    /// Only tickets at this support tier.
    pub tier: Option<Tier>,
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
            language: None,
            tier: None,
            limit: 50,
        }
    }
}

/// A page of a queue at `now`. Open tickets come by the deadline they face next (first
/// response while unanswered, then resolution), so the most urgent work is on top; `Mine`
/// needs the actor. Each queue and each single filter reads a partial index that returns its
/// open tickets already in that order, so a page is one short index range scan whatever the
/// table's size or statistics (see `migrations/20261122100001_tickets_sla.sql` and
/// `20261208600001_queue_indexes.sql`; docs/tickets.md#queues).
pub async fn queue(
    conn: &mut PgConnection,
    actor: Option<&Actor>,
    filter: &QueueFilter,
    now: DateTime<Utc>,
) -> Result<Vec<Ticket>, TicketError> {
    let limit = filter.limit.clamp(1, 10_000);
    let mut tx = in_index_order(conn).await?;
    let rows: Vec<TicketRow> = open_page(actor, filter, now, limit, false)?
        .build_query_as()
        .fetch_all(&mut *tx)
        .await?;
    let mut tickets: Vec<Ticket> = rows.into_iter().map(Ticket::from).collect();

    if filter.queue == Queue::All && (tickets.len() as i64) < limit {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(TICKET_SELECT);
        qb.push(RAW_CLOCK_COLUMNS);
        qb.push(" FROM (SELECT ");
        qb.push_bind(now);
        qb.push(INPUTS_TAIL);
        qb.push("CROSS JOIN LATERAL (SELECT * FROM support_tickets t WHERE NOT ");
        qb.push(OPEN);
        push_filters(&mut qb, filter);
        qb.push(format!(
            " ORDER BY t.created_at DESC, t.id LIMIT {}",
            limit - tickets.len() as i64
        ));
        qb.push(
            ") t LEFT JOIN users u ON u.id = t.assigned_to \
             ORDER BY t.created_at DESC, t.id",
        );
        let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
        tickets.extend(rows.into_iter().map(Ticket::from));
    }
    // Nothing was written: the rollback ends the setting, inside a caller's transaction too.
    tx.rollback().await?;
    Ok(tickets)
}

/// A transaction (a savepoint inside the caller's) in which the planner reads a page in its
/// index's order rather than sorting: `enable_sort = off` until it ends. Every queue and
/// single filter has an index returning its rows in due order (`open_page`), but left to its
/// estimates the planner would still sort a bitmap scan whenever the statistics put the
/// matching rows below a few hundred, right or wrong: 10.5 ms at 100,000 tickets when it
/// guessed a tenth of the unassigned tickets. With sorting priced out, the plan is the index
/// range scan at every size and with any statistics; a combination of filters without an index
/// of its own scans the most selective index in order and filters the rest.
async fn in_index_order(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, Postgres>, TicketError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The plan PostgreSQL runs for the open tickets of [`queue`]'s page (EXPLAIN ANALYZE, text
/// lines): how the benchmark shows that every filter stays an index range scan.
pub async fn queue_plan(
    conn: &mut PgConnection,
    actor: Option<&Actor>,
    filter: &QueueFilter,
    now: DateTime<Utc>,
) -> Result<Vec<String>, TicketError> {
    let limit = filter.limit.clamp(1, 10_000);
    let mut tx = in_index_order(conn).await?;
    let plan = open_page(actor, filter, now, limit, true)?
        .build_query_scalar()
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(plan)
}

const OPEN: &str = concat!("t.status IN ", open_statuses!());

/// The statement reading a page of open tickets, prefixed with EXPLAIN ANALYZE when `explain`.
fn open_page(
    actor: Option<&Actor>,
    filter: &QueueFilter,
    now: DateTime<Utc>,
    limit: i64,
    explain: bool,
) -> Result<QueryBuilder<Postgres>, TicketError> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(if explain { "EXPLAIN ANALYZE " } else { "" });
    qb.push(TICKET_SELECT);
    qb.push(RAW_CLOCK_COLUMNS);
    qb.push(" FROM (SELECT ");
    qb.push_bind(now);
    qb.push(INPUTS_TAIL);
    qb.push("CROSS JOIN LATERAL (SELECT * FROM support_tickets t WHERE ");
    qb.push(OPEN);
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
    Ok(qb)
}

/// What a shift must not miss, counted over the open tickets: crisis tickets nobody holds and
/// tickets past a deadline (flagged by the sweeper, or past it and not swept yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Alerts {
    /// Open crisis tickets nobody holds.
    pub unassigned_crisis: i64,
    /// Open tickets that missed a target.
    pub breached: i64,
    /// The newest open crisis ticket nobody holds (its number), for the console's banner.
    pub newest_unassigned_crisis: Option<String>,
}

/// The [`Alerts`] at `now`: one pass over the open tickets (the queue indexes' partial set).
pub async fn alerts(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<Alerts> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE t.category = $2 AND t.assigned_to IS NULL) \
                    AS unassigned_crisis, \
                count(*) FILTER (WHERE t.first_response_breached OR t.resolution_breached \
                                    OR (t.sla_paused_at IS NULL AND t.sla_next_due_at <= $1)) \
                    AS breached, \
                (array_agg(t.ticket_number ORDER BY t.created_at DESC, t.id) \
                    FILTER (WHERE t.category = $2 AND t.assigned_to IS NULL))[1] \
                    AS newest_unassigned_crisis \
           FROM support_tickets t WHERE t.status IN {}",
        open_statuses!()
    )))
    .bind(now)
    .bind(crate::decision::crisis::CATEGORY)
    .fetch_one(conn)
    .await
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
    // As char(2), the column's type: compared as text, the language index would not apply.
    if let Some(language) = filter.language {
        qb.push(" AND t.language = ")
            .push_bind(language.code())
            .push("::char(2)");
    }
    if let Some(tier) = filter.tier {
        qb.push(" AND t.escalation_tier = ")
            .push_bind(tier.as_str());
    }
}
