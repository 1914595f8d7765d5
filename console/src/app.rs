//! The console's state and how keys, clicks and data change it. Nothing here awaits: database
//! work goes to the worker as [`Request`]s and comes back as [`DataEvent`]s; drawing (in
//! [`crate::ui`]) only reads this state.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use tokio::sync::mpsc::UnboundedSender;
use tui_textarea::TextArea;
use uuid::Uuid;

use amal_engine::audit::AuditRecord;
use amal_engine::conversations::{ConversationFilter, ConversationSummary, TranscriptEntry};
use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::knowledge::store::DocumentSummary;
use amal_engine::lang::Lang;
use amal_engine::lookups::{Labels, LookupKind};
use amal_engine::sla::{self, SlaState};
use amal_engine::staff::StaffRole;
use amal_engine::stats::Statistics;
use amal_engine::tickets::{Queue, QueueFilter, Ticket, TicketStatus, Tier};

use crate::action::{self, Action, Scope};
use crate::data::{Command, Connection, DataEvent, Request, Session, TicketView};
use crate::theme::{ColorDepth, Theme};

/// The screens, in Tab order; the number keys 1..6 reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreenId {
    /// Live conversations and their transcripts.
    Conversations,
    /// The ticket queue with SLA countdowns.
    Queue,
    /// One ticket.
    Ticket,
    /// Charts of the statistics.
    Statistics,
    /// Knowledge review (admins).
    Knowledge,
    /// The audit log (supervisors and admins).
    Audit,
}

impl ScreenId {
    /// Tab order.
    pub const ALL: [ScreenId; 6] = [
        ScreenId::Conversations,
        ScreenId::Queue,
        ScreenId::Ticket,
        ScreenId::Statistics,
        ScreenId::Knowledge,
        ScreenId::Audit,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            ScreenId::Conversations => "Conversations",
            ScreenId::Queue => "Queue",
            ScreenId::Ticket => "Ticket",
            ScreenId::Statistics => "Statistics",
            ScreenId::Knowledge => "Knowledge",
            ScreenId::Audit => "Audit",
        }
    }

    fn index(self) -> usize {
        ScreenId::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The key-map scopes active on this screen, most specific first.
    pub fn scopes(self) -> Vec<Scope> {
        match self {
            ScreenId::Conversations => vec![Scope::Conversations, Scope::List, Scope::Global],
            ScreenId::Queue => vec![Scope::Queue, Scope::List, Scope::Global],
            ScreenId::Ticket => vec![Scope::Ticket, Scope::Global],
            ScreenId::Statistics => vec![Scope::Statistics, Scope::Global],
            ScreenId::Knowledge => vec![Scope::Knowledge, Scope::List, Scope::Global],
            ScreenId::Audit => vec![Scope::List, Scope::Global],
        }
    }
}

/// The sign-in form.
#[derive(Debug, Clone, Default)]
pub struct SignInForm {
    /// E-mail as typed.
    pub email: String,
    /// Password as typed (never drawn).
    pub password: String,
    /// The password field has the focus.
    pub on_password: bool,
    /// The last refusal.
    pub error: Option<String>,
    /// Waiting for the answer.
    pub busy: bool,
    /// Demo accounts to show (the demo passes them).
    pub hint: Option<String>,
}

/// What a prompt's text is for.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptPurpose {
    /// The current list's text filter.
    Filter(ScreenId),
    /// Assign the ticket to this e-mail.
    Assign(String),
    /// The reason for moving the ticket to the tier.
    EscalateReason(String, Tier),
    /// Resolution notes.
    ResolveNotes(String),
    /// Why a document is rejected.
    RejectReason(Uuid),
}

/// A one-line text prompt.
pub struct Prompt {
    /// What it is for.
    pub purpose: PromptPurpose,
    /// The question.
    pub title: String,
    /// The text.
    pub input: TextArea<'static>,
}

/// What a chooser picks.
#[derive(Debug, Clone, PartialEq)]
pub enum ChooserPurpose {
    /// The tier to escalate the ticket to.
    Tier(String),
    /// A theme.
    Theme,
}

/// A pick from a short list.
#[derive(Debug, Clone)]
pub struct Chooser {
    /// What it is for.
    pub purpose: ChooserPurpose,
    /// Title.
    pub title: String,
    /// The options.
    pub options: Vec<String>,
    /// The highlighted one.
    pub selected: usize,
}

/// What a confirmation confirms.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// A change.
    Command(Command),
    /// Quitting with unsent drafts.
    Quit,
}

/// Overlays above the screen; at most one.
pub enum Overlay {
    /// The key help.
    Help,
    /// The command palette: typed text and the highlighted command.
    Palette(String, usize),
    /// A text prompt.
    Prompt(Box<Prompt>),
    /// A pick from a list.
    Chooser(Chooser),
    /// A yes/no question.
    Confirm(String, Confirmed),
}

/// An unsent reply or note; kept per ticket until sent, across reconnects.
pub struct Draft {
    /// The text.
    pub text: TextArea<'static>,
    /// An internal note rather than a public reply.
    pub internal: bool,
    /// Sent and waiting for the answer.
    pub sending: bool,
}

