//! `amal-engine crisis ...`: check, evaluate and benchmark the crisis gate.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use amal_engine::decision::crisis::eval::{self, PUBLIC_SETS, PUBLIC_TABLE_HEADER, SHIPPED_SET};
use amal_engine::decision::crisis::semantic::{
    NetScore, NetSettings, SETTINGS, SemanticNet, fit_bank,
};
use amal_engine::decision::crisis::{CrisisGate, CrisisMatch, CrisisNumbers, safety_message};
use amal_engine::decision::human_request::HumanRequestDetector;
use amal_engine::knowledge::query_cache::normalise;
use amal_engine::knowledge::retrieval::message_text;
use amal_engine::knowledge::{Embedder, TextKind};
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
        /// The deterministic rules only, without the second net.
        #[arg(long)]
        rules_only: bool,
    },
    /// Evaluate the gate on a JSONL set (default: the shipped set): recall and false-escalation
    /// rate per language and variety, and every miss. Exits non-zero when a crisis is missed.
    Eval {
        /// A JSONL file with {"text","lang","variety","crisis","kind"} per line.
        file: Option<PathBuf>,
        /// Also list every false escalation with the rule that fired.
        #[arg(long)]
        show_false: bool,
        /// The deterministic rules only, without the second net.
        #[arg(long)]
        rules_only: bool,
    },
    /// Benchmark the gate on the public crisis-tweet sets (noisy labels), skipping absent ones.
    BenchPublic {
        /// The directory holding crisis-tweets-en/ and crisis-tweets-ar/.
        #[arg(long, default_value = "../shared/eval")]
        dir: PathBuf,
        /// Also list up to N missed positives and N escalated negatives per set.
        #[arg(long, default_value_t = 0)]
        show: usize,
        /// The deterministic rules only, without the second net.
        #[arg(long)]
        rules_only: bool,
    },
    /// List the loaded rules: counts per file and kind.
    Rules,
    /// The second net over a grid of settings, to choose them: the bank cross-validated, then
    /// held-out sets; the shipped settings are marked.
    Net {
        /// Extra held-out JSONL sets.
        files: Vec<PathBuf>,
        /// The directory holding the public crisis-tweet sets.
        #[arg(long, default_value = "../shared/eval")]
        dir: PathBuf,
    },
}

/// The gate as a command runs it: the rules, then the second net over vectors computed ahead
/// for every text the command will assess (in batches on every core).
struct Assessor {
    gate: CrisisGate,
    net: Option<SemanticNet>,
    vectors: HashMap<String, Vec<f32>>,
    embedder: Option<Embedder>,
}

impl Assessor {
    async fn new(gate: CrisisGate, rules_only: bool) -> Result<Self> {
        if rules_only {
            return Ok(Assessor {
                gate,
                net: None,
                vectors: HashMap::new(),
                embedder: None,
            });
        }
        let embedder = Embedder::from_env()
            .await
            .context("configuring the embedder for the second net (--rules-only skips it)")?;
        let net = SemanticNet::build(&embedder)
            .await
            .context("building the second net")?;
        if net.is_none() {
            eprintln!(
                "the {} embedder has no notion of meaning: rules only",
                embedder.model()
            );
        }
        Ok(Assessor {
            gate,
            net,
            vectors: HashMap::new(),
            embedder: Some(embedder),
        })
    }

    /// Embeds every text the rules let through (the net judges only those).
    async fn prepare<'a>(&mut self, texts: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let (Some(_), Some(embedder)) = (&self.net, &self.embedder) else {
            return Ok(());
        };
        let mut todo: Vec<String> = texts
            .into_iter()
            .filter(|t| self.gate.assess(t).is_none())
            .map(|t| normalise(&message_text(t)))
            .filter(|t| !self.vectors.contains_key(t))
            .collect();
        todo.sort();
        todo.dedup();
        let refs: Vec<&str> = todo.iter().map(String::as_str).collect();
        let vectors = embedder.embed_all(TextKind::Query, &refs).await?;
        self.vectors.extend(todo.into_iter().zip(vectors));
        Ok(())
    }

    fn assess(&self, text: &str) -> Option<CrisisMatch> {
        self.gate.assess(text).or_else(|| {
            let net = self.net.as_ref()?;
            let v = self.vectors.get(&normalise(&message_text(text)))?;
            net.assess(text, v)
        })
    }
}

