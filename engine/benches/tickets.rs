//! Tickets and SLA benchmark (not a test): `cargo bench -p amal-engine --bench tickets`.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else an embedded cluster
//! under target/amal-bench-tickets-db) it measures:
//! 1. ticket creation through the engine (`tickets::create`: insert with the numbering and SLA
//!    triggers, audit row, notice) with 8 concurrent clients, durable commits and then
//!    `synchronous_commit = off`, checking by SQL that no number repeats;
//! 2. the platform documents' `COUNT(*) + 1` numbering trigger on a scratch table, same load,
//!    with its duplicate rate;
//! 3. the SLA-ordered queue page (`tickets::queue`, 50 open tickets by next deadline) for every
//!    queue and filter (unassigned, mine, all open, priority, category, crisis nobody holds,
//!    breached, language, tier) at 1,000, 10,000, 100,000 and 1,000,000 tickets: p50 / p95 /
//!    p99 and the plan, first with the statistics of the previous size (stale, as between two
//!    autovacuum analyses), then after ANALYZE; beside a reference, one ticket read by its id;
//! 4. one breach-sweeper pass (`tickets::sweep`) over those 1,000,000 tickets.
//!
//! Environment: AMAL_BENCH_TICKETS (default 1000000: the largest size), AMAL_BENCH_SECONDS
//! (default 5, per creation run), AMAL_BENCH_QUERIES (default 200 per filter and size),
//! AMAL_BENCH_QUEUE_ONLY=1 (skip the creation runs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::lang::Lang;
use amal_engine::seed;
use amal_engine::staff::{self, Actor};
use amal_engine::tickets::{self, NewTicket, Queue, QueueFilter, Subject, Tier};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, load_average, percentile};

/// The breach sweeper is measured catching up after this long without a pass.
const BACKLOG_MINUTES: i64 = 60;

/// A fresh database `amal_bench_tickets`, migrated, with the reference data.
async fn private_database() -> anyhow::Result<(PgPool, String)> {
    let (pool, url) =
        common::fresh_database("amal_bench_tickets", "amal-bench-tickets-db", 12).await?;
    seed::reference(&pool).await?;
    Ok((pool, url))
}

/// 8 clients creating tickets for `seconds`, through the engine (`engine`) or as one plain
/// INSERT per transaction (the numbering and SLA triggers only); returns tickets per second.
async fn creation_run(
    pool: &PgPool,
    user: Uuid,
    seconds: u64,
    synchronous_commit: &str,
    engine: bool,
) -> anyhow::Result<(f64, u64)> {
    // Each run starts from a clean checkpoint: otherwise it pays for writing out the previous
    // run's (or the previous benchmark's million tickets') dirty pages, which made
    // back-to-back runs measure far below a first run.
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for client in 0..8 {
        let (pool, stop, created) = (pool.clone(), stop.clone(), created.clone());
        let sc = synchronous_commit.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("SET synchronous_commit = {sc}")))
                .execute(&mut *conn)
                .await
                .unwrap();
            let categories = ["addiction", "mental_health", "prevention", "resources", "crisis"];
            let priorities = ["low", "medium", "high", "urgent"];
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let new = NewTicket {
                    user_id: user,
                    conversation_id: None,
                    subject: Subject::new("Benchmark").unwrap(),
                    description: None,
                    category: categories[i % 5].into(),
                    priority: priorities[i % 4].into(),
                };
                if engine {
                    tickets::create(&mut conn, None, &new, Utc::now()).await.unwrap();
                } else {
                    sqlx::query(
                        "INSERT INTO support_tickets (user_id, subject, category, priority, status) \
                         VALUES ($1, 'Benchmark', $2, $3, 'open')",
                    )
                    .bind(user)
                    .bind(&new.category)
                    .bind(&new.priority)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                }
                created.fetch_add(1, Ordering::Relaxed);
                i += 8;
            }
            sqlx::query("RESET synchronous_commit").execute(&mut *conn).await.unwrap();
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let n = created.load(Ordering::Relaxed);
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

