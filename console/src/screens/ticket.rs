//! The ticket screen: one ticket with its SLA clocks, its conversation, its comments and
//! escalations, and the composer; and the changes staff make to a ticket (take, release,
//! assign, escalate, pending, resolve, close, reopen, comment).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use amal_engine::events::ChangeNotice;
use amal_engine::lang::Lang;
use amal_engine::lookups::LookupKind;
use amal_engine::staff::StaffRole;
use amal_engine::tickets::{TicketDetail, TicketStatus, Tier, Triage, Viewer};

use crate::action::{self, Action, Scope};
use crate::bidi;
use crate::chrome::overlay::{Chooser, ChooserPurpose, Confirmed, Overlay, PromptPurpose};
use crate::chrome::picker::{Picker, PickerPurpose};
use crate::data::{Command, Request, TicketView};
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::{age, block, header_style, priority_style};

use super::clock::{Target, clock_span};
use super::composer::{Draft, draw_composer};
use super::transcript::{ScrollBack, transcript_lines};
use super::{Context, Outbox, Screen};

/// The panes of the ticket screen that scroll; Tab moves between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TicketPane {
    /// The person's conversation.
    Conversation,
    /// The comment thread.
    #[default]
    Comments,
}

/// The open ticket, and the drafts of every ticket.
#[derive(Default)]
pub struct TicketScreen {
    /// The open ticket's number.
    pub number: Option<String>,
    /// The open ticket, and when it was read.
    pub view: Option<(TicketView, DateTime<Utc>)>,
    /// The pane the scrolling keys move.
    pub focus: TicketPane,
    /// The conversation pane, scrolled back from its newest message.
    pub conversation: ScrollBack,
    /// The comments pane, scrolled back from its newest comment.
    pub comments: ScrollBack,
    /// The composer has the keyboard.
    pub composing: bool,
    /// Drafts by ticket number.
    pub drafts: HashMap<String, Draft>,
    /// The other staff who have the open ticket open too.
    pub viewers: Vec<Viewer>,
    /// When this console last marked the open ticket as viewed (the heartbeat).
    pub viewing_at: Option<DateTime<Utc>>,
}

impl TicketScreen {
    /// Opens a ticket; another ticket than the one shown starts at its newest comment.
    pub fn open(&mut self, number: String) {
        if self.number.as_deref() != Some(number.as_str()) {
            self.view = None;
            self.conversation = ScrollBack::default();
            self.comments = ScrollBack::default();
            self.composing = false;
            self.viewers.clear();
            self.viewing_at = None;
        }
        self.number = Some(number);
    }

    /// Who else views ticket `number`, as the heartbeat read it.
    pub fn on_viewers(&mut self, number: &str, viewers: Vec<Viewer>) {
        if self.number.as_deref() == Some(number) {
            self.viewers = viewers;
        }
    }

    /// A canned reply filled in for ticket `number`: inserted into its draft where the cursor
    /// is, and the composer takes the keyboard to edit it.
    pub fn insert(&mut self, number: &str, text: &str) {
        if self.number.as_deref() != Some(number) {
            return;
        }
        let draft = self.drafts.entry(number.to_string()).or_default();
        if !draft.sending {
            draft.paste(text);
            self.composing = true;
        }
    }

    /// The open ticket's language, if it has one.
    pub fn language(&self) -> Option<Lang> {
        self.view
            .as_ref()
            .and_then(|(v, _)| v.detail.ticket.language.as_deref())
            .and_then(|l| l.parse().ok())
    }

    /// A ticket as read; kept only if it is still the open one.
    pub fn on_view(&mut self, view: TicketView, read_at: DateTime<Utc>) {
        if self.number.as_deref() == Some(view.detail.ticket.ticket_number.as_str()) {
            self.view = Some((view, read_at));
        }
    }

    /// A comment's outcome: sent, its text goes and its mode (public or internal) stays;
    /// refused, the draft stays to be sent again.
    pub fn on_comment_done(&mut self, number: &str, sent: bool) {
        if let Some(d) = self.drafts.get_mut(number) {
            if sent {
                d.sent();
            } else {
                d.sending = false;
            }
        }
    }

    /// Pasted text: into the draft while the composer has the keyboard, in one go.
    pub fn paste(&mut self, text: &str) {
        if let Some(n) = self.number.clone()
            && self.composing
        {
            let draft = self.drafts.entry(n).or_default();
            if !draft.sending {
                draft.paste(text);
            }
        }
    }

