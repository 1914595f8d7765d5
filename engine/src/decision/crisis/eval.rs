//! Crisis-gate evaluation: recall and false-escalation rate per language and variety on a JSONL
//! set of `{"text": ..., "lang": ..., "variety": ..., "crisis": ..., "kind": ...}` lines (the
//! format of `seeds/crisis/eval.jsonl`, described in `seeds/crisis/README.md`), and a benchmark
//! on the public crisis-tweet sets.
//!
//! Recall must stay at 100%: a missed crisis is far worse than a false escalation, so the report
//! lists every miss, and the false escalations on request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use super::{CrisisGate, CrisisMatch};

/// The team's shipped evaluation set (name, text), compiled in so that an evaluation needs no
/// checkout.
pub const SHIPPED_SET: (&str, &str) = (
    "seeds/crisis/eval.jsonl",
    include_str!("../../../../seeds/crisis/eval.jsonl"),
);

/// Why an evaluation or benchmark set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an evaluation set is not a valid case.
    #[error("{name}:{line}: invalid line")]
    BadLine {
        /// The set's path or name.
        name: String,
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A benchmark CSV file has not even a header.
    #[error("{path}: empty file")]
    Empty {
        /// The file.
        path: String,
    },
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// One line of an evaluation set.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalCase {
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

/// Parses a JSONL evaluation set (blank lines ignored); `name` labels errors.
pub fn parse_cases(name: &str, text: &str) -> Result<Vec<EvalCase>, EvalError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| EvalError::BadLine {
                name: name.to_string(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Reads a JSONL evaluation set; a malformed line is an error naming the line.
pub fn load_cases(path: &Path) -> Result<Vec<EvalCase>, EvalError> {
    parse_cases(&path.display().to_string(), &read(path)?)
}

/// Outcomes for a group of cases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Crisis messages.
    pub crisis: usize,
    /// Crisis messages the gate caught.
    pub caught: usize,
    /// Look-alikes (messages on which the gate must not fire).
    pub lookalike: usize,
    /// Look-alikes the gate escalated.
    pub escalated: usize,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.crisis += o.crisis;
        self.caught += o.caught;
        self.lookalike += o.lookalike;
        self.escalated += o.escalated;
    }

    /// Share of crisis messages caught; `None` without crisis messages.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.caught, self.crisis)
    }

    /// Share of look-alikes escalated; `None` without look-alikes.
    pub fn false_escalation_rate(&self) -> Option<f64> {
        ratio(self.escalated, self.lookalike)
    }
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

/// The evaluation's outcome.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// Per (language, variety).
    pub per_variety: BTreeMap<(String, String), Counts>,
    /// Per language.
    pub per_lang: BTreeMap<String, Counts>,
    /// All cases.
    pub overall: Counts,
    /// Number of cases.
    pub messages: usize,
    /// Crisis messages the gate did not catch, in set order.
    pub misses: Vec<EvalCase>,
    /// Look-alikes the gate escalated, with what fired, in set order.
    pub false_escalations: Vec<(EvalCase, CrisisMatch)>,
}

/// Runs the gate's rules over every case.
pub fn evaluate(gate: &CrisisGate, cases: &[EvalCase]) -> EvalReport {
    evaluate_with(|t| gate.assess(t), cases)
}

/// Runs an assessment (the rules, or the rules and the second net) over every case.
pub fn evaluate_with(
    assess: impl Fn(&str) -> Option<CrisisMatch>,
    cases: &[EvalCase],
) -> EvalReport {
    let mut report = EvalReport {
        messages: cases.len(),
        ..EvalReport::default()
    };
    for case in cases {
        let hit = assess(&case.text);
        let c = report
            .per_variety
            .entry((case.lang.clone(), case.variety.clone()))
            .or_default();
        if case.crisis {
            c.crisis += 1;
            if hit.is_some() {
                c.caught += 1;
            } else {
                report.misses.push(case.clone());
            }
        } else {
            c.lookalike += 1;
            if let Some(h) = hit {
                c.escalated += 1;
                report.false_escalations.push((case.clone(), h));
            }
        }
    }
    for ((lang, _), c) in &report.per_variety {
        report.per_lang.entry(lang.clone()).or_default().add(*c);
        report.overall.add(*c);
    }
    report
}

/// The gate's mean time per message, in seconds, over the whole set run several times after a
/// warm-up pass (one pass of a few hundred messages is too short to time).
pub fn seconds_per_message(gate: &CrisisGate, cases: &[EvalCase]) -> f64 {
    for case in cases {
        std::hint::black_box(gate.assess(&case.text));
    }
    let rounds = (20_000 / cases.len().max(1)).max(1);
    let started = Instant::now();
    let mut fired = 0usize;
    for _ in 0..rounds {
        for case in cases {
            fired += usize::from(gate.assess(&case.text).is_some());
        }
    }
    std::hint::black_box(fired);
    started.elapsed().as_secs_f64() / (rounds * cases.len().max(1)) as f64
}

