//! Database work off the render loop (as gitui's asyncgit): the app sends [`Request`]s, a
//! worker task runs them with the engine library and reports [`DataEvent`]s by channel. Of
//! several pending refreshes of the same view only the newest runs. A listener task turns the
//! engine's NOTIFY channel into events and reconnects with back-off when the connection drops.

use std::time::Duration;

use amal_engine::db::{PgConnection, PgPool};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use uuid::Uuid;

use amal_engine::admin::{self, AdminView};
use amal_engine::audit::{AuditFilter, AuditRecord};
use amal_engine::canned::{self, CannedChange, CannedReply};
use amal_engine::config::RoutingSettings;
use amal_engine::conversations::{
    self, ConversationFilter, ConversationSummary, StaffReader, TranscriptEntry,
};
use amal_engine::decision::crisis::CrisisNumbers;
use amal_engine::events::{self, ChangeNotice};
use amal_engine::knowledge::store::{self, DocumentSummary, DocumentText};
use amal_engine::lang::Lang;
use amal_engine::lookups::{self, Labels};
use amal_engine::presence::{self, OnShift, Presence, PresenceCause, ProfileChange};
use amal_engine::retention::{self, RetentionKind};
use amal_engine::roster::{self, ShiftKeeper};
use amal_engine::routing::{self, Alert, OfferAnswer};
use amal_engine::sessions::ClientInfo;
use amal_engine::sla::{self, Calendar};
use amal_engine::staff::{self, Actor, StaffPreferences, StaffRole};
use amal_engine::stats::{self, Statistics};
use amal_engine::tickets::{
    self, Alerts, BulkSummary, CommentText, QueueFilter, Ticket, TicketDetail, TicketStatus, Tier,
    Triage, Viewer, Visibility,
};

/// Who is signed in, with what the console needs to show things their way.
#[derive(Debug, Clone)]
pub struct Session {
    /// The staff member.
    pub actor: Actor,
    /// Their saved theme and label language.
    pub preferences: StaffPreferences,
    /// Lookup names in three languages.
    pub labels: Labels,
}

/// A change a staff member makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Take the ticket.
    Take(String),
    /// Step into a live conversation that has no ticket: one is opened, linked and taken.
    TakeOver(Uuid),
    /// Give it back to the queue.
    Release(String),
    /// Assign it to a staff member (by e-mail).
    Assign(String, String),
    /// Move it to a tier, with a reason.
    Escalate(String, Tier, String),
    /// Re-triage it (supervisors), with a reason.
    Triage(String, Triage, String),
    /// Change its status (pending, resolved with notes, closed).
    Status(String, TicketStatus, Option<String>),
    /// Reopen it.
    Reopen(String),
    /// Comment: ticket, text, internal.
    Comment(String, String, bool),
    /// Approve a knowledge document.
    Approve(Uuid),
    /// Reject a knowledge document with a reason.
    Reject(Uuid, String),
    /// Save the theme preference.
    SaveTheme(String),
    /// Admin: clear a sign-in lock.
    Unlock(String),
    /// Admin: disable an account (its tickets go back to the queue).
    Disable(String),
    /// Admin: enable a disabled account.
    Enable(String),
    /// Admin: change an account's role.
    SetRole(String, StaffRole),
    /// Admin: change a member's routing profile.
    SetProfile(String, ProfileChange),
    /// Admin: a priority's SLA targets in minutes (first response, resolution).
    SetTargets(String, i32, i32),
    /// Admin: the business-hours calendar.
    SetCalendar(Calendar),
    /// Admin: add (or rename) a holiday.
    AddHoliday(chrono::NaiveDate, String),
    /// Admin: remove a holiday.
    RemoveHoliday(chrono::NaiveDate),
    /// Admin: a retention period in days.
    SetRetention(RetentionKind, i32),
    /// The signed-in member's own presence (online or away).
    SetPresence(Presence),
    /// Answer a ticket offered to the signed-in member.
    AnswerOffer(String, OfferAnswer),
    /// The signed-in member has seen their on-call alerts.
    AlertsSeen,
    /// Assign these tickets to a staff member (by e-mail), ticket by ticket.
    BulkAssign(Vec<String>, String),
    /// Close these tickets, ticket by ticket; `true` when crisis tickets among them were
    /// confirmed.
    BulkClose(Vec<String>, bool),
    /// Add a canned reply: language, title, text.
    CannedAdd(Lang, String, String),
    /// Edit a canned reply.
    CannedEdit(Uuid, CannedChange),
    /// Remove a canned reply.
    CannedRemove(Uuid),
}

