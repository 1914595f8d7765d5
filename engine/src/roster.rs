//! The team as a whole: changes to a staff account that reach into the work it holds. Above
//! [`crate::staff`] (accounts) and [`crate::tickets`] (the work), so that neither writes the
//! other's tables.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::audit::{self, AuditEntry};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::staff::{self, Actor, StaffAccount, StaffError};
use crate::tickets;

/// Disables an account: it can no longer sign in, its sessions are revoked, and the open
/// tickets it held go back to the unassigned queue (a disabled agent would otherwise sit on
/// them while their SLA clocks run). Disabling a disabled account changes nothing.
pub async fn disable(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    now: DateTime<Utc>,
) -> Result<StaffAccount, StaffError> {
    let mut tx = conn.begin().await?;
    let (account, revoked) = staff::deactivate(&mut tx, by, email, now).await?;
    let Some(revoked) = revoked else {
        // Already disabled: nothing changed, nothing to commit.
        return Ok(account);
    };
    let released = tickets::release_all_held_by(&mut tx, account.id).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.disable",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({
                "email": account.email,
                "sessions_revoked": revoked,
                "tickets_released": released,
            }),
        },
    )
    .await?;
    let mut notice = ChangeNotice::new(ChangeKind::Staff);
    if !released.is_empty() {
        notice = notice.with(ChangeKind::TicketChanged);
    }
    events::notify(&mut tx, &notice).await?;
    tx.commit().await?;
    Ok(StaffAccount {
        is_active: false,
        ..account
    })
}