impl EvalReport {
    /// The report as text: a Markdown table per variety, per language and overall, the speed
    /// when measured (see [`seconds_per_message`]), every miss, and with `show_false` every false
    /// escalation with the rule that fired.
    pub fn render(&self, seconds_per_message: Option<f64>, show_false: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| lang | variety | crisis | caught | recall | look-alikes | escalated | false-escalation rate |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        // `cells` is the row's first two cells without their outer bars; `em` marks up the rates
        // of the overall row, the figures that matter.
        let row = |out: &mut String, cells: &str, c: &Counts, em: &str| {
            let _ = writeln!(
                out,
                "| {cells} | {} | {} | {em}{}{em} | {} | {} | {em}{}{em} |",
                c.crisis,
                c.caught,
                pct(c.caught, c.crisis),
                c.lookalike,
                c.escalated,
                pct(c.escalated, c.lookalike)
            );
        };
        for ((lang, variety), c) in &self.per_variety {
            row(&mut out, &format!("{lang} | {variety}"), c, "");
        }
        for (lang, c) in &self.per_lang {
            row(&mut out, &format!("**{lang} (all)** |"), c, "");
        }
        row(&mut out, "**all** |", &self.overall, "**");
        if let Some(seconds) = seconds_per_message {
            let _ = writeln!(
                out,
                "\n{} messages, {:.1} µs per message ({:.0} messages/s, one thread)",
                self.messages,
                seconds * 1e6,
                1.0 / seconds
            );
        }
        if self.misses.is_empty() {
            let _ = writeln!(out, "\nno missed crisis");
        } else {
            let _ = writeln!(out, "\nMISSED CRISES ({}):", self.misses.len());
            for m in &self.misses {
                let _ = writeln!(out, "  [{} {} {}] {}", m.lang, m.variety, m.kind, m.text);
            }
        }
        if show_false && !self.false_escalations.is_empty() {
            let _ = writeln!(
                out,
                "\nFALSE ESCALATIONS ({}):",
                self.false_escalations.len()
            );
            for (m, h) in &self.false_escalations {
                let _ = writeln!(
                    out,
                    "  [{} {} {}] {} -> {} ({:?})",
                    m.lang, m.variety, m.kind, m.text, h.rule_id, h.matched
                );
            }
        }
        out
    }
}

/// A public crisis-message set (noisy labels): a CSV file with the text in its first column and
/// the label in its second.
#[derive(Debug)]
pub struct PublicSet {
    /// The set's name.
    pub name: &'static str,
    /// The CSV file, relative to the benchmark directory.
    pub file: &'static str,
    positive: fn(&str) -> bool,
    /// Whether the text suffers from UTF-8 read as Windows-1252.
    fix_mojibake: bool,
}

/// The public sets, in table order.
pub const PUBLIC_SETS: [PublicSet; 2] = [
    PublicSet {
        name: "crisis-tweets-en",
        file: "crisis-tweets-en/Suicide_Ideation_Dataset_Twitter-based.csv",
        positive: |l| l.trim() == "Potential Suicide post",
        fix_mojibake: true,
    },
    PublicSet {
        name: "crisis-tweets-ar",
        file: "crisis-tweets-ar/balanced_dataset.csv",
        positive: |l| l.trim() == "1",
        fix_mojibake: false,
    },
];

/// The header of the public benchmark's Markdown table (two lines, no final newline).
pub const PUBLIC_TABLE_HEADER: &str = "| set | messages | positives | precision | recall | F1 | false-escalation rate | messages/s |\n|---|---:|---:|---:|---:|---:|---:|---:|";

/// The gate's outcome on one public set.
#[derive(Debug, Clone)]
pub struct PublicScore {
    /// The set's name.
    pub name: &'static str,
    /// Messages scored.
    pub messages: usize,
    /// Positives the gate fired on.
    pub true_positives: usize,
    /// Negatives the gate fired on.
    pub false_positives: usize,
    /// Positives the gate let through.
    pub false_negatives: usize,
    /// Negatives the gate let through.
    pub true_negatives: usize,
    /// Time spent assessing the whole set.
    pub seconds: f64,
    /// Positives the gate let through, in file order.
    pub missed: Vec<String>,
    /// Negatives the gate fired on, with the rule that fired, in file order.
    pub escalated: Vec<(String, String)>,
}

