//! Every action the console knows: the single source of truth for key bindings, the help
//! screen, the footer and the command palette (as television's `Action` enum).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On every screen.
    Global,
    /// On list screens (conversations, queue, knowledge, audit).
    List,
    /// The conversations screen.
    Conversations,
    /// The queue screen.
    Queue,
    /// The ticket screen.
    Ticket,
    /// The statistics screen.
    Statistics,
    /// The knowledge review screen.
    Knowledge,
    /// The ticket's composer while it has the keyboard (every other key is text there).
    Composer,
    /// The shift board.
    Shift,
    /// The admin screen.
    Admin,
    /// A ticket offered to the signed-in member, while its prompt is shown.
    Offer,
}

/// A key, written as the help shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key code.
    pub code: KeyCode,
    /// Control held.
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    /// `Ctrl-S`, `Enter`, `q`, ...
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::F(n) => format!("F{n}"),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{}", base.to_uppercase())
        } else {
            base
        }
    }

    fn matches(&self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl != self.ctrl {
            return false;
        }
        match (self.code, event.code) {
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b,
            (a, b) => a == b,
        }
    }
}

/// What a key, a click or a palette command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Leave the console (asks first when a draft is unsent).
    Quit,
    /// Show or hide the key help.
    Help,
    /// Open the command palette.
    Palette,
    /// Next screen.
    NextScreen,
    /// Previous screen.
    PrevScreen,
    /// Go to screen 1..6.
    Screen(u8),
    /// Filter the current list.
    Filter,
    /// Move up.
    Up,
    /// Move down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Open the selected row.
    Open,
    /// Back / close an overlay.
    Back,
    /// Re-read everything now.
    Refresh,
    /// Switch Arabic reordering for terminals without bidi support.
    ToggleBidi,
    /// Conversations: cycle the status filter.
    CycleStatus,
    /// Conversations: cycle the mode filter.
    CycleMode,
    /// Conversations: cycle the language filter.
    CycleLanguage,
    /// Conversations: cycle escalated / not escalated / all.
    CycleEscalated,
    /// Queue: cycle the view (mine, unassigned, breached, all).
    CycleQueue,
    /// Queue: cycle the category filter.
    CycleCategory,
    /// Queue: cycle the priority filter.
    CyclePriority,
    /// Ticket: take it.
    Take,
    /// Ticket: release it.
    Release,
    /// Ticket: assign to someone (supervisors).
    Assign,
    /// Ticket: move to another tier.
    Escalate,
    /// Ticket: wait for the person (pauses the clock).
    Pending,
    /// Ticket: resolve, with notes.
    Resolve,
    /// Ticket: close.
    Close,
    /// Ticket: reopen.
    Reopen,
    /// Ticket: re-triage it: priority, category, tier or language (supervisors).
    Triage,
    /// Move the focus to the screen's next pane.
    FocusNext,
    /// Ticket: focus the composer.
    Compose,
    /// Composer: give the keyboard back (the draft is kept).
    StopComposing,
    /// Composer: send.
    Send,
    /// Composer: switch public reply / internal note.
    ToggleInternal,
    /// Statistics: a shorter range.
    RangeShorter,
    /// Statistics: a longer range.
    RangeLonger,
    /// Knowledge: approve the document.
    Approve,
    /// Knowledge: reject the document, with a reason.
    Reject,
    /// Choose a theme.
    Theme,
    /// Shift: set oneself online.
    GoOnline,
    /// Shift: set oneself away.
    GoAway,
    /// Offer: take the offered ticket.
    AcceptOffer,
    /// Offer: decline it (the next member is asked).
    DeclineOffer,
    /// Admin: edit the selected row (profile, targets, hours, retention).
    Edit,
    /// Admin: clear the selected account's sign-in lock.
    Unlock,
    /// Admin: disable or enable the selected account.
    ToggleActive,
    /// Admin: change the selected account's role.
    ChangeRole,
    /// Admin: add a holiday.
    AddHoliday,
    /// Admin: remove the selected holiday.
    RemoveHoliday,
    /// Queue: mark or unmark the ticket for a bulk assign or close.
    Mark,
    /// Ticket: insert a canned reply into the draft (a picker in the ticket's language).
    InsertCanned,
    /// Ticket: add, edit and remove canned replies (supervisors and admins).
    ManageCanned,
}

