//! The console fit for a crisis shift (issue 18): Arabic drawn right, composing safely,
//! pasting, alerts in the header and banner, scrolling and focus, the palette's go-to and the
//! supervisor's re-triage. Snapshots at 80x24 and 120x36.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::Paragraph;

use amal_console::app::App;
use amal_console::bidi;
use amal_console::data::{Command, DataEvent, Request};
use amal_console::screens::ScreenId;
use amal_console::screens::ticket::TicketPane;
use amal_console::ui;
use amal_engine::staff::StaffRole;
use amal_engine::tickets::{Alerts, TicketStatus, Tier, Triage};

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

fn open_ticket(app: &mut App, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>) {
    key(app, KeyCode::Char('2'));
    key(app, KeyCode::Enter);
    assert_eq!(app.screen, ScreenId::Ticket);
    app.on_data(DataEvent::Ticket(
        Box::new(fixtures::ticket_view()),
        fixtures::now(),
    ));
    drain(rx);
}

const NUMBER: &str = "TKT-2026-000012";

// ---------------------------------------------------------------------------------------------
// Arabic
// ---------------------------------------------------------------------------------------------

/// Every heading of the starter knowledge base's Arabic documents (seeds/knowledge/ar).
fn arabic_titles() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../seeds/knowledge/ar");
    let mut titles = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("# ").or(line.strip_prefix("## ")) {
                titles.push(title.trim().to_string());
            }
        }
    }
    assert!(titles.len() >= 20, "{titles:?}");
    titles
}

fn sorted_letters(text: &str) -> Vec<char> {
    let mut v: Vec<char> = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(bidi::mirror)
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn the_starter_knowledge_base_s_arabic_titles_are_drawn_whole() {
    let mut lam_alef = 0;
    for title in arabic_titles() {
        lam_alef += title.matches("لا").count() + title.matches("لأ").count();
        for width in [24u16, 38, 78] {
            let lines = bidi::wrap(&title, usize::from(width), true);
            let height = lines.len() as u16;
            let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
            terminal
                .draw(|f| f.render_widget(Paragraph::new(lines.join("\n")), f.area()))
                .unwrap();
            let buffer = terminal.backend().buffer();
            let rows: Vec<String> = (0..height)
                .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect())
                .collect();
            // Every character of the title is on screen, none cut off ...
            assert_eq!(
                sorted_letters(&rows.concat()),
                sorted_letters(&title),
                "{title} at {width}: {rows:#?}"
            );
            // ... and the title's first word is on the right edge of the first line.
            let first = title.split(' ').next().unwrap();
            assert!(
                rows[0].trim_end().ends_with(&bidi::visual(first)),
                "{title} at {width}: {rows:#?}"
            );
        }
    }
    assert!(lam_alef > 0, "the titles must exercise lam-alef");
}

#[test]
fn arabic_in_the_composer_and_prompts_is_shown_in_reading_order() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('i'));
    typed(&mut app, "لا تقلق (نحن هنا)");
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains(&bidi::visual("لا تقلق (نحن هنا)")),
        "{screen}"
    );
    insta::assert_snapshot!("composer_arabic", screen);
}

// ---------------------------------------------------------------------------------------------
// Composing
// ---------------------------------------------------------------------------------------------

#[test]
fn an_internal_note_stays_internal_and_public_after_a_note_is_confirmed() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('i'));
    ctrl(&mut app, 't');
    typed(&mut app, "first note");
    ctrl(&mut app, 's');
    let note = Command::Comment(NUMBER.into(), "first note".into(), true);
    assert_eq!(drain(&mut rx), vec![Request::Act(note.clone())]);
    app.on_data(DataEvent::Done(note, Ok(())));
    drain(&mut rx);
    // The second note typed straight away is a note too.
    typed(&mut app, "second note");
    ctrl(&mut app, 's');
    let second = Command::Comment(NUMBER.into(), "second note".into(), true);
    assert_eq!(drain(&mut rx), vec![Request::Act(second.clone())]);
    app.on_data(DataEvent::Done(second, Ok(())));
    drain(&mut rx);
    insta::assert_snapshot!("composer_internal_after_note", render(&app, 80, 24));
    // Switching to public right after a note asks first.
    ctrl(&mut app, 't');
    typed(&mut app, "to the person");
    ctrl(&mut app, 's');
    assert!(drain(&mut rx).is_empty());
    let screen = render(&app, 80, 24);
    assert!(screen.contains("INTERNAL NOTE"), "{screen}");
    insta::assert_snapshot!("confirm_public_after_note", screen);
    insta::assert_snapshot!("confirm_public_after_note_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Comment(
            NUMBER.into(),
            "to the person".into(),
            false
        ))]
    );
}

