//! The audit trail: every staff action writes one `audit_logs` row in the same transaction as
//! the action itself, so an action and its record commit or roll back together.
//!
//! Each row also says where the action came from ([`AuditContext`]): for the HTTP server the
//! client's address and user agent, and once the response is known its status (the outcome);
//! for the CLI and the console the machine's user and the SSH client (`SSH_CLIENT`). The
//! context travels without being passed to every function: the server sets it per request
//! ([`scope_request`], a task-local), the CLI and the console once per process
//! ([`set_process_context`]).

use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Where audited actions come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditContext {
    /// `server`, `cli` or `console`.
    pub channel: &'static str,
    /// The client's address (the server), or the SSH client's (CLI and console over SSH).
    pub ip_address: Option<IpAddr>,
    /// The HTTP client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The machine's user running the CLI or console.
    pub os_user: Option<String>,
    /// `SSH_CLIENT` as the SSH server set it (`address port local-port`).
    pub ssh_client: Option<String>,
}

impl AuditContext {
    /// The context of a CLI or console process: the machine's user and, over SSH, the SSH
    /// client and its address.
    pub fn machine(channel: &'static str) -> Self {
        let ssh_client = std::env::var("SSH_CLIENT")
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        AuditContext {
            channel,
            ip_address: ssh_client
                .as_deref()
                .and_then(|v| v.split_whitespace().next())
                .and_then(|ip| ip.parse().ok()),
            user_agent: None,
            os_user: machine_user(),
            ssh_client,
        }
    }

    /// The context of one HTTP request.
    pub fn request(ip_address: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        AuditContext {
            channel: "server",
            ip_address,
            // Bounded: the column is text, but a hostile client's header should not fill it.
            user_agent: user_agent.map(|ua| ua.chars().take(512).collect()),
            os_user: None,
            ssh_client: None,
        }
    }
}

/// The machine's user of this process (the password database's name for the effective uid,
/// else `USER`).
fn machine_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions; getpwuid returns null or a pointer into static
    // storage, from which the name is copied at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return Some(
                std::ffi::CStr::from_ptr((*pw).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    std::env::var("USER").ok()
}

static PROCESS_CONTEXT: OnceLock<AuditContext> = OnceLock::new();

/// Sets the context of every action this process audits outside a request (CLI, console).
/// The first call wins.
pub fn set_process_context(context: AuditContext) {
    let _ = PROCESS_CONTEXT.set(context);
}

/// One request's context and the audit rows it wrote (their outcome is set afterwards).
struct RequestAudit {
    context: AuditContext,
    recorded: Mutex<Vec<Uuid>>,
}

tokio::task_local! {
    static REQUEST: RequestAudit;
}

/// Runs `work` (a request's handling) with `context` on every audit row it writes; returns its
/// output and the ids of those rows, for [`record_outcome`].
pub async fn scope_request<F: std::future::Future>(
    context: AuditContext,
    work: F,
) -> (F::Output, Vec<Uuid>) {
    let audit = RequestAudit {
        context,
        recorded: Mutex::new(Vec::new()),
    };
    REQUEST
        .scope(audit, async {
            let output = work.await;
            let ids =
                REQUEST.with(|r| std::mem::take(&mut *r.recorded.lock().expect("not poisoned")));
            (output, ids)
        })
        .await
}

fn current_context() -> Option<AuditContext> {
    REQUEST
        .try_with(|r| r.context.clone())
        .ok()
        .or_else(|| PROCESS_CONTEXT.get().cloned())
}

/// Records the outcome of the request that wrote the rows `ids`: its HTTP status and, for a
/// failure, what went wrong. Rows of a rolled-back action do not exist and are not touched.
pub async fn record_outcome(
    conn: &mut PgConnection,
    ids: &[Uuid],
    status_code: u16,
    error_message: Option<&str>,
) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE audit_logs SET status_code = $2, error_message = $3 WHERE id = ANY($1)")
        .bind(ids)
        .bind(i32::from(status_code))
        .bind(error_message)
        .execute(conn)
        .await
        .map(|_| ())
}

/// One audited action.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The staff member (or system, when `None`) who acted.
    pub actor: Option<Uuid>,
    /// A stable, dotted action name, e.g. `ticket.take`, `kb.approve`, `staff.add`.
    pub action: &'a str,
    /// The kind of resource, e.g. `support_ticket`, `document`, `user`.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: Option<Uuid>,
    /// What changed (never secrets, never an end user's message text).
    pub details: Value,
}

/// Writes the entry inside the caller's transaction, with the current [`AuditContext`].
pub async fn record(conn: &mut PgConnection, entry: &AuditEntry<'_>) -> sqlx::Result<Uuid> {
    let context = current_context().unwrap_or_default();
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details, \
                                 ip_address, user_agent, channel, os_user, ssh_client) \
         VALUES ($1, $2, $3, $4, $5, $6::text::inet, $7, $8, $9, $10) RETURNING id",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.resource_type)
    .bind(entry.resource_id)
    .bind(&entry.details)
    .bind(context.ip_address.map(|ip| ip.to_string()))
    .bind(&context.user_agent)
    .bind((!context.channel.is_empty()).then_some(context.channel))
    .bind(&context.os_user)
    .bind(&context.ssh_client)
    .fetch_one(conn)
    .await?;
    let _ = REQUEST.try_with(|r| r.recorded.lock().expect("not poisoned").push(id));
    Ok(id)
}

