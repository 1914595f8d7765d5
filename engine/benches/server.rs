//! Server benchmark (not a test): `cargo bench -p amal-engine --bench server`.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else an embedded cluster
//! under target/amal-bench-server-db) with the starter knowledge base, 64 concurrent clients
//! post messages for AMAL_BENCH_SECONDS (default 10) per run, both ways in the same process:
//! 1. through the library (`conversations::post_message`, what the server calls);
//! 2. over HTTP on loopback (`POST /v1/conversations/{id}/messages` with a bearer session,
//!    JSON in and out, authentication, ownership check, rate limiting and metrics included).
//!
//! After a short warm-up of each path it alternates library and HTTP runs twice (so that other
//! load on the machine falls on both alike) and prints turns per second and p50 / p99
//! end-to-end latency of every run and of both together, and the HTTP layer's cost as a share
//! of the library's throughput. Each client has its own conversation per run
//! (turns of one conversation are serialized by design) and cycles through the same messages
//! (questions answered from the knowledge base, off-topic ones, requests for a person).
//!
//! Environment: AMAL_BENCH_CLIENTS (default 64), AMAL_BENCH_SECONDS (default 10),
//! AMAL_BENCH_POOL (database connections, default 40).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::conversations::{self, MessageContent};
use amal_engine::decision::auto::{DecisionEngine, Mode};
use amal_engine::knowledge::{Embedder, Retriever};
use amal_engine::mail::MemoryMailer;
use amal_engine::seed;
use amal_engine::server::{self, AppState, ServerConfig};
use amal_engine::sessions::ClientInfo;
use amal_engine::users;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

/// What the clients say, in turn.
const MESSAGES: &[&str] = &[
    "How can I sleep better? I have insomnia",
    "J'ai du mal à dormir la nuit, que faire ?",
    "كيف أتوقف عن التدخين؟",
    "What are the signs of alcohol withdrawal?",
    "Je stresse beaucoup pour mes examens",
    "What is the capital of Australia?",
    "I would like to talk to a person please",
    "How do I deal with cannabis cravings?",
];

/// The hashed embedder, whatever the environment says: this benchmark measures what the HTTP
/// layer adds to a turn, and its figures stay comparable across rounds (the model's own cost is
/// the knowledge benchmark's).
fn embedder() -> Embedder {
    Embedder::hashed()
}

async fn engine(pool: &PgPool) -> anyhow::Result<DecisionEngine> {
    let embedder = embedder();
    amal_engine::knowledge::store::ensure_embedder_matches(pool, &embedder).await?;
    Ok(DecisionEngine::from_env(Retriever::new(embedder))?)
}

/// A client: an anonymous end user with consent, a session and one conversation per run.
struct Client {
    token: String,
    user_id: Uuid,
}

async fn clients(pool: &PgPool, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut out = Vec::new();
    let mut conn = pool.acquire().await?;
    for _ in 0..n {
        let s = users::anonymous_session(&mut conn, true, 24, Utc::now(), &ClientInfo::default())
            .await?;
        out.push(Client {
            token: s.token,
            user_id: s.user_id,
        });
    }
    Ok(out)
}

/// Runs `clients` tasks for `seconds`, each calling `turn(client index, turn number)`;
/// returns turns per second and the sorted latencies.
async fn load<F, Fut>(clients: usize, seconds: u64, turn: F) -> (f64, Vec<Duration>)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let turn = Arc::new(turn);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (turn, stop) = (turn.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                turn(c, i).await;
                latencies.push(t.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, all)
}

fn report(name: &str, tps: f64, latencies: &[Duration]) {
    println!(
        "{name:<8} {:>7} turns  {tps:>8.1} turns/s  p50 {:>7.1} ms  p99 {:>7.1} ms",
        latencies.len(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99)
    );
}

async fn new_conversations(pool: &PgPool, clients: &[Client]) -> anyhow::Result<Vec<Uuid>> {
    let mut out = Vec::new();
    for c in clients {
        out.push(
            conversations::start(pool, c.user_id, Mode::Auto, None)
                .await?
                .id,
        );
    }
    Ok(out)
}

