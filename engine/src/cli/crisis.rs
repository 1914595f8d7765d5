//! `amal-engine crisis ...`: check, evaluate and benchmark the crisis gate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Deserialize;

use amal_engine::decision::crisis::{CrisisGate, CrisisNumbers, safety_message};
use amal_engine::decision::human_request::HumanRequestDetector;
use amal_engine::decision::normalize::guess_message_language;

/// The team's shipped evaluation set, compiled in so that `crisis eval` works anywhere.
const SHIPPED_EVAL: (&str, &str) = (
    "seeds/crisis/eval.jsonl",
    include_str!("../../../seeds/crisis/eval.jsonl"),
);

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
            let (name, text) = match &file {
                Some(p) => (
                    p.display().to_string(),
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => (SHIPPED_EVAL.0.to_string(), SHIPPED_EVAL.1.to_string()),
            };
            let set = parse_eval(&name, &text)?;
            let report = evaluate(&gate, &set, show_false);
            print!("{}", report.text);
            Ok(if report.missed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CrisisCommand::BenchPublic { dir, show } => {
            bench_public(&gate, &dir, show)?;
            Ok(ExitCode::SUCCESS)
        }
        CrisisCommand::Rules => {
            let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
            for r in gate.rules().rules() {
                *per.entry((r.file.clone(), r.kind.clone())).or_default() += 1;
            }
            println!("{:<36} {:<20} {:>5}", "file", "kind", "rules");
            for ((file, kind), n) in &per {
                println!("{file:<36} {kind:<20} {n:>5}");
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

/// One line of an evaluation set.
#[derive(Debug, Deserialize)]
pub struct EvalItem {
    /// The message.
    pub text: String,
    /// `ar`, `fr` or `en`.
    pub lang: String,
    /// `msa`, `darija`, `arabizi`, `fr`, `en` or `mixed`.
    pub variety: String,
    /// Whether the gate must fire.
    pub crisis: bool,
    /// The sub-category.
    #[serde(default)]
    pub kind: String,
}

/// Parses a JSONL evaluation set (blank lines ignored).
pub fn parse_eval(name: &str, text: &str) -> Result<Vec<EvalItem>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{name}:{}: invalid line", i + 1))
        })
        .collect()
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    crisis: usize,
    caught: usize,
    lookalike: usize,
    escalated: usize,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.crisis += o.crisis;
        self.caught += o.caught;
        self.lookalike += o.lookalike;
        self.escalated += o.escalated;
    }
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

/// The printed report and the number of missed crises.
pub struct EvalReport {
    /// The report as text (a Markdown table, then the misses).
    pub text: String,
    /// Crisis messages the gate did not catch.
    pub missed: usize,
}

/// Runs the gate over a set and formats recall and false escalations per language and variety.
pub fn evaluate(gate: &CrisisGate, set: &[EvalItem], show_false: bool) -> EvalReport {
    let mut rows: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut falses = Vec::new();
    for item in set {
        let hit = gate.assess(&item.text);
        let c = rows
            .entry((item.lang.clone(), item.variety.clone()))
            .or_default();
        if item.crisis {
            c.crisis += 1;
            if hit.is_some() {
                c.caught += 1;
            } else {
                misses.push(item);
            }
        } else {
            c.lookalike += 1;
            if let Some(h) = hit {
                c.escalated += 1;
                falses.push((item, h));
            }
        }
    }
    // Speed: the whole set, several times, after one warm-up pass.
    let rounds = (20_000 / set.len().max(1)).max(1);
    let started = Instant::now();
    let mut fired = 0usize;
    for _ in 0..rounds {
        for item in set {
            fired += usize::from(gate.assess(&item.text).is_some());
        }
    }
    let per_msg = started.elapsed().as_secs_f64() / (rounds * set.len().max(1)) as f64;
    std::hint::black_box(fired);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| lang | variety | crisis | caught | recall | look-alikes | escalated | false-escalation rate |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    let mut per_lang: BTreeMap<String, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for ((lang, variety), c) in &rows {
        let _ = writeln!(
            out,
            "| {lang} | {variety} | {} | {} | {} | {} | {} | {} |",
            c.crisis,
            c.caught,
            pct(c.caught, c.crisis),
            c.lookalike,
            c.escalated,
            pct(c.escalated, c.lookalike)
        );
        per_lang.entry(lang.clone()).or_default().add(*c);
        total.add(*c);
    }
    for (lang, c) in &per_lang {
        let _ = writeln!(
            out,
            "| **{lang} (all)** | | {} | {} | {} | {} | {} | {} |",
            c.crisis,
            c.caught,
            pct(c.caught, c.crisis),
            c.lookalike,
            c.escalated,
            pct(c.escalated, c.lookalike)
        );
    }
    let _ = writeln!(
        out,
        "| **all** | | {} | {} | **{}** | {} | {} | **{}** |",
        total.crisis,
        total.caught,
        pct(total.caught, total.crisis),
        total.lookalike,
        total.escalated,
        pct(total.escalated, total.lookalike)
    );
    let _ = writeln!(
        out,
        "\n{} messages, {:.1} µs per message ({:.0} messages/s, one thread)",
        set.len(),
        per_msg * 1e6,
        1.0 / per_msg
    );
    if misses.is_empty() {
        let _ = writeln!(out, "\nno missed crisis");
    } else {
        let _ = writeln!(out, "\nMISSED CRISES ({}):", misses.len());
        for m in &misses {
            let _ = writeln!(out, "  [{} {} {}] {}", m.lang, m.variety, m.kind, m.text);
        }
    }
    if show_false && !falses.is_empty() {
        let _ = writeln!(out, "\nFALSE ESCALATIONS ({}):", falses.len());
        for (m, h) in &falses {
            let _ = writeln!(
                out,
                "  [{} {} {}] {} -> {} ({:?})",
                m.lang, m.variety, m.kind, m.text, h.rule_id, h.matched
            );
        }
    }
    EvalReport {
        text: out,
        missed: misses.len(),
    }
}

/// Parses CSV (RFC 4180: quoted fields, doubled quotes, newlines inside quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Repairs UTF-8 that was decoded as Windows-1252 and re-encoded ("iâ€™m" → "i’m"); text that
/// is not such mojibake is returned unchanged.
fn fix_mojibake(s: &str) -> String {
    const CP1252: [(char, u8); 27] = [
        ('€', 0x80),
        ('‚', 0x82),
        ('ƒ', 0x83),
        ('„', 0x84),
        ('…', 0x85),
        ('†', 0x86),
        ('‡', 0x87),
        ('ˆ', 0x88),
        ('‰', 0x89),
        ('Š', 0x8A),
        ('‹', 0x8B),
        ('Œ', 0x8C),
        ('Ž', 0x8E),
        ('‘', 0x91),
        ('’', 0x92),
        ('“', 0x93),
        ('”', 0x94),
        ('•', 0x95),
        ('–', 0x96),
        ('—', 0x97),
        ('˜', 0x98),
        ('™', 0x99),
        ('š', 0x9A),
        ('›', 0x9B),
        ('œ', 0x9C),
        ('ž', 0x9E),
        ('Ÿ', 0x9F),
    ];
    if s.is_ascii() {
        return s.to_string();
    }
    let mut bytes = Vec::with_capacity(s.len());
    for c in s.chars() {
        let b = match c as u32 {
            0..=0x7F | 0xA0..=0xFF => c as u32 as u8,
            // Undefined in Windows-1252; some decoders pass them through.
            0x81 | 0x8D | 0x8F | 0x90 | 0x9D => c as u32 as u8,
            _ => match CP1252.iter().find(|(k, _)| *k == c) {
                Some((_, b)) => *b,
                None => return s.to_string(),
            },
        };
        bytes.push(b);
    }
    String::from_utf8(bytes).unwrap_or_else(|_| s.to_string())
}

/// One public set: (name, file, text column, label column, is-positive).
struct PublicSet {
    name: &'static str,
    file: &'static str,
    positive: fn(&str) -> bool,
    fix: bool,
}

const PUBLIC_SETS: [PublicSet; 2] = [
    PublicSet {
        name: "crisis-tweets-en",
        file: "crisis-tweets-en/Suicide_Ideation_Dataset_Twitter-based.csv",
        positive: |l| l.trim() == "Potential Suicide post",
        fix: true,
    },
    PublicSet {
        name: "crisis-tweets-ar",
        file: "crisis-tweets-ar/balanced_dataset.csv",
        positive: |l| l.trim() == "1",
        fix: false,
    },
];

fn bench_public(gate: &CrisisGate, dir: &Path, show: usize) -> Result<()> {
    let mut listings = String::new();
    println!(
        "| set | messages | positives | precision | recall | F1 | false-escalation rate | messages/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut found = 0;
    for set in &PUBLIC_SETS {
        let path = dir.join(set.file);
        if !path.is_file() {
            println!(
                "| {} | (absent: {}) | | | | | | |",
                set.name,
                path.display()
            );
            continue;
        }
        found += 1;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let rows = parse_csv(&text);
        let Some((_header, body)) = rows.split_first() else {
            bail!("{}: empty file", path.display());
        };
        let items: Vec<(String, bool)> = body
            .iter()
            .filter(|r| r.len() >= 2 && !r[0].trim().is_empty())
            .map(|r| {
                let t = if set.fix {
                    fix_mojibake(&r[0])
                } else {
                    r[0].clone()
                };
                (t, (set.positive)(&r[1]))
            })
            .collect();
        let started = Instant::now();
        let predictions: Vec<bool> = items
            .iter()
            .map(|(t, _)| gate.assess(t).is_some())
            .collect();
        let secs = started.elapsed().as_secs_f64();
        let (mut tp, mut fp, mut fneg, mut tn) = (0usize, 0usize, 0usize, 0usize);
        let (mut missed, mut escalated) = (Vec::new(), Vec::new());
        for ((text, gold), pred) in items.iter().zip(&predictions) {
            match (gold, pred) {
                (true, true) => tp += 1,
                (false, true) => {
                    fp += 1;
                    escalated.push(text);
                }
                (true, false) => {
                    fneg += 1;
                    missed.push(text);
                }
                (false, false) => tn += 1,
            }
        }
        if show > 0 {
            let _ = writeln!(listings, "\n{}: missed positives (first {show}):", set.name);
            for t in missed.iter().take(show) {
                let _ = writeln!(listings, "  - {}", t.replace('\n', " "));
            }
            let _ = writeln!(
                listings,
                "{}: escalated negatives (first {show}):",
                set.name
            );
            for t in escalated.iter().take(show) {
                let rule = gate.assess(t).map(|m| m.rule_id).unwrap_or_default();
                let _ = writeln!(listings, "  - {} -> {rule}", t.replace('\n', " "));
            }
        }
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        let recall = tp as f64 / (tp + fneg).max(1) as f64;
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        println!(
            "| {} | {} | {} | {:.1}% | {:.1}% | {:.3} | {:.1}% | {:.0} |",
            set.name,
            items.len(),
            tp + fneg,
            100.0 * precision,
            100.0 * recall,
            f1,
            100.0 * fp as f64 / (fp + tn).max(1) as f64,
            items.len() as f64 / secs.max(1e-9)
        );
    }
    if found == 0 {
        println!("\nno public set found under {}: skipped", dir.display());
    }
    print!("{listings}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_mojibake() {
        let rows = parse_csv("a,b\n\"x, \"\"y\"\"\nz\",1\n");
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, \"y\"\nz", "1"]]);
        assert_eq!(fix_mojibake("iâ€™m"), "i’m");
        assert_eq!(fix_mojibake("café"), "café");
    }
}
