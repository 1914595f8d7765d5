//! What surrounds the screens: the header with the tabs, the connection banner, the status
//! line with its passing messages, the footer of keys, and the overlays above them all
//! ([`overlay`]).

pub mod overlay;
pub mod picker;

use amal_engine::tickets::Alerts;
use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use crate::action;
use crate::data::Connection;
use crate::screens::{Context, ScreenId};
use crate::theme::{Theme, ThemeKey};
use crate::ui::HitAreas;

/// A message at the bottom of the screen for a few seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// The text.
    pub text: String,
    /// An error (shown in the error colour).
    pub error: bool,
    /// When it goes.
    pub until: DateTime<Utc>,
}

impl Toast {
    /// A message shown from `now`; errors stay longer, to be read.
    pub fn new(text: String, error: bool, now: DateTime<Utc>) -> Self {
        Toast {
            text,
            error,
            until: now + chrono::Duration::seconds(if error { 8 } else { 4 }),
        }
    }
}

/// A new crisis ticket or breach, above the screen until dismissed or replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertBanner {
    /// What happened.
    pub text: String,
    /// When it was raised.
    pub since: DateTime<Utc>,
}

/// The header's counts as drawn: `crisis N · breached M` (an empty text before the first
/// read).
pub fn alert_counts(alerts: Option<&Alerts>) -> String {
    alerts
        .map(|a| format!(" crisis {} · breached {} ", a.unassigned_crisis, a.breached))
        .unwrap_or_default()
}

/// The top bar: a tab per screen, the current one reversed (short titles when the width is
/// short), the counts of crisis tickets nobody holds and of breaches (always), and who is
/// signed in where there is room. The tabs' area goes into `hit` for the mouse.
pub fn draw_header(
    frame: &mut Frame,
    area: Rect,
    ctx: &Context,
    current: ScreenId,
    alerts: Option<&Alerts>,
    hit: &mut HitAreas,
) {
    let theme = &ctx.theme;
    frame.render_widget(
        Block::new().style(Style::new().bg(theme.color(ThemeKey::HeaderBackground))),
        area,
    );
    let counts = alert_counts(alerts);
    let counts_width = counts.chars().count() as u16;
    let compact = if tabs_width(TabWidth::Full, current) + counts_width <= area.width {
        TabWidth::Full
    } else if tabs_width(TabWidth::Short, current) + counts_width <= area.width {
        TabWidth::Short
    } else {
        TabWidth::Numbers
    };
    hit.tabs_compact = compact;
    let mut spans = Vec::new();
    for (i, screen) in ScreenId::ALL.iter().enumerate() {
        let style = if *screen == current {
            theme
                .fg(ThemeKey::TabsActive)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            theme.fg(ThemeKey::TabsInactive)
        };
        spans.push(Span::styled(tab_label(i, *screen, compact, current), style));
        spans.push(Span::raw(" "));
    }
    let tabs_width = tabs_width(compact, current);
    hit.tabs = Rect {
        width: tabs_width.min(area.width),
        ..area
    };
    let alarm = alerts.is_some_and(|a| a.unassigned_crisis > 0 || a.breached > 0);
    let counts_style = if alarm {
        theme.alarm(ThemeKey::BaseError)
    } else {
        theme.fg(ThemeKey::HeaderText)
    };
    let who = ctx
        .session
        .as_ref()
        .map(|s| format!("{} · {} ", s.actor.email, s.actor.role.as_str()))
        .unwrap_or_default();
    // The tabs and the counts come first; who is signed in shows only where there is room.
    let who_width = who.chars().count() as u16;
    let who_width = if tabs_width + counts_width + who_width <= area.width {
        who_width
    } else {
        0
    };
    let [left, middle, right] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(counts_width),
        Constraint::Length(who_width),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(Span::styled(counts, counts_style)), middle);
    frame.render_widget(
        Paragraph::new(who)
            .alignment(Alignment::Right)
            .style(theme.fg(ThemeKey::HeaderText)),
        right,
    );
}

/// How much of each tab's title the header has room for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TabWidth {
    /// ` 1 Conversations `.
    #[default]
    Full,
    /// ` 1 Conv `.
    Short,
    /// ` 1 `, the current tab with its short title (eight tabs and the counts at 80 columns).
    Numbers,
}

/// A tab as drawn: ` n Title `, with the short title, or the number alone.
fn tab_label(index: usize, screen: ScreenId, width: TabWidth, current: ScreenId) -> String {
    let title = match width {
        TabWidth::Full => screen.title(),
        TabWidth::Numbers if screen != current => return format!(" {} ", index + 1),
        TabWidth::Short | TabWidth::Numbers => screen.short_title(),
    };
    format!(" {} {title} ", index + 1)
}

