//! The audit log screen: the newest entries, who did what and with what details.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::Cell;

use amal_engine::audit::AuditRecord;
use amal_engine::events::{ChangeKind, ChangeNotice};

use crate::action::Action;
use crate::data::Request;
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::age;

use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, Selection, ticket_change};

/// The newest audit entries.
pub struct AuditScreen {
    /// The entries, newest first.
    pub records: Rows<AuditRecord>,
}

impl Default for AuditScreen {
    fn default() -> Self {
        AuditScreen {
            records: Rows::searchable(|a| {
                format!(
                    "{} {} {}",
                    a.actor_email.as_deref().unwrap_or("system"),
                    a.action,
                    compact(&a.details)
                )
            }),
        }
    }
}

impl Screen for AuditScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Audit);
    }

    /// The changes that write audit entries: tickets, documents and staff.
    fn concerns(&self, notice: &ChangeNotice) -> bool {
        ticket_change(notice)
            || notice.kinds.contains(&ChangeKind::Document)
            || notice.kinds.contains(&ChangeKind::Staff)
    }

    fn status(&self, _ctx: &Context) -> String {
        format!("{} newest entries", self.records.items.len())
    }

    fn perform(&mut self, _action: Action, _ctx: &Context, _out: &mut Outbox) {}

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.records.selection_mut())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let spec = ListSpec {
            title: " Audit log ",
            empty: "the audit log is empty",
            header: &["age", "who", "action", "details"],
            widths: &[
                Constraint::Length(4),
                Constraint::Length(24),
                Constraint::Length(18),
                Constraint::Min(10),
            ],
        };
        draw_list(frame, ctx, area, spec, &self.records, hit, |a| {
            vec![
                Cell::from(age(ctx.now, a.created_at)).style(ctx.theme.fg(ThemeKey::BaseDim)),
                Cell::from(a.actor_email.clone().unwrap_or_else(|| "system".into())),
                Cell::from(a.action.clone()),
                Cell::from(compact(&a.details)),
            ]
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
