//! `amal-engine doctor`: the platform documents' health check, as one report.
//!
//! Failures (the report is unhealthy): no connection, pgvector missing, migrations pending,
//! failed or modified, the configured embedder not loading or failing its self-test, stored
//! vectors of another model. Warnings (still healthy): a low cache-hit ratio, connections near
//! the limit, the hashed embedder, chunks still waiting for `kb reembed`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::{self, PgvectorStatus, backup};
use crate::knowledge::embed::{EMBEDDER_ENV, SelfTest};
use crate::knowledge::{Embedder, KnowledgeError, sentences, store};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Worth a look; does not make the database unhealthy.
    Warn,
    /// The database is not usable as it is.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name, e.g. `pgvector`.
    pub name: &'static str,
    /// Outcome.
    pub status: CheckStatus,
    /// What was found, and what to do when it is not ok.
    pub detail: String,
}

/// Migration state compared with the migrations built into this binary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationReport {
    /// Migrations this binary carries.
    pub expected: usize,
    /// Migrations recorded as applied successfully.
    pub applied: usize,
    /// Versions not applied yet.
    pub pending: Vec<i64>,
    /// Versions recorded as failed (a dirty database).
    pub failed: Vec<i64>,
    /// Versions applied from a different file than this binary carries.
    pub modified: Vec<i64>,
    /// Versions applied that this binary does not know (a newer engine ran here).
    pub unknown: Vec<i64>,
}

/// Size of one table, indexes and TOAST included.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TableSize {
    /// Table name.
    pub table: String,
    /// Total bytes.
    pub total_bytes: i64,
    /// The planner's row estimate.
    pub rows_estimate: i64,
}

/// An index never used since statistics were last reset.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UnusedIndex {
    /// Table name.
    pub table: String,
    /// Index name.
    pub index: String,
    /// Its size in bytes.
    pub bytes: i64,
}

/// Connection counts.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// Connections to this database.
    pub database: i64,
    /// Connections to the whole server.
    pub server: i64,
    /// The server's `max_connections`.
    pub max: i64,
}

/// The whole health report; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// True when no check failed.
    pub healthy: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// `SHOW server_version`.
    pub server_version: Option<String>,
    /// pgvector availability.
    pub pgvector: Option<PgvectorStatus>,
    /// Migration state.
    pub migrations: Option<MigrationReport>,
    /// Database name.
    pub database: Option<String>,
    /// Database size in bytes.
    pub database_bytes: Option<i64>,
    /// The largest tables.
    pub tables: Vec<TableSize>,
    /// Connection counts.
    pub connections: Option<Connections>,
    /// Share of table block reads served from shared buffers (`None` before any read).
    pub cache_hit_ratio: Option<f64>,
    /// Indexes with no scans.
    pub unused_indexes: Vec<UnusedIndex>,
    /// The configured embedder, when it loaded.
    pub embedder: Option<EmbedderReport>,
}

/// The configured embedder as the doctor found it.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedderReport {
    /// The model name recorded with vectors.
    pub model: String,
    /// Its dimension.
    pub dimension: usize,
    /// What it is and where it comes from.
    pub description: String,
    /// The cross-language self-test (not run for the hashed embedder).
    pub self_test: Option<SelfTest>,
}

impl DoctorReport {
    fn new() -> Self {
        DoctorReport {
            healthy: true,
            checks: Vec::new(),
            server_version: None,
            pgvector: None,
            migrations: None,
            database: None,
            database_bytes: None,
            tables: Vec::new(),
            connections: None,
            cache_hit_ratio: None,
            unused_indexes: Vec::new(),
            embedder: None,
        }
    }

    fn push(&mut self, name: &'static str, status: CheckStatus, detail: impl Into<String>) {
        if status == CheckStatus::Fail {
            self.healthy = false;
        }
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
        });
    }
}

