//! The admin screen (staff accounts and profiles, SLA targets, business hours and holidays,
//! retention), the shift board, the offer prompt and the on-call banner (issues 18, 19, 21).
//! Snapshots at 80x24 and 120x36; the keys send the engine the changes they name.

use chrono::{Duration, NaiveDate, NaiveTime};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use uuid::Uuid;

use amal_console::app::App;
use amal_console::data::{Command, DataEvent, Request};
use amal_console::screens::ScreenId;
use amal_console::ui;
use amal_engine::admin::{AdminView, StaffMember};
use amal_engine::lang::Lang;
use amal_engine::presence::{OnShift, Presence, ProfileChange, StaffProfile};
use amal_engine::retention::{Policy, RetentionKind};
use amal_engine::routing::{Alert, OfferAnswer};
use amal_engine::sla::{Calendar, Holiday, PriorityTargets};
use amal_engine::staff::{StaffAccount, StaffRole};
use amal_engine::tickets::Tier;

use super::fixtures;

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| ui::draw(f, app)).unwrap();
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// Empties a prompt that opened with the current value.
fn clear_prompt(app: &mut App) {
    for _ in 0..40 {
        key(app, KeyCode::Backspace);
    }
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>) -> Vec<Request> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

fn acts(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>) -> Vec<Command> {
    drain(rx)
        .into_iter()
        .filter_map(|r| match r {
            Request::Act(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn profile(
    n: u128,
    email: &str,
    langs: &[Lang],
    tier: Tier,
    capacity: i32,
    on_call: bool,
) -> StaffProfile {
    StaffProfile {
        user_id: id(n),
        email: email.into(),
        languages: langs.to_vec(),
        tier,
        capacity,
        on_call,
    }
}

fn member(
    n: u128,
    email: &str,
    name: &str,
    role: &str,
    state: (bool, bool),
    p: StaffProfile,
) -> StaffMember {
    let now = fixtures::now();
    let (active, locked) = state;
    StaffMember {
        account: StaffAccount {
            id: id(n),
            email: email.into(),
            name: name.into(),
            role: role.into(),
            is_active: active,
            failed_login_attempts: if locked { 5 } else { 0 },
            locked_until: locked.then(|| now + Duration::minutes(12)),
            last_login_at: Some(now - Duration::hours(3)),
            created_at: now - Duration::days(30),
        },
        profile: p,
    }
}

fn view() -> AdminView {
    let now = fixtures::now();
    AdminView {
        staff: vec![
            member(
                200,
                "admin.demo@amal.example",
                "Leila (admin)",
                "admin",
                (true, false),
                profile(
                    200,
                    "admin.demo@amal.example",
                    &[Lang::Fr, Lang::En],
                    Tier::Manager,
                    3,
                    true,
                ),
            ),
            member(
                202,
                "supervisor.demo@amal.example",
                "Karim (supervisor)",
                "supervisor",
                (true, false),
                profile(
                    202,
                    "supervisor.demo@amal.example",
                    &[Lang::Ar, Lang::Fr],
                    Tier::T2,
                    5,
                    true,
                ),
            ),
            member(
                201,
                "agent.demo@amal.example",
                "Nadia (agent)",
                "agent",
                (true, true),
                profile(
                    201,
                    "agent.demo@amal.example",
                    &[Lang::Ar],
                    Tier::T1,
                    5,
                    false,
                ),
            ),
            member(
                203,
                "former@amal.example",
                "Sami (left)",
                "agent",
                (false, false),
                profile(203, "former@amal.example", &[Lang::En], Tier::T1, 5, false),
            ),
        ],
        targets: [
            ("urgent", 4, 15, 240),
            ("high", 3, 60, 480),
            ("medium", 2, 240, 1440),
            ("low", 1, 480, 4320),
        ]
        .into_iter()
        .map(|(code, level, f, r)| PriorityTargets {
            code: code.into(),
            level,
            first_response_minutes: f,
            resolution_minutes: r,
        })
        .collect(),
        calendar: Calendar {
            business_hours: false,
            timezone: "Africa/Algiers".into(),
            workday_start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            workday_end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            working_days: vec![0, 1, 2, 3, 4],
        },
        holidays: vec![Holiday {
            day: NaiveDate::from_ymd_opt(2026, 7, 5).unwrap(),
            name: "Independence Day".into(),
        }],
        retention: vec![
            Policy {
                kind: "audit_logs".into(),
                keep_days: 2555,
                updated_at: now - Duration::days(2),
                updated_by: None,
                last_run: Some((now - Duration::hours(1), 0)),
            },
            Policy {
                kind: "closed_conversation_messages".into(),
                keep_days: 730,
                updated_at: now - Duration::days(2),
                updated_by: Some("admin.demo@amal.example".into()),
                last_run: Some((now - Duration::hours(1), 120)),
            },
            Policy {
                kind: "statistics".into(),
                keep_days: 3650,
                updated_at: now - Duration::days(2),
                updated_by: None,
                last_run: None,
            },
        ],
    }
}

fn board() -> Vec<OnShift> {
    let now = fixtures::now();
    vec![
        OnShift {
            profile: profile(
                201,
                "agent.demo@amal.example",
                &[Lang::Ar, Lang::Fr],
                Tier::T1,
                5,
                false,
            ),
            name: "Nadia (agent)".into(),
            presence: Presence::Online,
            since: Some(now - Duration::minutes(42)),
            open_tickets: 2,
        },
        OnShift {
            profile: profile(
                202,
                "supervisor.demo@amal.example",
                &[Lang::Ar, Lang::Fr],
                Tier::T2,
                3,
                true,
            ),
            name: "Karim (supervisor)".into(),
            presence: Presence::Online,
            since: Some(now - Duration::hours(2)),
            open_tickets: 3,
        },
        OnShift {
            profile: profile(
                204,
                "english.desk@amal.example",
                &[Lang::En],
                Tier::T1,
                5,
                false,
            ),
            name: "Maya".into(),
            presence: Presence::Away,
            since: Some(now - Duration::minutes(7)),
            open_tickets: 1,
        },
        OnShift {
            profile: profile(
                200,
                "admin.demo@amal.example",
                &[Lang::Fr, Lang::En],
                Tier::Manager,
                3,
                true,
            ),
            name: "Leila (admin)".into(),
            presence: Presence::Offline,
            since: None,
            open_tickets: 0,
        },
    ]
}

#[test]
fn shift_board_shows_presence_languages_tier_and_load() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('7'));
    assert_eq!(app.screen, ScreenId::Shift);
    assert!(drain(&mut rx).contains(&Request::Shift));
    app.on_data(DataEvent::Shift(board()));
    insta::assert_snapshot!("shift_board", render(&app, 80, 24));
    insta::assert_snapshot!("shift_board_wide", render(&app, 120, 36));
    // Away by one's own hand; online again; "online" while online changes nothing.
    key(&mut app, KeyCode::Char('w'));
    assert_eq!(acts(&mut rx), vec![Command::SetPresence(Presence::Away)]);
    key(&mut app, KeyCode::Char('o'));
    assert!(acts(&mut rx).is_empty(), "already online");
    // Presence notices re-read the board.
    app.on_data(DataEvent::Notice(amal_engine::events::ChangeNotice::new(
        amal_engine::events::ChangeKind::Presence,
    )));
    let requests = drain(&mut rx);
    assert!(requests.contains(&Request::Shift), "{requests:?}");
    assert!(requests.contains(&Request::Duty), "{requests:?}");
}

#[test]
fn an_offered_ticket_is_accepted_or_declined_with_the_time_left() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    drain(&mut rx);
    let n = "TKT-2026-000031".to_string();
    app.ring = false;
    app.on_data(DataEvent::Duty(
        vec![(n.clone(), fixtures::now() + Duration::seconds(42))],
        vec![],
    ));
    assert!(app.ring, "a new offer rings");
    insta::assert_snapshot!("offer_prompt", render(&app, 80, 24));
    insta::assert_snapshot!("offer_prompt_wide", render(&app, 120, 36));
    // The time left counts down with the clock.
    app.tick(fixtures::now() + Duration::seconds(30));
    assert!(render(&app, 80, 24).contains("12 s left"));
    // Esc puts it away; the screen's keys work again.
    key(&mut app, KeyCode::Esc);
    assert!(app.offer_shown().is_none());
    key(&mut app, KeyCode::Char('y'));
    assert!(acts(&mut rx).is_empty(), "y is not an answer once put away");
    // A new offer brings the prompt back; y accepts and the ticket opens.
    let m = "TKT-2026-000032".to_string();
    app.on_data(DataEvent::Duty(
        vec![
            (n.clone(), fixtures::now() + Duration::seconds(42)),
            (m.clone(), fixtures::now() + Duration::seconds(55)),
        ],
        vec![],
    ));
    assert_eq!(
        app.offer_shown().map(|(x, _)| x.to_string()),
        Some(n.clone()),
        "a new offer brings the prompt back, soonest first"
    );
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(
        acts(&mut rx),
        vec![Command::AnswerOffer(n.clone(), OfferAnswer::Decline)]
    );
    app.on_data(DataEvent::Duty(
        vec![(m.clone(), fixtures::now() + Duration::seconds(55))],
        vec![],
    ));
    assert_eq!(
        app.offer_shown().map(|(x, _)| x.to_string()),
        Some(m.clone())
    );
    key(&mut app, KeyCode::Char('y'));
    let command = Command::AnswerOffer(m.clone(), OfferAnswer::Accept);
    assert_eq!(acts(&mut rx), vec![command.clone()]);
    app.on_data(DataEvent::Done(command, Ok(())));
    assert_eq!(app.screen, ScreenId::Ticket);
    // An expired offer shows nothing.
    app.on_data(DataEvent::Duty(
        vec![(n, fixtures::now() - Duration::seconds(1))],
        vec![],
    ));
    assert!(app.offer_shown().is_none());
}

#[test]
fn on_call_members_see_tickets_that_found_nobody() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    drain(&mut rx);
    app.ring = false;
    let alert = Alert {
        id: id(900),
        ticket_id: Some(id(901)),
        ticket_number: Some("TKT-2026-000040".into()),
        crisis: true,
        created_at: fixtures::now(),
    };
    app.on_data(DataEvent::Duty(vec![], vec![alert.clone()]));
    assert!(app.ring, "the bell rings for an on-call alert");
    insta::assert_snapshot!("on_call_banner", render(&app, 80, 24));
    insta::assert_snapshot!("on_call_banner_wide", render(&app, 120, 36));
    // The same alerts again raise nothing new.
    app.ring = false;
    app.alert = None;
    app.on_data(DataEvent::Duty(vec![], vec![alert.clone()]));
    assert!(!app.ring && app.alert.is_none());
    // A new one does; Esc marks them seen.
    let second = Alert {
        id: id(902),
        crisis: false,
        ticket_number: Some("TKT-2026-000041".into()),
        ..alert.clone()
    };
    app.on_data(DataEvent::Duty(vec![], vec![second, alert]));
    assert!(
        app.alert
            .as_ref()
            .is_some_and(|a| a.text.contains("2 tickets found nobody online (1 crisis)"))
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.alert.is_none());
    assert_eq!(acts(&mut rx), vec![Command::AlertsSeen]);
}

