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

    /// After a list is read again: the selection follows its row (found by `position`), as new
    /// rows arrive on top, and stays on the list.
    pub fn follow(&mut self, position: Option<usize>, len: usize) {
        if let Some(i) = position {
            self.selected = i;
        }
        self.clamp(len);
    }
}

/// What a list screen shows: its title, column headers and widths, and a placeholder.
pub struct ListSpec<'a> {
    /// The pane's title.
    pub title: &'a str,
    /// The data has arrived once (else "loading…" rather than `empty`).
    pub loaded: bool,
    /// The selection.
    pub selection: Selection,
    /// How many rows.
    pub len: usize,
    /// What an empty list says.
    pub empty: &'a str,
    /// Column headers.
    pub header: &'a [&'a str],
    /// Column widths.
    pub widths: &'a [Constraint],
}

/// A list screen: the visible window of rows around the selection, the selection highlighted,
/// and the rows' area recorded for mouse clicks.
pub fn draw_list<'a>(
    frame: &mut Frame,
    ctx: &Context,
    area: Rect,
    spec: ListSpec<'_>,
    hit: &mut HitAreas,
    row: impl Fn(usize) -> Vec<Cell<'a>>,
) {
    let theme = &ctx.theme;
    if spec.len == 0 {
        frame.render_widget(
            Paragraph::new(loading_or_empty(spec.loaded, spec.empty))
                .style(theme.fg(ThemeKey::BaseDim))
                .block(block(theme, spec.title, true)),
            area,
        );
        hit.list = Rect::default();
        return;
    }
    let inner_height = area.height.saturating_sub(3) as usize;
    let offset = spec.selection.offset(inner_height);
    let rows: Vec<Row> = (offset..spec.len.min(offset + inner_height))
        .map(|i| {
            let r = Row::new(row(i));
            if i == spec.selection.selected {
                r.style(theme.selection())
            } else {
                r
            }
        })
        .collect();
    frame.render_widget(
        Table::new(rows, spec.widths.to_vec())
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
