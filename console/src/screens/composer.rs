//! The reply composer under a ticket: a public reply (the person sees it) or an internal note
//! (staff only), drawn so the two cannot be mistaken for each other.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use tui_textarea::TextArea;

use crate::theme::ThemeKey;

use super::Context;

/// An unsent reply or note; kept per ticket until sent, across reconnects.
pub struct Draft {
    /// The text.
    pub text: TextArea<'static>,
    /// An internal note rather than a public reply.
    pub internal: bool,
    /// Sent and waiting for the answer.
    pub sending: bool,
}

impl Default for Draft {
    fn default() -> Self {
        let mut text = TextArea::default();
        text.set_placeholder_text("Write a reply… (Ctrl-S sends, Ctrl-T public/internal)");
        Draft {
            text,
            internal: false,
            sending: false,
        }
    }
}

impl Draft {
    /// The text as typed.
    pub fn content(&self) -> String {
        self.text.lines().join("\n")
    }

    /// Anything typed.
    pub fn is_empty(&self) -> bool {
        self.content().trim().is_empty()
    }
}

/// The composer: its border doubled and coloured for an internal note, bold while it has the
/// keyboard.
pub fn draw_composer(
    frame: &mut Frame,
    area: Rect,
    ctx: &Context,
    draft: Option<&Draft>,
    composing: bool,
) {
    let theme = &ctx.theme;
    let internal = draft.is_some_and(|d| d.internal);
    let (title, key) = if internal {
        (" INTERNAL NOTE (staff only) ", ThemeKey::CommentsInternal)
    } else {
        (
            " Public reply (the person sees it) ",
            ThemeKey::TranscriptStaff,
        )
    };
    let sending = draft.is_some_and(|d| d.sending);
    let composer_block = Block::new()
        .borders(Borders::ALL)
        .border_type(if internal {
            BorderType::Double
        } else {
            BorderType::Rounded
        })
        .border_style(if composing {
            theme.fg(key).add_modifier(Modifier::BOLD)
        } else {
            theme.fg(ThemeKey::BaseBorder)
        })
        .title(Span::styled(
            if sending {
                format!("{title}· sending… ")
            } else {
                title.to_string()
            },
            theme.fg(key).add_modifier(Modifier::BOLD),
        ));
    match draft {
        Some(d) => {
            let inner = composer_block.inner(area);
            frame.render_widget(composer_block, area);
            frame.render_widget(&d.text, inner);
        }
        None => frame.render_widget(
            Paragraph::new(Span::styled(
                "press i to write a reply or an internal note",
                theme.fg(ThemeKey::BaseDim),
            ))
            .block(composer_block),
            area,
        ),
    }
}