/// The tab bar's width, one space after each tab.
fn tabs_width(width: TabWidth, current: ScreenId) -> u16 {
    ScreenId::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| tab_label(i, *s, width, current).chars().count() as u16 + 1)
        .sum()
}

/// The tab under column `x` of the tab bar that starts at column `left`, one space between
/// tabs, drawn at `width` with `current` the current screen.
pub fn tab_at(mut left: u16, x: u16, width: TabWidth, current: ScreenId) -> Option<ScreenId> {
    for (i, screen) in ScreenId::ALL.iter().enumerate() {
        let width = tab_label(i, *screen, width, current).chars().count() as u16;
        if x >= left && x < left + width {
            return Some(*screen);
        }
        left += width + 1;
    }
    None
}

/// The banner: while the live connection is lost, that; else a new crisis ticket or breach.
pub fn draw_banner(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    connection: Option<Connection>,
    alert: Option<&AlertBanner>,
) {
    let text = match (connection, alert) {
        (Some(Connection::Lost { retry_in_ms }), _) => Some(format!(
            " Connection to the database lost; reconnecting (next try in {:.1} s). Drafts are kept. ",
            retry_in_ms as f64 / 1000.0
        )),
        (_, Some(a)) => Some(format!(
            " ⚠ {} · {} dismisses ",
            a.text,
            action::key_label(action::Action::Back, action::Scope::Global)
        )),
        _ => None,
    };
    if let Some(text) = text {
        frame.render_widget(
            Paragraph::new(text).style(
                Style::new()
                    .bg(theme.color(ThemeKey::BannerBackground))
                    .fg(theme.color(ThemeKey::BannerText))
                    .add_modifier(Modifier::BOLD),
            ),
            area,
        );
    }
}

/// The prompt of a ticket offered to the signed-in member: which ticket, the time left to
/// answer, and the keys (from the key map).
pub fn draw_offer(frame: &mut Frame, area: Rect, theme: &Theme, number: &str, seconds_left: i64) {
    use ratatui::widgets::{Clear, Wrap};
    let key = |a| action::key_label(a, action::Scope::Offer);
    let lines = vec![
        Line::from(vec![
            Span::styled(
                format!("{number} is offered to you"),
                theme.fg(ThemeKey::BaseTitle).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" · {seconds_left} s left to answer")),
        ]),
        Line::from("Only you are asked until then; then the next member is."),
        Line::from(vec![
            Span::styled(key(action::Action::AcceptOffer), key_style(theme)),
            Span::raw(" accept   "),
            Span::styled(key(action::Action::DeclineOffer), key_style(theme)),
            Span::raw(" decline   "),
            Span::styled(key(action::Action::Back), key_style(theme)),
            Span::raw(" hide"),
        ]),
    ];
    let rect = crate::widgets::centered(area, 64, 5);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(crate::widgets::block(theme, " Ticket offered ", true)),
        rect,
    );
}

/// The status line: the passing message if there is one, else the last read failure while
/// it lasts, else the screen's own status.
pub fn draw_status(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    toast: Option<&Toast>,
    last_error: Option<&str>,
    status: impl FnOnce() -> String,
) {
    let line = match toast {
        Some(t) => Line::from(Span::styled(
            format!(" {}", t.text),
            if t.error {
                theme.alarm(ThemeKey::BaseError)
            } else {
                theme.fg(ThemeKey::BaseSuccess)
            },
        )),
        None => match last_error {
            Some(e) => Line::from(Span::styled(
                format!(" last read failed: {e}"),
                theme.fg(ThemeKey::BaseError),
            )),
            None => Line::from(Span::styled(
                format!(" {}", status()),
                theme.fg(ThemeKey::BaseDim),
            )),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// The footer: the screen's marked keys, or the composer's while it has the keyboard (there
/// the key map's letters are text).
pub fn draw_footer(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    screen: ScreenId,
    composing: bool,
) {
    let entries: Vec<(String, &str)> = if composing {
        action::entries(&[action::Scope::Composer], true)
    } else {
        action::entries(&screen.scopes(), true)
    };
    let spans: Vec<Span> = entries
        .into_iter()
        .flat_map(|(key, help)| {
            [
                Span::styled(format!(" {key}"), key_style(theme)),
                Span::styled(format!(" {help} "), theme.fg(ThemeKey::FooterText)),
            ]
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A key as the footer, the help and the palette show it.
pub fn key_style(theme: &Theme) -> Style {
    theme.fg(ThemeKey::FooterKey).add_modifier(Modifier::BOLD)
}
