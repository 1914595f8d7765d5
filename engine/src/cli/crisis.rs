//! `amal-engine crisis ...`: check, evaluate and benchmark the crisis gate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use amal_engine::decision::crisis::eval::{self, PUBLIC_SETS, PUBLIC_TABLE_HEADER, SHIPPED_SET};
use amal_engine::decision::crisis::{CrisisGate, CrisisNumbers, safety_message};
use amal_engine::decision::human_request::HumanRequestDetector;
use amal_engine::lang::normalize::guess_message_language;

/// Subcommands of `amal-engine crisis`.
#[derive(Debug, Subcommand)]
pub enum CrisisCommand {
    /// Run the gate on one message and print the result as JSON.
    Check {
        /// The message.
        text: String,
        /// Also print the safety message that would be sent.
        #[arg(long)]
        safety_message: bool,
    },
    /// Evaluate the gate on a JSONL set (default: the shipped set): recall and false-escalation
    /// rate per language and variety, and every miss. Exits non-zero when a crisis is missed.
    Eval {
        /// A JSONL file with {"text","lang","variety","crisis","kind"} per line.
        file: Option<PathBuf>,
        /// Also list every false escalation with the rule that fired.
        #[arg(long)]
        show_false: bool,
    },
    /// Benchmark the gate on the public crisis-tweet sets (noisy labels), skipping absent ones.
    BenchPublic {
        /// The directory holding crisis-tweets-en/ and crisis-tweets-ar/.
        #[arg(long, default_value = "../shared/eval")]
        dir: PathBuf,
        /// Also list up to N missed positives and N escalated negatives per set.
        #[arg(long, default_value_t = 0)]
        show: usize,
    },
    /// List the loaded rules: counts per file and kind.
    Rules,
}

/// Runs one `amal-engine crisis` subcommand.
pub fn run(cmd: CrisisCommand) -> Result<ExitCode> {
    let gate = CrisisGate::from_env().context("loading the crisis rules")?;
    match cmd {
        CrisisCommand::Check {
            text,
            safety_message: with_message,
        } => {
            let human =
                HumanRequestDetector::builtin().context("loading the human-request rules")?;
            let crisis = gate.assess(&text);
            let mut out = serde_json::json!({
                "crisis": crisis,
                "human_request": human.detect(&text),
                "language": guess_message_language(&text),
            });
            if with_message && let Some(m) = &crisis {
                out["safety_message"] = serde_json::Value::String(safety_message(
                    m.language,
                    &CrisisNumbers::from_env(),
                ));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        CrisisCommand::Eval { file, show_false } => {
            let cases = match &file {
                Some(p) => eval::load_cases(p)?,
                None => eval::parse_cases(SHIPPED_SET.0, SHIPPED_SET.1)?,
            };
            let report = eval::evaluate(&gate, &cases);
            let speed = eval::seconds_per_message(&gate, &cases);
            print!("{}", report.render(Some(speed), show_false));
            Ok(if report.misses.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CrisisCommand::BenchPublic { dir, show } => {
            println!("{PUBLIC_TABLE_HEADER}");
            // Rows are printed as each set is scored; the listings follow the whole table.
            let mut listings = String::new();
            let mut found = 0;
            for set in &PUBLIC_SETS {
                let Some(score) = set.score(&gate, &dir)? else {
                    println!("{}", set.absent_row(&dir));
                    continue;
                };
                found += 1;
                println!("{}", score.table_row());
                if show > 0 {
                    listings.push_str(&score.listing(show));
                }
            }
            if found == 0 {
                println!("\nno public set found under {}: skipped", dir.display());
            }
            print!("{listings}");
            Ok(ExitCode::SUCCESS)
        }
        CrisisCommand::Rules => {
            let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
            for r in gate.rules().rules() {
                *per.entry((r.file.clone(), r.kind.clone())).or_default() += 1;
            }
            // The built-in files' paths are longer than the column's usual 36 characters.
            let width = per
                .keys()
                .map(|(f, _)| f.chars().count())
                .fold(36, usize::max);
            println!("{:<width$} {:<20} {:>5}", "file", "kind", "rules");
            for ((file, kind), n) in &per {
                println!("{file:<width$} {kind:<20} {n:>5}");
            }
            println!(
                "total: {} rules, {} patterns",
                gate.rules().rules().len(),
                gate.rules().pattern_count()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
