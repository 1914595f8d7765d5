//! The console as a router: each key, click, action and data event goes to the screen it
//! concerns (see [`crate::screens`]), and what the screens ask for in return is carried out
//! here. Nothing here awaits: database work goes to the worker as [`Request`]s and comes back
//! as [`DataEvent`]s; drawing (in [`crate::ui`]) only reads this state.

use std::cell::Cell;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use ratatui::layout::Position;
use tokio::sync::mpsc::UnboundedSender;

use crate::action::{self, Action, Scope};
use crate::chrome::overlay::{Answer, Chooser, ChooserPurpose, Confirmed, Overlay, PromptPurpose};
use crate::chrome::picker::{DocumentStep, DocumentView, PickKey, Picker, PickerPurpose};
use crate::chrome::{self, AlertBanner, Toast};
use crate::data::{Command, Connection, DataEvent, Request};
use crate::screens::admin::AdminScreen;
use crate::screens::audit::AuditScreen;
use crate::screens::conversations::ConversationsScreen;
use crate::screens::knowledge::KnowledgeScreen;
use crate::screens::queue::QueueScreen;
use crate::screens::shift::ShiftScreen;
use crate::screens::sign_in::{SignInForm, SignInStep};
use crate::screens::statistics::StatisticsScreen;
use crate::screens::ticket::TicketScreen;
use crate::screens::{Context, Effect, Outbox, Screen, ScreenId};
use crate::theme::Theme;
use crate::ui::HitAreas;
use amal_engine::canned::{CannedChange, CannedReply};
use amal_engine::events::ChangeKind;
use amal_engine::lang::Lang;
use amal_engine::routing::{Alert, OfferAnswer};
use amal_engine::staff::StaffRole;
use amal_engine::tickets::Alerts;

/// How often the open ticket's viewing mark is renewed (the engine lets it expire after 30 s).
const VIEWING_HEARTBEAT_SECONDS: i64 = 10;

/// How often the header's counts are read without a notice (deadlines pass by themselves).
const ALERTS_REREAD_SECONDS: i64 = 15;

/// The console.
pub struct App {
    /// Signing in, when `Some`.
    pub sign_in: Option<SignInForm>,
    /// Who is signed in, the theme, the text direction and the clock.
    pub ctx: Context,
    /// Where theme files are.
    pub themes_dir: Option<PathBuf>,
    /// The current screen.
    pub screen: ScreenId,
    /// The live connection; `None` before the first attempt.
    pub connection: Option<Connection>,
    /// A passing message.
    pub toast: Option<Toast>,
    /// The open overlay.
    pub overlay: Option<Overlay>,
    /// The conversations screen.
    pub conversations: ConversationsScreen,
    /// The queue screen.
    pub queue: QueueScreen,
    /// The ticket screen, with every ticket's draft.
    pub ticket: TicketScreen,
    /// The statistics screen.
    pub statistics: StatisticsScreen,
    /// The knowledge review screen.
    pub knowledge: KnowledgeScreen,
    /// The audit log screen.
    pub audit: AuditScreen,
    /// The shift board.
    pub shift: ShiftScreen,
    /// The admin screen.
    pub admin: AdminScreen,
    /// Tickets offered to the signed-in member (number, expiry), soonest first.
    pub offers: Vec<(String, DateTime<Utc>)>,
    /// The offer whose prompt was hidden (Esc) until another offer comes; it can still be
    /// answered until it expires (`ticket accept`), then the next member is asked.
    pub offer_hidden: Option<String>,
    /// The signed-in member's unseen on-call alerts (tickets that found nobody online).
    pub on_call: Vec<Alert>,
    /// The last read failure, shown in the status line until a read succeeds again.
    pub last_error: Option<String>,
    /// The header's counts: crisis tickets nobody holds, breaches (`None` before the first
    /// read).
    pub alerts: Option<Alerts>,
    /// A new crisis ticket or breach, shown until dismissed (Esc) or replaced.
    pub alert: Option<AlertBanner>,
    /// Ring the terminal bell for a new crisis ticket (the configuration's `bell`).
    pub bell: bool,
    /// The bell is to ring after the next frame.
    pub ring: bool,
    /// The canned replies as last read (the picker shows these at once, then the fresh ones).
    pub canned: Vec<CannedReply>,
    /// When the counts were last asked for (they change with time too: deadlines pass).
    alerts_asked: Option<DateTime<Utc>>,
    /// Leave the loop.
    pub should_quit: bool,
    /// Something changed since the last frame.
    pub dirty: bool,
    /// Where the last frame put things.
    pub hit: Cell<HitAreas>,
    requests: UnboundedSender<Request>,
}

