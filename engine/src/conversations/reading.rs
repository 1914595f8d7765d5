//! Staff reading people's conversations. People's words are private, so reading them is
//! recorded as changing them is: the read functions take a [`StaffReader`] and audit inside the
//! engine, so no caller can forget to.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::lang::Lang;
use crate::staff::Actor;

/// A staff member reading, and what they have open. Each opening is recorded once
/// (`conversation.search`, `conversation.read`, `ticket.read`); refreshing what is already open
/// (a change elsewhere brought a re-read) is not. A console keeps one for its session.
#[derive(Debug, Clone, Default)]
pub struct StaffReader {
    actor: Option<Actor>,
    search: Option<String>,
    transcript: Option<Uuid>,
    ticket: Option<Uuid>,
}

/// What was read, for the audit trail.
enum Read<'a> {
    Search {
        query: &'a str,
        lang: Option<Lang>,
        found: usize,
    },
    Transcript(Uuid),
    Ticket(Uuid),
}

impl StaffReader {
    /// A reader acting as `actor`. `None` is the machine's administrator at the CLI over SSH,
    /// who holds the database's keys already: their reads are not recorded.
    pub fn new(actor: Option<Actor>) -> Self {
        StaffReader {
            actor,
            ..StaffReader::default()
        }
    }

    /// Who reads.
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }

    /// A search over conversations ran (`None`: the list has no search any more).
    pub(crate) async fn searched(
        &mut self,
        conn: &mut PgConnection,
        search: Option<(&str, Option<Lang>, usize)>,
    ) {
        let Some((query, lang, found)) = search else {
            self.search = None;
            return;
        };
        if self.search.as_deref() != Some(query) {
            let read = Read::Search { query, lang, found };
            if self.record(conn, read).await {
                self.search = Some(query.to_string());
            }
        }
    }

    /// A conversation's transcript was read.
    pub(crate) async fn read_transcript(&mut self, conn: &mut PgConnection, id: Uuid) {
        if self.transcript != Some(id) && self.record(conn, Read::Transcript(id)).await {
            self.transcript = Some(id);
        }
    }

    /// A ticket, with its conversation, was read.
    pub(crate) async fn read_ticket(&mut self, conn: &mut PgConnection, id: Uuid) {
        if self.ticket != Some(id) && self.record(conn, Read::Ticket(id)).await {
            self.ticket = Some(id);
        }
    }

    /// Records a read; a failure to audit is logged and the read itself stands (the staff
    /// member sees it either way), and it is tried again at the next read. Returns whether it
    /// was recorded.
    async fn record(&self, conn: &mut PgConnection, read: Read<'_>) -> bool {
        let Some(actor) = &self.actor else {
            return false;
        };
        match record(conn, actor, read).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "auditing a read failed");
                false
            }
        }
    }
}

/// Records a search over messages by `actor` (`conversation.search`).
pub(crate) async fn record_search(
    conn: &mut PgConnection,
    actor: &Actor,
    query: &str,
    lang: Option<Lang>,
    found: usize,
) -> sqlx::Result<()> {
    record(conn, actor, Read::Search { query, lang, found }).await
}

async fn record(conn: &mut PgConnection, actor: &Actor, read: Read<'_>) -> sqlx::Result<()> {
    let (action, resource_type, resource_id, details) = match read {
        Read::Search { query, lang, found } => (
            "conversation.search",
            "message",
            None,
            json!({"query": query, "lang": lang.map(|l| l.code()), "found": found}),
        ),
        Read::Transcript(id) => ("conversation.read", "conversation", Some(id), json!({})),
        Read::Ticket(id) => ("ticket.read", "support_ticket", Some(id), json!({})),
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