/// Connects with `config` (starting the embedded cluster if it is the one in use, but never
/// migrating) and examines the database.
pub async fn run(config: &Config) -> DoctorReport {
    match db::connect(config).await {
        Ok(pool) => {
            let mut report = examine(&pool).await;
            check_backups(config, &mut report);
            check_tls(&mut report);
            check_database_tls(config, &pool, &mut report).await;
            check_row_security(&pool, &mut report).await;
            check_retention(&pool, &mut report).await;
            check_archiving(config, &pool, &mut report).await;
            pool.close().await;
            report
        }
        Err(e) => {
            let mut report = DoctorReport::new();
            report.push("connectivity", CheckStatus::Fail, e.to_string());
            report
        }
    }
}

/// A backup older than this is reported (backups are expected daily).
const BACKUP_STALE_AFTER_HOURS: i64 = 26;

/// The newest backup in the default directory, and its age.
fn check_backups(config: &Config, report: &mut DoctorReport) {
    let dir = backup::default_dir(config);
    match backup::list(&dir) {
        Ok(backups) => match backups.first() {
            Some((path, manifest)) => {
                let age = chrono::Utc::now() - manifest.created_at;
                let detail = format!(
                    "last backup {} ago ({}, schema {}, {})",
                    human_age(age),
                    path.display(),
                    manifest.schema_version,
                    human_bytes(i64::try_from(manifest.size_bytes).unwrap_or(i64::MAX))
                );
                if age > chrono::Duration::hours(BACKUP_STALE_AFTER_HOURS) {
                    report.push(
                        "backups",
                        CheckStatus::Warn,
                        format!("{detail}: older than {BACKUP_STALE_AFTER_HOURS} h; run `amal-engine db backup` (daily)"),
                    );
                } else {
                    report.push("backups", CheckStatus::Ok, detail);
                }
            }
            None => report.push(
                "backups",
                CheckStatus::Warn,
                format!(
                    "no backup in {}; `amal-engine db backup` takes one (schedule it daily)",
                    dir.display()
                ),
            ),
        },
        Err(e) => report.push("backups", CheckStatus::Warn, e.to_string()),
    }
}

/// kind, keep_days, last run's end, its rows and its error.
type RetentionRow = (String, i32, Option<Time>, Option<i64>, Option<String>);
/// archive_mode, archived segments, the last one and when, failures and the last one's time.
type ArchiverRow = (String, i64, Option<String>, Option<Time>, i64, Option<Time>);
type Time = chrono::DateTime<chrono::Utc>;

