//! Routing benchmark (not a test): `cargo bench -p amal-engine --bench routing`.
//!
//! On a private database (a fresh database on DATABASE_URL's server, else an embedded cluster
//! under target/amal-bench-routing-db), 8 clients each create tickets in their own transaction,
//! as a turn does (`tickets::create` inside a transaction, then commit), in alternating runs:
//! 1. creation alone (the reference: routing off);
//! 2. creation and `routing::route` in `assign` mode in the same transaction, with
//!    AMAL_BENCH_AGENTS members online (default 20, capacity high enough never to fill), the
//!    decision recorded with everyone considered;
//! 3. the same in `off` mode (the coverage decision recorded, no lock).
//!
//! Prints tickets per second and the routing cost per ticket against the reference of the same
//! run, and checks that no ticket was assigned twice and nobody went over capacity.
//! Environment: AMAL_BENCH_SECONDS (default 5 per run), AMAL_BENCH_AGENTS, AMAL_BENCH_ROUNDS
//! (default 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use amal_engine::config::{RoutingMode, RoutingSettings};
use amal_engine::lang::Lang;
use amal_engine::presence::{Presence, PresenceCause};
use amal_engine::routing::{self, RouteRequest};
use amal_engine::tickets::{self, NewTicket, Subject, Tier};
use amal_engine::{roster, seed};

#[path = "common/mod.rs"]
mod common;
use common::{env_usize, load_average};

/// 8 clients creating (and, unless `mode` is `None`, routing) tickets for `seconds`.
async fn run(
    pool: &PgPool,
    user: Uuid,
    seconds: u64,
    mode: Option<RoutingMode>,
) -> anyhow::Result<f64> {
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for client in 0..8usize {
        let (pool, stop, created) = (pool.clone(), stop.clone(), created.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let langs = [Lang::Ar, Lang::Fr, Lang::En];
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let new = NewTicket {
                    user_id: user,
                    conversation_id: None,
                    subject: Subject::new("Benchmark").unwrap(),
                    description: None,
                    category: "addiction".into(),
                    priority: "medium".into(),
                };
                let mut tx = conn.begin().await.unwrap();
                let t = tickets::create(&mut tx, None, &new, Utc::now())
                    .await
                    .unwrap();
                if let Some(mode) = mode {
                    let settings = RoutingSettings {
                        mode,
                        ..RoutingSettings::default()
                    };
                    let req = RouteRequest {
                        ticket_id: t.id,
                        language: langs[i % 3],
                        tier: Tier::T1,
                        crisis: false,
                    };
                    routing::route(&mut tx, &settings, &req, Utc::now())
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
                created.fetch_add(1, Ordering::Relaxed);
                i += 8;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    Ok(created.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_usize("AMAL_BENCH_SECONDS", 5) as u64;
    let agents = env_usize("AMAL_BENCH_AGENTS", 20);
    let rounds = env_usize("AMAL_BENCH_ROUNDS", 2);
    let (pool, _) =
        common::fresh_database("amal_bench_routing", "amal-bench-routing-db", 12).await?;
    seed::reference(&pool).await?;
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name) VALUES ('bench@example.dz', '!', 'B') \
         RETURNING id",
    )
    .fetch_one(&pool)
    .await?;
    // Members online, each speaking all three languages, with room for every ticket.
    let mut conn = pool.acquire().await?;
    let settings = RoutingSettings {
        presence_timeout_seconds: 86_400,
        ..RoutingSettings::default()
    };
    for n in 0..agents {
        let email = format!("agent{n}@amal.example");
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, staff_role) \
             VALUES ($1, '!', 'Agent', 'agent') RETURNING id",
        )
        .bind(&email)
        .fetch_one(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO staff_profiles (user_id, languages, capacity) VALUES ($1, '{ar,fr,en}', 100)",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        roster::set_presence(
            &mut conn,
            None,
            &email,
            Presence::Online,
            PresenceCause::Admin,
            &settings,
            Utc::now(),
        )
        .await?;
    }
    drop(conn);
    println!(
        "routing benchmark: 8 clients, {seconds} s per run, {agents} members online, load {}",
        load_average()
    );
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>18}",
        "round", "create/s", "+assign/s", "+off/s", "assigned / nobody"
    );
    let mut per_ticket = Vec::new();
    for round in 1..=rounds {
        let plain = run(&pool, user, seconds, None).await?;
        let assign = run(&pool, user, seconds, Some(RoutingMode::Assign)).await?;
        // Members fill up (capacity 100 each) on a long run: the rest is decided `nobody`,
        // which costs the same candidates' read and record without the assignment.
        let (assigned, nobody): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE outcome = 'assigned'), \
                    count(*) FILTER (WHERE outcome = 'nobody') FROM ticket_routing WHERE mode = 'assign'",
        )
        .fetch_one(&pool)
        .await?;
        let off = run(&pool, user, seconds, Some(RoutingMode::Off)).await?;
        println!("{round:<6} {plain:>10.0} {assign:>10.0} {off:>10.0} {assigned:>9} / {nobody}");
        per_ticket.push((1.0 / assign - 1.0 / plain) * 1000.0 * 8.0);
        // Each round starts with empty loads and no decisions.
        sqlx::query(
            "UPDATE support_tickets SET assigned_to = NULL, assigned_at = NULL, status = 'open'",
        )
        .execute(&pool)
        .await?;
        sqlx::query("DELETE FROM ticket_routing")
            .execute(&pool)
            .await?;
    }
    // A last routed run, checked: nobody over capacity, no ticket assigned twice.
    run(&pool, user, seconds, Some(RoutingMode::Assign)).await?;
    let doubles: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT ticket_id FROM ticket_routing \
          WHERE outcome = 'assigned' GROUP BY ticket_id HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await?;
    let over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT assigned_to FROM support_tickets \
          WHERE assigned_to IS NOT NULL AND status IN ('open', 'in_progress', 'pending') \
          GROUP BY assigned_to HAVING count(*) > 100) o",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "routing's added latency per ticket (8 clients, from throughput): {} ms; \
         tickets routed twice: {doubles}; members over capacity: {over}",
        per_ticket
            .iter()
            .map(|m| format!("{m:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    anyhow::ensure!(doubles == 0 && over == 0, "routing broke its guarantees");
    Ok(())
}
