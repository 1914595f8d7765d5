//! Small drawing pieces the screens and the chrome share.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use tui_textarea::TextArea;

use crate::bidi;
use crate::theme::{Theme, ThemeKey};

/// A pane: rounded borders, the focused one in the focus colour, a bold title.
pub fn block<'a>(theme: &Theme, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(theme.fg(if focused {
            ThemeKey::BaseBorderFocus
        } else {
            ThemeKey::BaseBorder
        }))
        .title(
            title
                .into()
                .style(theme.fg(ThemeKey::BaseTitle).add_modifier(Modifier::BOLD)),
        )
}

/// A box of at most `width` by `height` in the middle of `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// "3s", "12m", "5h", "2d": how long ago.
pub fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let s = (now - at).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A ticket priority's style; urgent stays bold without colours.
pub fn priority_style(theme: &Theme, priority: &str) -> Style {
    match priority {
        "urgent" => theme.alarm(ThemeKey::PriorityUrgent),
        "high" => theme.fg(ThemeKey::PriorityHigh),
        "medium" => theme.fg(ThemeKey::PriorityMedium),
        _ => theme.fg(ThemeKey::PriorityLow),
    }
}

/// Column headers' style.
pub fn header_style(theme: &Theme) -> Style {
    theme.fg(ThemeKey::BaseDim).add_modifier(Modifier::BOLD)
}

/// A text being typed (a draft, a prompt's answer), drawn in reading order and soft-wrapped
/// (see [`crate::bidi::edit_view`]) with its cursor as a reversed cell; the rows scroll so the
/// cursor stays in view. `placeholder` shows, dimmed, while there is no text.
pub fn draw_edit(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    text: &TextArea<'_>,
    reorder: bool,
    placeholder: &str,
) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let lines = text.lines();
    let empty = lines.iter().all(|l| l.is_empty());
    let (rows, (row, col)) =
        bidi::edit_view(lines, text.cursor(), usize::from(area.width), reorder);
    let height = usize::from(area.height);
    let skip = (row + 1).saturating_sub(height);
    let shown: Vec<Line> = if empty {
        vec![Line::from(Span::styled(
            placeholder.to_string(),
            theme.fg(ThemeKey::BaseDim),
        ))]
    } else {
        rows.into_iter()
            .skip(skip)
            .take(height)
            .map(Line::from)
            .collect()
    };
    frame.render_widget(Paragraph::new(shown), area);
    let at = Position::new(area.x + col as u16, area.y + (row - skip) as u16);
    if let Some(cell) = frame.buffer_mut().cell_mut(at) {
        cell.set_style(Style::new().add_modifier(Modifier::REVERSED));
    }
}