/// The retention periods and their last runs.
async fn check_retention(pool: &PgPool, report: &mut DoctorReport) {
    let rows: Result<Vec<RetentionRow>, _> = sqlx::query_as(
            "SELECT p.kind::text, p.keep_days, r.finished_at, r.rows_affected, r.error \
               FROM retention_policies p \
               LEFT JOIN LATERAL (SELECT finished_at, rows_affected, error FROM retention_runs \
                                   WHERE kind = p.kind ORDER BY finished_at DESC LIMIT 1) r ON true \
              ORDER BY p.kind",
        )
        .fetch_all(pool)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            report.push("retention", CheckStatus::Warn, format!("cannot read: {e}"));
            return;
        }
    };
    let periods = rows
        .iter()
        .map(|(kind, days, _, _, _)| format!("{kind} {days} d"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some((kind, _, _, _, Some(error))) = rows.iter().find(|r| r.4.is_some()) {
        report.push(
            "retention",
            CheckStatus::Fail,
            format!("the last {kind} run failed: {error}"),
        );
    } else if let Some(last) = rows.iter().filter_map(|r| r.2).min() {
        let removed: i64 = rows.iter().filter_map(|r| r.3).sum();
        report.push(
            "retention",
            CheckStatus::Ok,
            format!(
                "{periods}; oldest last run {} ago, {removed} rows in the last runs",
                human_age(chrono::Utc::now() - last)
            ),
        );
    } else {
        report.push(
            "retention",
            CheckStatus::Warn,
            format!(
                "{periods}; never run: `serve` runs it every hour, `amal-engine retention run` now"
            ),
        );
    }
}

/// The certificate and key `serve` would use (AMAL_TLS_CERT, AMAL_TLS_KEY), loaded as it would.
fn check_tls(report: &mut DoctorReport) {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match (var("AMAL_TLS_CERT"), var("AMAL_TLS_KEY")) {
        (Some(cert), Some(key)) => {
            match crate::server::tls::TlsSettings::load(cert.as_ref(), key.as_ref()) {
                Ok(tls) => report.push(
                    "tls",
                    CheckStatus::Ok,
                    format!(
                        "serve speaks HTTPS with {} ({} certificate(s) in the chain)",
                        tls.cert_path.display(),
                        tls.chain_len
                    ),
                ),
                Err(e) => report.push("tls", CheckStatus::Fail, e.to_string()),
            }
        }
        (None, None) => report.push(
            "tls",
            CheckStatus::Ok,
            "no certificate configured: serve speaks plain HTTP, to be reached through a \
             TLS-terminating reverse proxy (docs/operations.md)",
        ),
        _ => report.push(
            "tls",
            CheckStatus::Fail,
            "only one of AMAL_TLS_CERT and AMAL_TLS_KEY is set: serve needs both",
        ),
    }
}

/// Whether the engine's own connection to the database is encrypted (pg_stat_ssl of this
/// backend): required in practice for a server on another machine, pointless on loopback.
async fn check_database_tls(config: &Config, pool: &PgPool, report: &mut DoctorReport) {
    /// Encrypted, TLS version, cipher, the server's address (none on a Unix socket).
    type SslRow = (bool, Option<String>, Option<String>, Option<String>);
    let row: Result<SslRow, _> = sqlx::query_as(
        "SELECT s.ssl, s.version, s.cipher, host(inet_server_addr()) \
           FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
    )
    .fetch_one(pool)
    .await;
    let (ssl, version, cipher, server) = match row {
        Ok(row) => row,
        Err(e) => {
            report.push(
                "database-tls",
                CheckStatus::Warn,
                format!("cannot tell: {e}"),
            );
            return;
        }
    };
    let embedded = !matches!(config.database, crate::config::DatabaseSource::External(_));
    // No server address: a Unix socket, which never leaves the machine.
    let local = server.as_deref().is_none_or(|a| {
        a.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    });
    if ssl {
        report.push(
            "database-tls",
            CheckStatus::Ok,
            format!(
                "the database connection uses TLS ({}, {})",
                version.unwrap_or_default(),
                cipher.unwrap_or_default()
            ),
        );
    } else if embedded || local {
        report.push(
            "database-tls",
            CheckStatus::Ok,
            "the database connection is not encrypted: it stays on this machine",
        );
    } else {
        report.push(
            "database-tls",
            CheckStatus::Warn,
            format!(
                "the connection to the database at {} is NOT encrypted: add \
                 sslmode=verify-full (and sslrootcert=CA.pem for a private CA) to DATABASE_URL",
                server.unwrap_or_default()
            ),
        );
    }
}

/// Whether end-user requests can run behind row-level security: the login role must be able to
/// SET ROLE amal_end_user (a superuser can; others need membership).
async fn check_row_security(pool: &PgPool, report: &mut DoctorReport) {
    let row: Result<(bool, String), _> = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) \
                AND (pg_has_role(current_user, $1, 'MEMBER') \
                     OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)), \
                current_user::text",
    )
    .bind(db::person::END_USER_ROLE)
    .fetch_one(pool)
    .await;
    match row {
        Ok((true, _)) => report.push(
            "row-security",
            CheckStatus::Ok,
            format!(
                "end-user requests run as {} (their own rows only)",
                db::person::END_USER_ROLE
            ),
        ),
        Ok((false, user)) => report.push(
            "row-security",
            CheckStatus::Fail,
            format!(
                "{user} cannot SET ROLE {role}, so serve cannot answer people: run \
                 GRANT {role} TO {user} as an administrator (docs/database.md)",
                role = db::person::END_USER_ROLE
            ),
        ),
        Err(e) => report.push(
            "row-security",
            CheckStatus::Warn,
            format!("cannot tell: {e}"),
        ),
    }
}

