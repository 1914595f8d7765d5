//! `amal`: the Amal operator console.
//!
//! This first version opens on the configured database (the embedded one by default) and shows
//! its health and contents; the console issue adds the working screens.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use amal_engine::Config;
use amal_engine::doctor::{self, CheckStatus, DoctorReport};

/// Amal operator console.
#[derive(Debug, Parser)]
#[command(name = "amal", version, about)]
struct Cli {
    /// Print the report and exit instead of opening the full-screen console.
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
    let pool = amal_engine::db::connect_and_migrate(&config)
        .await
        .context("opening the database")?;
    let report = doctor::examine(&pool).await;
    if cli.once {
        println!("{report}");
        return Ok(());
    }
    let terminal = ratatui::init();
    let result = run(terminal, &report);
    ratatui::restore();
    result
}

fn run(mut terminal: DefaultTerminal, report: &DoctorReport) -> Result<()> {
    loop {
        terminal.draw(|frame| draw(frame, report))?;
        if event::poll(Duration::from_millis(500))?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
            && matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
        {
            return Ok(());
        }
    }
}

fn draw(frame: &mut Frame, report: &DoctorReport) {
    let [header, checks, tables, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(report.checks.len() as u16 + 2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Line::from(" Amal — operator console (foundation preview)").add_modifier(Modifier::BOLD),
        header,
    );
    let rows = report.checks.iter().map(|c| {
        let mark = match c.status {
            CheckStatus::Ok => "ok".green(),
            CheckStatus::Warn => "warn".yellow(),
            CheckStatus::Fail => "FAIL".red().bold(),
        };
        Row::new(vec![
            mark.into(),
            c.name.into(),
            Line::from(c.detail.as_str()),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(5),
                Constraint::Length(13),
                Constraint::Fill(1),
            ],
        )
        .block(Block::bordered().title(" database health ")),
        checks,
    );
    let rows = report.tables.iter().map(|t| {
        Row::new(vec![
            t.table.clone(),
            t.rows_estimate.to_string(),
            doctor::human_bytes(t.total_bytes),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Fill(1),
                Constraint::Length(12),
                Constraint::Length(12),
            ],
        )
        .header(
            Row::new(vec!["table", "rows", "size"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(Block::bordered().title(" tables ")),
        tables,
    );
    frame.render_widget(Paragraph::new(" q quit").dim(), footer);
}
