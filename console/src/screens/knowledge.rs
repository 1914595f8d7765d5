//! The knowledge review screen: the documents the assistant may cite, with their review state;
//! admins approve them or reject them with a reason.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::widgets::Cell;
use uuid::Uuid;

use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::knowledge::store::DocumentSummary;
use amal_engine::staff::StaffRole;

use crate::action::Action;
use crate::bidi;
use crate::chrome::overlay::{Overlay, PromptPurpose};
use crate::data::{Command, Request};
use crate::theme::ThemeKey;
use crate::ui::HitAreas;

use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, Selection};

/// The knowledge documents and the selected one.
pub struct KnowledgeScreen {
    /// The documents.
    pub documents: Rows<DocumentSummary>,
}

impl Default for KnowledgeScreen {
    fn default() -> Self {
        KnowledgeScreen {
            documents: Rows::searchable(|d| {
                format!(
                    "{} {} {} {} {}",
                    d.title,
                    d.lang,
                    d.review_status,
                    d.category.as_deref().unwrap_or(""),
                    d.source.as_deref().unwrap_or("")
                )
            }),
        }
    }
}

impl KnowledgeScreen {
    /// The reason given for rejecting document `id`: a rejection cannot be undone (the
    /// document is never retrieved again), so it is confirmed once more.
    pub fn reject_reason(id: Uuid, text: String, out: &mut Outbox) {
        if text.is_empty() {
            out.toast("a rejection needs a reason", true);
        } else {
            out.overlay(Overlay::confirm(
                "Reject this document? It will never be retrieved.",
                Command::Reject(id, text),
            ));
        }
    }
}

impl Screen for KnowledgeScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Documents);
    }

    fn concerns(&self, notice: &ChangeNotice) -> bool {
        notice.kinds.contains(&ChangeKind::Document)
    }

    fn status(&self, _ctx: &Context) -> String {
        let pending = self
            .documents
            .items
            .iter()
            .filter(|d| d.review_status == "pending")
            .count();
        format!(
            "{} documents · {pending} pending review",
            self.documents.items.len()
        )
    }

    fn perform(&mut self, action: Action, _ctx: &Context, out: &mut Outbox) {
        let Some(d) = self.documents.selected() else {
            return;
        };
        match action {
            // A document is read before it is approved: its text first, then the question.
            Action::Open | Action::Approve => out.send(Request::DocumentText(d.id)),
            Action::Reject => out.overlay(Overlay::prompt(
                PromptPurpose::RejectReason(d.id),
                format!("Reject “{}”: the reason", d.title),
                "",
            )),
            _ => {}
        }
    }

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.documents.selection_mut())
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let admin = ctx.role() == Some(StaffRole::Admin);
        let spec = ListSpec {
            title: if admin {
                " Knowledge review "
            } else {
                " Knowledge (review needs an admin) "
            },
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
        draw_list(frame, ctx, area, spec, &self.documents, hit, |d| {
            let status_style = match d.review_status.as_str() {
                "pending" => theme.fg(ThemeKey::SlaWarning).add_modifier(Modifier::BOLD),
                "rejected" => theme.fg(ThemeKey::SlaBreached),
                _ => theme.fg(ThemeKey::SlaOk),
            };
            vec![
                Cell::from(d.review_status.clone()).style(status_style),
                Cell::from(d.lang.clone()),
                Cell::from(d.chunk_count.to_string()),
                Cell::from(d.pii_redactions.to_string()),
                Cell::from(bidi::line(
                    &d.title,
                    usize::from(area.width.saturating_sub(30)),
                    ctx.bidi,
                )),
            ]
        });
    }
}
