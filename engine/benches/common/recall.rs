//! HNSW recall against an exact scan, shared by the knowledge and vectors benchmarks (apart
//! from `common`, which the console's benchmark includes too and which needs no pgvector).

use std::time::Duration;

use amal_engine::lang::Lang;
use pgvector::Vector;
use sqlx::PgPool;

/// The exact 10 nearest retrievable chunks of each search (a language and a query vector) by a
/// sequential scan of the full-precision vectors, with the 10th distance, and each scan's time.
pub async fn exact_neighbours(
    pool: &PgPool,
    searches: &[(Lang, Vector)],
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
pub fn ef_search_values(default: &str) -> Vec<u32> {
    std::env::var("AMAL_BENCH_EF")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|v| v.trim().parse().expect("AMAL_BENCH_EF: numbers"))
        .collect()
}

/// What one `ef_search` value gave against the exact neighbours.
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
pub async fn hnsw_recall(
    pool: &PgPool,
    searches: &[(Lang, Vector)],
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
