//! Conversation-turn benchmark (not a test): `cargo bench -p amal-engine --bench turns`.
//!
//! Full AUTO turns through `turn::post_message` (store the message, crisis gate,
//! retrieval over about 10,000 chunks, offline answer or ticket, decision log, notice, one
//! transaction) with 8 concurrent simulated users, each writing the shipped evaluation set's
//! questions (Arabic, French, English; some lead to tickets) in conversations of 4 turns.
//! Reports throughput and p50/p95/p99, then pgbench's TPC-B on the same cluster, same number
//! of clients, as the reference for what the machine's PostgreSQL does at all.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else the embedded
//! cluster under target/amal-bench-db). Environment: AMAL_BENCH_CHUNKS (default 10000),
//! AMAL_BENCH_SECONDS (default 10), AMAL_BENCH_CLIENTS (default 8).
//!
//! `AMAL_BENCH_EMBEDDER=e5`: the same turns on multilingual-e5-small over the starter knowledge
//! base alone (embedding 10,000 chunks with the model takes most of an hour here), measured
//! three ways: every message new (no query-cache hit: the cold case), the questions repeating
//! (the cache's case), and users who each write once every `AMAL_BENCH_PACE_MS` (default 1000)
//! instead of at once after each reply. Then one user, every message new, splits a turn into the
//! model's time (the query embedded first, timed), the engine's own CPU time (the process's CPU
//! during the turn) and the rest (waiting on PostgreSQL: SQL and round trips).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use amal_engine::conversations::{self, MessageContent};
use amal_engine::decision::auto::{DecisionEngine, Mode};
use amal_engine::decision::crisis::CrisisNumbers;
use amal_engine::knowledge::Retriever;
use amal_engine::knowledge::embed::{Embedder, HashEmbedder};
use amal_engine::knowledge::source;
use amal_engine::knowledge::store::{self, IngestOptions};
use amal_engine::lang::Lang;
use amal_engine::seed;
use uuid::Uuid;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, load_average, percentile};

