//! The queue screen: a page of tickets in one view (mine, unassigned, breached, all), with
//! their SLA clocks counting down live.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::Cell;

use amal_engine::events::ChangeNotice;
use amal_engine::lookups::LookupKind;
use amal_engine::tickets::{Queue, QueueFilter, Ticket};

use crate::action::Action;
use crate::bidi;
use crate::chrome::overlay::Overlay;
use crate::chrome::picker::{Picker, PickerPurpose};
use crate::data::{Command, Request};
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::priority_style;

use super::clock::{Target, breached, clock_span};
use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, ScreenId, Selection, cycle, ticket_change};

/// How old the clocks may get before the queue is read again (seconds).
const REREAD_SECONDS: i64 = 60;

/// A page of the ticket queue.
pub struct QueueScreen {
    /// The tickets, most urgent first.
    pub tickets: Rows<Ticket>,
    /// When their clocks were read.
    pub read_at: DateTime<Utc>,
    /// When a periodic re-read was last asked for.
    requested_at: DateTime<Utc>,
    /// The view and filters in use.
    pub filter: QueueFilter,
    /// Tickets marked for a bulk assign or close, by number.
    pub marked: std::collections::BTreeSet<String>,
}

impl QueueScreen {
    /// The open tickets, as first read at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        QueueScreen {
            tickets: Rows::searchable(|t| {
                format!(
                    "{} {} {} {} {} {}",
                    t.ticket_number,
                    t.subject,
                    t.category,
                    t.priority,
                    t.status,
                    t.assigned_to.as_deref().unwrap_or("")
                )
            }),
            read_at: now,
            requested_at: now,
            filter: QueueFilter {
                limit: 200,
                ..QueueFilter::new(Queue::Open)
            },
            marked: Default::default(),
        }
    }

    /// A new page, its clocks read at `read_at`; the selection follows its ticket.
    pub fn on_tickets(&mut self, tickets: Vec<Ticket>, read_at: DateTime<Utc>) {
        self.tickets.replace_following(tickets, |t| t.id);
        self.read_at = read_at;
    }

    /// The selected ticket's number.
    pub fn selected_number(&self) -> Option<String> {
        self.tickets.selected().map(|t| t.ticket_number.clone())
    }

    /// Whether to read the queue again at `now`. The clocks count working seconds; a re-read
    /// now and then corrects the local count across the edges of business hours.
    pub fn reread_due(&mut self, now: DateTime<Utc>) -> bool {
        let due = (now - self.read_at).num_seconds() >= REREAD_SECONDS
            && (now - self.requested_at).num_seconds() >= REREAD_SECONDS;
        if due {
            self.requested_at = now;
        }
        due
    }

    /// Assign or close every marked ticket: assigning asks whom (the staff picker), closing
    /// asks for a confirmation that names the crisis tickets among them, if any.
    pub fn bulk(&self, action: Action, out: &mut Outbox) {
        let numbers: Vec<String> = self.marked.iter().cloned().collect();
        match action {
            Action::Assign => {
                out.overlay(Overlay::Picker(Box::new(Picker::new(
                    PickerPurpose::Assign(numbers.clone()),
                    format!("Assign {} marked tickets to", numbers.len()),
                ))));
                out.send(Request::Staff);
            }
            Action::Close => {
                let crisis: Vec<&str> = self
                    .tickets
                    .all()
                    .iter()
                    .filter(|t| t.category == "crisis" && self.marked.contains(&t.ticket_number))
                    .map(|t| t.ticket_number.as_str())
                    .collect();
                let question = if crisis.is_empty() {
                    format!(
                        "Close {} marked tickets? Only internal notes can be added afterwards.",
                        numbers.len()
                    )
                } else {
                    format!(
                        "Close {} marked tickets, INCLUDING {} CRISIS ticket(s) ({})? \
                         Only internal notes can be added afterwards.",
                        numbers.len(),
                        crisis.len(),
                        crisis.join(", ")
                    )
                };
                out.overlay(Overlay::confirm(
                    question,
                    Command::BulkClose(numbers, !crisis.is_empty()),
                ));
            }
            _ => {}
        }
    }

    fn refilter(&mut self, out: &mut Outbox) {
        self.tickets.selection = Selection::default();
        out.refresh(ScreenId::Queue);
    }
}

