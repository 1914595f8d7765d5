//! Soak benchmark (not a test): `cargo bench -p amal-engine --bench soak`.
//!
//! An hour of expected peak traffic, compressed, against the real `amal-engine serve` binary on
//! loopback (workers on, rate limits off since every client shares one address), on a private
//! database (a fresh one on DATABASE_URL's server, else an embedded cluster under
//! target/amal-bench-soak-db) with the starter knowledge base and the hashed embedder.
//!
//! The hour assumed at peak (see docs/benchmarks.md): AMAL_BENCH_PEOPLE (default 300) people
//! connected at once, each with a live stream open; AMAL_BENCH_TURNS (default 6,000) messages,
//! each followed by a read of its conversation and of the conversation list; a session lasts
//! AMAL_BENCH_TURNS_PER_SESSION (default 5) messages, so 1,200 sign-ins (link request read from
//! the outbox, verification with consent, a conversation, a stream), ending with a sign-out,
//! or every 20th with `DELETE /v1/me`. The volume is spread over AMAL_BENCH_SECONDS (default
//! 300: the hour compressed 12 times), each person on a fixed schedule.
//!
//! Sampled from `/proc` for the server process: resident memory and open file descriptors
//! before the traffic, with every person's stream open but nobody writing, every 5 s during the
//! traffic, and after it ended (every stream closed); the database's commits per second
//! (`pg_stat_database.xact_commit`) in each of these phases. Reported beside a reference measured in the same run: durable single-row INSERTs per
//! second by 4 clients on the same cluster. Also: latency and failures per kind of request,
//! how long a stream took to end after its sign-out or deletion, and the messages the streams
//! delivered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

use amal_engine::knowledge::Embedder;
use amal_engine::seed;

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, percentile};

/// What people say, in turn.
const MESSAGES: &[&str] = &[
    "How can I sleep better? I have insomnia",
    "J'ai du mal à dormir la nuit, que faire ?",
    "كيف أتوقف عن التدخين؟",
    "What are the signs of alcohol withdrawal?",
    "Je stresse beaucoup pour mes examens",
    "What is the capital of Australia?",
    "I would like to talk to a person please",
    "How do I deal with cannabis cravings?",
    "👍",
];

/// One sample of the server process and the database.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_mb: f64,
    fds: usize,
    commits: i64,
    at: Instant,
}

fn sample(pid: u32, commits: i64) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    Sample {
        rss_mb: rss_kb / 1024.0,
        fds,
        commits,
        at: Instant::now(),
    }
}

async fn commits(pool: &PgPool) -> i64 {
    // Statistics reach the view within a second; the query's own commit is counted too.
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_database")
}

fn rate(from: &Sample, to: &Sample) -> f64 {
    (to.commits - from.commits) as f64 / (to.at - from.at).as_secs_f64()
}

