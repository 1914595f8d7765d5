//! `amal-engine`: the engine's server, workers and admin CLI.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use amal_engine::config::{Config, DatabaseSource};
use amal_engine::{db, doctor, seed};

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
    /// Manage the embedded PostgreSQL cluster.
    #[command(subcommand)]
    Db(DbCommand),
    /// Apply pending schema migrations.
    Migrate,
    /// Load the reference data (idempotent); --demo adds the demo data set.
    Seed {
        /// Also load the demo data set.
        #[arg(long)]
        demo: bool,
    },
    /// Check the database's health; exits non-zero when unhealthy.
    Doctor {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Create the cluster if needed, start it and apply migrations.
    Start,
    /// Stop the cluster.
    Stop,
    /// Show whether the cluster exists and runs.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the database's connection URL as the last line (starting it if needed).
    Url,
    /// Delete the embedded cluster and all its data, then create a fresh, migrated one.
    Reset {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
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
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
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
    match cli.command {
        Command::Db(cmd) => db_command(&config, cmd).await,
        Command::Migrate => {
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            println!("migrations applied ({} known)", db::MIGRATOR.iter().count());
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { demo } => {
            let pool = db::connect_and_migrate(&config).await?;
            if demo {
                seed::demo(&pool).await.context("loading the demo data")?;
                println!("reference and demo data loaded");
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

fn require_embedded(config: &Config, what: &str) -> Result<()> {
    if let DatabaseSource::External(url) = &config.database {
        bail!(
            "DATABASE_URL is set ({}): `db {what}` manages only the embedded cluster; unset DATABASE_URL to use it",
            db::redact_url(url)
        );
    }
    Ok(())
}

async fn db_command(config: &Config, cmd: DbCommand) -> Result<ExitCode> {
    match cmd {
        DbCommand::Start => {
            require_embedded(config, "start")?;
            let pool = db::connect_and_migrate(config).await?;
            pool.close().await;
            let cluster = db::embedded_cluster(config)?;
            let status = cluster.status()?;
            println!(
                "embedded PostgreSQL running on 127.0.0.1:{} (data in {})",
                status.port.unwrap_or_default(),
                status.data_dir.display()
            );
        }
        DbCommand::Stop => {
            require_embedded(config, "stop")?;
            let cluster = db::embedded_cluster(config)?;
            let was_running = tokio::task::spawn_blocking(move || cluster.stop()).await??;
            println!(
                "{}",
                if was_running {
                    "stopped"
                } else {
                    "not running"
                }
            );
        }
        DbCommand::Status { json } => {
            require_embedded(config, "status")?;
            let status = db::embedded_cluster(config)?.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("data directory: {}", status.data_dir.display());
                println!("initialized:    {}", status.initialized);
                println!("running:        {}", status.running);
                if let Some(port) = status.port {
                    println!("address:        127.0.0.1:{port}");
                }
                if let Some(pid) = status.pid {
                    println!("pid:            {pid}");
                }
                println!("binaries:       {}", status.pg_bin.display());
                println!("runs as:        {}", status.run_as);
            }
        }
        DbCommand::Url => {
            let url = match &config.database {
                DatabaseSource::External(url) => url.clone(),
                DatabaseSource::Embedded(_) => {
                    let pool = db::connect_and_migrate(config).await?;
                    pool.close().await;
                    db::embedded_cluster(config)?
                        .url()?
                        .context("the embedded cluster has no state after starting")?
                }
            };
            println!("{url}");
        }
        DbCommand::Reset { yes } => {
            require_embedded(config, "reset")?;
            let cluster = db::embedded_cluster(config)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "`db reset` deletes every row in {}; pass --yes to confirm",
                        cluster.data_dir().display()
                    );
                }
                eprint!(
                    "Delete the embedded database in {} and all its data? [y/N] ",
                    cluster.data_dir().display()
                );
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("nothing deleted");
                    return Ok(ExitCode::FAILURE);
                }
            }
            tokio::task::spawn_blocking(move || cluster.destroy()).await??;
            let pool = db::connect_and_migrate(config).await?;
            pool.close().await;
            println!("embedded database recreated, empty and migrated");
        }
    }
    Ok(ExitCode::SUCCESS)
}
