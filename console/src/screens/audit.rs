//! The audit log screen (supervisors and admins; the engine refuses anyone else): the newest
//! entries, who did what to what (a read entry names what was read), filtered by actor,
//! action, outcome, address or client, and time.

use chrono::{DateTime, NaiveDate, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph};

use amal_engine::audit::{AuditFilter, AuditRecord};
use amal_engine::events::{ChangeKind, ChangeNotice};

use crate::action::Action;
use crate::data::Request;
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::{age, block};

use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, Selection, ticket_change};

/// The terms the audit filter understands, as its prompt says.
pub const FILTER_HELP: &str =
    "actor: action: outcome:ok|failed ip: client: channel: since: until: (30m, 2h, 7d, 2026-12-01)";

/// The newest audit entries.
pub struct AuditScreen {
    /// The entries, newest first.
    pub records: Rows<AuditRecord>,
    /// What the engine is asked for.
    pub filter: AuditFilter,
    /// The filter as typed.
    pub query: String,
    /// Whether the signed-in member may read the trail (supervisors and admins).
    pub allowed: bool,
}

impl Default for AuditScreen {
    fn default() -> Self {
        AuditScreen {
            records: Rows::searchable(|a| {
                format!(
                    "{} {} {} {}",
                    a.actor_email.as_deref().unwrap_or("system"),
                    a.action,
                    a.target.as_deref().unwrap_or(""),
                    compact(&a.details)
                )
            }),
            filter: AuditFilter::default(),
            query: String::new(),
            allowed: false,
        }
    }
}

impl AuditScreen {
    /// A typed filter: `term:value` pairs go to the engine, other words filter the rows
    /// read. A term it cannot read is refused, naming it, and the filter stays as it was.
    pub fn set_query(&mut self, text: &str, now: DateTime<Utc>) -> Result<(), String> {
        let (filter, words) = parse_filter(text, now)?;
        self.filter = filter;
        self.query = text.trim().to_string();
        self.records.set_filter(&words.join(" "));
        Ok(())
    }
}

/// Reads `actor:nadia action:ticket. outcome:failed since:2h free words`.
pub fn parse_filter(text: &str, now: DateTime<Utc>) -> Result<(AuditFilter, Vec<String>), String> {
    let mut filter = AuditFilter::default();
    let mut words = Vec::new();
    for term in text.split_whitespace() {
        let Some((key, value)) = term.split_once(':') else {
            words.push(term.to_string());
            continue;
        };
        if value.is_empty() {
            return Err(format!("`{term}` has no value ({FILTER_HELP})"));
        }
        match key.to_lowercase().as_str() {
            "actor" | "who" => filter.actor = Some(value.to_string()),
            "action" => filter.action_prefix = Some(value.to_string()),
            "outcome" => {
                filter.succeeded = Some(match value {
                    "ok" | "succeeded" => true,
                    "failed" | "error" => false,
                    _ => return Err(format!("`{term}`: outcome is ok or failed")),
                })
            }
            "ip" => {
                filter.ip_address = Some(
                    value
                        .parse()
                        .map_err(|_| format!("`{term}`: not an IP address"))?,
                )
            }
            "client" => filter.user_agent = Some(value.to_string()),
            "channel" => match value {
                "server" | "cli" | "console" => filter.channel = Some(value.to_string()),
                _ => return Err(format!("`{term}`: channel is server, cli or console")),
            },
            "since" => filter.since = Some(instant(term, value, now)?),
            "until" => filter.until = Some(instant(term, value, now)?),
            _ => return Err(format!("unknown filter `{key}:` ({FILTER_HELP})")),
        }
    }
    Ok((filter, words))
}

/// `30m`, `2h`, `7d` ago, or a day (`2026-12-01`, from its midnight UTC), or RFC 3339.
fn instant(term: &str, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let bad = || format!("`{term}`: a time is 30m, 2h, 7d ago or a date like 2026-12-01");
    if let Some(unit) = value.chars().last().filter(|c| c.is_ascii_alphabetic())
        && let Ok(n) = value[..value.len() - 1].parse::<i64>()
    {
        let ago = match unit {
            'm' => chrono::Duration::minutes(n),
            'h' => chrono::Duration::hours(n),
            'd' => chrono::Duration::days(n),
            _ => return Err(bad()),
        };
        return Ok(now - ago);
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad())
}

