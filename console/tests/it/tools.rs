//! The shift tools of issue 18: assigning through a staff picker with each member's load,
//! bulk assign and close on the queue, canned replies (picked, inserted, managed), who else
//! views a ticket, knowledge read before approval and the audit log's filters. Snapshots of
//! every new overlay at 80x24 and 120x36.

use chrono::Duration;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

use amal_console::app::App;
use amal_console::chrome::overlay::Overlay;
use amal_console::chrome::picker::PickerPurpose;
use amal_console::data::{Command, DataEvent, Request};
use amal_console::screens::ScreenId;
use amal_console::ui;
use amal_engine::canned::CannedReply;
use amal_engine::knowledge::store::DocumentText;
use amal_engine::lang::Lang;
use amal_engine::presence::{OnShift, Presence, StaffProfile};
use amal_engine::staff::StaffRole;
use amal_engine::tickets::{Tier, Viewer};

use super::fixtures;

const NUMBER: &str = "TKT-2026-000012";

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

fn drain(rx: &mut UnboundedReceiver<Request>) -> Vec<Request> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r);
    }
    out
}

fn open_ticket(app: &mut App, rx: &mut UnboundedReceiver<Request>) {
    key(app, KeyCode::Char('2'));
    key(app, KeyCode::Enter);
    assert_eq!(app.screen, ScreenId::Ticket);
    app.on_data(DataEvent::Ticket(
        Box::new(fixtures::ticket_view()),
        fixtures::now(),
    ));
    drain(rx);
}

fn member(
    name: &str,
    email: &str,
    presence: Presence,
    open: i64,
    langs: &[Lang],
    tier: Tier,
) -> OnShift {
    OnShift {
        profile: StaffProfile {
            user_id: Uuid::new_v4(),
            email: email.into(),
            languages: langs.to_vec(),
            tier,
            capacity: 5,
            on_call: false,
        },
        name: name.into(),
        presence,
        since: Some(fixtures::now() - Duration::minutes(40)),
        open_tickets: open,
    }
}

fn board() -> Vec<OnShift> {
    vec![
        member(
            "Karim Benali",
            "karim@amal.example",
            Presence::Online,
            4,
            &[Lang::Ar, Lang::Fr],
            Tier::T2,
        ),
        member(
            "Nadia (agent)",
            "agent.demo@amal.example",
            Presence::Online,
            1,
            &[Lang::Ar, Lang::En],
            Tier::T1,
        ),
        member(
            "Sarah Martin",
            "sarah@amal.example",
            Presence::Away,
            0,
            &[Lang::Fr, Lang::En],
            Tier::T1,
        ),
        member(
            "Yacine",
            "yacine@amal.example",
            Presence::Offline,
            2,
            &[Lang::Ar],
            Tier::T3,
        ),
    ]
}

fn reply(n: u128, lang: Lang, title: &str, body: &str) -> CannedReply {
    CannedReply {
        id: Uuid::from_u128(n),
        lang,
        title: title.into(),
        body: body.into(),
        updated_by: None,
        updated_at: fixtures::now(),
    }
}

fn replies() -> Vec<CannedReply> {
    vec![
        reply(
            71,
            Lang::Ar,
            "ترحيب",
            "مرحبا {{name}}، أنا هنا معك. خذ وقتك واحكِ لي ما الذي يحدث معك الآن.",
        ),
        reply(
            72,
            Lang::Ar,
            "خط الأزمات",
            "مرحبا {{name}}، سلامتك هي الأهم الآن. اتصل فورا بخط الأزمات {{crisis_line}}.",
        ),
        reply(
            73,
            Lang::En,
            "Welcome",
            "Hello {{name}}, I am here with you.",
        ),
        reply(
            74,
            Lang::Fr,
            "Accueil",
            "Bonjour {{name}}, je suis là avec vous.",
        ),
    ]
}

#[test]
fn assigning_goes_through_a_staff_picker_with_presence_and_load() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('a'));
    assert!(drain(&mut rx).contains(&Request::Staff));
    assert!(render(&app, 80, 24).contains("loading…"));
    app.on_data(DataEvent::Staff(board()));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("Karim Benali") && screen.contains("4/5"),
        "{screen}"
    );
    insta::assert_snapshot!("assign_picker", screen);
    insta::assert_snapshot!("assign_picker_wide", render(&app, 120, 36));
    // Typing filters by name or e-mail; Enter assigns to the one left.
    typed(&mut app, "sarah");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Assign(
            NUMBER.into(),
            "sarah@amal.example".into()
        ))]
    );
    assert!(app.overlay.is_none());
}

