//! What the benchmarks share: a private, migrated database and small measuring helpers.

use std::path::PathBuf;
use std::time::Duration;

use amal_engine::db;
use sqlx::PgPool;

/// A number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0..1) of sorted durations, in milliseconds.
#[allow(dead_code)]
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The machine's 1/5/15-minute load averages: every figure depends on what else runs.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The admin URL of DATABASE_URL's server, else of the embedded cluster under
/// `target/<cluster_dir>` (started if needed).
fn admin_url(cluster_dir: &str) -> anyhow::Result<String> {
    Ok(match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(cluster_dir);
            let cluster = db::embedded::EmbeddedCluster::new(&dir, None)?;
            cluster.start()?;
            cluster.maintenance_url()?.expect("started")
        }
    })
}

/// The database `name` as a previous run left it (migrated again), or `None` when it does not
/// exist: lets a benchmark re-measure queries without rebuilding its data.
#[allow(dead_code)]
pub async fn existing_database(
    name: &str,
    cluster_dir: &str,
    max_connections: u32,
) -> anyhow::Result<Option<PgPool>> {
    let admin_url = admin_url(cluster_dir)?;
    let admin = db::connect_url(&admin_url, 2).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&admin)
            .await?;
    admin.close().await;
    if !exists {
        return Ok(None);
    }
    let pool = db::connect_url(&db::with_database(&admin_url, name), max_connections).await?;
    db::migrate(&pool).await?;
    Ok(Some(pool))
}

/// Drops and recreates the database `name` on DATABASE_URL's server (else on an embedded
/// cluster under `target/<cluster_dir>`), migrates it and returns a pool of
/// `max_connections` and its URL.
pub async fn fresh_database(
    name: &str,
    cluster_dir: &str,
    max_connections: u32,
) -> anyhow::Result<(PgPool, String)> {
    let admin_url = admin_url(cluster_dir)?;
    let admin = db::connect_url(&admin_url, 2).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let url = db::with_database(&admin_url, name);
    let pool = db::connect_url(&url, max_connections).await?;
    db::migrate(&pool).await?;
    Ok((pool, url))
}

/// Parses CSV/TSV text: quoted fields may hold delimiters, doubled quotes and newlines.
#[allow(dead_code)]
pub fn parse_csv(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else if c == '"' && field.is_empty() {
            quoted = true;
        } else if c == delimiter {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        } else if c != '\r' {
            field.push(c);
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}
