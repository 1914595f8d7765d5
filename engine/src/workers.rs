//! The background jobs of `amal-engine serve`: the SLA breach sweeper, the statistics refresh,
//! archiving of idle conversations, magic-link cleanup and session expiry.
//!
//! Several `serve` instances may share one database. Each instance wakes up a few times per
//! interval, and before running a job it claims the job's `worker_runs` row with a single
//! `UPDATE .. WHERE last_started_at <= now - interval`. PostgreSQL re-checks that condition
//! after waiting on the row lock, so exactly one instance wins each interval and the others
//! skip: no double work, and no lock is held while the job runs. An instance that dies
//! mid-run only delays the next run to the following interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RoutingSettings;
use crate::conversations::{self, ConversationError};
use crate::knowledge::sentences;
use crate::mail::{self, Mailer};
use crate::sessions;
use crate::stats;
use crate::users::{self, UserError};
use crate::{roster, routing};

/// A background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Records SLA breaches ([`sla::sweep`]).
    SlaSweep,
    /// Refreshes the materialized daily statistics ([`stats::refresh`]).
    StatsRefresh,
    /// Archives idle conversations ([`conversations::archive_old`]).
    Archive,
    /// Deletes old magic links ([`users::cleanup_magic_links`]).
    MagicLinkCleanup,
    /// Deletes old expired and revoked sessions ([`sessions::expire`]).
    SessionExpiry,
    /// Removes what is past its retention period ([`retention::run`]).
    Retention,
    /// Who is on shift: records stopped heartbeats as offline (handing their unanswered
    /// tickets back), expires unanswered offers, routes waiting tickets
    /// ([`roster::expire_presences`], [`routing::sweep_offers`], [`routing::route_waiting`]).
    Shift,
}

impl Job {
    /// Every job.
    pub const ALL: [Job; 7] = [
        Job::SlaSweep,
        Job::StatsRefresh,
        Job::Archive,
        Job::MagicLinkCleanup,
        Job::SessionExpiry,
        Job::Retention,
        Job::Shift,
    ];

    /// The job's name in `worker_runs` and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Job::SlaSweep => "sla_sweep",
            Job::StatsRefresh => "stats_refresh",
            Job::Archive => "archive",
            Job::MagicLinkCleanup => "magic_link_cleanup",
            Job::SessionExpiry => "session_expiry",
            Job::Retention => "retention",
            Job::Shift => "shift",
        }
    }
}

/// How often each job runs, and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// SLA breach sweeper.
    pub sla_sweep_interval_seconds: u64,
    /// Daily statistics refresh.
    pub stats_refresh_interval_seconds: u64,
    /// Archiving.
    pub archive_interval_seconds: u64,
    /// Conversations idle this long are archived.
    pub archive_after_days: i32,
    /// Magic-link cleanup.
    pub magic_link_cleanup_interval_seconds: u64,
    /// Session expiry.
    pub session_expiry_interval_seconds: u64,
    /// Expired or revoked sessions are deleted after this long.
    pub session_retention_days: i64,
    /// Retention (the periods themselves are set by an admin, in the database).
    pub retention_interval_seconds: u64,
    /// Reply notices by e-mail are queued and delivered this often.
    pub mail_notice_interval_seconds: u64,
    /// The shift job (presence expiry, offers, waiting tickets).
    pub shift_interval_seconds: u64,
    /// Sentence vectors of newly ingested chunks ([`spawn_sentences`]).
    pub sentences_interval_seconds: u64,
    /// Routing and presence settings for the shift job.
    pub routing: RoutingSettings,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            sla_sweep_interval_seconds: 60,
            stats_refresh_interval_seconds: 300,
            archive_interval_seconds: 3600,
            archive_after_days: 90,
            magic_link_cleanup_interval_seconds: 3600,
            session_expiry_interval_seconds: 3600,
            session_retention_days: users::SESSION_RETENTION_DAYS,
            retention_interval_seconds: 3600,
            mail_notice_interval_seconds: 30,
            shift_interval_seconds: 15,
            sentences_interval_seconds: 30,
            routing: RoutingSettings::default(),
        }
    }
}

