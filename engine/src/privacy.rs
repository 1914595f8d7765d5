//! A person's rights over their data: the export of everything the service holds about them,
//! and being forgotten. Both span accounts, sessions, conversations and tickets, so they live
//! above those modules and ask each owner to read or erase its own rows, in one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::conversations::{self, person};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::sessions::{self, SessionProblem};
use crate::tickets;
use crate::users::{self, UserError};

/// What replaces a forgotten person's texts.
pub const REDACTED: &str = "[deleted]";

/// Everything the service holds about the person, as one JSON document: account, consent,
/// preferences, sessions, conversations with their messages, and the tickets about them
/// (without internal comments or the staff working them).
pub async fn export(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Value, UserError> {
    let mut tx = conn.begin().await?;
    // One snapshot for the whole document.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Behind the row-level wall: whatever the queries below select, only this person's rows.
    crate::db::person::enter(&mut tx, user_id).await?;
    let profile = users::profile(&mut tx, user_id).await?;
    let prefs = users::preferences(&mut tx, user_id).await?;
    let sessions = sessions::export(&mut tx, user_id).await?;
    let consent_ip = users::consent_ip_address(&mut tx, user_id).await?;
    let mut conversations_out = Vec::new();
    for c in person::conversations(&mut tx, user_id, i64::MAX).await? {
        let messages = person::messages_after(&mut tx, c.id, None, i64::MAX).await?;
        conversations_out.push(json!({
            "id": c.id,
            "title": c.title,
            "mode": c.mode,
            "status": c.status,
            "language": c.language,
            "created_at": c.created_at,
            "last_message_at": c.last_message_at,
            "archived_at": c.archived_at,
            "messages": messages,
        }));
    }
    let tickets = tickets::export_for_person(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(json!({
        "exported_at": now,
        "profile": profile,
        "consent_ip_address": consent_ip,
        "preferences": prefs,
        "sessions": sessions,
        "conversations": conversations_out,
        "tickets": tickets,
    }))
}

/// What forgetting a person changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// Messages whose text was erased.
    pub messages: u64,
    /// Tickets whose texts were erased.
    pub tickets: u64,
    /// Sessions deleted.
    pub sessions: u64,
}

/// The right to be forgotten, in one transaction: the account is soft-deleted and anonymized
/// (placeholder address, no name, no IP addresses), sessions, magic links and preferences are
/// deleted, and every text about the person (messages, conversation titles, ticket subjects,
/// descriptions and comments, decision evidence) is erased. The rows themselves stay, with
/// their dates, categories, priorities and decisions, so the statistics keep their counts.
pub async fn forget(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<ForgetReport, UserError> {
    let mut tx = conn.begin().await?;
    let email = users::lock_end_user(&mut tx, user_id)
        .await?
        .ok_or(UserError::Session(SessionProblem::Revoked))?;
    users::delete_magic_links(&mut tx, &email).await?;
    crate::mail::forget(&mut tx, user_id, &email).await?;
    let sessions = sessions::delete_all(&mut tx, user_id).await?;
    users::delete_preferences(&mut tx, user_id).await?;
    let messages = conversations::redact_for_person(&mut tx, user_id, REDACTED).await?;
    let tickets = tickets::redact_for_person(&mut tx, user_id, REDACTED).await?;
    users::anonymize(&mut tx, user_id, now).await?;
    let report = ForgetReport {
        messages,
        tickets,
        sessions,
    };
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(user_id),
            action: "user.forget",
            resource_type: "user",
            resource_id: Some(user_id),
            details: json!(report),
        },
    )
    .await?;
    // Consoles showing the person's conversations or tickets re-read them; of the live
    // streams, only the person's own hear it, and close (their sessions are gone).
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::ConversationChanged)
            .with(ChangeKind::TicketChanged)
            .with(ChangeKind::SessionEnded)
            .user(user_id),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}
