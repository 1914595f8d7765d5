//! Search over real model vectors (not a test): `cargo bench -p amal-engine --bench vectors`.
//!
//! The knowledge benchmark's 100,000 chunks carry hashed vectors, nearly random in 384
//! dimensions; multilingual-e5-small's vectors are nothing like that (they crowd into a narrow
//! cone, cosines 0.7 to 0.9, and overlapping texts sit nearly on top of each other). This one
//! measures search on the model's own vectors:
//! 1. **Texts**: the sentences, the clauses (split at commas and semicolons) and the runs of
//!    two and three consecutive sentences of the public corpora in ../shared/eval (counsel-chat, the FAQ set,
//!    MentalQA, the crisis tweets) and the starter knowledge base, distinct, in a fixed order
//!    that mixes the kinds; the first `AMAL_BENCH_CHUNKS` (default 100,000).
//! 2. **Vectors**, embedded as passages, are precomputed once into a file under
//!    target/bench-vectors (about 45 minutes of the 2-core machine for 100,000 texts; the file
//!    is appended batch by batch and read by text, so an interrupted run resumes where it
//!    stopped). The model's
//!    throughput while computing is printed. `AMAL_BENCH_EMBED_ONLY=1` stops after this step.
//! 3. **Load**: the vectors and texts into a fresh database (documents of 50 chunks, approved),
//!    straight into the tables with the search indexes dropped, then the indexes built (timed):
//!    ingestion's own speed is the embeddings benchmark's subject.
//! 4. **Search** as the decision searches (`Retriever::search_across`, every language, k = 5)
//!    with the shipped evaluation questions, the off-topic and look-alike sets: each question
//!    new (cold: the model embeds it), then again (the query cache's case); the model's query
//!    embedding alone timed in the same run as the reference.
//! 5. **Recall@10** of the HNSW indexes against an exact scan of the full-precision vectors,
//!    per language, at several `hnsw.ef_search` values (`AMAL_BENCH_EF`), with the exact scan's
//!    time as the reference.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else the embedded cluster
//! under target/amal-bench-db).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use amal_engine::knowledge::e5::E5_MODEL;
use amal_engine::knowledge::embed::{Embedder, TextKind};
use amal_engine::knowledge::retrieval::message_text;
use amal_engine::knowledge::{Retriever, eval, source, store};
use amal_engine::lang::{Lang, fold, is_stopword};
use pgvector::Vector;
use sqlx::PgPool;

#[path = "common/mod.rs"]
mod common;
#[path = "common/recall.rs"]
mod recall;
use common::{env_usize, load_average, parse_csv, percentile};

/// Texts embedded per append to the vector file.
const BATCH: usize = 64;
/// Chunks per loaded document.
const PER_DOCUMENT: usize = 50;

/// FNV-1a: a stable order and file name that do not depend on the standard library's hasher.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The sentences of `text`: split after `.`, `!`, `?`, `؟` and at line breaks.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        for c in line.chars() {
            current.push(c);
            if matches!(c, '.' | '!' | '?' | '؟') {
                out.push(std::mem::take(&mut current));
            }
        }
        out.push(current);
    }
    out.into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a piece of text says enough to be a chunk of its own.
fn long_enough(s: &str) -> bool {
    s.split_whitespace().count() >= 4
}

/// Every text unit of one source text: its sentences, their clauses, and runs of two and three
/// consecutive sentences.
fn units(text: &str, out: &mut Vec<String>) {
    let sents: Vec<String> = sentences(text)
        .into_iter()
        .filter(|s| long_enough(s))
        .collect();
    for s in &sents {
        out.push(s.clone());
        let clauses: Vec<&str> = s
            .split([',', ';', ':', '،', '؛'])
            .map(str::trim)
            .filter(|c| long_enough(c))
            .collect();
        if clauses.len() > 1 {
            out.extend(clauses.into_iter().map(str::to_string));
        }
    }
    for window in [2, 3] {
        out.extend(sents.windows(window).map(|w| w.join(" ")));
    }
}