/// One run through the library; `tag` keeps idempotency keys apart between runs.
async fn library_run(
    pool: &PgPool,
    engine: &Arc<DecisionEngine>,
    people: &[Client],
    seconds: u64,
    tag: &'static str,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let convs = Arc::new(new_conversations(pool, people).await?);
    let (p, e) = (pool.clone(), engine.clone());
    // The same bound on concurrent turns as the server's (see `server::turn_concurrency`).
    let slots = Arc::new(tokio::sync::Semaphore::new(server::turn_concurrency(pool)));
    Ok(load(people.len(), seconds, move |c, i| {
        let (pool, engine, conv, slots) = (p.clone(), e.clone(), convs[c], slots.clone());
        async move {
            let content = MessageContent::parse(MESSAGES[(c + i) % MESSAGES.len()]).unwrap();
            let key = format!("{tag}-{i}");
            let _slot = slots.acquire().await.unwrap();
            amal_engine::turn::post_message(&pool, &engine, conv, Some(&key), &content)
                .await
                .expect("turn");
        }
    })
    .await)
}

/// One run over HTTP against the server at `base`.
async fn http_run(
    pool: &PgPool,
    base: &str,
    people: &[Client],
    seconds: u64,
    tag: &'static str,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let convs = Arc::new(new_conversations(pool, people).await?);
    let tokens: Arc<Vec<String>> = Arc::new(people.iter().map(|c| c.token.clone()).collect());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(people.len())
        .build()?;
    let base = base.to_string();
    Ok(load(people.len(), seconds, move |c, i| {
        let url = format!("{base}/v1/conversations/{}/messages", convs[c]);
        let request = http.post(url).bearer_auth(&tokens[c]).json(&json!({
            "content": MESSAGES[(c + i) % MESSAGES.len()],
            "client_message_id": format!("{tag}-{i}"),
        }));
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), reqwest::StatusCode::CREATED);
            response.bytes().await.expect("body");
        }
    })
    .await)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("AMAL_BENCH_CLIENTS", 64);
    let seconds = env_usize("AMAL_BENCH_SECONDS", 10) as u64;
    let pool_size = env_usize("AMAL_BENCH_POOL", 40) as u32;
    let (pool, _) =
        common::fresh_database("amal_bench_server", "amal-bench-server-db", pool_size).await?;
    seed::reference(&pool).await?;
    let kb = seed::demo_knowledge(&pool, &embedder()).await?;
    // Fresh tables have no planner statistics until autovacuum gets to them mid-run.
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "knowledge base: {} documents; {n} clients, {seconds} s per run, {pool_size} connections; {}",
        kb.new + kb.updated + kb.unchanged,
        common::load_average()
    );
    let people = clients(&pool, n).await?;
    let lib_engine = Arc::new(engine(&pool).await?);

    let config = ServerConfig {
        run_workers: false,
        rate_limit_per_ip_per_minute: 0,
        rate_limit_per_session_per_minute: 0,
        ..ServerConfig::default()
    };
    let state = AppState::new(
        pool.clone(),
        engine(&pool).await?,
        Arc::new(MemoryMailer::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state, async {
        let _ = stop_rx.await;
    }));

    // Warm both paths (connections, statement caches, buffers), then alternate so that load
    // from elsewhere on the machine falls on both alike.
    library_run(&pool, &lib_engine, &people, seconds.div_ceil(2), "warm-lib").await?;
    http_run(&pool, &base, &people, seconds.div_ceil(2), "warm-http").await?;
    let mut lib = (0.0, Vec::new());
    let mut http = (0.0, Vec::new());
    for (l, h) in [("lib-1", "http-1"), ("lib-2", "http-2")] {
        let (tps, lat) = library_run(&pool, &lib_engine, &people, seconds, l).await?;
        report(l, tps, &lat);
        lib.0 += tps / 2.0;
        lib.1.extend(lat);
        let (tps, lat) = http_run(&pool, &base, &people, seconds, h).await?;
        report(h, tps, &lat);
        http.0 += tps / 2.0;
        http.1.extend(lat);
    }
    let _ = stop_tx.send(());
    server.await??;

    lib.1.sort();
    http.1.sort();
    println!("both runs:");
    report("library", lib.0, &lib.1);
    report("http", http.0, &http.1);
    println!(
        "HTTP layer cost: {:.1}% of the library's throughput (HTTP / library = {:.3}; budget: at most 20%)",
        (1.0 - http.0 / lib.0) * 100.0,
        http.0 / lib.0
    );
    pool.close().await;
    Ok(())
}