/// Latencies and failures per kind of request.
#[derive(Default)]
struct Record(Mutex<HashMap<&'static str, (Vec<Duration>, u64)>>);

impl Record {
    fn add(&self, kind: &'static str, took: Duration, ok: bool) {
        let mut r = self.0.lock().unwrap();
        let e = r.entry(kind).or_default();
        e.0.push(took);
        if !ok {
            e.1 += 1;
        }
    }
}

/// The sign-in links the server appended to its outbox, by address.
#[derive(Default)]
struct Outbox {
    links: Mutex<HashMap<String, String>>,
}

impl Outbox {
    /// Follows the outbox file until `stop`.
    fn follow(self: Arc<Self>, path: PathBuf, stop: Arc<AtomicBool>) {
        tokio::spawn(async move {
            let mut offset = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path)
                    && text.len() > offset
                {
                    let complete = text[offset..].rfind('\n').map_or(0, |i| i + 1);
                    let mut links = self.links.lock().unwrap();
                    for line in text[offset..offset + complete].lines() {
                        if let Ok(v) = serde_json::from_str::<Value>(line)
                            && let (Some(to), Some(link)) = (v["to"].as_str(), v["link"].as_str())
                        {
                            links.insert(to.to_string(), link.to_string());
                        }
                    }
                    offset += complete;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    async fn wait(&self, email: &str) -> Option<String> {
        for _ in 0..1000 {
            if let Some(link) = self.links.lock().unwrap().remove(email) {
                return Some(link);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// What the people's tasks share.
struct Soak {
    base: String,
    http: reqwest::Client,
    record: Record,
    outbox: Arc<Outbox>,
    stop: AtomicBool,
    sessions: AtomicU64,
    delivered: AtomicU64,
    posted: AtomicU64,
    ends: Mutex<Vec<Duration>>,
    ends_missing: AtomicU64,
}

impl Soak {
    /// Sends a request and records it; the JSON answer when it succeeded.
    async fn call(
        &self,
        kind: &'static str,
        request: reqwest::RequestBuilder,
        expect: u16,
    ) -> Option<Value> {
        let t = Instant::now();
        let response = request.send().await;
        let (ok, body) = match response {
            Ok(r) => {
                let ok = r.status().as_u16() == expect;
                let body = r.bytes().await.ok();
                (ok, body)
            }
            Err(_) => (false, None),
        };
        self.record.add(kind, t.elapsed(), ok);
        ok.then(|| {
            body.and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null)
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs a new person in through a link; their session token.
    async fn sign_in(&self, email: &str) -> Option<String> {
        let link = self.http.post(self.url("/v1/auth/magic-link"));
        self.call("link request", link.json(&json!({ "email": email })), 202)
            .await?;
        let link = self.outbox.wait(email).await?;
        let token = link.split("token=").nth(1)?.to_string();
        let verify = self
            .http
            .post(self.url("/v1/auth/verify"))
            .json(&json!({ "token": token, "consent_data_storage": true }));
        let session = self.call("verify", verify, 200).await?;
        Some(session["token"].as_str()?.to_string())
    }

    /// Opens the conversation's stream; a task counts its messages and reports when `end`
    /// arrives.
    async fn open_stream(
        self: &Arc<Self>,
        token: &str,
        conv: &str,
    ) -> Option<tokio::sync::oneshot::Receiver<Instant>> {
        let t = Instant::now();
        let response = self
            .http
            .get(self.url(&format!("/v1/conversations/{conv}/events")))
            .bearer_auth(token)
            .send()
            .await;
        let ok = matches!(&response, Ok(r) if r.status() == 200);
        self.record.add("stream open", t.elapsed(), ok);
        let mut response = response.ok().filter(|_| ok)?;
        let (ended, on_end) = tokio::sync::oneshot::channel();
        let soak = self.clone();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..i + 2).collect();
                    if block.contains("event: message") || block.contains("event:message") {
                        soak.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    if block.contains("event: end") || block.contains("event:end") {
                        let _ = ended.send(Instant::now());
                        return;
                    }
                }
            }
        });
        Some(on_end)
    }

    /// One person after another in this seat until the run stops: sign in, a conversation and
    /// its stream, `per_session` messages on schedule (each followed by two reads), then
    /// sign-out or deletion.
    async fn seat(
        self: Arc<Self>,
        seat: usize,
        ready: Arc<tokio::sync::Barrier>,
        mut go: tokio::sync::watch::Receiver<Option<Instant>>,
        offset: Duration,
        every: Duration,
        per_session: usize,
    ) {
        let mut slot = 0u32;
        let mut generation = 0;
        let mut start = None;
        while !self.stop.load(Ordering::Relaxed) {
            generation += 1;
            let email = format!("soak-{seat}-{generation}@example.dz");
            let Some(token) = self.sign_in(&email).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
            let start_conv = self
                .http
                .post(self.url("/v1/conversations"))
                .bearer_auth(&token)
                .json(&json!({}));
            let Some(conv) = self.call("conversation start", start_conv, 201).await else {
                continue;
            };
            let conv = conv["id"].as_str().unwrap_or_default().to_string();
            let on_end = self.open_stream(&token, &conv).await;
            let start = match start {
                Some(s) => s,
                None => {
                    // Every seat's first stream is open before the traffic starts.
                    ready.wait().await;
                    let s = go
                        .wait_for(Option::is_some)
                        .await
                        .expect("go")
                        .expect("set");
                    *start.insert(s)
                }
            };
            for k in 0..per_session {
                let due = start + offset + every * slot;
                slot += 1;
                tokio::time::sleep_until(due.into()).await;
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                let post = self
                    .http
                    .post(self.url(&format!("/v1/conversations/{conv}/messages")))
                    .bearer_auth(&token)
                    .json(&json!({
                        "content": MESSAGES[(seat + k + generation) % MESSAGES.len()],
                        "client_message_id": format!("{generation}-{k}"),
                    }));
                if self.call("turn", post, 201).await.is_some() {
                    self.posted.fetch_add(1, Ordering::Relaxed);
                }
                let read = self
                    .http
                    .get(self.url(&format!("/v1/conversations/{conv}?limit=20")))
                    .bearer_auth(&token);
                self.call("read conversation", read, 200).await;
                let list = self
                    .http
                    .get(self.url("/v1/conversations?limit=20"))
                    .bearer_auth(&token);
                self.call("list conversations", list, 200).await;
            }
            let ending = Instant::now();
            if n.is_multiple_of(20) {
                let delete = self.http.delete(self.url("/v1/me")).bearer_auth(&token);
                self.call("delete account", delete, 204).await;
            } else {
                let out = self
                    .http
                    .post(self.url("/v1/auth/sign-out"))
                    .bearer_auth(&token);
                self.call("sign-out", out, 204).await;
            }
            if let Some(on_end) = on_end {
                match tokio::time::timeout(Duration::from_secs(15), on_end).await {
                    Ok(Ok(at)) => self.ends.lock().unwrap().push(at - ending),
                    _ => {
                        self.ends_missing.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Durable single-row INSERTs per second by `clients` on `pool` for `seconds`: the reference.
async fn insert_rate(pool: &PgPool, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    sqlx::query("CREATE TABLE IF NOT EXISTS soak_reference (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text)")
        .execute(pool)
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (pool, stop) = (pool.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO soak_reference (note) VALUES ('reference')")
                    .execute(&pool)
                    .await
                    .expect("insert");
                n += 1;
            }
            n
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Commits per second of the database while nothing but the server (idle) runs.
async fn idle_commits(pool: &PgPool, pid: u32, seconds: u64) -> (Sample, Sample) {
    let from = sample(pid, commits(pool).await);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    (from, sample(pid, commits(pool).await))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let people = env_usize("AMAL_BENCH_PEOPLE", 300);
    let turns = env_usize("AMAL_BENCH_TURNS", 6_000);
    let seconds = env_usize("AMAL_BENCH_SECONDS", 300) as u64;
    let per_session = env_usize("AMAL_BENCH_TURNS_PER_SESSION", 5).max(1);
    let (pool, url) = common::fresh_database("amal_bench_soak", "amal-bench-soak-db", 4).await?;
    seed::reference(&pool).await?;
    seed::demo_knowledge(&pool, &Embedder::hashed()).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;

    let dir = tempfile::tempdir()?;
    let outbox_path = dir.path().join("outbox.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_amal-engine"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--rate-limit-per-ip-per-minute", "0"])
        .args(["--rate-limit-per-session-per-minute", "0"])
        .arg("--mail-outbox")
        .arg(&outbox_path)
        .env("DATABASE_URL", &url)
        .env("AMAL_DATA_DIR", dir.path())
        .env("AMAL_EMBEDDER", "hashed")
        .env("AMAL_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2 * people)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(http.get(format!("{base}/healthz")).send().await, Ok(r) if r.status() == 200) {
        anyhow::ensure!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "soak: {people} people at once, {turns} messages ({per_session} a session) over {seconds} s; load average {}",
        common::load_average()
    );

    tokio::time::sleep(Duration::from_secs(11)).await;
    let (idle_from, before) = idle_commits(&pool, pid, 10).await;
    let outbox = Arc::new(Outbox::default());
    let following = Arc::new(AtomicBool::new(false));
    outbox.clone().follow(outbox_path, following.clone());
    let soak = Arc::new(Soak {
        base,
        http,
        record: Record::default(),
        outbox,
        stop: AtomicBool::new(false),
        sessions: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        posted: AtomicU64::new(0),
        ends: Mutex::default(),
        ends_missing: AtomicU64::new(0),
    });
    // Each seat posts every `every`, seats staggered evenly.
    let every = Duration::from_secs_f64(people as f64 * seconds as f64 / turns as f64);
    let ready = Arc::new(tokio::sync::Barrier::new(people + 1));
    let (go, on_go) = tokio::sync::watch::channel(None);
    let mut seats = Vec::new();
    for s in 0..people {
        let offset = every.mul_f64(s as f64 / people as f64);
        seats.push(tokio::spawn(soak.clone().seat(
            s,
            ready.clone(),
            on_go.clone(),
            offset,
            every,
            per_session,
        )));
    }
    // What open streams cost by themselves: all of them open, nobody writing.
    ready.wait().await;
    // An idle backend reports its commits up to 10 s late: those of the sign-ins are let in
    // first.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (streams_from, streams_idle) = idle_commits(&pool, pid, 10).await;
    let start = Instant::now();
    go.send(Some(start))?;
    let mut during = vec![sample(pid, commits(&pool).await)];
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        during.push(sample(pid, commits(&pool).await));
    }
    soak.stop.store(true, Ordering::Relaxed);
    for s in seats {
        s.await?;
    }
    let traffic_end = sample(pid, commits(&pool).await);
    let traffic_seconds = start.elapsed().as_secs_f64();
    following.store(true, Ordering::Relaxed);
    // Every stream has ended; give the server a moment to release what they held (and the
    // backends to report their last commits).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (idle_after_from, after) = idle_commits(&pool, pid, 10).await;
    let reference = insert_rate(&pool, 4, 10).await?;
    let _ = child.kill();
    let _ = child.wait();

    let peak_rss = during.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    let peak_fds = during.iter().map(|s| s.fds).max().unwrap_or(0);
    println!("| phase | server RSS | open files | database commits/s |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| before (idle, 10 s) | {:.1} MB | {} | {:.1} |",
        before.rss_mb,
        before.fds,
        rate(&idle_from, &before)
    );
    println!(
        "| {people} streams open, no traffic (10 s) | {:.1} MB | {} | {:.1} |",
        streams_idle.rss_mb,
        streams_idle.fds,
        rate(&streams_from, &streams_idle)
    );
    println!(
        "| during ({traffic_seconds:.0} s; peak / last sample) | {peak_rss:.1} / {:.1} MB | {peak_fds} / {} | {:.1} |",
        during.last().unwrap().rss_mb,
        during.last().unwrap().fds,
        rate(&during[0], &traffic_end)
    );
    println!(
        "| after (streams closed, idle 10 s) | {:.1} MB | {} | {:.1} |",
        after.rss_mb,
        after.fds,
        rate(&idle_after_from, &after)
    );
    println!(
        "| reference: durable one-row INSERTs, 4 clients, same cluster | | | {reference:.0} |"
    );
    println!(
        "RSS every 5 s (MB): {}",
        during
            .iter()
            .map(|s| format!("{:.0}", s.rss_mb))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "open files every 5 s: {}",
        during
            .iter()
            .map(|s| s.fds.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );

    println!("| request | count | failed | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    let record = std::mem::take(&mut *soak.record.0.lock().unwrap());
    let mut kinds: Vec<_> = record.keys().copied().collect();
    kinds.sort();
    let mut total = 0;
    for kind in kinds {
        let (lat, failed) = &record[kind];
        let mut lat = lat.clone();
        lat.sort();
        total += lat.len();
        println!(
            "| {kind} | {} | {failed} | {:.1} ms | {:.1} ms |",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    let mut ends = soak.ends.lock().unwrap().clone();
    ends.sort();
    println!(
        "{total} requests, {:.1}/s; {} sessions; {} messages posted, {} delivered on streams",
        total as f64 / traffic_seconds,
        soak.sessions.load(Ordering::Relaxed),
        soak.posted.load(Ordering::Relaxed),
        soak.delivered.load(Ordering::Relaxed)
    );
    if !ends.is_empty() {
        println!(
            "stream ended after its sign-out or deletion: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} never ended within 15 s",
            percentile(&ends, 0.5),
            percentile(&ends, 0.99),
            ends.last().unwrap().as_secs_f64() * 1000.0,
            soak.ends_missing.load(Ordering::Relaxed)
        );
    }
    println!("load average at the end: {}", common::load_average());
    pool.close().await;
    Ok(())
}
