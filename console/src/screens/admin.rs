//! The admin screen, for admins (the engine refuses anyone else): the staff accounts with
//! unlock, disable and enable, role and the routing profile (languages, tier, capacity, on
//! call); the SLA targets per priority; the business hours and holidays the SLA clocks count
//! with; and the retention periods. Tab moves between the four sections. Every change goes to
//! the engine function that owns it, which checks the role and writes the audit row.

use chrono::NaiveDate;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph};

use amal_engine::admin::{AdminView, StaffMember};
use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::presence::{self, ProfileChange};
use amal_engine::retention::{Policy, RetentionKind};
use amal_engine::sla::{self, Calendar, Holiday, PriorityTargets};
use amal_engine::staff::StaffRole;

use crate::action::Action;
use crate::chrome::overlay::{Chooser, ChooserPurpose, Overlay, PromptPurpose};
use crate::data::{Command, Request};
use crate::theme::ThemeKey;
use crate::ui::HitAreas;
use crate::widgets::age;

use super::list::{ListSpec, Rows, draw_list};
use super::{Context, Outbox, Screen, Selection};

/// The admin screen's sections, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Section {
    /// Staff accounts and profiles.
    #[default]
    Staff,
    /// SLA targets per priority.
    Targets,
    /// Business hours and holidays.
    Hours,
    /// Retention periods.
    Retention,
}

impl Section {
    const ALL: [Section; 4] = [
        Section::Staff,
        Section::Targets,
        Section::Hours,
        Section::Retention,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Staff => "Staff",
            Section::Targets => "SLA targets",
            Section::Hours => "Hours & holidays",
            Section::Retention => "Retention",
        }
    }
}

/// What an admin prompt or chooser edits.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminEdit {
    /// An account's role (chooser).
    Role(String),
    /// Which part of a member's profile (chooser).
    ProfileField(String),
    /// A member's languages (prompt).
    Languages(String),
    /// A member's tier (chooser).
    Tier(String),
    /// A member's capacity (prompt).
    Capacity(String),
    /// A member's on-call flag (chooser).
    OnCall(String),
    /// A priority's targets (prompt: first response and resolution minutes).
    Targets(String),
    /// Business hours on or off (chooser).
    BusinessHours,
    /// The calendar's time zone (prompt).
    Timezone,
    /// The working days (prompt).
    Days,
    /// The working day's hours (prompt).
    Hours,
    /// A new holiday (prompt: day and name).
    HolidayAdd,
    /// A retention period (prompt: days).
    Retention(RetentionKind),
}

/// A row of the hours section: a field of the calendar or a holiday.
#[derive(Debug, Clone, PartialEq)]
pub enum HoursRow {
    /// Business hours on or off.
    BusinessHours(bool),
    /// The time zone.
    Timezone(String),
    /// The working days.
    Days(Vec<i16>),
    /// The working day.
    Hours(String),
    /// A holiday.
    Holiday(Holiday),
}

const PROFILE_FIELDS: [&str; 4] = ["languages", "tier", "capacity", "on call"];
const TIERS: [&str; 4] = ["T1", "T2", "T3", "manager"];
const ROLES: [&str; 3] = ["agent", "supervisor", "admin"];

/// The admin screen's data, the section in focus and each section's selection.
pub struct AdminScreen {
    /// The section in focus.
    pub section: Section,
    /// Staff accounts with profiles.
    pub staff: Rows<StaffMember>,
    /// SLA targets.
    pub targets: Rows<PriorityTargets>,
    /// Calendar fields and holidays.
    pub hours: Rows<HoursRow>,
    /// Retention periods.
    pub retention: Rows<Policy>,
    /// The calendar as read (edits change one field of it).
    pub calendar: Option<Calendar>,
}

impl Default for AdminScreen {
    fn default() -> Self {
        AdminScreen {
            section: Section::Staff,
            staff: Rows::searchable(|m| {
                format!(
                    "{} {} {} {}",
                    m.account.email,
                    m.account.name,
                    m.account.role,
                    langs(&m.profile.languages)
                )
            }),
            targets: Rows::default(),
            hours: Rows::default(),
            retention: Rows::default(),
            calendar: None,
        }
    }
}