#[test]
fn a_paste_is_inserted_whole_with_every_line() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('i'));
    let long: String = "ابدأ من هنا. ".repeat(800);
    assert!(long.chars().count() >= 10_000);
    app.on_paste(long.clone());
    assert_eq!(app.ticket.drafts[NUMBER].content(), long);
    let draft = app.ticket.drafts.get_mut(NUMBER).unwrap();
    draft.text = Default::default();
    app.on_paste("one\ntwo\r\nthree\rfour".into());
    assert_eq!(app.ticket.drafts[NUMBER].content(), "one\ntwo\nthree\nfour");
    // The counter shows the characters used.
    let screen = render(&app, 80, 24);
    assert!(screen.contains("18 / 10000"), "{screen}");
    // Nothing was sent by the newlines.
    assert!(drain(&mut rx).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

#[test]
fn the_header_counts_crisis_tickets_nobody_holds_on_every_screen() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    for screen in ['1', '2', '3', '4', '5', '6'] {
        key(&mut app, KeyCode::Char(screen));
        for (w, h) in [(80, 24), (120, 36)] {
            let drawn = render(&app, w, h);
            let header = drawn.lines().next().unwrap();
            assert!(header.contains("crisis 1"), "{screen} at {w}: {header}");
            assert!(header.contains("breached 1"), "{screen} at {w}: {header}");
        }
    }
}

#[test]
fn a_new_crisis_ticket_raises_the_banner_and_the_bell_and_a_breach_the_banner_once() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    drain(&mut rx);
    // A notice of a new ticket asks for the counts, on any screen.
    app.on_data(DataEvent::Notice(amal_engine::events::ChangeNotice::new(
        amal_engine::events::ChangeKind::TicketCreated,
    )));
    assert!(drain(&mut rx).contains(&Request::Alerts));
    app.on_data(DataEvent::Alerts(Alerts {
        unassigned_crisis: 2,
        breached: 1,
        newest_unassigned_crisis: Some("TKT-2026-000013".into()),
    }));
    assert!(app.ring, "the bell rings");
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("NEW CRISIS TICKET TKT-2026-000013"),
        "{screen}"
    );
    insta::assert_snapshot!("alert_new_crisis", screen);
    insta::assert_snapshot!("alert_new_crisis_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Esc);
    assert!(app.alert.is_none());
    app.ring = false;
    // The same counts again: nothing new.
    app.on_data(DataEvent::Alerts(Alerts {
        unassigned_crisis: 2,
        breached: 1,
        newest_unassigned_crisis: Some("TKT-2026-000013".into()),
    }));
    assert!(app.alert.is_none() && !app.ring);
    // A breach: the banner, once, no bell.
    let breached = Alerts {
        unassigned_crisis: 2,
        breached: 2,
        newest_unassigned_crisis: Some("TKT-2026-000013".into()),
    };
    app.on_data(DataEvent::Alerts(breached.clone()));
    assert!(app.alert.as_ref().unwrap().text.contains("SLA BREACH"));
    assert!(!app.ring);
    key(&mut app, KeyCode::Esc);
    app.on_data(DataEvent::Alerts(breached));
    assert!(app.alert.is_none());
    // Without the bell configured, the banner alone.
    app.bell = false;
    app.on_data(DataEvent::Alerts(Alerts {
        unassigned_crisis: 3,
        breached: 2,
        newest_unassigned_crisis: Some("TKT-2026-000014".into()),
    }));
    assert!(app.alert.is_some() && !app.ring);
}

// ---------------------------------------------------------------------------------------------
// Scrolling, focus, palette
// ---------------------------------------------------------------------------------------------

#[test]
fn ticket_panes_scroll_the_right_way_and_stop_at_the_ends() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    let _ = render(&app, 80, 24);
    assert_eq!(app.ticket.focus, TicketPane::Comments);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.ticket.focus, TicketPane::Conversation);
    // Up goes back to older lines; it stops at the oldest however often it is pressed.
    for _ in 0..200 {
        key(&mut app, KeyCode::Char('k'));
    }
    let back = app.ticket.conversation.back;
    assert!(back > 0 && back < 200, "{back}");
    let top = render(&app, 80, 24);
    insta::assert_snapshot!("ticket_conversation_scrolled", top);
    insta::assert_snapshot!("ticket_conversation_scrolled_wide", render(&app, 120, 36));
    let _ = render(&app, 80, 24);
    // Down comes back towards the newest.
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.ticket.conversation.back, back - 1);
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(app.ticket.conversation.back, 0);
}

#[test]
fn the_conversations_transcript_scrolls_with_the_focus() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Tab);
    assert!(app.conversations.transcript_focus);
    let _ = render(&app, 80, 24);
    let selected = app.conversations.list.selection.selected;
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.conversations.list.selection.selected, selected);
    insta::assert_snapshot!("conversations_transcript_focus", render(&app, 80, 24));
}

