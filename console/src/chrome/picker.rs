//! Overlays that choose from data the engine gives: a filterable picker (staff to assign to,
//! with their load; canned replies to insert or to manage) and a knowledge document read in
//! full before it is approved.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use uuid::Uuid;

use amal_engine::canned::CannedReply;
use amal_engine::knowledge::store::DocumentText;
use amal_engine::lang::Lang;
use amal_engine::presence::{OnShift, Presence};

use crate::bidi;
use crate::theme::{Theme, ThemeKey};
use crate::widgets::{block, centered};

use super::key_style;

/// What a picker picks.
#[derive(Debug, Clone, PartialEq)]
pub enum PickerPurpose {
    /// The staff member to give these tickets to (one, or the queue's marked ones).
    Assign(Vec<String>),
    /// A canned reply to insert into this ticket's draft.
    Canned(String),
    /// Canned replies to add, edit or remove (supervisors and admins).
    ManageCanned,
}

/// What was asked of the picked row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickKey {
    /// Enter: use (assign to, insert, edit).
    Use,
    /// Ctrl-N: a new one (managing canned replies).
    New,
    /// Ctrl-D: remove it (managing canned replies).
    Remove,
}

/// One row of a picker.
#[derive(Debug, Clone, PartialEq)]
pub struct PickRow {
    /// What the row shows.
    pub text: String,
    /// The value picked (an e-mail, an id).
    pub value: String,
    /// A second line, dimmed (a canned reply's text).
    pub detail: Option<String>,
    /// The text typing filters on, lower-case.
    pub search: String,
}

/// A list to pick from, filtered by what is typed.
#[derive(Debug, Clone)]
pub struct Picker {
    /// What it is for.
    pub purpose: PickerPurpose,
    /// The title.
    pub title: String,
    /// The column headings, if any.
    pub header: Option<String>,
    /// Every row.
    pub rows: Vec<PickRow>,
    /// What is typed.
    pub query: String,
    /// The highlighted row among those that match.
    pub selected: usize,
    /// The rows are being read.
    pub loading: bool,
}

impl Picker {
    /// An empty picker waiting for its rows.
    pub fn new(purpose: PickerPurpose, title: impl Into<String>) -> Self {
        Picker {
            purpose,
            title: title.into(),
            header: None,
            rows: Vec::new(),
            query: String::new(),
            selected: 0,
            loading: true,
        }
    }

    /// The staff to assign to, with their presence, open tickets held against their capacity,
    /// languages and tier; those online first (as the engine's board orders them).
    pub fn set_staff(&mut self, members: &[OnShift]) {
        self.header = Some(format!(
            "{:<22} {:<8} {:>5}  {:<8} {}",
            "name", "presence", "load", "langs", "tier"
        ));
        self.rows = members
            .iter()
            .map(|m| {
                let langs: Vec<&str> = m.profile.languages.iter().map(|l| l.code()).collect();
                let name = truncate(&m.name, 22);
                PickRow {
                    text: format!(
                        "{name:<22} {:<8} {:>2}/{:<2}  {:<8} {}",
                        presence_label(m.presence),
                        m.open_tickets,
                        m.profile.capacity,
                        langs.join(","),
                        m.profile.tier.as_str()
                    ),
                    value: m.profile.email.clone(),
                    detail: None,
                    search: format!("{} {}", m.name, m.profile.email).to_lowercase(),
                }
            })
            .collect();
        self.loading = false;
        self.clamp();
    }

    /// Canned replies, of `lang` only when given, with the start of their text beneath.
    pub fn set_canned(&mut self, replies: &[CannedReply], lang: Option<Lang>) {
        self.rows = replies
            .iter()
            .filter(|r| lang.is_none_or(|l| r.lang == l))
            .map(|r| PickRow {
                text: format!("{} · {}", r.lang.code(), r.title),
                value: r.id.to_string(),
                detail: Some(r.body.replace('\n', " ")),
                search: format!("{} {} {}", r.lang.code(), r.title, r.body).to_lowercase(),
            })
            .collect();
        self.loading = false;
        self.clamp();
    }

