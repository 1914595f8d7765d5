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
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Drops and recreates the database `name` on DATABASE_URL's server (else on an embedded
/// cluster under `target/<cluster_dir>`), migrates it and returns a pool of
/// `max_connections` and its URL.
pub async fn fresh_database(
    name: &str,
    cluster_dir: &str,
    max_connections: u32,
) -> anyhow::Result<(PgPool, String)> {
    let admin_url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(cluster_dir);
            let cluster = db::embedded::EmbeddedCluster::new(&dir, None)?;
            cluster.start()?;
            cluster.maintenance_url()?.expect("started")
        }
    };
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
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
    let slash = base.rfind('/').expect("URL has a database");
    let url = if query.is_empty() {
        format!("{}/{name}", &base[..slash])
    } else {
        format!("{}/{name}?{query}", &base[..slash])
    };
    let pool = db::connect_url(&url, max_connections).await?;
    db::migrate(&pool).await?;
    Ok((pool, url))
}