/// Continuous archiving of the embedded cluster: on, failing, or off.
async fn check_archiving(config: &Config, pool: &PgPool, report: &mut DoctorReport) {
    if matches!(config.database, crate::config::DatabaseSource::External(_)) {
        report.push(
            "archiving",
            CheckStatus::Ok,
            "external server: its WAL archiving is its operator's (not checked here)",
        );
        return;
    }
    let row: Result<ArchiverRow, _> = sqlx::query_as(
        "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, \
                    last_archived_time, failed_count, last_failed_time FROM pg_stat_archiver",
    )
    .fetch_one(pool)
    .await;
    let bases = db::embedded_cluster(config)
        .and_then(|c| c.base_backups().map_err(Into::into))
        .map(|b| b.len())
        .unwrap_or(0);
    match row {
        Ok((mode, _, _, _, _, _)) if mode != "on" => report.push(
            "archiving",
            CheckStatus::Warn,
            format!(
                "WAL archiving is off (archive_mode = {mode}): no point-in-time restore; restart \
                 the embedded cluster (db stop, db start) unless {} = off",
                db::embedded::ARCHIVE_ENV
            ),
        ),
        Ok((_, _, _, last_ok, failed, Some(last_failed)))
            if failed > 0 && last_ok.is_none_or(|ok| ok < last_failed) =>
        {
            report.push(
                "archiving",
                CheckStatus::Fail,
                format!(
                    "WAL archiving is failing ({failed} failures, the last at {last_failed}); see the server log"
                ),
            )
        }
        Ok((_, count, last, last_time, _, _)) => report.push(
            "archiving",
            if bases == 0 { CheckStatus::Warn } else { CheckStatus::Ok },
            format!(
                "WAL archived ({count} segments, last {} at {}); {bases} base backup(s){}",
                last.unwrap_or_else(|| "none yet".into()),
                last_time.map_or_else(|| "-".into(), |t| t.to_rfc3339()),
                if bases == 0 { ": `db backup` takes the first (needed for a point-in-time restore)" } else { "" }
            ),
        ),
        Err(e) => report.push("archiving", CheckStatus::Warn, format!("cannot read the archiver's state: {e}")),
    }
}

fn human_age(age: chrono::Duration) -> String {
    match age.num_seconds() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// Examines the database behind `pool`.
pub async fn examine(pool: &PgPool) -> DoctorReport {
    let mut report = DoctorReport::new();
    match gather(pool, &mut report).await {
        Ok(()) => {}
        Err(e) => report.push(
            "queries",
            CheckStatus::Fail,
            format!("a health query failed: {e}"),
        ),
    }
    check_embedder(pool, &mut report).await;
    let numbers = crate::decision::crisis::CrisisNumbers::from_env();
    if crate::decision::crisis::numbers_configured(&numbers) {
        report.push(
            "crisis numbers",
            CheckStatus::Ok,
            "crisis line and emergency number configured",
        );
    } else {
        report.push(
            "crisis numbers",
            CheckStatus::Warn,
            "AMAL_CRISIS_LINE or AMAL_EMERGENCY_NUMBER is not set: safety messages send people to \
             \"your local emergency number\" and the team instead of giving numbers",
        );
    }
    check_mail(pool, &mut report).await;
    report
}

/// Where the service's e-mail goes (SMTP or the outbox file) and whether deliveries failed
/// for good lately.
async fn check_mail(pool: &PgPool, report: &mut DoctorReport) {
    match crate::mail::SmtpSettings::from_env() {
        Ok(Some(smtp)) => match crate::mail::SmtpMailer::new(&smtp) {
            Ok(m) => report.push(
                "mail",
                CheckStatus::Ok,
                format!(
                    "sign-in links and reply notices are sent through {}",
                    m.server()
                ),
            ),
            Err(e) => report.push("mail", CheckStatus::Fail, e),
        },
        Ok(None) => {
            let outbox = std::env::var("AMAL_MAIL_OUTBOX")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "magic-link-outbox.jsonl in the data directory".into());
            report.push(
                "mail",
                CheckStatus::Warn,
                format!(
                    "no SMTP settings ({} and {}): sign-in links and reply notices are appended \
                     to the outbox file ({outbox}) for a mail relay to pick up",
                    crate::mail::SMTP_URL_ENV,
                    crate::mail::MAIL_FROM_ENV
                ),
            );
        }
        Err(e) => report.push("mail", CheckStatus::Fail, e),
    }
    let since = chrono::Utc::now() - chrono::Duration::days(7);
    let dead = match pool.acquire().await {
        Ok(mut conn) => crate::mail::dead_letters(&mut conn, since).await,
        Err(e) => Err(e),
    };
    match dead {
        Ok(0) => {}
        Ok(n) => report.push(
            "mail deliveries",
            CheckStatus::Warn,
            format!("{n} e-mail deliveries failed for good in the last 7 days (mail_deliveries, status dead)"),
        ),
        // A database not migrated yet has no such table: the migrations check says so.
        Err(_) => {}
    }
}