impl AdminScreen {
    /// New data from the engine.
    pub fn on_view(&mut self, view: AdminView) {
        self.staff.replace_following(view.staff, |m| m.account.id);
        self.targets.replace(view.targets);
        let c = &view.calendar;
        let mut rows = vec![
            HoursRow::BusinessHours(c.business_hours),
            HoursRow::Timezone(c.timezone.clone()),
            HoursRow::Days(c.working_days.clone()),
            HoursRow::Hours(format!(
                "{}-{}",
                c.workday_start.format("%H:%M"),
                c.workday_end.format("%H:%M")
            )),
        ];
        rows.extend(view.holidays.into_iter().map(HoursRow::Holiday));
        self.hours.replace(rows);
        self.retention.replace(view.retention);
        self.calendar = Some(view.calendar);
    }

    fn selected_email(&self) -> Option<String> {
        (self.section == Section::Staff)
            .then(|| self.staff.selected().map(|m| m.account.email.clone()))
            .flatten()
    }

    /// A prompt's text for an edit.
    pub fn text_answered(&self, edit: AdminEdit, text: String, out: &mut Outbox) {
        let text = text.trim().to_string();
        if text.is_empty() {
            return;
        }
        let command = match edit {
            AdminEdit::Languages(email) => match presence::parse_languages(&text) {
                Ok(langs) => Command::SetProfile(
                    email,
                    ProfileChange {
                        languages: Some(langs),
                        ..Default::default()
                    },
                ),
                Err(e) => return out.toast(e.to_string(), true),
            },
            AdminEdit::Capacity(email) => match text.parse::<i32>() {
                Ok(n) if (0..=presence::MAX_CAPACITY).contains(&n) => Command::SetProfile(
                    email,
                    ProfileChange {
                        capacity: Some(n),
                        ..Default::default()
                    },
                ),
                _ => {
                    return out.toast(
                        format!(
                            "capacity is a whole number of open tickets from 0 to {}, not `{text}`",
                            presence::MAX_CAPACITY
                        ),
                        true,
                    );
                }
            },
            AdminEdit::Targets(priority) => {
                let numbers: Vec<Option<i32>> = text
                    .split(|c: char| c.is_whitespace() || c == ',' || c == '/')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().ok())
                    .collect();
                match numbers.as_slice() {
                    [Some(first), Some(resolution)] => {
                        Command::SetTargets(priority, *first, *resolution)
                    }
                    _ => {
                        return out.toast(
                            format!(
                                "two numbers of minutes are needed: first response and \
                                 resolution (e.g. 15 240), not `{text}`"
                            ),
                            true,
                        );
                    }
                }
            }
            AdminEdit::Timezone | AdminEdit::Days | AdminEdit::Hours => {
                let Some(mut calendar) = self.calendar.clone() else {
                    return;
                };
                let changed = match edit {
                    AdminEdit::Timezone => {
                        calendar.timezone = text;
                        Ok(())
                    }
                    AdminEdit::Days => sla::parse_working_days(&text).map(|d| {
                        calendar.working_days = d;
                    }),
                    _ => sla::parse_hours(&text).map(|(start, end)| {
                        calendar.workday_start = start;
                        calendar.workday_end = end;
                    }),
                };
                match changed {
                    Ok(()) => Command::SetCalendar(calendar),
                    Err(e) => return out.toast(e.to_string(), true),
                }
            }
            AdminEdit::HolidayAdd => {
                let (day, name) = text.split_once(' ').unwrap_or((text.as_str(), ""));
                let Ok(day) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                    return out.toast(
                        format!("a holiday reads like 2026-07-05 Independence Day, not `{text}`"),
                        true,
                    );
                };
                Command::AddHoliday(day, name.trim().to_string())
            }
            AdminEdit::Retention(kind) => match text.parse::<i32>() {
                Ok(days) => Command::SetRetention(kind, days),
                Err(_) => {
                    return out.toast(
                        format!("a retention period is a whole number of days, not `{text}`"),
                        true,
                    );
                }
            },
            // Chooser edits do not come as text.
            _ => return,
        };
        out.send(Request::Act(command));
    }

    /// A chooser's pick for an edit.
    pub fn choice_made(&self, edit: AdminEdit, choice: &str, out: &mut Outbox) {
        let command = match edit {
            AdminEdit::Role(email) => match choice.parse::<StaffRole>() {
                Ok(role) => Command::SetRole(email, role),
                Err(e) => return out.toast(e.to_string(), true),
            },
            AdminEdit::ProfileField(email) => {
                let current = self.staff.items.iter().find(|m| m.account.email == email);
                let overlay = match choice {
                    "languages" => Overlay::prompt(
                        PromptPurpose::Admin(AdminEdit::Languages(email.clone())),
                        format!("{} · languages (ar,fr,en)", who(&email)),
                        &current
                            .map(|m| langs(&m.profile.languages))
                            .unwrap_or_default(),
                    ),
                    "tier" => chooser(
                        AdminEdit::Tier(email.clone()),
                        format!("{} · tier", who(&email)),
                        &TIERS,
                        current.map(|m| m.profile.tier.as_str()),
                    ),
                    "capacity" => Overlay::prompt(
                        PromptPurpose::Admin(AdminEdit::Capacity(email.clone())),
                        format!("{} · capacity (0 to 100)", who(&email)),
                        &current
                            .map(|m| m.profile.capacity.to_string())
                            .unwrap_or_default(),
                    ),
                    _ => chooser(
                        AdminEdit::OnCall(email.clone()),
                        format!("{} · on call", who(&email)),
                        &["yes", "no"],
                        current.map(|m| if m.profile.on_call { "yes" } else { "no" }),
                    ),
                };
                return out.overlay(overlay);
            }
            AdminEdit::Tier(email) => match presence::parse_tier(choice) {
                Ok(tier) => Command::SetProfile(
                    email,
                    ProfileChange {
                        tier: Some(tier),
                        ..Default::default()
                    },
                ),
                Err(e) => return out.toast(e.to_string(), true),
            },
            AdminEdit::OnCall(email) => Command::SetProfile(
                email,
                ProfileChange {
                    on_call: Some(choice == "yes"),
                    ..Default::default()
                },
            ),
            AdminEdit::BusinessHours => {
                let Some(mut calendar) = self.calendar.clone() else {
                    return;
                };
                calendar.business_hours = choice.starts_with("on");
                Command::SetCalendar(calendar)
            }
            _ => return,
        };
        out.send(Request::Act(command));
    }

    fn edit(&self, out: &mut Outbox) {
        match self.section {
            Section::Staff => {
                if let Some(m) = self.staff.selected() {
                    let email = m.account.email.clone();
                    out.overlay(chooser(
                        AdminEdit::ProfileField(email.clone()),
                        format!("{} · profile", who(&email)),
                        &PROFILE_FIELDS,
                        None,
                    ));
                }
            }
            Section::Targets => {
                if let Some(t) = self.targets.selected() {
                    out.overlay(Overlay::prompt(
                        PromptPurpose::Admin(AdminEdit::Targets(t.code.clone())),
                        format!("{}: minutes to reply, to resolve", t.code),
                        &format!("{} {}", t.first_response_minutes, t.resolution_minutes),
                    ));
                }
            }
            Section::Hours => match self.hours.selected() {
                Some(HoursRow::BusinessHours(on)) => out.overlay(chooser(
                    AdminEdit::BusinessHours,
                    "SLA clocks count".into(),
                    &["on: business hours only", "off: around the clock"],
                    Some(if *on {
                        "on: business hours only"
                    } else {
                        "off: around the clock"
                    }),
                )),
                Some(HoursRow::Timezone(tz)) => out.overlay(Overlay::prompt(
                    PromptPurpose::Admin(AdminEdit::Timezone),
                    "Time zone (IANA, e.g. Africa/Algiers)",
                    tz,
                )),
                Some(HoursRow::Days(days)) => out.overlay(Overlay::prompt(
                    PromptPurpose::Admin(AdminEdit::Days),
                    "Working days (sun-thu, mon,wed,fri)",
                    &sla::working_days_text(days),
                )),
                Some(HoursRow::Hours(hours)) => out.overlay(Overlay::prompt(
                    PromptPurpose::Admin(AdminEdit::Hours),
                    "Working hours (08:00-17:00)",
                    hours,
                )),
                Some(HoursRow::Holiday(_)) | None => self.add_holiday(out),
            },
            Section::Retention => {
                if let Some(p) = self.retention.selected()
                    && let Ok(kind) = p.kind.parse::<RetentionKind>()
                {
                    out.overlay(Overlay::prompt(
                        PromptPurpose::Admin(AdminEdit::Retention(kind)),
                        "Days to keep (30 to 36500)",
                        &p.keep_days.to_string(),
                    ));
                }
            }
        }
    }

    fn add_holiday(&self, out: &mut Outbox) {
        out.overlay(Overlay::prompt(
            PromptPurpose::Admin(AdminEdit::HolidayAdd),
            "Holiday: YYYY-MM-DD and its name",
            "",
        ));
    }

    fn rows_of(&mut self, section: Section) -> (&mut Selection, usize) {
        match section {
            Section::Staff => self.staff.selection_mut(),
            Section::Targets => self.targets.selection_mut(),
            Section::Hours => self.hours.selection_mut(),
            Section::Retention => self.retention.selection_mut(),
        }
    }
}