/// A view's name in the title and the status line.
fn queue_name(q: Queue) -> &'static str {
    match q {
        Queue::Mine => "mine",
        Queue::Unassigned => "unassigned",
        Queue::Breached => "breached",
        Queue::Open => "all open",
        Queue::All => "all",
    }
}

impl Screen for QueueScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Queue(self.filter.clone()));
    }

    fn concerns(&self, notice: &ChangeNotice) -> bool {
        ticket_change(notice)
    }

    fn status(&self, ctx: &Context) -> String {
        let f = &self.filter;
        let label = |kind, code: &Option<String>| {
            code.as_deref()
                .map(|c| ctx.label(kind, c))
                .unwrap_or_else(|| "any".into())
        };
        let marked = if self.marked.is_empty() {
            String::new()
        } else {
            format!("{} marked (a assign, C close) · ", self.marked.len())
        };
        format!(
            "{marked}{} tickets · view: {} · category: {} · priority: {}",
            self.tickets.items.len(),
            queue_name(f.queue),
            label(LookupKind::TicketCategory, &f.category),
            label(LookupKind::TicketPriority, &f.priority),
        )
    }

    fn perform(&mut self, action: Action, ctx: &Context, out: &mut Outbox) {
        match action {
            Action::CycleQueue => {
                self.filter.queue = match self.filter.queue {
                    Queue::Open => Queue::Mine,
                    Queue::Mine => Queue::Unassigned,
                    Queue::Unassigned => Queue::Breached,
                    Queue::Breached => Queue::All,
                    Queue::All => Queue::Open,
                };
                self.refilter(out);
            }
            Action::CycleCategory => {
                let codes = ctx.codes(LookupKind::TicketCategory);
                self.filter.category = cycle(&self.filter.category, &codes);
                self.refilter(out);
            }
            Action::CyclePriority => {
                let codes = ctx.codes(LookupKind::TicketPriority);
                self.filter.priority = cycle(&self.filter.priority, &codes);
                self.refilter(out);
            }
            Action::Open => {
                if let Some(n) = self.selected_number() {
                    out.open_ticket(n);
                }
            }
            Action::Mark => {
                if let Some(n) = self.selected_number()
                    && !self.marked.remove(&n)
                {
                    self.marked.insert(n);
                }
                // Marking moves on, as file managers do, to mark a run of tickets quickly.
                let len = self.tickets.items.len();
                self.tickets.selection.apply(Action::Down, len, 1);
            }
            _ => {}
        }
    }

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.tickets.selection_mut())
    }

    fn counting(&self) -> bool {
        !self.tickets.items.is_empty()
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let title = format!(" Queue · {} ", queue_name(self.filter.queue));
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
            empty: "no ticket in this view",
            header: &header,
            widths: &widths,
        };
        draw_list(frame, ctx, area, spec, &self.tickets, hit, |t| {
            let marked = self.marked.contains(&t.ticket_number);
            let number = if breached(ctx.now, t, self.read_at) {
                Span::styled(
                    format!("{}{}", if marked { '●' } else { '!' }, t.ticket_number),
                    theme.alarm(ThemeKey::SlaBreached),
                )
            } else if marked {
                Span::styled(
                    format!("●{}", t.ticket_number),
                    theme.fg(ThemeKey::BaseTitle),
                )
            } else {
                Span::raw(format!(" {}", t.ticket_number))
            };
            let mut cells = vec![
                Cell::from(number),
                Cell::from(ctx.label(LookupKind::TicketPriority, &t.priority))
                    .style(priority_style(theme, &t.priority)),
                Cell::from(clock_span(ctx, t, Target::FirstResponse, self.read_at)),
                Cell::from(clock_span(ctx, t, Target::Resolution, self.read_at)),
                Cell::from(ctx.label(LookupKind::TicketStatus, &t.status)),
            ];
            if wide {
                cells.push(Cell::from(
                    ctx.label(LookupKind::TicketCategory, &t.category),
                ));
                cells.push(Cell::from(t.escalation_tier.clone()));
            }
            if holder {
                cells.push(Cell::from(
                    t.assigned_to_name
                        .as_deref()
                        .map(|n| bidi::line(n, 14, ctx.bidi))
                        .unwrap_or_else(|| "—".into()),
                ));
            }
            cells.push(Cell::from(bidi::line(&t.subject, subject_width, ctx.bidi)));
            cells
        });
    }
}