/// The embedder the environment configures: which, its dimension, its self-test, and whether
/// the stored vectors are its own.
async fn check_embedder(pool: &PgPool, report: &mut DoctorReport) {
    let embedder = match Embedder::from_env().await {
        Ok(e) => e,
        Err(e) => {
            report.push("embedder", CheckStatus::Fail, e.to_string());
            return;
        }
    };
    let mut detail = format!(
        "{}, {} dimensions",
        embedder.describe(),
        embedder.dimension()
    );
    let (status, self_test) = match &embedder {
        Embedder::Hash(_) => {
            detail.push_str(&format!(
                " ({EMBEDDER_ENV}=hashed): people's meaning across languages is not seen; \
                 unset it to use multilingual-e5-small"
            ));
            (CheckStatus::Warn, None)
        }
        _ => match embedder.self_test().await {
            Ok(test) => {
                detail.push_str(&format!("; self-test: {test}"));
                let status = if test.passed() {
                    CheckStatus::Ok
                } else {
                    CheckStatus::Fail
                };
                (status, Some(test))
            }
            Err(e) => {
                detail.push_str(&format!("; self-test failed: {e}"));
                (CheckStatus::Fail, None)
            }
        },
    };
    report.push("embedder", status, detail);
    report.embedder = Some(EmbedderReport {
        model: embedder.model().to_string(),
        dimension: embedder.dimension(),
        description: embedder.describe(),
        self_test,
    });
    if let Err(e) = check_stored_vectors(pool, &embedder, report).await {
        report.push(
            "vectors",
            CheckStatus::Fail,
            format!("could not read the stored vectors' model: {e}"),
        );
    }
}

/// Whether the stored chunk vectors come from the configured embedder (skipped on a database
/// without the schema: the migrations check says so already).
async fn check_stored_vectors(
    pool: &PgPool,
    embedder: &Embedder,
    report: &mut DoctorReport,
) -> Result<(), KnowledgeError> {
    let schema: bool =
        sqlx::query_scalar("SELECT to_regclass('public.embedding_settings') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !schema {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let settings = store::embedding_settings(&mut conn).await?;
    let (total, embedded, other): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(embedding), \
                count(*) FILTER (WHERE embedding IS NULL OR embedding_model IS DISTINCT FROM $1) \
         FROM document_chunks",
    )
    .bind(embedder.model())
    .fetch_one(&mut *conn)
    .await?;
    let stored_is_other =
        settings.model != embedder.model() || settings.dimension != embedder.dimension();
    let (status, detail) = if total == 0 {
        (CheckStatus::Ok, "no chunks stored yet".to_string())
    } else if stored_is_other && embedded > 0 {
        (
            CheckStatus::Fail,
            format!(
                "the {total} chunks' vectors are {} ({} dimensions), not the configured {}: run \
                 `amal-engine kb reembed`",
                settings.model,
                settings.dimension,
                embedder.model()
            ),
        )
    } else if other > 0 {
        (
            CheckStatus::Warn,
            format!(
                "{other} of {total} chunks have no vector of {} yet (an interrupted re-embedding?): \
                 run `amal-engine kb reembed` to finish",
                embedder.model()
            ),
        )
    } else {
        (
            CheckStatus::Ok,
            format!("all {total} chunks embedded with {}", embedder.model()),
        )
    };
    report.push("vectors", status, detail);
    check_sentences(pool, embedder, report).await
}