impl App {
    /// A console about to sign in. `email` pre-fills the form (`amal --as EMAIL`).
    pub fn new(
        requests: UnboundedSender<Request>,
        theme: Theme,
        themes_dir: Option<PathBuf>,
        email: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        App {
            sign_in: Some(SignInForm::new(email)),
            ctx: Context {
                session: None,
                theme,
                bidi: true,
                now,
            },
            themes_dir,
            screen: ScreenId::Conversations,
            connection: None,
            toast: None,
            overlay: None,
            conversations: ConversationsScreen::default(),
            queue: QueueScreen::new(now),
            ticket: TicketScreen::default(),
            statistics: StatisticsScreen::default(),
            knowledge: KnowledgeScreen::default(),
            audit: AuditScreen::default(),
            shift: ShiftScreen::default(),
            admin: AdminScreen::default(),
            offers: Vec::new(),
            offer_hidden: None,
            on_call: Vec::new(),
            last_error: None,
            alerts: None,
            alert: None,
            bell: true,
            ring: false,
            alerts_asked: None,
            canned: Vec::new(),
            should_quit: false,
            dirty: true,
            hit: Cell::new(HitAreas::default()),
            requests,
        }
    }

    fn send(&self, request: Request) {
        // The worker outlives the app; a closed channel only happens while quitting.
        let _ = self.requests.send(request);
    }

    /// The screen shown.
    pub fn current(&self) -> &dyn Screen {
        match self.screen {
            ScreenId::Conversations => &self.conversations,
            ScreenId::Queue => &self.queue,
            ScreenId::Ticket => &self.ticket,
            ScreenId::Statistics => &self.statistics,
            ScreenId::Knowledge => &self.knowledge,
            ScreenId::Audit => &self.audit,
            ScreenId::Shift => &self.shift,
            ScreenId::Admin => &self.admin,
        }
    }

    /// A screen to change, with the context it reads.
    fn split(&mut self, screen: ScreenId) -> (&mut dyn Screen, &Context) {
        let screen: &mut dyn Screen = match screen {
            ScreenId::Conversations => &mut self.conversations,
            ScreenId::Queue => &mut self.queue,
            ScreenId::Ticket => &mut self.ticket,
            ScreenId::Statistics => &mut self.statistics,
            ScreenId::Knowledge => &mut self.knowledge,
            ScreenId::Audit => &mut self.audit,
            ScreenId::Shift => &mut self.shift,
            ScreenId::Admin => &mut self.admin,
        };
        (screen, &self.ctx)
    }

    /// Whether the ticket's composer has the keyboard.
    pub fn composing(&self) -> bool {
        self.screen == ScreenId::Ticket && self.ticket.composing
    }

    /// Carries out what a screen asked for, in its order.
    fn apply(&mut self, out: Outbox) {
        for effect in out.into_effects() {
            match effect {
                Effect::Send(request) => self.send(request),
                Effect::Refresh(screen) => self.refresh(screen),
                Effect::Toast { text, error } => self.toast(text, error),
                Effect::Overlay(overlay) => self.overlay = Some(overlay),
                Effect::OpenTicket(number) => self.open_ticket(number),
            }
        }
    }

    fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toast = Some(Toast::new(text.into(), error, self.ctx.now));
        self.dirty = true;
    }

    /// A second passed: countdowns move, toasts expire.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.ctx.now = now;
        if self.toast.as_ref().is_some_and(|t| t.until <= now) {
            self.toast = None;
            self.dirty = true;
        }
        let signed_in = self.ctx.session.is_some();
        if signed_in && (self.current().counting() || self.offer_shown().is_some()) {
            self.dirty = true;
        }
        if self.screen == ScreenId::Queue && signed_in && self.queue.reread_due(now) {
            self.refresh(ScreenId::Queue);
        }
        if signed_in
            && self.screen == ScreenId::Ticket
            && let Some(n) = self.ticket.number.clone()
            && self
                .ticket
                .viewing_at
                .is_none_or(|at| now - at >= chrono::Duration::seconds(VIEWING_HEARTBEAT_SECONDS))
        {
            self.ticket.viewing_at = Some(now);
            self.send(Request::Viewing(n));
        }
        if signed_in
            && self
                .alerts_asked
                .is_none_or(|at| now - at >= chrono::Duration::seconds(ALERTS_REREAD_SECONDS))
        {
            self.ask_alerts();
        }
    }

    fn ask_alerts(&mut self) {
        self.alerts_asked = Some(self.ctx.now);
        self.send(Request::Alerts);
        self.send(Request::Duty);
    }

    /// The offer whose prompt is shown: the soonest one not yet expired, unless put away.
    pub fn offer_shown(&self) -> Option<(&str, DateTime<Utc>)> {
        self.offers
            .iter()
            .find(|(n, until)| {
                *until > self.ctx.now && self.offer_hidden.as_deref() != Some(n.as_str())
            })
            .map(|(n, until)| (n.as_str(), *until))
    }

    /// The member's offers and on-call alerts: a new offer shows its prompt (with the bell); a
    /// new alert raises the on-call banner and the bell.
    fn on_duty(&mut self, offers: Vec<(String, DateTime<Utc>)>, alerts: Vec<Alert>) {
        let new_offer = offers
            .iter()
            .any(|(n, _)| !self.offers.iter().any(|(m, _)| m == n));
        // A new offer rings and brings the prompt back.
        if new_offer {
            self.ring = self.bell;
            self.offer_hidden = None;
        }
        self.offers = offers;
        let fresh: Vec<&Alert> = alerts
            .iter()
            .filter(|a| !self.on_call.iter().any(|b| b.id == a.id))
            .collect();
        if !fresh.is_empty() {
            let crisis = alerts.iter().filter(|a| a.crisis).count();
            let numbers: Vec<&str> = alerts
                .iter()
                .filter_map(|a| a.ticket_number.as_deref())
                .take(3)
                .collect();
            let text = match alerts.as_slice() {
                [one] => format!(
                    "ON CALL: {}{} found nobody online",
                    one.ticket_number.as_deref().unwrap_or("a ticket"),
                    if one.crisis { " (crisis)" } else { "" }
                ),
                _ => format!(
                    "ON CALL: {} tickets found nobody online{}: {}",
                    alerts.len(),
                    if crisis > 0 {
                        format!(" ({crisis} crisis)")
                    } else {
                        String::new()
                    },
                    numbers.join(", ")
                ),
            };
            self.alert = Some(AlertBanner {
                text,
                since: self.ctx.now,
            });
            self.ring = self.bell;
        }
        self.on_call = alerts;
    }

    /// New counts: a crisis ticket nobody holds that was not there before raises the banner
    /// and the bell; more breaches than before raise the banner once.
    fn on_alerts(&mut self, now: Alerts) {
        let banner = |text: String, at| Some(AlertBanner { text, since: at });
        match &self.alerts {
            None if now.unassigned_crisis > 0 => {
                self.alert = banner(
                    format!(
                        "{} crisis ticket(s) nobody holds: take one now",
                        now.unassigned_crisis
                    ),
                    self.ctx.now,
                );
            }
            None => {}
            Some(before) => {
                let new_crisis = now.unassigned_crisis > before.unassigned_crisis
                    || (now.newest_unassigned_crisis.is_some()
                        && now.newest_unassigned_crisis != before.newest_unassigned_crisis
                        && now.unassigned_crisis >= before.unassigned_crisis);
                if new_crisis {
                    self.alert = banner(
                        format!(
                            "NEW CRISIS TICKET {} · nobody holds it ({} waiting)",
                            now.newest_unassigned_crisis.as_deref().unwrap_or("?"),
                            now.unassigned_crisis
                        ),
                        self.ctx.now,
                    );
                    self.ring = self.bell;
                } else if now.breached > before.breached {
                    self.alert = banner(
                        format!(
                            "SLA BREACH: {} open ticket(s) past a deadline (was {})",
                            now.breached, before.breached
                        ),
                        self.ctx.now,
                    );
                }
            }
        }
        self.alerts = Some(now);
    }

    /// Asks for the data of a screen (once signed in).
    pub fn refresh(&mut self, screen: ScreenId) {
        if self.ctx.session.is_none() {
            return;
        }
        let mut out = Outbox::default();
        self.split(screen).0.refresh(&mut out);
        self.apply(out);
    }

    /// Handles what the worker or the listener reports.
    pub fn on_data(&mut self, event: DataEvent) {
        self.dirty = true;
        let mut out = Outbox::default();
        if event.is_read() {
            self.last_error = None;
        }
        match event {
            DataEvent::SignedIn(Ok(session)) => {
                let saved = session.preferences.theme.clone();
                self.audit.allowed = session.actor.role >= StaffRole::Supervisor;
                self.ctx.session = Some(*session);
                self.sign_in = None;
                if let Some(name) = saved
                    && name != self.ctx.theme.name
                {
                    self.apply_theme(&name, false);
                }
                self.refresh(self.screen);
                self.send(Request::Queue(self.queue.filter.clone()));
                self.ask_alerts();
            }
            DataEvent::SignedIn(Err(e)) => {
                if let Some(form) = &mut self.sign_in {
                    form.refused(e);
                }
            }
            DataEvent::Conversations(list) => self.conversations.on_list(list, &mut out),
            DataEvent::Transcript(id, entries) => self.conversations.on_transcript(id, entries),
            DataEvent::Queue(list, read_at) => self.queue.on_tickets(list, read_at),
            DataEvent::Ticket(view, read_at) => self.ticket.on_view(*view, read_at),
            DataEvent::Statistics(s) => self.statistics.on_statistics(*s),
            DataEvent::Documents(docs) => self.knowledge.documents.replace(docs),
            DataEvent::Audit(rows) => self.audit.records.replace(rows),
            DataEvent::Alerts(alerts) => self.on_alerts(alerts),
            DataEvent::Shift(board) => self.shift.members.replace(board),
            DataEvent::Duty(offers, alerts) => self.on_duty(offers, alerts),
            DataEvent::Admin(view) => self.admin.on_view(*view),
            DataEvent::Staff(board) => {
                if let Some(Overlay::Picker(p)) = &mut self.overlay
                    && matches!(p.purpose, PickerPurpose::Assign(_))
                {
                    p.set_staff(&board);
                }
            }
            DataEvent::Canned(list) => {
                self.canned = list;
                self.refill_canned_picker();
            }
            DataEvent::CannedText(number, text) => self.ticket.insert(&number, &text),
            DataEvent::Viewers(number, viewers) => self.ticket.on_viewers(&number, viewers),
            DataEvent::Document(doc) => {
                if self.overlay.is_none() && self.screen == ScreenId::Knowledge {
                    self.overlay = Some(Overlay::Document(Box::new(DocumentView::new(*doc))));
                }
            }
            DataEvent::Done(command, result) => self.on_done(command, result),
            DataEvent::Failed(e) => {
                tracing::warn!(error = %e, "read failed");
                self.last_error = Some(e.clone());
                self.toast(e, true);
            }
            DataEvent::Notice(notice) => {
                // Only what is on screen is read again; the rest is read when it is shown.
                if self.current().concerns(&notice) {
                    self.refresh(self.screen);
                }
                // The header's counts are on every screen.
                if crate::screens::ticket_change(&notice) {
                    self.ask_alerts();
                } else if [ChangeKind::Offer, ChangeKind::Alert, ChangeKind::Presence]
                    .iter()
                    .any(|k| notice.kinds.contains(k))
                {
                    self.send(Request::Duty);
                }
            }
            DataEvent::Connection(state) => {
                let was_lost = matches!(self.connection, Some(Connection::Lost { .. }));
                self.connection = Some(state);
                if state == Connection::Live && was_lost {
                    // Notices sent while away are gone: read everything on screen again.
                    self.refresh(self.screen);
                    self.toast("reconnected", false);
                }
            }
        }
        self.apply(out);
    }

    fn on_done(&mut self, command: Command, result: Result<(), String>) {
        if let Command::Comment(number, _, _) = &command {
            self.ticket.on_comment_done(number, result.is_ok());
        }
        match result {
            Ok(()) => {
                self.toast(command.describe(), false);
                match &command {
                    Command::CannedAdd(..) | Command::CannedEdit(..) | Command::CannedRemove(_) => {
                        self.send(Request::Canned)
                    }
                    Command::BulkAssign(..) | Command::BulkClose(..) => self.queue.marked.clear(),
                    _ => {}
                }
                // Taking a ticket from the queue is to work on it.
                if let Command::Take(n) = &command
                    && self.screen == ScreenId::Queue
                {
                    self.open_ticket(n.clone());
                }
                // An accepted offer is to work on it too.
                if let Command::AnswerOffer(n, OfferAnswer::Accept) = &command {
                    self.open_ticket(n.clone());
                }
            }
            Err(e) => {
                // A bulk change that refused some tickets did the others: the marks go.
                if matches!(command, Command::BulkAssign(..) | Command::BulkClose(..)) {
                    self.queue.marked.clear();
                }
                self.toast(e, true)
            }
        }
        if matches!(command, Command::AnswerOffer(..) | Command::AlertsSeen) {
            self.send(Request::Duty);
        }
        self.refresh(self.screen);
    }

    /// The open canned-reply picker shows the replies as last read: the open ticket's
    /// language when inserting, every language when managing.
    fn refill_canned_picker(&mut self) {
        let lang = self.ticket.language().unwrap_or(self.ctx.lang());
        if let Some(Overlay::Picker(p)) = &mut self.overlay {
            match p.purpose {
                PickerPurpose::Canned(_) => p.set_canned(&self.canned, Some(lang)),
                PickerPurpose::ManageCanned => p.set_canned(&self.canned, None),
                PickerPurpose::Assign(_) => {}
            }
        }
    }

    /// A canned reply's title was given: its text is written next (the current one when
    /// editing).
    fn canned_title(&mut self, id: Option<uuid::Uuid>, lang: Lang, title: String) {
        if title.is_empty() {
            self.toast("a canned reply needs a title", true);
            return;
        }
        let body = id
            .and_then(|id| self.canned.iter().find(|r| r.id == id))
            .map(|r| r.body.clone())
            .unwrap_or_default();
        self.overlay = Some(Overlay::editor(
            PromptPurpose::CannedBody(id, lang, title.clone()),
            format!(
                "{} · {title}: the text ({{{{name}}}}, {{{{crisis_line}}}})",
                lang.code()
            ),
            &body,
        ));
    }

    /// A picker's row was picked.
    fn picked(&mut self, purpose: PickerPurpose, how: PickKey, value: Option<String>) {
        let reply = |app: &Self, v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.parse::<uuid::Uuid>().ok())
                .and_then(|id| app.canned.iter().find(|r| r.id == id).cloned())
        };
        match (purpose, how) {
            (PickerPurpose::Assign(numbers), PickKey::Use) => {
                let Some(email) = value else { return };
                let command = match numbers.as_slice() {
                    [one] => Command::Assign(one.clone(), email),
                    _ => Command::BulkAssign(numbers, email),
                };
                self.send(Request::Act(command));
            }
            (PickerPurpose::Canned(number), PickKey::Use) => {
                if let Some(r) = reply(self, &value) {
                    self.send(Request::CannedFill(number, r.id));
                }
            }
            (PickerPurpose::ManageCanned, PickKey::Use) => {
                if let Some(r) = reply(self, &value) {
                    self.overlay = Some(Overlay::prompt(
                        PromptPurpose::CannedTitle(Some(r.id), r.lang),
                        format!("Title of the {} canned reply", r.lang.code()),
                        &r.title,
                    ));
                }
            }
            (PickerPurpose::ManageCanned, PickKey::New) => {
                self.overlay = Some(Overlay::Chooser(Chooser {
                    purpose: ChooserPurpose::CannedLang,
                    title: "New canned reply: language".into(),
                    options: Lang::ALL.iter().map(|l| l.code().to_string()).collect(),
                    selected: 0,
                }));
            }
            (PickerPurpose::ManageCanned, PickKey::Remove) => {
                if let Some(r) = reply(self, &value) {
                    self.overlay = Some(Overlay::confirm(
                        format!("Remove the {} canned reply “{}”?", r.lang.code(), r.title),
                        Command::CannedRemove(r.id),
                    ));
                }
            }
            _ => {}
        }
    }

    /// Handles a key press: the sign-in form, an open overlay or the composer take it before
    /// the key map does.
    pub fn on_key(&mut self, key: KeyEvent) {
        self.dirty = true;
        if let Some(form) = &mut self.sign_in {
            match form.key(key) {
                SignInStep::Stay => {}
                SignInStep::Quit => self.should_quit = true,
                SignInStep::Submit(request) => self.send(request),
            }
            return;
        }
        if let Some(overlay) = self.overlay.take() {
            let (kept, answer) = overlay.key(key, &self.screen.scopes());
            self.overlay = kept;
            self.answer(answer);
            return;
        }
        if self.composing() {
            if let Some(action) = self.ticket.compose_key(key) {
                self.perform(action);
            }
            return;
        }
        // A ticket offered to the member: its prompt takes its keys first.
        if let Some((number, _)) = self.offer_shown() {
            let number = number.to_string();
            match action::action_for(&key, &[Scope::Offer]) {
                Some(Action::AcceptOffer) => {
                    self.send(Request::Act(Command::AnswerOffer(
                        number,
                        OfferAnswer::Accept,
                    )));
                    return;
                }
                Some(Action::DeclineOffer) => {
                    self.send(Request::Act(Command::AnswerOffer(
                        number,
                        OfferAnswer::Decline,
                    )));
                    return;
                }
                Some(Action::Back) => {
                    self.offer_hidden = Some(number);
                    return;
                }
                _ => {}
            }
        }
        // Esc first puts away an alert banner (the on-call alerts are then seen).
        if self.alert.is_some()
            && action::action_for(&key, &self.screen.scopes()) == Some(Action::Back)
        {
            self.alert = None;
            if !self.on_call.is_empty() {
                self.send(Request::Act(Command::AlertsSeen));
            }
            return;
        }
        if let Some(action) = action::action_for(&key, &self.screen.scopes()) {
            self.perform(action);
        }
    }

    /// A bracketed paste: inserted in one go where the keyboard is (a prompt, the palette or
    /// the composer); elsewhere it is not a key sequence and does nothing.
    pub fn on_paste(&mut self, text: String) {
        self.dirty = true;
        if self.sign_in.is_some() {
            return;
        }
        if let Some(overlay) = &mut self.overlay {
            overlay.paste(&text);
        } else if self.composing() {
            self.ticket.paste(&text);
        }
    }

    fn answer(&mut self, answer: Answer) {
        let mut out = Outbox::default();
        match answer {
            Answer::Nothing => {}
            Answer::Perform(action) => self.perform(action),
            Answer::GoTo(number) => self.open_ticket(number),
            Answer::Text(PromptPurpose::Filter(screen), text) => self.set_text_filter(screen, text),
            Answer::Text(PromptPurpose::RejectReason(id), text) => {
                KnowledgeScreen::reject_reason(id, text, &mut out)
            }
            Answer::Text(PromptPurpose::Admin(edit), text) => {
                self.admin.text_answered(edit, text, &mut out)
            }
            Answer::Text(PromptPurpose::CannedTitle(id, lang), title) => {
                self.canned_title(id, lang, title)
            }
            Answer::Text(PromptPurpose::CannedBody(_, _, _), body) if body.is_empty() => {
                self.toast("a canned reply needs a text", true)
            }
            Answer::Text(PromptPurpose::CannedBody(None, lang, title), body) => {
                self.send(Request::Act(Command::CannedAdd(lang, title, body)))
            }
            Answer::Text(PromptPurpose::CannedBody(Some(id), _, title), body) => {
                let change = CannedChange {
                    title: Some(title),
                    body: Some(body),
                    lang: None,
                };
                self.send(Request::Act(Command::CannedEdit(id, change)))
            }
            Answer::Text(purpose, text) => TicketScreen::answer(purpose, text, &mut out),
            Answer::Choice(ChooserPurpose::Admin(edit), choice) => {
                self.admin.choice_made(edit, &choice, &mut out)
            }
            Answer::Choice(ChooserPurpose::CannedLang, code) => {
                if let Ok(lang) = code.parse::<Lang>() {
                    self.overlay = Some(Overlay::prompt(
                        PromptPurpose::CannedTitle(None, lang),
                        format!("Title of the new {code} canned reply"),
                        "",
                    ));
                }
            }
            Answer::Picked(purpose, how, value) => self.picked(purpose, how, value),
            Answer::Document(DocumentStep::Approve(id)) => {
                self.overlay = Some(Overlay::confirm(
                    "Approve this document? The assistant will cite it to people from now on.",
                    Command::Approve(id),
                ))
            }
            Answer::Document(DocumentStep::Reject(id)) => {
                self.overlay = Some(Overlay::prompt(
                    PromptPurpose::RejectReason(id),
                    "Reject this document: the reason",
                    "",
                ))
            }
            Answer::Document(DocumentStep::Close | DocumentStep::Stay) => {}
            Answer::Choice(ChooserPurpose::Tier(n), choice) => {
                TicketScreen::tier_chosen(n, &choice, &mut out)
            }
            Answer::Choice(ChooserPurpose::TriageField(n), field) => {
                TicketScreen::triage_field_chosen(n, &field, &self.ctx, &mut out)
            }
            Answer::Choice(ChooserPurpose::TriageValue(n, field), value) => {
                TicketScreen::triage_value_chosen(n, &field, &value, &mut out)
            }
            Answer::Choice(ChooserPurpose::Theme, choice) => self.apply_theme(&choice, true),
            Answer::Yes(Confirmed::SendPublic(n)) => {
                if self.ticket.number.as_deref() == Some(n.as_str()) {
                    self.ticket.send(true, &mut out);
                }
            }
            Answer::Yes(Confirmed::Command(c)) => self.send(Request::Act(c)),
            Answer::Yes(Confirmed::Quit) => self.should_quit = true,
        }
        self.apply(out);
    }

    /// Switches theme; a bad file is reported and the default used. `save` stores the choice
    /// as the staff member's preference.
    pub fn apply_theme(&mut self, name: &str, save: bool) {
        let depth = self.ctx.theme.depth();
        let (theme, err) = Theme::load(name, self.themes_dir.as_deref(), depth);
        self.ctx.theme = theme;
        if let Some(e) = err {
            tracing::warn!(error = %e, "theme not used");
            self.toast(format!("{e}; using the default theme"), true);
        } else if save {
            self.send(Request::Act(Command::SaveTheme(name.to_string())));
        }
        self.dirty = true;
    }

    /// A list's text filter: the conversations are searched by the engine (messages too),
    /// the other lists filter the rows they hold.
    fn set_text_filter(&mut self, screen: ScreenId, text: String) {
        match screen {
            ScreenId::Conversations => {
                self.conversations
                    .set_text_filter((!text.is_empty()).then_some(text));
                self.refresh(screen);
            }
            ScreenId::Queue => self.queue.tickets.set_filter(&text),
            ScreenId::Knowledge => self.knowledge.documents.set_filter(&text),
            ScreenId::Audit => match self.audit.set_query(&text, self.ctx.now) {
                Ok(()) => self.refresh(screen),
                Err(e) => self.toast(e, true),
            },
            ScreenId::Shift => self.shift.members.set_filter(&text),
            ScreenId::Admin => self.admin.staff.set_filter(&text),
            ScreenId::Ticket | ScreenId::Statistics => {}
        }
    }

    fn open_ticket(&mut self, number: String) {
        if let Some(old) = self.ticket.number.clone()
            && old != number
        {
            self.send(Request::StopViewing(old));
        }
        self.ticket.open(number);
        self.switch(ScreenId::Ticket);
    }

    fn switch(&mut self, screen: ScreenId) {
        // Leaving the ticket: others stop seeing this member on it at once.
        if self.screen == ScreenId::Ticket
            && screen != ScreenId::Ticket
            && let Some(n) = self.ticket.number.clone()
        {
            self.send(Request::StopViewing(n));
            self.ticket.viewing_at = None;
            self.ticket.viewers.clear();
        }
        self.screen = screen;
        self.ticket.composing = false;
        self.refresh(screen);
    }

    /// Does what an action says: the console's own actions here, the rest by the screen that
    /// owns them.
    pub fn perform(&mut self, action: Action) {
        self.dirty = true;
        let page = usize::from(self.hit.get().list.height.max(1));
        let mut out = Outbox::default();
        match action {
            Action::Quit => {
                if self.ticket.has_unsent_drafts() {
                    self.overlay = Some(Overlay::Confirm(
                        "A reply is not sent yet. Quit and lose it?".into(),
                        Confirmed::Quit,
                    ));
                } else {
                    self.should_quit = true;
                }
            }
            Action::Help => self.overlay = Some(Overlay::Help),
            Action::Palette => self.overlay = Some(Overlay::Palette(String::new(), 0)),
            Action::NextScreen => {
                let i = (self.screen.index() + 1) % ScreenId::ALL.len();
                self.switch(ScreenId::ALL[i]);
            }
            Action::PrevScreen => {
                let n = ScreenId::ALL.len();
                let i = (self.screen.index() + n - 1) % n;
                self.switch(ScreenId::ALL[i]);
            }
            Action::Screen(n) => {
                if let Some(s) = ScreenId::ALL.get(usize::from(n.saturating_sub(1))) {
                    self.switch(*s);
                }
            }
            Action::Back if self.screen == ScreenId::Ticket => self.switch(ScreenId::Queue),
            Action::Refresh => self.refresh(self.screen),
            Action::ToggleBidi => {
                self.ctx.bidi = !self.ctx.bidi;
                self.toast(
                    if self.ctx.bidi {
                        "Arabic reordering on (for terminals without bidi)"
                    } else {
                        "Arabic reordering off (the terminal reorders)"
                    },
                    false,
                );
            }
            Action::Theme => {
                let options = Theme::available(self.themes_dir.as_deref());
                let selected = options
                    .iter()
                    .position(|n| *n == self.ctx.theme.name)
                    .unwrap_or(0);
                self.overlay = Some(Overlay::Chooser(Chooser {
                    purpose: ChooserPurpose::Theme,
                    title: "Theme".into(),
                    options,
                    selected,
                }));
            }
            Action::Filter if self.screen != ScreenId::Conversations => {
                let current = match self.screen {
                    ScreenId::Queue => self.queue.tickets.filter(),
                    ScreenId::Knowledge => self.knowledge.documents.filter(),
                    ScreenId::Audit => Some(self.audit.query.as_str()),
                    ScreenId::Shift => self.shift.members.filter(),
                    ScreenId::Admin => self.admin.staff.filter(),
                    _ => None,
                }
                .unwrap_or_default()
                .to_string();
                let title = if self.screen == ScreenId::Audit {
                    format!("Filter: {}", crate::screens::audit::FILTER_HELP)
                } else {
                    format!("Filter {}", self.screen.title().to_lowercase())
                };
                self.overlay = Some(Overlay::prompt(
                    PromptPurpose::Filter(self.screen),
                    title,
                    &current,
                ));
            }
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => self.split(self.screen).0.scroll(action, page, &mut out),
            Action::Assign | Action::Close
                if self.screen == ScreenId::Queue && !self.queue.marked.is_empty() =>
            {
                self.queue.bulk(action, &mut out)
            }
            Action::InsertCanned => {
                if let Some(n) = self.ticket.number.clone() {
                    let lang = self.ticket.language().unwrap_or(self.ctx.lang());
                    let mut picker = Picker::new(
                        PickerPurpose::Canned(n.clone()),
                        format!("Canned reply ({}) for {n}", lang.code()),
                    );
                    if !self.canned.is_empty() {
                        picker.set_canned(&self.canned, Some(lang));
                    }
                    self.overlay = Some(Overlay::Picker(Box::new(picker)));
                    self.send(Request::Canned);
                }
            }
            Action::ManageCanned => {
                if self.ctx.role().is_some_and(|r| r >= StaffRole::Supervisor) {
                    let mut picker = Picker::new(PickerPurpose::ManageCanned, "Canned replies");
                    if !self.canned.is_empty() {
                        picker.set_canned(&self.canned, None);
                    }
                    self.overlay = Some(Overlay::Picker(Box::new(picker)));
                    self.send(Request::Canned);
                } else {
                    self.toast("canned replies are managed by supervisors and admins", true);
                }
            }
            Action::Take
            | Action::Release
            | Action::Assign
            | Action::Escalate
            | Action::Pending
            | Action::Resolve
            | Action::Close
            | Action::Reopen => {
                // The ticket the screen is about: the open one, or the one selected on the queue.
                let target = match self.screen {
                    ScreenId::Ticket => self.ticket.number.clone(),
                    ScreenId::Queue => self.queue.selected_number(),
                    ScreenId::Conversations => match self.conversations.selected() {
                        Some(c) if c.ticket_number.is_some() => c.ticket_number.clone(),
                        // A live conversation without a ticket: taken over, once confirmed.
                        Some(c) if action == Action::Take => {
                            self.overlay = Some(Overlay::confirm(
                                "Take over this conversation? A ticket is opened for you and \
                                 the assistant stops answering while it is open.",
                                Command::TakeOver(c.id),
                            ));
                            None
                        }
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(n) = target {
                    self.ticket.act_on(action, n, &mut out);
                }
            }
            _ => {
                let (screen, ctx) = self.split(ScreenId::owner(action, self.screen));
                screen.perform(action, ctx, &mut out);
            }
        }
        self.apply(out);
    }

    /// Handles the mouse: the wheel scrolls, a click on a tab switches, a click on a row
    /// selects it (a second click opens it).
    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        if self.sign_in.is_some() || self.overlay.is_some() {
            return;
        }
        let hit = self.hit.get();
        match mouse.kind {
            MouseEventKind::ScrollDown => self.perform(Action::Down),
            MouseEventKind::ScrollUp => self.perform(Action::Up),
            MouseEventKind::Down(_) => {
                let at = Position::new(mouse.column, mouse.row);
                if hit.tabs.contains(at) {
                    if let Some(screen) =
                        chrome::tab_at(hit.tabs.x, at.x, hit.tabs_compact, self.screen)
                    {
                        self.perform(Action::Screen(screen.index() as u8 + 1));
                        return;
                    }
                } else if hit.list.contains(at) {
                    let row = hit.list_offset + usize::from(at.y - hit.list.y);
                    self.click_row(row);
                }
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// A click on a list row selects it; a click on the selected row opens it. A click below
    /// the last row selects the last row.
    fn click_row(&mut self, row: usize) {
        let mut out = Outbox::default();
        let (screen, _) = self.split(self.screen);
        let mut open = false;
        if let Some((sel, len)) = screen.list()
            && len > 0
        {
            let row = row.min(len - 1);
            if sel.selected == row {
                open = true;
            } else {
                sel.selected = row;
                screen.selection_moved(&mut out);
            }
        }
        self.apply(out);
        if open {
            self.perform(Action::Open);
        }
    }
}