impl WorkerConfig {
    /// The interval of `job`, at least one second.
    pub fn interval_seconds(&self, job: Job) -> u64 {
        match job {
            Job::SlaSweep => self.sla_sweep_interval_seconds,
            Job::StatsRefresh => self.stats_refresh_interval_seconds,
            Job::Archive => self.archive_interval_seconds,
            Job::MagicLinkCleanup => self.magic_link_cleanup_interval_seconds,
            Job::SessionExpiry => self.session_expiry_interval_seconds,
            Job::Retention => self.retention_interval_seconds,
            Job::Shift => self.shift_interval_seconds,
        }
        .max(1)
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// Archiving failed.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// A user-data job failed.
    #[error(transparent)]
    User(#[from] UserError),
    /// Retention failed.
    #[error(transparent)]
    Retention(#[from] crate::retention::RetentionError),
    /// The shift job failed.
    #[error(transparent)]
    Presence(#[from] crate::presence::PresenceError),
}

/// Claims this interval's run of `job` for `instance`: true when this caller must run it,
/// false when another instance (or this one) already ran it less than an interval ago.
pub async fn claim(
    conn: &mut PgConnection,
    job: Job,
    interval_seconds: u64,
    instance: &str,
) -> sqlx::Result<bool> {
    claim_named(conn, job.as_str(), interval_seconds, instance).await
}

/// [`claim`] for a job by its name in `worker_runs`.
async fn claim_named(
    conn: &mut PgConnection,
    job: &str,
    interval_seconds: u64,
    instance: &str,
) -> sqlx::Result<bool> {
    sqlx::query("INSERT INTO worker_runs (job) VALUES ($1) ON CONFLICT (job) DO NOTHING")
        .bind(job)
        .execute(&mut *conn)
        .await?;
    // clock_timestamp(): the database's clock, shared by every instance whatever theirs say.
    let claimed = sqlx::query(
        "UPDATE worker_runs SET last_started_at = clock_timestamp(), last_instance = $3, runs = runs + 1 \
          WHERE job = $1 AND (last_started_at IS NULL \
                OR last_started_at <= clock_timestamp() - make_interval(secs => $2))",
    )
    .bind(job)
    .bind(interval_seconds as f64)
    .bind(instance)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Runs `job` once, now, and returns what it did.
pub async fn run(pool: &PgPool, job: Job, config: &WorkerConfig) -> Result<Value, WorkerError> {
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    Ok(match job {
        Job::SlaSweep => json!(crate::tickets::sweep(&mut conn, now).await?),
        Job::StatsRefresh => {
            stats::refresh(&mut conn).await?;
            json!({ "refreshed": true })
        }
        Job::Archive => {
            json!({ "archived": conversations::archive_old(pool, config.archive_after_days).await? })
        }
        Job::MagicLinkCleanup => {
            json!({ "deleted": users::cleanup_magic_links(&mut conn).await? })
        }
        Job::SessionExpiry => json!({
            "deleted": sessions::expire(&mut conn, now, config.session_retention_days).await?
        }),
        Job::Retention => {
            drop(conn);
            json!({ "runs": crate::retention::run(pool, now).await? })
        }
        Job::Shift => {
            let offline = roster::expire_presences(&mut conn, &config.routing, now).await?;
            let offers_expired = routing::sweep_offers(&mut conn, &config.routing, now).await?;
            let routed = routing::route_waiting(&mut conn, &config.routing, now).await?;
            json!({ "offline": offline, "offers_expired": offers_expired, "routed": routed })
        }
    })
}

/// Runs `job` if this interval's run is still unclaimed; returns its result when it ran. The
/// result (or the error) is recorded in `worker_runs`.
pub async fn run_if_due(
    pool: &PgPool,
    job: Job,
    config: &WorkerConfig,
    instance: &str,
) -> Result<Option<Value>, WorkerError> {
    {
        let mut conn = pool.acquire().await?;
        if !claim(&mut conn, job, config.interval_seconds(job), instance).await? {
            return Ok(None);
        }
    }
    let outcome = run(pool, job, config).await;
    let recorded = match &outcome {
        Ok(v) => v.clone(),
        Err(e) => json!({ "error": e.to_string() }),
    };
    sqlx::query(
        "UPDATE worker_runs SET last_finished_at = clock_timestamp(), last_result = $2 WHERE job = $1",
    )
    .bind(job.as_str())
    .bind(&recorded)
    .execute(pool)
    .await?;
    outcome.map(Some)
}

/// Completes when `shutdown` turns true (or its sender is gone). The watch guard stays
/// inside, so the future is `Send`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Called after each run with the job and its result (for metrics).
pub type RunHook = Arc<dyn Fn(Job, &Value) + Send + Sync>;

/// This process's name in `worker_runs`: host name and process id.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Starts one task per job; each wakes up four times per interval and runs its job when due.
/// The tasks stop when `shutdown` turns true.
pub fn spawn(
    pool: PgPool,
    config: WorkerConfig,
    instance: String,
    hook: RunHook,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let config = Arc::new(config);
    Job::ALL
        .into_iter()
        .map(|job| {
            let (pool, config, instance, hook) =
                (pool.clone(), config.clone(), instance.clone(), hook.clone());
            let mut shutdown = shutdown.clone();
            // Waking several times per interval bounds the delay after another instance's
            // run to a quarter interval, while the claim keeps runs an interval apart.
            let tick = Duration::from_millis(config.interval_seconds(job) * 250);
            tokio::spawn(async move {
                loop {
                    match run_if_due(&pool, job, &config, &instance).await {
                        Ok(Some(result)) => {
                            tracing::debug!(job = job.as_str(), %result, "job ran");
                            hook(job, &result);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(job = job.as_str(), "job failed: {e}"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(tick) => {}
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            })
        })
        .collect()
}

/// The name of the notices' job in `worker_runs`.
pub const NOTICE_JOB: &str = "mail_notices";

/// Runs [`mail::run_notices`] every `interval` (claimed in `worker_runs`, so that one instance runs
/// each interval) until `shutdown` turns true.
pub fn spawn_notices(
    pool: PgPool,
    mailer: Arc<dyn Mailer>,
    page_url: String,
    interval: Duration,
    instance: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    spawn_claimed(
        pool.clone(),
        NOTICE_JOB,
        interval,
        instance,
        shutdown,
        move || {
            let (pool, mailer, page_url) = (pool.clone(), mailer.clone(), page_url.clone());
            async move {
                match mail::run_notices(&pool, mailer, &page_url, 100).await {
                    Ok(run) => tracing::debug!(?run, "reply notices"),
                    Err(e) => tracing::warn!("reply notices failed: {e}"),
                }
            }
        },
    )
}

/// The name of the sentence vectors' job in `worker_runs`.
pub const SENTENCES_JOB: &str = "sentence_vectors";

/// Chunks whose sentences one run of [`spawn_sentences`] embeds at most: about ten seconds of
/// one core.
const SENTENCE_CHUNKS_PER_RUN: usize = 64;

/// Embeds the sentences of chunks that have none ([`sentences::fill`]) every `interval`, a few
/// chunks at a time on one core, so that people's messages keep the other cores; claimed in
/// `worker_runs` like the other jobs. Nothing to do with the hashed embedder.
pub fn spawn_sentences(
    pool: PgPool,
    embedder: crate::knowledge::Embedder,
    interval: Duration,
    instance: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    spawn_claimed(
        pool.clone(),
        SENTENCES_JOB,
        interval,
        instance,
        shutdown,
        move || {
            let (pool, embedder) = (pool.clone(), embedder.clone());
            async move {
                let mut done = 0;
                while done < SENTENCE_CHUNKS_PER_RUN {
                    match sentences::fill(&pool, &embedder, 4, sentences::Share::OneCore).await {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) => {
                            tracing::warn!("sentence vectors: {e}");
                            break;
                        }
                    }
                }
                if done > 0 {
                    tracing::debug!(chunks = done, "sentence vectors");
                }
            }
        },
    )
}

/// Runs `run` once per `interval` across every instance sharing the database (claimed by
/// `name` in `worker_runs`), until `shutdown` turns true.
fn spawn_claimed<F, R>(
    pool: PgPool,
    name: &'static str,
    interval: Duration,
    instance: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    run: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> R + Send + 'static,
    R: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let tick = (interval / 4).max(Duration::from_millis(250));
        loop {
            let due = match pool.acquire().await {
                Ok(mut conn) => {
                    claim_named(&mut conn, name, interval.as_secs().max(1), &instance).await
                }
                Err(e) => Err(e),
            };
            match due {
                Ok(true) => run().await,
                Ok(false) => {}
                Err(e) => tracing::warn!("{name}: cannot claim the run: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stopped(&mut shutdown) => break,
            }
        }
    })
}
