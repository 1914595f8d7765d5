//! multilingual-e5-small: the model's own speed, and `kb reembed` beside it.
//!
//! The starter knowledge base is ingested with the hashed embedder; then, per round: the raw
//! passage throughput (the chunks' texts through the model alone, as many calls at once as
//! `kb reembed` makes, no database), and `kb reembed` moving the chunks to the model (reading,
//! embedding and writing them). Their ratio is what the round measures: how much of the model's
//! speed re-embedding keeps. Queries: the shipped evaluation set's questions, one at a time.
//!
//! Knobs: `AMAL_BENCH_ROUNDS` (default 2), `AMAL_BENCH_QUERIES` (default 121: the whole set).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amal_engine::knowledge::embed::{Embedder, TextKind};
use amal_engine::knowledge::store::{self, IngestOptions};
use amal_engine::knowledge::{e5, eval};
use amal_engine::seed;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, load_average, percentile};

/// The texts `kb reembed` embeds: every chunk with its document's context.
async fn chunk_texts(pool: &sqlx::PgPool) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT d.title, d.metadata->'front_matter'->>'tags', c.content \
         FROM document_chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|(title, tags, content)| store::chunk_text(title, tags.as_deref(), content))
        .collect())
}

/// Embeds `texts` as passages with `embedder.parallelism()` workers taking batches of
/// [`store::REEMBED_BATCH`], as `kb reembed` does, without the database. Returns chunks/s.
async fn raw_passages(embedder: &Embedder, texts: &Arc<Vec<String>>) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..embedder.parallelism() {
        let (embedder, texts, next) = (embedder.clone(), texts.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let from = next.fetch_add(store::REEMBED_BATCH, Ordering::Relaxed);
                if from >= texts.len() {
                    return anyhow::Ok(());
                }
                let to = (from + store::REEMBED_BATCH).min(texts.len());
                let batch: Vec<&str> = texts[from..to].iter().map(String::as_str).collect();
                embedder.embed(TextKind::Passage, &batch).await?;
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = env_usize("AMAL_BENCH_ROUNDS", 2);
    let e5 = Embedder::from_env().await?;
    anyhow::ensure!(
        matches!(e5, Embedder::E5(_)),
        "this benchmark measures multilingual-e5-small: unset AMAL_EMBEDDER and AMAL_EMBED_URL"
    );
    let (pool, _) =
        common::fresh_database("amal_bench_embeddings", "amal-bench-embeddings-db", 8).await?;
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    let hashed = Embedder::hashed();
    let kb = store::ingest_paths(
        &pool,
        &hashed,
        &[seed::knowledge_dir()],
        &options,
        store::INGEST_WORKERS,
        |_| {},
    )
    .await?;
    let texts = Arc::new(chunk_texts(&pool).await?);
    let tokens: Vec<i64> = sqlx::query_scalar("SELECT token_count::int8 FROM document_chunks")
        .fetch_all(&pool)
        .await?;
    println!(
        "{}: {} documents, {} chunks (mean {:.0} tokens by the chunker's count), {} workers; load average {}",
        e5::E5_MODEL,
        kb.new,
        texts.len(),
        tokens.iter().sum::<i64>() as f64 / tokens.len().max(1) as f64,
        e5.parallelism(),
        load_average()
    );

    // Queries, one at a time, as a person's message is embedded.
    let cases = eval::load_cases(&seed::knowledge_dir().join("eval.jsonl"))?;
    let n = env_usize("AMAL_BENCH_QUERIES", cases.len()).min(cases.len());
    e5.embed_query(&cases[0].0.q).await?;
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for (case, _) in &cases[..n] {
        let started = Instant::now();
        e5.embed_query(&case.q).await?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "query embedding, {n} questions one at a time: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 1.0)
    );

    println!("| round | raw passages | kb reembed | ratio | load average |");
    println!("| --- | --- | --- | --- | --- |");
    for round in 1..=rounds {
        // Back to the hashed vectors, so that the re-embedding has every chunk to do.
        sqlx::query("SELECT set_embedding_dimension($1, $2)")
            .bind(hashed.model())
            .bind(hashed.dimension() as i32)
            .execute(&pool)
            .await?;
        // Alternating which goes first, so that a drift in the machine's speed does not favour
        // one side.
        let (raw, summary) = if round % 2 == 1 {
            let raw = raw_passages(&e5, &texts).await?;
            (
                raw,
                store::reembed(&pool, &e5, store::REEMBED_BATCH, |_, _| {}).await?,
            )
        } else {
            let summary = store::reembed(&pool, &e5, store::REEMBED_BATCH, |_, _| {}).await?;
            (raw_passages(&e5, &texts).await?, summary)
        };
        anyhow::ensure!(summary.embedded as usize == texts.len(), "{summary:?}");
        let reembed = summary.embedded as f64 / summary.seconds;
        println!(
            "| {round} | {raw:.2} chunks/s | {reembed:.2} chunks/s | {:.2} | {} |",
            reembed / raw,
            load_average()
        );
    }
    pool.close().await;
    Ok(())
}
