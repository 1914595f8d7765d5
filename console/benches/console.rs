//! The console's benchmark (figures in docs/benchmarks.md): with 1,000 open tickets (each with
//! its escalated conversation) and 100 live conversations, the first frame after sign-in, how
//! soon a change committed by another session is drawn (a new conversation, a message in the
//! open transcript, a new crisis ticket in the header; through the console's own worker,
//! listener and drawing, and for the crisis ticket also in the real binary under tmux), and the
//! real binary's idle CPU and resident memory. The reference beside the latencies: the same
//! write's commit alone, and one read of the page the console re-reads.
//!
//!   cargo bench -p amal-console --bench console
//!
//! Knobs: AMAL_BENCH_CONVERSATIONS (100 live), AMAL_BENCH_TICKETS (1000 open),
//! AMAL_BENCH_CHANGES (60 per kind), AMAL_BENCH_IDLE_SECONDS (30). Uses DATABASE_URL's server,
//! else a private cluster under target/amal-bench-console-db.

#[path = "../../engine/benches/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use amal_console::app::App;
use amal_console::data::{self, DataEvent};
use amal_console::theme::{ColorDepth, Theme};
use amal_console::ui;
use amal_engine::conversations::{self, MessageContent};
use amal_engine::decision::auto::Mode;
use amal_engine::events::{self, ChangeKind, ChangeNotice};
use amal_engine::lang::Lang;
use amal_engine::tickets::{self, NewTicket, Subject};

use common::{env_usize, fresh_database, percentile};

const PASSWORD: &str = "amal-demo-2026";

fn render(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    terminal.draw(|f| ui::draw(f, app)).expect("draw");
    terminal.backend().to_string()
}