/// The benchmark's texts, with their languages, in their fixed order.
fn corpus(root: &Path) -> anyhow::Result<Vec<(Lang, String)>> {
    let eval = root.join("../shared/eval");
    let read = |p: &str| {
        std::fs::read_to_string(eval.join(p))
            .map_err(|e| anyhow::anyhow!("{}: {e} (the public corpora are needed)", p))
    };
    let mut sources: Vec<(Lang, String)> = Vec::new();
    let rows = parse_csv(&read("counsel-chat-en/20200325_counsel_chat.csv")?, ',');
    for row in rows.iter().skip(1) {
        for i in [2, 3, 8] {
            if let Some(t) = row.get(i) {
                sources.push((Lang::En, t.clone()));
            }
        }
    }
    let rows = parse_csv(
        &read("crisis-tweets-en/Suicide_Ideation_Dataset_Twitter-based.csv")?,
        ',',
    );
    sources.extend(
        rows.iter()
            .skip(1)
            .filter_map(|r| Some((Lang::En, r.first()?.clone()))),
    );
    let rows = parse_csv(&read("crisis-tweets-ar/balanced_dataset.csv")?, ',');
    sources.extend(
        rows.iter()
            .skip(1)
            .filter_map(|r| Some((Lang::Ar, r.first()?.clone()))),
    );
    let rows = parse_csv(&read("mentalqa-ar/MentalQA_500_data.tsv")?, '\t');
    for row in rows.iter().skip(1) {
        sources.extend(row.iter().take(2).map(|t| (Lang::Ar, t.clone())));
    }
    let faq: serde_json::Value =
        serde_json::from_str(&read("mh-faq-retrieval-en/documents.json")?)?;
    for item in faq.as_array().into_iter().flatten() {
        for key in ["Questions", "Answers"] {
            if let Some(t) = item[key].as_str() {
                sources.push((Lang::En, t.to_string()));
            }
        }
    }
    for lang in Lang::ALL {
        let (files, _) = source::collect(&[root.join("seeds/knowledge").join(lang.code())]);
        for f in files {
            sources.push((lang, source::read(&f)?.content));
        }
    }
    let mut seen = HashSet::new();
    let mut texts = Vec::new();
    for (lang, text) in sources {
        let mut found = Vec::new();
        units(&text, &mut found);
        for t in found {
            if seen.insert(t.clone()) {
                texts.push((lang, t));
            }
        }
    }
    texts.sort_by_key(|(_, t)| fnv(t.as_bytes()));
    Ok(texts)
}

/// The file of precomputed vectors for this model: records of a text's [`fnv`] hash and its
/// vector, appended as they are computed; found by text, so a changed corpus or chunk count
/// reuses every vector already computed.
fn vector_file(root: &Path) -> PathBuf {
    root.join("target/bench-vectors")
        .join(format!("{:016x}.vectors", fnv(E5_MODEL.as_bytes())))
}