/// Runs one `amal-engine crisis` subcommand.
pub async fn run(cmd: CrisisCommand) -> Result<ExitCode> {
    let gate = CrisisGate::from_env().context("loading the crisis rules")?;
    match cmd {
        CrisisCommand::Check {
            text,
            safety_message: with_message,
            rules_only,
        } => {
            let human =
                HumanRequestDetector::builtin().context("loading the human-request rules")?;
            let mut gate = Assessor::new(gate, rules_only).await?;
            gate.prepare([text.as_str()]).await?;
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
        CrisisCommand::Eval {
            file,
            show_false,
            rules_only,
        } => {
            let cases = match &file {
                Some(p) => eval::load_cases(p)?,
                None => eval::parse_cases(SHIPPED_SET.0, SHIPPED_SET.1)?,
            };
            // The rules' speed; the net's cost is the model's (docs/benchmarks.md).
            let speed = eval::seconds_per_message(&gate, &cases);
            let mut gate = Assessor::new(gate, rules_only).await?;
            gate.prepare(cases.iter().map(|c| c.text.as_str())).await?;
            let report = eval::evaluate_with(|t| gate.assess(t), &cases);
            print!("{}", report.render(Some(speed), show_false));
            Ok(if report.misses.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CrisisCommand::BenchPublic {
            dir,
            show,
            rules_only,
        } => {
            let mut gate = Assessor::new(gate, rules_only).await?;
            println!("{PUBLIC_TABLE_HEADER}");
            // Rows are printed as each set is scored; the listings follow the whole table.
            let mut listings = String::new();
            let mut found = 0;
            for set in &PUBLIC_SETS {
                let Some(items) = set.load(&dir)? else {
                    println!("{}", set.absent_row(&dir));
                    continue;
                };
                gate.prepare(items.iter().map(|(t, _)| t.as_str())).await?;
                let score = set.score_items(items, |t| gate.assess(t));
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
        CrisisCommand::Net { files, dir } => {
            let embedder = Embedder::from_env()
                .await
                .context("configuring the embedder")?;
            let Some(net) = SemanticNet::build(&embedder).await? else {
                anyhow::bail!("the {} embedder has no notion of meaning", embedder.model());
            };
            net_grid(&net, &embedder, &gate, &files, &dir).await?;
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

/// The second net over a grid of settings: the bank judged by itself (the classifier by
/// five-fold cross-validation, the nearest neighbours leaving each exemplar out), then the
/// held-out sets (`seeds/crisis/eval.jsonl`, extra JSONL files, the public tweet sets under
/// `dir`), counting only what the rules let through, since the net judges only that.
async fn net_grid(
    net: &SemanticNet,
    embedder: &Embedder,
    gate: &CrisisGate,
    extra: &[PathBuf],
    dir: &std::path::Path,
) -> Result<()> {
    let folds = 5;
    let mut bank_scores = vec![None; net.bank().len()];
    for fold in 0..folds {
        let skip = |i: usize| i % folds == fold;
        let classifier = fit_bank(net.bank(), net.vectors(), Some(&skip));
        let cv = net.with_classifier(classifier);
        for (i, v) in net.vectors().iter().enumerate().filter(|(i, _)| skip(*i)) {
            bank_scores[i] = Some(cv.score_without(v, Some(i)));
        }
    }
    let mut sets: Vec<(String, Vec<(NetScore, bool)>)> = vec![(
        "bank (cross-validated)".into(),
        net.bank()
            .iter()
            .zip(bank_scores)
            .filter(|(e, _)| gate.assess(&e.text).is_none())
            .map(|(e, s)| (s.expect("every fold scored"), e.kind.is_some()))
            .collect(),
    )];
    let mut held: Vec<(String, Vec<(String, bool)>)> = vec![(
        SHIPPED_SET.0.to_string(),
        eval::parse_cases(SHIPPED_SET.0, SHIPPED_SET.1)?
            .into_iter()
            .map(|c| (c.text, c.crisis))
            .collect(),
    )];
    for path in extra {
        held.push((
            path.display().to_string(),
            eval::load_cases(path)?
                .into_iter()
                .map(|c| (c.text, c.crisis))
                .collect(),
        ));
    }
    for set in &PUBLIC_SETS {
        if let Some(items) = set.load(dir)? {
            held.push((set.name.to_string(), items));
        }
    }
    for (name, items) in held {
        let todo: Vec<(String, bool)> = items
            .into_iter()
            .filter(|(t, _)| gate.assess(t).is_none())
            .map(|(t, y)| (normalise(&message_text(&t)), y))
            .collect();
        let refs: Vec<&str> = todo.iter().map(|(t, _)| t.as_str()).collect();
        let vectors = embedder.embed_all(TextKind::Query, &refs).await?;
        sets.push((
            name,
            todo.iter()
                .zip(&vectors)
                .map(|((_, y), v)| (net.score(v), *y))
                .collect(),
        ));
    }
    println!(
        "{} exemplars ({}); counts are of messages the rules let through",
        net.bank().len(),
        net.model()
    );
    print!("| threshold | margin | probability |");
    for (name, _) in &sets {
        print!(" {name}: crisis caught, look-alikes flagged |");
    }
    println!();
    println!("|---:|---:|---:|{}", "---|".repeat(sets.len()));
    for threshold in [0.80f32, 0.85, 0.88] {
        for margin in [-1.0f32, 0.0, 0.01] {
            for probability in [0.5f32, 0.7, 0.8, 0.9, 0.95, 0.98] {
                let settings = NetSettings {
                    threshold,
                    margin,
                    probability,
                };
                let mark = if settings == SETTINGS {
                    " (shipped)"
                } else {
                    ""
                };
                print!("| {threshold:.2} | {margin:.2} | {probability:.2}{mark} |");
                for (_, scores) in &sets {
                    let crisis = scores.iter().filter(|(_, y)| *y).count();
                    let look = scores.len() - crisis;
                    let caught = scores
                        .iter()
                        .filter(|(s, y)| *y && SemanticNet::fires(s, &settings))
                        .count();
                    let flagged = scores
                        .iter()
                        .filter(|(s, y)| !*y && SemanticNet::fires(s, &settings))
                        .count();
                    print!(" {caught}/{crisis}, {flagged}/{look} |");
                }
                println!();
            }
        }
    }
    Ok(())
}