/// Applies events until `done` holds, drawing after each batch as the real loop does.
async fn run_until(
    app: &mut App,
    events: &mut UnboundedReceiver<DataEvent>,
    done: impl Fn(&App, &str) -> bool,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), events.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the worker stopped"))?;
        app.on_data(event);
        while let Ok(event) = events.try_recv() {
            app.on_data(event);
        }
        let frame = render(app);
        if done(app, &frame) {
            return Ok(frame);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let live_n = env_usize("AMAL_BENCH_CONVERSATIONS", 100);
    let tickets_n = env_usize("AMAL_BENCH_TICKETS", 1_000);
    // Every open ticket has its escalated conversation; the live ones come on top.
    let conversations_n = live_n + tickets_n;
    let changes = env_usize("AMAL_BENCH_CHANGES", 60);
    let idle_seconds = env_usize("AMAL_BENCH_IDLE_SECONDS", 30);
    let (pool, url) = fresh_database("amal_bench_console", "amal-bench-console-db", 8).await?;
    amal_engine::seed::demo(&pool).await?;

    let started = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
         SELECT gen_random_uuid(), 'bench' || i || '@example.dz', '!', 'Person ' || i, \
                (ARRAY['ar-DZ','fr-FR','en-US'])[1 + i % 3]::locale_code, true, now() \
           FROM generate_series(1, greatest($1::int / 10, 1)) i",
    )
    .bind(conversations_n as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO conversations (user_id, mode, status, language, created_at) \
         SELECT u.id, 'AUTO', CASE WHEN i > $1::int - $2::int THEN 'escalated' ELSE 'active' END, u.locale, \
                now() - make_interval(secs => i * 7) \
           FROM generate_series(1, $1::int) i \
           JOIN LATERAL (SELECT id, locale FROM users WHERE email = 'bench' || (1 + i % greatest($1::int / 10, 1)) || '@example.dz') u ON true",
    )
    .bind(conversations_n as i32)
    .bind(tickets_n as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messages (conversation_id, role, content, created_at) \
         SELECT c.id, r.role, r.content, c.created_at + r.offs \
           FROM conversations c \
          CROSS JOIN (VALUES ('user', 'I need help with my drinking', interval '0 s'), \
                             ('assistant', 'Here is what our guide says about alcohol.', interval '1 s')) r(role, content, offs) \
          WHERE c.user_id IN (SELECT id FROM users WHERE email LIKE 'bench%')",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO support_tickets (conversation_id, user_id, subject, category, priority, status, created_at) \
         SELECT c.id, c.user_id, 'Bench ticket', \
                (ARRAY['addiction','mental_health','prevention','resources','crisis'])[1 + (row_number() OVER ()) % 5], \
                (ARRAY['low','medium','high','urgent'])[1 + (row_number() OVER ()) % 4], 'open', c.created_at \
           FROM conversations c WHERE c.status = 'escalated' AND c.user_id IN (SELECT id FROM users WHERE email LIKE 'bench%')",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM support_tickets)",
    )
    .fetch_one(&pool)
    .await?;
    eprintln!(
        "data: {} conversations, {} tickets (built in {:.1} s)",
        counts.0,
        counts.1,
        started.elapsed().as_secs_f64()
    );

    // First frame after sign-in, through the console's own worker and listener.
    let console_pool = amal_engine::db::connect_url(&url, 4).await?;
    let (requests, request_rx) = unbounded_channel();
    let (events_tx, mut events) = unbounded_channel();
    tokio::spawn(data::worker(
        console_pool.clone(),
        request_rx,
        events_tx.clone(),
    ));
    tokio::spawn(data::listener(console_pool.clone(), events_tx));
    let mut app = App::new(
        requests,
        Theme::default_theme(ColorDepth::TrueColor),
        None,
        Some("agent.demo@amal.example".into()),
        Utc::now(),
    );
    for c in PASSWORD.chars() {
        app.on_key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        ));
    }
    let submitted = Instant::now();
    app.on_key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Enter,
        crossterm::event::KeyModifiers::NONE,
    ));
    run_until(&mut app, &mut events, |app, _| app.ctx.session.is_some()).await?;
    let signed_in_at = Instant::now();
    run_until(&mut app, &mut events, |app, _| {
        app.conversations.list.loaded && app.conversations.transcript.is_some()
    })
    .await?;
    let first_frame = signed_in_at.elapsed();
    let sign_in = signed_in_at - submitted;
    eprintln!(
        "sign-in (argon2id): {:.0} ms; first full frame after sign-in: {:.1} ms",
        sign_in.as_secs_f64() * 1000.0,
        first_frame.as_secs_f64() * 1000.0
    );

    // A committed change on screen: a new conversation at the top of the live list.
    let person: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'bench1@example.dz'")
            .fetch_one(&pool)
            .await?;
    sqlx::query("UPDATE users SET name = 'Changed person' WHERE id = $1")
        .bind(person)
        .execute(&pool)
        .await?;
    let mut latencies = Vec::with_capacity(changes);
    let mut writes = Vec::with_capacity(changes);
    for _ in 0..changes {
        let before = app.conversations.list.items.first().map(|c| c.id);
        let t0 = Instant::now();
        let created = conversations::start(&pool, person, Mode::Auto, Some(Lang::Fr)).await?;
        writes.push(t0.elapsed());
        run_until(&mut app, &mut events, |app, frame| {
            app.conversations.list.items.first().map(|c| c.id) == Some(created.id)
                && app.conversations.list.items.first().map(|c| c.id) != before
                && frame.contains("Changed person")
        })
        .await?;
        latencies.push(t0.elapsed());
    }
    report(
        "new conversation on top of the list",
        &mut latencies,
        &mut writes,
    );
    let conversation_p95 = percentile(&latencies, 0.95);

    // A message from the person in the transcript on screen, written as a turn writes it
    // (message and notice in one transaction).
    let shown = app
        .conversations
        .transcript
        .as_ref()
        .map(|(id, _)| *id)
        .ok_or_else(|| anyhow::anyhow!("no transcript on screen"))?;
    let (mut latencies, mut writes) = (Vec::new(), Vec::new());
    for k in 0..changes {
        let text = format!("Bench message {k}");
        let t0 = Instant::now();
        let mut tx = pool.begin().await?;
        conversations::insert_user_message(&mut tx, shown, &MessageContent::parse(&text)?, None)
            .await?;
        events::notify(
            &mut tx,
            &ChangeNotice {
                kinds: vec![ChangeKind::Message],
                conversation_id: Some(shown),
                ..ChangeNotice::default()
            },
        )
        .await?;
        tx.commit().await?;
        writes.push(t0.elapsed());
        run_until(&mut app, &mut events, |_, frame| frame.contains(&text)).await?;
        latencies.push(t0.elapsed());
    }
    report(
        "new message in the open transcript",
        &mut latencies,
        &mut writes,
    );
    let message_p95 = percentile(&latencies, 0.95);

    // A new crisis ticket nobody holds, in the header's count, with the queue on screen.
    app.on_key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('2'),
        crossterm::event::KeyModifiers::NONE,
    ));
    run_until(&mut app, &mut events, |app, _| app.queue.tickets.loaded).await?;
    let (mut latencies, mut writes) = (Vec::new(), Vec::new());
    for _ in 0..changes {
        let next = crisis_count(&pool).await? + 1;
        let t0 = Instant::now();
        create_crisis_ticket(&pool, person).await?;
        writes.push(t0.elapsed());
        let wanted = format!("crisis {next} ");
        run_until(&mut app, &mut events, |_, frame| frame.contains(&wanted)).await?;
        latencies.push(t0.elapsed());
    }
    report(
        "new crisis ticket in the header",
        &mut latencies,
        &mut writes,
    );
    let crisis_p95 = percentile(&latencies, 0.95);

    // The real binary, idle on the queue: CPU and resident memory from /proc.
    let data_dir = tempfile::tempdir()?;
    let session = format!("amal-bench-{}", std::process::id());
    let command = format!(
        "env DATABASE_URL='{url}' AMAL_DATA_DIR='{}' TERM=xterm-256color {} --as agent.demo@amal.example",
        data_dir.path().display(),
        env!("CARGO_BIN_EXE_amal")
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output();
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "40",
        &command,
    ])?;
    std::thread::sleep(Duration::from_millis(800));
    tmux(&["send-keys", "-t", &session, "-l", PASSWORD])?;
    tmux(&["send-keys", "-t", &session, "Enter"])?;
    std::thread::sleep(Duration::from_secs(2));
    tmux(&["send-keys", "-t", &session, "2"])?;
    std::thread::sleep(Duration::from_secs(2));
    // The crisis count drawn by the real binary: the pane read every 5 ms until it shows it.
    let pane = || -> anyhow::Result<String> {
        Ok(String::from_utf8(
            tmux(&["capture-pane", "-p", "-t", &session])?.stdout,
        )?)
    };
    let (mut real, mut writes) = (Vec::new(), Vec::new());
    for _ in 0..changes.min(30) {
        let next = crisis_count(&pool).await? + 1;
        let wanted = format!("crisis {next} ");
        let t0 = Instant::now();
        create_crisis_ticket(&pool, person).await?;
        writes.push(t0.elapsed());
        loop {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "the real console did not show `{wanted}`:\n{}",
                pane()?
            );
            if pane()?.contains(&wanted) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        real.push(t0.elapsed());
        // Settled before the next one (and before the idle measure).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report(
        "real binary: new crisis ticket in the header (tmux)",
        &mut real,
        &mut writes,
    );
    std::thread::sleep(Duration::from_secs(2));
    let pid =
        String::from_utf8(tmux(&["list-panes", "-t", &session, "-F", "#{pane_pid}"])?.stdout)?
            .trim()
            .to_string();
    let cpu_ticks = |pid: &str| -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    };
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let before = cpu_ticks(&pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_seconds as u64));
    let used = (cpu_ticks(&pid)? - before) as f64 / ticks_per_second;
    let cpu_percent = used / t0.elapsed().as_secs_f64() * 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let screen = String::from_utf8(tmux(&["capture-pane", "-p", "-t", &session])?.stdout)?;
    tmux(&["kill-session", "-t", &session])?;
    anyhow::ensure!(
        screen.contains("TKT-"),
        "the console did not show the queue:\n{screen}"
    );
    eprintln!(
        "idle on the queue for {idle_seconds} s (countdowns ticking): CPU {cpu_percent:.2}%, resident memory {:.1} MB",
        rss_kb as f64 / 1024.0
    );
    println!(
        "console ({tickets_n} open tickets, {live_n} live conversations): first frame {:.1} ms; \
         change visible p95: conversation {conversation_p95:.1} ms, message {message_p95:.1} ms, \
         crisis ticket {crisis_p95:.1} ms, real binary {:.1} ms; idle CPU {cpu_percent:.2}%; RSS {:.1} MB",
        first_frame.as_secs_f64() * 1000.0,
        percentile(&real, 0.95),
        rss_kb as f64 / 1024.0
    );
    Ok(())
}

/// Prints one kind of change: from the write to the frame that shows it, beside the write's
/// own time (its commit included), the reference.
fn report(what: &str, latencies: &mut [Duration], writes: &mut [Duration]) {
    latencies.sort();
    writes.sort();
    eprintln!(
        "{what} ({} changes): visible p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; \
         reference, the write alone: p50 {:.1} ms, p95 {:.1} ms",
        latencies.len(),
        percentile(latencies, 0.5),
        percentile(latencies, 0.95),
        percentile(latencies, 1.0),
        percentile(writes, 0.5),
        percentile(writes, 0.95)
    );
}

/// Open crisis tickets nobody holds (the header's `crisis N`).
async fn crisis_count(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(tickets::alerts(&mut conn, Utc::now())
        .await?
        .unassigned_crisis)
}

/// A crisis ticket opened by the system for `person`, as the crisis gate opens one.
async fn create_crisis_ticket(pool: &sqlx::PgPool, person: uuid::Uuid) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let new = NewTicket {
        user_id: person,
        conversation_id: None,
        subject: Subject::new("Bench crisis")?,
        description: None,
        category: "crisis".into(),
        priority: "urgent".into(),
    };
    tickets::create(&mut conn, None, &new, Utc::now()).await?;
    Ok(())
}
