//! The shift board: every active member with their presence (online, away, offline), the
//! languages they answer in, their tier, the open tickets they hold against their capacity,
//! and whether they are on call; live with every presence, profile and ticket change. The
//! signed-in member sets themselves online or away here.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::widgets::Cell;

use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::presence::{OnShift, Presence};

use crate::action::Action;
use crate::data::{Command, Request};
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::age;

use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, Selection, ticket_change};

/// The members on the board and the selected one.
pub struct ShiftScreen {
    /// Online first, then away, then offline.
    pub members: Rows<OnShift>,
}

impl Default for ShiftScreen {
    fn default() -> Self {
        ShiftScreen {
            members: Rows::searchable(|m| {
                format!(
                    "{} {} {} {} {}",
                    m.profile.email,
                    m.name,
                    m.presence,
                    languages(m),
                    m.profile.tier.as_str()
                )
            }),
        }
    }
}

/// A member's languages as the board shows them: `ar,fr`.
fn languages(m: &OnShift) -> String {
    m.profile
        .languages
        .iter()
        .map(|l| l.code())
        .collect::<Vec<_>>()
        .join(",")
}

impl ShiftScreen {
    /// The signed-in member's row, if they are on the board.
    fn me<'a>(&'a self, ctx: &Context) -> Option<&'a OnShift> {
        let id = ctx.session.as_ref()?.actor.id;
        self.members.items.iter().find(|m| m.profile.user_id == id)
    }
}

impl Screen for ShiftScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Shift);
    }

    /// Presence and profiles change the board, tickets change the loads.
    fn concerns(&self, notice: &ChangeNotice) -> bool {
        ticket_change(notice)
            || [ChangeKind::Presence, ChangeKind::Staff, ChangeKind::Offer]
                .iter()
                .any(|k| notice.kinds.contains(k))
    }

    fn status(&self, ctx: &Context) -> String {
        let count = |p: Presence| {
            self.members
                .items
                .iter()
                .filter(|m| m.presence == p)
                .count()
        };
        let me = self
            .me(ctx)
            .map(|m| format!(" · you: {}", m.presence))
            .unwrap_or_default();
        format!(
            "{} online · {} away · {} offline{me}",
            count(Presence::Online),
            count(Presence::Away),
            count(Presence::Offline)
        )
    }

    fn perform(&mut self, action: Action, ctx: &Context, out: &mut Outbox) {
        let to = match action {
            Action::GoOnline => Presence::Online,
            Action::GoAway => Presence::Away,
            _ => return,
        };
        if self.me(ctx).is_some_and(|m| m.presence == to) {
            out.toast(format!("you are already {to}"), false);
        } else {
            out.send(Request::Act(Command::SetPresence(to)));
        }
    }

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.members.selection_mut())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let wide = area.width >= 100;
        let me = ctx.session.as_ref().map(|s| s.actor.id);
        let spec = ListSpec {
            title: " Who is on shift ",
            empty: "no active staff",
            header: if wide {
                &[
                    "presence", "member", "name", "langs", "tier", "load", "on call", "since",
                ]
            } else {
                &["presence", "member", "langs", "tier", "load", "call"]
            },
            widths: if wide {
                &[
                    Constraint::Length(9),
                    Constraint::Min(24),
                    Constraint::Length(18),
                    Constraint::Length(9),
                    Constraint::Length(8),
                    Constraint::Length(6),
                    Constraint::Length(8),
                    Constraint::Length(6),
                ]
            } else {
                &[
                    Constraint::Length(9),
                    Constraint::Min(20),
                    Constraint::Length(9),
                    Constraint::Length(8),
                    Constraint::Length(6),
                    Constraint::Length(4),
                ]
            },
        };
        draw_list(frame, ctx, area, spec, &self.members, hit, |m| {
            let presence_style = match m.presence {
                Presence::Online => theme.fg(ThemeKey::SlaOk).add_modifier(Modifier::BOLD),
                Presence::Away => theme.fg(ThemeKey::SlaWarning),
                Presence::Offline => theme.fg(ThemeKey::BaseDim),
            };
            let full = m.open_tickets >= i64::from(m.profile.capacity);
            let load_style = if full {
                theme.fg(ThemeKey::SlaBreached)
            } else {
                theme.fg(ThemeKey::BaseText)
            };
            let marker = if Some(m.profile.user_id) == me {
                " (you)"
            } else {
                ""
            };
            let on_call = if m.profile.on_call { "yes" } else { "" };
            let mut cells = vec![
                Cell::from(m.presence.to_string()).style(presence_style),
                Cell::from(format!("{}{marker}", m.profile.email)),
            ];
            if wide {
                cells.push(Cell::from(m.name.clone()));
            }
            cells.extend([
                Cell::from(languages(m)),
                Cell::from(m.profile.tier.as_str()),
                Cell::from(format!("{}/{}", m.open_tickets, m.profile.capacity)).style(load_style),
                Cell::from(on_call),
            ]);
            if wide {
                cells.push(
                    Cell::from(m.since.map(|t| age(ctx.now, t)).unwrap_or_default())
                        .style(theme.fg(ThemeKey::BaseDim)),
                );
            }
            cells
        });
    }
}
