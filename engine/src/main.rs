//! `amal-engine`: the engine's server, workers and admin CLI.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use amal_engine::config::Config;
use amal_engine::{db, doctor, seed};

mod cli;

/// Amal support-chat engine.
///
/// With no DATABASE_URL the engine uses its embedded PostgreSQL cluster under AMAL_DATA_DIR
/// (default: the per-user data directory), creating and starting it on first use.
#[derive(Debug, Parser)]
#[command(name = "amal-engine", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to the assistant as an end user (stores a real conversation).
    Chat(cli::chat::ChatArgs),
    /// Staff tools over conversations: full-text search of messages (audited).
    #[command(subcommand)]
    Conversation(cli::conversation::ConversationCommand),
    /// Check, evaluate and benchmark the crisis gate.
    #[command(subcommand)]
    Crisis(cli::crisis::CrisisCommand),
    /// Dry-run the AUTO decision on a text (stores nothing).
    Decide(cli::decide::DecideArgs),
    /// Manage the embedded PostgreSQL cluster.
    #[command(subcommand)]
    Db(cli::db::DbCommand),
    /// Apply pending schema migrations.
    Migrate,
    /// Load the reference data (idempotent); --demo adds the demo data set.
    Seed {
        /// Also load the demo data set.
        #[arg(long)]
        demo: bool,
    },
    /// The knowledge base: ingest, review, search, evaluate, re-embed.
    #[command(subcommand)]
    Kb(cli::kb::KbCommand),
    /// Retention periods (admins set them, audited) and a run now.
    #[command(subcommand)]
    Retention(cli::retention::RetentionCommand),
    /// Serve the HTTP API for chat clients, with the background workers.
    Serve(Box<cli::serve::ServeArgs>),
    /// SLA targets per priority, business hours and holidays (admins change them, audited).
    #[command(subcommand)]
    Sla(cli::sla::SlaCommand),
    /// Staff accounts: add, list, disable, enable, unlock, passwd, role, set, presence, shift.
    #[command(subcommand)]
    Staff(cli::staff::StaffCommand),
    /// Support tickets: list, show, take, comment, status, assign, escalate, sweep.
    #[command(subcommand)]
    Ticket(cli::ticket::TicketCommand),
    /// Canned replies staff insert into a reply: list, add, edit, remove.
    #[command(subcommand)]
    Canned(cli::canned::CannedCommand),
    /// Demo traffic: simulated people writing in Arabic, French and English, some in crisis.
    Simulate(cli::simulate::SimulateArgs),
    /// Support statistics (refreshes the daily statistics first).
    Stats(cli::stats::StatsArgs),
    /// Check the database's health; exits non-zero when unhealthy.
    Doctor {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn init_tracing() {
    // Progress and diagnostics go to stderr so that stdout stays clean for URLs and JSON.
    let filter = tracing_subscriber::EnvFilter::try_from_env("AMAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,amal_engine=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    quiet_on_closed_stdout();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// A command whose output goes to a pipe that closes early (`ticket list | head`) ends quietly,
/// as Unix tools do (exit status 141, 128 + SIGPIPE), instead of printing a panic: Rust ignores
/// SIGPIPE, so printing to a closed pipe fails and `println!` panics on the failure. SIGPIPE
/// itself stays ignored: HTTP clients (a remote embedder or chat model) write with `writev`,
/// and a provider closing its connection must be an error the engine handles, not a signal
/// that kills it.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        // std's wording for a failed `print!`: "failed printing to stdout: <io error>", the
        // error being "Broken pipe (os error 32)" on Linux.
        if message.starts_with("failed printing to stdout")
            && message.to_ascii_lowercase().contains("broken pipe")
        {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The error and its causes on one line, skipping a cause whose text its parent already shows
/// (many errors print their source inside their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::from_env();
    // Who acts from this process, on every audit row it writes outside an HTTP request.
    amal_engine::audit::set_process_context(amal_engine::audit::AuditContext::machine(
        if matches!(cli.command, Command::Serve(_)) {
            "server"
        } else {
            "cli"
        },
    ));
    match cli.command {
        Command::Chat(args) => cli::chat::run(&config, args).await,
        Command::Crisis(cmd) => cli::crisis::run(cmd).await,
        Command::Decide(args) => cli::decide::run(&config, args).await,
        Command::Db(cmd) => cli::db::run(&config, cmd).await,
        Command::Kb(cmd) => cli::kb::run(&config, cmd).await,
        Command::Retention(cmd) => cli::retention::run(&config, cmd).await,
        Command::Serve(args) => cli::serve::run(&config, *args).await,
        Command::Staff(cmd) => cli::staff::run(&config, cmd).await,
        Command::Sla(cmd) => cli::sla::run(&config, cmd).await,
        Command::Ticket(cmd) => cli::ticket::run(&config, cmd).await,
        Command::Canned(cmd) => cli::canned::run(&config, cmd).await,
        Command::Stats(args) => cli::stats::run(&config, args).await,
        Command::Conversation(cmd) => cli::conversation::run(&config, cmd).await,
        Command::Simulate(args) => cli::simulate::run(&config, args).await,
        Command::Migrate => {
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            println!("migrations applied ({} known)", db::MIGRATOR.iter().count());
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { demo } => {
            let pool = db::connect_and_migrate(&config).await?;
            if demo {
                // The embedder first: a missing model stops the command before it writes.
                let embedder = amal_engine::knowledge::Embedder::from_env()
                    .await
                    .context("configuring the embedder")?;
                let accounts = seed::demo(&pool).await.context("loading the demo data")?;
                let kb = seed::demo_knowledge(&pool, &embedder)
                    .await
                    .context("loading the starter knowledge base")?;
                cli::kb::fill_sentences(&pool, &embedder).await?;
                println!(
                    "reference and demo data loaded; knowledge base: {} new, {} updated, {} unchanged, {} rejected documents",
                    kb.new, kb.updated, kb.unchanged, kb.rejected
                );
                cli::staff::print_demo_accounts(&accounts);
            } else {
                seed::reference(&pool)
                    .await
                    .context("loading the reference data")?;
                println!("reference data loaded");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { json } => {
            let report = doctor::run(&config).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(if report.healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