/// One binding: a key, an action, where it applies and what the help says.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The key.
    pub key: Key,
    /// The action.
    pub action: Action,
    /// Where.
    pub scope: Scope,
    /// Help text.
    pub help: &'static str,
    /// Shown in the footer of its scope.
    pub footer: bool,
}

const fn b(key: Key, action: Action, scope: Scope, help: &'static str, footer: bool) -> Binding {
    Binding {
        key,
        action,
        scope,
        help,
        footer,
    }
}

/// The key map. The first binding of an action is the one the footer and help show first.
// One binding a line, so the map reads as a table.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    b(k('?'), Action::Help, Scope::Global, "help", true),
    b(k(':'), Action::Palette, Scope::Global, "command palette", true),
    b(k('q'), Action::Quit, Scope::Global, "quit", true),
    b(ctrl('c'), Action::Quit, Scope::Global, "quit", false),
    b(code(KeyCode::Tab), Action::NextScreen, Scope::Global, "next screen", false),
    b(code(KeyCode::BackTab), Action::PrevScreen, Scope::Global, "previous screen", false),
    b(k('1'), Action::Screen(1), Scope::Global, "conversations", false),
    b(k('2'), Action::Screen(2), Scope::Global, "queue", false),
    b(k('3'), Action::Screen(3), Scope::Global, "ticket", false),
    b(k('4'), Action::Screen(4), Scope::Global, "statistics", false),
    b(k('5'), Action::Screen(5), Scope::Global, "knowledge review", false),
    b(k('6'), Action::Screen(6), Scope::Global, "audit log", false),
    b(k('7'), Action::Screen(7), Scope::Global, "shift board", false),
    b(k('8'), Action::Screen(8), Scope::Global, "admin", false),
    b(code(KeyCode::Esc), Action::Back, Scope::Global, "back / close", false),
    b(ctrl('r'), Action::Refresh, Scope::Global, "refresh now", false),
    b(ctrl('b'), Action::ToggleBidi, Scope::Global, "Arabic reordering on/off", false),
    b(k('T'), Action::Theme, Scope::Global, "choose theme", false),
    b(k('/'), Action::Filter, Scope::List, "filter", true),
    b(k('j'), Action::Down, Scope::List, "down", false),
    b(code(KeyCode::Down), Action::Down, Scope::List, "down", false),
    b(k('k'), Action::Up, Scope::List, "up", false),
    b(code(KeyCode::Up), Action::Up, Scope::List, "up", false),
    b(code(KeyCode::PageDown), Action::PageDown, Scope::List, "page down", false),
    b(ctrl('d'), Action::PageDown, Scope::List, "page down", false),
    b(code(KeyCode::PageUp), Action::PageUp, Scope::List, "page up", false),
    b(ctrl('u'), Action::PageUp, Scope::List, "page up", false),
    b(k('g'), Action::Top, Scope::List, "first", false),
    b(code(KeyCode::Home), Action::Top, Scope::List, "first", false),
    b(k('G'), Action::Bottom, Scope::List, "last", false),
    b(code(KeyCode::End), Action::Bottom, Scope::List, "last", false),
    b(code(KeyCode::Enter), Action::Open, Scope::List, "open", true),
    b(k('s'), Action::CycleStatus, Scope::Conversations, "status filter", true),
    b(k('m'), Action::CycleMode, Scope::Conversations, "mode filter", true),
    b(k('l'), Action::CycleLanguage, Scope::Conversations, "language filter", true),
    b(k('e'), Action::CycleEscalated, Scope::Conversations, "escalated filter", true),
    b(k('v'), Action::CycleQueue, Scope::Queue, "view", true),
    b(k('c'), Action::CycleCategory, Scope::Queue, "category", true),
    b(k('p'), Action::CyclePriority, Scope::Queue, "priority", true),
    b(k('t'), Action::Take, Scope::Queue, "take", true),
    b(k('t'), Action::Take, Scope::Conversations, "take over / take its ticket", true),
    b(k('t'), Action::Take, Scope::Ticket, "take", true),
    b(k('r'), Action::Release, Scope::Ticket, "release", false),
    b(k('a'), Action::Assign, Scope::Ticket, "assign", false),
    b(k('e'), Action::Escalate, Scope::Ticket, "escalate tier", false),
    b(k('p'), Action::Pending, Scope::Ticket, "pending", false),
    b(k('R'), Action::Resolve, Scope::Ticket, "resolve", true),
    b(k('C'), Action::Close, Scope::Ticket, "close", false),
    b(k('o'), Action::Reopen, Scope::Ticket, "reopen", false),
    b(k('i'), Action::Compose, Scope::Ticket, "write", true),
    b(ctrl('s'), Action::Send, Scope::Ticket, "send", true),
    b(ctrl('t'), Action::ToggleInternal, Scope::Ticket, "public/internal", true),
    b(k('y'), Action::Triage, Scope::Ticket, "re-triage", false),
    b(code(KeyCode::Tab), Action::FocusNext, Scope::Ticket, "next pane", true),
    b(k('j'), Action::Down, Scope::Ticket, "scroll down", false),
    b(code(KeyCode::Down), Action::Down, Scope::Ticket, "scroll down", false),
    b(k('k'), Action::Up, Scope::Ticket, "scroll up", false),
    b(code(KeyCode::Up), Action::Up, Scope::Ticket, "scroll up", false),
    b(code(KeyCode::PageDown), Action::PageDown, Scope::Ticket, "page down", false),
    b(code(KeyCode::PageUp), Action::PageUp, Scope::Ticket, "page up", false),
    b(k('g'), Action::Top, Scope::Ticket, "oldest", false),
    b(k('G'), Action::Bottom, Scope::Ticket, "newest", false),
    b(ctrl('s'), Action::Send, Scope::Composer, "send", true),
    b(ctrl('t'), Action::ToggleInternal, Scope::Composer, "public/internal", true),
    b(code(KeyCode::Esc), Action::StopComposing, Scope::Composer, "stop writing (draft kept)", true),
    b(ctrl('c'), Action::Quit, Scope::Composer, "quit", false),
    b(code(KeyCode::Tab), Action::FocusNext, Scope::Conversations, "list / transcript", true),
    b(k('['), Action::RangeShorter, Scope::Statistics, "shorter range", true),
    b(k(']'), Action::RangeLonger, Scope::Statistics, "longer range", true),
    b(k(' '), Action::Mark, Scope::Queue, "mark for bulk", false),
    b(k('a'), Action::Assign, Scope::Queue, "assign (marked)", false),
    b(k('C'), Action::Close, Scope::Queue, "close (marked)", false),
    b(k('c'), Action::InsertCanned, Scope::Ticket, "canned reply", false),
    b(k('K'), Action::ManageCanned, Scope::Ticket, "manage canned replies", false),
    b(ctrl('g'), Action::InsertCanned, Scope::Composer, "canned reply", false),
    b(k('a'), Action::Approve, Scope::Knowledge, "approve", true),
    b(k('x'), Action::Reject, Scope::Knowledge, "reject", true),
    b(k('o'), Action::GoOnline, Scope::Shift, "set me online", true),
    b(k('w'), Action::GoAway, Scope::Shift, "set me away", true),
    b(code(KeyCode::Tab), Action::FocusNext, Scope::Admin, "next section", true),
    b(k('e'), Action::Edit, Scope::Admin, "edit", true),
    b(k('u'), Action::Unlock, Scope::Admin, "unlock", true),
    b(k('d'), Action::ToggleActive, Scope::Admin, "disable/enable", true),
    b(k('r'), Action::ChangeRole, Scope::Admin, "role", true),
    b(k('a'), Action::AddHoliday, Scope::Admin, "add holiday", false),
    b(k('x'), Action::RemoveHoliday, Scope::Admin, "remove holiday", false),
    b(k('y'), Action::AcceptOffer, Scope::Offer, "accept the offered ticket", true),
    b(k('n'), Action::DeclineOffer, Scope::Offer, "decline it", true),
    b(code(KeyCode::Esc), Action::Back, Scope::Offer, "hide (it passes on when its time is up)", true),
];