    /// The rows that match what is typed.
    pub fn visible(&self) -> Vec<&PickRow> {
        let q = self.query.trim().to_lowercase();
        self.rows
            .iter()
            .filter(|r| q.is_empty() || r.search.contains(&q))
            .collect()
    }

    fn clamp(&mut self) {
        self.selected = self.selected.min(self.visible().len().saturating_sub(1));
    }

    /// Takes a key: `Some` with what was picked closes the picker.
    pub fn key(&mut self, key: KeyEvent) -> Option<(PickKey, Option<String>)> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let picked = |s: &Self| s.visible().get(s.selected).map(|r| r.value.clone());
        match key.code {
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down => {
                self.selected = (self.selected + 1).min(self.visible().len().saturating_sub(1))
            }
            KeyCode::Enter => {
                let value = picked(self)?;
                return Some((PickKey::Use, Some(value)));
            }
            KeyCode::Char('n') if ctrl && self.purpose == PickerPurpose::ManageCanned => {
                return Some((PickKey::New, None));
            }
            KeyCode::Char('d') if ctrl && self.purpose == PickerPurpose::ManageCanned => {
                let value = picked(self)?;
                return Some((PickKey::Remove, Some(value)));
            }
            KeyCode::Backspace => {
                self.query.pop();
                self.selected = 0;
            }
            KeyCode::Char(c) if !ctrl => {
                self.query.push(c);
                self.selected = 0;
            }
            _ => {}
        }
        None
    }

    /// Draws the picker: the typed filter, the headings and a window of rows around the
    /// highlighted one.
    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, reorder: bool) {
        let width = area.width.saturating_sub(4).min(90);
        let visible = self.visible();
        let per_row: u16 = if visible.iter().any(|r| r.detail.is_some()) {
            2
        } else {
            1
        };
        // The box fits its rows (at least a few, so that it does not jump while filtering).
        let wanted = 3 + u16::from(self.header.is_some()) + per_row * (visible.len().max(4) as u16);
        let rect = centered(area, width, wanted.min(area.height.saturating_sub(4)));
        frame.render_widget(Clear, rect);
        let help = match self.purpose {
            PickerPurpose::ManageCanned => " Enter edit · Ctrl-N new · Ctrl-D remove · Esc ",
            _ => " Enter choose · Esc cancel ",
        };
        let b = block(theme, format!(" {} ", self.title), true)
            .title_bottom(Line::from(Span::styled(help, key_style(theme))));
        let inner = b.inner(rect);
        frame.render_widget(b, rect);
        let inner_width = usize::from(inner.width);
        let mut lines = vec![Line::from(vec![
            Span::styled("filter: ", theme.fg(ThemeKey::BaseDim)),
            Span::raw(bidi::line(
                &self.query,
                inner_width.saturating_sub(10),
                reorder,
            )),
            Span::styled("▏", theme.fg(ThemeKey::BaseBorderFocus)),
        ])];
        if let Some(h) = &self.header {
            lines.push(Line::from(Span::styled(
                format!(" {h}"),
                theme.fg(ThemeKey::BaseDim).bold(),
            )));
        }
        if self.loading {
            lines.push(Line::from(Span::styled(
                "loading…",
                theme.fg(ThemeKey::BaseDim),
            )));
        } else if visible.is_empty() {
            lines.push(Line::from(Span::styled(
                "nothing matches",
                theme.fg(ThemeKey::BaseDim),
            )));
        }
        let per_row = if visible.iter().any(|r| r.detail.is_some()) {
            2
        } else {
            1
        };
        let room = (usize::from(inner.height).saturating_sub(lines.len()) / per_row).max(1);
        let skip = self.selected.saturating_sub(room - 1);
        for (i, row) in visible.iter().enumerate().skip(skip).take(room) {
            let style = if i == self.selected {
                theme.selection()
            } else {
                theme.fg(ThemeKey::BaseText)
            };
            lines.push(Line::from(Span::styled(
                format!(
                    " {}",
                    bidi::line(&row.text, inner_width.saturating_sub(1), reorder)
                ),
                style,
            )));
            if let Some(d) = &row.detail {
                lines.push(Line::from(Span::styled(
                    format!(
                        "   {}",
                        bidi::line(d, inner_width.saturating_sub(3), reorder)
                    ),
                    theme.fg(ThemeKey::BaseDim),
                )));
            }
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn presence_label(p: Presence) -> &'static str {
    p.as_str()
}

/// At most `n` characters.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// A knowledge document read in full before it is approved or rejected.
#[derive(Debug, Clone)]
pub struct DocumentView {
    /// The document.
    pub doc: DocumentText,
    /// Lines scrolled past.
    pub scroll: usize,
    /// The furthest scroll the last frame allowed (the wrapped text's length less a page).
    pub max_scroll: std::cell::Cell<usize>,
}

/// What the reader of a document asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStep {
    /// Still reading.
    Stay,
    /// Closed.
    Close,
    /// Approve it (to be confirmed).
    Approve(Uuid),
    /// Reject it (a reason is asked).
    Reject(Uuid),
}

