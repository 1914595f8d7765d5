//! Live events: one small NOTIFY per committed transaction that changes what a console shows.
//!
//! Channel [`CHANNEL`] carries a JSON [`ChangeNotice`] with ids only (far under PostgreSQL's
//! 8,000-byte payload limit); listeners re-read what they display. NOTIFY serializes commits
//! cluster-wide, so a transaction sends at most one: collect everything it changed into one
//! notice and call [`notify`] once, just before commit. The notice is delivered only if the
//! transaction commits.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// The one channel every change is announced on.
pub const CHANNEL: &str = "amal_events";

/// What kind of change a transaction made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A conversation was started.
    ConversationCreated,
    /// A conversation's status, mode or title changed.
    ConversationChanged,
    /// A message was added to a conversation.
    Message,
    /// A decision was logged.
    Decision,
    /// A ticket was opened.
    TicketCreated,
    /// A ticket's status, assignment, priority, tier or SLA state changed.
    TicketChanged,
    /// A ticket comment was added, edited or deleted.
    Comment,
    /// A knowledge-base document was added, reviewed or changed.
    Document,
    /// A staff account changed.
    Staff,
    /// A staff member's presence changed (online, away, offline).
    Presence,
    /// A ticket was offered to a staff member, or an offer was answered or expired.
    Offer,
    /// On-call staff were alerted (a ticket found nobody online).
    Alert,
    /// A person's session ended before its time (signed out, or the account forgotten): the
    /// notice names the session, or the person when all of their sessions ended. Live streams
    /// of that session or person close.
    SessionEnded,
}

/// The payload of one NOTIFY: what changed and the ids to re-read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeNotice {
    /// The kinds of change, without repeats.
    pub kinds: Vec<ChangeKind>,
    /// The conversation concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Uuid>,
    /// The ticket concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    /// The document concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<Uuid>,
    /// The person concerned, when the change is about one person's data (their live streams
    /// re-read it; nobody else's need to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The session concerned, if any (a sign-out ends one session, not the person's others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Uuid>,
}

impl ChangeNotice {
    /// A notice with one kind of change.
    pub fn new(kind: ChangeKind) -> Self {
        ChangeNotice {
            kinds: vec![kind],
            ..Default::default()
        }
    }

    /// Adds a kind of change (once).
    pub fn with(mut self, kind: ChangeKind) -> Self {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
        self
    }

    /// Names the conversation concerned.
    pub fn conversation(mut self, id: Uuid) -> Self {
        self.conversation_id = Some(id);
        self
    }

    /// Names the ticket concerned.
    pub fn ticket(mut self, id: Uuid) -> Self {
        self.ticket_id = Some(id);
        self
    }

    /// Names the document concerned.
    pub fn document(mut self, id: Uuid) -> Self {
        self.document_id = Some(id);
        self
    }

    /// Names the person concerned.
    pub fn user(mut self, id: Uuid) -> Self {
        self.user_id = Some(id);
        self
    }

    /// Names the session concerned.
    pub fn session(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    /// Parses a payload received on [`CHANNEL`].
    pub fn parse(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// Queues the notice in the current transaction (sent at commit, dropped on rollback).
pub async fn notify(conn: &mut PgConnection, notice: &ChangeNotice) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload(notice))
        .execute(conn)
        .await?;
    Ok(())
}

/// A live subscription to [`CHANNEL`]: what consoles and streams listen on.
pub struct Subscription(sqlx::postgres::PgListener);

/// Opens a dedicated connection from the pool's settings and listens on [`CHANNEL`].
pub async fn subscribe(pool: &sqlx::PgPool) -> sqlx::Result<Subscription> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(Subscription(listener))
}

impl Subscription {
    /// The next notice. `Ok(None)` means the connection was lost: notices sent meanwhile are
    /// gone, so the caller re-reads what it shows (the next call reconnects). A payload that does
    /// not parse (another program's) is skipped.
    pub async fn next(&mut self) -> sqlx::Result<Option<ChangeNotice>> {
        loop {
            match self.0.try_recv().await? {
                None => return Ok(None),
                Some(n) => match ChangeNotice::parse(n.payload()) {
                    Ok(notice) => return Ok(Some(notice)),
                    Err(e) => tracing::debug!(error = %e, "ignoring a foreign notification"),
                },
            }
        }
    }
}

/// The JSON payload of a notice, for statements that send it themselves (`pg_notify` on
/// [`CHANNEL`]).
pub fn payload(notice: &ChangeNotice) -> String {
    serde_json::to_string(notice).expect("notice serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_round_trips_and_stays_small() {
        let notice = ChangeNotice::new(ChangeKind::TicketCreated)
            .with(ChangeKind::Message)
            .with(ChangeKind::Message)
            .conversation(Uuid::nil())
            .ticket(Uuid::max());
        assert_eq!(
            notice.kinds,
            vec![ChangeKind::TicketCreated, ChangeKind::Message]
        );
        let json = serde_json::to_string(&notice).unwrap();
        assert!(json.len() < 200, "{json}");
        assert_eq!(ChangeNotice::parse(&json).unwrap(), notice);
    }
}
