//! Database access: the connection pool, the schema migrations and the embedded default cluster.
//!
//! `DATABASE_URL` names an external server; without it the engine starts its own private
//! cluster ([`embedded`]). Either way the schema comes only from `migrations/`.

pub mod backup;
pub mod embedded;
pub mod person;

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
/// The connection pool every entry point uses (re-exported so clients need no SQL crate).
pub use sqlx::{PgConnection, PgPool};

use crate::config::{Config, DatabaseSource};
use embedded::{ClusterError, EmbeddedCluster};

/// The schema migrations, embedded in the binary at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Why the engine could not reach or prepare its database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The embedded cluster could not be created, started or stopped.
    #[error("embedded database: {0}")]
    Cluster(#[from] ClusterError),
    /// The URL is malformed.
    #[error("invalid database URL {url}: {source}")]
    BadUrl {
        /// The URL with any password hidden.
        url: String,
        /// Why it was rejected.
        source: sqlx::Error,
    },
    /// The server did not accept a connection.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL with any password hidden.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The pgvector extension is not installed on the server.
    #[error(
        "pgvector is not installed on the PostgreSQL server ({server}): the extension \"vector\" is not available. \
         Install it with `bash scripts/setup.sh` (it builds pgvector 0.8 from Debian's source package for PostgreSQL 15), \
         or install your distribution's postgresql-<major>-pgvector package, then run `amal-engine migrate` again"
    )]
    PgvectorMissing {
        /// The server's version string.
        server: String,
    },
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The name of the constraint a failed statement violated, if that is why it failed.
///
/// Domain modules map these names (all constraints are named in `migrations/`) to their own errors.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error().and_then(|e| e.constraint())
}

/// Returns once everything this connection has committed is on disk (under the session's
/// `synchronous_commit`): the durable commit of a transaction that writes only a WAL message
/// (no table, no lock), whose flush covers every earlier WAL record. Concurrent callers share
/// flushes (group commit).
///
/// What it is for: a transaction that sends a NOTIFY holds the cluster-wide notify lock from
/// its pre-commit until after its commit record is flushed, so notifying transactions that
/// wait for their own flush are serialised one flush at a time. Such a transaction commits
/// with `synchronous_commit = off` (the lock is released at once) and the caller then waits
/// here, outside the lock, before reporting success.
pub async fn wait_for_wal_flush(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_logical_emit_message(true, 'amal.flush', '')")
        .execute(conn)
        .await
        .map(|_| ())
}

/// `url` with its database replaced by `name` (the query string kept): how tests and
/// benchmarks reach a database of their own on the same server.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let server = base.rfind('/').map_or(base, |slash| &base[..slash]);
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

/// Hides the password in a connection URL, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The embedded cluster described by `config` (nothing is started).
pub fn embedded_cluster(config: &Config) -> Result<EmbeddedCluster, DbError> {
    Ok(EmbeddedCluster::new(
        &config.data_dir,
        config.pg_bin.as_deref(),
    )?)
}

/// The URL of the configured database, starting the embedded cluster first when it is the one in use.
pub async fn database_url(config: &Config) -> Result<String, DbError> {
    match &config.database {
        DatabaseSource::External(url) => Ok(url.clone()),
        DatabaseSource::Embedded(_) => {
            let config = config.clone();
            // initdb and pg_ctl block for up to seconds: keep them off the async workers.
            let url = tokio::task::spawn_blocking(move || {
                embedded_cluster(&config)?.start().map_err(DbError::from)
            })
            .await??;
            Ok(url)
        }
    }
}

/// Opens a pool on `url` without touching the schema.
pub async fn connect_url(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.parse().map_err(|source| DbError::BadUrl {
        url: redact_url(url),
        source,
    })?;
    let options = options
        .application_name("amal-engine")
        .options(SESSION_SETTINGS.iter().copied())
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // By default every acquire pings the connection first: a round trip before each
        // statement run on the pool (every statement of a search). Only a connection that sat idle
        // for a while can have been closed under it (a server restart), so only those are
        // checked.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_CONNECTION_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(url),
            source,
        })
}

/// Settings every engine connection starts with, sent with the connection request (no round
/// trip of their own):
/// - `jit = off`: the engine's statements are short OLTP queries; JIT compilation costs tens
///   to hundreds of milliseconds whenever an estimate crosses `jit_above_cost`, which a
///   ticket-queue page once did;
/// - `hnsw.ef_search` and `hnsw.iterative_scan`: the retriever's defaults for a search without
///   a category filter, so that it is one statement instead of a transaction that sets them
///   first. Iterative scans are off: the language filter lives in each index's predicate, so
///   only a category filter needs them, and they made every HNSW scan slower (the scan keeps
///   the candidates it discards, for a next round; docs/retrieval.md); a
///   category search turns them on for its own transaction. Placeholders until pgvector is
///   loaded in the session, which then takes them over.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("jit", "off"),
    ("hnsw.ef_search", HNSW_EF_SEARCH),
    ("hnsw.iterative_scan", "off"),
];

/// `knowledge::retrieval::DEFAULT_EF_SEARCH` as text (checked equal by a test).
const HNSW_EF_SEARCH: &str = "200";

/// A pooled connection idle for at least this long is pinged before it is handed out.
const CHECK_IDLE_CONNECTION_AFTER: Duration = Duration::from_secs(10);

/// Default pool size: enough for the server's workers and concurrent requests on a small machine.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Connects to the configured database (starting the embedded one if needed) without migrating.
pub async fn connect(config: &Config) -> Result<PgPool, DbError> {
    let url = database_url(config).await?;
    let max = std::env::var("AMAL_DB_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    connect_url(&url, max).await
}

/// Connects and brings the schema up to date: what every entry point does on start-up.
pub async fn connect_and_migrate(config: &Config) -> Result<PgPool, DbError> {
    let pool = connect(config).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// The pgvector extension as the server sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgvectorStatus {
    /// The version the server can install (`None`: not installed on the machine).
    pub available: Option<String>,
    /// The version installed in this database (`None`: `CREATE EXTENSION vector` not run yet).
    pub installed: Option<String>,
}

/// Asks the server whether pgvector is available and installed.
pub async fn pgvector_status(pool: &PgPool) -> Result<PgvectorStatus, DbError> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'vector'",
    )
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some((available, installed)) => PgvectorStatus {
            available,
            installed,
        },
        None => PgvectorStatus {
            available: None,
            installed: None,
        },
    })
}

/// Applies pending migrations. Fails with [`DbError::PgvectorMissing`] before touching anything
/// when the server lacks pgvector, instead of a half-applied schema and a cryptic SQL error.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    if pgvector_status(pool).await?.available.is_none() {
        let server: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(pool)
            .await?;
        return Err(DbError::PgvectorMissing { server });
    }
    MIGRATOR.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{redact_url, with_database};

    #[test]
    fn replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/amal", "other"),
            "postgres://u:p@127.0.0.1:5432/other"
        );
        assert_eq!(
            with_database("postgres://u@h/amal?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://amal:secret@127.0.0.1:5432/amal"),
            "postgres://amal:***@127.0.0.1:5432/amal"
        );
        assert_eq!(
            redact_url("postgres://amal@host/db"),
            "postgres://amal@host/db"
        );
        assert_eq!(redact_url("postgres:///db"), "postgres:///db");
    }
}