/// A chooser for an admin edit, on the current value when there is one.
fn chooser(edit: AdminEdit, title: String, options: &[&str], current: Option<&str>) -> Overlay {
    Overlay::Chooser(Chooser {
        purpose: ChooserPurpose::Admin(edit),
        title,
        options: options.iter().map(|o| o.to_string()).collect(),
        selected: current
            .and_then(|c| options.iter().position(|o| *o == c))
            .unwrap_or(0),
    })
}

fn langs(langs: &[amal_engine::lang::Lang]) -> String {
    langs.iter().map(|l| l.code()).collect::<Vec<_>>().join(",")
}

/// An account as a short title names it: the e-mail's local part.
fn who(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}

/// Minutes as a target reads best: `15 min`, `4 h`, `1 h 30 min`.
fn minutes(m: i32) -> String {
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

impl Screen for AdminScreen {
    fn refresh(&self, out: &mut Outbox) {
        out.send(Request::Admin);
    }

    fn concerns(&self, notice: &ChangeNotice) -> bool {
        notice.kinds.contains(&ChangeKind::Staff)
    }

    fn status(&self, ctx: &Context) -> String {
        if ctx.role() != Some(StaffRole::Admin) {
            return "the admin screen is for admins".into();
        }
        match self.section {
            Section::Staff => {
                let locked = self
                    .staff
                    .items
                    .iter()
                    .filter(|m| m.account.locked_until.is_some_and(|t| t > ctx.now))
                    .count();
                let disabled = self
                    .staff
                    .items
                    .iter()
                    .filter(|m| !m.account.is_active)
                    .count();
                format!(
                    "{} accounts · {locked} locked · {disabled} disabled · e edits the profile",
                    self.staff.items.len()
                )
            }
            Section::Targets => {
                "targets apply to tickets opened or re-prioritized from now · e edit".into()
            }
            Section::Hours => {
                "SLA clocks count these hours · e edit, a add holiday, x remove".into()
            }
            Section::Retention => "what is past its period is removed hourly · e edit".into(),
        }
    }

    fn perform(&mut self, action: Action, _ctx: &Context, out: &mut Outbox) {
        match action {
            Action::FocusNext => {
                let i = Section::ALL
                    .iter()
                    .position(|s| *s == self.section)
                    .unwrap_or(0);
                self.section = Section::ALL[(i + 1) % Section::ALL.len()];
            }
            Action::Edit | Action::Open => self.edit(out),
            Action::Unlock => {
                if let Some(email) = self.selected_email() {
                    out.send(Request::Act(Command::Unlock(email)));
                }
            }
            Action::ToggleActive => {
                if let Some(m) = self
                    .staff
                    .selected()
                    .filter(|_| self.section == Section::Staff)
                {
                    let email = m.account.email.clone();
                    if m.account.is_active {
                        out.overlay(Overlay::confirm(
                            format!(
                                "Disable {email}? They cannot sign in, their sessions end and \
                                 their open tickets go back to the queue."
                            ),
                            Command::Disable(email),
                        ));
                    } else {
                        out.overlay(Overlay::confirm(
                            format!("Enable {email} again?"),
                            Command::Enable(email),
                        ));
                    }
                }
            }
            Action::ChangeRole => {
                if let Some(m) = self
                    .staff
                    .selected()
                    .filter(|_| self.section == Section::Staff)
                {
                    let email = m.account.email.clone();
                    out.overlay(chooser(
                        AdminEdit::Role(email.clone()),
                        format!("{} · role", who(&email)),
                        &ROLES,
                        Some(m.account.role.as_str()),
                    ));
                }
            }
            Action::AddHoliday => self.add_holiday(out),
            Action::RemoveHoliday => {
                if let Some(HoursRow::Holiday(h)) = self
                    .hours
                    .selected()
                    .filter(|_| self.section == Section::Hours)
                {
                    out.overlay(Overlay::confirm(
                        format!(
                            "Remove the holiday {} ({})? SLA clocks will count that day.",
                            h.day, h.name
                        ),
                        Command::RemoveHoliday(h.day),
                    ));
                }
            }
            _ => {}
        }
    }

    fn list(&mut self) -> Option<(&mut Selection, usize)> {
        Some(self.rows_of(self.section))
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &Context, hit: &mut HitAreas) {
        let theme = &ctx.theme;
        let [tabs, body] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
        let mut spans = vec![Span::raw(" ")];
        for s in Section::ALL {
            let style = if s == self.section {
                theme
                    .fg(ThemeKey::TabsActive)
                    .add_modifier(Modifier::BOLD | Modifier::REVERSED)
            } else {
                theme.fg(ThemeKey::TabsInactive)
            };
            spans.push(Span::styled(format!(" {} ", s.title()), style));
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled("(Tab)", theme.fg(ThemeKey::BaseDim)));
        frame.render_widget(Paragraph::new(Line::from(spans)), tabs);
        if ctx.role().is_some() && ctx.role() != Some(StaffRole::Admin) {
            frame.render_widget(
                Paragraph::new(format!(
                    "Staff accounts, SLA targets, business hours and retention are managed by \
                     admins; you are {}.",
                    ctx.role().map(StaffRole::as_str).unwrap_or_default()
                ))
                .wrap(ratatui::widgets::Wrap { trim: true })
                .style(theme.fg(ThemeKey::BaseDim))
                .block(crate::widgets::block(theme, " Admin ", true)),
                body,
            );
            hit.list = Rect::default();
            return;
        }
        let wide = area.width >= 100;
        match self.section {
            Section::Staff => {
                let spec = ListSpec {
                    title: " Staff accounts ",
                    empty: "no staff accounts",
                    header: if wide {
                        &[
                            "member",
                            "name",
                            "role",
                            "state",
                            "langs",
                            "tier",
                            "cap",
                            "call",
                            "signed in",
                        ]
                    } else {
                        &["member", "role", "state", "langs", "tier", "cap", "call"]
                    },
                    widths: if wide {
                        &[
                            Constraint::Min(24),
                            Constraint::Length(18),
                            Constraint::Length(10),
                            Constraint::Length(8),
                            Constraint::Length(8),
                            Constraint::Length(7),
                            Constraint::Length(3),
                            Constraint::Length(4),
                            Constraint::Length(9),
                        ]
                    } else {
                        &[
                            Constraint::Min(18),
                            Constraint::Length(10),
                            Constraint::Length(8),
                            Constraint::Length(8),
                            Constraint::Length(7),
                            Constraint::Length(3),
                            Constraint::Length(4),
                        ]
                    },
                };
                draw_list(frame, ctx, body, spec, &self.staff, hit, |m| {
                    let a = &m.account;
                    let (state, style) = if !a.is_active {
                        ("disabled", theme.fg(ThemeKey::BaseDim))
                    } else if a.locked_until.is_some_and(|t| t > ctx.now) {
                        (
                            "LOCKED",
                            theme.fg(ThemeKey::SlaBreached).add_modifier(Modifier::BOLD),
                        )
                    } else {
                        ("active", theme.fg(ThemeKey::SlaOk))
                    };
                    let mut cells = vec![Cell::from(a.email.clone())];
                    if wide {
                        cells.push(Cell::from(a.name.clone()));
                    }
                    cells.extend([
                        Cell::from(a.role.clone()),
                        Cell::from(state).style(style),
                        Cell::from(langs(&m.profile.languages)),
                        Cell::from(m.profile.tier.as_str()),
                        Cell::from(m.profile.capacity.to_string()),
                        Cell::from(if m.profile.on_call { "yes" } else { "" }),
                    ]);
                    if wide {
                        cells.push(
                            Cell::from(
                                a.last_login_at
                                    .map(|t| format!("{} ago", age(ctx.now, t)))
                                    .unwrap_or_else(|| "never".into()),
                            )
                            .style(theme.fg(ThemeKey::BaseDim)),
                        );
                    }
                    cells
                });
            }
            Section::Targets => {
                let spec = ListSpec {
                    title: " SLA targets per priority ",
                    empty: "no priorities",
                    header: &["priority", "first response", "resolution"],
                    widths: &[
                        Constraint::Length(10),
                        Constraint::Length(16),
                        Constraint::Min(12),
                    ],
                };
                draw_list(frame, ctx, body, spec, &self.targets, hit, |t| {
                    vec![
                        Cell::from(
                            ctx.label(amal_engine::lookups::LookupKind::TicketPriority, &t.code),
                        ),
                        Cell::from(minutes(t.first_response_minutes)),
                        Cell::from(minutes(t.resolution_minutes)),
                    ]
                });
            }
            Section::Hours => {
                let spec = ListSpec {
                    title: " Business hours and holidays ",
                    empty: "loading…",
                    header: &["setting", "value"],
                    widths: &[Constraint::Length(16), Constraint::Min(20)],
                };
                draw_list(frame, ctx, body, spec, &self.hours, hit, |r| {
                    let (field, value) = match r {
                        HoursRow::BusinessHours(true) => {
                            ("SLA clocks", "business hours only".to_string())
                        }
                        HoursRow::BusinessHours(false) => (
                            "SLA clocks",
                            "around the clock (hours below unused)".to_string(),
                        ),
                        HoursRow::Timezone(tz) => ("time zone", tz.clone()),
                        HoursRow::Days(d) => ("working days", sla::working_days_text(d)),
                        HoursRow::Hours(h) => ("working hours", h.clone()),
                        HoursRow::Holiday(h) => ("holiday", format!("{}  {}", h.day, h.name)),
                    };
                    vec![
                        Cell::from(field).style(theme.fg(ThemeKey::BaseDim)),
                        Cell::from(value),
                    ]
                });
            }
            Section::Retention => {
                let spec = ListSpec {
                    title: " Retention periods ",
                    empty: "no retention periods",
                    header: if wide {
                        &["kept", "what", "set by", "last run"]
                    } else {
                        &["kept", "what", "last run"]
                    },
                    widths: if wide {
                        &[
                            Constraint::Length(11),
                            Constraint::Min(28),
                            Constraint::Length(26),
                            Constraint::Length(22),
                        ]
                    } else {
                        &[
                            Constraint::Length(11),
                            Constraint::Min(28),
                            Constraint::Length(20),
                        ]
                    },
                };
                draw_list(frame, ctx, body, spec, &self.retention, hit, |p| {
                    let last = p
                        .last_run
                        .map(|(at, rows)| format!("{} ago, {rows} rows", age(ctx.now, at)))
                        .unwrap_or_else(|| "never run".into());
                    let mut cells = vec![
                        Cell::from(format!("{} days", p.keep_days)),
                        Cell::from(p.kind.replace('_', " ")),
                    ];
                    if wide {
                        cells.push(Cell::from(
                            p.updated_by.clone().unwrap_or_else(|| "default".into()),
                        ));
                    }
                    cells.push(Cell::from(last).style(theme.fg(ThemeKey::BaseDim)));
                    cells
                });
            }
        }
    }
}
