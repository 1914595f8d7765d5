//! The console's screens, as gitui's components: each one owns its data, selection and filter,
//! applies the data events that concern it, carries out its actions and draws itself. None of
//! them touches another screen or the console around it: what they want done elsewhere they
//! put in an [`Outbox`], which [`crate::app::App`] carries out in order.

pub mod admin;
pub mod audit;
pub mod clock;
pub mod composer;
pub mod conversations;
pub mod knowledge;
pub mod list;
pub mod queue;
pub mod shift;
pub mod sign_in;
pub mod statistics;
pub mod ticket;
pub mod transcript;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;

use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::lang::Lang;
use amal_engine::lookups::LookupKind;
use amal_engine::staff::StaffRole;

use crate::action::{Action, Scope};
use crate::chrome::overlay::Overlay;
use crate::data::{Request, Session};
use crate::theme::Theme;
use crate::ui::HitAreas;

pub use list::Selection;

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
    /// Who is on shift.
    Shift,
    /// Staff accounts, SLA targets, business hours and retention (admins).
    Admin,
}

impl ScreenId {
    /// Tab order.
    pub const ALL: [ScreenId; 8] = [
        ScreenId::Conversations,
        ScreenId::Queue,
        ScreenId::Ticket,
        ScreenId::Statistics,
        ScreenId::Knowledge,
        ScreenId::Audit,
        ScreenId::Shift,
        ScreenId::Admin,
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
            ScreenId::Shift => "Shift",
            ScreenId::Admin => "Admin",
        }
    }

    /// The tab's title where the header is short of room (80 columns).
    pub fn short_title(self) -> &'static str {
        match self {
            ScreenId::Conversations => "Conv",
            ScreenId::Queue => "Queue",
            ScreenId::Ticket => "Ticket",
            ScreenId::Statistics => "Stats",
            ScreenId::Knowledge => "KB",
            ScreenId::Audit => "Audit",
            ScreenId::Shift => "Shift",
            ScreenId::Admin => "Admin",
        }
    }

    /// The position in Tab order.
    pub fn index(self) -> usize {
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
            ScreenId::Shift => vec![Scope::Shift, Scope::List, Scope::Global],
            ScreenId::Admin => vec![Scope::Admin, Scope::List, Scope::Global],
        }
    }

    /// The screen whose state an action changes: the filters and changes of one screen act
    /// on it wherever they come from (the palette offers only the current screen's);
    /// filtering, opening and going back act on the current one.
    pub fn owner(action: Action, current: ScreenId) -> ScreenId {
        match action {
            Action::CycleStatus
            | Action::CycleMode
            | Action::CycleLanguage
            | Action::CycleEscalated => ScreenId::Conversations,
            Action::CycleQueue | Action::CycleCategory | Action::CyclePriority | Action::Mark => {
                ScreenId::Queue
            }
            Action::Compose | Action::Send | Action::ToggleInternal | Action::Triage => {
                ScreenId::Ticket
            }
            Action::RangeShorter | Action::RangeLonger => ScreenId::Statistics,
            Action::Approve | Action::Reject => ScreenId::Knowledge,
            Action::GoOnline | Action::GoAway => ScreenId::Shift,
            Action::Edit
            | Action::Unlock
            | Action::ToggleActive
            | Action::ChangeRole
            | Action::AddHoliday
            | Action::RemoveHoliday => ScreenId::Admin,
            _ => current,
        }
    }
}

/// What every screen reads and none owns: who is signed in, the theme, the text direction and
/// the clock.
pub struct Context {
    /// Who is signed in.
    pub session: Option<Session>,
    /// The theme.
    pub theme: Theme,
    /// Reorder right-to-left text for terminals without bidi.
    pub bidi: bool,
    /// The clock the countdowns count with (updated every second).
    pub now: DateTime<Utc>,
}

impl Context {
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

    /// The codes of a lookup, in display order (empty before sign-in).
    pub fn codes(&self, kind: LookupKind) -> Vec<String> {
        self.session
            .as_ref()
            .map(|s| s.labels.codes(kind).to_vec())
            .unwrap_or_default()
    }

