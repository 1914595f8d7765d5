//! `amal-engine db ...`: the embedded PostgreSQL cluster.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use amal_engine::config::{Config, DatabaseSource};
use amal_engine::db::{self, backup};
use amal_engine::doctor;

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
    /// Dump the database (pg_dump custom format) with a checksummed manifest; prints the
    /// backup file's path as the last line.
    Backup {
        /// The directory to write to (default: AMAL_DATA_DIR/backups).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// How many backups to keep in that directory (default: AMAL_BACKUP_KEEP, else 7).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
    /// Restore a backup over the current database, then run `doctor`; exits 0 only when the
    /// restored database passes it.
    Restore {
        /// The backup file (its manifest `FILE.manifest.json` must be beside it).
        #[arg(required_unless_present = "at", conflicts_with = "at")]
        file: Option<PathBuf>,
        /// Instead of a file: restore the embedded cluster as it was at this moment, from its
        /// base backups and WAL archive ("2026-12-07 04:30:00", UTC unless an offset follows).
        #[arg(long, value_name = "TIMESTAMP", value_parser = backup::parse_moment)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Confirm replacing everything in the current database.
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
        DbCommand::Backup { to, keep } => {
            let mut options = backup::BackupOptions::from_config(config);
            if let Some(dir) = to {
                options.dir = dir;
            }
            if let Some(keep) = keep {
                options.keep = keep as usize;
            }
            let outcome = backup::backup(config, &options)
                .await
                .context("backing up the database")?;
            for old in &outcome.removed {
                println!("rotated out {}", old.display());
            }
            println!(
                "backup of schema version {}: {} bytes, sha256 {}, {} ms; manifest {}",
                outcome.manifest.schema_version,
                outcome.manifest.size_bytes,
                outcome.manifest.sha256,
                outcome.manifest.duration_ms,
                backup::manifest_path(&outcome.path).display()
            );
            match backup::archive_base_backup(config, options.keep).await {
                Ok(Some((base, removed))) => {
                    for old in removed {
                        println!("rotated out base backup {old}");
                    }
                    println!(
                        "base backup {} for point-in-time recovery: {} bytes",
                        base.name, base.size_bytes
                    );
                }
                Ok(None) => {}
                // The dump is good on its own: say why there is no base backup, keep the dump.
                Err(e) => eprintln!("warning: no base backup for point-in-time recovery: {e}"),
            }
            // The contract: the backup file's path is the last line.
            println!("{}", outcome.path.display());
        }
        DbCommand::Restore { file, at, yes } => {
            let what = match (&file, at) {
                (Some(file), _) => file.display().to_string(),
                (None, Some(at)) => format!("its state at {}", at.to_rfc3339()),
                (None, None) => bail!("`db restore` needs a FILE or --at TIMESTAMP"),
            };
            if !yes {
                bail!(
                    "`db restore` replaces everything in the current database ({}) with {what}; pass --yes to confirm",
                    describe(config),
                );
            }
            let Some(file) = file else {
                let at = at.expect("checked above");
                let outcome = backup::restore_to_moment(config, at)
                    .await
                    .with_context(|| format!("restoring to {}", at.to_rfc3339()))?;
                println!(
                    "restored to {} from base backup {} in {} ms; the replaced cluster is kept in {}",
                    outcome.target.to_rfc3339(),
                    outcome.base.name,
                    outcome.duration_ms,
                    outcome.previous.display()
                );
                return Ok(doctor_verdict(config).await);
            };
            let outcome = backup::restore(config, &file)
                .await
                .with_context(|| format!("restoring {}", file.display()))?;
            println!(
                "restored {} (schema version {}, taken {}) in {} ms",
                file.display(),
                outcome.manifest.schema_version,
                outcome.manifest.created_at.to_rfc3339(),
                outcome.duration_ms
            );
            return Ok(doctor_verdict(config).await);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(config: &Config) -> String {
    match &config.database {
        DatabaseSource::External(url) => db::redact_url(url),
        DatabaseSource::Embedded(dir) => format!("the embedded cluster in {}", dir.display()),
    }
}

/// Runs `doctor` on the restored database, prints its report and turns it into the exit code.
async fn doctor_verdict(config: &Config) -> ExitCode {
    let report = doctor::run(config).await;
    println!("{report}");
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: the restored database does not pass `doctor` (see above)");
        ExitCode::FAILURE
    }
}
