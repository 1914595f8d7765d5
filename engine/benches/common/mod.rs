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

/// The exact 10 nearest retrievable chunks of each search (a language and a query vector) by a
/// sequential scan of the full-precision vectors, with the 10th distance, and each scan's time.
#[allow(dead_code)]
pub async fn exact_neighbours(
    pool: &PgPool,
    searches: &[(amal_engine::lang::Lang, pgvector::Vector)],
) -> anyhow::Result<(Vec<(Vec<uuid::Uuid>, f64)>, Vec<Duration>)> {
    let (mut exact, mut times) = (Vec::new(), Vec::new());
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL enable_indexscan = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL enable_bitmapscan = off")
        .execute(&mut *tx)
        .await?;
    for (lang, v) in searches {
        let t = std::time::Instant::now();
        let rows: Vec<(uuid::Uuid, f64)> = sqlx::query_as(
            "SELECT id, embedding <=> $1 FROM document_chunks WHERE retrievable AND lang = $2 \
             ORDER BY embedding <=> $1 LIMIT 10",
        )
        .bind(v)
        .bind(lang.code())
        .fetch_all(&mut *tx)
        .await?;
        times.push(t.elapsed());
        let tenth = rows.last().map_or(f64::MAX, |r| r.1);
        exact.push((rows.into_iter().map(|r| r.0).collect(), tenth));
    }
    tx.commit().await?;
    Ok((exact, times))
}

/// The `hnsw.ef_search` values to measure: `AMAL_BENCH_EF` (comma-separated), else `default`.
#[allow(dead_code)]
pub fn ef_search_values(default: &str) -> Vec<u32> {
    std::env::var("AMAL_BENCH_EF")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|v| v.trim().parse().expect("AMAL_BENCH_EF: numbers"))
        .collect()
}

/// What one `ef_search` value gave against the exact neighbours.
#[allow(dead_code)]
pub struct Recall {
    /// Share of hits no farther than the exact 10th neighbour: the corpus can hold several
    /// chunks at the same distance (as ann-benchmarks counts).
    pub by_distance: f64,
    /// Share of the exact neighbours' ids found.
    pub by_id: f64,
    /// Each index search's time, sorted.
    pub times: Vec<Duration>,
}

/// Recall@10 of the HNSW indexes at `ef` for `searches` against `exact` (in the same order),
/// ordering by `order_expr` (the expression the index is built on, against `$1`).
#[allow(dead_code)]
pub async fn hnsw_recall(
    pool: &PgPool,
    searches: &[(amal_engine::lang::Lang, pgvector::Vector)],
    exact: &[(Vec<uuid::Uuid>, f64)],
    ef: u32,
    order_expr: &str,
) -> anyhow::Result<Recall> {
    let mut tx = pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL hnsw.ef_search = {ef}"
    )))
    .execute(&mut *tx)
    .await?;
    let (mut by_id, mut by_distance, mut n) = (0usize, 0usize, 0usize);
    let mut times = Vec::new();
    for ((lang, v), (truth, tenth)) in searches.iter().zip(exact) {
        let sql = format!(
            "SELECT id, embedding <=> $1 FROM document_chunks WHERE retrievable AND lang = '{}' \
             ORDER BY {order_expr} LIMIT 10",
            lang.code()
        );
        let t = std::time::Instant::now();
        let rows: Vec<(uuid::Uuid, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(v)
            .fetch_all(&mut *tx)
            .await?;
        times.push(t.elapsed());
        n += truth.len();
        by_id += rows.iter().filter(|(id, _)| truth.contains(id)).count();
        by_distance += rows.iter().filter(|(_, d)| *d <= tenth + 1e-6).count();
    }
    tx.commit().await?;
    times.sort();
    Ok(Recall {
        by_distance: by_distance as f64 / n.max(1) as f64,
        by_id: by_id as f64 / n.max(1) as f64,
        times,
    })
}
