//! `amal-engine serve --bind ADDR`: the HTTP API for chat clients with the background workers,
//! on the database that DATABASE_URL or AMAL_DATA_DIR names. Every flag also reads an
//! environment variable (shown by `--help`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};

use amal_engine::config::Config;
use amal_engine::mail::{Mailer, OutboxMailer, SmtpMailer, SmtpSettings};
use amal_engine::server::tls::TlsSettings;
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
    /// SMTP server for sign-in links and reply notices (smtp://host:25,
    /// smtp://user:pass@host:587?tls=required, smtps://user:pass@host:465); without it they
    /// are appended to the outbox file.
    #[arg(long, env = "AMAL_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The sender of the service's e-mail (`Amal <noreply@example.dz>`), required with
    /// --smtp-url.
    #[arg(long, env = "AMAL_MAIL_FROM")]
    mail_from: Option<String>,
    /// Reply notices by e-mail are queued and sent this often, in seconds.
    #[arg(long, env = "AMAL_MAIL_NOTICE_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    mail_notice_interval_seconds: u64,
    /// New chunks' sentences are embedded this often, in seconds (a few at a time, on one core).
    #[arg(long, env = "AMAL_SENTENCES_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    sentences_interval_seconds: u64,
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
    /// Retention run interval, in seconds (the periods: `amal-engine retention`).
    #[arg(long, env = "AMAL_RETENTION_INTERVAL_SECONDS", default_value_t = 3600)]
    retention_interval_seconds: u64,
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
    /// TLS certificate chain (PEM); with --tls-key, `serve` speaks HTTPS only.
    #[arg(long, env = "AMAL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "AMAL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Refuse to start without --tls-cert and --tls-key (for deployments without a TLS proxy).
    #[arg(long, env = "AMAL_REQUIRE_TLS")]
    require_tls: bool,
}

impl ServeArgs {
    fn server_config(&self, tls: Option<TlsSettings>) -> ServerConfig {
        ServerConfig {
            anonymous_sessions: self.anonymous_sessions,
            body_limit_bytes: self.body_limit_bytes,
            rate_limit_per_ip_per_minute: self.rate_limit_per_ip_per_minute,
            rate_limit_per_session_per_minute: self.rate_limit_per_session_per_minute,
            magic_link_ttl_minutes: self.magic_link_ttl_minutes,
            session_ttl_hours: self.session_ttl_hours,
            magic_link_url: self.magic_link_url.clone().unwrap_or_else(|| {
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}/sign-in", self.bind)
            }),
            run_workers: !self.no_workers,
            workers: WorkerConfig {
                sla_sweep_interval_seconds: self.sla_sweep_interval_seconds,
                stats_refresh_interval_seconds: self.stats_refresh_interval_seconds,
                archive_interval_seconds: self.archive_interval_seconds,
                archive_after_days: self.archive_after_days,
                magic_link_cleanup_interval_seconds: self.magic_link_cleanup_interval_seconds,
                session_expiry_interval_seconds: self.session_expiry_interval_seconds,
                session_retention_days: self.session_retention_days,
                retention_interval_seconds: self.retention_interval_seconds,
                mail_notice_interval_seconds: self.mail_notice_interval_seconds,
                sentences_interval_seconds: self.sentences_interval_seconds,
                ..WorkerConfig::default()
            },
            metrics_token: self.metrics_token.clone().filter(|t| !t.trim().is_empty()),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_seconds),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            trusted_proxies: self.trusted_proxies.clone(),
            tls,
            ..ServerConfig::default()
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsSettings::load(cert, key)?),
        _ if args.require_tls => anyhow::bail!(
            "--require-tls is set but no certificate: pass --tls-cert and --tls-key (or \
             AMAL_TLS_CERT and AMAL_TLS_KEY)"
        ),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let pool = db::connect_and_migrate(config).await?;
    seed::reference(&pool)
        .await
        .context("loading the reference data")?;
    let engine = super::decide::engine(&pool).await?;
    let outbox = args
        .mail_outbox
        .clone()
        .unwrap_or_else(|| config.data_dir.join("magic-link-outbox.jsonl"));
    let smtp = match (&args.smtp_url, &args.mail_from) {
        (None, _) => None,
        (Some(url), Some(from)) => Some(SmtpSettings {
            url: url.clone(),
            from: from.clone(),
        }),
        (Some(_), None) => {
            anyhow::bail!("--smtp-url needs --mail-from (AMAL_MAIL_FROM), the sender")
        }
    };
    let (mailer, mail_to): (Arc<dyn Mailer>, String) = match smtp {
        Some(settings) => {
            let smtp = SmtpMailer::new(&settings).map_err(anyhow::Error::msg)?;
            let server = smtp.server().to_string();
            (Arc::new(smtp), server)
        }
        None => (
            Arc::new(OutboxMailer::new(&outbox)),
            outbox.display().to_string(),
        ),
    };
    let mut server_config = args.server_config(tls);
    server_config.workers.routing = engine.routing;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("listening on {}", args.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!("serving on {scheme}://{addr} (e-mail goes to {mail_to})");
    eprintln!("amal-engine serving on {scheme}://{addr} (chat page: {scheme}://{addr}/)");
    let state = AppState::new(pool, engine, mailer, server_config);
    server::serve(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    Ok(ExitCode::SUCCESS)
}