impl Command {
    /// What the console says it did (or tried).
    pub fn describe(&self) -> String {
        match self {
            Command::Take(n) => format!("took {n}"),
            Command::TakeOver(_) => "conversation taken over; its ticket is yours".into(),
            Command::Release(n) => format!("released {n}"),
            Command::Assign(n, e) => format!("assigned {n} to {e}"),
            Command::Escalate(n, t, _) => format!("moved {n} to {}", t.as_str()),
            Command::Triage(n, _, _) => format!("re-triaged {n}"),
            Command::Status(n, s, _) => format!("{n} is now {}", s.as_str()),
            Command::Reopen(n) => format!("reopened {n}"),
            Command::Comment(n, _, true) => format!("internal note added to {n}"),
            Command::Comment(n, _, false) => format!("reply sent on {n}"),
            Command::Approve(_) => "document approved".into(),
            Command::Reject(_, _) => "document rejected".into(),
            Command::SaveTheme(t) => format!("theme {t} saved"),
            Command::Unlock(e) => format!("unlocked {e}"),
            Command::Disable(e) => format!("disabled {e}"),
            Command::Enable(e) => format!("enabled {e}"),
            Command::SetRole(e, r) => format!("{e} is now {r}"),
            Command::SetProfile(e, _) => format!("profile of {e} saved"),
            Command::SetTargets(p, f, r) => {
                format!("{p}: first response {f} min, resolution {r} min")
            }
            Command::SetCalendar(_) => "business hours saved".into(),
            Command::AddHoliday(d, n) => format!("{d} is a holiday: {n}"),
            Command::RemoveHoliday(d) => format!("{d} is a working day again"),
            Command::SetRetention(k, d) => format!("{k} kept {d} days"),
            Command::SetPresence(p) => format!("you are {p}"),
            Command::AnswerOffer(n, OfferAnswer::Accept) => format!("{n} is yours"),
            Command::AnswerOffer(n, OfferAnswer::Decline) => format!("declined {n}"),
            Command::AlertsSeen => "on-call alerts seen".into(),
            Command::BulkAssign(ns, e) => format!("assigned {} ticket(s) to {e}", ns.len()),
            Command::BulkClose(ns, _) => format!("closed {} ticket(s)", ns.len()),
            Command::CannedAdd(_, t, _) => format!("canned reply “{t}” added"),
            Command::CannedEdit(..) => "canned reply saved".into(),
            Command::CannedRemove(_) => "canned reply removed".into(),
        }
    }
}

/// Work for the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Sign in.
    SignIn {
        /// E-mail.
        email: String,
        /// Password.
        password: String,
    },
    /// The conversation list.
    Conversations(ConversationFilter),
    /// One conversation's transcript.
    Transcript(Uuid),
    /// A queue page.
    Queue(QueueFilter),
    /// One ticket with its conversation.
    Ticket(String),
    /// Statistics over a number of days.
    Statistics(i32),
    /// Knowledge documents for review.
    Documents,
    /// The audit log, as filtered.
    Audit(AuditFilter),
    /// The staff with their presence, profile and load (the assign picker).
    Staff,
    /// The canned replies (all languages).
    Canned,
    /// A canned reply filled in for a ticket: ticket number, reply.
    CannedFill(String, Uuid),
    /// Mark the ticket as viewed here (the heartbeat) and read who else views it.
    Viewing(String),
    /// The ticket is no longer viewed here.
    StopViewing(String),
    /// A knowledge document's text.
    DocumentText(Uuid),
    /// The counts every screen's header shows (crisis tickets nobody holds, breaches).
    Alerts,
    /// The shift board: who is online, their languages, tier and load.
    Shift,
    /// The signed-in member's pending offers and unseen on-call alerts.
    Duty,
    /// What the admin screen shows (admins only).
    Admin,
    /// A change.
    Act(Command),
}

