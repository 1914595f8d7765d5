//! Knowledge-base benchmark (not a test): `cargo bench -p amal-engine --bench knowledge`.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else an embedded cluster
//! under target/amal-bench-db) it measures, with the offline embedder:
//! 1. ingestion throughput, building a knowledge base of about 100,000 chunks from documents
//!    made of the starter knowledge base's sentences;
//! 2. hybrid search latency (p50, p95, p99) over those chunks;
//! 3. HNSW recall@10 against an exact scan at several ef_search values;
//! 4. the platform documents' original query shape side by side: an IVFFlat index (lists = 100)
//!    built on the empty table, then filled, queried with the threshold in the WHERE clause.
//!
//! The public retrieval sets in ../shared/eval are evaluated when present.
//!
//! Environment: AMAL_BENCH_CHUNKS (default 100000), AMAL_BENCH_QUERIES (default 300),
//! AMAL_BENCH_HNSW="m,ef_construction" (rebuild the vector indexes with these parameters before
//! measuring recall; with AMAL_BENCH_FULLVEC=1 on the full-precision vectors instead of half
//! precision), AMAL_BENCH_WORKERS (ingestion workers, default store::INGEST_WORKERS), AMAL_BENCH_REUSE=1 (keep the knowledge base a previous run built and skip ingestion, to
//! re-measure searches), AMAL_BENCH_PUBLIC=0 (skip the public sets).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amal_engine::knowledge::embed::{Embedder, HashEmbedder};
use amal_engine::knowledge::source::{self, Format};
use amal_engine::knowledge::store::{self, IngestOptions};
use amal_engine::knowledge::{Retriever, SearchRequest, eval};
use amal_engine::lang::Lang;
use pgvector::Vector;

#[path = "common/mod.rs"]
mod common;
#[path = "common/recall.rs"]
mod recall;
use common::{env_usize, load_average, parse_csv, percentile};
use sqlx::PgPool;

/// xorshift64*: a tiny deterministic generator, so every run builds the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sentences of the starter knowledge base, per language.
fn sentences(root: &Path) -> Vec<(Lang, Vec<String>)> {
    Lang::ALL
        .iter()
        .map(|lang| {
            let dir = root.join("seeds/knowledge").join(lang.code());
            let (files, _) = source::collect(&[dir]);
            let mut out = Vec::new();
            for f in files {
                let doc = source::read(&f).expect("starter document reads");
                for s in doc.content.split(['.', '؟', '?', '!']) {
                    let s = s.trim();
                    if s.split_whitespace().count() >= 5 {
                        out.push(format!("{s}."));
                    }
                }
            }
            (*lang, out)
        })
        .collect()
}

