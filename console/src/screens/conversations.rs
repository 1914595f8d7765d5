//! The conversations screen: the live list with its filters, and the selected conversation's
//! transcript beside it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;
use uuid::Uuid;

use amal_engine::conversations::{ConversationFilter, ConversationSummary, TranscriptEntry};
use amal_engine::events::ChangeNotice;
use amal_engine::lang::Lang;
use amal_engine::lookups::LookupKind;

use crate::action::Action;
use crate::bidi;
use crate::chrome::overlay::{Overlay, PromptPurpose};
use crate::data::Request;
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::{age, priority_style};

use super::list::{ListSpec, Rows, draw_list};
use super::transcript::{ScrollBack, transcript_lines};
use super::{Context, Outbox, Screen, ScreenId, Selection, conversation_change, cycle};

/// The conversation list and the transcript of the selected one.
pub struct ConversationsScreen {
    /// The conversations, newest activity first.
    pub list: Rows<ConversationSummary>,
    /// The filters in use.
    pub filter: ConversationFilter,
    /// The selected conversation's transcript.
    pub transcript: Option<(Uuid, Vec<TranscriptEntry>)>,
    /// The transcript has the focus: the scrolling keys scroll it instead of moving in the
    /// list.
    pub transcript_focus: bool,
    /// How far the transcript is scrolled back.
    pub transcript_scroll: ScrollBack,
}

impl Default for ConversationsScreen {
    fn default() -> Self {
        ConversationsScreen {
            list: Rows::default(),
            filter: Self::default_filter(),
            transcript: None,
            transcript_focus: false,
            transcript_scroll: ScrollBack::default(),
        }
    }
}

impl ConversationsScreen {
    /// No filter, and a list long enough for any screen.
    fn default_filter() -> ConversationFilter {
        ConversationFilter {
            limit: 200,
            ..ConversationFilter::default()
        }
    }

    /// The selected conversation.
    pub fn selected(&self) -> Option<&ConversationSummary> {
        self.list.selected()
    }

    /// A new list: the selection follows its conversation, and its transcript is asked for
    /// when it is not the one shown.
    pub fn on_list(&mut self, list: Vec<ConversationSummary>, out: &mut Outbox) {
        self.list.replace_following(list, |c| c.id);
        let want = self.selected().map(|c| c.id);
        if let Some(id) = want
            && want != self.transcript.as_ref().map(|t| t.0)
        {
            out.send(Request::Transcript(id));
        }
    }

    /// A transcript; kept only if its conversation is still the selected one.
    pub fn on_transcript(&mut self, id: Uuid, entries: Vec<TranscriptEntry>) {
        if self.selected().map(|c| c.id) == Some(id) {
            if self.transcript.as_ref().map(|t| t.0) != Some(id) {
                self.transcript_scroll = ScrollBack::default();
            }
            self.transcript = Some((id, entries));
        }
    }

    /// Searches messages, titles and ticket numbers (`None`: no search).
    pub fn set_text_filter(&mut self, text: Option<String>) {
        self.filter.text = text;
        self.list.selection = Selection::default();
        self.transcript = None;
    }

    fn refilter(&mut self, out: &mut Outbox) {
        self.list.selection = Selection::default();
        self.transcript = None;
        out.refresh(ScreenId::Conversations);
    }
}