impl Request {
    /// Refreshes of the same view replace each other; changes never do.
    fn view(&self) -> Option<u8> {
        Some(match self {
            Request::Conversations(_) => 1,
            Request::Transcript(_) => 2,
            Request::Queue(_) => 3,
            Request::Ticket(_) => 4,
            Request::Statistics(_) => 5,
            Request::Documents => 6,
            Request::Audit(_) => 7,
            Request::Alerts => 8,
            Request::Shift => 9,
            Request::Duty => 10,
            Request::Admin => 11,
            Request::Staff => 12,
            Request::Canned => 13,
            Request::Viewing(_) => 14,
            Request::DocumentText(_) => 15,
            Request::CannedFill(..) | Request::StopViewing(_) => return None,
            Request::SignIn { .. } | Request::Act(_) => return None,
        })
    }
}

/// A ticket as its screen shows it.
#[derive(Debug, Clone)]
pub struct TicketView {
    /// The ticket, its comments and history.
    pub detail: TicketDetail,
    /// Its conversation, newest messages.
    pub transcript: Vec<TranscriptEntry>,
}

/// The state of the live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Listening.
    Live,
    /// Lost; the next attempt in this many milliseconds.
    Lost {
        /// Wait before the next attempt, in milliseconds.
        retry_in_ms: u64,
    },
}

/// What the worker and the listener report.
#[derive(Debug, Clone)]
pub enum DataEvent {
    /// Sign-in outcome.
    SignedIn(Result<Box<Session>, String>),
    /// The conversation list.
    Conversations(Vec<ConversationSummary>),
    /// A transcript.
    Transcript(Uuid, Vec<TranscriptEntry>),
    /// A queue page and the instant its clocks were read.
    Queue(Vec<Ticket>, DateTime<Utc>),
    /// A ticket, read at the instant given.
    Ticket(Box<TicketView>, DateTime<Utc>),
    /// Statistics.
    Statistics(Box<Statistics>),
    /// Knowledge documents.
    Documents(Vec<DocumentSummary>),
    /// The audit log.
    Audit(Vec<AuditRecord>),
    /// The header's counts.
    Alerts(Alerts),
    /// The shift board.
    Shift(Vec<OnShift>),
    /// The signed-in member's pending offers (ticket, expiry) and unseen on-call alerts.
    Duty(Vec<(String, DateTime<Utc>)>, Vec<Alert>),
    /// The admin screen's data.
    Admin(Box<AdminView>),
    /// The staff board.
    Staff(Vec<OnShift>),
    /// The canned replies.
    Canned(Vec<CannedReply>),
    /// A canned reply filled in for the ticket with this number.
    CannedText(String, String),
    /// The others viewing the ticket with this number.
    Viewers(String, Vec<Viewer>),
    /// A knowledge document's text.
    Document(Box<DocumentText>),
    /// A change was made (or refused: the error text).
    Done(Command, Result<(), String>),
    /// A read failed.
    Failed(String),
    /// Something changed in the database.
    Notice(ChangeNotice),
    /// The live connection's state.
    Connection(Connection),
}

impl DataEvent {
    /// A read that succeeded (clears the last read failure).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            DataEvent::Conversations(_)
                | DataEvent::Transcript(..)
                | DataEvent::Queue(..)
                | DataEvent::Ticket(..)
                | DataEvent::Statistics(_)
                | DataEvent::Documents(_)
                | DataEvent::Audit(_)
                | DataEvent::Alerts(_)
                | DataEvent::Shift(_)
                | DataEvent::Duty(..)
                | DataEvent::Admin(_)
                | DataEvent::Staff(_)
                | DataEvent::Canned(_)
                | DataEvent::Viewers(..)
                | DataEvent::Document(_)
        )
    }
}

