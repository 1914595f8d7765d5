//! The reply composer under a ticket: a public reply (the person sees it) or an internal note
//! (staff only), drawn so the two cannot be mistaken for each other: its own colour, title and
//! border, and the choice stays as made until changed (a note after a note stays a note).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use tui_textarea::TextArea;

use crate::action::{self, Action, Scope};
use crate::theme::ThemeKey;
use crate::widgets::draw_edit;

use super::Context;

/// The most characters a comment has (the engine's `CommentText` rule).
pub const MAX_CHARS: usize = 10_000;

/// An unsent reply or note; kept per ticket until sent, across reconnects.
#[derive(Default)]
pub struct Draft {
    /// The text.
    pub text: TextArea<'static>,
    /// An internal note rather than a public reply.
    pub internal: bool,
    /// Sent and waiting for the answer.
    pub sending: bool,
    /// The last thing sent on this ticket was an internal note: a public reply right after
    /// one is confirmed first.
    pub after_note: bool,
}

impl Draft {
    /// The text as typed.
    pub fn content(&self) -> String {
        self.text.lines().join("\n")
    }

    /// Anything typed.
    pub fn is_empty(&self) -> bool {
        self.text.lines().iter().all(|l| l.trim().is_empty())
    }

    /// Characters typed (newlines count one each, as the engine counts them).
    pub fn chars(&self) -> usize {
        let lines = self.text.lines();
        lines.iter().map(|l| l.chars().count()).sum::<usize>() + lines.len().saturating_sub(1)
    }

    /// Sent: a fresh text, in the same mode as what was sent.
    pub fn sent(&mut self) {
        let internal = self.internal;
        *self = Draft {
            internal,
            after_note: internal,
            ..Draft::default()
        };
    }

    /// Pasted text inserted at the cursor in one go; CRLF and CR line ends become LF, so
    /// every line is kept.
    pub fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(text);
    }
}

/// The composer: its border doubled and coloured for an internal note, bold while it has the
/// keyboard, with the characters used and the mode in its frame.
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
        (
            " INTERNAL NOTE · staff only, the person never sees it ",
            ThemeKey::CommentsInternal,
        )
    } else {
        (
            " PUBLIC REPLY · the person sees it ",
            ThemeKey::TranscriptStaff,
        )
    };
    let sending = draft.is_some_and(|d| d.sending);
    let used = draft.map_or(0, Draft::chars);
    let counter = Span::styled(
        format!(" {used} / {MAX_CHARS} "),
        if used > MAX_CHARS {
            theme.alarm(ThemeKey::BaseError)
        } else {
            theme.fg(ThemeKey::BaseDim)
        },
    );
    let composer_block = Block::new()
        .borders(Borders::ALL)
        .border_type(if internal {
            BorderType::Double
        } else {
            BorderType::Rounded
        })
        .border_style(if composing || internal {
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
            theme
                .fg(key)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ))
        .title_bottom(Line::from(counter).right_aligned());
    match draft {
        Some(d) => {
            let inner = composer_block.inner(area);
            frame.render_widget(composer_block, area);
            let placeholder = format!(
                "Write here… ({} sends, {} public/internal)",
                action::key_label(Action::Send, Scope::Composer),
                action::key_label(Action::ToggleInternal, Scope::Composer)
            );
            draw_edit(frame, inner, theme, &d.text, ctx.bidi, &placeholder);
        }
        None => frame.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "press {} to write a reply or an internal note",
                    action::key_label(Action::Compose, Scope::Ticket)
                ),
                theme.fg(ThemeKey::BaseDim),
            ))
            .block(composer_block),
            area,
        ),
    }
}