/// A fresh database `name` on the benchmark's cluster.
async fn bench_pool(name: &str) -> anyhow::Result<PgPool> {
    Ok(common::fresh_database(name, "amal-bench-db", 8).await?.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target_chunks = env_usize("AMAL_BENCH_CHUNKS", 100_000);
    let queries = env_usize("AMAL_BENCH_QUERIES", 300);
    let reuse = env_usize("AMAL_BENCH_REUSE", 0) == 1;
    let existing = if reuse {
        let started = Instant::now();
        let pool = common::existing_database("amal_bench_kb", "amal-bench-db", 8).await?;
        println!(
            "reused the previous run's database; opening and migrating it took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        pool
    } else {
        None
    };
    let (pool, reused) = match existing {
        Some(pool) => (pool, true),
        None => (bench_pool("amal_bench_kb").await?, false),
    };
    let embedder = Embedder::Hash(HashEmbedder::default());
    let corpus = sentences(&root);
    let mut rng = Rng(0x5EED_A11A);

    // 1. Ingestion: documents of 12 paragraphs x 4 sentences; about 6 chunks each.
    println!("## Knowledge base benchmark\n");
    println!("load average at the start: {}", load_average());
    let mut docs = Vec::new();
    let mut planned = 0usize;
    let mut n = 0usize;
    while planned < target_chunks {
        let (lang, sents) = &corpus[n % 3];
        let mut body = format!(
            "---\nlang: {}\ncategory: {}\n---\n# Synthetic {n}\n\n",
            lang.code(),
            ["addiction", "mental_health", "prevention"][rng.below(3)]
        );
        for _ in 0..12 {
            for _ in 0..4 {
                body.push_str(&sents[rng.below(sents.len())]);
                body.push(' ');
            }
            body.push_str(&format!("(ref {n})\n\n"));
        }
        let doc = source::parse(
            body.as_bytes(),
            Format::Markdown,
            "synthetic",
            &format!("bench/{n}.md"),
        )
        .expect("parses");
        planned += amal_engine::knowledge::chunk::chunk(&doc.content, Default::default()).len();
        docs.push(doc);
        n += 1;
    }
    let corpus_dir = std::env::temp_dir().join(format!("amal-bench-corpus-{}", std::process::id()));
    for (i, doc) in docs.iter().enumerate() {
        let dir = corpus_dir.join(doc.lang.code());
        std::fs::create_dir_all(&dir)?;
        let category = doc.category.clone().unwrap_or_default();
        std::fs::write(
            dir.join(format!("{i:05}.md")),
            format!(
                "---\nlang: {}\ncategory: {category}\n---\n# {}\n\n{}\n",
                doc.lang.code(),
                doc.title,
                doc.content
            ),
        )?;
    }
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    let workers = env_usize("AMAL_BENCH_WORKERS", store::INGEST_WORKERS);
    let chunks = if reused {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks")
            .fetch_one(&pool)
            .await?;
        println!("ingestion: skipped (AMAL_BENCH_REUSE=1), {n} chunks from the previous run");
        n as usize
    } else {
        let started = Instant::now();
        let summary = store::ingest_paths(
            &pool,
            &embedder,
            std::slice::from_ref(&corpus_dir),
            &options,
            workers,
            |_| {},
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        let chunks = summary.chunks;
        println!(
            "ingestion: {} documents, {chunks} chunks in {secs:.1} s = {:.0} chunks/s (offline embedder, {workers} workers, files read from disk, \
             search indexes (HNSW and full-text) rebuilt after the load: {:.1} s of it; load average {})",
            summary.new,
            chunks as f64 / secs,
            summary.index_seconds,
            load_average()
        );
        println!(
            "  without the index build: {:.0} chunks/s",
            chunks as f64 / (secs - summary.index_seconds).max(1e-9)
        );
        sqlx::query("VACUUM ANALYZE document_chunks")
            .execute(&pool)
            .await?;
        // The load leaves about a gigabyte of dirty pages; searches are measured after they are
        // written out, not during the checkpoint that writes them.
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        chunks
    };
    std::fs::remove_dir_all(&corpus_dir).ok();

    // 2. Hybrid search latency.
    let retriever = Retriever::new(embedder.clone());
    let mut query_texts = Vec::new();
    for i in 0..queries {
        let (lang, sents) = &corpus[i % 3];
        let s = &sents[rng.below(sents.len())];
        let words: Vec<&str> = s.split_whitespace().collect();
        let from = rng.below(words.len().saturating_sub(4).max(1));
        query_texts.push((*lang, words[from..(from + 6).min(words.len())].join(" ")));
    }
    for (lang, q) in query_texts.iter().take(20) {
        retriever
            .search(
                &pool,
                &SearchRequest {
                    text: q,
                    lang: Some(*lang),
                    category: None,
                    k: 5,
                },
            )
            .await?;
    }
    let mut times = Vec::new();
    // Each stage's name and its times (`StageTimings::named`).
    let mut stage_times: Vec<(&str, Vec<Duration>)> = Vec::new();
    for (lang, q) in &query_texts {
        let t = Instant::now();
        let out = retriever
            .search(
                &pool,
                &SearchRequest {
                    text: q,
                    lang: Some(*lang),
                    category: None,
                    k: 5,
                },
            )
            .await?;
        times.push(t.elapsed());
        for (i, (name, d)) in out.stages.named().into_iter().enumerate() {
            match stage_times.get_mut(i) {
                Some((_, times)) => times.push(d),
                None => stage_times.push((name, vec![d])),
            }
        }
        assert!(!out.results.is_empty());
    }
    times.sort();
    println!(
        "hybrid search over {chunks} chunks, k = 5: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} queries, end to end incl. embedding; load average {})",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 0.99),
        times.len(),
        load_average()
    );
    for (stage, t) in &mut stage_times {
        t.sort();
        println!(
            "  stage {stage:<17} p50 {:.2} ms, p95 {:.2} ms",
            percentile(t, 0.5),
            percentile(t, 0.95)
        );
    }
    let mut times = Vec::new();
    for (lang, q) in &query_texts {
        let t = Instant::now();
        retriever
            .search(
                &pool,
                &SearchRequest {
                    text: q,
                    lang: Some(*lang),
                    category: Some("addiction"),
                    k: 5,
                },
            )
            .await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "hybrid search with a category filter: p50 {:.2} ms, p95 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.95)
    );

    // Exploring build parameters: AMAL_BENCH_HNSW="m,ef_construction" rebuilds the vector
    // indexes with them (timed) before the recall measurement; with AMAL_BENCH_FULLVEC=1 they
    // are built on the full-precision vectors, as before migration 20261206000001, instead of
    // half precision (recall is always against the exact full-precision scan).
    let fullvec = env_usize("AMAL_BENCH_FULLVEC", 0) == 1;
    let dim = embedder.dimension();
    let (index_expr, index_ops, order_expr) = if fullvec {
        (
            "(embedding)".to_string(),
            "vector_cosine_ops",
            "embedding <=> $1".to_string(),
        )
    } else {
        (
            format!("(embedding::halfvec({dim}))"),
            "halfvec_cosine_ops",
            format!("embedding::halfvec({dim}) <=> $1::halfvec({dim})"),
        )
    };
    if let Ok(spec) = std::env::var("AMAL_BENCH_HNSW") {
        let (m, efc) = spec
            .split_once(',')
            .expect("AMAL_BENCH_HNSW=m,ef_construction");
        let (m, efc): (u32, u32) = (m.trim().parse()?, efc.trim().parse()?);
        let started = Instant::now();
        for lang in Lang::ALL {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP INDEX IF EXISTS idx_document_chunks_embedding_hnsw_{}",
                lang.code()
            )))
            .execute(&pool)
            .await?;
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL maintenance_work_mem = '512MB'")
                .execute(&mut *tx)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE INDEX idx_document_chunks_embedding_hnsw_{code} ON document_chunks \
                 USING hnsw ({index_expr} {index_ops}) WITH (m = {m}, ef_construction = {efc}) \
                 WHERE retrievable AND lang = '{code}'",
                code = lang.code()
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        println!(
            "HNSW indexes rebuilt with m = {m}, ef_construction = {efc}, on {index_expr}, in {:.1} s (load average {})",
            started.elapsed().as_secs_f64(),
            load_average()
        );
    }

    // 3. HNSW recall@10 against an exact scan, per ef_search.
    let sample: Vec<(Lang, Vector)> = query_texts
        .iter()
        .take(100)
        .map(|(l, q)| (*l, Vector::from(HashEmbedder::default().embed_one(q))))
        .collect();
    // Exact neighbours with their distances: the corpus repeats sentences, so several chunks can
    // tie at the 10th distance; a hit no farther than the exact 10th neighbour counts as found
    // (distance recall, as ann-benchmarks counts), besides the plain id overlap.
    let (exact, _) = recall::exact_neighbours(&pool, &sample).await?;
    for ef in recall::ef_search_values("40,100,160,200,400") {
        let recall = recall::hnsw_recall(&pool, &sample, &exact, ef, &order_expr).await?;
        println!(
            "HNSW ef_search = {ef:>3}: recall@10 {:.3} by distance, {:.3} by id, vs exact scan; p50 {:.2} ms",
            recall.by_distance,
            recall.by_id,
            percentile(&recall.times, 0.5)
        );
    }

    // 4. The documents' original shape: IVFFlat (lists = 100) built on an empty table, probes = 1,
    //    threshold 0.7 inside the WHERE clause.
    sqlx::query("DROP TABLE IF EXISTS bench_original_chunks")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE TABLE bench_original_chunks (id uuid PRIMARY KEY, embedding vector(384))")
        .execute(&pool)
        .await?;
    sqlx::query(
        "CREATE INDEX bench_original_ivfflat ON bench_original_chunks USING ivfflat (embedding vector_cosine_ops) WITH (lists = 100)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO bench_original_chunks SELECT id, embedding FROM document_chunks")
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE bench_original_chunks")
        .execute(&pool)
        .await?;
    let mut exact_all = Vec::new();
    {
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL enable_indexscan = off")
            .execute(&mut *tx)
            .await?;
        for (_, v) in &sample {
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT id FROM bench_original_chunks ORDER BY embedding <=> $1 LIMIT 10",
            )
            .bind(v)
            .fetch_all(&mut *tx)
            .await?;
            exact_all.push(ids);
        }
        tx.commit().await?;
    }
    for (label, sql) in [
        (
            "original: threshold 0.7 in WHERE",
            "SELECT id FROM bench_original_chunks WHERE 1 - (embedding <=> $1) > 0.7 ORDER BY embedding <=> $1 LIMIT 10",
        ),
        (
            "original index, no threshold",
            "SELECT id FROM bench_original_chunks ORDER BY embedding <=> $1 LIMIT 10",
        ),
    ] {
        let mut found = 0usize;
        let mut returned = 0usize;
        let mut times = Vec::new();
        for ((_, v), truth) in sample.iter().zip(&exact_all) {
            let t = Instant::now();
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar(sql).bind(v).fetch_all(&pool).await?;
            times.push(t.elapsed());
            returned += ids.len();
            found += ids.iter().filter(|id| truth.contains(id)).count();
        }
        times.sort();
        println!(
            "IVFFlat lists=100 built empty, probes=1, {label}: recall@10 {:.3}, {:.1} rows returned per query, p50 {:.2} ms",
            found as f64 / (10 * sample.len()) as f64,
            returned as f64 / sample.len() as f64,
            percentile(&times, 0.5)
        );
    }

    // Public retrieval sets, when present.
    if env_usize("AMAL_BENCH_PUBLIC", 1) == 1 {
        public_sets(&root, &embedder).await?;
    }
    pool.close().await;
    Ok(())
}