    /// Sends the open ticket's draft. A public reply right after an internal note is
    /// confirmed first, unless `confirmed`.
    pub fn send(&mut self, confirmed: bool, out: &mut Outbox) {
        let Some(n) = self.number.clone() else {
            return;
        };
        let Some(draft) = self.drafts.get_mut(&n) else {
            out.toast(
                format!(
                    "nothing to send: press {} to write",
                    action::key_label(Action::Compose, Scope::Ticket)
                ),
                true,
            );
            return;
        };
        if draft.is_empty() {
            out.toast("nothing to send: the reply is empty", true);
            return;
        }
        if draft.sending {
            return;
        }
        if !draft.internal && draft.after_note && !confirmed {
            out.overlay(Overlay::Confirm(
                "Your last message was an INTERNAL NOTE. Send this as a PUBLIC REPLY that the \
                 person will see?"
                    .into(),
                Confirmed::SendPublic(n),
            ));
            return;
        }
        draft.sending = true;
        let command = Command::Comment(n, draft.content(), draft.internal);
        out.send(Request::Act(command));
    }

    /// Whether any draft holds unsent text.
    pub fn has_unsent_drafts(&self) -> bool {
        self.drafts.values().any(|d| !d.is_empty())
    }

    /// A key while the composer has the keyboard: typed into the draft, or the action the
    /// composer's own keys stand for (the key map's single letters are text here).
    pub fn compose_key(&mut self, key: KeyEvent) -> Option<Action> {
        match action::action_for(&key, &[Scope::Composer]) {
            Some(Action::StopComposing) => self.composing = false,
            Some(action) => return Some(action),
            None => {
                if let Some(n) = self.number.clone() {
                    let draft = self.drafts.entry(n).or_default();
                    if !draft.sending {
                        draft.text.input(key);
                    }
                }
            }
        }
        None
    }

    /// Whether the open ticket is a crisis ticket.
    fn is_crisis(&self) -> bool {
        self.view
            .as_ref()
            .is_some_and(|(v, _)| v.detail.ticket.category == "crisis")
    }

    /// A change to ticket `n` (the open one, or the one selected on the queue). Those that
    /// cannot be undone are confirmed first; those that need words ask for them.
    pub fn act_on(&self, action: Action, n: String, out: &mut Outbox) {
        match action {
            Action::Take => out.send(Request::Act(Command::Take(n))),
            Action::Release => out.overlay(Overlay::confirm(
                format!("Release {n} back to the unassigned queue?"),
                Command::Release(n),
            )),
            Action::Assign => {
                out.overlay(Overlay::Picker(Box::new(Picker::new(
                    PickerPurpose::Assign(vec![n.clone()]),
                    format!("Assign {n} to"),
                ))));
                out.send(Request::Staff);
            }
            Action::Escalate => {
                let current = self
                    .view
                    .as_ref()
                    .map(|(v, _)| v.detail.ticket.escalation_tier.clone())
                    .unwrap_or_default();
                let options: Vec<String> = ["T1", "T2", "T3", "manager"]
                    .iter()
                    .filter(|t| **t != current)
                    .map(|t| t.to_string())
                    .collect();
                out.overlay(Overlay::Chooser(Chooser {
                    purpose: ChooserPurpose::Tier(n.clone()),
                    title: format!("Move {n} to tier"),
                    options,
                    selected: 0,
                }));
            }
            // A crisis ticket's clock is not stopped with one key: confirmed, with a reason.
            Action::Pending if self.is_crisis() => out.overlay(Overlay::prompt(
                PromptPurpose::PendingReason(n.clone()),
                format!("{n} is a CRISIS ticket. Why wait for the person?"),
                "",
            )),
            Action::Pending => out.send(Request::Act(Command::Status(
                n,
                TicketStatus::Pending,
                None,
            ))),
            Action::Triage => out.overlay(Overlay::Chooser(Chooser {
                purpose: ChooserPurpose::TriageField(n.clone()),
                title: format!("Re-triage {n}"),
                options: TRIAGE_FIELDS.iter().map(|f| f.to_string()).collect(),
                selected: 0,
            })),
            Action::Resolve => out.overlay(Overlay::prompt(
                PromptPurpose::ResolveNotes(n.clone()),
                format!("Resolve {n}: resolution notes"),
                "",
            )),
            Action::Close => out.overlay(Overlay::confirm(
                format!("Close {n}? Only internal notes can be added afterwards."),
                Command::Status(n, TicketStatus::Closed, None),
            )),
            Action::Reopen => out.send(Request::Act(Command::Reopen(n))),
            _ => {}
        }
    }

