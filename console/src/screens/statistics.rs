//! The statistics screen: SLA compliance gauges, decisions and activity per day, breaches and
//! crisis tickets, and each staff member's workload, over a range of days.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Cell, Gauge, Paragraph, Row, Sparkline, Table};

use amal_engine::events::ChangeNotice;
use amal_engine::stats::Statistics;

use crate::action::Action;
use crate::bidi;
use crate::data::Request;
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::{block, header_style};

use super::clock::countdown;
use super::{Context, Outbox, Screen, ScreenId};

/// Statistics ranges in days, from `[` to `]`.
pub const RANGES_DAYS: [i32; 4] = [1, 7, 30, 90];

/// The figures over the chosen range.
pub struct StatisticsScreen {
    /// The figures, once read.
    pub statistics: Option<Statistics>,
    /// Index into [`RANGES_DAYS`].
    pub range: usize,
}

impl Default for StatisticsScreen {
    fn default() -> Self {
        StatisticsScreen {
            statistics: None,
            range: 1,
        }
    }
}

impl StatisticsScreen {
    /// New figures.
    pub fn on_statistics(&mut self, statistics: Statistics) {
        self.statistics = Some(statistics);
    }
}

impl Screen for StatisticsScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Statistics(RANGES_DAYS[self.range]));
    }

    /// The figures are daily; a change does not call for reading them again.
    fn concerns(&self, _notice: &ChangeNotice) -> bool {
        false
    }

    fn status(&self, _ctx: &Context) -> String {
        format!("range: last {} days", RANGES_DAYS[self.range])
    }

    fn perform(&mut self, action: Action, _ctx: &Context, out: &mut Outbox) {
        match action {
            Action::RangeShorter => self.range = self.range.saturating_sub(1),
            Action::RangeLonger => self.range = (self.range + 1).min(RANGES_DAYS.len() - 1),
            _ => return,
        }
        out.refresh(ScreenId::Statistics);
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, _hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let Some(s) = &self.statistics else {
            frame.render_widget(
                Paragraph::new("loading…")
                    .style(theme.fg(ThemeKey::BaseDim))
                    .block(block(theme, " Statistics ", true)),
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
        draw_gauges(frame, gauges, ctx, s);
        let [decisions_area, activity_area] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(charts);
        draw_decisions(frame, decisions_area, ctx, s);
        draw_activity(frame, activity_area, ctx, s);
        draw_workload(frame, bottom, ctx, s);
    }
}

/// Compliance with both SLA targets, and the open tickets with the first-response p90.
fn draw_gauges(frame: &mut Frame, gauges: Rect, ctx: &Context, s: &Statistics) {
    let theme = &ctx.theme;
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
                .block(block(theme, format!(" {title} "), false))
                .gauge_style(theme.fg(if ratio >= 0.9 {
                    ThemeKey::ChartGauge
                } else if ratio >= 0.7 {
                    ThemeKey::SlaWarning
                } else {
                    ThemeKey::SlaBreached
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
                theme.fg(ThemeKey::BaseText).add_modifier(Modifier::BOLD),
            ),
            Span::styled(" open · first response p90 ", theme.fg(ThemeKey::BaseDim)),
            Span::raw(
                s.first_response
                    .p90_seconds
                    .map(|v| countdown(v as i64))
                    .unwrap_or_else(|| "—".into()),
            ),
        ]))
        .block(block(theme, " queue ", false)),
        g3,
    );
}

/// Knowledge answers and hand-overs to staff per day, as many days as fit.
fn draw_decisions(frame: &mut Frame, decisions_area: Rect, ctx: &Context, s: &Statistics) {
    let theme = &ctx.theme;
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
                        .style(theme.fg(ThemeKey::ChartPrimary))
                        .text_value(String::new()),
                    Bar::default()
                        .value(count("support"))
                        .style(theme.fg(ThemeKey::ChartSecondary))
                        .text_value(String::new()),
                ])
        })
        .collect();
    let mut chart = BarChart::default()
        .block(block(
            theme,
            Line::from(vec![
                Span::raw(" decisions per day: "),
                Span::styled("knowledge", theme.fg(ThemeKey::ChartPrimary)),
                Span::raw(" / "),
                Span::styled("human", theme.fg(ThemeKey::ChartSecondary)),
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
}

/// Messages per day above, SLA breaches per day (and crisis tickets) below.
fn draw_activity(frame: &mut Frame, activity_area: Rect, ctx: &Context, s: &Statistics) {
    let theme = &ctx.theme;
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
            .block(block(theme, format!(" messages per day ({total}) "), false))
            .data(&messages)
            .style(theme.fg(ThemeKey::ChartPrimary)),
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
                theme,
                format!(
                    " SLA breaches per day ({}) · crisis tickets {crisis} ",
                    breaches.iter().sum::<u64>()
                ),
                false,
            ))
            .data(&breaches)
            .style(theme.fg(ThemeKey::SlaBreached)),
        breach_area,
    );
}

/// Each staff member's open, working, pending, breached and crisis tickets.
fn draw_workload(frame: &mut Frame, bottom: Rect, ctx: &Context, s: &Statistics) {
    let theme = &ctx.theme;
    let rows: Vec<Row> = s
        .workload
        .iter()
        .map(|w| {
            Row::new(vec![
                Cell::from(bidi::line(&w.name, 24, ctx.bidi)),
                Cell::from(w.open_tickets.to_string()),
                Cell::from(w.in_progress.to_string()),
                Cell::from(w.pending.to_string()),
                Cell::from(w.breached_open.to_string()).style(if w.breached_open > 0 {
                    theme.alarm(ThemeKey::SlaBreached)
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
                .style(header_style(theme)),
        )
        .block(block(theme, " workload ", false)),
        bottom,
    );
}
