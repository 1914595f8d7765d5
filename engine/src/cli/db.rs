//! `amal-engine db ...`: the embedded PostgreSQL cluster.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use amal_engine::config::{Config, DatabaseSource};
use amal_engine::db;

/// Subcommands of `amal-engine db`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
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

fn require_embedded(config: &Config, what: &str) -> Result<()> {
    if let DatabaseSource::External(url) = &config.database {
        bail!(
            "DATABASE_URL is set ({}): `db {what}` manages only the embedded cluster; unset DATABASE_URL to use it",
            db::redact_url(url)
        );
    }
    Ok(())
}

/// Runs one `amal-engine db` subcommand.
pub async fn run(config: &Config, cmd: DbCommand) -> Result<ExitCode> {
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