    /// The words a ticket change asked for: an escalation's reason, resolution
    /// notes (which may be left empty).
    pub fn answer(purpose: PromptPurpose, text: String, out: &mut Outbox) {
        match purpose {
            PromptPurpose::EscalateReason(..) if text.is_empty() => {
                out.toast("an escalation needs a reason", true)
            }
            PromptPurpose::EscalateReason(n, tier) => {
                out.send(Request::Act(Command::Escalate(n, tier, text)))
            }
            PromptPurpose::ResolveNotes(n) => {
                let note = (!text.is_empty()).then_some(text);
                out.send(Request::Act(Command::Status(
                    n,
                    TicketStatus::Resolved,
                    note,
                )));
            }
            PromptPurpose::PendingReason(_) if text.is_empty() => {
                out.toast("a crisis ticket waits only with a reason", true)
            }
            PromptPurpose::PendingReason(n) => out.send(Request::Act(Command::Status(
                n,
                TicketStatus::Pending,
                Some(text),
            ))),
            PromptPurpose::TriageReason(..) if text.is_empty() => {
                out.toast("a re-triage needs a reason", true)
            }
            PromptPurpose::TriageReason(n, change) => {
                out.send(Request::Act(Command::Triage(n, change, text)))
            }
            PromptPurpose::Filter(_)
            | PromptPurpose::RejectReason(_)
            | PromptPurpose::Admin(_)
            | PromptPurpose::CannedTitle(..)
            | PromptPurpose::CannedBody(..) => {}
        }
    }

    /// The re-triage field chosen: its values are offered next (the lookup's codes).
    pub fn triage_field_chosen(n: String, field: &str, ctx: &Context, out: &mut Outbox) {
        let options: Vec<String> = match field {
            "priority" => ctx.codes(LookupKind::TicketPriority),
            "category" => ctx.codes(LookupKind::TicketCategory),
            "tier" => ["T1", "T2", "T3", "manager"].map(String::from).to_vec(),
            "language" => Lang::ALL.iter().map(|l| l.code().to_string()).collect(),
            _ => return,
        };
        out.overlay(Overlay::Chooser(Chooser {
            purpose: ChooserPurpose::TriageValue(n.clone(), field.to_string()),
            title: format!("{n}: new {field}"),
            options,
            selected: 0,
        }));
    }

    /// The re-triage value chosen: the reason is asked next.
    pub fn triage_value_chosen(n: String, field: &str, value: &str, out: &mut Outbox) {
        let mut change = Triage::default();
        match field {
            "priority" => change.priority = Some(value.to_string()),
            "category" => change.category = Some(value.to_string()),
            "tier" => change.tier = value.parse().ok(),
            "language" => change.language = value.parse().ok(),
            _ => return,
        }
        out.overlay(Overlay::prompt(
            PromptPurpose::TriageReason(n.clone(), change),
            format!("Why set {n}'s {field} to {value}?"),
            "",
        ));
    }

    /// The tier chosen for ticket `n`: the reason is asked next.
    pub fn tier_chosen(n: String, choice: &str, out: &mut Outbox) {
        if let Ok(tier) = choice.parse::<Tier>() {
            out.overlay(Overlay::prompt(
                PromptPurpose::EscalateReason(n.clone(), tier),
                format!("Why move {n} to {choice}?"),
                "",
            ));
        }
    }
}

/// What a supervisor can re-triage, in the chooser's order.
const TRIAGE_FIELDS: [&str; 4] = ["priority", "category", "tier", "language"];

impl Screen for TicketScreen {
    fn refresh(&self, out: &mut Outbox) {
        if let Some(n) = &self.number {
            out.send(Request::Ticket(n.clone()));
        }
    }

    fn concerns(&self, notice: &ChangeNotice) -> bool {
        let open = self.view.as_ref().map(|(v, _)| &v.detail.ticket);
        let mine = open.is_some_and(|t| {
            notice.ticket_id == Some(t.id)
                || (notice.conversation_id.is_some() && notice.conversation_id == t.conversation_id)
        });
        mine || open.is_none()
    }

