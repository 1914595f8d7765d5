//! `amal-engine stats`: support statistics (refreshes the daily statistics first).

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Args;

use amal_engine::config::Config;
use amal_engine::{db, stats};

/// Arguments of `amal-engine stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Days covered by the per-day figures (including today).
    #[arg(long, default_value_t = 30)]
    days: i32,
}

fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s >= 3_600.0 => format!("{:.1} h", s / 3_600.0),
        Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{s:.0} s"),
    }
}

/// Runs `amal-engine stats`.
pub async fn run(config: &Config, args: StatsArgs) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    stats::refresh(&mut conn)
        .await
        .context("refreshing the daily statistics")?;
    let s = stats::collect(&mut conn, Utc::now(), args.days)
        .await
        .context("reading the statistics")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("open tickets: {}", s.open_tickets);
    for q in &s.queue {
        println!(
            "  {:<11} {:<7} {:<14} {}",
            q.status, q.priority, q.category, q.tickets
        );
    }
    println!(
        "\nlast {} days: first response avg {} p90 {} ({} tickets); resolution avg {} p90 {} ({} tickets)",
        s.window_days,
        secs(s.first_response.avg_seconds),
        secs(s.first_response.p90_seconds),
        s.first_response.tickets,
        secs(s.resolution.avg_seconds),
        secs(s.resolution.p90_seconds),
        s.resolution.tickets
    );
    println!("\nSLA compliance per day of creation (met / breached / running):");
    for c in &s.sla_compliance {
        println!(
            "  {} {:<15} {:>5} / {:>5} / {:>5}  {}",
            c.date,
            c.target,
            c.met,
            c.breached,
            c.running,
            c.compliance
                .map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("\nbreaches per day:");
    for b in &s.sla_breaches {
        println!("  {} {:<15} {}", b.date, b.target, b.breaches);
    }
    println!("\nworkload:");
    for w in &s.workload {
        println!(
            "  {:<34} {:<11} open {:>3}  in progress {:>3}  pending {:>3}  breached {:>3}",
            w.email,
            w.staff_role.as_deref().unwrap_or("-"),
            w.open_tickets,
            w.in_progress,
            w.pending,
            w.breached_open
        );
    }
    println!("\ndecisions per day (count, average confidence, outside the service's subjects):");
    for d in &s.decisions {
        println!(
            "  {} {:<8} {:>5}  {}  {}",
            d.date,
            d.decision,
            d.count,
            d.avg_confidence
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into()),
            d.out_of_scope
        );
    }
    println!("\nconversations and messages per day:");
    for a in &s.activity {
        println!(
            "  {} {:>6} conversations {:>7} messages",
            a.date, a.conversations, a.messages
        );
    }
    println!("\ncrisis escalations per day (answered, first response avg / p90 / max):");
    for c in &s.crisis {
        println!(
            "  {} {:>4} tickets {:>4} answered  {} / {} / {}  late {}",
            c.date,
            c.tickets,
            c.answered,
            secs(c.avg_first_response_seconds),
            secs(c.p90_first_response_seconds),
            secs(c.max_first_response_seconds),
            c.first_response_breached
        );
    }
    let r = &s.routing;
    println!("\nrouting (who was on shift):");
    for h in &r.staffed_hours {
        println!("  staffed hours in {}: {:.1}", h.language, h.hours);
    }
    println!(
        "  {} tickets routed, {} assigned (time to assignment avg / p90: {} / {}), \
         {} found nobody; offers declined {}, expired {}",
        r.tickets_routed,
        r.tickets_assigned,
        secs(r.avg_seconds_to_assignment),
        secs(r.p90_seconds_to_assignment),
        r.tickets_found_nobody,
        r.offers_declined,
        r.offers_expired
    );
    Ok(ExitCode::SUCCESS)
}
