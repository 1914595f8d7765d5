//! A conversation's transcript as lines, as the conversations screen and the ticket screen
//! show it.

use std::cell::Cell;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use amal_engine::conversations::TranscriptEntry;
use amal_engine::lang::Lang;

use crate::action::Action;
use crate::bidi;
use crate::theme::ThemeKey;
use crate::widgets::{age, block};

use super::Context;

/// A transcript as lines: each message under a header with its role and age; each assistant
/// reply followed by its decision, reason, confidence and cited sources.
pub fn transcript_lines<'a>(
    ctx: &Context,
    entries: &[TranscriptEntry],
    width: usize,
) -> Vec<Line<'a>> {
    let theme = &ctx.theme;
    let mut lines = Vec::new();
    for e in entries {
        let m = &e.message;
        let (who, key) = match m.role.as_str() {
            "user" => ("person", ThemeKey::TranscriptUser),
            "assistant" => ("assistant", ThemeKey::TranscriptAssistant),
            "staff" => ("staff", ThemeKey::TranscriptStaff),
            other => (other, ThemeKey::TranscriptSystem),
        };
        lines.push(Line::from(Span::styled(
            format!("{who} · {} ago", age(ctx.now, m.created_at)),
            theme.fg(key).add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(&m.content, width.saturating_sub(1).max(10), ctx.bidi) {
            lines.push(Line::from(Span::styled(format!(" {l}"), theme.fg(key))));
        }
        if let Some(d) = &e.decision {
            let reason = match ctx.lang() {
                Lang::Ar => d.reason_ar.as_deref(),
                Lang::Fr => d.reason_fr.as_deref(),
                Lang::En => d.reason_en.as_deref(),
            }
            .or(d.reason_en.as_deref())
            .unwrap_or("");
            let head = format!(
                " ↳ {} · {} · confidence {:.2}",
                d.decision.to_uppercase(),
                d.reason_code.as_deref().unwrap_or("-"),
                d.confidence
            );
            lines.push(Line::from(Span::styled(
                head,
                theme
                    .fg(ThemeKey::TranscriptDecision)
                    .add_modifier(Modifier::ITALIC),
            )));
            if !reason.is_empty() {
                for l in bidi::wrap(reason, width.saturating_sub(3).max(10), ctx.bidi) {
                    lines.push(Line::from(Span::styled(
                        format!("   {l}"),
                        theme.fg(ThemeKey::TranscriptDecision),
                    )));
                }
            }
        }
        for c in &e.citations {
            lines.push(Line::from(Span::styled(
                format!(
                    "   ▸ {}",
                    bidi::line(&c.title, width.saturating_sub(5), ctx.bidi)
                ),
                theme.fg(ThemeKey::TranscriptCitation),
            )));
        }
    }
    lines
}

/// A pane of lines read from the newest (at the bottom) back: how far it is scrolled back,
/// and how far it can be (known from the last frame, so that scrolling stops at the oldest
/// line instead of counting on past it).
#[derive(Debug, Default)]
pub struct ScrollBack {
    /// Lines scrolled back from the newest.
    pub back: usize,
    /// The most lines it could be scrolled back when last drawn.
    max: Cell<usize>,
}

impl ScrollBack {
    /// Up and page up go back to older lines, down and page down towards the newest; the
    /// ends jump.
    pub fn apply(&mut self, action: Action, page: usize) {
        let max = self.max.get();
        let page = page.max(1);
        self.back = match action {
            Action::Up => self.back + 1,
            Action::Down => self.back.saturating_sub(1),
            Action::PageUp => self.back + page,
            Action::PageDown => self.back.saturating_sub(page),
            Action::Top => max,
            Action::Bottom => 0,
            _ => self.back,
        }
        .min(max);
    }

    /// Draws `lines` in a pane (borders included) scrolled back as asked; the title says how
    /// many lines are above and below.
    pub fn draw<'a>(
        &self,
        frame: &mut Frame,
        area: Rect,
        ctx: &Context,
        lines: Vec<Line<'a>>,
        title: &str,
        focused: bool,
    ) {
        let visible = usize::from(area.height.saturating_sub(2));
        let max = lines.len().saturating_sub(visible);
        self.max.set(max);
        let back = self.back.min(max);
        let skip = max - back;
        let mut title = title.to_string();
        if skip > 0 || back > 0 {
            title.push_str(&format!("↑{skip} ↓{back} "));
        }
        frame.render_widget(
            Paragraph::new(
                lines
                    .into_iter()
                    .skip(skip)
                    .take(visible)
                    .collect::<Vec<_>>(),
            )
            .block(block(&ctx.theme, title, focused)),
            area,
        );
    }
}