    fn status(&self, _ctx: &Context) -> String {
        match self.number.as_ref().and_then(|n| self.drafts.get(n)) {
            Some(d) if d.sending => "sending…".into(),
            Some(d) if !d.is_empty() => "draft kept".into(),
            _ => String::new(),
        }
    }

    fn perform(&mut self, action: Action, ctx: &Context, out: &mut Outbox) {
        match action {
            Action::Compose => {
                if let Some(n) = self.number.clone() {
                    self.drafts.entry(n).or_default();
                    self.composing = true;
                }
            }
            Action::Send => self.send(false, out),
            Action::FocusNext => {
                self.focus = match self.focus {
                    TicketPane::Conversation => TicketPane::Comments,
                    TicketPane::Comments => TicketPane::Conversation,
                }
            }
            Action::Triage if ctx.role().is_some_and(|r| r >= StaffRole::Supervisor) => {
                if let Some(n) = self.number.clone() {
                    self.act_on(Action::Triage, n, out);
                }
            }
            Action::Triage => out.toast("re-triage is for supervisors and admins", true),
            Action::ToggleInternal => {
                if let Some(n) = self.number.clone() {
                    let draft = self.drafts.entry(n).or_default();
                    draft.internal = !draft.internal;
                }
            }
            _ => {}
        }
    }

    /// The scrolling keys move the focused pane: up goes back to older lines, down towards
    /// the newest.
    fn scroll(&mut self, action: Action, page: usize, _out: &mut Outbox) {
        match self.focus {
            TicketPane::Conversation => self.conversation.apply(action, page),
            TicketPane::Comments => self.comments.apply(action, page),
        }
    }

    fn counting(&self) -> bool {
        self.view.is_some()
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, _hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let Some((view, read_at)) = &self.view else {
            let text = if self.number.is_some() {
                "loading…"
            } else {
                "No ticket open: choose one on the queue (2) and press Enter."
            };
            frame.render_widget(
                Paragraph::new(text)
                    .style(theme.fg(ThemeKey::BaseDim))
                    .block(block(theme, " Ticket ", true)),
                area,
            );
            return;
        };
        let composer_height = if area.height >= 30 { 6 } else { 4 };
        let [info, middle, composer] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Min(3),
            Constraint::Length(composer_height),
        ])
        .areas(area);
        draw_info(frame, info, ctx, &view.detail, *read_at, &self.viewers);

        let [left, right] = if middle.width >= 100 {
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(middle)
        } else {
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle)
        };
        let width = usize::from(left.width.saturating_sub(2));
        let transcript = transcript_lines(ctx, &view.transcript, width);
        let focus = !self.composing;
        self.conversation.draw(
            frame,
            left,
            ctx,
            transcript,
            " Conversation ",
            focus && self.focus == TicketPane::Conversation,
        );
        let thread = thread_lines(
            ctx,
            &view.detail,
            usize::from(right.width.saturating_sub(2)),
        );
        self.comments.draw(
            frame,
            right,
            ctx,
            thread,
            &format!(" Comments ({}) ", view.detail.comments.len()),
            focus && self.focus == TicketPane::Comments,
        );

        let draft = self.drafts.get(&view.detail.ticket.ticket_number);
        draw_composer(frame, composer, ctx, draft, self.composing);
    }
}