#[test]
fn the_palette_shows_keys_and_goes_to_a_ticket_by_number() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char(':'));
    let screen = render(&app, 80, 24);
    assert!(screen.contains("take"), "{screen}");
    // Only this screen's commands: no composer, no knowledge review.
    assert!(
        !screen.contains("approve") && !screen.contains("public/internal"),
        "{screen}"
    );
    insta::assert_snapshot!("palette_keys", screen);
    typed(&mut app, "12");
    insta::assert_snapshot!("palette_go_to_ticket", render(&app, 120, 36));
    drain(&mut rx);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, ScreenId::Ticket);
    assert!(drain(&mut rx).contains(&Request::Ticket(NUMBER.into())));
}

// ---------------------------------------------------------------------------------------------
// Re-triage and crisis safeguards
// ---------------------------------------------------------------------------------------------

#[test]
fn supervisors_re_triage_through_choosers_and_a_reason() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Supervisor);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('y'));
    insta::assert_snapshot!("triage_field", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter); // tier
    insta::assert_snapshot!("triage_value_wide", render(&app, 120, 36));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter); // T2
    typed(&mut app, "needs a psychologist");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Triage(
            NUMBER.into(),
            Triage {
                tier: Some(Tier::T2),
                ..Triage::default()
            },
            "needs a psychologist".into()
        ))]
    );
    // Agents are told it is not theirs (the engine refuses it too).
    let (mut agent, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut agent, &mut rx);
    key(&mut agent, KeyCode::Char('y'));
    assert!(agent.overlay.is_none());
    assert!(agent.toast.as_ref().unwrap().text.contains("supervisors"));
}

#[test]
fn a_crisis_ticket_waits_only_with_a_reason() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    open_ticket(&mut app, &mut rx);
    key(&mut app, KeyCode::Char('p'));
    assert!(
        drain(&mut rx).is_empty(),
        "one key does not stop a crisis clock"
    );
    insta::assert_snapshot!("crisis_pending_reason", render(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    assert!(drain(&mut rx).is_empty(), "not without a reason");
    key(&mut app, KeyCode::Char('p'));
    typed(&mut app, "calling back at 14:00 as agreed");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        drain(&mut rx),
        vec![Request::Act(Command::Status(
            NUMBER.into(),
            TicketStatus::Pending,
            Some("calling back at 14:00 as agreed".into())
        ))]
    );
}

#[test]
fn slash_filters_every_list_screen() {
    let (mut app, _rx) = fixtures::app(StaffRole::Admin);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "frère");
    insta::assert_snapshot!("queue_filter_prompt", render(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.queue.tickets.items.len(), 1);
    assert_eq!(app.queue.tickets.items[0].ticket_number, "TKT-2026-000009");
    // A new page keeps the filter.
    app.on_data(DataEvent::Queue(fixtures::tickets(), fixtures::now()));
    assert_eq!(app.queue.tickets.items.len(), 1);
    insta::assert_snapshot!("queue_filtered_wide", render(&app, 120, 36));
    // Esc in the prompt clears it.
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.queue.tickets.items.len(), 4);
    for (screen, rows) in [('5', 0usize), ('6', 0)] {
        key(&mut app, KeyCode::Char(screen));
        key(&mut app, KeyCode::Char('/'));
        typed(&mut app, "no such text anywhere");
        key(&mut app, KeyCode::Enter);
        let shown = match screen {
            '5' => app.knowledge.documents.items.len(),
            _ => app.audit.records.items.len(),
        };
        assert_eq!(shown, rows, "screen {screen}");
    }
}

#[test]
fn a_locked_account_is_told_when_in_words() {
    let now = fixtures::now();
    let text =
        amal_console::data::locked_message(now + chrono::Duration::seconds(11 * 60 + 30), now);
    assert!(text.contains("(in 12 min)"), "{text}");
    assert!(text.contains("ask an admin"), "{text}");
    assert!(!text.contains("UTC") && !text.contains("+00:00"), "{text}");
}

#[test]
fn a_live_conversation_without_a_ticket_is_taken_over_once_confirmed() {
    let (mut app, mut rx) = fixtures::app(StaffRole::Agent);
    let i = app
        .conversations
        .list
        .items
        .iter()
        .position(|c| c.ticket_number.is_none())
        .expect("a conversation without a ticket");
    app.conversations.list.selection.selected = i;
    let id = app.conversations.list.items[i].id;
    key(&mut app, KeyCode::Enter);
    assert!(app.toast.as_ref().unwrap().text.contains("takes it over"));
    drain(&mut rx);
    key(&mut app, KeyCode::Char('t'));
    assert!(drain(&mut rx).is_empty());
    insta::assert_snapshot!("take_over_confirm", render(&app, 80, 24));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(drain(&mut rx), vec![Request::Act(Command::TakeOver(id))]);
}

#[test]
fn the_palette_keeps_the_highlighted_command_in_view() {
    let (mut app, _rx) = fixtures::app(StaffRole::Agent);
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char(':'));
    for _ in 0..30 {
        key(&mut app, KeyCode::Down);
    }
    let screen = render(&app, 80, 24);
    // The last command (choose theme) is highlighted and shown.
    assert!(screen.contains("choose theme"), "{screen}");
}
