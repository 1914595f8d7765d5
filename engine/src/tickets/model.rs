//! What a ticket is: its status and tier, the validated texts, the rows as read (with the SLA
//! clock computed from them), and the one definition of an open ticket.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TicketError;
use crate::sla::{SlaClock, SlaState, SlaStateText, state_of};

/// The statuses of a ticket that still needs staff work, as an SQL list literal, for
/// `concat!` into queries. The one definition every query of open tickets uses; the
/// migrations' partial indexes repeat it, and a test holds it to [`TicketStatus::is_open`].
macro_rules! open_statuses {
    () => {
        "('open', 'in_progress', 'pending')"
    };
}
pub(crate) use open_statuses;

/// [`open_statuses!`] as a constant.
pub const OPEN_STATUSES: &str = open_statuses!();

/// The statuses in which the SLA clock runs, as an SQL list literal (see [`open_statuses!`]),
/// held to [`TicketStatus::clock_runs`] by a test.
macro_rules! running_statuses {
    () => {
        "('open', 'in_progress')"
    };
}
pub(crate) use running_statuses;

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

    /// The SLA clock runs (open, in_progress); it stands still while the ticket waits on the
    /// person (pending) and after it.
    pub fn clock_runs(self) -> bool {
        matches!(self, TicketStatus::Open | TicketStatus::InProgress)
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

    /// The subject of a conversation handed over to the team: its title, else its first
    /// message from the person, else a plain statement.
    pub fn for_conversation(title: Option<&str>, first_message: Option<&str>) -> Self {
        title
            .and_then(Subject::summarize)
            .or_else(|| first_message.and_then(Subject::summarize))
            .unwrap_or_else(|| Subject("Conversation escalated to support".into()))
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
    /// The language it is worked in (ar, fr, en): its conversation's at creation, then as
    /// re-triaged; `None` when unknown.
    pub language: Option<String>,
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
pub(super) struct TicketRow {
    pub(super) id: Uuid,
    pub(super) ticket_number: String,
    pub(super) subject: String,
    pub(super) category: String,
    pub(super) priority: String,
    pub(super) status: String,
    pub(super) assigned_to: Option<String>,
    pub(super) assigned_to_name: Option<String>,
    pub(super) assigned_to_id: Option<Uuid>,
    pub(super) escalation_tier: String,
    pub(super) language: Option<String>,
    pub(super) user_id: Uuid,
    pub(super) conversation_id: Option<Uuid>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) first_response_at: Option<DateTime<Utc>>,
    pub(super) resolved_at: Option<DateTime<Utc>>,
    pub(super) closed_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    pub(super) clock: RawClock,
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
            language: r.language,
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
pub(super) const TICKET_SELECT: &str = "SELECT t.id, t.ticket_number, t.subject, t.category, t.priority, \
     u.email::text AS assigned_to, u.name AS assigned_to_name, \
     t.assigned_to AS assigned_to_id, t.escalation_tier, t.language, t.user_id, t.conversation_id, \
     t.created_at, t.updated_at, t.closed_at, ";

/// `tkt-2026-000001` and surrounding spaces are accepted for `TKT-2026-000001`.
pub(super) fn normalize_number(number: &str) -> String {
    number.trim().to_uppercase()
}

/// What [`SlaClock`] is computed from, read straight off `support_tickets` (alias `t`) with the
/// instant and the calendar's mode in `n` ([`clock_inputs`]): the working-time spans come from SQL (the calendar's one
/// implementation), the states from [`RawClock::clock`]. List queries use this instead of
/// `ticket_sla_at`, whose plan costs milliseconds to build; both follow the same rules and the
/// tests compare them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct RawClock {
    #[sqlx(try_from = "String")]
    status: TicketStatus,
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    sla_paused_at: Option<DateTime<Utc>>,
    first_response_breached: bool,
    resolution_breached: bool,
    first_response_deadline_at: Option<DateTime<Utc>>,
    resolution_deadline_at: Option<DateTime<Utc>>,
    clock_fr_target: Option<f64>,
    clock_res_target: Option<f64>,
    clock_fr_left: Option<f64>,
    clock_res_left: Option<f64>,
}

/// A one-row relation `n` with the instant (`n.at`, from the given placeholder) and the calendar
/// mode (`n.bh`). A scalar subquery rather than a join: the planner then knows it is one row (an
/// unanalyzed `sla_calendar` is estimated at hundreds, which inflated plan costs past the JIT
/// threshold and cost a compilation per query).
pub(super) fn clock_inputs(placeholder: &str) -> String {
    format!(
        "(SELECT {placeholder}::timestamptz AS at, \
                 (SELECT business_hours FROM sla_calendar WHERE id) AS bh) n"
    )
}

/// The select-list of a [`RawClock`] (needs `n` from [`clock_inputs`]).
pub(super) const RAW_CLOCK_COLUMNS: &str = "t.status, t.first_response_at, t.resolved_at, \
     t.sla_paused_at, t.first_response_breached, t.resolution_breached, \
     t.first_response_deadline_at, t.resolution_deadline_at, \
     sla_seconds_between(n.bh, t.created_at, t.first_response_due_at) AS clock_fr_target, \
     sla_seconds_between(n.bh, t.created_at, t.resolution_due_at) AS clock_res_target, \
     sla_seconds_between(n.bh, coalesce(t.sla_paused_at, n.at), \
                         t.first_response_deadline_at) AS clock_fr_left, \
     sla_seconds_between(n.bh, coalesce(t.sla_paused_at, n.at), \
                         t.resolution_deadline_at) AS clock_res_left";

impl RawClock {
    /// The clock, by the rules of `ticket_sla_at` (see the migration).
    pub(super) fn clock(&self) -> SlaClock {
        let is_open = self.status.is_open();
        let fr_state = if self.first_response_breached {
            SlaState::Breached
        } else if let Some(answered) = self.first_response_at {
            // Answered while the clock stood still counts at the pause start.
            let at = self.sla_paused_at.map_or(answered, |p| answered.min(p));
            match self.first_response_deadline_at {
                Some(deadline) if at > deadline => SlaState::Breached,
                _ => SlaState::Ok,
            }
        } else {
            match (self.clock_fr_target, self.clock_fr_left) {
                (Some(target), Some(left)) => state_of(target - left, target),
                _ => SlaState::Ok,
            }
        };
        let res_state = if self.resolution_breached {
            SlaState::Breached
        } else if let (Some(resolved), false) = (self.resolved_at, is_open) {
            match self.resolution_deadline_at {
                Some(deadline) if resolved > deadline => SlaState::Breached,
                _ => SlaState::Ok,
            }
        } else {
            match (self.clock_res_target, self.clock_res_left) {
                (Some(target), Some(left)) => state_of(target - left, target),
                _ => SlaState::Ok,
            }
        };
        let worst = if fr_state == SlaState::Breached || res_state == SlaState::Breached {
            SlaState::Breached
        } else if fr_state == SlaState::Warning || res_state == SlaState::Warning {
            SlaState::Warning
        } else {
            SlaState::Ok
        };
        let floor = |v: Option<f64>| v.map(|v| v.floor() as i64);
        SlaClock {
            first_response_due_at: self.first_response_deadline_at,
            first_response_target_seconds: floor(self.clock_fr_target),
            first_response_remaining_seconds: if self.first_response_at.is_none() && is_open {
                floor(self.clock_fr_left)
            } else {
                None
            },
            first_response_state: SlaStateText(fr_state),
            resolution_due_at: self.resolution_deadline_at,
            resolution_target_seconds: floor(self.clock_res_target),
            resolution_remaining_seconds: if is_open {
                floor(self.clock_res_left)
            } else {
                None
            },
            resolution_state: SlaStateText(res_state),
            sla_state: SlaStateText(worst),
            sla_paused: self.sla_paused_at.is_some(),
        }
    }
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
    fn the_sql_lists_of_statuses_match_the_type() {
        let listed = |sql: &str| {
            TicketStatus::ALL
                .into_iter()
                .filter(|s| sql.contains(&format!("'{}'", s.as_str())))
                .collect::<Vec<_>>()
        };
        let open: Vec<_> = TicketStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        let running: Vec<_> = TicketStatus::ALL
            .into_iter()
            .filter(|s| s.clock_runs())
            .collect();
        assert_eq!(listed(OPEN_STATUSES), open);
        assert_eq!(listed(running_statuses!()), running);
    }

    #[test]
    fn tiers_order() {
        assert!(Tier::T1 < Tier::T2 && Tier::T3 < Tier::Manager);
        assert_eq!("manager".parse::<Tier>().unwrap(), Tier::Manager);
    }
}
