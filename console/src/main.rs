//! `amal`: the Amal operator console.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Parser, ValueEnum};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use futures::StreamExt;

use amal_console::app::App;
use amal_console::config::{self, ConsoleConfig};
use amal_console::theme::{self, ColorDepth, Theme};
use amal_console::{data, ui};
use amal_engine::Config;
use amal_engine::doctor;

/// Arabic reordering for terminals without bidi support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bidi {
    /// Reorder right-to-left text (most terminals need it).
    On,
    /// Leave it to the terminal (mlterm, Konsole, GNOME Terminal with bidi).
    Off,
}

/// Amal operator console: conversations, the ticket queue with SLA countdowns, ticket work,
/// statistics, knowledge review and the audit log.
///
/// Uses the database that DATABASE_URL names, else the embedded one under AMAL_DATA_DIR.
#[derive(Debug, Parser)]
#[command(name = "amal", version, about)]
struct Cli {
    /// Sign in as this staff member (only the password is asked).
    #[arg(long = "as", value_name = "EMAIL")]
    email: Option<String>,
    /// Theme: a built-in one (dark, light, high-contrast, desert) or themes/<NAME>.toml.
    /// Default: AMAL_THEME, else the staff member's saved choice, else the config file's
    /// `theme` (AMAL_CONSOLE_CONFIG or ~/.config/amal/console.toml), else dark.
    #[arg(long, env = "AMAL_THEME")]
    theme: Option<String>,
    /// Arabic reordering (switch at any time with Ctrl-B). Default: the config file's `bidi`,
    /// else on.
    #[arg(long, value_enum, env = "AMAL_BIDI")]
    bidi: Option<Bidi>,
    /// A line shown under the sign-in form (the demo lists its accounts there).
    #[arg(long, env = "AMAL_SIGN_IN_HINT", hide = true)]
    sign_in_hint: Option<String>,
    /// Print the database health report and exit instead of opening the console.
    #[arg(long)]
    once: bool,
}

fn init_logging(config: &Config) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    // Logs never go to the terminal: the console owns it.
    let dir = config.data_dir.join("logs");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating log directory {}", dir.display()))?;
    let appender = tracing_appender::rolling::daily(&dir, "amal-console.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AMAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    Ok(guard)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env();
    let _guard = init_logging(&config)?;
    amal_engine::audit::set_process_context(amal_engine::audit::AuditContext::machine("console"));
    let pool = amal_engine::db::connect_and_migrate(&config)
        .await
        .context("opening the database")?;
    if cli.once {
        println!("{}", doctor::examine(&pool).await);
        return Ok(());
    }
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "the console needs a terminal (use --once for a report)"
    );

    let file_config = match config::path() {
        Some(path) => config::load(&path).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "console configuration not used");
            eprintln!("warning: {e}; the file is ignored");
            ConsoleConfig::default()
        }),
        None => ConsoleConfig::default(),
    };
    let depth = ColorDepth::detect();
    let themes_dir = theme::themes_dir();
    let (theme, theme_error) = match cli.theme.as_ref().or(file_config.theme.as_ref()) {
        Some(name) => Theme::load(name, themes_dir.as_deref(), depth),
        None => (Theme::default_theme(depth), None),
    };
    let (requests, request_rx) = tokio::sync::mpsc::unbounded_channel();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(data::worker(pool.clone(), request_rx, events_tx.clone()));
    tokio::spawn(data::listener(pool.clone(), events_tx));

    let mut app = App::new(requests, theme, themes_dir, cli.email.clone(), Utc::now());
    app.bell = file_config.bell.unwrap_or(true);
    app.ctx.bidi = match cli.bidi {
        Some(b) => b == Bidi::On,
        None => file_config.bidi.unwrap_or(true),
    };
    if let Some(form) = &mut app.sign_in {
        form.hint = cli.sign_in_hint.clone();
        if let Some(e) = theme_error {
            tracing::warn!(error = %e, "theme not used");
            form.error = Some(format!("{e}; using the default theme"));
        }
    }
    // A theme chosen on the command line wins over the saved preference.
    let forced_theme = cli.theme.is_some();

    let mut terminal = ratatui::init();
    // Bracketed paste: a paste arrives as one event, not as thousands of keys (whose newlines
    // would be Ctrl-J).
    crossterm::execute!(std::io::stdout(), EnableMouseCapture, EnableBracketedPaste).ok();
    let result = run(&mut terminal, &mut app, &mut events, forced_theme).await;
    crossterm::execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture
    )
    .ok();
    ratatui::restore();
    data::end_shift().await;
    result
}

async fn run(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<data::DataEvent>,
    forced_theme: bool,
) -> Result<()> {
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if app.dirty {
            terminal.draw(|frame| ui::draw(frame, app))?;
            app.dirty = false;
        }
        if app.ring {
            app.ring = false;
            use std::io::Write;
            let mut out = std::io::stdout();
            out.write_all(b"\x07").and_then(|()| out.flush()).ok();
        }
        if app.should_quit {
            return Ok(());
        }
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
                    data::touch_shift();
                    app.on_key(key)
                }
                Some(Ok(Event::Mouse(mouse))) => {
                    data::touch_shift();
                    app.on_mouse(mouse)
                }
                Some(Ok(Event::Paste(text))) => {
                    data::touch_shift();
                    app.on_paste(text)
                }
                Some(Ok(Event::Resize(_, _))) => app.dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => return Ok(()),
            },
            Some(event) = events.recv() => {
                let keep_theme = forced_theme.then(|| app.ctx.theme.name.clone());
                app.on_data(event);
                // Everything already waiting is applied before the next frame.
                while let Ok(event) = events.try_recv() {
                    app.on_data(event);
                }
                if let Some(name) = keep_theme && app.ctx.theme.name != name {
                    app.apply_theme(&name, false);
                }
            }
            _ = tick.tick() => app.tick(Utc::now()),
        }
    }
}