impl PublicSet {
    /// The set's file under `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.file)
    }

    /// The table row of a set absent from `dir`.
    pub fn absent_row(&self, dir: &Path) -> String {
        format!(
            "| {} | (absent: {}) | | | | | | |",
            self.name,
            self.path(dir).display()
        )
    }

    /// Runs the gate's rules over the set under `dir`; `None` when its file is absent, since
    /// the public sets are downloaded separately.
    pub fn score(&self, gate: &CrisisGate, dir: &Path) -> Result<Option<PublicScore>, EvalError> {
        Ok(self
            .load(dir)?
            .map(|items| self.score_items(items, |t| gate.assess(t))))
    }

    /// The set's (message, positive) pairs under `dir`; `None` when its file is absent.
    pub fn load(&self, dir: &Path) -> Result<Option<Vec<(String, bool)>>, EvalError> {
        let path = self.path(dir);
        if !path.is_file() {
            return Ok(None);
        }
        let rows = parse_csv(&read(&path)?);
        let Some((_header, body)) = rows.split_first() else {
            return Err(EvalError::Empty {
                path: path.display().to_string(),
            });
        };
        Ok(Some(
            body.iter()
                .filter(|r| r.len() >= 2 && !r[0].trim().is_empty())
                .map(|r| {
                    let t = if self.fix_mojibake {
                        fix_mojibake(&r[0])
                    } else {
                        r[0].clone()
                    };
                    (t, (self.positive)(&r[1]))
                })
                .collect(),
        ))
    }

    /// Scores an assessment over the set's pairs ([`Self::load`]).
    pub fn score_items(
        &self,
        items: Vec<(String, bool)>,
        assess: impl Fn(&str) -> Option<CrisisMatch>,
    ) -> PublicScore {
        // Only the verdicts are timed; the rules of false escalations are looked up afterwards.
        let started = Instant::now();
        let predictions: Vec<bool> = items.iter().map(|(t, _)| assess(t).is_some()).collect();
        let seconds = started.elapsed().as_secs_f64();
        let mut score = PublicScore {
            name: self.name,
            messages: items.len(),
            true_positives: 0,
            false_positives: 0,
            false_negatives: 0,
            true_negatives: 0,
            seconds,
            missed: Vec::new(),
            escalated: Vec::new(),
        };
        for ((text, gold), pred) in items.into_iter().zip(predictions) {
            match (gold, pred) {
                (true, true) => score.true_positives += 1,
                (false, true) => {
                    score.false_positives += 1;
                    let rule = assess(&text).map(|m| m.rule_id).unwrap_or_default();
                    score.escalated.push((text, rule));
                }
                (true, false) => {
                    score.false_negatives += 1;
                    score.missed.push(text);
                }
                (false, false) => score.true_negatives += 1,
            }
        }
        score
    }
}

impl PublicScore {
    /// Share of escalations that were positives.
    pub fn precision(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_positives).max(1) as f64
    }

    /// Share of positives escalated.
    pub fn recall(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_negatives).max(1) as f64
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }

    /// Share of negatives escalated.
    pub fn false_escalation_rate(&self) -> f64 {
        self.false_positives as f64 / (self.false_positives + self.true_negatives).max(1) as f64
    }

    /// The set's row of the table under [`PUBLIC_TABLE_HEADER`].
    pub fn table_row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.1}% | {:.1}% | {:.3} | {:.1}% | {:.0} |",
            self.name,
            self.messages,
            self.true_positives + self.false_negatives,
            100.0 * self.precision(),
            100.0 * self.recall(),
            self.f1(),
            100.0 * self.false_escalation_rate(),
            self.messages as f64 / self.seconds.max(1e-9)
        )
    }

    /// Up to `show` missed positives and `show` escalated negatives (with the rule that fired),
    /// one message a line.
    pub fn listing(&self, show: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n{}: missed positives (first {show}):", self.name);
        for t in self.missed.iter().take(show) {
            let _ = writeln!(out, "  - {}", t.replace('\n', " "));
        }
        let _ = writeln!(out, "{}: escalated negatives (first {show}):", self.name);
        for (t, rule) in self.escalated.iter().take(show) {
            let _ = writeln!(out, "  - {} -> {rule}", t.replace('\n', " "));
        }
        out
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

    #[test]
    fn shipped_set_parses_and_report_adds_up() {
        let cases = parse_cases(SHIPPED_SET.0, SHIPPED_SET.1).unwrap();
        let report = evaluate(&CrisisGate::builtin().unwrap(), &cases);
        assert_eq!(report.messages, cases.len());
        let o = report.overall;
        assert_eq!(o.crisis + o.lookalike, cases.len());
        assert_eq!(o.crisis - o.caught, report.misses.len());
        assert_eq!(o.escalated, report.false_escalations.len());
    }

    #[test]
    fn bad_line_names_the_set_and_line() {
        let e = parse_cases("x.jsonl", "\n{\"text\":\"a\"}\n").unwrap_err();
        assert!(e.to_string().starts_with("x.jsonl:2: invalid line"), "{e}");
    }
}