/// The keys of `action` in `scope` as the help shows them (`Ctrl-S`, `j/↓`), for texts that
/// name a key: they follow the key map.
pub fn key_label(action: Action, scope: Scope) -> String {
    BINDINGS
        .iter()
        .filter(|b| b.action == action && b.scope == scope)
        .map(|b| b.key.label())
        .collect::<Vec<_>>()
        .join("/")
}

/// The action bound to `event` in the given scopes (the most specific scope first).
pub fn action_for(event: &KeyEvent, scopes: &[Scope]) -> Option<Action> {
    scopes.iter().find_map(|scope| {
        BINDINGS
            .iter()
            .find(|b| b.scope == *scope && b.key.matches(event))
            .map(|b| b.action)
    })
}

/// The bindings shown for the given scopes: for the help (all) or the footer (marked ones),
/// one entry per action and scope, with every key of it joined (`j/↓`).
pub fn entries(scopes: &[Scope], footer_only: bool) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str, Action, Scope)> = Vec::new();
    for scope in scopes {
        for binding in BINDINGS.iter().filter(|b| b.scope == *scope) {
            if footer_only && !binding.footer {
                continue;
            }
            if let Some(entry) = out
                .iter_mut()
                .find(|(_, _, a, s)| *a == binding.action && *s == binding.scope)
            {
                entry.0.push('/');
                entry.0.push_str(&binding.key.label());
            } else {
                out.push((
                    binding.key.label(),
                    binding.help,
                    binding.action,
                    binding.scope,
                ));
            }
        }
    }
    out.into_iter()
        .map(|(key, help, _, _)| (key, help))
        .collect()
}