#[test]
fn marked_queue_tickets_are_assigned_and_closed_together_crisis_ones_named() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.queue.marked.len(), 2);
    let marked: Vec<String> = app.queue.marked.iter().cloned().collect();
    assert!(marked.contains(&NUMBER.to_string()));
    let screen = render(&app, 80, 24);
    assert!(screen.contains("2 marked"), "{screen}");
    insta::assert_snapshot!("queue_marked", screen);

    key(&mut app, KeyCode::Char('C'));
    let screen = render(&app, 120, 36);
    assert!(screen.contains("CRISIS"), "{screen}");
    insta::assert_snapshot!("bulk_close_confirm_wide", screen);
    drain(&mut rx);
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::BulkClose(marked.clone(), true))]
    );

    key(&mut app, KeyCode::Char('a'));
    match &app.overlay {
        Some(Overlay::Picker(p)) => assert_eq!(p.purpose, PickerPurpose::Assign(marked.clone())),
        _ => panic!("no staff picker"),
    }
    app.on_data(DataEvent::Staff(board()));
    key(&mut app, KeyCode::Enter);
    assert!(drain(&mut rx).contains(&Request::Act(Command::BulkAssign(
        marked,
        "karim@amal.example".into()
    ))));
    // Done: the marks go.
    app.on_data(DataEvent::Done(
        Command::BulkAssign(vec![], "karim@amal.example".into()),
        Ok(()),
    ));
    assert!(app.queue.marked.is_empty());
}

#[test]
fn canned_replies_are_picked_in_the_ticket_s_language_and_inserted_filled() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('c'));
    assert!(drain(&mut rx).contains(&Request::Canned));
    app.on_data(DataEvent::Canned(replies()));
    let screen = render(&app, 80, 24);
    // The ticket is in Arabic: only the Arabic replies are offered.
    assert!(
        !screen.contains("Welcome") && !screen.contains("Accueil"),
        "{screen}"
    );
    insta::assert_snapshot!("canned_picker", screen);
    insta::assert_snapshot!("canned_picker_wide", render(&app, 120, 36));
    typed(&mut app, "الأزمات");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::CannedFill(NUMBER.into(), Uuid::from_u128(72))]
    );
    let filled = "مرحبا بك، سلامتك هي الأهم الآن. اتصل فورا بخط الأزمات 3033.";
    app.on_data(DataEvent::CannedText(NUMBER.into(), filled.into()));
    assert!(app.ticket.composing);
    assert_eq!(app.ticket.drafts[NUMBER].content(), filled);
    // From the composer too (Ctrl-G), without leaving it.
    ctrl(&mut app, 'g');
    assert!(matches!(app.overlay, Some(Overlay::Picker(_))));
    key(&mut app, KeyCode::Esc);
    assert!(app.ticket.composing);
}

#[test]
fn supervisors_add_edit_and_remove_canned_replies_agents_do_not() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('K'));
    assert!(app.overlay.is_none());
    assert!(app.toast.as_ref().unwrap().text.contains("supervisors"));

    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('K'));
    app.on_data(DataEvent::Canned(replies()));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("Welcome") && screen.contains("Ctrl-N new"),
        "{screen}"
    );
    insta::assert_snapshot!("canned_manager", screen);

    // New: language, title, then the text in the editor (Enter is a new line).
    ctrl(&mut app, 'n');
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "Rappel");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "Bonjour {{name}},");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "la ligne : {{crisis_line}}");
    insta::assert_snapshot!("canned_editor_wide", render(&app, 120, 36));
    drain(&mut rx);
    ctrl(&mut app, 's');
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::CannedAdd(
            Lang::Fr,
            "Rappel".into(),
            "Bonjour {{name}},\nla ligne : {{crisis_line}}".into()
        ))]
    );

    // Edit: the title and text as they are, changed.
    key(&mut app, KeyCode::Char('K'));
    typed(&mut app, "welcome");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    typed(&mut app, " Take your time.");
    ctrl(&mut app, 's');
    match drain(&mut rx).pop() {
        Some(Request::Act(Command::CannedEdit(id, change))) => {
            assert_eq!(id, Uuid::from_u128(73));
            assert_eq!(change.title.as_deref(), Some("Welcome"));
            assert_eq!(
                change.body.as_deref(),
                Some("Hello {{name}}, I am here with you. Take your time.")
            );
        }
        other => panic!("{other:?}"),
    }

    // Remove: confirmed first.
    key(&mut app, KeyCode::Char('K'));
    typed(&mut app, "accueil");
    ctrl(&mut app, 'd');
    assert!(matches!(app.overlay, Some(Overlay::Confirm(..))));
    drain(&mut rx);
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::CannedRemove(Uuid::from_u128(74)))]
    );
}

