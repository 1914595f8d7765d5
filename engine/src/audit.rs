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