/// The command palette's commands: every bound action of the scopes, by help text, with its
/// keys there (`j/↓`).
pub fn commands(scopes: &[Scope]) -> Vec<(String, &'static str, Action)> {
    let mut out: Vec<(String, &'static str, Action)> = Vec::new();
    for scope in scopes {
        for binding in BINDINGS.iter().filter(|b| b.scope == *scope) {
            if matches!(
                binding.action,
                Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Palette
            ) {
                continue;
            }
            if !out.iter().any(|(_, _, a)| *a == binding.action) {
                out.push((
                    key_label(binding.action, binding.scope),
                    binding.help,
                    binding.action,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                assert!(
                    !(a.scope == b.scope && a.key == b.key),
                    "{} bound twice in {:?}",
                    a.key.label(),
                    a.scope
                );
            }
        }
    }

    #[test]
    fn specific_scopes_win_over_global_ones() {
        let t = press(KeyCode::Char('t'), KeyModifiers::NONE);
        assert_eq!(
            action_for(&t, &[Scope::Queue, Scope::List, Scope::Global]),
            Some(Action::Take)
        );
        assert_eq!(action_for(&t, &[Scope::Global]), None);
        let s = press(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(&s, &[Scope::Ticket, Scope::Global]),
            Some(Action::Send)
        );
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(
            action_for(&q, &[Scope::Ticket, Scope::Global]),
            Some(Action::Quit)
        );
    }

    #[test]
    fn help_joins_the_keys_of_one_action() {
        let help = entries(&[Scope::List], false);
        assert!(
            help.iter().any(|(k, h)| k == "j/↓" && *h == "down"),
            "{help:?}"
        );
        let footer = entries(&[Scope::Ticket], true);
        assert!(footer.iter().any(|(k, _)| k == "Ctrl-S"));
        assert!(!footer.iter().any(|(_, h)| *h == "scroll down"));
    }

    #[test]
    fn the_composer_keys_come_from_the_map() {
        let esc = press(KeyCode::Esc, KeyModifiers::NONE);
        assert_eq!(
            action_for(&esc, &[Scope::Composer]),
            Some(Action::StopComposing)
        );
        let j = press(KeyCode::Char('j'), KeyModifiers::NONE);
        assert_eq!(action_for(&j, &[Scope::Composer]), None, "letters are text");
        assert_eq!(key_label(Action::Send, Scope::Composer), "Ctrl-S");
        assert_eq!(key_label(Action::Down, Scope::List), "j/↓");
        let palette = commands(&[Scope::Ticket, Scope::Global]);
        assert!(
            palette.iter().any(|(k, h, _)| k == "R" && *h == "resolve"),
            "{palette:?}"
        );
    }
}