#[test]
fn others_viewing_the_ticket_are_named_and_the_mark_is_renewed_and_dropped() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    app.tick(fixtures::now());
    assert!(drain(&mut rx).contains(&Request::Viewing(NUMBER.into())));
    // The heartbeat: not again within 10 s, again after.
    app.tick(fixtures::now() + Duration::seconds(5));
    assert!(!drain(&mut rx).contains(&Request::Viewing(NUMBER.into())));
    app.tick(fixtures::now() + Duration::seconds(10));
    assert!(drain(&mut rx).contains(&Request::Viewing(NUMBER.into())));
    let karim = Viewer {
        email: "karim@amal.example".into(),
        name: "Karim".into(),
        seen_at: fixtures::now(),
    };
    app.on_data(DataEvent::Viewers(NUMBER.into(), vec![karim]));
    let screen = render(&app, 80, 24);
    assert!(screen.contains("also viewing: Karim"), "{screen}");
    insta::assert_snapshot!("ticket_also_viewing", screen);
    insta::assert_snapshot!("ticket_also_viewing_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Char('2'));
    assert!(drain(&mut rx).contains(&Request::StopViewing(NUMBER.into())));
}

#[test]
fn a_document_is_read_before_it_is_approved_and_approval_is_confirmed() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Admin);
    key(&mut app, KeyCode::Char('5'));
    key(&mut app, KeyCode::Down);
    drain(&mut rx);
    key(&mut app, KeyCode::Char('a'));
    let id = Uuid::from_u128(52);
    assert_eq!(drain(&mut rx), vec![Request::DocumentText(id)]);
    let paragraph = "Après l'arrêt du cannabis, le sommeil est souvent perturbé pendant deux \
                     à trois semaines : endormissement difficile, rêves intenses.";
    let content = (1..=12)
        .map(|i| format!("{i}. {paragraph}"))
        .collect::<Vec<_>>()
        .join("\n\n");
    app.on_data(DataEvent::Document(Box::new(DocumentText {
        id,
        title: "Le sommeil après l'arrêt du cannabis".into(),
        lang: "fr".into(),
        review_status: "pending".into(),
        content,
    })));
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("1. Après") && screen.contains("↑0"),
        "{screen}"
    );
    insta::assert_snapshot!("document_review", screen);
    for _ in 0..2 {
        key(&mut app, KeyCode::Char('j'));
    }
    let screen = render(&app, 120, 36);
    assert!(screen.contains("↑2"), "{screen}");
    insta::assert_snapshot!("document_review_scrolled_wide", screen);
    key(&mut app, KeyCode::Char('a'));
    assert!(matches!(app.overlay, Some(Overlay::Confirm(..))));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(drain(&mut rx), vec![Request::Act(Command::Approve(id))]);
}

#[test]
fn the_audit_log_is_for_supervisors_and_filters_in_the_engine() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    drain(&mut rx);
    key(&mut app, KeyCode::Char('6'));
    assert!(
        !drain(&mut rx)
            .iter()
            .any(|r| matches!(r, Request::Audit(_)))
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("supervisors and admins"), "{screen}");
    insta::assert_snapshot!("audit_agent", screen);

    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    key(&mut app, KeyCode::Char('6'));
    drain(&mut rx);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "actor:agent outcome:ok since:2h");
    key(&mut app, KeyCode::Enter);
    match drain(&mut rx).pop() {
        Some(Request::Audit(f)) => {
            assert_eq!(f.actor.as_deref(), Some("agent"));
            assert_eq!(f.succeeded, Some(true));
            assert_eq!(f.since, Some(fixtures::now() - Duration::hours(2)));
        }
        other => panic!("{other:?}"),
    }
    let screen = render(&app, 120, 36);
    assert!(screen.contains("ticket TKT-2026-000012"), "{screen}");
    insta::assert_snapshot!("audit_filtered_wide", screen);
    // A term it does not know is named, and the filter stays.
    key(&mut app, KeyCode::Char('/'));
    ctrl(&mut app, 'u');
    typed(&mut app, " colour:red");
    key(&mut app, KeyCode::Enter);
    assert!(app.toast.as_ref().unwrap().text.contains("colour:"));
    assert_eq!(app.audit.filter.actor.as_deref(), Some("agent"));
}