/// The documents' trigger, verbatim in spirit: the next number is COUNT(*) + 1 of the year.
const DOCUMENTED_TRIGGER: &str = r#"
CREATE TABLE bench_documented_tickets (
    id serial PRIMARY KEY,
    ticket_number varchar(32),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION bench_documented_ticket_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    year_part text := to_char(now(), 'YYYY');
    sequence_part text;
BEGIN
    SELECT lpad((COUNT(*) + 1)::text, 6, '0') INTO sequence_part
      FROM bench_documented_tickets
     WHERE ticket_number LIKE 'TKT-' || year_part || '-%';
    NEW.ticket_number := 'TKT-' || year_part || '-' || sequence_part;
    RETURN NEW;
END;
$$;
CREATE TRIGGER bench_documented_ticket_number BEFORE INSERT ON bench_documented_tickets
    FOR EACH ROW EXECUTE FUNCTION bench_documented_ticket_number();
"#;

async fn documented_run(pool: &PgPool, seconds: u64) -> anyhow::Result<(f64, i64, i64)> {
    sqlx::raw_sql(DOCUMENTED_TRIGGER).execute(pool).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..8 {
        let (pool, stop) = (pool.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO bench_documented_tickets DEFAULT VALUES")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (total, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT ticket_number) FROM bench_documented_tickets",
    )
    .fetch_one(pool)
    .await?;
    Ok((total as f64 / elapsed, total, total - distinct))
}

/// Bulk-loads tickets `first..=last` in chunks with INSERT ... SELECT generate_series. Triggers are off for
/// the load (session_replication_role = replica): the statement computes what they would
/// (numbers, due dates, effective deadlines, next deadline), which keeps 1,000,000 rows to well
/// under a minute. About 10% are open (open, in_progress, pending) with deadlines around now;
/// breach flags are set as a sweeper running every minute would have left them, except for the
/// last `backlog_minutes`, which the measured sweeper pass records.
async fn bulk_load(
    pool: &PgPool,
    first: usize,
    last: usize,
    agents: &[Uuid],
    user: Uuid,
    backlog_minutes: i64,
) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let chunk = 100_000usize;
    let mut from = first;
    while from <= last {
        let to = (from + chunk - 1).min(last);
        sqlx::query(
            r#"
WITH g AS (
    SELECT i,
           (ARRAY['addiction','mental_health','prevention','resources','crisis'])[1 + (i / 7) % 5] AS category,
           (ARRAY['low','medium','high','urgent'])[1 + (i / 3) % 4] AS priority,
           (ARRAY['ar','fr','en',NULL])[1 + (i / 11) % 4] AS language,
           CASE WHEN i % 97 = 0 THEN 'manager' WHEN i % 31 = 0 THEN 'T3'
                WHEN i % 9 = 0 THEN 'T2' ELSE 'T1' END AS tier,
           CASE WHEN i % 10 = 0 THEN (ARRAY['open','in_progress','pending'])[1 + (i / 10) % 3]
                WHEN i % 10 < 5 THEN 'resolved' ELSE 'closed' END AS status,
           $4::uuid[] AS agents
      FROM generate_series($1::int, $2::int) AS i
), t AS (
    SELECT g.*,
           -- Open tickets were created in the last 3 days, the others over the last year.
           CASE WHEN g.status IN ('open','in_progress','pending')
                THEN $5::timestamptz - make_interval(secs => (g.i::bigint * 7919) % (3 * 86400))
                ELSE $5::timestamptz - make_interval(secs => (g.i::bigint * 7919) % (365 * 86400)) END AS created_at,
           p.first_response_minutes AS frm, p.resolution_minutes AS rm
      FROM g JOIN ticket_priorities p ON p.code = g.priority
), d AS (
    SELECT t.*,
           t.created_at + make_interval(mins => t.frm) AS fr_due,
           t.created_at + make_interval(mins => t.rm) AS res_due,
           CASE WHEN t.status = 'open' THEN NULL
                ELSE t.agents[1 + (t.i / 10) % cardinality(t.agents)] END AS assignee,
           CASE WHEN t.status <> 'open' AND t.i % 3 = 0
                THEN t.created_at + make_interval(mins => t.frm / 2) END AS answered
      FROM t
)
INSERT INTO support_tickets (
    ticket_number, user_id, subject, category, priority, language, escalation_tier, status,
    assigned_to, assigned_at,
    created_at, updated_at, first_response_due_at, resolution_due_at,
    first_response_deadline_at, resolution_deadline_at, sla_next_due_at,
    first_response_at, sla_paused_at, first_response_breached, resolution_breached,
    resolved_at, closed_at)
SELECT format('TKT-2025-%s', lpad(d.i::text, 7, '0')), $3, 'Benchmark ticket', d.category,
       d.priority, d.language, d.tier, d.status, d.assignee, CASE WHEN d.assignee IS NOT NULL THEN d.created_at END,
       d.created_at, d.created_at, d.fr_due, d.res_due, d.fr_due, d.res_due,
       CASE WHEN d.answered IS NULL THEN d.fr_due ELSE d.res_due END,
       d.answered,
       CASE WHEN d.status IN ('pending','resolved','closed') THEN d.created_at + interval '1 minute' END,
       d.status IN ('open','in_progress') AND d.answered IS NULL
           AND d.fr_due < $5::timestamptz - make_interval(mins => $6::int),
       d.status IN ('open','in_progress')
           AND d.res_due < $5::timestamptz - make_interval(mins => $6::int),
       CASE WHEN d.status IN ('resolved','closed') THEN d.created_at + interval '1 minute' END,
       CASE WHEN d.status = 'closed' THEN d.created_at + interval '2 minutes' END
  FROM d"#,
        )
        .bind(from as i32)
        .bind(to as i32)
        .bind(user)
        .bind(agents)
        .bind(Utc::now())
        .bind(backlog_minutes as i32)
        .execute(&mut *conn)
        .await?;
        from = to + 1;
    }
    sqlx::query("RESET session_replication_role")
        .execute(&mut *conn)
        .await?;
    // The triggers were off: the year's sequence continues after the generated numbers.
    sqlx::query("SELECT setval(ticket_number_sequence(2025), $1)")
        .bind(last as i64)
        .execute(&mut *conn)
        .await?;
    // Hint bits and the visibility map, as a table long in use has them; the statistics are
    // left as they were (the caller measures with them, then analyses).
    sqlx::query("VACUUM support_tickets")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One queue page as the benchmark asks for it: the `i`-th filter of a kind and who asks.
type PageOf<'a> = Box<dyn Fn(usize) -> (QueueFilter, Option<&'a Actor>) + 'a>;

/// `queries` pages (after a warm-up that fills the statement cache and settles on the generic
/// plan), sorted durations, on a connection of its own (a fresh statement cache: the plan is
/// chosen with the statistics of the moment).
async fn queue_latency(
    pool: &PgPool,
    queries: usize,
    page_of: &PageOf<'_>,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = pool.acquire().await?;
    sqlx::Connection::clear_cached_statements(&mut *conn).await?;
    for i in 0..10 {
        let (f, actor) = page_of(i);
        tickets::queue(&mut conn, actor, &f, Utc::now()).await?;
    }
    let mut times = Vec::with_capacity(queries);
    for i in 0..queries {
        let (f, actor) = page_of(i * 7 + 3);
        let start = Instant::now();
        let page = tickets::queue(&mut conn, actor, &f, Utc::now()).await?;
        times.push(start.elapsed());
        anyhow::ensure!(page.len() <= 50, "a page of {} tickets", page.len());
    }
    times.sort();
    Ok(times)
}

/// The reference: one ticket read by its primary key (`tickets::get`, the same clock columns
/// and join as a page row), sorted durations.
async fn by_id_latency(
    pool: &PgPool,
    size: usize,
    queries: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = pool.acquire().await?;
    // Tickets spread over the generated numbers, as the pages' rows are.
    let numbers: Vec<String> = (0..queries.max(10))
        .map(|k| format!("TKT-2025-{:07}", k * 7919 % size + 1))
        .collect();
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM support_tickets WHERE ticket_number = ANY($1)")
            .bind(&numbers)
            .fetch_all(&mut *conn)
            .await?;
    anyhow::ensure!(!ids.is_empty(), "no tickets to read");
    for id in ids.iter().take(10) {
        tickets::get(&mut conn, *id, Utc::now()).await?;
    }
    let mut times = Vec::with_capacity(queries);
    for i in 0..queries {
        let start = Instant::now();
        tickets::get(&mut conn, ids[i % ids.len()], Utc::now()).await?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The scan a page's plan uses (index name, or the node when there is no index), with
/// `+sort` / `+bitmap` when the plan sorts or goes through a bitmap, under the planner's
/// custom plan and its generic plan (`plan_cache_mode`), the latter only when it differs.
async fn plan_of(
    pool: &PgPool,
    filter: &QueueFilter,
    actor: Option<&Actor>,
) -> anyhow::Result<String> {
    let mut conn = pool.acquire().await?;
    let mut plans = Vec::new();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
            .execute(&mut *conn)
            .await?;
        let lines = tickets::queue_plan(&mut conn, actor, filter, Utc::now()).await?;
        plans.push(summarize_plan(&lines));
    }
    sqlx::query("RESET plan_cache_mode")
        .execute(&mut *conn)
        .await?;
    let shape = |p: &str| p.split(" (").next().unwrap_or("").to_string();
    Ok(if shape(&plans[0]) == shape(&plans[1]) {
        plans.swap_remove(0)
    } else {
        format!("{}; generic: {}", plans[0], plans[1])
    })
}

/// The inner scan of the page (the first scan on support_tickets, its index without the
/// common prefix), `+sort` when the page is sorted rather than read in order, and the
/// server's execution time of that page.
fn summarize_plan(lines: &[String]) -> String {
    let scan = lines
        .iter()
        .find(|l| l.contains("on support_tickets"))
        .map(|l| {
            let node = l.trim().trim_start_matches("->").trim();
            let node = node.split("  (").next().unwrap_or(node);
            let node = node.split(" on support_tickets").next().unwrap_or(node);
            node.replace("using idx_support_tickets_", "")
        })
        .unwrap_or_else(|| "?".into());
    let sorts = lines.iter().any(|l| l.contains("Sort Key: t_1."));
    let execution = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .unwrap_or("?");
    format!("{scan}{} ({execution})", if sorts { " +sort" } else { "" })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("AMAL_BENCH_TICKETS", 1_000_000);
    let seconds = env_usize("AMAL_BENCH_SECONDS", 5) as u64;
    let queries = env_usize("AMAL_BENCH_QUERIES", 200);
    let queue_only = env_usize("AMAL_BENCH_QUEUE_ONLY", 0) == 1;
    let total = Instant::now();
    let (pool, _url) = private_database().await?;
    let server: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    println!(
        "# tickets and SLA benchmark (PostgreSQL {server}, {} cores)",
        std::thread::available_parallelism()?.get()
    );

    println!("load average at the start: {}", load_average());
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name) VALUES ('bench@example.dz', '!', 'Bench') RETURNING id",
    )
    .fetch_one(&pool)
    .await?;

    if !queue_only {
        // 1. Creation through the engine.
        let (raw_durable, raw_durable_n) = creation_run(&pool, user, seconds, "on", false).await?;
        let (raw_fast, raw_fast_n) = creation_run(&pool, user, seconds, "off", false).await?;
        let (durable, durable_n) = creation_run(&pool, user, seconds, "on", true).await?;
        let (fast, fast_n) = creation_run(&pool, user, seconds, "off", true).await?;
        let (count, duplicates): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) - count(DISTINCT ticket_number) FROM support_tickets",
        )
        .fetch_one(&pool)
        .await?;
        let gaps: i64 = sqlx::query_scalar(
            "SELECT max(substr(ticket_number, 10)::int) - count(*) FROM support_tickets",
        )
        .fetch_one(&pool)
        .await?;
        println!("\n## 1. ticket creation, 8 concurrent clients");
        println!(
            "INSERT per transaction (numbering + SLA triggers), durable commits:  {raw_durable:>7.0} tickets/s ({raw_durable_n} in {seconds} s)"
        );
        println!(
            "INSERT per transaction (numbering + SLA triggers), async commits:    {raw_fast:>7.0} tickets/s ({raw_fast_n} in {seconds} s)"
        );
        println!(
            "tickets::create (ticket, audit row, notice in one statement; then the shared flush wait), durable:{durable:>7.0} tickets/s ({durable_n} in {seconds} s)"
        );
        println!(
            "tickets::create, session synchronous_commit = off (flush not awaited):          {fast:>7.0} tickets/s ({fast_n} in {seconds} s)"
        );
        println!("numbers: {count} tickets, {duplicates} duplicates, {gaps} unused (rolled back)");
        println!("load average after the creation runs: {}", load_average());

        // 2. The documents' trigger.
        let (rate, total_doc, dup) = documented_run(&pool, seconds).await?;
        println!(
            "\n## 2. documents' COUNT(*)+1 trigger, 8 concurrent clients (scratch table, durable)"
        );
        println!(
            "{rate:>8.0} inserts/s, {total_doc} rows, {dup} duplicate numbers ({:.1}% of rows)",
            100.0 * dup as f64 / total_doc.max(1) as f64
        );
        sqlx::query("DROP TABLE bench_documented_tickets")
            .execute(&pool)
            .await?;
    }

    // 3. Queue pages at every size.
    let mut agents = Vec::new();
    for i in 0..50 {
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, staff_role) VALUES ($1, '!', $2, 'agent') RETURNING id",
        )
        .bind(format!("agent{i}@bench.example"))
        .bind(format!("Agent {i}"))
        .fetch_one(&pool)
        .await?;
        agents.push(id);
    }
    let mut actors = Vec::new();
    {
        let mut conn = pool.acquire().await?;
        for id in &agents {
            actors.push(staff::actor_by_id(&mut conn, *id).await?);
        }
    }
    sqlx::query("DELETE FROM audit_logs").execute(&pool).await?;
    sqlx::query("DELETE FROM support_tickets")
        .execute(&pool)
        .await?;
    let categories = [
        "addiction",
        "mental_health",
        "prevention",
        "resources",
        "crisis",
    ];
    let priorities = ["low", "medium", "high", "urgent"];
    let tiers = [Tier::T1, Tier::T2, Tier::T3, Tier::Manager];
    let open = |f: QueueFilter| (f, None);
    let pages: Vec<(&str, PageOf)> = vec![
        (
            "unassigned",
            Box::new(|_| open(QueueFilter::new(Queue::Unassigned))),
        ),
        (
            "mine",
            Box::new(|i| {
                (
                    QueueFilter::new(Queue::Mine),
                    Some(&actors[i % actors.len()]),
                )
            }),
        ),
        (
            "all open",
            Box::new(|_| open(QueueFilter::new(Queue::Open))),
        ),
        (
            "by priority",
            Box::new(|i| {
                open(QueueFilter {
                    priority: Some(priorities[i % 4].into()),
                    ..QueueFilter::new(Queue::Open)
                })
            }),
        ),
        (
            "by category",
            Box::new(|i| {
                open(QueueFilter {
                    category: Some(categories[i % 5].into()),
                    ..QueueFilter::new(Queue::Open)
                })
            }),
        ),
        (
            "crisis, nobody holds",
            Box::new(|_| {
                open(QueueFilter {
                    category: Some("crisis".into()),
                    ..QueueFilter::new(Queue::Unassigned)
                })
            }),
        ),
        (
            "breached",
            Box::new(|_| open(QueueFilter::new(Queue::Breached))),
        ),
        (
            "by language",
            Box::new(|i| {
                open(QueueFilter {
                    language: Some(Lang::ALL[i % 3]),
                    ..QueueFilter::new(Queue::Open)
                })
            }),
        ),
        (
            "by tier",
            Box::new(|i| {
                open(QueueFilter {
                    tier: Some(tiers[i % 4]),
                    ..QueueFilter::new(Queue::Open)
                })
            }),
        ),
    ];
    let mut sizes: Vec<usize> = [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&s| s < n)
        .collect();
    sizes.push(n);
    println!(
        "\n## 3. queue pages (50 open tickets by next deadline), {queries} pages per filter, size and statistics"
    );
    println!(
        "| tickets (open) | statistics | page | p50 ms | p95 ms | p99 ms | plan: scan (server time of one page; the generic plan when it differs) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut worst: Vec<(usize, &str, f64)> = Vec::new();
    let mut loaded = 0usize;
    for &size in &sizes {
        let load = Instant::now();
        bulk_load(&pool, loaded + 1, size, &agents, user, BACKLOG_MINUTES).await?;
        loaded = size;
        let (rows, open_rows): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('open','in_progress','pending')) FROM support_tickets",
        )
        .fetch_one(&pool)
        .await?;
        eprintln!(
            "{rows} tickets ({open_rows} open), generated in {:.1} s",
            load.elapsed().as_secs_f64()
        );
        for statistics in ["previous size's", "analysed"] {
            if statistics == "analysed" {
                sqlx::query("ANALYZE support_tickets")
                    .execute(&pool)
                    .await?;
            }
            let reference = by_id_latency(&pool, size, queries).await?;
            println!(
                "| {rows} ({open_rows}) | {statistics} | reference: one ticket by id | {:.2} | {:.2} | {:.2} | primary key |",
                percentile(&reference, 0.50),
                percentile(&reference, 0.95),
                percentile(&reference, 0.99)
            );
            for (name, page_of) in &pages {
                let times = queue_latency(&pool, queries, page_of).await?;
                let mut plans: Vec<String> = Vec::new();
                for i in 0..5 {
                    let (f, actor) = page_of(i);
                    let plan = plan_of(&pool, &f, actor).await?;
                    let shape = |p: &str| p.split(" (").next().unwrap_or("").to_string();
                    if !plans.iter().any(|p| shape(p) == shape(&plan)) {
                        plans.push(plan);
                    }
                }
                let p95 = percentile(&times, 0.95);
                println!(
                    "| {rows} ({open_rows}) | {statistics} | {name} | {:.2} | {p95:.2} | {:.2} | {} |",
                    percentile(&times, 0.50),
                    percentile(&times, 0.99),
                    plans.join("; ")
                );
                match worst.iter_mut().find(|(s, _, _)| *s == size) {
                    Some(w) if w.2 >= p95 => {}
                    Some(w) => *w = (size, name, p95),
                    None => worst.push((size, name, p95)),
                }
            }
        }
        println!("load average: {}", load_average());
    }
    for (size, name, p95) in &worst {
        println!("worst p95 at {size} tickets: {p95:.2} ms ({name})");
    }
    let rows = loaded;

    // 4. One sweeper pass.
    let mut conn = pool.acquire().await?;
    let start = Instant::now();
    let report = tickets::sweep(&mut conn, Utc::now()).await?;
    let first = start.elapsed();
    let start = Instant::now();
    let again = tickets::sweep(&mut conn, Utc::now()).await?;
    let steady = start.elapsed();
    println!("\n## 4. breach sweeper, one pass over {rows} tickets");
    println!(
        "catch-up pass after {BACKLOG_MINUTES} min without sweeping: {:.3} s ({} first-response + {} resolution breaches recorded)",
        first.as_secs_f64(),
        report.first_response_breaches,
        report.resolution_breaches
    );
    println!(
        "steady-state pass (nothing new):            {:.3} s ({} recorded)",
        steady.as_secs_f64(),
        again.total()
    );
    println!(
        "\ntotal benchmark time {:.0} s",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}
