//! `amal-engine simulate`: demo traffic for the console (see [`amal_engine::simulator`]).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::simulator::{Simulator, SimulatorOptions};

/// Arguments of `amal-engine simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Messages per minute across all simulated people.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=6000))]
    messages_per_minute: u32,
    /// Percentage of messages written in crisis.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=100))]
    crisis_percent: u32,
    /// Seconds between SLA sweeps.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    sweep_interval_seconds: u64,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    max_messages: Option<u64>,
    /// Seed of the random choices (the same seed replays the same traffic).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// Runs `amal-engine simulate` until Ctrl-C, SIGTERM or `--max-messages`.
pub async fn run(config: &Config, args: SimulateArgs) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let engine = super::decide::engine(&pool).await?;
    let mut simulator = Simulator::new(
        pool,
        SimulatorOptions {
            messages_per_minute: args.messages_per_minute,
            crisis_percent: args.crisis_percent,
            sweep_interval_seconds: args.sweep_interval_seconds,
            max_messages: args.max_messages,
            seed: args.seed,
        },
    )
    .context("preparing the simulator")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
    });
    eprintln!(
        "simulating {} messages per minute ({}% in crisis); Ctrl-C stops",
        args.messages_per_minute, args.crisis_percent
    );
    simulator
        .run(&engine, stop_rx, |turn| {
            tracing::info!(
                conversation = %turn.conversation_id,
                lang = turn.lang.code(),
                decision = %turn.decision,
                reason = turn.reason_code.as_deref().unwrap_or(""),
                ticket = turn.ticket_number.as_deref().unwrap_or(""),
                "simulated message"
            );
        })
        .await;
    println!("{} simulated messages sent", simulator.sent());
    Ok(ExitCode::SUCCESS)
}