/// One row of the audit trail as the console's audit view shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AuditRecord {
    /// `audit_logs.id`.
    pub id: Uuid,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Who (`None`: the system, or an account since deleted).
    pub actor_email: Option<String>,
    /// The dotted action name.
    pub action: String,
    /// The kind of resource.
    pub resource_type: Option<String>,
    /// The resource's id.
    pub resource_id: Option<Uuid>,
    /// What changed.
    pub details: Value,
    /// `server`, `cli` or `console` (`None`: recorded before the context was kept).
    pub channel: Option<String>,
    /// The client's or SSH client's address.
    pub ip_address: Option<String>,
    /// The HTTP client's user agent.
    pub user_agent: Option<String>,
    /// The machine's user (CLI and console).
    pub os_user: Option<String>,
    /// The HTTP status the request ended with (server).
    pub status_code: Option<i32>,
    /// What went wrong, when the request failed.
    pub error_message: Option<String>,
    /// What the entry is about, in words: `ticket TKT-2026-000012`, `conversation 1a2b3c4d
    /// (TKT-2026-000012)`, `document “…”`, `search “…”`, an account's e-mail; for a read entry,
    /// what was read (`None`: no resource).
    pub target: Option<String>,
}

/// Which audit rows to read; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Actions starting with this (e.g. `ticket.`).
    pub action_prefix: Option<String>,
    /// The client's (or SSH client's) address, exactly.
    pub ip_address: Option<IpAddr>,
    /// A part of the user agent (case-insensitive).
    pub user_agent: Option<String>,
    /// The machine's user, exactly.
    pub os_user: Option<String>,
    /// The actor's e-mail contains this (case-insensitive); `system` matches entries without
    /// an actor.
    pub actor: Option<String>,
    /// The channel: `server`, `cli` or `console`.
    pub channel: Option<String>,
    /// Entries at or after this instant.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Entries before this instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Outcome: `Some(true)` succeeded (status below 400, or no status: not a request),
    /// `Some(false)` failed.
    pub succeeded: Option<bool>,
    /// How many rows at most (clamped to [`MAX_LIST`]).
    pub limit: i64,
}

/// Most rows one read of the audit trail returns.
pub const MAX_LIST: i64 = 1_000;

/// The newest audit entries that `filter` admits, newest first.
///
/// Reading the trail is a staff privilege: callers outside the engine go through
/// `staff::audit_trail`, which checks the reader's role.
pub(crate) async fn list(
    conn: &mut PgConnection,
    filter: &AuditFilter,
) -> sqlx::Result<Vec<AuditRecord>> {
    sqlx::query_as(
        "SELECT a.id, a.created_at, u.email::text AS actor_email, a.action, a.resource_type, \
                a.resource_id, a.details, a.channel::text AS channel, \
                host(a.ip_address) AS ip_address, a.user_agent, a.os_user, a.status_code, \
                a.error_message, \
                coalesce(CASE a.resource_type \
                  WHEN 'support_ticket' THEN (SELECT 'ticket ' || t.ticket_number \
                      FROM support_tickets t WHERE t.id = a.resource_id) \
                  WHEN 'conversation' THEN (SELECT 'conversation ' || left(c.id::text, 8) || \
                      coalesce(' (' || (SELECT string_agg(t.ticket_number, ', ' ORDER BY t.created_at) \
                                          FROM support_tickets t WHERE t.conversation_id = c.id) || ')', '') \
                      FROM conversations c WHERE c.id = a.resource_id) \
                  WHEN 'user' THEN (SELECT CASE WHEN x.staff_role IS NULL THEN 'person ' \
                                                ELSE 'staff ' END || x.email::text \
                      FROM users x WHERE x.id = a.resource_id) \
                  WHEN 'document' THEN (SELECT 'document “' || d.title || '”' \
                      FROM documents d WHERE d.id = a.resource_id) \
                  WHEN 'canned_reply' THEN (SELECT 'canned reply “' || r.title || '”' \
                      FROM canned_replies r WHERE r.id = a.resource_id) \
                  WHEN 'message' THEN 'search “' || (a.details->>'query') || '”' \
                END, a.resource_type || ' ' || left(a.resource_id::text, 8)) AS target \
           FROM audit_logs a LEFT JOIN users u ON u.id = a.user_id \
          WHERE ($1::text IS NULL OR a.action LIKE $1 || '%') \
            AND ($2::text IS NULL OR a.ip_address = $2::text::inet) \
            AND ($3::text IS NULL OR a.user_agent ILIKE '%' || $3 || '%') \
            AND ($4::text IS NULL OR a.os_user = $4) \
            AND ($5::boolean IS NULL OR (coalesce(a.status_code, 200) < 400) = $5) \
            AND ($7::text IS NULL OR (CASE WHEN lower($7) = 'system' THEN a.user_id IS NULL \
                                          ELSE u.email::text ILIKE '%' || $7 || '%' END)) \
            AND ($8::text IS NULL OR a.channel::text = $8) \
            AND ($9::timestamptz IS NULL OR a.created_at >= $9) \
            AND ($10::timestamptz IS NULL OR a.created_at < $10) \
          ORDER BY a.created_at DESC, a.id LIMIT $6",
    )
    .bind(filter.action_prefix.as_deref())
    .bind(filter.ip_address.map(|ip| ip.to_string()))
    .bind(filter.user_agent.as_deref())
    .bind(filter.os_user.as_deref())
    .bind(filter.succeeded)
    .bind(filter.limit.clamp(1, MAX_LIST))
    .bind(filter.actor.as_deref())
    .bind(filter.channel.as_deref())
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(conn)
    .await
}

/// Deletes at most `limit` audit rows older than `cutoff` (the end of their retention period);
/// one short statement. Returns how many.
pub async fn delete_before(
    conn: &mut PgConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM audit_logs WHERE id IN \
           (SELECT id FROM audit_logs WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(cutoff)
    .bind(limit)
    .execute(conn)
    .await?
    .rows_affected())
}