impl Screen for ConversationsScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Conversations(self.filter.clone()));
        self.selection_moved(out);
    }

    fn concerns(&self, notice: &ChangeNotice) -> bool {
        conversation_change(notice)
    }

    fn status(&self, _ctx: &Context) -> String {
        let f = &self.filter;
        let mut parts = vec![format!("{} conversations", self.list.items.len())];
        parts.push(format!("status: {}", f.status.as_deref().unwrap_or("any")));
        parts.push(format!("mode: {}", f.mode.as_deref().unwrap_or("any")));
        parts.push(format!(
            "lang: {}",
            f.language.map(|l| l.code()).unwrap_or("any")
        ));
        parts.push(format!(
            "escalated: {}",
            match f.escalated {
                None => "any",
                Some(true) => "yes",
                Some(false) => "no",
            }
        ));
        if let Some(t) = &f.text {
            parts.push(format!("search: {t}"));
        }
        parts.join(" · ")
    }

    fn perform(&mut self, action: Action, _ctx: &Context, out: &mut Outbox) {
        match action {
            Action::CycleStatus => {
                self.filter.status = cycle(
                    &self.filter.status,
                    &["active", "escalated", "closed", "archived"],
                );
                self.refilter(out);
            }
            Action::CycleMode => {
                self.filter.mode = cycle(&self.filter.mode, &["AUTO", "RAG", "SUPPORT"]);
                self.refilter(out);
            }
            Action::CycleLanguage => {
                self.filter.language = match self.filter.language {
                    None => Some(Lang::Ar),
                    Some(Lang::Ar) => Some(Lang::Fr),
                    Some(Lang::Fr) => Some(Lang::En),
                    Some(Lang::En) => None,
                };
                self.refilter(out);
            }
            Action::CycleEscalated => {
                self.filter.escalated = match self.filter.escalated {
                    None => Some(true),
                    Some(true) => Some(false),
                    Some(false) => None,
                };
                self.refilter(out);
            }
            Action::Filter => {
                let current = self.filter.text.clone().unwrap_or_default();
                out.overlay(Overlay::prompt(
                    PromptPurpose::Filter(ScreenId::Conversations),
                    "Search messages, titles and ticket numbers",
                    &current,
                ));
            }
            Action::FocusNext => self.transcript_focus = !self.transcript_focus,
            Action::Open => {
                if let Some(c) = self.selected() {
                    match c.ticket_number.clone() {
                        Some(n) => out.open_ticket(n),
                        None => out.toast(
                            format!(
                                "no ticket: the assistant is answering; {} takes it over",
                                crate::action::key_label(
                                    Action::Take,
                                    crate::action::Scope::Conversations
                                )
                            ),
                            false,
                        ),
                    }
                }
            }
            // Esc clears the filters; the selection stays where it was.
            Action::Back if self.filter != Self::default_filter() => {
                self.filter = Self::default_filter();
                out.refresh(ScreenId::Conversations);
            }
            _ => {}
        }
    }

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.list.selection_mut())
    }

    fn scroll(&mut self, action: Action, page: usize, out: &mut Outbox) {
        if self.transcript_focus {
            self.transcript_scroll.apply(action, page);
        } else {
            let (sel, len) = self.list.selection_mut();
            if sel.apply(action, len, page) {
                self.selection_moved(out);
            }
        }
    }

    fn selection_moved(&self, out: &mut Outbox) {
        if let Some(c) = self.selected() {
            out.send(Request::Transcript(c.id));
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let [list_area, transcript_area] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(area);
        self.draw_list(frame, list_area, ctx, hit);
        self.draw_transcript(frame, transcript_area, ctx);
    }
}

impl ConversationsScreen {
    fn draw_list(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let theme = &ctx.theme;
        // The status column only where the person's name keeps room (an escalated
        // conversation shows its ticket anyway).
        let with_status = area.width >= 56;
        let fixed = 5 + 3 + 16 + 4 + if with_status { 11 } else { 0 };
        let name_width = usize::from(area.width.saturating_sub(2))
            .saturating_sub(fixed)
            .max(6);
        let mut header = vec!["age", "ln"];
        let mut widths = vec![Constraint::Length(5), Constraint::Length(3)];
        if with_status {
            header.push("status");
            widths.push(Constraint::Length(10));
        }
        header.extend(["person", "ticket"]);
        widths.extend([Constraint::Min(6), Constraint::Length(16)]);
        let spec = ListSpec {
            title: " Conversations ",
            empty: "no conversation matches the filters",
            header: &header,
            widths: &widths,
        };
        draw_list(frame, ctx, area, spec, &self.list, hit, |c| {
            let mut cells = vec![
                Cell::from(age(ctx.now, c.last_activity_at)).style(theme.fg(ThemeKey::BaseDim)),
                Cell::from(c.language.clone().unwrap_or_else(|| "?".into())),
            ];
            if with_status {
                let status_style = if c.status == "escalated" {
                    theme.fg(ThemeKey::SlaWarning)
                } else {
                    theme.fg(ThemeKey::BaseText)
                };
                cells.push(
                    Cell::from(ctx.label(LookupKind::ConversationStatus, &c.status))
                        .style(status_style),
                );
            }
            cells.push(Cell::from(bidi::line(&c.user_name, name_width, ctx.bidi)));
            cells.push(
                Cell::from(c.ticket_number.clone().unwrap_or_default()).style(
                    c.ticket_priority
                        .as_deref()
                        .map(|p| priority_style(theme, p))
                        .unwrap_or_default(),
                ),
            );
            cells
        });
    }

    fn draw_transcript(&self, frame: &mut Frame, area: Rect, ctx: &Context) {
        let selected = self.selected();
        let title = selected
            .map(|c| {
                format!(
                    " {} · {} · {} messages ",
                    bidi::line(&c.user_name, 24, ctx.bidi),
                    ctx.label(LookupKind::ConversationMode, &c.mode),
                    c.message_count
                )
            })
            .unwrap_or_else(|| " Transcript ".into());
        let width = usize::from(area.width.saturating_sub(2));
        let lines = match (&self.transcript, selected) {
            (Some((id, entries)), Some(c)) if *id == c.id => transcript_lines(ctx, entries, width),
            (_, Some(_)) => vec![Line::from(Span::styled(
                "loading…",
                ctx.theme.fg(ThemeKey::BaseDim),
            ))],
            _ => vec![],
        };
        self.transcript_scroll
            .draw(frame, area, ctx, lines, &title, self.transcript_focus);
    }
}
