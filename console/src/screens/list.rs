//! What the list screens (conversations, queue, knowledge, audit) share: the selection and
//! the drawing of a window of rows around it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::action::Action;
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::{block, header_style};

use super::{Context, loading_or_empty};

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

    /// Moves by an action over `len` rows; whether the selection changed.
    pub fn apply(&mut self, action: Action, len: usize, page: usize) -> bool {
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

    /// Keeps the selection on a row of a list now `len` long.
    pub fn clamp(&mut self, len: usize) {
        self.selected = self.selected.min(len.saturating_sub(1));
    }
}

/// The rows of a list screen as last read, the selected one, and whether any have arrived;
/// on the screens filtered here (queue, knowledge, audit) the rows that match the text filter.
pub struct Rows<T> {
    /// The rows shown, in order: those that match the filter.
    pub items: Vec<T>,
    /// The selected row.
    pub selection: Selection,
    /// The rows have arrived at least once (until then the list says "loading…").
    pub loaded: bool,
    /// Every row as read.
    all: Vec<T>,
    /// The text filter (`/`), lower-case.
    filter: Option<String>,
    /// The text a row is searched in (`None`: the list is filtered elsewhere).
    haystack: Option<fn(&T) -> String>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            items: Vec::new(),
            selection: Selection::default(),
            loaded: false,
            all: Vec::new(),
            filter: None,
            haystack: None,
        }
    }
}

impl<T: Clone> Rows<T> {
    /// Rows filtered here by text, searched in what `haystack` gives.
    pub fn searchable(haystack: fn(&T) -> String) -> Self {
        Rows {
            haystack: Some(haystack),
            ..Rows::default()
        }
    }

    /// The selected row.
    pub fn selected(&self) -> Option<&T> {
        self.items.get(self.selection.selected)
    }

    /// New rows; the selection keeps its place.
    pub fn replace(&mut self, items: Vec<T>) {
        self.all = items;
        self.refilter();
        self.selection.clamp(self.items.len());
        self.loaded = true;
    }

    /// New rows; the selection follows its row (known by `id`), as new rows arrive on top.
    pub fn replace_following<K: PartialEq>(&mut self, items: Vec<T>, id: impl Fn(&T) -> K) {
        let selected = self.selected().map(&id);
        self.all = items;
        self.refilter();
        if let Some(i) = selected.and_then(|s| self.items.iter().position(|t| id(t) == s)) {
            self.selection.selected = i;
        }
        self.selection.clamp(self.items.len());
        self.loaded = true;
    }

    /// The text filter: rows whose text contains it, case aside (empty: every row).
    pub fn set_filter(&mut self, text: &str) {
        let text = text.trim().to_lowercase();
        self.filter = (!text.is_empty()).then_some(text);
        self.refilter();
        self.selection = Selection::default();
    }

    /// Every row as read, whether the filter shows it or not.
    pub fn all(&self) -> &[T] {
        &self.all
    }

    /// The text filter in use.
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref()
    }

    fn refilter(&mut self) {
        self.items = match (&self.filter, self.haystack) {
            (Some(f), Some(hay)) => self
                .all
                .iter()
                .filter(|t| hay(t).to_lowercase().contains(f.as_str()))
                .cloned()
                .collect(),
            _ => self.all.clone(),
        };
    }

    /// The selection to move, and how many rows there are.
    pub fn selection_mut(&mut self) -> (&mut Selection, usize) {
        (&mut self.selection, self.items.len())
    }
}

/// What a list screen shows: its title, column headers and widths, and a placeholder.
pub struct ListSpec<'a> {
    /// The pane's title.
    pub title: &'a str,
    /// What an empty list says.
    pub empty: &'a str,
    /// Column headers.
    pub header: &'a [&'a str],
    /// Column widths.
    pub widths: &'a [Constraint],
}

/// A list screen: the visible window of rows around the selection, the selection highlighted,
/// and the rows' area recorded for mouse clicks.
pub fn draw_list<'a, T>(
    frame: &mut Frame,
    ctx: &Context,
    area: Rect,
    spec: ListSpec<'_>,
    rows: &Rows<T>,
    hit: &mut HitAreas,
    row: impl Fn(&T) -> Vec<Cell<'a>>,
) {
    let theme = &ctx.theme;
    if rows.items.is_empty() {
        frame.render_widget(
            Paragraph::new(loading_or_empty(rows.loaded, spec.empty))
                .style(theme.fg(ThemeKey::BaseDim))
                .block(block(theme, spec.title, true)),
            area,
        );
        hit.list = Rect::default();
        return;
    }
    let inner_height = area.height.saturating_sub(3) as usize;
    let offset = rows.selection.offset(inner_height);
    let shown: Vec<Row> = (offset..rows.items.len().min(offset + inner_height))
        .map(|i| {
            let r = Row::new(row(&rows.items[i]));
            if i == rows.selection.selected {
                r.style(theme.selection())
            } else {
                r
            }
        })
        .collect();
    frame.render_widget(
        Table::new(shown, spec.widths.to_vec())
            .header(Row::new(spec.header.to_vec()).style(header_style(theme)))
            .block(block(theme, spec.title, true)),
        area,
    );
    hit.list = Rect {
        x: area.x + 1,
        y: area.y + 2,
        width: area.width.saturating_sub(2),
        height: inner_height as u16,
    };
    hit.list_offset = offset;
}
