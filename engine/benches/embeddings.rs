//! multilingual-e5-small: the model's own speed, and `kb reembed` beside it.
//!
//! The starter knowledge base is ingested with the hashed embedder; then, per round: the raw
//! passage throughput (the chunks' texts through the model alone, as many calls at once as
//! `kb reembed` makes, no database), and `kb reembed` moving the chunks to the model (reading,
//! embedding and writing them). Their ratio is what the round measures: how much of the model's
//! speed re-embedding keeps. Queries: the shipped evaluation set's questions, one at a time.
//!
//! Knobs: `AMAL_BENCH_ROUNDS` (default 2), `AMAL_BENCH_QUERIES` (default 121: the whole set).
//!
//! `AMAL_BENCH_INGEST_CHUNKS=N` (the figure: 10000; about an hour here) measures
//! ingestion instead: documents made of the public corpora's texts (counsel-chat's answers
//! under their question, MentalQA's answers, the FAQ set's answers; ../shared/eval; numbered
//! copies after the first 4,000 chunks or so) until the chunker makes N chunks, ingested by `kb ingest`'s code (`store::ingest_paths`, its workers,
//! reading, PII stripping, chunking, embedding, writing, then the search indexes). The model's
//! raw passage throughput on the same chunk texts is measured on a sample of
//! `AMAL_BENCH_RAW_SAMPLE` (default 300) chunks just before and just after the ingestion, in
//! the same run, as the reference.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amal_engine::knowledge::embed::{Embedder, TextKind};
use amal_engine::knowledge::store::{self, IngestOptions};
use amal_engine::knowledge::{chunk, e5, eval, source};
use amal_engine::seed;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, load_average, parse_csv, percentile};

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

/// Markdown documents (language, title, paragraphs) from the public corpora.
fn corpus_documents() -> anyhow::Result<Vec<(&'static str, String, Vec<String>)>> {
    let eval = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval");
    let read = |p: &str| {
        std::fs::read_to_string(eval.join(p))
            .map_err(|e| anyhow::anyhow!("{p}: {e} (the public corpora are needed)"))
    };
    let mut docs: Vec<(&'static str, String, Vec<String>)> = Vec::new();
    // counsel-chat: every therapist's answer under its question, one document per question.
    let mut by_question: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for row in parse_csv(&read("counsel-chat-en/20200325_counsel_chat.csv")?, ',')
        .iter()
        .skip(1)
    {
        if let (Some(title), Some(answer)) = (row.get(2), row.get(8)) {
            by_question
                .entry(title.trim().to_string())
                .or_default()
                .push(answer.trim().to_string());
        }
    }
    docs.extend(by_question.into_iter().map(|(t, a)| ("en", t, a)));
    for row in parse_csv(&read("mentalqa-ar/MentalQA_500_data.tsv")?, '\t')
        .iter()
        .skip(1)
    {
        if let (Some(q), Some(a)) = (row.first(), row.get(1)) {
            let title: String = q.split_whitespace().take(12).collect::<Vec<_>>().join(" ");
            docs.push((
                "ar",
                title,
                vec![q.trim().to_string(), a.trim().to_string()],
            ));
        }
    }
    let faq: serde_json::Value =
        serde_json::from_str(&read("mh-faq-retrieval-en/documents.json")?)?;
    for item in faq.as_array().into_iter().flatten() {
        if let (Some(q), Some(a)) = (item["Questions"].as_str(), item["Answers"].as_str()) {
            docs.push(("en", q.trim().to_string(), vec![a.trim().to_string()]));
        }
    }
    Ok(docs)
}

/// Ingestion of about `target` chunks on the model beside the model's raw passage throughput.
async fn ingestion(e5: &Embedder, target: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("amal-bench-ingest-{}", std::process::id()));
    let mut texts = Vec::new();
    let docs = corpus_documents()?;
    // The corpora make about 4,000 chunks: further passes number their documents, whose
    // content then differs (ingestion would reject exact duplicates) and costs the model the
    // same.
    for (i, (lang, title, paragraphs)) in docs.iter().cycle().enumerate() {
        if texts.len() >= target {
            break;
        }
        let pass = i / docs.len();
        let path = dir.join(lang).join(format!("{i:06}.md"));
        std::fs::create_dir_all(path.parent().expect("a directory"))?;
        let mut title = title.replace(['\n', '#'], " ");
        let mut body = paragraphs.join("\n\n");
        if pass > 0 {
            title = format!("{title} ({pass})");
            body = format!("Copy {pass}.\n\n{body}");
        }
        let body =
            format!("---\nlang: {lang}\ncategory: mental_health\n---\n# {title}\n\n{body}\n");
        std::fs::write(&path, body)?;
        // The texts ingestion will embed: the document as read, chunked, with its context.
        let doc = source::read(&path)?;
        let tags = doc.front_matter.get("tags").map(String::as_str);
        texts.extend(
            chunk::chunk(&doc.content, Default::default())
                .iter()
                .map(|c| store::chunk_text(&doc.title, tags, &c.content)),
        );
    }
    let sample_size = env_usize("AMAL_BENCH_RAW_SAMPLE", 300).clamp(1, texts.len());
    let step = texts.len() / sample_size;
    let sample: Arc<Vec<String>> = Arc::new(
        texts
            .iter()
            .step_by(step.max(1))
            .take(sample_size)
            .cloned()
            .collect(),
    );
    let (pool, _) =
        common::fresh_database("amal_bench_ingestion", "amal-bench-embeddings-db", 8).await?;
    println!(
        "ingestion on {}: {} chunks planned from the public corpora, {} workers; load average {}",
        e5::E5_MODEL,
        texts.len(),
        store::INGEST_WORKERS,
        load_average()
    );
    let before = raw_passages(e5, &sample).await?;
    println!(
        "  raw passages before, {sample_size} of the chunks: {before:.2} chunks/s (load average {})",
        load_average()
    );
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    let started = Instant::now();
    let summary = store::ingest_paths(
        &pool,
        e5,
        std::slice::from_ref(&dir),
        &options,
        store::INGEST_WORKERS,
        |_| {},
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = raw_passages(e5, &sample).await?;
    println!(
        "  raw passages after: {after:.2} chunks/s (load average {})",
        load_average()
    );
    let rate = summary.chunks as f64 / seconds;
    let raw = (before + after) / 2.0;
    println!(
        "  ingestion: {} documents, {} chunks in {seconds:.0} s = {rate:.2} chunks/s (the search indexes built after the load: {:.1} s of it); \
         ratio to the raw throughput (mean of before and after) {:.2}; load average {}",
        summary.new,
        summary.chunks,
        summary.index_seconds,
        rate / raw,
        load_average()
    );
    if summary.chunks as usize != texts.len() {
        // Repeated texts in the corpora are rejected as duplicates, as ingestion should.
        println!(
            "  {} of the {} planned chunks stored: {} files rejected",
            summary.chunks,
            texts.len(),
            summary.files.len() - summary.new
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    pool.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = env_usize("AMAL_BENCH_ROUNDS", 2);
    let e5 = Embedder::from_env().await?;
    anyhow::ensure!(
        matches!(e5, Embedder::E5(_)),
        "this benchmark measures multilingual-e5-small: unset AMAL_EMBEDDER and AMAL_EMBED_URL"
    );
    let ingest_chunks = env_usize("AMAL_BENCH_INGEST_CHUNKS", 0);
    if ingest_chunks > 0 {
        return ingestion(&e5, ingest_chunks).await;
    }
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