/// The ticket's subject, labels, holder and both clocks under its number.
fn draw_info(
    frame: &mut Frame,
    area: Rect,
    ctx: &Context,
    d: &TicketDetail,
    read_at: DateTime<Utc>,
    viewers: &[Viewer],
) {
    let theme = &ctx.theme;
    let t = &d.ticket;
    let holder = t
        .assigned_to_name
        .as_deref()
        .map(|n| format!("{n} <{}>", t.assigned_to.as_deref().unwrap_or("")))
        .unwrap_or_else(|| "unassigned".into());
    let lines = vec![
        Line::from(vec![Span::styled(
            bidi::line(
                &t.subject,
                usize::from(area.width.saturating_sub(4)),
                ctx.bidi,
            ),
            theme.fg(ThemeKey::BaseText).add_modifier(Modifier::BOLD),
        )]),
        Line::from(vec![
            Span::styled(
                ctx.label(LookupKind::TicketStatus, &t.status),
                theme.fg(ThemeKey::BaseText),
            ),
            Span::raw(" · "),
            Span::styled(
                ctx.label(LookupKind::TicketPriority, &t.priority),
                priority_style(theme, &t.priority),
            ),
            Span::raw(" · "),
            Span::raw(ctx.label(LookupKind::TicketCategory, &t.category)),
            Span::raw(format!(
                " · tier {} · {} · {holder}",
                t.escalation_tier,
                t.language.as_deref().unwrap_or("-")
            )),
        ]),
        Line::from(vec![
            Span::styled("response ", theme.fg(ThemeKey::BaseDim)),
            clock_span(ctx, t, Target::FirstResponse, read_at),
            Span::styled("   resolution ", theme.fg(ThemeKey::BaseDim)),
            clock_span(ctx, t, Target::Resolution, read_at),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(theme.fg(ThemeKey::BaseBorder))
                .title(Line::from(vec![
                    Span::styled(
                        format!(" {} ", t.ticket_number),
                        theme.fg(ThemeKey::BaseTitle).add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(
                        also_viewing(viewers),
                        theme.fg(ThemeKey::SlaWarning).add_modifier(Modifier::BOLD),
                    ),
                ])),
        ),
        area,
    );
}

/// `also viewing: Karim, Nadia ` when others have the ticket open, else nothing.
fn also_viewing(viewers: &[Viewer]) -> String {
    if viewers.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = viewers.iter().map(|v| v.name.as_str()).collect();
    format!("also viewing: {} ", names.join(", "))
}

/// The ticket's thread: its description, escalations, comments (internal notes marked down
/// the margin) and resolution notes.
fn thread_lines<'a>(ctx: &Context, d: &TicketDetail, width: usize) -> Vec<Line<'a>> {
    let theme = &ctx.theme;
    let mut thread: Vec<Line> = Vec::new();
    if let Some(desc) = d.description.as_deref().filter(|s| !s.is_empty()) {
        thread.push(Line::from(Span::styled("description", header_style(theme))));
        for l in bidi::wrap(desc, width.saturating_sub(1).max(10), ctx.bidi) {
            thread.push(Line::from(format!(" {l}")));
        }
    }
    for e in &d.escalations {
        thread.push(Line::from(Span::styled(
            format!(
                "⇧ {} → {} · {} · {} ago",
                e.from_tier,
                e.to_tier,
                e.actor_email.as_deref().unwrap_or("system"),
                age(ctx.now, e.created_at)
            ),
            theme.fg(ThemeKey::BaseDim),
        )));
        thread.push(Line::from(Span::styled(
            format!("  {}", e.reason),
            theme.fg(ThemeKey::BaseDim),
        )));
    }
    for c in &d.comments {
        let (tag, key, head_key, prefix) = if c.is_internal {
            (
                "INTERNAL NOTE",
                ThemeKey::CommentsInternal,
                ThemeKey::CommentsInternal,
                "┃ ",
            )
        } else {
            (
                "public reply",
                ThemeKey::CommentsPublic,
                ThemeKey::TranscriptStaff,
                "  ",
            )
        };
        let mut head = format!(
            "{} · {tag} · {} ago",
            c.author_name,
            age(ctx.now, c.created_at)
        );
        if c.deleted_at.is_some() {
            head.push_str(" · deleted");
        }
        thread.push(Line::from(Span::styled(
            head,
            theme.fg(head_key).add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(&c.content, width.saturating_sub(2).max(10), ctx.bidi) {
            thread.push(Line::from(Span::styled(
                format!("{prefix}{l}"),
                theme.fg(key),
            )));
        }
    }
    if let Some(notes) = d.resolution_notes.as_deref().filter(|s| !s.is_empty()) {
        thread.push(Line::from(Span::styled(
            format!("resolved by {}", d.resolved_by.as_deref().unwrap_or("?")),
            theme.fg(ThemeKey::BaseSuccess).add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(notes, width.saturating_sub(2).max(10), ctx.bidi) {
            thread.push(Line::from(format!("  {l}")));
        }
    }
    if thread.is_empty() {
        thread.push(Line::from(Span::styled(
            "no comments yet",
            theme.fg(ThemeKey::BaseDim),
        )));
    }
    thread
}