impl Screen for AuditScreen {
    fn refresh(&self, out: &mut Outbox) {
        if self.allowed {
            out.send(Request::Audit(self.filter.clone()));
        }
    }

    /// The changes that write audit entries: tickets, documents and staff.
    fn concerns(&self, notice: &ChangeNotice) -> bool {
        ticket_change(notice)
            || notice.kinds.contains(&ChangeKind::Document)
            || notice.kinds.contains(&ChangeKind::Staff)
    }

    fn status(&self, _ctx: &Context) -> String {
        if !self.allowed {
            return "the audit log is for supervisors and admins".into();
        }
        let filtered = if self.query.is_empty() {
            String::new()
        } else {
            format!(" · filter: {}", self.query)
        };
        format!("{} newest entries{filtered}", self.records.items.len())
    }

    fn perform(&mut self, _action: Action, _ctx: &Context, _out: &mut Outbox) {}

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.records.selection_mut())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        if !self.allowed {
            frame.render_widget(
                Paragraph::new(
                    "The audit log shows who read and changed what, including other staff's \
                     searches: it is for supervisors and admins.",
                )
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(block(&ctx.theme, " Audit log ", false)),
                area,
            );
            return;
        }
        let wide = area.width >= 110;
        let title = if self.query.is_empty() {
            " Audit log ".to_string()
        } else {
            format!(" Audit log · {} ", self.query)
        };
        let mut widths = vec![
            Constraint::Length(4),
            Constraint::Length(if wide { 26 } else { 18 }),
            Constraint::Length(20),
            Constraint::Length(if wide { 34 } else { 24 }),
        ];
        let mut header = vec!["age", "who", "action", "target"];
        if wide {
            widths.push(Constraint::Length(8));
            header.push("via");
        }
        widths.push(Constraint::Min(10));
        header.push("details");
        let spec = ListSpec {
            title: &title,
            empty: "no entry matches",
            header: &header,
            widths: &widths,
        };
        draw_list(frame, ctx, area, spec, &self.records, hit, |a| {
            let failed = a.status_code.is_some_and(|c| c >= 400);
            let action = if failed {
                Cell::from(format!("✗ {}", a.action)).style(ctx.theme.fg(ThemeKey::SlaBreached))
            } else {
                Cell::from(a.action.clone())
            };
            let mut cells = vec![
                Cell::from(age(ctx.now, a.created_at)).style(ctx.theme.fg(ThemeKey::BaseDim)),
                Cell::from(a.actor_email.clone().unwrap_or_else(|| "system".into())),
                action,
                Cell::from(crate::bidi::line(
                    a.target.as_deref().unwrap_or("—"),
                    if wide { 34 } else { 24 },
                    ctx.bidi,
                )),
            ];
            if wide {
                cells.push(Cell::from(a.channel.clone().unwrap_or_default()));
            }
            cells.push(Cell::from(compact(&a.details)));
            cells
        });
    }
}

/// An entry's details on one line: `key=value` pairs.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_terms_go_to_the_engine_and_bad_ones_are_named() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (f, words) = parse_filter(
            "actor:nadia outcome:failed since:2h until:2026-12-07 take",
            now,
        )
        .unwrap();
        assert_eq!(f.actor.as_deref(), Some("nadia"));
        assert_eq!(f.succeeded, Some(false));
        assert_eq!(f.since, Some(now - chrono::Duration::hours(2)));
        assert_eq!(f.until.unwrap().to_rfc3339(), "2026-12-07T00:00:00+00:00");
        assert_eq!(words, ["take"]);
        assert!(parse_filter("ip:1.2.3.4 channel:console", now).is_ok());
        assert!(
            parse_filter("colour:red", now)
                .unwrap_err()
                .contains("colour:")
        );
        assert!(
            parse_filter("since:yesterday", now)
                .unwrap_err()
                .contains("since:yesterday")
        );
        assert!(parse_filter("ip:nope", now).is_err());
    }
}
