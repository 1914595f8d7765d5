//! The audit trail: every staff action writes one `audit_logs` row in the same transaction as
//! the action itself, so an action and its record commit or roll back together.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

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

/// Writes the entry inside the caller's transaction.
pub async fn record(conn: &mut PgConnection, entry: &AuditEntry<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.resource_type)
    .bind(entry.resource_id)
    .bind(&entry.details)
    .fetch_one(conn)
    .await
}

/// One row of the audit trail as the console's audit view shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
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
}

/// Most rows one read of the audit trail returns.
pub const MAX_LIST: i64 = 1_000;

/// The newest `limit` audit entries, newest first; `action_prefix` (e.g. `ticket.`) narrows
/// them to one family of actions.
pub async fn list(
    conn: &mut PgConnection,
    action_prefix: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRecord>> {
    sqlx::query_as(
        "SELECT a.id, a.created_at, u.email::text AS actor_email, a.action, a.resource_type, \
                a.resource_id, a.details \
           FROM audit_logs a LEFT JOIN users u ON u.id = a.user_id \
          WHERE ($1::text IS NULL OR a.action LIKE $1 || '%') \
          ORDER BY a.created_at DESC, a.id LIMIT $2",
    )
    .bind(action_prefix)
    .bind(limit.clamp(1, MAX_LIST))
    .fetch_all(conn)
    .await
}