fn admin_app() -> (App, tokio::sync::mpsc::UnboundedReceiver<Request>) {
    let (mut app, mut rx) = fixtures::app(StaffRole::Admin);
    key(&mut app, KeyCode::Char('8'));
    assert_eq!(app.screen, ScreenId::Admin);
    assert!(drain(&mut rx).contains(&Request::Admin));
    app.on_data(DataEvent::Admin(Box::new(view())));
    (app, rx)
}

#[test]
fn admin_screen_sections() {
    let (mut app, _rx) = admin_app();
    insta::assert_snapshot!("admin_staff", render(&app, 80, 24));
    insta::assert_snapshot!("admin_staff_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!("admin_targets", render(&app, 80, 24));
    insta::assert_snapshot!("admin_targets_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!("admin_hours", render(&app, 80, 24));
    insta::assert_snapshot!("admin_hours_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!("admin_retention", render(&app, 80, 24));
    insta::assert_snapshot!("admin_retention_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Tab);
    assert!(render(&app, 80, 24).contains("Staff accounts"));
}

#[test]
fn agents_are_told_the_admin_screen_is_for_admins() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('8'));
    insta::assert_snapshot!("admin_as_agent", render(&app, 80, 24));
    insta::assert_snapshot!("admin_as_agent_wide", render(&app, 120, 36));
}

#[test]
fn admin_staff_actions_send_the_engine_their_changes() {
    let (mut app, mut rx) = admin_app();
    // The locked agent is the third row.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('u'));
    assert_eq!(
        acts(&mut rx),
        vec![Command::Unlock("agent.demo@amal.example".into())]
    );
    // Disabling is confirmed.
    key(&mut app, KeyCode::Char('d'));
    insta::assert_snapshot!("admin_disable_confirm", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        acts(&mut rx),
        vec![Command::Disable("agent.demo@amal.example".into())]
    );
    // The role from a chooser on the current one.
    key(&mut app, KeyCode::Char('r'));
    key(&mut app, KeyCode::Down);
    insta::assert_snapshot!("admin_role_chooser_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&mut rx),
        vec![Command::SetRole(
            "agent.demo@amal.example".into(),
            StaffRole::Supervisor
        )]
    );
    // The profile: capacity, with a clear refusal of a bad number first.
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    clear_prompt(&mut app);
    typed(&mut app, "lots");
    key(&mut app, KeyCode::Enter);
    assert!(acts(&mut rx).is_empty());
    assert!(
        app.toast
            .as_ref()
            .is_some_and(|t| t.error && t.text.contains("from 0 to 100, not `lots`")),
        "{:?}",
        app.toast
    );
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    clear_prompt(&mut app);
    typed(&mut app, "8");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&mut rx),
        vec![Command::SetProfile(
            "agent.demo@amal.example".into(),
            ProfileChange {
                capacity: Some(8),
                ..Default::default()
            }
        )]
    );
    // Languages (Darija is Arabic), tier and on call.
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("admin_languages_prompt", render(&app, 80, 24));
    clear_prompt(&mut app);
    typed(&mut app, "darija,fr");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Enter);
    let email = "agent.demo@amal.example".to_string();
    assert_eq!(
        acts(&mut rx),
        vec![
            Command::SetProfile(
                email.clone(),
                ProfileChange {
                    languages: Some(vec![Lang::Ar, Lang::Fr]),
                    ..Default::default()
                }
            ),
            Command::SetProfile(
                email.clone(),
                ProfileChange {
                    tier: Some(Tier::T2),
                    ..Default::default()
                }
            ),
            Command::SetProfile(
                email,
                ProfileChange {
                    on_call: Some(true),
                    ..Default::default()
                }
            ),
        ]
    );
    // The disabled account is enabled (confirmed).
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('d'));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        acts(&mut rx),
        vec![Command::Enable("former@amal.example".into())]
    );
}

