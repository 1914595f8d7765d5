//! The real `amal` binary in tmux against a real database. An agent: sign in, open the queue,
//! take a ticket, post a public reply and an internal note, resolve it, and check the rows. A
//! supervisor: a crisis ticket opened meanwhile raises the banner; re-triage from the palette.

use std::process::Command;
use std::time::{Duration, Instant};

use amal_engine::db::PgPool;
use amal_engine::tickets::{self, Queue, QueueFilter};

/// The URL of the test's own database: the server of DATABASE_URL, the database `name`.
fn database_url(name: &str) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL (run through scripts/test.sh)");
    amal_engine::db::with_database(&server, name)
}

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Self {
        // One session per console started: the tests of this file run at the same time.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("amal-e2e-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status()
            .expect("tmux is installed (scripts/setup.sh installs it)");
        assert!(status.success());
        Tmux { session }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
        // Separate key presses: an Esc followed at once by a letter reads as Alt-letter.
        std::thread::sleep(Duration::from_millis(150));
    }

    fn text(&self, text: &str) {
        assert!(
            Command::new("tmux")
                .args(["send-keys", "-t", &self.session, "-l", text])
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Pastes `text` as a terminal does with bracketed paste on (tmux `paste-buffer -p`; `-r`
    /// keeps LF line ends as they are).
    fn paste(&self, text: &str) {
        let file = std::env::temp_dir().join(format!("{}-paste.txt", self.session));
        std::fs::write(&file, text).unwrap();
        let buffer = format!("{}-paste", self.session);
        let load = Command::new("tmux")
            .args(["load-buffer", "-b", &buffer, file.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(load.success());
        let paste = Command::new("tmux")
            .args([
                "paste-buffer",
                "-p",
                "-r",
                "-d",
                "-b",
                &buffer,
                "-t",
                &self.session,
            ])
            .status()
            .unwrap();
        assert!(paste.success());
        std::fs::remove_file(file).ok();
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Waits until the screen shows `needle` (10 s at most).
    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "waited 10 s for {needle:?}; the screen shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn is_running(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn sign_in_take_reply_note_and_resolve(pool: PgPool) {
    amal_engine::seed::demo(&pool).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let first = tickets::queue(
        &mut conn,
        None,
        &QueueFilter::new(Queue::Open),
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .remove(0);
    assert!(
        first.assigned_to_id.is_none(),
        "the demo's most urgent ticket is unassigned"
    );
    drop(conn);

    let data_dir = tempfile::tempdir().unwrap();
    let command = format!(
        "env DATABASE_URL='{}' AMAL_DATA_DIR='{}' TERM=xterm-256color {} --as agent.demo@amal.example",
        database_url(&name),
        data_dir.path().display(),
        env!("CARGO_BIN_EXE_amal"),
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("Password");
    tmux.text("amal-demo-2026");
    tmux.keys(&["Enter"]);
    tmux.wait_for("│age");
    tmux.keys(&["?"]);
    tmux.wait_for("Keys · Conversations");
    tmux.keys(&["Escape"]);
    tmux.keys(&["2"]);
    tmux.wait_for(&first.ticket_number);
    tmux.keys(&["Enter"]);
    tmux.wait_for("press i to write");
    tmux.keys(&["t"]);
    tmux.wait_for(&format!("took {}", first.ticket_number));
    tmux.keys(&["i"]);
    tmux.text("We are with you now. Are you somewhere safe?");
    tmux.keys(&["C-s"]);
    tmux.wait_for(&format!("reply sent on {}", first.ticket_number));
    tmux.keys(&["C-t"]);
    tmux.wait_for("INTERNAL NOTE · staff only");
    tmux.text("Called the person back; safety plan agreed.");
    tmux.keys(&["C-s"]);
    tmux.wait_for(&format!("internal note added to {}", first.ticket_number));
    // The header counts crisis tickets nobody holds on every screen.
    assert!(
        tmux.screen()
            .lines()
            .next()
            .unwrap_or("")
            .contains("crisis ")
    );
    // A pasted note of several lines, straight after the first: still a note, every line kept.
    tmux.paste("Plan:\nline two\nline three");
    tmux.wait_for("line three");
    tmux.keys(&["C-s"]);
    tmux.wait_for("INTERNAL NOTE · staff only");
    let start = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM ticket_comments WHERE ticket_id = $1")
                .bind(first.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if n == 3 || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.keys(&["Escape"]);
    tmux.keys(&["R"]);
    tmux.wait_for("resolution notes");
    tmux.text("Safe with family; follow-up booked.");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&format!("{} is now resolved", first.ticket_number));
    tmux.keys(&["q"]);
    let start = Instant::now();
    while tmux.is_running() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!tmux.is_running(), "q quits the console");

    let (status, holder, notes): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT t.status, u.email::text, t.resolution_notes FROM support_tickets t \
         LEFT JOIN users u ON u.id = t.assigned_to WHERE t.id = $1",
    )
    .bind(first.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "resolved");
    assert_eq!(holder.as_deref(), Some("agent.demo@amal.example"));
    assert_eq!(
        notes.as_deref(),
        Some("Safe with family; follow-up booked.")
    );
    let comments: Vec<(String, bool, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT content, is_internal, message_id FROM ticket_comments WHERE ticket_id = $1 ORDER BY created_at",
    )
    .bind(first.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert_eq!(comments[2].0, "Plan:\nline two\nline three");
    assert!(comments[2].1, "a note after a note stays internal");
    assert_eq!(
        comments[0].0,
        "We are with you now. Are you somewhere safe?"
    );
    assert!(
        !comments[0].1 && comments[0].2.is_some(),
        "the public reply reaches the conversation"
    );
    assert_eq!(comments[1].0, "Called the person back; safety plan agreed.");
    assert!(
        comments[1].1 && comments[1].2.is_none(),
        "the note stays internal"
    );
    let staff_messages: Vec<String> = sqlx::query_scalar(
        "SELECT content FROM messages WHERE conversation_id = $1 AND role = 'staff'",
    )
    .bind(first.conversation_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        staff_messages,
        vec!["We are with you now. Are you somewhere safe?".to_string()]
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE resource_id = $1 ORDER BY created_at",
    )
    .bind(first.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(actions.iter().any(|a| a == "ticket.take"), "{actions:?}");
    assert!(
        actions
            .iter()
            .filter(|a| a.starts_with("ticket.comment"))
            .count()
            >= 2,
        "{actions:?}"
    );
    // Opening the ticket (and its conversation) is audited once, not at every refresh that
    // the take, the reply, the note and the resolution brought.
    assert_eq!(
        actions.iter().filter(|a| *a == "ticket.read").count(),
        1,
        "{actions:?}"
    );
}

/// A supervisor at 80×24: a crisis ticket opened by a person's message while the console is open
/// raises the banner; the supervisor goes to it from the palette and re-triages its tier, which
/// the ticket and the audit log show.
#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn a_new_crisis_raises_the_banner_and_a_supervisor_re_triages_it(pool: PgPool) {
    use amal_engine::conversations::{self, MessageContent};
    use amal_engine::decision::auto::{DecisionEngine, Mode};
    use amal_engine::decision::crisis::CrisisNumbers;
    use amal_engine::knowledge::{Embedder, Retriever};

    amal_engine::seed::demo(&pool).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let command = format!(
        "env DATABASE_URL='{}' AMAL_DATA_DIR='{}' TERM=xterm-256color {} --as supervisor.demo@amal.example",
        database_url(&name),
        data_dir.path().display(),
        env!("CARGO_BIN_EXE_amal"),
    );
    let tmux = Tmux::start(&command, 80, 24);
    tmux.wait_for("Password");
    tmux.text("amal-demo-2026");
    tmux.keys(&["Enter"]);
    tmux.wait_for("breached");

    // A person writes in crisis: the turn opens an urgent crisis ticket nobody holds.
    let person: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
         VALUES ('e2e.person@example.org', '!', 'Person', 'ar-DZ', true, now()) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let engine = DecisionEngine::new(
        Retriever::new(Embedder::hashed()),
        CrisisNumbers {
            crisis_line: "3033".into(),
            emergency_number: "14".into(),
        },
        0.5,
        false,
    )
    .unwrap();
    let conversation = conversations::start(&pool, person, Mode::Auto, None)
        .await
        .unwrap()
        .id;
    let content = MessageContent::parse("je veux me suicider ce soir").unwrap();
    let turn = amal_engine::turn::post_message(&pool, &engine, conversation, None, &content)
        .await
        .unwrap();
    let ticket = turn.ticket.expect("the crisis gate opens a ticket");
    let number = ticket.ticket_number.clone();
    tmux.wait_for("NEW CRISIS TICKET");
    tmux.keys(&["Escape"]);

    // Straight to it from the palette, then re-triage: tier (third field), T2 (second value).
    tmux.keys(&[":"]);
    tmux.text(&number);
    tmux.wait_for(&format!("go to ticket {number}"));
    tmux.keys(&["Enter"]);
    tmux.wait_for("press i to write");
    tmux.keys(&["y"]);
    tmux.wait_for(&format!("Re-triage {number}"));
    tmux.keys(&["j", "j", "Enter"]);
    tmux.wait_for("new tier");
    tmux.keys(&["j", "Enter"]);
    tmux.wait_for("Why set");
    tmux.text("needs a senior counsellor");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&format!("re-triaged {number}"));
    tmux.keys(&["q"]);

    let tier: String =
        sqlx::query_scalar("SELECT escalation_tier FROM support_tickets WHERE id = $1")
            .bind(ticket.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tier, "T2");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE resource_id = $1 AND action = 'ticket.triage'",
    )
    .bind(ticket.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}
