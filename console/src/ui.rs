//! Drawing. Every function takes the state by shared reference and never waits for anything;
//! what it shows is what the last data events brought, with countdowns moved to `app.now`.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, BorderType, Borders, Cell, Clear, Gauge, Paragraph, Row,
    Sparkline, Table, Wrap,
};

use amal_engine::lookups::LookupKind;
use amal_engine::sla::SlaState;
use amal_engine::tickets::{Queue, Ticket};

use crate::action::{self, Scope};
use crate::app::{App, HitAreas, Overlay, RANGES_DAYS, ScreenId};
use crate::bidi;
use crate::data::Connection;

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    frame.render_widget(
        Block::new().style(
            Style::new()
                .bg(app.theme.color("base.background"))
                .fg(app.theme.color("base.text")),
        ),
        area,
    );
    if let Some(form) = &app.sign_in {
        draw_sign_in(frame, app, form, area);
        return;
    }
    let banner = matches!(app.connection, Some(Connection::Lost { .. }));
    let [header, banner_area, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner)),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut hit = HitAreas::default();
    draw_header(frame, app, header, &mut hit);
    if let Some(Connection::Lost { retry_in_ms }) = app.connection {
        let text = format!(
            " Connection to the database lost; reconnecting (next try in {:.1} s). Drafts are kept. ",
            retry_in_ms as f64 / 1000.0
        );
        frame.render_widget(
            Paragraph::new(text).style(
                Style::new()
                    .bg(app.theme.color("banner.background"))
                    .fg(app.theme.color("banner.text"))
                    .add_modifier(Modifier::BOLD),
            ),
            banner_area,
        );
    }
    match app.screen {
        ScreenId::Conversations => draw_conversations(frame, app, body, &mut hit),
        ScreenId::Queue => draw_queue(frame, app, body, &mut hit),
        ScreenId::Ticket => draw_ticket(frame, app, body),
        ScreenId::Statistics => draw_statistics(frame, app, body),
        ScreenId::Knowledge => draw_knowledge(frame, app, body, &mut hit),
        ScreenId::Audit => draw_audit(frame, app, body, &mut hit),
    }
    draw_status(frame, app, status);
    draw_footer(frame, app, footer);
    app.hit.set(hit);
    if let Some(overlay) = &app.overlay {
        draw_overlay(frame, app, overlay, area);
    }
}

fn block<'a>(app: &App, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(app.theme.fg(if focused {
            "base.border_focus"
        } else {
            "base.border"
        }))
        .title(
            title
                .into()
                .style(app.theme.fg("base.title").add_modifier(Modifier::BOLD)),
        )
}

