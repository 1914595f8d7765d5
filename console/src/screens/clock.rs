//! A ticket's SLA clocks as the queue and the ticket screen show them: read from the database
//! now and then, counted on locally every second in between, so a countdown moves without a
//! query.

use chrono::{DateTime, Utc};
use ratatui::text::Span;

use amal_engine::sla::{self, SlaState};
use amal_engine::tickets::Ticket;

use crate::theme::ThemeKey;

use super::Context;

/// A countdown: `14m05s`, `2h10m`, `3d04h`; negative once late.
pub fn countdown(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.abs();
    let body = if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600)
    };
    format!("{sign}{body}")
}

/// Which of a ticket's two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Until the first response.
    FirstResponse,
    /// Until the resolution.
    Resolution,
}

/// One clock of a ticket as it was read.
struct Reading {
    remaining: Option<i64>,
    target: Option<i64>,
    state: SlaState,
}

fn reading(t: &Ticket, target: Target) -> Reading {
    let c = &t.sla;
    match target {
        Target::FirstResponse => Reading {
            remaining: c.first_response_remaining_seconds,
            target: c.first_response_target_seconds,
            state: c.first_response_state.0,
        },
        Target::Resolution => Reading {
            remaining: c.resolution_remaining_seconds,
            target: c.resolution_target_seconds,
            state: c.resolution_state.0,
        },
    }
}

/// Working seconds left on a clock now, counted locally from the last read.
fn remaining_now(
    now: DateTime<Utc>,
    remaining: Option<i64>,
    paused: bool,
    read_at: DateTime<Utc>,
) -> Option<i64> {
    let elapsed = (now - read_at).num_seconds().max(0);
    remaining.map(|r| if paused { r } else { r - elapsed })
}

/// A clock's SLA state now: the state read, worsened by the local countdown.
fn state_now(now: DateTime<Utc>, t: &Ticket, r: &Reading, read_at: DateTime<Utc>) -> SlaState {
    match (
        remaining_now(now, r.remaining, t.sla.sla_paused, read_at),
        r.target,
    ) {
        (Some(left), Some(target)) if target > 0 => {
            r.state.max(sla::state_for_remaining(left, target))
        }
        _ => r.state,
    }
}

/// Whether a ticket has missed a target, as read or as counted since.
pub fn breached(now: DateTime<Utc>, t: &Ticket, read_at: DateTime<Utc>) -> bool {
    t.sla.sla_state.0 == SlaState::Breached
        || [Target::FirstResponse, Target::Resolution]
            .iter()
            .any(|target| state_now(now, t, &reading(t, *target), read_at) == SlaState::Breached)
}

/// One clock of a ticket as a cell: the live countdown coloured by state, `!` when breached,
/// `‖` while paused, `met` once done.
pub fn clock_span<'a>(
    ctx: &Context,
    t: &Ticket,
    target: Target,
    read_at: DateTime<Utc>,
) -> Span<'a> {
    let theme = &ctx.theme;
    let paused = t.sla.sla_paused;
    let r = reading(t, target);
    let Some(left) = remaining_now(ctx.now, r.remaining, paused, read_at) else {
        let done = match target {
            Target::FirstResponse => t.first_response_at.is_some(),
            Target::Resolution => t.resolved_at.is_some(),
        };
        return if r.state == SlaState::Breached {
            Span::styled("! missed", theme.alarm(ThemeKey::SlaBreached))
        } else if done {
            Span::styled("met", theme.fg(ThemeKey::SlaOk))
        } else {
            Span::styled("—", theme.fg(ThemeKey::BaseDim))
        };
    };
    let state = state_now(ctx.now, t, &r, read_at);
    let text = countdown(left);
    if paused {
        return Span::styled(format!("‖{text}"), theme.fg(ThemeKey::SlaPaused));
    }
    if state == SlaState::Breached {
        return Span::styled(format!("!{text}"), theme.alarm(ThemeKey::SlaBreached));
    }
    Span::styled(text, theme.fg(ThemeKey::sla(state)))
}