    /// The signed-in role.
    pub fn role(&self) -> Option<StaffRole> {
        self.session.as_ref().map(|s| s.actor.role)
    }
}

/// Something a screen wants done outside itself.
pub enum Effect {
    /// Work for the data worker.
    Send(Request),
    /// Read a screen's data again (only once signed in).
    Refresh(ScreenId),
    /// A passing message; `error` shows it in the error colour.
    Toast {
        /// The text.
        text: String,
        /// An error rather than a confirmation.
        error: bool,
    },
    /// Open an overlay (a prompt, a chooser, a confirmation).
    Overlay(Overlay),
    /// Open a ticket on the ticket screen.
    OpenTicket(String),
}

/// The effects a screen asks for, in the order it asked: the worker must see requests in that
/// order (a list before its transcript).
#[derive(Default)]
pub struct Outbox(Vec<Effect>);

impl Outbox {
    /// Work for the data worker.
    pub fn send(&mut self, request: Request) {
        self.0.push(Effect::Send(request));
    }

    /// Read a screen's data again.
    pub fn refresh(&mut self, screen: ScreenId) {
        self.0.push(Effect::Refresh(screen));
    }

    /// A passing message.
    pub fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.0.push(Effect::Toast {
            text: text.into(),
            error,
        });
    }

    /// Open an overlay.
    pub fn overlay(&mut self, overlay: Overlay) {
        self.0.push(Effect::Overlay(overlay));
    }

    /// Open a ticket.
    pub fn open_ticket(&mut self, number: String) {
        self.0.push(Effect::OpenTicket(number));
    }

    /// The effects, in order.
    pub fn into_effects(self) -> Vec<Effect> {
        self.0
    }
}

/// What the router asks of every screen.
pub trait Screen {
    /// Asks the worker for what the screen shows.
    fn refresh(&self, out: &mut Outbox);

    /// Whether a change in the database concerns what the screen shows.
    fn concerns(&self, notice: &ChangeNotice) -> bool;

    /// The status line under the screen.
    fn status(&self, ctx: &Context) -> String;

    /// Draws the screen; list rows go into `hit` for the mouse.
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas);

    /// Carries out an action the router gives this screen.
    fn perform(&mut self, action: Action, ctx: &Context, out: &mut Outbox);

    /// The screen's list: its selection and length (`None` on screens without one).
    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        None
    }

    /// A new row is selected.
    fn selection_moved(&self, _out: &mut Outbox) {}

    /// Up, down, page and ends: moves the list's selection.
    fn scroll(&mut self, action: Action, page: usize, out: &mut Outbox) {
        if let Some((sel, len)) = self.list()
            && sel.apply(action, len, page)
        {
            self.selection_moved(out);
        }
    }

    /// Whether a clock on screen counts, so every second needs a new frame.
    fn counting(&self) -> bool {
        false
    }
}

/// Whether a notice changes the conversation list.
pub(crate) fn conversation_change(notice: &ChangeNotice) -> bool {
    [
        ChangeKind::ConversationCreated,
        ChangeKind::ConversationChanged,
        ChangeKind::Message,
        ChangeKind::Decision,
        ChangeKind::TicketCreated,
    ]
    .iter()
    .any(|k| notice.kinds.contains(k))
}

/// Whether a notice changes a ticket.
pub(crate) fn ticket_change(notice: &ChangeNotice) -> bool {
    [
        ChangeKind::TicketCreated,
        ChangeKind::TicketChanged,
        ChangeKind::Comment,
    ]
    .iter()
    .any(|k| notice.kinds.contains(k))
}

/// "loading…" until a screen's data has arrived once, then `empty`.
pub(crate) fn loading_or_empty(loaded: bool, empty: &str) -> String {
    if loaded {
        empty.to_string()
    } else {
        "loading…".to_string()
    }
}

/// The next value of a filter: none, then each option, then none again.
pub(crate) fn cycle<S: AsRef<str>>(current: &Option<String>, options: &[S]) -> Option<String> {
    let next = match current {
        None => options.first(),
        Some(c) => options
            .iter()
            .position(|o| o.as_ref() == c)
            .and_then(|i| options.get(i + 1)),
    };
    next.map(|o| o.as_ref().to_string())
}
