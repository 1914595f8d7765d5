//! `amal-engine serve --bind ADDR`: the HTTP API for chat clients with the background workers,
//! on the database that DATABASE_URL or AMAL_DATA_DIR names. Every flag also reads an
//! environment variable (shown by `--help`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};

use amal_engine::config::Config;
use amal_engine::mail::{Mailer, OutboxMailer};
use amal_engine::server::{self, AppState, ServerConfig};
use amal_engine::workers::WorkerConfig;
use amal_engine::{db, seed};

/// Arguments of `amal-engine serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AMAL_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Allow anonymous sessions (no e-mail address).
    #[arg(long, env = "AMAL_ANONYMOUS_SESSIONS", action = ArgAction::Set,
          default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    anonymous_sessions: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "AMAL_BODY_LIMIT_BYTES", default_value_t = 131_072)]
    body_limit_bytes: usize,
    /// Requests per minute per client IP address (0: unlimited).
    #[arg(long, env = "AMAL_RATE_LIMIT_PER_IP_PER_MINUTE", default_value_t = 600)]
    rate_limit_per_ip_per_minute: u32,
    /// Requests per minute per session (0: unlimited).
    #[arg(
        long,
        env = "AMAL_RATE_LIMIT_PER_SESSION_PER_MINUTE",
        default_value_t = 120
    )]
    rate_limit_per_session_per_minute: u32,
    /// Lifetime of a sign-in link, in minutes.
    #[arg(long, env = "AMAL_MAGIC_LINK_TTL_MINUTES", default_value_t = amal_engine::users::MAGIC_LINK_TTL_MINUTES)]
    magic_link_ttl_minutes: i64,
    /// Lifetime of a session, in hours.
    #[arg(long, env = "AMAL_SESSION_TTL_HOURS", default_value_t = amal_engine::users::SESSION_TTL_HOURS)]
    session_ttl_hours: i64,
    /// The chat client's page that receives sign-in links (`?token=...` is appended).
    #[arg(long, env = "AMAL_MAGIC_LINK_URL")]
    magic_link_url: Option<String>,
    /// File the sign-in links are appended to for delivery (default: magic-link-outbox.jsonl
    /// in the data directory).
    #[arg(long, env = "AMAL_MAIL_OUTBOX")]
    mail_outbox: Option<std::path::PathBuf>,
    /// Do not run the background workers in this instance.
    #[arg(long, env = "AMAL_NO_WORKERS")]
    no_workers: bool,
    /// SLA breach sweeper interval, in seconds.
    #[arg(long, env = "AMAL_SLA_SWEEP_INTERVAL_SECONDS", default_value_t = 60)]
    sla_sweep_interval_seconds: u64,
    /// Daily statistics refresh interval, in seconds.
    #[arg(
        long,
        env = "AMAL_STATS_REFRESH_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    stats_refresh_interval_seconds: u64,
    /// Archiving interval, in seconds.
    #[arg(long, env = "AMAL_ARCHIVE_INTERVAL_SECONDS", default_value_t = 3600)]
    archive_interval_seconds: u64,
    /// Conversations idle this many days are archived.
    #[arg(long, env = "AMAL_ARCHIVE_AFTER_DAYS", default_value_t = 90)]
    archive_after_days: i32,
    /// Magic-link cleanup interval, in seconds.
    #[arg(
        long,
        env = "AMAL_MAGIC_LINK_CLEANUP_INTERVAL_SECONDS",
        default_value_t = 3600
    )]
    magic_link_cleanup_interval_seconds: u64,
    /// Session expiry interval, in seconds.
    #[arg(
        long,
        env = "AMAL_SESSION_EXPIRY_INTERVAL_SECONDS",
        default_value_t = 3600
    )]
    session_expiry_interval_seconds: u64,
    /// Expired or revoked sessions are deleted after this many days.
    #[arg(long, env = "AMAL_SESSION_RETENTION_DAYS", default_value_t = amal_engine::users::SESSION_RETENTION_DAYS)]
    session_retention_days: i64,
    /// A bearer token that lets clients elsewhere read /metrics (without it, only clients on
    /// this machine may).
    #[arg(long, env = "AMAL_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Seconds a client may take to send a request's headers (and a kept-alive connection may
    /// stay idle).
    #[arg(long, env = "AMAL_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_seconds: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "AMAL_BODY_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout_seconds: u64,
    /// Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names
    /// the client, for the rate limits and the audit trail.
    #[arg(long, env = "AMAL_TRUSTED_PROXIES", value_delimiter = ',', value_parser = amal_engine::server::parse_proxy)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections served at once (a small reserve past it keeps /healthz answering).
    #[arg(long, env = "AMAL_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
}

impl ServeArgs {
    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            anonymous_sessions: self.anonymous_sessions,
            body_limit_bytes: self.body_limit_bytes,
            rate_limit_per_ip_per_minute: self.rate_limit_per_ip_per_minute,
            rate_limit_per_session_per_minute: self.rate_limit_per_session_per_minute,
            magic_link_ttl_minutes: self.magic_link_ttl_minutes,
            session_ttl_hours: self.session_ttl_hours,
            magic_link_url: self
                .magic_link_url
                .clone()
                .unwrap_or_else(|| format!("http://{}/sign-in", self.bind)),
            run_workers: !self.no_workers,
            workers: WorkerConfig {
                sla_sweep_interval_seconds: self.sla_sweep_interval_seconds,
                stats_refresh_interval_seconds: self.stats_refresh_interval_seconds,
                archive_interval_seconds: self.archive_interval_seconds,
                archive_after_days: self.archive_after_days,
                magic_link_cleanup_interval_seconds: self.magic_link_cleanup_interval_seconds,
                session_expiry_interval_seconds: self.session_expiry_interval_seconds,
                session_retention_days: self.session_retention_days,
                ..WorkerConfig::default()
            },
            metrics_token: self.metrics_token.clone().filter(|t| !t.trim().is_empty()),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Runs `amal-engine serve`.
pub async fn run(config: &Config, args: ServeArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.archive_after_days >= 1,
        "--archive-after-days must be at least 1"
    );
    let pool = db::connect_and_migrate(config).await?;
    seed::reference(&pool)
        .await
        .context("loading the reference data")?;
    let engine = super::decide::engine(&pool).await?;
    let outbox = args
        .mail_outbox
        .clone()
        .unwrap_or_else(|| config.data_dir.join("magic-link-outbox.jsonl"));
    let mailer: Arc<dyn Mailer> = Arc::new(OutboxMailer::new(&outbox));
    let mut server_config = args.server_config();
    server_config.workers.routing = engine.routing;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("listening on {}", args.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "serving on http://{addr} (sign-in links go to {})",
        outbox.display()
    );
    eprintln!("amal-engine serving on http://{addr}");
    let state = AppState::new(pool, engine, mailer, server_config);
    server::serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}