/// Runs requests until the sender is dropped.
pub async fn worker(
    pool: PgPool,
    mut requests: UnboundedReceiver<Request>,
    events: UnboundedSender<DataEvent>,
) {
    let mut actor: Option<Actor> = None;
    // What is on screen: reading people's conversations is audited by the engine when it is
    // opened (or searched), not at every refresh that a change elsewhere brings.
    let mut reader = StaffReader::default();
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        // Only the newest refresh of each view runs.
        let mut keep = vec![true; batch.len()];
        for i in 0..batch.len() {
            if let Some(view) = batch[i].view()
                && batch[i + 1..].iter().any(|r| r.view() == Some(view))
            {
                keep[i] = false;
            }
        }
        for (request, keep) in batch.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            let event = run(&pool, &mut actor, &mut reader, request).await;
            if events.send(event).is_err() {
                return;
            }
        }
    }
}

async fn run(
    pool: &PgPool,
    actor: &mut Option<Actor>,
    reader: &mut StaffReader,
    request: Request,
) -> DataEvent {
    let now = Utc::now();
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            return match request {
                Request::SignIn { .. } => DataEvent::SignedIn(Err(format!("database: {e}"))),
                Request::Act(c) => DataEvent::Done(c, Err(format!("database: {e}"))),
                _ => DataEvent::Failed(format!("database: {e}")),
            };
        }
    };
    let fail = |e: String| DataEvent::Failed(e);
    match request {
        Request::SignIn { email, password } => {
            let client = ClientInfo {
                ip: None,
                user_agent: Some(format!("amal-console/{}", env!("CARGO_PKG_VERSION"))),
            };
            let signed = match staff::sign_in(&mut conn, &email, &password, now, &client).await {
                Ok(s) => s,
                Err(staff::StaffError::Locked { until }) => {
                    return DataEvent::SignedIn(Err(locked_message(until, now)));
                }
                Err(e) => return DataEvent::SignedIn(Err(e.to_string())),
            };
            let preferences = match staff::preferences(&mut conn, signed.actor.id).await {
                Ok(p) => p,
                Err(e) => return DataEvent::SignedIn(Err(e.to_string())),
            };
            let labels = match lookups::labels(&mut conn).await {
                Ok(l) => l,
                Err(e) => return DataEvent::SignedIn(Err(e.to_string())),
            };
            *actor = Some(signed.actor.clone());
            *reader = StaffReader::new(Some(signed.actor.clone()));
            start_shift(pool, &signed.actor, now).await;
            DataEvent::SignedIn(Ok(Box::new(Session {
                actor: signed.actor,
                preferences,
                labels,
            })))
        }
        Request::Conversations(filter) => {
            match conversations::list(&mut conn, reader, &filter).await {
                Ok(list) => DataEvent::Conversations(list),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Transcript(id) => {
            match conversations::transcript(&mut conn, reader, id, 100).await {
                Ok(t) => DataEvent::Transcript(id, t),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Queue(filter) => {
            match tickets::queue(&mut conn, actor.as_ref(), &filter, now).await {
                Ok(list) => DataEvent::Queue(list, now),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Ticket(number) => {
            match tickets::open(&mut conn, reader, &number, now, 100).await {
                Ok((detail, transcript)) => {
                    DataEvent::Ticket(Box::new(TicketView { detail, transcript }), now)
                }
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Statistics(days) => {
            // The daily figures are refreshed first; a refresh that fails (another one is
            // running) still leaves figures to show.
            if let Err(e) = stats::refresh(&mut conn).await {
                tracing::warn!(error = %e, "statistics refresh failed");
            }
            match stats::collect(&mut conn, now, days).await {
                Ok(s) => DataEvent::Statistics(Box::new(s)),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Documents => match store::list_documents(&mut conn, None).await {
            Ok(docs) => DataEvent::Documents(docs),
            Err(e) => fail(e.to_string()),
        },
        Request::Audit(filter) => {
            let Some(viewer) = actor.as_ref() else {
                return fail("not signed in".into());
            };
            let filter = AuditFilter {
                limit: AUDIT_ROWS,
                ..filter
            };
            match staff::audit_trail(&mut conn, viewer, &filter).await {
                Ok(rows) => DataEvent::Audit(rows),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Staff => {
            let timeout = RoutingSettings::from_env()
                .unwrap_or_default()
                .presence_timeout_seconds;
            match presence::board(&mut conn, timeout, now).await {
                Ok(board) => DataEvent::Staff(board),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Canned => match canned::list(&mut conn, None).await {
            Ok(list) => DataEvent::Canned(list),
            Err(e) => fail(e.to_string()),
        },
        Request::CannedFill(number, id) => {
            let numbers = CrisisNumbers::from_env();
            match canned::fill_for_ticket(&mut conn, id, &number, &numbers).await {
                Ok(text) => DataEvent::CannedText(number, text),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Viewing(number) => {
            let Some(me) = actor.as_ref() else {
                return fail("not signed in".into());
            };
            match tickets::viewing(&mut conn, me, &number, now).await {
                Ok(others) => DataEvent::Viewers(number, others),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::StopViewing(number) => {
            let Some(me) = actor.as_ref() else {
                return fail("not signed in".into());
            };
            match tickets::stop_viewing(&mut conn, me, &number).await {
                Ok(()) => DataEvent::Viewers(number, Vec::new()),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::DocumentText(id) => match store::document_text(&mut conn, id).await {
            Ok(doc) => DataEvent::Document(Box::new(doc)),
            Err(e) => fail(e.to_string()),
        },
        Request::Alerts => match tickets::alerts(&mut conn, now).await {
            Ok(a) => DataEvent::Alerts(a),
            Err(e) => fail(e.to_string()),
        },
        Request::Shift => {
            let timeout = routing_settings().presence_timeout_seconds;
            match presence::board(&mut conn, timeout, now).await {
                Ok(board) => DataEvent::Shift(board),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Duty => {
            let Some(me) = actor.as_ref() else {
                return fail("not signed in".into());
            };
            let offers = match routing::pending_offers(&mut conn, me.id).await {
                Ok(o) => o,
                Err(e) => return fail(e.to_string()),
            };
            match routing::unseen_alerts(&mut conn, me.id).await {
                Ok(alerts) => DataEvent::Duty(offers, alerts),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Admin => {
            let Some(viewer) = actor.as_ref() else {
                return fail("not signed in".into());
            };
            match admin::view(&mut conn, viewer).await {
                Ok(view) => DataEvent::Admin(Box::new(view)),
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Act(command) => {
            let Some(actor) = actor.as_ref() else {
                return DataEvent::Done(command, Err("not signed in".into()));
            };
            drop(conn);
            let result = act(pool, actor, &command, now).await;
            DataEvent::Done(command, result)
        }
    }
}

/// A locked account, said so that it can be acted on: when (local time, and in how many
/// minutes) and who can help sooner.
pub fn locked_message(until: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = ((until - now).num_seconds().max(0) + 59) / 60;
    format!(
        "account locked after {} failed sign-ins; try again at {} (in {minutes} min), \
         or ask an admin to unlock it",
        staff::LOCKOUT_THRESHOLD,
        until.with_timezone(&chrono::Local).format("%H:%M")
    )
}

/// Who holds the ticket now (before a change that may give it back).
async fn holder(c: &mut PgConnection, number: &str, now: DateTime<Utc>) -> Option<Uuid> {
    tickets::find(c, number, now)
        .await
        .ok()
        .and_then(|t| t.assigned_to_id)
}

/// Routes a ticket a change left waiting (unassigned, open, no offer) at once, as
/// `AMAL_ROUTING` says ([`routing::route_now`]), never back to `gave_back`, as the CLI does. The
/// change itself is done: a routing failure is logged, and the shift worker routes the ticket
/// on its next pass.
async fn route_after(
    c: &mut PgConnection,
    t: &tickets::Ticket,
    gave_back: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if let Err(e) = routing::route_now(c, &routing_settings(), t.id, gave_back, now).await {
        tracing::warn!(ticket = %t.ticket_number, error = %e, "routing after a change failed");
    }
    Ok(())
}

/// A change's outcome as the console reports it: done, or the engine's words for the refusal.
fn outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<(), String> {
    result.map(drop).map_err(|e| e.to_string())
}

async fn act(
    pool: &PgPool,
    actor: &Actor,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let c = &mut *conn;
    match command {
        Command::Take(n) => outcome(tickets::take(c, actor, n, now).await),
        Command::TakeOver(id) => outcome(amal_engine::turn::take_over(c, actor, *id, now).await),
        Command::Release(n) => {
            let before = holder(c, n, now).await;
            let t = tickets::release(c, actor, n, now)
                .await
                .map_err(|e| e.to_string())?;
            route_after(c, &t, before, now).await
        }
        Command::Assign(n, email) => outcome(tickets::assign(c, actor, n, email, now).await),
        Command::Escalate(n, tier, reason) => {
            let t = tickets::escalate(c, actor, n, *tier, reason, now)
                .await
                .map_err(|e| e.to_string())?;
            route_after(c, &t, None, now).await
        }
        Command::Triage(n, change, reason) => {
            let t = tickets::triage(c, actor, n, change, reason, now)
                .await
                .map_err(|e| e.to_string())?;
            route_after(c, &t, None, now).await
        }
        Command::Status(n, status, note) => {
            let before = holder(c, n, now).await;
            let t = tickets::set_status(c, actor, n, *status, note.as_deref(), now)
                .await
                .map_err(|e| e.to_string())?;
            route_after(c, &t, before, now).await
        }
        Command::Reopen(n) => {
            let t = tickets::reopen(c, actor, n, now)
                .await
                .map_err(|e| e.to_string())?;
            route_after(c, &t, None, now).await
        }
        Command::Comment(n, text, internal) => {
            let text = CommentText::new(text).map_err(|e| e.to_string())?;
            let visibility = if *internal {
                Visibility::Internal
            } else {
                Visibility::Public
            };
            outcome(tickets::comment(c, actor, n, &text, visibility, now).await)
        }
        Command::Approve(id) => outcome(store::approve(pool, *id, actor).await),
        Command::Reject(id, reason) => outcome(store::reject(pool, *id, actor, reason).await),
        Command::SaveTheme(theme) => outcome(staff::save_theme(c, actor, theme).await),
        Command::Unlock(email) => outcome(staff::unlock(c, Some(actor), email, now).await),
        Command::Disable(email) => {
            outcome(roster::disable(c, Some(actor), email, &routing_settings(), now).await)
        }
        Command::Enable(email) => outcome(staff::enable(c, Some(actor), email).await),
        Command::SetRole(email, role) => {
            outcome(staff::set_role(c, Some(actor), email, *role).await)
        }
        Command::SetProfile(email, change) => {
            outcome(presence::set_profile(c, actor, email, change).await)
        }
        Command::SetTargets(priority, first, resolution) => {
            outcome(sla::set_targets(c, Some(actor), priority, *first, *resolution).await)
        }
        Command::SetCalendar(calendar) => {
            outcome(sla::set_calendar(c, Some(actor), calendar).await)
        }
        Command::AddHoliday(day, name) => {
            outcome(sla::add_holiday(c, Some(actor), *day, name).await)
        }
        Command::RemoveHoliday(day) => outcome(sla::remove_holiday(c, Some(actor), *day).await),
        Command::SetRetention(kind, days) => {
            outcome(retention::set(c, Some(actor), *kind, *days).await)
        }
        Command::SetPresence(to) => outcome(
            roster::set_presence(
                c,
                Some(actor),
                &actor.email,
                *to,
                PresenceCause::SelfSet,
                &routing_settings(),
                now,
            )
            .await,
        ),
        Command::AnswerOffer(number, answer) => outcome(
            routing::answer_offer(c, actor, number, *answer, &routing_settings(), now).await,
        ),
        Command::AlertsSeen => outcome(routing::mark_alerts_seen(c, actor.id, now).await),
        Command::BulkAssign(numbers, email) => {
            let outcomes = tickets::bulk_assign(c, actor, numbers, email, now)
                .await
                .map_err(|e| e.to_string())?;
            bulk_outcome(BulkSummary::of(&outcomes))
        }
        Command::BulkClose(numbers, crisis_confirmed) => {
            let outcomes = tickets::bulk_close(c, actor, numbers, *crisis_confirmed, now).await;
            bulk_outcome(BulkSummary::of(&outcomes))
        }
        Command::CannedAdd(lang, title, body) => {
            outcome(canned::add(c, actor, *lang, title, body).await)
        }
        Command::CannedEdit(id, change) => outcome(canned::edit(c, actor, *id, change).await),
        Command::CannedRemove(id) => outcome(canned::remove(c, actor, *id).await),
    }
}

/// Rows of the audit log one read shows.
const AUDIT_ROWS: i64 = 300;

/// A bulk change's outcome: done when every ticket changed, else how many did and why each
/// refused one was refused.
fn bulk_outcome(summary: BulkSummary) -> Result<(), String> {
    if summary.refused.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = summary
        .refused
        .iter()
        .map(|(n, e)| format!("{n}: {e}"))
        .collect();
    Err(format!(
        "{} done, {} refused: {}",
        summary.done,
        summary.refused.len(),
        why.join("; ")
    ))
}

/// First wait after a lost connection; doubled up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: u64 = 250;
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF_MS: u64 = 8_000;

/// Listens for change notices until the receiver is dropped, reconnecting with back-off.
pub async fn listener(pool: PgPool, events: UnboundedSender<DataEvent>) {
    let mut backoff_ms = FIRST_BACKOFF_MS;
    loop {
        match events::subscribe(&pool).await {
            Ok(mut sub) => {
                backoff_ms = FIRST_BACKOFF_MS;
                if events
                    .send(DataEvent::Connection(Connection::Live))
                    .is_err()
                {
                    return;
                }
                while let Ok(Some(notice)) = sub.next().await {
                    if events.send(DataEvent::Notice(notice)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "live connection failed"),
        }
        let lost = DataEvent::Connection(Connection::Lost {
            retry_in_ms: backoff_ms,
        });
        if events.send(lost).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(MAX_BACKOFF_MS);
    }
}

/// The signed-in member's presence (online, heartbeat, idle away), kept by the engine.
static SHIFT: std::sync::OnceLock<std::sync::Arc<ShiftKeeper>> = std::sync::OnceLock::new();

/// The routing and presence settings from the environment (the defaults, logged, when a
/// variable is wrong: the console still works).
fn routing_settings() -> RoutingSettings {
    RoutingSettings::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "presence settings not used");
        RoutingSettings::default()
    })
}

/// Sets the member online and starts the heartbeat. Presence is not worth refusing a sign-in
/// over: a failure is logged.
async fn start_shift(pool: &PgPool, member: &Actor, now: DateTime<Utc>) {
    let settings = routing_settings();
    match ShiftKeeper::start(pool.clone(), member.clone(), settings, now).await {
        Ok(keeper) if SHIFT.set(keeper.clone()).is_ok() => {
            keeper.spawn();
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "presence not set"),
    }
}

/// Input from the member: not idle.
pub fn touch_shift() {
    if let Some(keeper) = SHIFT.get() {
        keeper.touch();
    }
}

/// The console quits: the member goes offline.
pub async fn end_shift() {
    if let Some(keeper) = SHIFT.get()
        && let Err(e) = keeper.stop(Utc::now()).await
    {
        tracing::warn!(error = %e, "presence not set offline");
    }
}