/// A public retrieval set: documents (file stem, title, body) and queries (text, relevant stems).
struct PublicSet {
    name: &'static str,
    lang: Lang,
    documents: Vec<(String, String, String)>,
    queries: Vec<(String, Vec<String>)>,
}

/// The public retrieval sets in ../shared/eval, when present: each document is ingested and
/// approved, each query must find one of its relevant documents.
async fn public_sets(root: &Path, embedder: &Embedder) -> anyhow::Result<()> {
    let eval_dir = root.join("../shared/eval");
    for set in [
        mh_faq(&eval_dir)?,
        mentalqa(&eval_dir)?,
        counsel_chat(&eval_dir)?,
    ] {
        let Some(set) = set else { continue };
        let tmp =
            std::env::temp_dir().join(format!("amal-bench-{}-{}", set.name, std::process::id()));
        let kb = tmp.join("kb");
        std::fs::create_dir_all(&kb)?;
        for (stem, title, body) in &set.documents {
            let title = title.replace('\n', " ");
            std::fs::write(
                kb.join(format!("{stem}.md")),
                format!("---\nlang: {}\n---\n# {title}\n\n{body}\n", set.lang.code()),
            )?;
        }
        let mut cases = String::new();
        for (q, expect) in &set.queries {
            let expect: Vec<String> = expect.iter().map(|e| format!("{e}.md")).collect();
            cases.push_str(
                &serde_json::json!({"q": q, "lang": set.lang.code(), "expect": expect}).to_string(),
            );
            cases.push('\n');
        }
        let cases_path = tmp.join("cases.jsonl");
        std::fs::write(&cases_path, cases)?;
        // Its own database: the 100,000-chunk one stays for AMAL_BENCH_REUSE=1.
        let pool = bench_pool("amal_bench_kb_public").await?;
        let options = IngestOptions {
            approve: true,
            ..Default::default()
        };
        let summary = store::ingest_paths(&pool, embedder, &[kb], &options, 2, |_| {}).await?;
        let cases = eval::load_cases(&cases_path)?;
        let report = eval::evaluate(&pool, &Retriever::new(embedder.clone()), &cases).await?;
        println!(
            "public set {}: {} documents ({} chunks, {} rejected), {} queries: recall@1 {:.3}, recall@5 {:.3}, recall@10 {:.3}, MRR {:.3}",
            set.name,
            summary.new,
            summary.chunks,
            summary.rejected,
            report.overall.queries,
            report.overall.recall_at_1,
            report.overall.recall_at_5,
            report.overall.recall_at_10,
            report.overall.mrr
        );
        pool.close().await;
        std::fs::remove_dir_all(&tmp).ok();
    }
    Ok(())
}

