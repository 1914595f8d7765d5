//! `amal-engine retention ...`: the retention periods (set by an admin, audited) and a run now.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::retention::{self, RetentionKind};

/// Subcommands of `amal-engine retention`.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Show the periods and their last runs.
    Show,
    /// Set a period: closed_conversation_messages, audit_logs or statistics, in days (audited).
    Set {
        /// What the period applies to.
        #[arg(value_parser = |s: &str| s.parse::<RetentionKind>().map_err(|e| e.to_string()))]
        kind: RetentionKind,
        /// Days kept (30 to 36500).
        days: i32,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Remove what is past its period now (the server's worker does it every hour).
    Run,
}

/// Runs one `amal-engine retention` subcommand.
pub async fn run(config: &Config, cmd: RetentionCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    match cmd {
        RetentionCommand::Show => {
            for p in retention::policies(&mut conn).await? {
                let last = p.last_run.map_or_else(
                    || "never run".to_string(),
                    |(at, rows)| format!("last run {} ({rows} rows)", at.to_rfc3339()),
                );
                println!("{:<30} {:>6} days  {last}", p.kind, p.keep_days);
            }
        }
        RetentionCommand::Set { kind, days, actor } => {
            let actor = super::staff::resolve_actor(&mut conn, actor.as_deref()).await?;
            retention::set(&mut conn, actor.as_ref(), kind, days).await?;
            println!("{kind} kept {days} days");
        }
        RetentionCommand::Run => {
            drop(conn);
            for report in retention::run(&pool, chrono::Utc::now()).await? {
                println!(
                    "{:<30} before {}: {} rows in {} batches",
                    report.kind,
                    report.cutoff.to_rfc3339(),
                    report.rows,
                    report.batches
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
