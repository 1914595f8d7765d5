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
//!
//! This module is the only writer of `support_tickets` (and of its comments, escalations and
//! breach events): [`model`] holds the types, [`queue`] the reads, [`create`] the one way a
//! ticket comes to be, [`lifecycle`] every change to one locked ticket, [`clock`] the SLA
//! clock's stops, starts and breaches, [`comments`] the conversation between staff and the
//! person, [`person`] what the person's data rights need, [`bulk`] changes to several
//! tickets at once and [`viewers`] who has a ticket open.

pub mod bulk;
pub mod clock;
pub mod comments;
pub mod create;
pub mod lifecycle;
pub mod model;
pub mod person;
pub mod queue;
pub mod viewers;

use uuid::Uuid;

use crate::sla;
use crate::staff::StaffError;

pub use bulk::{BulkOutcome, BulkSummary, bulk_assign, bulk_close};
pub use clock::{SWEEP_BATCH, SweepReport, resume_pending, sweep};
pub use comments::{comment, delete_comment, edit_comment};
pub use create::{HandOver, HandOverReason, NewTicket, create, hand_over};
pub use lifecycle::{
    Triage, assign, assign_routed, escalate, release, release_all_held_by,
    release_unanswered_held_by, reopen, set_status, take, triage,
};
pub use model::{
    Comment, CommentText, Escalation, OPEN_STATUSES, Subject, Ticket, TicketDetail, TicketStatus,
    Tier, Visibility,
};
pub use person::{export_for_person, redact_for_person};
pub use queue::{
    Alerts, Queue, QueueFilter, alerts, comments, detail, find, get, open, open_ticket_of, queue,
    queue_plan,
};
pub use viewers::{VIEWING_EXPIRY, Viewer, stop_viewing, viewing};

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
    /// A crisis ticket in a bulk close that was not confirmed for crisis tickets.
    #[error("ticket {0} is a crisis ticket; closing it with others needs an explicit confirmation")]
    CrisisNotConfirmed(String),
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