impl Draft {
    fn new() -> Self {
        let mut text = TextArea::default();
        text.set_placeholder_text("Write a reply… (Ctrl-S sends, Ctrl-T public/internal)");
        Draft {
            text,
            internal: false,
            sending: false,
        }
    }

    /// The text as typed.
    pub fn content(&self) -> String {
        self.text.lines().join("\n")
    }

    /// Anything typed.
    pub fn is_empty(&self) -> bool {
        self.content().trim().is_empty()
    }
}

/// A message at the bottom of the screen for a few seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// The text.
    pub text: String,
    /// An error (shown in the error colour).
    pub error: bool,
    /// When it goes.
    pub until: DateTime<Utc>,
}

/// A list's selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// The selected row.
    pub selected: usize,
}

impl Selection {
    /// The first row shown in a window of `height` rows so the selection stays visible.
    pub fn offset(&self, height: usize) -> usize {
        if height == 0 {
            0
        } else {
            self.selected.saturating_sub(height - 1)
        }
    }

    fn apply(&mut self, action: Action, len: usize, page: usize) -> bool {
        if len == 0 {
            return false;
        }
        let before = self.selected;
        self.selected = match action {
            Action::Up => self.selected.saturating_sub(1),
            Action::Down => (self.selected + 1).min(len - 1),
            Action::PageUp => self.selected.saturating_sub(page.max(1)),
            Action::PageDown => (self.selected + page.max(1)).min(len - 1),
            Action::Top => 0,
            Action::Bottom => len - 1,
            _ => self.selected,
        };
        before != self.selected
    }

    fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }
}

/// Statistics ranges in days, from `[` to `]`.
pub const RANGES_DAYS: [i32; 4] = [1, 7, 30, 90];

/// Where things were drawn, for mouse clicks (set while drawing).
#[derive(Debug, Clone, Copy, Default)]
pub struct HitAreas {
    /// The tab bar.
    pub tabs: Rect,
    /// The current list's rows (without its header).
    pub list: Rect,
    /// The first row index shown in the list.
    pub list_offset: usize,
}

/// The console.
pub struct App {
    /// Signing in, when `Some`.
    pub sign_in: Option<SignInForm>,
    /// Who is signed in.
    pub session: Option<Session>,
    /// The current screen.
    pub screen: ScreenId,
    /// The theme.
    pub theme: Theme,
    /// Where theme files are.
    pub themes_dir: Option<PathBuf>,
    /// Reorder right-to-left text for terminals without bidi.
    pub bidi: bool,
    /// The clock the countdowns count with (updated every second).
    pub now: DateTime<Utc>,
    /// The live connection; `None` before the first attempt.
    pub connection: Option<Connection>,
    /// A passing message.
    pub toast: Option<Toast>,
    /// The open overlay.
    pub overlay: Option<Overlay>,
    /// The conversation list.
    pub conversations: Vec<ConversationSummary>,
    /// Its selection.
    pub conversation_sel: Selection,
    /// Its filter.
    pub conversation_filter: ConversationFilter,
    /// The selected conversation's transcript.
    pub transcript: Option<(Uuid, Vec<TranscriptEntry>)>,
    /// The queue page.
    pub queue: Vec<Ticket>,
    /// When its clocks were read.
    pub queue_read_at: DateTime<Utc>,
    /// When a periodic re-read was last asked for.
    pub queue_requested_at: DateTime<Utc>,
    /// Its selection.
    pub queue_sel: Selection,
    /// Its filter.
    pub queue_filter: QueueFilter,
    /// The open ticket's number.
    pub ticket_number: Option<String>,
    /// The open ticket, and when it was read.
    pub ticket: Option<(TicketView, DateTime<Utc>)>,
    /// Lines scrolled in the ticket's thread.
    pub ticket_scroll: u16,
    /// The composer has the keyboard.
    pub composing: bool,
    /// Drafts by ticket number.
    pub drafts: HashMap<String, Draft>,
    /// Statistics.
    pub statistics: Option<Statistics>,
    /// Index into [`RANGES_DAYS`].
    pub range: usize,
    /// Knowledge documents.
    pub documents: Vec<DocumentSummary>,
    /// Their selection.
    pub document_sel: Selection,
    /// The audit log.
    pub audit: Vec<AuditRecord>,
    /// Its selection.
    pub audit_sel: Selection,
    /// Screens whose data has arrived at least once.
    pub loaded: Vec<ScreenId>,
    /// The last read failure.
    pub last_error: Option<String>,
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
        let on_password = email.is_some();
        App {
            sign_in: Some(SignInForm {
                email: email.unwrap_or_default(),
                on_password,
                ..SignInForm::default()
            }),
            session: None,
            screen: ScreenId::Conversations,
            theme,
            themes_dir,
            bidi: true,
            now,
            connection: None,
            toast: None,
            overlay: None,
            conversations: Vec::new(),
            conversation_sel: Selection::default(),
            conversation_filter: ConversationFilter {
                limit: 200,
                ..ConversationFilter::default()
            },
            transcript: None,
            queue: Vec::new(),
            queue_read_at: now,
            queue_requested_at: now,
            queue_sel: Selection::default(),
            queue_filter: QueueFilter {
                limit: 200,
                ..QueueFilter::new(Queue::Open)
            },
            ticket_number: None,
            ticket: None,
            ticket_scroll: 0,
            composing: false,
            drafts: HashMap::new(),
            statistics: None,
            range: 1,
            documents: Vec::new(),
            document_sel: Selection::default(),
            audit: Vec::new(),
            audit_sel: Selection::default(),
            loaded: Vec::new(),
            last_error: None,
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

    /// The label language: the staff member's.
    pub fn lang(&self) -> Lang {
        self.session
            .as_ref()
            .map(|s| s.preferences.lang)
            .unwrap_or(Lang::En)
    }

    /// A lookup code's name in the staff member's language, in display order.
    pub fn label(&self, kind: LookupKind, code: &str) -> String {
        let name = match &self.session {
            Some(s) => s.labels.label(kind, code, s.preferences.lang),
            None => code,
        };
        if self.bidi {
            crate::bidi::visual(name)
        } else {
            name.to_string()
        }
    }

    /// The labels, for screens that list codes.
    pub fn labels(&self) -> Option<&Labels> {
        self.session.as_ref().map(|s| &s.labels)
    }

    /// The signed-in role.
    pub fn role(&self) -> Option<StaffRole> {
        self.session.as_ref().map(|s| s.actor.role)
    }

    fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toast = Some(Toast {
            text: text.into(),
            error,
            until: self.now + chrono::Duration::seconds(if error { 8 } else { 4 }),
        });
        self.dirty = true;
    }

