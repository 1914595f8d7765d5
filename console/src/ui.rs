//! Drawing the whole console: the chrome around the current screen, and the overlay above.
//! Everything is drawn from a shared reference and never waits for anything: what it shows is
//! what the last data events brought, with countdowns moved to the context's clock.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::Block;

use crate::app::App;
use crate::chrome;
use crate::data::Connection;
use crate::theme::ThemeKey;

/// Where things were drawn, for mouse clicks (set while drawing).
#[derive(Debug, Clone, Copy, Default)]
pub struct HitAreas {
    /// The tab bar.
    pub tabs: Rect,
    /// The current list's rows (without its header).
    pub list: Rect,
    /// The first row index shown in the list.
    pub list_offset: usize,
    /// How the tabs were drawn (full, short or numbered titles).
    pub tabs_compact: chrome::TabWidth,
}

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let ctx = &app.ctx;
    let theme = &ctx.theme;
    frame.render_widget(
        Block::new().style(
            Style::new()
                .bg(theme.color(ThemeKey::BaseBackground))
                .fg(theme.color(ThemeKey::BaseText)),
        ),
        area,
    );
    if let Some(form) = &app.sign_in {
        form.draw(frame, area, theme);
        return;
    }
    let banner = matches!(app.connection, Some(Connection::Lost { .. })) || app.alert.is_some();
    let [header, banner_area, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner)),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut hit = HitAreas::default();
    chrome::draw_header(
        frame,
        header,
        ctx,
        app.screen,
        app.alerts.as_ref(),
        &mut hit,
    );
    chrome::draw_banner(
        frame,
        banner_area,
        theme,
        app.connection,
        app.alert.as_ref(),
    );
    let screen = app.current();
    screen.draw(frame, body, ctx, &mut hit);
    chrome::draw_status(
        frame,
        status,
        theme,
        app.toast.as_ref(),
        app.last_error.as_deref(),
        || screen.status(ctx),
    );
    chrome::draw_footer(frame, footer, theme, app.screen, app.composing());
    app.hit.set(hit);
    if app.overlay.is_none()
        && let Some((number, until)) = app.offer_shown()
    {
        let left = (until - ctx.now).num_seconds().max(0);
        chrome::draw_offer(frame, area, theme, number, left);
    }
    if let Some(overlay) = &app.overlay {
        overlay.draw(frame, area, theme, app.screen, ctx.bidi);
    }
}