/// The vectors of `texts`, read from `path` where a previous run computed them and embedded
/// (and appended) for the rest.
async fn precompute(
    embedder: &Embedder,
    path: &Path,
    texts: &[(Lang, String)],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let dim = embedder.dimension();
    let record = 8 + dim * 4;
    std::fs::create_dir_all(path.parent().expect("a directory"))?;
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.len() / record;
    let mut known: std::collections::HashMap<u64, Vec<f32>> = bytes[..complete * record]
        .chunks_exact(record)
        .map(|r| {
            let hash = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
            let v = r[8..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (hash, v)
        })
        .collect();
    // A run stopped mid-write leaves a partial record: drop it.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.set_len((complete * record) as u64)?;
    let mut file = std::io::BufWriter::new(file);
    let todo: Vec<&(Lang, String)> = texts
        .iter()
        .filter(|(_, t)| !known.contains_key(&fnv(t.as_bytes())))
        .collect();
    println!(
        "vectors: {} of {} already in {}; embedding {} as passages ({} at once)",
        texts.len() - todo.len(),
        texts.len(),
        path.display(),
        todo.len(),
        embedder.parallelism()
    );
    let started = Instant::now();
    let mut report = Instant::now();
    let mut done = 0usize;
    for batch in todo.chunks(BATCH) {
        let refs: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = embedder.embed_all(TextKind::Passage, &refs).await?;
        for (text, v) in refs.iter().zip(vectors) {
            let hash = fnv(text.as_bytes());
            file.write_all(&hash.to_le_bytes())?;
            for x in &v {
                file.write_all(&x.to_le_bytes())?;
            }
            known.insert(hash, v);
        }
        file.flush()?;
        done += batch.len();
        if report.elapsed() > Duration::from_secs(60) || done == todo.len() {
            report = Instant::now();
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!(
                "  {done} of {} ({rate:.1} texts/s, about {:.0} min left; load average {})",
                todo.len(),
                (todo.len() - done) as f64 / rate / 60.0,
                load_average()
            );
        }
    }
    Ok(texts
        .iter()
        .map(|(_, t)| known[&fnv(t.as_bytes())].clone())
        .collect())
}

/// Loads the texts and their vectors as approved documents of [`PER_DOCUMENT`] chunks.
async fn load(
    pool: &PgPool,
    embedder: &Embedder,
    texts: &[(Lang, String)],
    vectors: &[Vec<f32>],
) -> anyhow::Result<()> {
    store::ensure_embedder_matches(pool, embedder).await?;
    store::drop_search_indexes(pool).await?;
    let categories = ["addiction", "mental_health", "prevention"];
    for lang in Lang::ALL {
        let mine: Vec<(&String, &Vec<f32>)> = texts
            .iter()
            .zip(vectors)
            .filter(|((l, _), _)| *l == lang)
            .map(|((_, t), v)| (t, v))
            .collect();
        for (n, group) in mine.chunks(PER_DOCUMENT).enumerate() {
            let content: Vec<&str> = group.iter().map(|(t, _)| t.as_str()).collect();
            let content = content.join("\n\n");
            let tokens: Vec<i32> = group
                .iter()
                .map(|(t, _)| t.split_whitespace().count() as i32)
                .collect();
            let search: Vec<String> = group.iter().map(|(t, _)| fold(t)).collect();
            let terms: Vec<String> = search
                .iter()
                .flat_map(|t| t.split(' '))
                .filter(|w| w.chars().count() >= 3 && !is_stopword(w))
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut tx = pool.begin().await?;
            let id: uuid::Uuid = sqlx::query_scalar(
                "INSERT INTO documents (title, content, content_hash, metadata, source, language, category, \
                        pii_stripped, review_status, reviewed_at, chunk_count, total_tokens) \
                 VALUES ($1, $2, $3, '{}', $4, $5, $6, true, 'approved', now(), $7, $8) RETURNING id",
            )
            .bind(format!("Bench {} {n}", lang.code()))
            .bind(&content)
            .bind(format!("{:016x}{n:08}{}", fnv(content.as_bytes()), lang.code()))
            .bind(format!("bench/vectors/{}/{n}.md", lang.code()))
            .bind(lang.locale())
            .bind(categories[n % 3])
            .bind(group.len() as i32)
            .bind(tokens.iter().sum::<i32>())
            .fetch_one(&mut *tx)
            .await?;
            let contents: Vec<&str> = group.iter().map(|(t, _)| t.as_str()).collect();
            let embeddings: Vec<Vector> = group
                .iter()
                .map(|(_, v)| Vector::from((*v).clone()))
                .collect();
            let indexes: Vec<i32> = (0..group.len() as i32).collect();
            let zeros = vec![0i32; group.len()];
            sqlx::query(
                "INSERT INTO document_chunks (document_id, content, search_text, embedding, embedding_model, chunk_index, \
                        token_count, start_position, end_position) \
                 SELECT $1, u.content, u.search_text, u.embedding, $5, u.idx, u.tokens, u.start_pos, u.end_pos \
                 FROM UNNEST($2::text[], $3::text[], $4::vector[], $6::int4[], $7::int4[], $8::int4[], $9::int4[]) \
                      AS u(content, search_text, embedding, idx, tokens, start_pos, end_pos)",
            )
            .bind(id)
            .bind(&contents)
            .bind(&search)
            .bind(&embeddings)
            .bind(embedder.model())
            .bind(&indexes)
            .bind(&tokens)
            .bind(&zeros)
            .bind(&zeros)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO kb_terms (lang, term) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(lang.code())
            .bind(&terms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The questions searched: the shipped evaluation set, the off-topic and look-alike sets.
fn questions(root: &Path) -> anyhow::Result<Vec<(Lang, String)>> {
    let dir = root.join("seeds/knowledge");
    let mut out: Vec<(Lang, String)> = eval::load_cases(&dir.join("eval.jsonl"))?
        .into_iter()
        .map(|(c, l)| (l, c.q))
        .collect();
    for set in ["eval_off_topic.jsonl", "eval_service_lookalikes.jsonl"] {
        out.extend(
            eval::load_negatives(&dir.join(set))?
                .into_iter()
                .map(|(q, l)| (l, q)),
        );
    }
    Ok(out)
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    format!(
        "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        percentile(times, 0.5),
        percentile(times, 0.95),
        percentile(times, 0.99)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wanted = env_usize("AMAL_BENCH_CHUNKS", 100_000);
    println!("## Search over real model vectors\n");
    println!("load average at the start: {}", load_average());
    let embedder = Embedder::from_env().await?;
    anyhow::ensure!(
        embedder.model() == E5_MODEL,
        "this benchmark measures multilingual-e5-small's vectors; the configured embedder is {}",
        embedder.model()
    );
    let mut texts = corpus(&root)?;
    println!("texts: {} distinct in the corpora", texts.len());
    if texts.len() < wanted {
        println!("  fewer than AMAL_BENCH_CHUNKS = {wanted}: all of them are used");
    }
    texts.truncate(wanted);
    let path = vector_file(&root);
    let vectors = precompute(&embedder, &path, &texts).await?;
    if env_usize("AMAL_BENCH_EMBED_ONLY", 0) == 1 {
        return Ok(());
    }

    let pool = common::fresh_database("amal_bench_vectors", "amal-bench-db", 8)
        .await?
        .0;
    let started = Instant::now();
    load(&pool, &embedder, &texts, &vectors).await?;
    let loaded = started.elapsed();
    let started = Instant::now();
    store::ensure_search_indexes(&pool).await?;
    let indexed = started.elapsed();
    sqlx::query("VACUUM ANALYZE document_chunks")
        .execute(&pool)
        .await?;
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    let per_lang: Vec<(String, i64)> = sqlx::query_as(
        "SELECT lang::text, count(*) FROM document_chunks WHERE retrievable GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    println!(
        "loaded {} chunks ({}) in {:.1} s; search indexes (HNSW and full-text) built in {:.1} s (load average {})",
        texts.len(),
        per_lang
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        loaded.as_secs_f64(),
        indexed.as_secs_f64(),
        load_average()
    );

    // 4. Search as the decision searches.
    let questions = questions(&root)?;
    let retriever = Retriever::new(embedder.clone());
    let (mut cold, mut warm, mut model) = (Vec::new(), Vec::new(), Vec::new());
    for (lang, q) in &questions {
        let t = Instant::now();
        retriever.search_across(&pool, q, *lang, 5).await?;
        cold.push(t.elapsed());
    }
    for (lang, q) in &questions {
        let t = Instant::now();
        retriever.search_across(&pool, q, *lang, 5).await?;
        warm.push(t.elapsed());
    }
    for (_, q) in &questions {
        let t = Instant::now();
        embedder.embed_query(&message_text(q)).await?;
        model.push(t.elapsed());
    }
    println!(
        "\nsearch across languages, k = 5, {} questions (load average {}):",
        questions.len(),
        load_average()
    );
    println!(
        "  each question new (the model embeds it): {}",
        summary(&mut cold)
    );
    println!(
        "  again (query cache: the search alone):    {}",
        summary(&mut warm)
    );
    println!(
        "  reference, the model's query embedding:  {}",
        summary(&mut model)
    );

    // 5. Recall@10 against the exact scan, every question in every language.
    let mut searches = Vec::new();
    for (_, q) in &questions {
        let v = Vector::from(retriever.message_vector(q).await?.as_ref().clone());
        searches.extend(Lang::ALL.iter().map(|l| (*l, v.clone())));
    }
    let (exact, mut exact_times) = recall::exact_neighbours(&pool, &searches).await?;
    exact_times.sort();
    println!(
        "\nrecall@10 of the HNSW indexes (half precision) against the exact scan of the full-precision vectors, {} questions x {} languages; reference, the exact scan: p50 {:.2} ms",
        questions.len(),
        Lang::ALL.len(),
        percentile(&exact_times, 0.5)
    );
    let dim = embedder.dimension();
    let order = format!("embedding::halfvec({dim}) <=> $1::halfvec({dim})");
    for ef in recall::ef_search_values("40,100,200,400") {
        let recall = recall::hnsw_recall(&pool, &searches, &exact, ef, &order).await?;
        println!(
            "  ef_search = {ef:>3}: recall@10 {:.3} by distance, {:.3} by id; p50 {:.2} ms, p95 {:.2} ms",
            recall.by_distance,
            recall.by_id,
            percentile(&recall.times, 0.5),
            percentile(&recall.times, 0.95)
        );
    }
    println!("load average at the end: {}", load_average());
    pool.close().await;
    Ok(())
}