impl DocumentView {
    /// The document, from its start.
    pub fn new(doc: DocumentText) -> Self {
        DocumentView {
            doc,
            scroll: 0,
            max_scroll: std::cell::Cell::new(usize::MAX),
        }
    }

    /// Takes a key, as the key map binds it on the knowledge screen: scrolling, approve,
    /// reject, back.
    pub fn key(&mut self, key: KeyEvent) -> DocumentStep {
        use crate::action::{Action, Scope, action_for};
        match action_for(&key, &[Scope::Knowledge, Scope::List, Scope::Global]) {
            Some(Action::Back | Action::Quit) => return DocumentStep::Close,
            Some(Action::Approve) => return DocumentStep::Approve(self.doc.id),
            Some(Action::Reject) => return DocumentStep::Reject(self.doc.id),
            Some(Action::Down) => self.scroll += 1,
            Some(Action::Up) => self.scroll = self.scroll.saturating_sub(1),
            Some(Action::PageDown) => self.scroll += 10,
            Some(Action::PageUp) => self.scroll = self.scroll.saturating_sub(10),
            Some(Action::Top) => self.scroll = 0,
            Some(Action::Bottom) => self.scroll = self.max_scroll.get(),
            _ => {}
        }
        self.scroll = self.scroll.min(self.max_scroll.get());
        DocumentStep::Stay
    }

    /// Draws the document's text, wrapped, from the scrolled line, with where it is.
    pub fn draw(&self, frame: &mut Frame, area: Rect, theme: &Theme, reorder: bool) {
        let rect = centered(
            area,
            area.width.saturating_sub(4).min(100),
            area.height.saturating_sub(2),
        );
        frame.render_widget(Clear, rect);
        let inner_width = usize::from(rect.width.saturating_sub(2)).max(10);
        let mut lines: Vec<String> = Vec::new();
        for paragraph in self.doc.content.lines() {
            if paragraph.trim().is_empty() {
                lines.push(String::new());
            } else {
                lines.extend(bidi::wrap(paragraph, inner_width, reorder));
            }
        }
        let height = usize::from(rect.height.saturating_sub(2)).max(1);
        self.max_scroll.set(lines.len().saturating_sub(height));
        let top = self.scroll.min(self.max_scroll.get());
        let below = lines.len().saturating_sub(top + height);
        let title = format!(
            " {} · {} · {} · ↑{top} ↓{below} ",
            bidi::line(&self.doc.title, 40, reorder),
            self.doc.lang,
            self.doc.review_status
        );
        let b = block(theme, title, true).title_bottom(Line::from(Span::styled(
            " j/k scroll · a approve · x reject · Esc close ",
            key_style(theme),
        )));
        let shown: Vec<Line> = lines
            .into_iter()
            .skip(top)
            .take(height)
            .map(Line::from)
            .collect();
        frame.render_widget(Paragraph::new(shown).block(b), rect);
    }
}
