//! A conversation's transcript as lines, as the conversations screen and the ticket screen
//! show it.

use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use amal_engine::conversations::TranscriptEntry;
use amal_engine::lang::Lang;

use crate::bidi;
use crate::theme::ThemeKey;
use crate::widgets::age;

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

/// The last lines that fit a pane `height` rows high (borders included): the newest
/// messages are at the bottom, and shown.
pub fn newest<'a>(lines: Vec<Line<'a>>, height: u16) -> Vec<Line<'a>> {
    let visible = usize::from(height.saturating_sub(2));
    let skip = lines.len().saturating_sub(visible);
    lines.into_iter().skip(skip).collect()
}
