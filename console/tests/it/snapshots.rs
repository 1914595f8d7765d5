//! Every screen drawn with ratatui's TestBackend from fixed data, compared with insta snapshots,
//! plus the behaviour that drawing depends on (live countdowns, drafts, key map).

use chrono::Duration;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use amal_console::app::App;
use amal_console::data::{Command, Connection, DataEvent, Request};
use amal_console::screens::ScreenId;
use amal_console::ui;
use amal_engine::events::{ChangeKind, ChangeNotice};
use amal_engine::staff::StaffRole;

use super::fixtures;

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| ui::draw(f, app)).unwrap();
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(app: &mut App, c: char) {
    app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>) -> Vec<Request> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

#[test]
fn sign_in_screen() {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut app = App::new(
        tx,
        amal_console::theme::Theme::default_theme(amal_console::theme::ColorDepth::TrueColor),
        None,
        Some("agent.demo@amal.example".into()),
        fixtures::now(),
    );
    typed(&mut app, "secret");
    insta::assert_snapshot!("sign_in", render(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    app.on_data(DataEvent::SignedIn(Err("wrong e-mail or password".into())));
    insta::assert_snapshot!("sign_in_refused", render(&app, 80, 24));
}

#[test]
fn sign_in_sends_the_password_and_clears_it() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut app = App::new(
        tx,
        amal_console::theme::Theme::default_theme(amal_console::theme::ColorDepth::TrueColor),
        None,
        None,
        fixtures::now(),
    );
    typed(&mut app, "agent.demo@amal.example");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "pw");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::SignIn {
            email: "agent.demo@amal.example".into(),
            password: "pw".into()
        }]
    );
    assert!(app.sign_in.as_ref().unwrap().password.is_empty());
}

#[test]
fn conversations_screen() {
    let (app, _rx) = fixtures::app(StaffRole::Agent);
    assert_eq!(app.screen, ScreenId::Conversations);
    insta::assert_snapshot!("conversations", render(&app, 80, 24));
}

#[test]
fn conversations_without_reordering() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    ctrl(&mut app, 'b');
    assert!(!app.ctx.bidi);
    let screen = render(&app, 80, 24);
    // Memory order: the Arabic name reads as stored.
    assert!(screen.contains("أمينة"), "{screen}");
}

#[test]
fn queue_screen_is_reached_by_tab_and_by_its_number() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    // Tab moves the focus on the two-pane screens; Shift-Tab always goes back a screen.
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.screen, ScreenId::Conversations);
    key(&mut app, KeyCode::Char('3'));
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.screen, ScreenId::Queue);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("TKT-2026-000012"), "{screen}");
    insta::assert_snapshot!("queue", screen);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.screen, ScreenId::Queue);
    insta::assert_snapshot!("queue_wide", render(&app, 130, 20));
}

#[test]
fn countdowns_tick_without_querying() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    drain(&mut rx);
    let before = render(&app, 80, 24);
    assert!(before.contains("10m00s"), "{before}");
    app.dirty = false;
    app.tick(fixtures::now() + Duration::seconds(5));
    assert!(app.dirty, "a visible countdown must redraw every second");
    let after = render(&app, 80, 24);
    assert!(after.contains("9m55s"), "{after}");
    // The breached one keeps counting into the negative; the paused one stands still.
    assert!(after.contains("!-3m15s"), "{after}");
    assert!(after.contains("‖19h26m"), "{after}");
    assert!(drain(&mut rx).is_empty(), "ticking must not query");
    // The warning ticket crosses its deadline locally and is marked breached.
    app.tick(fixtures::now() + Duration::seconds(601));
    let late = render(&app, 80, 24);
    assert!(late.contains("!TKT-2026-000009"), "{late}");
}

#[test]
fn idle_screens_do_not_redraw_on_ticks() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('4'));
    app.dirty = false;
    app.tick(fixtures::now() + Duration::seconds(1));
    assert!(!app.dirty);
}

fn open_ticket(app: &mut App, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>) {
    key(app, KeyCode::Char('2'));
    key(app, KeyCode::Enter);
    assert_eq!(app.screen, ScreenId::Ticket);
    assert!(drain(rx).contains(&Request::Ticket("TKT-2026-000012".into())));
    app.on_data(DataEvent::Ticket(
        Box::new(fixtures::ticket_view()),
        fixtures::now(),
    ));
}

#[test]
fn ticket_screen_with_public_and_internal_comments() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    insta::assert_snapshot!("ticket", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('i'));
    typed(&mut app, "Checking in: how are you now?");
    ctrl(&mut app, 't');
    insta::assert_snapshot!("ticket_internal_draft", render(&app, 80, 24));
    insta::assert_snapshot!("ticket_wide", render(&app, 120, 32));
}