/// Whether the retrievable chunks' sentences are embedded: until they are, answers from those
/// chunks choose sentences by words alone.
async fn check_sentences(
    pool: &PgPool,
    embedder: &Embedder,
    report: &mut DoctorReport,
) -> Result<(), KnowledgeError> {
    let table: bool =
        sqlx::query_scalar("SELECT to_regclass('public.chunk_sentences') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !table || !sentences::has_meaning(embedder) {
        return Ok(());
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks WHERE retrievable")
        .fetch_one(pool)
        .await?;
    let missing = sentences::missing(pool, embedder.model()).await?;
    let (status, detail) = if missing == 0 {
        (
            CheckStatus::Ok,
            format!("the sentences of all {total} retrievable chunks are embedded"),
        )
    } else {
        (
            CheckStatus::Warn,
            format!(
                "{missing} of {total} retrievable chunks have no sentence vectors yet: answers \
                 from them choose sentences by words alone until the server's background job \
                 or `amal-engine kb sentences` embeds them"
            ),
        )
    };
    report.push("sentences", status, detail);
    Ok(())
}

async fn gather(pool: &PgPool, report: &mut DoctorReport) -> Result<(), sqlx::Error> {
    let (version, database): (String, String) =
        match sqlx::query_as("SELECT current_setting('server_version'), current_database()")
            .fetch_one(pool)
            .await
        {
            Ok(row) => row,
            Err(e) => {
                report.push(
                    "connectivity",
                    CheckStatus::Fail,
                    format!("connected, but the server does not answer: {e}"),
                );
                return Ok(());
            }
        };
    report.push(
        "connectivity",
        CheckStatus::Ok,
        format!("connected to database {database}"),
    );
    report.push("server", CheckStatus::Ok, format!("PostgreSQL {version}"));
    report.server_version = Some(version);
    report.database = Some(database);

    let pgvector = db::pgvector_status(pool).await.map_err(|e| match e {
        db::DbError::Sql(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    })?;
    match (&pgvector.available, &pgvector.installed) {
        (None, _) => report.push(
            "pgvector",
            CheckStatus::Fail,
            "pgvector is NOT installed on this PostgreSQL server (extension \"vector\" not available). \
             Install it with `bash scripts/setup.sh` (builds pgvector 0.8 from Debian's source package) \
             or the postgresql-<major>-pgvector package",
        ),
        (Some(avail), None) => report.push(
            "pgvector",
            CheckStatus::Fail,
            format!("pgvector {avail} is available but not created in this database: run `amal-engine migrate`"),
        ),
        (Some(_), Some(installed)) => report.push("pgvector", CheckStatus::Ok, format!("pgvector {installed}")),
    }
    report.pgvector = Some(pgvector);

    let migrations = migration_report(pool).await?;
    let status = if migrations.failed.is_empty()
        && migrations.modified.is_empty()
        && migrations.pending.is_empty()
    {
        CheckStatus::Ok
    } else {
        CheckStatus::Fail
    };
    let mut detail = format!("{} of {} applied", migrations.applied, migrations.expected);
    for (label, list) in [
        ("pending (run `amal-engine migrate`)", &migrations.pending),
        ("FAILED (fix, then re-run)", &migrations.failed),
        ("MODIFIED after being applied", &migrations.modified),
        (
            "unknown to this engine (newer version ran here)",
            &migrations.unknown,
        ),
    ] {
        if !list.is_empty() {
            detail.push_str(&format!("; {label}: {list:?}"));
        }
    }
    report.push("migrations", status, detail);
    report.migrations = Some(migrations);

    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await?;
    report.push(
        "size",
        CheckStatus::Ok,
        format!("database {}", human_bytes(bytes)),
    );
    report.database_bytes = Some(bytes);

    report.tables = sqlx::query_as(
        "SELECT relname::text AS table, pg_total_relation_size(relid) AS total_bytes, \
                GREATEST(n_live_tup, 0) AS rows_estimate \
         FROM pg_stat_user_tables WHERE schemaname = 'public' \
         ORDER BY pg_total_relation_size(relid) DESC, relname LIMIT 20",
    )
    .fetch_all(pool)
    .await?;

    let (in_db, on_server, max): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE datname = current_database()), count(*), \
                current_setting('max_connections')::bigint \
         FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .fetch_one(pool)
    .await?;
    let status = if on_server * 10 >= max * 9 {
        CheckStatus::Warn
    } else {
        CheckStatus::Ok
    };
    report.push(
        "connections",
        status,
        format!("{in_db} to this database, {on_server} of {max} on the server"),
    );
    report.connections = Some(Connections {
        database: in_db,
        server: on_server,
        max,
    });

    let (hit, read): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(heap_blks_hit), 0)::bigint, COALESCE(sum(heap_blks_read), 0)::bigint FROM pg_statio_user_tables",
    )
    .fetch_one(pool)
    .await?;
    let ratio = (hit + read > 0).then(|| hit as f64 / (hit + read) as f64);
    report.cache_hit_ratio = ratio;
    match ratio {
        // A freshly started server reads everything from disk once: judge only after real traffic.
        Some(r) if r < 0.90 && hit + read >= 10_000 => report.push(
            "cache",
            CheckStatus::Warn,
            format!(
                "cache-hit ratio {:.1}% (below 90%: consider more shared_buffers)",
                r * 100.0
            ),
        ),
        Some(r) => report.push(
            "cache",
            CheckStatus::Ok,
            format!("cache-hit ratio {:.1}%", r * 100.0),
        ),
        None => report.push("cache", CheckStatus::Ok, "no table reads yet"),
    }

    report.unused_indexes = sqlx::query_as(
        "SELECT s.relname::text AS table, s.indexrelname::text AS index, pg_relation_size(s.indexrelid) AS bytes \
         FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
         WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND s.schemaname = 'public' \
         ORDER BY pg_relation_size(s.indexrelid) DESC, s.indexrelname",
    )
    .fetch_all(pool)
    .await?;
    report.push(
        "indexes",
        CheckStatus::Ok,
        format!(
            "{} non-unique indexes not scanned since statistics were reset",
            report.unused_indexes.len()
        ),
    );
    Ok(())
}