#[test]
fn admin_sla_hours_and_retention_edits_are_validated_and_sent() {
    let (mut app, mut rx) = admin_app();
    key(&mut app, KeyCode::Tab);
    // Targets: two numbers of minutes.
    key(&mut app, KeyCode::Char('e'));
    insta::assert_snapshot!("admin_targets_prompt", render(&app, 80, 24));
    clear_prompt(&mut app);
    typed(&mut app, "soon");
    key(&mut app, KeyCode::Enter);
    assert!(acts(&mut rx).is_empty());
    assert!(
        app.toast
            .as_ref()
            .is_some_and(|t| t.error && t.text.contains("two numbers of minutes"))
    );
    key(&mut app, KeyCode::Char('e'));
    clear_prompt(&mut app);
    typed(&mut app, "10 180");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&mut rx),
        vec![Command::SetTargets("urgent".into(), 10, 180)]
    );
    // Hours: business hours on, days validated, a holiday added and one removed.
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('e'));
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Enter);
    let mut on = view().calendar;
    on.business_hours = true;
    assert_eq!(acts(&mut rx), vec![Command::SetCalendar(on)]);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('e'));
    clear_prompt(&mut app);
    typed(&mut app, "sun-funday");
    key(&mut app, KeyCode::Enter);
    assert!(acts(&mut rx).is_empty());
    assert!(
        app.toast
            .as_ref()
            .is_some_and(|t| t.text.contains("`funday` is not a day")),
        "{:?}",
        app.toast
    );
    key(&mut app, KeyCode::Char('e'));
    clear_prompt(&mut app);
    typed(&mut app, "sat-wed");
    key(&mut app, KeyCode::Enter);
    let mut days = view().calendar;
    days.working_days = vec![0, 1, 2, 3, 6];
    assert_eq!(acts(&mut rx), vec![Command::SetCalendar(days)]);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('e'));
    clear_prompt(&mut app);
    typed(&mut app, "17:00-08:00");
    key(&mut app, KeyCode::Enter);
    assert!(acts(&mut rx).is_empty(), "the day must end after it starts");
    key(&mut app, KeyCode::Char('a'));
    typed(&mut app, "5 July");
    key(&mut app, KeyCode::Enter);
    assert!(acts(&mut rx).is_empty());
    assert!(
        app.toast
            .as_ref()
            .is_some_and(|t| t.text.contains("2026-07-05 Independence Day"))
    );
    key(&mut app, KeyCode::Char('a'));
    typed(&mut app, "2026-11-01 Revolution Day");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&mut rx),
        vec![Command::AddHoliday(
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            "Revolution Day".into()
        )]
    );
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Char('x'));
    insta::assert_snapshot!("admin_remove_holiday_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        acts(&mut rx),
        vec![Command::RemoveHoliday(
            NaiveDate::from_ymd_opt(2026, 7, 5).unwrap()
        )]
    );
    // Retention: days.
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('e'));
    clear_prompt(&mut app);
    typed(&mut app, "3000");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        acts(&mut rx),
        vec![Command::SetRetention(RetentionKind::AuditLogs, 3000)]
    );
}