/// Synthetic documents (12 paragraphs of 4 sentences of the starter knowledge base, about 6
/// chunks each) until `target` chunks, written under `dir`; the starter documents themselves
/// are ingested too.
fn synthetic_corpus(root: &std::path::Path, dir: &std::path::Path, target: usize) -> usize {
    let mut seed = 0x5EED_7A1Au64;
    let mut next = move |n: usize| {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    };
    let per_lang: Vec<(Lang, Vec<String>)> = Lang::ALL
        .iter()
        .map(|lang| {
            let (files, _) = source::collect(&[root.join("seeds/knowledge").join(lang.code())]);
            let mut out = Vec::new();
            for f in files {
                let doc = source::read(&f).expect("starter document reads");
                for s in doc.content.split(['.', '؟', '?', '!']) {
                    if s.split_whitespace().count() >= 5 {
                        out.push(format!("{}.", s.trim()));
                    }
                }
            }
            (*lang, out)
        })
        .collect();
    let (mut planned, mut n) = (0usize, 0usize);
    while planned < target {
        let (lang, sents) = &per_lang[n % 3];
        let mut body = String::new();
        for _ in 0..12 {
            for _ in 0..4 {
                body.push_str(&sents[next(sents.len())]);
                body.push(' ');
            }
            body.push_str(&format!("(ref {n})\n\n"));
        }
        planned += amal_engine::knowledge::chunk::chunk(&body, Default::default()).len();
        let path = dir.join(lang.code()).join(format!("{n:05}.md"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("corpus dir");
        std::fs::write(
            &path,
            format!(
                "---\nlang: {}\ncategory: {}\n---\n# Synthetic {n}\n\n{body}",
                lang.code(),
                ["addiction", "mental_health", "prevention"][next(3)]
            ),
        )
        .expect("corpus file");
        n += 1;
    }
    n
}

/// The process's CPU time so far (user and system), from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports in clock ticks of 1/100 s on every architecture it runs on here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One user, every message new: each question embedded first (the model's time, timed), then
/// its turn, which finds the embedding in the query cache (the rest of the turn), with the
/// process's CPU time during the turn (the engine's own share; the rest is waiting on
/// PostgreSQL).
async fn breakdown(
    pool: &sqlx::PgPool,
    engine: &DecisionEngine,
    user: Uuid,
    questions: &[String],
) -> anyhow::Result<()> {
    let (mut model, mut rest, mut cpu) = (Vec::new(), Vec::new(), Duration::ZERO);
    let mut conversation = None;
    for (i, question) in questions.iter().enumerate() {
        let text = format!("{question} ·{i}");
        let conv = match conversation {
            Some(c) => c,
            None => {
                let c = conversations::start(pool, user, Mode::Auto, None).await?.id;
                conversation = Some(c);
                c
            }
        };
        let started = Instant::now();
        engine.retriever().message_vector(&text).await?;
        model.push(started.elapsed());
        let content = MessageContent::parse(&text).expect("content");
        let (started, cpu_before) = (Instant::now(), process_cpu());
        let turn = amal_engine::turn::post_message(pool, engine, conv, None, &content).await?;
        rest.push(started.elapsed());
        cpu += process_cpu().saturating_sub(cpu_before);
        if turn.ticket.is_some() {
            conversation = None;
        }
    }
    let n = questions.len() as f64;
    let mean = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / n;
    let (model_ms, rest_ms, cpu_ms) = (mean(&model), mean(&rest), cpu.as_secs_f64() * 1000.0 / n);
    println!(
        "\none user, {} new messages, mean per turn: {:.1} ms = model {model_ms:.1} ms (query embedding) \
         + engine CPU {cpu_ms:.1} ms + waiting on PostgreSQL {:.1} ms; engine share {:.0}% \
         (CPU time from /proc at 10 ms resolution, summed over the turns)",
        questions.len(),
        model_ms + rest_ms,
        (rest_ms - cpu_ms).max(0.0),
        100.0 * cpu_ms / (model_ms + rest_ms)
    );
    model.sort();
    println!(
        "model alone, p50 {:.1} ms, p95 {:.1} ms",
        percentile(&model, 0.5),
        percentile(&model, 0.95)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = env_usize("AMAL_BENCH_CHUNKS", 10_000);
    let seconds = env_usize("AMAL_BENCH_SECONDS", 10) as u64;
    let clients = env_usize("AMAL_BENCH_CLIENTS", 8);
    let pace = Duration::from_millis(env_usize("AMAL_BENCH_PACE_MS", 1000) as u64);
    let (pool, url) = common::fresh_database("amal_bench_turns", "amal-bench-db", 16).await?;
    seed::reference(&pool).await?;
    println!("## Conversation-turn benchmark\n");
    println!("load average at the start: {}", load_average());

    // The knowledge base: the starter documents plus synthetic ones (hashed), or the starter
    // documents alone (e5).
    let e5 = std::env::var("AMAL_BENCH_EMBEDDER").is_ok_and(|v| v == "e5");
    let corpus = std::env::temp_dir().join(format!("amal-bench-turns-{}", std::process::id()));
    let (embedder, paths, docs) = if e5 {
        let embedder = Embedder::from_env().await?;
        anyhow::ensure!(
            !matches!(embedder, Embedder::Hash(_)),
            "AMAL_BENCH_EMBEDDER=e5: unset AMAL_EMBEDDER (the model is the default)"
        );
        (embedder, vec![root.join("seeds/knowledge")], 0)
    } else {
        let docs = synthetic_corpus(&root, &corpus, target);
        (
            Embedder::Hash(HashEmbedder::default()),
            vec![root.join("seeds/knowledge"), corpus.clone()],
            docs,
        )
    };
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    let summary = store::ingest_paths(&pool, &embedder, &paths, &options, 2, |_| {}).await?;
    std::fs::remove_dir_all(&corpus).ok();
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    println!(
        "knowledge base: {} documents ({docs} synthetic), {} chunks, embedder {}",
        summary.new,
        summary.chunks,
        embedder.model()
    );

    // The questions: the shipped evaluation set (its crisis-like and off-topic lines lead to
    // tickets, the rest mostly to answers).
    let questions: Vec<String> = std::fs::read_to_string(root.join("seeds/knowledge/eval.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["q"].as_str().map(str::to_string))
        .collect();
    let questions = Arc::new(questions);
    let engine = Arc::new(DecisionEngine::new(
        Retriever::new(embedder.clone()),
        CrisisNumbers {
            crisis_line: "3033".into(),
            emergency_number: "14".into(),
        },
        0.5,
        false,
    )?);

    let mut users = Vec::new();
    for i in 0..clients {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
             VALUES ($1, '!', 'Bench', 'ar-DZ', true, now()) RETURNING id",
        )
        .bind(format!("turns{i}@bench.example"))
        .fetch_one(&pool)
        .await?;
        users.push(id);
    }

    // Warm-up: every connection's statement cache.
    // Every message new (`fresh`: the question with a number no other message has, so that the
    // query cache never answers) or the questions as they are; each user at once after each
    // reply, or once every `pace`.
    let serial = Arc::new(AtomicUsize::new(0));
    let run = |seconds: u64, fresh: bool, pace: Option<Duration>| {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let (pool, engine, questions, stop, user, serial) = (
                pool.clone(),
                engine.clone(),
                questions.clone(),
                stop.clone(),
                *user,
                serial.clone(),
            );
            tasks.push(tokio::spawn(async move {
                if let Some(pace) = pace {
                    // Users do not all write in the same millisecond.
                    tokio::time::sleep(pace * i as u32 / clients as u32).await;
                }
                let mut times = Vec::new();
                let (mut rag, mut support) = (0u64, 0u64);
                let mut q = i * 13;
                let mut conversation = None;
                while !stop.load(Ordering::Relaxed) {
                    let conv = match conversation {
                        Some(c) if times.len() % 4 != 0 => c,
                        _ => {
                            let c = conversations::start(&pool, user, Mode::Auto, None)
                                .await
                                .expect("conversation")
                                .id;
                            conversation = Some(c);
                            c
                        }
                    };
                    let question = &questions[q % questions.len()];
                    let text = if fresh {
                        format!("{question} #{}", serial.fetch_add(1, Ordering::Relaxed))
                    } else {
                        question.clone()
                    };
                    let content = MessageContent::parse(&text).expect("content");
                    q += 1;
                    let started = Instant::now();
                    let turn =
                        amal_engine::turn::post_message(&pool, &engine, conv, None, &content)
                            .await
                            .expect("turn");
                    let took = started.elapsed();
                    times.push(took);
                    if let Some(pace) = pace {
                        tokio::time::sleep(pace.saturating_sub(took)).await;
                    }
                    if turn.ticket.is_some() {
                        support += 1;
                        // A conversation with an open ticket is the team's: its later messages
                        // skip the decision's retrieval. A new one keeps every turn a full one.
                        conversation = None;
                    } else {
                        rag += 1;
                    }
                }
                (times, rag, support)
            }));
        }
        async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            let (mut rag, mut support) = (0, 0);
            for t in tasks {
                let (times, r, s) = t.await.expect("client");
                all.extend(times);
                rag += r;
                support += s;
            }
            all.sort();
            (all, rag, support)
        }
    };
    let report = |label: &str, times: &[Duration], rag: u64, support: u64, elapsed: f64| {
        println!(
            "\nAUTO turns, {clients} users, {label}, {seconds} s: {} turns = {:.0} turns/s ({rag} answered, {support} to a ticket); \
             p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms (load average {})",
            times.len(),
            times.len() as f64 / elapsed,
            percentile(times, 0.5),
            percentile(times, 0.95),
            percentile(times, 0.99),
            load_average()
        );
    };
    run(2, e5, None).await;
    let ways: &[(&str, bool, Option<Duration>)] = if e5 {
        &[
            (
                "each at once after each reply, every message new (cold)",
                true,
                None,
            ),
            (
                "each at once after each reply, questions repeating (query cache)",
                false,
                None,
            ),
            (
                "each writing once every AMAL_BENCH_PACE_MS, every message new",
                true,
                Some(pace),
            ),
        ]
    } else {
        &[("each at once after each reply", false, None)]
    };
    for &(label, fresh, pace) in ways {
        let started = Instant::now();
        let (times, rag, support) = run(seconds, fresh, pace).await;
        report(label, &times, rag, support, started.elapsed().as_secs_f64());
    }
    if e5 {
        breakdown(&pool, &engine, users[0], &questions).await?;
    }
    pool.close().await;

    // pgbench TPC-B on the same cluster, same clients, as the reference.
    let bin = std::env::var("AMAL_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let pgbench = PathBuf::from(bin).join("pgbench");
    let init = std::process::Command::new(&pgbench)
        .args(["-i", "-q", "-s", "8", &url])
        .output()?;
    if !init.status.success() {
        println!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr).trim()
        );
        return Ok(());
    }
    let out = std::process::Command::new(&pgbench)
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-r",
            &url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text
        .lines()
        .filter(|l| l.starts_with("tps") || l.starts_with("latency average"))
    {
        println!("pgbench TPC-B (scale 8, {clients} clients, same cluster): {line}");
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}