async fn migration_report(pool: &PgPool) -> Result<MigrationReport, sqlx::Error> {
    let expected: BTreeMap<i64, Vec<u8>> = db::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect();
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let applied: Vec<(i64, bool, Vec<u8>)> = if table_exists {
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let mut report = MigrationReport {
        expected: expected.len(),
        ..Default::default()
    };
    for (version, success, checksum) in &applied {
        match expected.get(version) {
            None => report.unknown.push(*version),
            Some(_) if !success => report.failed.push(*version),
            Some(sum) if sum != checksum => report.modified.push(*version),
            Some(_) => report.applied += 1,
        }
    }
    report.pending = expected
        .keys()
        .filter(|v| !applied.iter().any(|(a, _, _)| a == *v))
        .copied()
        .collect();
    Ok(report)
}

/// Formats a byte count as the documents' `pg_size_pretty` would.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = match check.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            writeln!(f, "[{mark}] {:<12} {}", check.name, check.detail)?;
        }
        if !self.tables.is_empty() {
            writeln!(f, "\nlargest tables:")?;
            for t in self.tables.iter().take(10) {
                writeln!(
                    f,
                    "  {:<28} {:>10}  ~{} rows",
                    t.table,
                    human_bytes(t.total_bytes),
                    t.rows_estimate
                )?;
            }
        }
        if !self.unused_indexes.is_empty() {
            writeln!(f, "\nunused indexes (largest first):")?;
            for i in self.unused_indexes.iter().take(10) {
                writeln!(
                    f,
                    "  {:<48} on {:<24} {:>10}",
                    i.index,
                    i.table,
                    human_bytes(i.bytes)
                )?;
            }
        }
        write!(
            f,
            "\n{}",
            if self.healthy { "healthy" } else { "UNHEALTHY" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2048), "2.0 kB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MB");
    }
}