fn absent(name: &str) -> anyhow::Result<Option<PublicSet>> {
    println!("public set {name}: absent, skipped");
    Ok(None)
}

/// 98 English FAQ answers; 485 generated questions naming the answering document.
fn mh_faq(eval: &Path) -> anyhow::Result<Option<PublicSet>> {
    let dir = eval.join("mh-faq-retrieval-en");
    if !dir.join("documents.json").exists() {
        return absent("mh-faq-retrieval-en");
    }
    let docs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("documents.json"))?)?;
    let documents = docs
        .iter()
        .map(|d| {
            (
                d["Question_ID"].to_string(),
                d["Questions"].as_str().unwrap_or_default().to_string(),
                d["Answers"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // Known near-duplicates in the set (its SOURCE.txt): either document counts as a hit.
    let twins = [
        ("2110618", "6361820"),
        ("1030153", "2553795"),
        ("1155199", "1259439"),
    ];
    let rows = parse_csv(
        &std::fs::read_to_string(dir.join("ground-truth-data.csv"))?,
        ',',
    );
    let queries = rows
        .iter()
        .skip(1)
        .filter(|r| r.len() >= 2)
        .map(|r| {
            let mut expect = vec![r[0].clone()];
            for (a, b) in twins {
                if r[0] == a {
                    expect.push(b.to_string());
                } else if r[0] == b {
                    expect.push(a.to_string());
                }
            }
            (r[1].clone(), expect)
        })
        .collect();
    Ok(Some(PublicSet {
        name: "mh-faq-retrieval-en",
        lang: Lang::En,
        documents,
        queries,
    }))
}

/// 499 Arabic question/answer pairs: the answers are the documents, each question's own answer
/// (or an identical one) is relevant.
fn mentalqa(eval: &Path) -> anyhow::Result<Option<PublicSet>> {
    let path = eval.join("mentalqa-ar/MentalQA_500_data.tsv");
    if !path.exists() {
        return absent("mentalqa-ar");
    }
    let rows = parse_csv(&std::fs::read_to_string(&path)?, '\t');
    let mut documents: Vec<(String, String, String)> = Vec::new();
    let mut queries = Vec::new();
    for (i, r) in rows.iter().skip(1).enumerate() {
        if r.len() < 2 || r[1].trim().is_empty() {
            continue;
        }
        let existing = documents
            .iter()
            .find(|(_, _, body)| body == &r[1])
            .map(|(stem, _, _)| stem.clone());
        let stem = existing.unwrap_or_else(|| {
            let stem = format!("mentalqa-{i}");
            let title: String = r[1]
                .split_whitespace()
                .take(8)
                .collect::<Vec<_>>()
                .join(" ");
            documents.push((stem.clone(), title, r[1].clone()));
            stem
        });
        queries.push((r[0].clone(), vec![stem]));
    }
    Ok(Some(PublicSet {
        name: "mentalqa-ar",
        lang: Lang::Ar,
        documents,
        queries,
    }))
}

/// 815 counselling questions and 2,129 therapist answers: every answer is a document, and any
/// answer to the same question is relevant.
fn counsel_chat(eval: &Path) -> anyhow::Result<Option<PublicSet>> {
    let path = eval.join("counsel-chat-en/20200325_counsel_chat.csv");
    if !path.exists() {
        return absent("counsel-chat-en");
    }
    let rows = parse_csv(&std::fs::read_to_string(&path)?, ',');
    let header = &rows[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .expect("counsel-chat column")
    };
    let (qid, title, text, answer) = (
        col("questionID"),
        col("questionTitle"),
        col("questionText"),
        col("answerText"),
    );
    let mut documents = Vec::new();
    let mut by_question: std::collections::BTreeMap<String, (String, Vec<String>)> =
        Default::default();
    for (i, r) in rows.iter().skip(1).enumerate() {
        if r.len() <= answer || r[answer].trim().is_empty() {
            continue;
        }
        let stem = format!("counsel-{i}");
        let short: String = r[answer]
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        documents.push((stem.clone(), short, r[answer].clone()));
        let entry = by_question
            .entry(r[qid].clone())
            .or_insert_with(|| (format!("{} {}", r[title], r[text]), Vec::new()));
        entry.1.push(stem);
    }
    let queries = by_question.into_values().collect();
    Ok(Some(PublicSet {
        name: "counsel-chat-en",
        lang: Lang::En,
        documents,
        queries,
    }))
}