    /// A second passed: countdowns move, toasts expire.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        self.now = now;
        if self.toast.as_ref().is_some_and(|t| t.until <= now) {
            self.toast = None;
            self.dirty = true;
        }
        let counting = self.session.is_some()
            && match self.screen {
                ScreenId::Queue => !self.queue.is_empty(),
                ScreenId::Ticket => self.ticket.is_some(),
                _ => false,
            };
        if counting {
            self.dirty = true;
        }
        // The clocks count working seconds; a re-read now and then corrects the local count
        // across the edges of business hours.
        if self.screen == ScreenId::Queue
            && self.session.is_some()
            && (now - self.queue_read_at).num_seconds() >= 60
            && (now - self.queue_requested_at).num_seconds() >= 60
        {
            self.queue_requested_at = now;
            self.refresh(ScreenId::Queue);
        }
    }

    /// Asks for the data of a screen.
    pub fn refresh(&mut self, screen: ScreenId) {
        if self.session.is_none() {
            return;
        }
        match screen {
            ScreenId::Conversations => {
                self.send(Request::Conversations(self.conversation_filter.clone()));
                if let Some(c) = self.conversations.get(self.conversation_sel.selected) {
                    self.send(Request::Transcript(c.id));
                }
            }
            ScreenId::Queue => self.send(Request::Queue(self.queue_filter.clone())),
            ScreenId::Ticket => {
                if let Some(n) = &self.ticket_number {
                    self.send(Request::Ticket(n.clone()));
                }
            }
            ScreenId::Statistics => self.send(Request::Statistics(RANGES_DAYS[self.range])),
            ScreenId::Knowledge => self.send(Request::Documents),
            ScreenId::Audit => self.send(Request::Audit),
        }
    }

    /// Handles what the worker or the listener reports.
    pub fn on_data(&mut self, event: DataEvent) {
        self.dirty = true;
        match event {
            DataEvent::SignedIn(Ok(session)) => {
                let saved = session.preferences.theme.clone();
                self.session = Some(*session);
                self.sign_in = None;
                if let Some(name) = saved
                    && name != self.theme.name
                {
                    self.apply_theme(&name, false);
                }
                self.refresh(self.screen);
                self.send(Request::Queue(self.queue_filter.clone()));
            }
            DataEvent::SignedIn(Err(e)) => {
                if let Some(form) = &mut self.sign_in {
                    form.busy = false;
                    form.error = Some(e);
                    form.password.clear();
                }
            }
            DataEvent::Conversations(list) => {
                let selected_id = self
                    .conversations
                    .get(self.conversation_sel.selected)
                    .map(|c| c.id);
                self.conversations = list;
                // The selection follows its conversation when new ones arrive on top.
                if let Some(id) = selected_id
                    && let Some(i) = self.conversations.iter().position(|c| c.id == id)
                {
                    self.conversation_sel.selected = i;
                }
                self.conversation_sel.clamp(self.conversations.len());
                self.mark_loaded(ScreenId::Conversations);
                let want = self
                    .conversations
                    .get(self.conversation_sel.selected)
                    .map(|c| c.id);
                if want.is_some() && want != self.transcript.as_ref().map(|t| t.0) {
                    self.send(Request::Transcript(want.unwrap_or_default()));
                }
            }
            DataEvent::Transcript(id, entries) => {
                if self
                    .conversations
                    .get(self.conversation_sel.selected)
                    .map(|c| c.id)
                    == Some(id)
                {
                    self.transcript = Some((id, entries));
                }
            }
            DataEvent::Queue(list, read_at) => {
                let selected = self.queue.get(self.queue_sel.selected).map(|t| t.id);
                self.queue = list;
                self.queue_read_at = read_at;
                if let Some(id) = selected
                    && let Some(i) = self.queue.iter().position(|t| t.id == id)
                {
                    self.queue_sel.selected = i;
                }
                self.queue_sel.clamp(self.queue.len());
                self.mark_loaded(ScreenId::Queue);
            }
            DataEvent::Ticket(view, read_at) => {
                if self.ticket_number.as_deref() == Some(view.detail.ticket.ticket_number.as_str())
                {
                    self.ticket = Some((*view, read_at));
                    self.mark_loaded(ScreenId::Ticket);
                }
            }
            DataEvent::Statistics(s) => {
                self.statistics = Some(*s);
                self.mark_loaded(ScreenId::Statistics);
            }
            DataEvent::Documents(docs) => {
                self.documents = docs;
                self.document_sel.clamp(self.documents.len());
                self.mark_loaded(ScreenId::Knowledge);
            }
            DataEvent::Audit(rows) => {
                self.audit = rows;
                self.audit_sel.clamp(self.audit.len());
                self.mark_loaded(ScreenId::Audit);
            }
            DataEvent::Done(command, result) => self.on_done(command, result),
            DataEvent::Failed(e) => {
                tracing::warn!(error = %e, "read failed");
                self.last_error = Some(e.clone());
                self.toast(e, true);
            }
            DataEvent::Notice(notice) => self.on_notice(&notice),
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
    }

    fn mark_loaded(&mut self, screen: ScreenId) {
        if !self.loaded.contains(&screen) {
            self.loaded.push(screen);
        }
    }

    fn on_done(&mut self, command: Command, result: Result<(), String>) {
        if let Command::Comment(number, _, _) = &command {
            let number = number.clone();
            match &result {
                Ok(()) => {
                    self.drafts.remove(&number);
                }
                Err(_) => {
                    if let Some(d) = self.drafts.get_mut(&number) {
                        d.sending = false;
                    }
                }
            }
        }
        match result {
            Ok(()) => {
                self.toast(command.describe(), false);
                if let Command::Take(n) = &command
                    && self.screen == ScreenId::Queue
                {
                    self.open_ticket(n.clone());
                }
            }
            Err(e) => self.toast(e, true),
        }
        self.refresh(self.screen);
    }

    fn on_notice(&mut self, notice: &ChangeNotice) {
        let has = |k: ChangeKind| notice.kinds.contains(&k);
        let conversation_change = has(ChangeKind::ConversationCreated)
            || has(ChangeKind::ConversationChanged)
            || has(ChangeKind::Message)
            || has(ChangeKind::Decision)
            || has(ChangeKind::TicketCreated);
        let ticket_change = has(ChangeKind::TicketCreated)
            || has(ChangeKind::TicketChanged)
            || has(ChangeKind::Comment);
        match self.screen {
            ScreenId::Conversations if conversation_change => self.refresh(ScreenId::Conversations),
            ScreenId::Queue if ticket_change => self.refresh(ScreenId::Queue),
            ScreenId::Ticket => {
                let open = self.ticket.as_ref().map(|(v, _)| &v.detail.ticket);
                let mine = open.is_some_and(|t| {
                    notice.ticket_id == Some(t.id)
                        || (notice.conversation_id.is_some()
                            && notice.conversation_id == t.conversation_id)
                });
                if mine || open.is_none() {
                    self.refresh(ScreenId::Ticket);
                }
            }
            ScreenId::Knowledge if has(ChangeKind::Document) => self.refresh(ScreenId::Knowledge),
            ScreenId::Audit
                if ticket_change || has(ChangeKind::Document) || has(ChangeKind::Staff) =>
            {
                self.refresh(ScreenId::Audit)
            }
            _ => {}
        }
    }

    /// Whether any draft holds unsent text.
    pub fn has_unsent_drafts(&self) -> bool {
        self.drafts.values().any(|d| !d.is_empty())
    }

    /// Handles a key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        self.dirty = true;
        if self.sign_in.is_some() {
            self.sign_in_key(key);
            return;
        }
        if self.overlay.is_some() {
            self.overlay_key(key);
            return;
        }
        if self.composing && self.screen == ScreenId::Ticket {
            let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
            match key.code {
                KeyCode::Esc => self.composing = false,
                KeyCode::Char('s') if ctrl => self.perform(Action::Send),
                KeyCode::Char('t') if ctrl => self.perform(Action::ToggleInternal),
                KeyCode::Char('c') if ctrl => self.perform(Action::Quit),
                _ => {
                    if let Some(n) = self.ticket_number.clone() {
                        let draft = self.drafts.entry(n).or_insert_with(Draft::new);
                        if !draft.sending {
                            draft.text.input(key);
                        }
                    }
                }
            }
            return;
        }
        if let Some(action) = action::action_for(&key, &self.screen.scopes()) {
            self.perform(action);
        }
    }

    fn sign_in_key(&mut self, key: KeyEvent) {
        let Some(form) = &mut self.sign_in else {
            return;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => self.should_quit = true,
            KeyCode::Esc => self.should_quit = true,
            _ if form.busy => {}
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                form.on_password = !form.on_password
            }
            KeyCode::Enter => {
                if !form.on_password {
                    form.on_password = true;
                } else if form.email.trim().is_empty() {
                    form.error = Some("enter your e-mail address".into());
                    form.on_password = false;
                } else if form.password.is_empty() {
                    form.error = Some("enter your password".into());
                } else {
                    form.busy = true;
                    form.error = None;
                    let request = Request::SignIn {
                        email: form.email.trim().to_string(),
                        password: std::mem::take(&mut form.password),
                    };
                    self.send(request);
                }
            }
            KeyCode::Backspace => {
                if form.on_password {
                    form.password.pop();
                } else {
                    form.email.pop();
                }
            }
            KeyCode::Char(c) if !ctrl => {
                if form.on_password {
                    form.password.push(c);
                } else {
                    form.email.push(c);
                }
            }
            _ => {}
        }
    }

    fn overlay_key(&mut self, key: KeyEvent) {
        let Some(overlay) = self.overlay.take() else {
            return;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match overlay {
            Overlay::Help => {
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
                ) {
                    self.overlay = Some(Overlay::Help);
                }
            }
            Overlay::Palette(mut text, mut selected) => {
                let commands = self.palette_commands(&text);
                match key.code {
                    KeyCode::Esc => {}
                    KeyCode::Enter => {
                        if let Some((_, action)) = commands.get(selected) {
                            self.perform(*action);
                        }
                    }
                    KeyCode::Up => {
                        selected = selected.saturating_sub(1);
                        self.overlay = Some(Overlay::Palette(text, selected));
                    }
                    KeyCode::Down => {
                        selected = (selected + 1).min(commands.len().saturating_sub(1));
                        self.overlay = Some(Overlay::Palette(text, selected));
                    }
                    KeyCode::Backspace => {
                        text.pop();
                        self.overlay = Some(Overlay::Palette(text, 0));
                    }
                    KeyCode::Char(c) if !ctrl => {
                        text.push(c);
                        self.overlay = Some(Overlay::Palette(text, 0));
                    }
                    _ => self.overlay = Some(Overlay::Palette(text, selected)),
                }
            }
            Overlay::Prompt(mut prompt) => match key.code {
                KeyCode::Esc => {
                    if let PromptPurpose::Filter(screen) = prompt.purpose {
                        self.set_text_filter(screen, String::new());
                    }
                }
                KeyCode::Enter => {
                    let text = prompt.input.lines().join(" ").trim().to_string();
                    self.submit_prompt(prompt.purpose, text);
                }
                _ => {
                    prompt.input.input(key);
                    self.overlay = Some(Overlay::Prompt(prompt));
                }
            },
            Overlay::Chooser(mut chooser) => match key.code {
                KeyCode::Esc | KeyCode::Char('q') => {}
                KeyCode::Up | KeyCode::Char('k') => {
                    chooser.selected = chooser.selected.saturating_sub(1);
                    self.overlay = Some(Overlay::Chooser(chooser));
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    chooser.selected = (chooser.selected + 1).min(chooser.options.len() - 1);
                    self.overlay = Some(Overlay::Chooser(chooser));
                }
                KeyCode::Enter => {
                    let choice = chooser.options[chooser.selected].clone();
                    self.submit_choice(chooser.purpose, choice);
                }
                _ => self.overlay = Some(Overlay::Chooser(chooser)),
            },
            Overlay::Confirm(text, confirmed) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => match confirmed {
                    Confirmed::Command(c) => self.send(Request::Act(c)),
                    Confirmed::Quit => self.should_quit = true,
                },
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {}
                _ => self.overlay = Some(Overlay::Confirm(text, confirmed)),
            },
        }
    }

    /// The palette's commands matching the typed text.
    pub fn palette_commands(&self, text: &str) -> Vec<(&'static str, Action)> {
        let text = text.to_lowercase();
        action::commands(&self.screen.scopes())
            .into_iter()
            .filter(|(help, _)| help.to_lowercase().contains(&text))
            .collect()
    }

    fn prompt(&mut self, purpose: PromptPurpose, title: impl Into<String>, initial: &str) {
        let mut input = TextArea::new(vec![initial.to_string()]);
        input.move_cursor(tui_textarea::CursorMove::End);
        self.overlay = Some(Overlay::Prompt(Box::new(Prompt {
            purpose,
            title: title.into(),
            input,
        })));
    }

    fn confirm(&mut self, text: impl Into<String>, command: Command) {
        self.overlay = Some(Overlay::Confirm(text.into(), Confirmed::Command(command)));
    }

    fn submit_prompt(&mut self, purpose: PromptPurpose, text: String) {
        match purpose {
            PromptPurpose::Filter(screen) => self.set_text_filter(screen, text),
            PromptPurpose::Assign(n) => {
                if text.is_empty() {
                    self.toast("assigning needs an e-mail address", true);
                } else {
                    self.send(Request::Act(Command::Assign(n, text)));
                }
            }
            PromptPurpose::EscalateReason(n, tier) => {
                if text.is_empty() {
                    self.toast("an escalation needs a reason", true);
                } else {
                    self.send(Request::Act(Command::Escalate(n, tier, text)));
                }
            }
            PromptPurpose::ResolveNotes(n) => {
                let note = (!text.is_empty()).then_some(text);
                self.send(Request::Act(Command::Status(
                    n,
                    TicketStatus::Resolved,
                    note,
                )));
            }
            PromptPurpose::RejectReason(id) => {
                if text.is_empty() {
                    self.toast("a rejection needs a reason", true);
                } else {
                    self.confirm(
                        "Reject this document? It will never be retrieved.",
                        Command::Reject(id, text),
                    );
                }
            }
        }
    }

    fn submit_choice(&mut self, purpose: ChooserPurpose, choice: String) {
        match purpose {
            ChooserPurpose::Tier(n) => {
                if let Ok(tier) = choice.parse::<Tier>() {
                    self.prompt(
                        PromptPurpose::EscalateReason(n.clone(), tier),
                        format!("Why move {n} to {choice}?"),
                        "",
                    );
                }
            }
            ChooserPurpose::Theme => self.apply_theme(&choice, true),
        }
    }

    /// Switches theme; a bad file is reported and the default used. `save` stores the choice
    /// as the staff member's preference.
    pub fn apply_theme(&mut self, name: &str, save: bool) {
        let depth = self.theme.depth();
        let (theme, err) = Theme::load(name, self.themes_dir.as_deref(), depth);
        self.theme = theme;
        if let Some(e) = err {
            tracing::warn!(error = %e, "theme not used");
            self.toast(format!("{e}; using the default theme"), true);
        } else if save {
            self.send(Request::Act(Command::SaveTheme(name.to_string())));
        }
        self.dirty = true;
    }

    fn set_text_filter(&mut self, screen: ScreenId, text: String) {
        let text = (!text.is_empty()).then_some(text);
        match screen {
            ScreenId::Conversations => {
                self.conversation_filter.text = text;
                self.conversation_sel = Selection::default();
                self.transcript = None;
            }
            _ => {
                self.toast("this screen has no text filter; use the filter keys", true);
                return;
            }
        }
        self.refresh(screen);
    }

    /// The ticket the screen is about: the open ticket on the ticket screen, the selected one on
    /// the queue.
    fn target_ticket(&self) -> Option<String> {
        match self.screen {
            ScreenId::Ticket => self.ticket_number.clone(),
            ScreenId::Queue => self
                .queue
                .get(self.queue_sel.selected)
                .map(|t| t.ticket_number.clone()),
            _ => None,
        }
    }

    fn open_ticket(&mut self, number: String) {
        if self.ticket_number.as_deref() != Some(number.as_str()) {
            self.ticket = None;
            self.ticket_scroll = 0;
            self.composing = false;
        }
        self.ticket_number = Some(number);
        self.switch(ScreenId::Ticket);
    }

    fn switch(&mut self, screen: ScreenId) {
        self.screen = screen;
        self.composing = false;
        self.refresh(screen);
    }

    /// Does what an action says.
    pub fn perform(&mut self, action: Action) {
        self.dirty = true;
        let page = usize::from(self.hit.get().list.height.max(1));
        match action {
            Action::Quit => {
                if self.has_unsent_drafts() {
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
            Action::Back => {
                if self.screen == ScreenId::Ticket {
                    self.switch(ScreenId::Queue);
                } else if self.screen == ScreenId::Conversations
                    && self.conversation_filter != App::default_conversation_filter()
                {
                    self.conversation_filter = App::default_conversation_filter();
                    self.refresh(ScreenId::Conversations);
                }
            }
            Action::Refresh => self.refresh(self.screen),
            Action::ToggleBidi => {
                self.bidi = !self.bidi;
                self.toast(
                    if self.bidi {
                        "Arabic reordering on (for terminals without bidi)"
                    } else {
                        "Arabic reordering off (the terminal reorders)"
                    },
                    false,
                );
            }
            Action::Filter => match self.screen {
                ScreenId::Conversations => {
                    let current = self.conversation_filter.text.clone().unwrap_or_default();
                    self.prompt(
                        PromptPurpose::Filter(ScreenId::Conversations),
                        "Search messages, titles and ticket numbers",
                        &current,
                    );
                }
                _ => self.toast("filter with the keys in the footer", false),
            },
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => self.move_selection(action, page),
            Action::Open => match self.screen {
                ScreenId::Queue => {
                    if let Some(t) = self.queue.get(self.queue_sel.selected) {
                        let n = t.ticket_number.clone();
                        self.open_ticket(n);
                    }
                }
                ScreenId::Conversations => {
                    if let Some(n) = self
                        .conversations
                        .get(self.conversation_sel.selected)
                        .and_then(|c| c.ticket_number.clone())
                    {
                        self.open_ticket(n);
                    }
                }
                _ => {}
            },
            Action::CycleStatus => {
                self.conversation_filter.status = cycle(
                    &self.conversation_filter.status,
                    &["active", "escalated", "closed", "archived"],
                );
                self.refilter_conversations();
            }
            Action::CycleMode => {
                self.conversation_filter.mode =
                    cycle(&self.conversation_filter.mode, &["AUTO", "RAG", "SUPPORT"]);
                self.refilter_conversations();
            }
            Action::CycleLanguage => {
                self.conversation_filter.language = match self.conversation_filter.language {
                    None => Some(Lang::Ar),
                    Some(Lang::Ar) => Some(Lang::Fr),
                    Some(Lang::Fr) => Some(Lang::En),
                    Some(Lang::En) => None,
                };
                self.refilter_conversations();
            }
            Action::CycleEscalated => {
                self.conversation_filter.escalated = match self.conversation_filter.escalated {
                    None => Some(true),
                    Some(true) => Some(false),
                    Some(false) => None,
                };
                self.refilter_conversations();
            }
            Action::CycleQueue => {
                self.queue_filter.queue = match self.queue_filter.queue {
                    Queue::Open => Queue::Mine,
                    Queue::Mine => Queue::Unassigned,
                    Queue::Unassigned => Queue::Breached,
                    Queue::Breached => Queue::All,
                    Queue::All => Queue::Open,
                };
                self.refilter_queue();
            }
            Action::CycleCategory => {
                let codes = self.codes(LookupKind::TicketCategory);
                self.queue_filter.category = cycle_owned(&self.queue_filter.category, &codes);
                self.refilter_queue();
            }
            Action::CyclePriority => {
                let codes = self.codes(LookupKind::TicketPriority);
                self.queue_filter.priority = cycle_owned(&self.queue_filter.priority, &codes);
                self.refilter_queue();
            }
            Action::Take => {
                if let Some(n) = self.target_ticket() {
                    self.send(Request::Act(Command::Take(n)));
                }
            }
            Action::Release => {
                if let Some(n) = self.target_ticket() {
                    self.confirm(
                        format!("Release {n} back to the unassigned queue?"),
                        Command::Release(n),
                    );
                }
            }
            Action::Assign => {
                if let Some(n) = self.target_ticket() {
                    self.prompt(
                        PromptPurpose::Assign(n.clone()),
                        format!("Assign {n} to (staff e-mail)"),
                        "",
                    );
                }
            }
            Action::Escalate => {
                if let Some(n) = self.target_ticket() {
                    let current = self
                        .ticket
                        .as_ref()
                        .map(|(v, _)| v.detail.ticket.escalation_tier.clone())
                        .unwrap_or_default();
                    let options: Vec<String> = ["T1", "T2", "T3", "manager"]
                        .iter()
                        .filter(|t| **t != current)
                        .map(|t| t.to_string())
                        .collect();
                    self.overlay = Some(Overlay::Chooser(Chooser {
                        purpose: ChooserPurpose::Tier(n.clone()),
                        title: format!("Move {n} to tier"),
                        options,
                        selected: 0,
                    }));
                }
            }
            Action::Pending => {
                if let Some(n) = self.target_ticket() {
                    self.send(Request::Act(Command::Status(
                        n,
                        TicketStatus::Pending,
                        None,
                    )));
                }
            }
            Action::Resolve => {
                if let Some(n) = self.target_ticket() {
                    self.prompt(
                        PromptPurpose::ResolveNotes(n.clone()),
                        format!("Resolve {n}: resolution notes"),
                        "",
                    );
                }
            }
            Action::Close => {
                if let Some(n) = self.target_ticket() {
                    self.confirm(
                        format!("Close {n}? Only internal notes can be added afterwards."),
                        Command::Status(n, TicketStatus::Closed, None),
                    );
                }
            }
            Action::Reopen => {
                if let Some(n) = self.target_ticket() {
                    self.send(Request::Act(Command::Reopen(n)));
                }
            }
            Action::Compose => {
                if let Some(n) = self.ticket_number.clone() {
                    self.drafts.entry(n).or_insert_with(Draft::new);
                    self.composing = true;
                }
            }
            Action::Send => {
                let Some(n) = self.ticket_number.clone() else {
                    return;
                };
                let Some(draft) = self.drafts.get_mut(&n) else {
                    self.toast("nothing to send: press i to write", true);
                    return;
                };
                if draft.is_empty() {
                    self.toast("nothing to send: the reply is empty", true);
                    return;
                }
                if draft.sending {
                    return;
                }
                draft.sending = true;
                let command = Command::Comment(n, draft.content(), draft.internal);
                self.send(Request::Act(command));
            }
            Action::ToggleInternal => {
                if let Some(n) = self.ticket_number.clone() {
                    let draft = self.drafts.entry(n).or_insert_with(Draft::new);
                    draft.internal = !draft.internal;
                }
            }
            Action::RangeShorter => {
                self.range = self.range.saturating_sub(1);
                self.refresh(ScreenId::Statistics);
            }
            Action::RangeLonger => {
                self.range = (self.range + 1).min(RANGES_DAYS.len() - 1);
                self.refresh(ScreenId::Statistics);
            }
            Action::Approve => {
                if let Some(d) = self.documents.get(self.document_sel.selected) {
                    self.send(Request::Act(Command::Approve(d.id)));
                }
            }
            Action::Reject => {
                if let Some(d) = self.documents.get(self.document_sel.selected) {
                    let title = d.title.clone();
                    self.prompt(
                        PromptPurpose::RejectReason(d.id),
                        format!("Reject “{title}”: the reason"),
                        "",
                    );
                }
            }
            Action::Theme => {
                let options = Theme::available(self.themes_dir.as_deref());
                let selected = options
                    .iter()
                    .position(|n| *n == self.theme.name)
                    .unwrap_or(0);
                self.overlay = Some(Overlay::Chooser(Chooser {
                    purpose: ChooserPurpose::Theme,
                    title: "Theme".into(),
                    options,
                    selected,
                }));
            }
        }
    }

    fn default_conversation_filter() -> ConversationFilter {
        ConversationFilter {
            limit: 200,
            ..ConversationFilter::default()
        }
    }

    fn codes(&self, kind: LookupKind) -> Vec<String> {
        self.labels()
            .map(|l| l.codes(kind).to_vec())
            .unwrap_or_default()
    }

    fn refilter_conversations(&mut self) {
        self.conversation_sel = Selection::default();
        self.transcript = None;
        self.refresh(ScreenId::Conversations);
    }

    fn refilter_queue(&mut self) {
        self.queue_sel = Selection::default();
        self.refresh(ScreenId::Queue);
    }

    /// The current list's selection and length (`None` on screens without a list).
    fn list_selection(&mut self) -> Option<(&mut Selection, usize)> {
        match self.screen {
            ScreenId::Conversations => Some((&mut self.conversation_sel, self.conversations.len())),
            ScreenId::Queue => Some((&mut self.queue_sel, self.queue.len())),
            ScreenId::Knowledge => Some((&mut self.document_sel, self.documents.len())),
            ScreenId::Audit => Some((&mut self.audit_sel, self.audit.len())),
            ScreenId::Ticket | ScreenId::Statistics => None,
        }
    }

    /// A new row is selected: the conversation list shows its transcript.
    fn selection_moved(&mut self) {
        if self.screen == ScreenId::Conversations
            && let Some(c) = self.conversations.get(self.conversation_sel.selected)
        {
            self.send(Request::Transcript(c.id));
        }
    }

    fn move_selection(&mut self, action: Action, page: usize) {
        if self.screen == ScreenId::Ticket {
            self.ticket_scroll = match action {
                Action::Up => self.ticket_scroll.saturating_sub(1),
                Action::Down => self.ticket_scroll.saturating_add(1),
                _ => self.ticket_scroll,
            };
        } else if let Some((sel, len)) = self.list_selection()
            && sel.apply(action, len, page)
        {
            self.selection_moved();
        }
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
                let (x, y) = (mouse.column, mouse.row);
                if contains(hit.tabs, x, y) {
                    // Tabs are drawn as " n Title " one after another.
                    let mut left = hit.tabs.x;
                    for (i, s) in ScreenId::ALL.iter().enumerate() {
                        let w = (s.title().len() + 4) as u16;
                        if x >= left && x < left + w {
                            self.perform(Action::Screen(i as u8 + 1));
                            return;
                        }
                        left += w + 1;
                    }
                } else if contains(hit.list, x, y) {
                    let row = hit.list_offset + usize::from(y - hit.list.y);
                    if let Some((sel, len)) = self.list_selection()
                        && len > 0
                    {
                        // A click below the last row selects the last row.
                        let row = row.min(len - 1);
                        if sel.selected == row {
                            self.perform(Action::Open);
                        } else {
                            sel.selected = row;
                            self.selection_moved();
                        }
                    }
                }
                self.dirty = true;
            }
            _ => {}
        }
    }

    /// Working seconds left on a clock now, counted locally from the last read.
    pub fn remaining_now(
        &self,
        remaining: Option<i64>,
        paused: bool,
        read_at: DateTime<Utc>,
    ) -> Option<i64> {
        let elapsed = (self.now - read_at).num_seconds().max(0);
        remaining.map(|r| if paused { r } else { r - elapsed })
    }

    /// A ticket's SLA state now: the state read, worsened by the local countdown.
    pub fn state_now(
        &self,
        remaining: Option<i64>,
        target: Option<i64>,
        read: SlaState,
        paused: bool,
        read_at: DateTime<Utc>,
    ) -> SlaState {
        match (self.remaining_now(remaining, paused, read_at), target) {
            (Some(r), Some(t)) if t > 0 => read.max(sla::state_for_remaining(r, t)),
            _ => read,
        }
    }

    /// The colour depth in use.
    pub fn depth(&self) -> ColorDepth {
        self.theme.depth()
    }
}

fn contains(r: Rect, x: u16, y: u16) -> bool {
    x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height
}

/// The next value of a filter: none, then each option, then none again.
fn cycle(current: &Option<String>, options: &[&str]) -> Option<String> {
    let owned: Vec<String> = options.iter().map(|s| s.to_string()).collect();
    cycle_owned(current, &owned)
}

fn cycle_owned(current: &Option<String>, options: &[String]) -> Option<String> {
    match current {
        None => options.first().cloned(),
        Some(c) => {
            let i = options.iter().position(|o| o == c);
            i.and_then(|i| options.get(i + 1).cloned())
        }
    }
}