fn draw_sign_in(frame: &mut Frame, app: &App, form: &crate::app::SignInForm, area: Rect) {
    let width = area.width.min(60);
    let height = 12u16.min(area.height);
    let rect = centered(area, width, height);
    let field = |label: &str, value: String, focused: bool| {
        let style = if focused {
            app.theme
                .fg("base.border_focus")
                .add_modifier(Modifier::BOLD)
        } else {
            app.theme.fg("base.dim")
        };
        Line::from(vec![
            Span::styled(format!("{label:>10} "), style),
            Span::styled(value, app.theme.fg("base.text")),
            Span::styled(if focused { "▏" } else { "" }, style),
        ])
    };
    let mut lines = vec![
        Line::from(Span::styled(
            "Sign in with your staff account",
            app.theme.fg("base.dim"),
        )),
        Line::default(),
        field("E-mail", form.email.clone(), !form.on_password),
        field(
            "Password",
            "•".repeat(form.password.chars().count()),
            form.on_password,
        ),
        Line::default(),
    ];
    if form.busy {
        lines.push(Line::from(Span::styled(
            "Signing in…",
            app.theme.fg("base.dim"),
        )));
    } else if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(
            e.clone(),
            app.theme.alarm("base.error"),
        )));
    } else {
        lines.push(Line::from(Span::styled(
            "Enter: next / sign in   Tab: switch field   Esc: quit",
            app.theme.fg("footer.text"),
        )));
    }
    if let Some(hint) = &form.hint {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            hint.clone(),
            app.theme.fg("base.dim"),
        )));
    }
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Amal · operator console ", true)),
        rect,
    );
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect, hit: &mut HitAreas) {
    frame.render_widget(
        Block::new().style(Style::new().bg(app.theme.color("header.background"))),
        area,
    );
    let mut spans = Vec::new();
    for (i, screen) in ScreenId::ALL.iter().enumerate() {
        let style = if *screen == app.screen {
            app.theme
                .fg("tabs.active")
                .add_modifier(Modifier::BOLD | Modifier::REVERSED)
        } else {
            app.theme.fg("tabs.inactive")
        };
        spans.push(Span::styled(
            format!(" {} {} ", i + 1, screen.title()),
            style,
        ));
        spans.push(Span::raw(" "));
    }
    let tabs_width: u16 = spans.iter().map(|s| s.width() as u16).sum();
    hit.tabs = Rect {
        width: tabs_width.min(area.width),
        ..area
    };
    let who = app
        .session
        .as_ref()
        .map(|s| format!("{} · {} ", s.actor.email, s.actor.role.as_str()))
        .unwrap_or_default();
    // The tabs come first; who is signed in shows only where there is room.
    let who_width = who.chars().count() as u16;
    let who_width = if tabs_width + who_width <= area.width {
        who_width
    } else {
        0
    };
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(who_width)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(
        Paragraph::new(who)
            .alignment(Alignment::Right)
            .style(app.theme.fg("header.text")),
        right,
    );
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let line = match &app.toast {
        Some(t) => Line::from(Span::styled(
            format!(" {}", t.text),
            if t.error {
                app.theme.alarm("base.error")
            } else {
                app.theme.fg("base.success")
            },
        )),
        None => Line::from(Span::styled(
            format!(" {}", status_text(app)),
            app.theme.fg("base.dim"),
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn status_text(app: &App) -> String {
    match app.screen {
        ScreenId::Conversations => {
            let f = &app.conversation_filter;
            let mut parts = vec![format!("{} conversations", app.conversations.len())];
            parts.push(format!("status: {}", f.status.as_deref().unwrap_or("any")));
            parts.push(format!("mode: {}", f.mode.as_deref().unwrap_or("any")));
            parts.push(format!(
                "lang: {}",
                f.language.map(|l| l.code()).unwrap_or("any")
            ));
            parts.push(format!(
                "escalated: {}",
                match f.escalated {
                    None => "any",
                    Some(true) => "yes",
                    Some(false) => "no",
                }
            ));
            if let Some(t) = &f.text {
                parts.push(format!("search: {t}"));
            }
            parts.join(" · ")
        }
        ScreenId::Queue => {
            let f = &app.queue_filter;
            format!(
                "{} tickets · view: {} · category: {} · priority: {}",
                app.queue.len(),
                queue_name(f.queue),
                f.category
                    .as_deref()
                    .map(|c| app.label(LookupKind::TicketCategory, c))
                    .unwrap_or_else(|| "any".into()),
                f.priority
                    .as_deref()
                    .map(|p| app.label(LookupKind::TicketPriority, p))
                    .unwrap_or_else(|| "any".into()),
            )
        }
        ScreenId::Statistics => format!("range: last {} days", RANGES_DAYS[app.range]),
        ScreenId::Ticket => match app.ticket_number.as_ref().and_then(|n| app.drafts.get(n)) {
            Some(d) if d.sending => "sending…".into(),
            Some(d) if !d.is_empty() => "draft kept".into(),
            _ => String::new(),
        },
        ScreenId::Knowledge => {
            let pending = app
                .documents
                .iter()
                .filter(|d| d.review_status == "pending")
                .count();
            format!(
                "{} documents · {pending} pending review",
                app.documents.len()
            )
        }
        ScreenId::Audit => format!("{} newest entries", app.audit.len()),
    }
}

fn queue_name(q: Queue) -> &'static str {
    match q {
        Queue::Mine => "mine",
        Queue::Unassigned => "unassigned",
        Queue::Breached => "breached",
        Queue::Open => "all open",
        Queue::All => "all",
    }
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let scopes: Vec<Scope> = if app.composing && app.screen == ScreenId::Ticket {
        vec![Scope::Ticket]
    } else {
        app.screen.scopes()
    };
    let mut spans = Vec::new();
    if app.composing && app.screen == ScreenId::Ticket {
        spans.push(Span::styled(
            " Ctrl-S",
            app.theme.fg("footer.key").add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(" send ", app.theme.fg("footer.text")));
        spans.push(Span::styled(
            " Ctrl-T",
            app.theme.fg("footer.key").add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(
            " public/internal ",
            app.theme.fg("footer.text"),
        ));
        spans.push(Span::styled(
            " Esc",
            app.theme.fg("footer.key").add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(
            " stop writing (draft kept) ",
            app.theme.fg("footer.text"),
        ));
    } else {
        for (key, help) in action::entries(&scopes, true) {
            spans.push(Span::styled(
                format!(" {key}"),
                app.theme.fg("footer.key").add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(
                format!(" {help} "),
                app.theme.fg("footer.text"),
            ));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// "3s", "12m", "5h", "2d": how long ago.
fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let s = (now - at).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

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

fn sla_key(state: SlaState) -> &'static str {
    match state {
        SlaState::Ok => "sla.ok",
        SlaState::Warning => "sla.warning",
        SlaState::Breached => "sla.breached",
    }
}

/// One clock of a ticket as a cell: the live countdown coloured by state, `!` when breached,
/// `‖` while paused, `met` once done.
fn clock_span<'a>(app: &App, t: &Ticket, first_response: bool, read_at: DateTime<Utc>) -> Span<'a> {
    let c = &t.sla;
    let (remaining, target, state) = if first_response {
        (
            c.first_response_remaining_seconds,
            c.first_response_target_seconds,
            c.first_response_state.0,
        )
    } else {
        (
            c.resolution_remaining_seconds,
            c.resolution_target_seconds,
            c.resolution_state.0,
        )
    };
    let Some(left) = app.remaining_now(remaining, c.sla_paused, read_at) else {
        return if state == SlaState::Breached {
            Span::styled("! missed", app.theme.alarm("sla.breached"))
        } else if first_response && t.first_response_at.is_some()
            || !first_response && t.resolved_at.is_some()
        {
            Span::styled("met", app.theme.fg("sla.ok"))
        } else {
            Span::styled("—", app.theme.fg("base.dim"))
        };
    };
    let state = app.state_now(remaining, target, state, c.sla_paused, read_at);
    let mut text = countdown(left);
    if c.sla_paused {
        text = format!("‖{text}");
        return Span::styled(text, app.theme.fg("sla.paused"));
    }
    if state == SlaState::Breached {
        text = format!("!{text}");
        return Span::styled(text, app.theme.alarm("sla.breached"));
    }
    Span::styled(text, app.theme.fg(sla_key(state)))
}

fn priority_style(app: &App, priority: &str) -> Style {
    match priority {
        "urgent" => app.theme.alarm("priority.urgent"),
        "high" => app.theme.fg("priority.high"),
        "medium" => app.theme.fg("priority.medium"),
        _ => app.theme.fg("priority.low"),
    }
}

fn loading_or_empty(app: &App, screen: ScreenId, empty: &str) -> String {
    if app.loaded.contains(&screen) {
        empty.to_string()
    } else {
        "loading…".to_string()
    }
}

fn draw_conversations(frame: &mut Frame, app: &App, area: Rect, hit: &mut HitAreas) {
    let [list_area, transcript_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    // The status column only where the person's name keeps room (an escalated conversation
    // shows its ticket anyway).
    let with_status = list_area.width >= 56;
    let fixed = 5 + 3 + 16 + 4 + if with_status { 11 } else { 0 };
    let name_width = usize::from(list_area.width.saturating_sub(2))
        .saturating_sub(fixed)
        .max(6);
    let mut header = vec!["age", "ln"];
    let mut widths = vec![Constraint::Length(5), Constraint::Length(3)];
    if with_status {
        header.push("status");
        widths.push(Constraint::Length(10));
    }
    header.extend(["person", "ticket"]);
    widths.extend([Constraint::Min(6), Constraint::Length(16)]);
    let spec = ListSpec {
        title: " Conversations ",
        screen: ScreenId::Conversations,
        selection: app.conversation_sel,
        len: app.conversations.len(),
        empty: "no conversation matches the filters",
        header: &header,
        widths: &widths,
    };
    draw_list(frame, app, list_area, spec, hit, |i| {
        let c = &app.conversations[i];
        let mut cells = vec![
            Cell::from(age(app.now, c.last_activity_at)).style(app.theme.fg("base.dim")),
            Cell::from(c.language.clone().unwrap_or_else(|| "?".into())),
        ];
        if with_status {
            let status_style = if c.status == "escalated" {
                app.theme.fg("sla.warning")
            } else {
                app.theme.fg("base.text")
            };
            cells.push(
                Cell::from(app.label(LookupKind::ConversationStatus, &c.status))
                    .style(status_style),
            );
        }
        cells.push(Cell::from(bidi::line(&c.user_name, name_width, app.bidi)));
        cells.push(
            Cell::from(c.ticket_number.clone().unwrap_or_default()).style(
                c.ticket_priority
                    .as_deref()
                    .map(|p| priority_style(app, p))
                    .unwrap_or_default(),
            ),
        );
        cells
    });

    let selected = app.conversations.get(app.conversation_sel.selected);
    let title = selected
        .map(|c| {
            format!(
                " {} · {} · {} messages ",
                bidi::line(&c.user_name, 24, app.bidi),
                app.label(LookupKind::ConversationMode, &c.mode),
                c.message_count
            )
        })
        .unwrap_or_else(|| " Transcript ".into());
    let width = usize::from(transcript_area.width.saturating_sub(2));
    let lines = match (&app.transcript, selected) {
        (Some((id, entries)), Some(c)) if *id == c.id => transcript_lines(app, entries, width),
        (_, Some(_)) => vec![Line::from(Span::styled(
            "loading…",
            app.theme.fg("base.dim"),
        ))],
        _ => vec![],
    };
    // The newest messages are at the bottom, and shown.
    let visible = usize::from(transcript_area.height.saturating_sub(2));
    let skip = lines.len().saturating_sub(visible);
    frame.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>())
            .block(block(app, title, false)),
        transcript_area,
    );
}

/// A transcript as lines: each message under a header with its role and age; each assistant
/// reply followed by its decision, reason, confidence and cited sources.
fn transcript_lines<'a>(
    app: &App,
    entries: &[amal_engine::conversations::TranscriptEntry],
    width: usize,
) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    for e in entries {
        let m = &e.message;
        let key = match m.role.as_str() {
            "user" => "transcript.user",
            "assistant" => "transcript.assistant",
            "staff" => "transcript.staff",
            _ => "transcript.system",
        };
        let who = match m.role.as_str() {
            "user" => "person",
            "assistant" => "assistant",
            "staff" => "staff",
            other => other,
        };
        lines.push(Line::from(Span::styled(
            format!("{who} · {} ago", age(app.now, m.created_at)),
            app.theme.fg(key).add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(&m.content, width.saturating_sub(1).max(10), app.bidi) {
            lines.push(Line::from(Span::styled(format!(" {l}"), app.theme.fg(key))));
        }
        if let Some(d) = &e.decision {
            let reason = match app.lang() {
                amal_engine::lang::Lang::Ar => d.reason_ar.as_deref(),
                amal_engine::lang::Lang::Fr => d.reason_fr.as_deref(),
                amal_engine::lang::Lang::En => d.reason_en.as_deref(),
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
                app.theme
                    .fg("transcript.decision")
                    .add_modifier(Modifier::ITALIC),
            )));
            if !reason.is_empty() {
                for l in bidi::wrap(reason, width.saturating_sub(3).max(10), app.bidi) {
                    lines.push(Line::from(Span::styled(
                        format!("   {l}"),
                        app.theme.fg("transcript.decision"),
                    )));
                }
            }
        }
        for c in &e.citations {
            lines.push(Line::from(Span::styled(
                format!(
                    "   ▸ {}",
                    bidi::line(&c.title, width.saturating_sub(5), app.bidi)
                ),
                app.theme.fg("transcript.citation"),
            )));
        }
    }
    lines
}

fn draw_queue(frame: &mut Frame, app: &App, area: Rect, hit: &mut HitAreas) {
    let title = format!(" Queue · {} ", queue_name(app.queue_filter.queue));
    let wide = area.width >= 110;
    let holder = area.width >= 100;
    // What is left for the subject, so right-to-left subjects are cut at their end, not
    // their beginning.
    let fixed: u16 = 16
        + 8
        + 9
        + 9
        + 11
        + 4
        + if wide { 14 + 7 + 2 } else { 0 }
        + if holder { 14 + 1 } else { 0 };
    let subject_width = usize::from(area.width.saturating_sub(3 + fixed)).max(10);
    let mut widths = vec![
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(11),
    ];
    let mut header = vec![" ticket", "priority", "response", "resolve", "status"];
    if wide {
        widths.extend([Constraint::Length(14), Constraint::Length(7)]);
        header.extend(["category", "tier"]);
    }
    if holder {
        widths.push(Constraint::Length(14));
        header.push("holder");
    }
    widths.push(Constraint::Min(10));
    header.push("subject");
    let spec = ListSpec {
        title: &title,
        screen: ScreenId::Queue,
        selection: app.queue_sel,
        len: app.queue.len(),
        empty: "no ticket in this view",
        header: &header,
        widths: &widths,
    };
    draw_list(frame, app, area, spec, hit, |i| {
        let t = &app.queue[i];
        let state = |remaining, target, read: SlaState| {
            app.state_now(remaining, target, read, t.sla.sla_paused, app.queue_read_at)
        };
        let breached = t.sla.sla_state.0 == SlaState::Breached
            || state(
                t.sla.first_response_remaining_seconds,
                t.sla.first_response_target_seconds,
                t.sla.first_response_state.0,
            ) == SlaState::Breached
            || state(
                t.sla.resolution_remaining_seconds,
                t.sla.resolution_target_seconds,
                t.sla.resolution_state.0,
            ) == SlaState::Breached;
        let number = if breached {
            Span::styled(
                format!("!{}", t.ticket_number),
                app.theme.alarm("sla.breached"),
            )
        } else {
            Span::raw(format!(" {}", t.ticket_number))
        };
        let mut cells = vec![
            Cell::from(number),
            Cell::from(
                app.label(LookupKind::TicketPriority, &t.priority)
                    .to_string(),
            )
            .style(priority_style(app, &t.priority)),
            Cell::from(clock_span(app, t, true, app.queue_read_at)),
            Cell::from(clock_span(app, t, false, app.queue_read_at)),
            Cell::from(app.label(LookupKind::TicketStatus, &t.status).to_string()),
        ];
        if wide {
            cells.push(Cell::from(
                app.label(LookupKind::TicketCategory, &t.category)
                    .to_string(),
            ));
            cells.push(Cell::from(t.escalation_tier.clone()));
        }
        if holder {
            cells.push(Cell::from(
                t.assigned_to_name
                    .as_deref()
                    .map(|n| bidi::line(n, 14, app.bidi))
                    .unwrap_or_else(|| "—".into()),
            ));
        }
        cells.push(Cell::from(bidi::line(&t.subject, subject_width, app.bidi)));
        cells
    });
}

fn draw_ticket(frame: &mut Frame, app: &App, area: Rect) {
    let Some((view, read_at)) = &app.ticket else {
        let text = if app.ticket_number.is_some() {
            "loading…"
        } else {
            "No ticket open: choose one on the queue (2) and press Enter."
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(app.theme.fg("base.dim"))
                .block(block(app, " Ticket ", true)),
            area,
        );
        return;
    };
    let d = &view.detail;
    let t = &d.ticket;
    let draft = app.drafts.get(&t.ticket_number);
    let composer_height = if area.height >= 30 { 6 } else { 4 };
    let [info, middle, composer] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(3),
        Constraint::Length(composer_height),
    ])
    .areas(area);
    let holder = t
        .assigned_to_name
        .as_deref()
        .map(|n| format!("{n} <{}>", t.assigned_to.as_deref().unwrap_or("")))
        .unwrap_or_else(|| "unassigned".into());
    let info_lines = vec![
        Line::from(vec![Span::styled(
            bidi::line(
                &t.subject,
                usize::from(info.width.saturating_sub(4)),
                app.bidi,
            ),
            app.theme.fg("base.text").add_modifier(Modifier::BOLD),
        )]),
        Line::from(vec![
            Span::styled(
                app.label(LookupKind::TicketStatus, &t.status).to_string(),
                app.theme.fg("base.text"),
            ),
            Span::raw(" · "),
            Span::styled(
                app.label(LookupKind::TicketPriority, &t.priority)
                    .to_string(),
                priority_style(app, &t.priority),
            ),
            Span::raw(" · "),
            Span::raw(
                app.label(LookupKind::TicketCategory, &t.category)
                    .to_string(),
            ),
            Span::raw(format!(" · tier {} · {holder}", t.escalation_tier)),
        ]),
        Line::from(vec![
            Span::styled("response ", app.theme.fg("base.dim")),
            clock_span(app, t, true, *read_at),
            Span::styled("   resolution ", app.theme.fg("base.dim")),
            clock_span(app, t, false, *read_at),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(info_lines).block(
            Block::new()
                .borders(Borders::TOP)
                .border_style(app.theme.fg("base.border"))
                .title(Span::styled(
                    format!(" {} ", t.ticket_number),
                    app.theme.fg("base.title").add_modifier(Modifier::BOLD),
                )),
        ),
        info,
    );

    let [left, right] = if middle.width >= 100 {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle)
    } else {
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle)
    };
    let width = usize::from(left.width.saturating_sub(2));
    let transcript = transcript_lines(app, &view.transcript, width);
    let visible = usize::from(left.height.saturating_sub(2));
    let skip = transcript.len().saturating_sub(visible);
    frame.render_widget(
        Paragraph::new(transcript.into_iter().skip(skip).collect::<Vec<_>>()).block(block(
            app,
            " Conversation ",
            false,
        )),
        left,
    );

    let width = usize::from(right.width.saturating_sub(2));
    let mut thread: Vec<Line> = Vec::new();
    if let Some(desc) = d.description.as_deref().filter(|s| !s.is_empty()) {
        thread.push(Line::from(Span::styled(
            "description",
            app.theme.fg("base.dim").add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(desc, width.saturating_sub(1).max(10), app.bidi) {
            thread.push(Line::from(format!(" {l}")));
        }
    }
    for e in &d.escalations {
        thread.push(Line::from(Span::styled(
            format!(
                "⇧ {} → {} · {} · {} ago",
                e.from_tier,
                e.to_tier,
                e.actor_email.as_deref().unwrap_or("system"),
                age(app.now, e.created_at)
            ),
            app.theme.fg("base.dim"),
        )));
        thread.push(Line::from(Span::styled(
            format!("  {}", e.reason),
            app.theme.fg("base.dim"),
        )));
    }
    for c in &d.comments {
        let (tag, key) = if c.is_internal {
            ("INTERNAL NOTE", "comments.internal")
        } else {
            ("public reply", "comments.public")
        };
        let mut head = format!(
            "{} · {tag} · {} ago",
            c.author_name,
            age(app.now, c.created_at)
        );
        if c.deleted_at.is_some() {
            head.push_str(" · deleted");
        }
        let style = if c.is_internal {
            app.theme.fg(key).add_modifier(Modifier::BOLD)
        } else {
            app.theme
                .fg("transcript.staff")
                .add_modifier(Modifier::BOLD)
        };
        thread.push(Line::from(Span::styled(head, style)));
        for l in bidi::wrap(&c.content, width.saturating_sub(2).max(10), app.bidi) {
            let prefix = if c.is_internal { "┃ " } else { "  " };
            thread.push(Line::from(Span::styled(
                format!("{prefix}{l}"),
                app.theme.fg(key),
            )));
        }
    }
    if let Some(notes) = d.resolution_notes.as_deref().filter(|s| !s.is_empty()) {
        thread.push(Line::from(Span::styled(
            format!("resolved by {}", d.resolved_by.as_deref().unwrap_or("?")),
            app.theme.fg("base.success").add_modifier(Modifier::BOLD),
        )));
        for l in bidi::wrap(notes, width.saturating_sub(2).max(10), app.bidi) {
            thread.push(Line::from(format!("  {l}")));
        }
    }
    if thread.is_empty() {
        thread.push(Line::from(Span::styled(
            "no comments yet",
            app.theme.fg("base.dim"),
        )));
    }
    let visible = usize::from(right.height.saturating_sub(2));
    let max_scroll = thread.len().saturating_sub(visible);
    // Scrolling goes back from the newest (bottom) comment.
    let skip = max_scroll.saturating_sub(usize::from(app.ticket_scroll));
    frame.render_widget(
        Paragraph::new(thread.into_iter().skip(skip).collect::<Vec<_>>()).block(block(
            app,
            format!(" Comments ({}) ", d.comments.len()),
            false,
        )),
        right,
    );

    let internal = draft.is_some_and(|d| d.internal);
    let (title, key) = if internal {
        (" INTERNAL NOTE (staff only) ", "comments.internal")
    } else {
        (" Public reply (the person sees it) ", "transcript.staff")
    };
    let sending = draft.is_some_and(|d| d.sending);
    let composer_block = Block::new()
        .borders(Borders::ALL)
        .border_type(if internal {
            BorderType::Double
        } else {
            BorderType::Rounded
        })
        .border_style(if app.composing {
            app.theme.fg(key).add_modifier(Modifier::BOLD)
        } else {
            app.theme.fg("base.border")
        })
        .title(Span::styled(
            if sending {
                format!("{title}· sending… ")
            } else {
                title.to_string()
            },
            app.theme.fg(key).add_modifier(Modifier::BOLD),
        ));
    match draft {
        Some(d) => {
            let inner = composer_block.inner(composer);
            frame.render_widget(composer_block, composer);
            frame.render_widget(&d.text, inner);
        }
        None => frame.render_widget(
            Paragraph::new(Span::styled(
                "press i to write a reply or an internal note",
                app.theme.fg("base.dim"),
            ))
            .block(composer_block),
            composer,
        ),
    }
}

fn draw_statistics(frame: &mut Frame, app: &App, area: Rect) {
    let Some(s) = &app.statistics else {
        frame.render_widget(
            Paragraph::new("loading…")
                .style(app.theme.fg("base.dim"))
                .block(block(app, " Statistics ", true)),
            area,
        );
        return;
    };
    let [gauges, charts, bottom] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(6),
        Constraint::Length(area.height.saturating_sub(9).min(8)),
    ])
    .areas(area);
    let compliance = |target: &str| -> (f64, i64, i64) {
        let (met, breached) = s
            .sla_compliance
            .iter()
            .filter(|d| d.target == target)
            .fold((0i64, 0i64), |(m, b), d| (m + d.met, b + d.breached));
        let ratio = if met + breached > 0 {
            met as f64 / (met + breached) as f64
        } else {
            1.0
        };
        (ratio, met, breached)
    };
    let [g1, g2, g3] = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(gauges);
    for (area, target, title) in [
        (g1, "first_response", "first response in time"),
        (g2, "resolution", "resolved in time"),
    ] {
        let (ratio, met, breached) = compliance(target);
        frame.render_widget(
            Gauge::default()
                .block(block(app, format!(" {title} "), false))
                .gauge_style(app.theme.fg(if ratio >= 0.9 {
                    "chart.gauge"
                } else if ratio >= 0.7 {
                    "sla.warning"
                } else {
                    "sla.breached"
                }))
                .ratio(ratio.clamp(0.0, 1.0))
                .label(format!(
                    "{:.0}% ({met} met, {breached} missed)",
                    ratio * 100.0
                )),
            area,
        );
    }
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                format!("{}", s.open_tickets),
                app.theme.fg("base.text").add_modifier(Modifier::BOLD),
            ),
            Span::styled(" open · first response p90 ", app.theme.fg("base.dim")),
            Span::raw(
                s.first_response
                    .p90_seconds
                    .map(|v| countdown(v as i64))
                    .unwrap_or_else(|| "—".into()),
            ),
        ]))
        .block(block(app, " queue ", false)),
        g3,
    );

    let [decisions_area, activity_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(charts);
    let mut dates: Vec<_> = s.decisions.iter().map(|d| d.date).collect();
    dates.dedup();
    let bar_width = 2u16;
    let fits = usize::from(decisions_area.width.saturating_sub(2) / (bar_width * 2 + 1)).max(1);
    let groups: Vec<BarGroup> = dates
        .iter()
        .rev()
        .take(fits)
        .rev()
        .map(|date| {
            let count = |kind: &str| {
                s.decisions
                    .iter()
                    .find(|d| d.date == *date && d.decision == kind)
                    .map(|d| d.count as u64)
                    .unwrap_or(0)
            };
            BarGroup::default()
                .label(Line::from(date.format("%d").to_string()))
                .bars(&[
                    Bar::default()
                        .value(count("rag"))
                        .style(app.theme.fg("chart.primary"))
                        .text_value(String::new()),
                    Bar::default()
                        .value(count("support"))
                        .style(app.theme.fg("chart.secondary"))
                        .text_value(String::new()),
                ])
        })
        .collect();
    let mut chart = BarChart::default()
        .block(block(
            app,
            Line::from(vec![
                Span::raw(" decisions per day: "),
                Span::styled("knowledge", app.theme.fg("chart.primary")),
                Span::raw(" / "),
                Span::styled("human", app.theme.fg("chart.secondary")),
                Span::raw(" "),
            ]),
            false,
        ))
        .bar_width(bar_width)
        .group_gap(1);
    for g in groups {
        chart = chart.data(g);
    }
    frame.render_widget(chart, decisions_area);

    let [spark_area, breach_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(activity_area);
    let messages: Vec<u64> = s
        .activity
        .iter()
        .map(|a| a.messages.max(0) as u64)
        .collect();
    let total: u64 = messages.iter().sum();
    frame.render_widget(
        Sparkline::default()
            .block(block(app, format!(" messages per day ({total}) "), false))
            .data(&messages)
            .style(app.theme.fg("chart.primary")),
        spark_area,
    );
    let mut breach_days: Vec<_> = s.sla_breaches.iter().map(|b| b.date).collect();
    breach_days.dedup();
    let breaches: Vec<u64> = breach_days
        .iter()
        .map(|d| {
            s.sla_breaches
                .iter()
                .filter(|b| b.date == *d)
                .map(|b| b.breaches.max(0) as u64)
                .sum()
        })
        .collect();
    let crisis: i64 = s.crisis.iter().map(|c| c.tickets).sum();
    frame.render_widget(
        Sparkline::default()
            .block(block(
                app,
                format!(
                    " SLA breaches per day ({}) · crisis tickets {crisis} ",
                    breaches.iter().sum::<u64>()
                ),
                false,
            ))
            .data(&breaches)
            .style(app.theme.fg("sla.breached")),
        breach_area,
    );

    let rows: Vec<Row> = s
        .workload
        .iter()
        .map(|w| {
            Row::new(vec![
                Cell::from(bidi::line(&w.name, 24, app.bidi)),
                Cell::from(w.open_tickets.to_string()),
                Cell::from(w.in_progress.to_string()),
                Cell::from(w.pending.to_string()),
                Cell::from(w.breached_open.to_string()).style(if w.breached_open > 0 {
                    app.theme.alarm("sla.breached")
                } else {
                    Style::new()
                }),
                Cell::from(w.crisis_open.to_string()),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Min(12),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(7),
            ],
        )
        .header(
            Row::new(["staff", "open", "working", "pending", "breached", "crisis"])
                .style(app.theme.fg("base.dim").add_modifier(Modifier::BOLD)),
        )
        .block(block(app, " workload ", false)),
        bottom,
    );
}

/// What a list screen shows: its title, column headers and widths, and a placeholder.
struct ListSpec<'a> {
    title: &'a str,
    screen: ScreenId,
    selection: crate::app::Selection,
    len: usize,
    empty: &'a str,
    header: &'a [&'a str],
    widths: &'a [Constraint],
}

/// A list screen: the visible window of rows around the selection, the selection highlighted,
/// and the rows' area recorded for mouse clicks.
fn draw_list<'a>(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    spec: ListSpec<'_>,
    hit: &mut HitAreas,
    row: impl Fn(usize) -> Vec<Cell<'a>>,
) {
    if spec.len == 0 {
        frame.render_widget(
            Paragraph::new(loading_or_empty(app, spec.screen, spec.empty))
                .style(app.theme.fg("base.dim"))
                .block(block(app, spec.title, true)),
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
                r.style(app.theme.selection())
            } else {
                r
            }
        })
        .collect();
    frame.render_widget(
        Table::new(rows, spec.widths.to_vec())
            .header(
                Row::new(spec.header.to_vec())
                    .style(app.theme.fg("base.dim").add_modifier(Modifier::BOLD)),
            )
            .block(block(app, spec.title, true)),
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

fn draw_knowledge(frame: &mut Frame, app: &App, area: Rect, hit: &mut HitAreas) {
    let admin = app.role() == Some(amal_engine::staff::StaffRole::Admin);
    let spec = ListSpec {
        title: if admin {
            " Knowledge review "
        } else {
            " Knowledge (review needs an admin) "
        },
        screen: ScreenId::Knowledge,
        selection: app.document_sel,
        len: app.documents.len(),
        empty: "no documents",
        header: &["review", "ln", "chunks", "pii", "title"],
        widths: &[
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Min(10),
        ],
    };
    draw_list(frame, app, area, spec, hit, |i| {
        let d = &app.documents[i];
        let status_style = match d.review_status.as_str() {
            "pending" => app.theme.fg("sla.warning").add_modifier(Modifier::BOLD),
            "rejected" => app.theme.fg("sla.breached"),
            _ => app.theme.fg("sla.ok"),
        };
        vec![
            Cell::from(d.review_status.clone()).style(status_style),
            Cell::from(d.lang.clone()),
            Cell::from(d.chunk_count.to_string()),
            Cell::from(d.pii_redactions.to_string()),
            Cell::from(bidi::line(
                &d.title,
                usize::from(area.width.saturating_sub(30)),
                app.bidi,
            )),
        ]
    });
}

fn draw_audit(frame: &mut Frame, app: &App, area: Rect, hit: &mut HitAreas) {
    let spec = ListSpec {
        title: " Audit log ",
        screen: ScreenId::Audit,
        selection: app.audit_sel,
        len: app.audit.len(),
        empty: "the audit log is empty",
        header: &["age", "who", "action", "details"],
        widths: &[
            Constraint::Length(4),
            Constraint::Length(24),
            Constraint::Length(18),
            Constraint::Min(10),
        ],
    };
    draw_list(frame, app, area, spec, hit, |i| {
        let a = &app.audit[i];
        vec![
            Cell::from(age(app.now, a.created_at)).style(app.theme.fg("base.dim")),
            Cell::from(a.actor_email.clone().unwrap_or_else(|| "system".into())),
            Cell::from(a.action.clone()),
            Cell::from(compact(&a.details)),
        ]
    });
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_overlay(frame: &mut Frame, app: &App, overlay: &Overlay, area: Rect) {
    match overlay {
        Overlay::Help => {
            let entries = action::entries(&app.screen.scopes(), false);
            // As many columns as the height needs, so the whole key map fits at 80x24.
            let rows = usize::from(area.height.saturating_sub(4)).max(1);
            let columns = entries.len().div_ceil(rows).max(1);
            let rows = entries.len().div_ceil(columns);
            let col_width = 36u16;
            let width = (col_width * columns as u16 + 2).min(area.width);
            let rect = centered(area, width, rows as u16 + 2);
            frame.render_widget(Clear, rect);
            let b = block(
                app,
                format!(" Keys · {} (Esc closes) ", app.screen.title()),
                true,
            );
            let inner = b.inner(rect);
            frame.render_widget(b, rect);
            let areas =
                Layout::horizontal(vec![Constraint::Length(col_width); columns]).split(inner);
            for (c, chunk) in entries.chunks(rows).enumerate() {
                let lines: Vec<Line> = chunk
                    .iter()
                    .map(|(key, help)| {
                        Line::from(vec![
                            Span::styled(
                                format!("{key:>10}  "),
                                app.theme.fg("footer.key").add_modifier(Modifier::BOLD),
                            ),
                            Span::styled(help.to_string(), app.theme.fg("base.text")),
                        ])
                    })
                    .collect();
                if let Some(a) = areas.get(c) {
                    frame.render_widget(Paragraph::new(lines), *a);
                }
            }
        }
        Overlay::Palette(text, selected) => {
            let commands = app.palette_commands(text);
            let rect = centered(
                area,
                50,
                (commands.len() as u16 + 3).clamp(4, area.height.saturating_sub(2).max(4)),
            );
            frame.render_widget(Clear, rect);
            let mut lines = vec![Line::from(vec![
                Span::styled(":", app.theme.fg("footer.key")),
                Span::raw(text.clone()),
                Span::styled("▏", app.theme.fg("base.border_focus")),
            ])];
            for (i, (help, _)) in commands.iter().enumerate() {
                let style = if i == *selected {
                    app.theme.selection()
                } else {
                    app.theme.fg("base.text")
                };
                lines.push(Line::from(Span::styled(format!(" {help}"), style)));
            }
            frame.render_widget(
                Paragraph::new(lines).block(block(app, " Command ", true)),
                rect,
            );
        }
        Overlay::Prompt(prompt) => {
            let rect = centered(area, 64, 3);
            frame.render_widget(Clear, rect);
            let b = block(
                app,
                format!(" {} (Enter: ok, Esc: cancel) ", prompt.title),
                true,
            );
            let inner = b.inner(rect);
            frame.render_widget(b, rect);
            frame.render_widget(&prompt.input, inner);
        }
        Overlay::Chooser(chooser) => {
            let rect = centered(area, 40, chooser.options.len() as u16 + 2);
            frame.render_widget(Clear, rect);
            let lines: Vec<Line> = chooser
                .options
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let style = if i == chooser.selected {
                        app.theme.selection()
                    } else {
                        app.theme.fg("base.text")
                    };
                    Line::from(Span::styled(format!(" {o}"), style))
                })
                .collect();
            frame.render_widget(
                Paragraph::new(lines).block(block(app, format!(" {} ", chooser.title), true)),
                rect,
            );
        }
        Overlay::Confirm(text, _) => {
            let rect = centered(area, 60, 5);
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(Text::from(vec![
                    Line::from(text.clone()),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("y", app.theme.fg("footer.key").bold()),
                        Span::raw(" yes   "),
                        Span::styled("n", app.theme.fg("footer.key").bold()),
                        Span::raw(" no"),
                    ]),
                ]))
                .wrap(Wrap { trim: true })
                .block(block(app, " Confirm ", true)),
                rect,
            );
        }
    }
}