#[test]
fn a_reply_is_sent_once_and_its_draft_kept_until_confirmed() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('i'));
    typed(&mut app, "hello");
    ctrl(&mut app, 's');
    ctrl(&mut app, 's');
    let sent = drain(&mut rx);
    let command = Command::Comment("TKT-2026-000012".into(), "hello".into(), false);
    assert_eq!(sent, vec![Request::Act(command.clone())]);
    // The connection drops before the answer: the draft stays.
    app.on_data(DataEvent::Connection(Connection::Lost { retry_in_ms: 250 }));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("Connection to the database lost"),
        "{screen}"
    );
    app.on_data(DataEvent::Done(
        command.clone(),
        Err("database: connection refused".into()),
    ));
    assert_eq!(app.ticket.drafts["TKT-2026-000012"].content(), "hello");
    app.on_data(DataEvent::Connection(Connection::Live));
    assert_eq!(app.ticket.drafts["TKT-2026-000012"].content(), "hello");
    // Quitting with the draft asks first.
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.should_quit);
    insta::assert_snapshot!("quit_with_draft", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('n'));
    assert!(!app.should_quit);
    // Sent for real this time: the draft goes.
    key(&mut app, KeyCode::Char('i'));
    ctrl(&mut app, 's');
    drain(&mut rx);
    app.on_data(DataEvent::Done(command, Ok(())));
    assert!(app.ticket.drafts["TKT-2026-000012"].is_empty());
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.should_quit);
}

#[test]
fn destructive_actions_are_confirmed() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('C'));
    assert!(drain(&mut rx).is_empty());
    insta::assert_snapshot!("confirm_close", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Status(
            "TKT-2026-000012".into(),
            amal_engine::tickets::TicketStatus::Closed,
            None
        ))]
    );
    key(&mut app, KeyCode::Char('R'));
    typed(&mut app, "safe with family");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Status(
            "TKT-2026-000012".into(),
            amal_engine::tickets::TicketStatus::Resolved,
            Some("safe with family".into())
        ))]
    );
}

#[test]
fn statistics_screen() {
    let (mut app, _rx) = fixtures::app(StaffRole::Supervisor);
    key(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!("statistics", render(&app, 80, 24));
}

#[test]
fn knowledge_screen() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Admin);
    key(&mut app, KeyCode::Char('5'));
    insta::assert_snapshot!("knowledge", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('j'));
    drain(&mut rx);
    // Approving starts by reading the document (tools.rs follows it to the confirmation).
    key(&mut app, KeyCode::Char('a'));
    let sent = drain(&mut rx);
    assert!(
        matches!(sent.as_slice(), [Request::DocumentText(_)]),
        "{sent:?}"
    );
}

#[test]
fn audit_screen() {
    let (mut app, _rx) = fixtures::app(StaffRole::Admin);
    key(&mut app, KeyCode::Char('6'));
    insta::assert_snapshot!("audit", render(&app, 80, 24));
}

#[test]
fn help_lists_the_key_map() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('?'));
    let screen = render(&app, 80, 24);
    for entry in ["take", "command palette", "next screen", "filter"] {
        assert!(screen.contains(entry), "{entry} missing:\n{screen}");
    }
    insta::assert_snapshot!("help_queue", screen);
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
}

#[test]
fn palette_runs_commands() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char(':'));
    typed(&mut app, "statis");
    insta::assert_snapshot!("palette", render(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, ScreenId::Statistics);
}

#[test]
fn notices_refresh_only_what_is_shown() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    drain(&mut rx);
    app.on_data(DataEvent::Notice(ChangeNotice::new(ChangeKind::Document)));
    assert!(drain(&mut rx).is_empty());
    app.on_data(DataEvent::Notice(ChangeNotice::new(
        ChangeKind::TicketCreated,
    )));
    // The queue on screen, and the header's counts and the member's offers and on-call
    // alerts (on every screen).
    assert!(matches!(
        drain(&mut rx).as_slice(),
        [Request::Queue(_), Request::Alerts, Request::Duty]
    ));
}

#[test]
fn small_and_resized_terminals_draw() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Admin);
    open_ticket(&mut app, &mut rx);
    for screen in ['1', '2', '3', '4', '5', '6'] {
        key(&mut app, KeyCode::Char(screen));
        for (w, h) in [(80, 24), (40, 12), (200, 60), (20, 6)] {
            let _ = render(&app, w, h);
        }
    }
}
