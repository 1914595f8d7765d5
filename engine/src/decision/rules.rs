//! Clinician-readable rule files and their small pattern language, shared by the crisis gate and
//! the human-request detector.
//!
//! # Rule files
//!
//! A rule file is TOML:
//!
//! ```toml
//! language = "fr"                       # ar, fr or en: the fallback language of a match
//!
//! [sets]                                # optional word sets, usable as $name in this file
//! mourir = ["mourir", "crever", "disparaitre"]
//!
//! [[rule]]
//! id = "fr.suicidal_ideation.envie_de_mourir"   # <prefix>.<kind>.<name>, stable, unique
//! kind = "suicidal_ideation"
//! description = "Dit vouloir mourir ou ne plus vivre."
//! patterns = ["je veux * $mourir", "envie de $mourir"]
//! unless = ["pas @"]                    # optional: figurative or negated contexts
//! examples = ["je veux vraiment mourir"]   # must fire this rule (checked by the tests)
//! non_examples = ["je ne veux pas mourir"] # must not fire the gate (checked by the tests)
//! ```
//!
//! Optional fields:
//! - `unless`: the match does not count when one of these matches in the same sentence;
//! - `unless_within`: ... when one of these occurs among the matched words themselves (a negation
//!   that fell into a gap: `je ne veux pas mourir` for the pattern `je * veux * mourir`);
//! - `unless_anywhere`: ... when one of these matches anywhere in the message (use sparingly);
//! - `requires`: every one of these must also match somewhere in the message;
//! - `non_examples`.
//!
//! A file of sets only (`[sets]` and no rules) defines sets visible to every file.
//!
//! # Patterns
//!
//! Patterns are compared with words after [`normalize`](super::normalize) folding, so accents,
//! hamzas, diacritics, case and elongations do not matter. A pattern is a sequence of:
//!
//! | syntax | matches |
//! |---|---|
//! | `mourir` | the word `mourir` |
//! | `suicid*` | a word starting with `suicid` |
//! | `*موت` | a word ending with `موت` |
//! | `*موت*` | a word containing `موت` |
//! | `(mourir\|crever\|en finir)` | one of the alternatives (each may be several words) |
//! | `(mes\|)`, `[mes]`, `mes?` or `(le\|la)?` | optional words |
//! | `_` | any one word |
//! | `*` | a gap of 0 to 3 words |
//! | `**` | a gap of 0 to 8 words |
//! | `#` | a number written in digits (`20`, `٢٠`) |
//! | `$mourir` | one of the words or phrases of the set `mourir` |
//! | `@` | (only in `unless`) the words the rule matched |
//!
//! A pattern never matches across a sentence end (`. ! ? ؟ ;` or a line break). An Arabic word
//! starting with the conjunction `و`/`ف` also matches without it, so `نموت` matches `ونموت`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use crate::lang::normalize::{Lang, Normalized, Script, Token, fold_words, normalize};

/// Largest number of words a `*` gap may skip.
pub const SHORT_GAP: u8 = 3;
/// Largest number of words a `**` gap may skip.
pub const LONG_GAP: u8 = 8;

/// An error in a rule file, naming the file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Io {
        /// The file's path.
        file: String,
        /// The underlying error.
        message: String,
    },
    /// The file is not valid TOML or has unknown or missing fields.
    #[error("{file}: invalid rule file: {message}")]
    Toml {
        /// The file's path.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A rule has a kind the detector does not know.
    #[error("{file}: rule {id}: unknown kind {kind:?} (expected one of: {expected})")]
    UnknownKind {
        /// The file's path.
        file: String,
        /// The rule's id.
        id: String,
        /// The kind found.
        kind: String,
        /// The known kinds.
        expected: String,
    },
    /// Two rules share an id.
    #[error("{file}: rule {id}: duplicate id (already defined in {first_file})")]
    DuplicateId {
        /// The file of the second definition.
        file: String,
        /// The id.
        id: String,
        /// The file of the first definition.
        first_file: String,
    },
    /// A rule is invalid (bad id, empty or malformed pattern, no example, ...).
    #[error("{file}: rule {id}: {message}")]
    Rule {
        /// The file's path.
        file: String,
        /// The rule's id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// A word set is invalid.
    #[error("{file}: set {name}: {message}")]
    Set {
        /// The file's path.
        file: String,
        /// The set's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The text of one rule file and the name used in error messages.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// A path or name for error messages (e.g. `engine/src/decision/crisis/rules/fr.toml`).
    pub name: String,
    /// The file's TOML text.
    pub text: String,
}

impl RuleSource {
    /// A source from a name and its text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        RuleSource {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Every `*.toml` file of a directory, sorted by name.
    pub fn read_dir(dir: &Path) -> Result<Vec<RuleSource>, RuleError> {
        let io = |e: std::io::Error| RuleError::Io {
            file: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).map_err(|e| RuleError::Io {
                    file: p.display().to_string(),
                    message: e.to_string(),
                })?;
                Ok(RuleSource::new(p.display().to_string(), text))
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    language: Option<String>,
    #[serde(default)]
    sets: HashMap<String, Vec<String>>,
    #[serde(default)]
    rule: Vec<RuleToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    id: String,
    kind: String,
    description: String,
    patterns: Vec<String>,
    #[serde(default)]
    unless: Vec<String>,
    #[serde(default)]
    unless_within: Vec<String>,
    #[serde(default)]
    unless_anywhere: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    non_examples: Vec<String>,
}

/// How one pattern word compares with a message word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WordPat {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
}

impl WordPat {
    /// The string the prefilter looks for: the message's words are listed between spaces, so an
    /// exact word is sought with a space on both sides, a prefix with one before it, a suffix
    /// with one after it.
    fn anchor(&self) -> String {
        match self {
            WordPat::Exact(s) => format!(" {s} "),
            WordPat::Prefix(s) => format!(" {s}"),
            WordPat::Suffix(s) => format!("{s} "),
            WordPat::Contains(s) => s.clone(),
        }
    }

    #[inline]
    fn test(&self, w: &str) -> bool {
        match self {
            WordPat::Exact(s) => w == s,
            WordPat::Prefix(s) => w.starts_with(s.as_str()),
            WordPat::Suffix(s) => w.ends_with(s.as_str()),
            WordPat::Contains(s) => w.contains(s.as_str()),
        }
    }

    #[inline]
    fn matches(&self, t: &Token) -> bool {
        t.any_form(|w| self.test(w))
    }
}

#[derive(Debug, Clone)]
enum Node {
    Word(WordPat),
    Alt(Alt),
    Gap(u8),
    Number,
    Any,
    At,
}

/// Alternatives, indexed by their first word: most alternatives start with an exact word, and
/// a set of a hundred spellings then costs one hash lookup per message word instead of a hundred
/// comparisons.
#[derive(Debug, Clone)]
struct Alt {
    alts: Vec<Vec<Node>>,
    /// Exact first word → alternatives starting with it.
    by_first: FxMap<String, Vec<u32>>,
    /// Alternatives that start otherwise (a wildcard word, a group, a gap, or nothing).
    others: Vec<u32>,
}

impl Alt {
    fn new(alts: Vec<Vec<Node>>) -> Alt {
        let mut by_first: FxMap<String, Vec<u32>> = FxMap::default();
        let mut others = Vec::new();
        for (i, a) in alts.iter().enumerate() {
            match a.first() {
                Some(Node::Word(WordPat::Exact(w))) => {
                    by_first.entry(w.clone()).or_default().push(i as u32)
                }
                _ => others.push(i as u32),
            }
        }
        Alt {
            alts,
            by_first,
            others,
        }
    }
}

/// A small, fast, non-cryptographic hasher (the Fx hash of rustc) for the word index: its keys
/// come from the rule files, not from users, so hash flooding is not a concern.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// A compiled pattern: the source text and its node sequence.
#[derive(Debug, Clone)]
struct Pattern {
    source: String,
    nodes: Vec<Node>,
    /// Index among all patterns of the set (main, `unless`, `requires`), for the prefilter.
    id: u32,
    /// How many words before its anchor word a match may start (see `find_normalized`).
    lead: u32,
}

/// One rule as loaded from a file.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, `<prefix>.<kind>.<name>`.
    pub id: String,
    /// The rule's kind (one of the detector's kinds).
    pub kind: String,
    /// What the rule detects, in plain words.
    pub description: String,
    /// The file's language: the fallback language hint of a match.
    pub language: Lang,
    /// The file the rule comes from.
    pub file: String,
    /// Messages that must fire this rule.
    pub examples: Vec<String>,
    /// Messages that must not fire the detector.
    pub non_examples: Vec<String>,
    patterns: Vec<Pattern>,
    unless: Vec<Pattern>,
    unless_within: Vec<Pattern>,
    unless_anywhere: Vec<Pattern>,
    requires: Vec<Pattern>,
}

impl Rule {
    /// The rule's pattern sources, as written in the file.
    pub fn pattern_sources(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.source.as_str())
    }
}

/// A rule that fired on a message.
#[derive(Debug, Clone, Copy)]
pub struct RuleHit<'a> {
    /// The rule.
    pub rule: &'a Rule,
    /// Byte range of the matched words in the original message.
    pub start: usize,
    /// End of that byte range (exclusive).
    pub end: usize,
}

/// A compiled set of rules with a literal prefilter.
pub struct RuleSet {
    rules: Vec<Rule>,
    /// For every pattern id: the index of the rule whose main pattern it is (`None` for
    /// `unless` and `requires` patterns).
    pattern_owner: Vec<Option<u32>>,
    /// Patterns with no required word (only possible in `unless` and `requires`): always
    /// evaluated.
    unanchored: Vec<u32>,
    /// Anchors: literal strings one of which must occur in the folded message for a pattern to
    /// match; `anchor_patterns[i]` lists the patterns anchored by anchor `i`.
    prefilter: AhoCorasick,
    anchor_patterns: Vec<Vec<u32>>,
    main_patterns: usize,
}

/// Which patterns may match a message (their anchor occurs in it), as a bit set by pattern id.
struct Present<'a>(Option<&'a [u64]>);

impl Present<'_> {
    #[inline]
    fn has(&self, id: u32) -> bool {
        self.0
            .is_none_or(|bits| bits[id as usize / 64] & (1 << (id % 64)) != 0)
    }
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .field("patterns", &self.main_patterns)
            .field("anchors", &self.anchor_patterns.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing patterns

#[derive(Debug, Clone, PartialEq)]
enum Lex {
    Open,
    Close,
    OpenOpt,
    CloseOpt,
    Bar,
    Question,
    Word(String),
}

fn lex(src: &str) -> Vec<Lex> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Lex>| {
        if !word.is_empty() {
            out.push(Lex::Word(std::mem::take(word)));
        }
    };
    for c in src.chars() {
        let tok = match c {
            '(' => Some(Lex::Open),
            ')' => Some(Lex::Close),
            '[' => Some(Lex::OpenOpt),
            ']' => Some(Lex::CloseOpt),
            '|' => Some(Lex::Bar),
            '?' => Some(Lex::Question),
            c if c.is_whitespace() => None,
            c => {
                word.push(c);
                continue;
            }
        };
        flush(&mut word, &mut out);
        if let Some(t) = tok {
            out.push(t);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Resolved word sets: name → alternatives (already parsed).
type Sets = HashMap<String, Vec<Vec<Node>>>;

struct Parser<'a> {
    toks: Vec<Lex>,
    pos: usize,
    sets: &'a Sets,
    allow_at: bool,
}

impl Parser<'_> {
    fn parse_alts(&mut self) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = vec![self.parse_seq()?];
        while self.toks.get(self.pos) == Some(&Lex::Bar) {
            self.pos += 1;
            alts.push(self.parse_seq()?);
        }
        Ok(alts)
    }

    fn parse_seq(&mut self) -> Result<Vec<Node>, String> {
        let mut seq = Vec::new();
        while let Some(t) = self.toks.get(self.pos).cloned() {
            match t {
                Lex::Bar | Lex::Close | Lex::CloseOpt => break,
                Lex::Question => {
                    // `x?`: the item just parsed is optional.
                    self.pos += 1;
                    let Some(last) = seq.pop() else {
                        return Err("'?' must follow a word or a group".into());
                    };
                    if matches!(last, Node::Gap(_)) {
                        return Err("'?' cannot follow a gap".into());
                    }
                    seq.push(Node::Alt(Alt::new(vec![vec![last], Vec::new()])));
                }
                Lex::Open => {
                    self.pos += 1;
                    let alts = self.parse_alts()?;
                    if self.toks.get(self.pos) != Some(&Lex::Close) {
                        return Err("unbalanced '(': missing ')'".into());
                    }
                    self.pos += 1;
                    seq.push(Node::Alt(Alt::new(alts)));
                }
                Lex::OpenOpt => {
                    self.pos += 1;
                    let inner = self.parse_seq()?;
                    if self.toks.get(self.pos) != Some(&Lex::CloseOpt) {
                        return Err("unbalanced '[': missing ']'".into());
                    }
                    self.pos += 1;
                    if inner.is_empty() {
                        return Err("empty optional '[]'".into());
                    }
                    seq.push(Node::Alt(Alt::new(vec![inner, Vec::new()])));
                }
                Lex::Word(w) => {
                    self.pos += 1;
                    self.word(&w, &mut seq)?;
                }
            }
        }
        Ok(seq)
    }

    fn word(&mut self, w: &str, seq: &mut Vec<Node>) -> Result<(), String> {
        match w {
            "*" => seq.push(Node::Gap(SHORT_GAP)),
            "**" => seq.push(Node::Gap(LONG_GAP)),
            "#" => seq.push(Node::Number),
            "_" => seq.push(Node::Any),
            "@" if self.allow_at => seq.push(Node::At),
            "@" => {
                return Err("'@' (the matched words) is only allowed in `unless` patterns".into());
            }
            _ if w.starts_with('$') => {
                let name = &w[1..];
                let alts = self
                    .sets
                    .get(name)
                    .ok_or_else(|| format!("unknown set ${name}"))?;
                seq.push(Node::Alt(Alt::new(alts.clone())));
            }
            _ => {
                let lead = w.starts_with('*');
                let trail = w.ends_with('*') && w.len() > 1;
                let body = w.trim_matches('*');
                if body.contains('*') {
                    return Err(format!("'*' may only start or end a word: {w:?}"));
                }
                let folded = fold_words(body);
                if folded.is_empty() {
                    return Err(format!("{w:?} has no letters or digits"));
                }
                if (lead || trail) && folded.len() != 1 {
                    return Err(format!("a wildcard word must be one word: {w:?}"));
                }
                if lead || trail {
                    let s = folded.into_iter().next().unwrap_or_default();
                    seq.push(Node::Word(match (lead, trail) {
                        (true, true) => WordPat::Contains(s),
                        (true, false) => WordPat::Suffix(s),
                        _ => WordPat::Prefix(s),
                    }));
                } else {
                    seq.extend(folded.into_iter().map(|s| Node::Word(WordPat::Exact(s))));
                }
            }
        }
        Ok(())
    }
}

fn parse_pattern(src: &str, sets: &Sets, allow_at: bool) -> Result<Vec<Node>, String> {
    if src.trim().is_empty() {
        return Err("empty pattern".into());
    }
    let mut p = Parser {
        toks: lex(src),
        pos: 0,
        sets,
        allow_at,
    };
    let seq = p.parse_seq()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    if seq.is_empty() {
        return Err("empty pattern".into());
    }
    if matches!(seq.first(), Some(Node::Gap(_))) || matches!(seq.last(), Some(Node::Gap(_))) {
        return Err("a pattern may not start or end with a gap".into());
    }
    if !can_match_nonempty(&seq) {
        return Err("the pattern can match nothing (all parts optional)".into());
    }
    Ok(seq)
}

fn can_match_nonempty(seq: &[Node]) -> bool {
    seq.iter().any(|n| match n {
        Node::Word(_) | Node::At | Node::Number | Node::Any => true,
        Node::Alt(alt) => alt.alts.iter().all(|a| can_match_nonempty(a)),
        Node::Gap(_) => false,
    })
}

/// Literal strings of which at least one occurs in any message the sequence matches, chosen to
/// be as selective as possible; `None` if the sequence has no required word.
fn anchors(seq: &[Node]) -> Option<Vec<String>> {
    anchor_choice(seq).map(|(_, v)| v)
}

/// [`anchors`] and the index of the top-level node they come from.
fn anchor_choice(seq: &[Node]) -> Option<(usize, Vec<String>)> {
    let mut best: Option<(usize, Vec<String>)> = None;
    for (i, n) in seq.iter().enumerate() {
        let cand = match n {
            Node::Word(w) => Some(vec![w.anchor()]),
            Node::Alt(Alt { alts, .. }) => {
                let mut all = Vec::new();
                let mut ok = true;
                for a in alts {
                    match anchors(a) {
                        Some(v) => all.extend(v),
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                ok.then_some(all)
            }
            Node::Gap(_) | Node::At | Node::Number | Node::Any => None,
        };
        if let Some(c) = cand {
            let score = |v: &Vec<String>| {
                let min = v.iter().map(|s| s.chars().count()).min().unwrap_or(0);
                (min.min(6), usize::MAX - v.len())
            };
            if best.as_ref().is_none_or(|(_, b)| score(&c) > score(b)) {
                best = Some((i, c));
            }
        }
    }
    best
}

/// The largest number of words a sequence can match.
fn max_width(seq: &[Node]) -> usize {
    seq.iter()
        .map(|n| match n {
            Node::Word(_) | Node::Number | Node::Any => 1,
            Node::Gap(g) => *g as usize,
            Node::Alt(a) => a.alts.iter().map(|x| max_width(x)).max().unwrap_or(0),
            // Only in `unless` patterns, which are never windowed.
            Node::At => usize::MAX / 4,
        })
        .fold(0usize, |a, b| a.saturating_add(b))
}

fn resolve_sets(
    file: &str,
    raw: &HashMap<String, Vec<String>>,
    base: &Sets,
) -> Result<Sets, RuleError> {
    // Sets may refer to sets defined before them in the same table or to base sets; resolve in
    // dependency order by repeated passes, which also detects cycles and unknown names.
    let mut out = base.clone();
    let mut pending: Vec<&String> = raw.keys().collect();
    pending.sort();
    for name in &pending {
        if base.contains_key(name.as_str()) {
            return Err(RuleError::Set {
                file: file.to_string(),
                name: name.to_string(),
                message: "already defined in the shared sets file".into(),
            });
        }
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(RuleError::Set {
                file: file.to_string(),
                name: name.to_string(),
                message: "a set name may contain only letters, digits and '_'".into(),
            });
        }
    }
    while !pending.is_empty() {
        let mut progressed = false;
        let mut still = Vec::new();
        let mut last_err = String::new();
        for name in pending {
            let mut alts = Vec::new();
            let mut failed = None;
            for (i, src) in raw[name].iter().enumerate() {
                match parse_pattern(src, &out, false) {
                    Ok(seq) => alts.push(seq),
                    Err(e) => {
                        failed = Some(format!("item {} {src:?}: {e}", i + 1));
                        break;
                    }
                }
            }
            match failed {
                None if alts.is_empty() => {
                    return Err(RuleError::Set {
                        file: file.to_string(),
                        name: name.clone(),
                        message: "empty set".into(),
                    });
                }
                None => {
                    out.insert(name.clone(), alts);
                    progressed = true;
                }
                Some(e) => {
                    last_err = format!("{name}: {e}");
                    still.push(name);
                }
            }
        }
        if !progressed {
            let name = still.first().map(|s| s.to_string()).unwrap_or_default();
            return Err(RuleError::Set {
                file: file.to_string(),
                name,
                message: format!("cannot be resolved (unknown set or a cycle): {last_err}"),
            });
        }
        pending = still;
    }
    Ok(out)
}

fn valid_id(id: &str, kind: &str) -> Result<(), String> {
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    {
        return Err("an id may contain only a-z, 0-9, '_' and '.'".into());
    }
    let parts: Vec<&str> = id.split('.').collect();
    if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("an id has the form <prefix>.<kind>.<name>".into());
    }
    if parts[1] != kind {
        return Err(format!(
            "the id's second part {:?} must be the rule's kind {kind:?}",
            parts[1]
        ));
    }
    Ok(())
}

impl RuleSet {
    /// Loads and validates rule files.
    ///
    /// `shared_sets` are files whose `[sets]` are visible to every file (they must hold no
    /// rules); `files` are the rule files, in priority order; `kinds` are the kinds a rule may
    /// have. Errors name the file and the rule: unknown kind, duplicate id, empty or malformed
    /// pattern, unknown set, missing example.
    pub fn load(
        shared_sets: &[RuleSource],
        files: &[RuleSource],
        kinds: &[&str],
    ) -> Result<RuleSet, RuleError> {
        let mut base: Sets = HashMap::new();
        for src in shared_sets {
            let parsed: FileToml = toml::from_str(&src.text).map_err(|e| RuleError::Toml {
                file: src.name.clone(),
                message: e.to_string(),
            })?;
            if !parsed.rule.is_empty() {
                return Err(RuleError::Toml {
                    file: src.name.clone(),
                    message: "a shared sets file may not contain rules".into(),
                });
            }
            base = resolve_sets(&src.name, &parsed.sets, &base)?;
        }

        let mut rules = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for src in files {
            let parsed: FileToml = toml::from_str(&src.text).map_err(|e| RuleError::Toml {
                file: src.name.clone(),
                message: e.to_string(),
            })?;
            let language: Lang = parsed
                .language
                .as_deref()
                .ok_or_else(|| RuleError::Toml {
                    file: src.name.clone(),
                    message: "missing `language = \"ar\" | \"fr\" | \"en\"`".into(),
                })?
                .parse()
                .map_err(|e: crate::lang::UnknownLang| RuleError::Toml {
                    file: src.name.clone(),
                    message: e.to_string(),
                })?;
            let sets = resolve_sets(&src.name, &parsed.sets, &base)?;
            for r in parsed.rule {
                let err = |message: String| RuleError::Rule {
                    file: src.name.clone(),
                    id: r.id.clone(),
                    message,
                };
                if !kinds.contains(&r.kind.as_str()) {
                    return Err(RuleError::UnknownKind {
                        file: src.name.clone(),
                        id: r.id.clone(),
                        kind: r.kind.clone(),
                        expected: kinds.join(", "),
                    });
                }
                valid_id(&r.id, &r.kind).map_err(err)?;
                if let Some(first) = seen.get(&r.id) {
                    return Err(RuleError::DuplicateId {
                        file: src.name.clone(),
                        id: r.id.clone(),
                        first_file: first.clone(),
                    });
                }
                seen.insert(r.id.clone(), src.name.clone());
                if r.description.trim().is_empty() {
                    return Err(err("empty description".into()));
                }
                if r.patterns.is_empty() {
                    return Err(err("no patterns".into()));
                }
                if r.examples.is_empty() {
                    return Err(err(
                        "no examples (every rule needs at least one message it must match)".into(),
                    ));
                }
                let compile = |field: &str, list: &[String], allow_at: bool| {
                    list.iter()
                        .enumerate()
                        .map(|(i, s)| {
                            parse_pattern(s, &sets, allow_at)
                                .map(|nodes| Pattern {
                                    source: s.clone(),
                                    nodes,
                                    id: 0,
                                    lead: 0,
                                })
                                .map_err(|e| err(format!("{field} {} {s:?}: {e}", i + 1)))
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let patterns = compile("pattern", &r.patterns, false)?;
                for p in &patterns {
                    if anchors(&p.nodes).is_none() {
                        return Err(err(format!(
                            "pattern {:?} has no word that is always required",
                            p.source
                        )));
                    }
                }
                let unless = compile("unless", &r.unless, true)?;
                let unless_within = compile("unless_within", &r.unless_within, false)?;
                let unless_anywhere = compile("unless_anywhere", &r.unless_anywhere, false)?;
                let requires = compile("requires", &r.requires, false)?;
                for (field, list) in [("example", &r.examples), ("non_example", &r.non_examples)] {
                    if list.iter().any(|e| e.trim().is_empty()) {
                        return Err(err(format!("empty {field}")));
                    }
                }
                rules.push(Rule {
                    id: r.id,
                    kind: r.kind,
                    description: r.description.trim().to_string(),
                    language,
                    file: src.name.clone(),
                    examples: r.examples,
                    non_examples: r.non_examples,
                    patterns,
                    unless,
                    unless_within,
                    unless_anywhere,
                    requires,
                });
            }
        }
        Self::build(rules)
    }

    fn build(mut rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut pattern_owner = Vec::new();
        let mut unanchored = Vec::new();
        let mut anchor_index: HashMap<String, usize> = HashMap::new();
        let mut anchor_patterns: Vec<Vec<u32>> = Vec::new();
        let mut anchor_strings: Vec<String> = Vec::new();
        let mut main_patterns = 0;
        for (ri, rule) in rules.iter_mut().enumerate() {
            let lists = [
                (true, &mut rule.patterns),
                (false, &mut rule.unless),
                (false, &mut rule.unless_within),
                (false, &mut rule.unless_anywhere),
                (false, &mut rule.requires),
            ];
            for (main, list) in lists {
                for p in list.iter_mut() {
                    let id = pattern_owner.len() as u32;
                    p.id = id;
                    pattern_owner.push(main.then_some(ri as u32));
                    main_patterns += usize::from(main);
                    let Some((k, mut uniq)) = anchor_choice(&p.nodes) else {
                        unanchored.push(id);
                        continue;
                    };
                    // The anchor's word lies somewhere inside node k, so a match starts at most
                    // (width of the nodes before k) + (width of node k - 1) words before it.
                    let lead = max_width(&p.nodes[..k])
                        .saturating_add(max_width(&p.nodes[k..=k]).saturating_sub(1));
                    p.lead = u32::try_from(lead).unwrap_or(u32::MAX);
                    uniq.sort();
                    uniq.dedup();
                    for a in uniq {
                        let idx = *anchor_index.entry(a.clone()).or_insert_with(|| {
                            anchor_strings.push(a);
                            anchor_patterns.push(Vec::new());
                            anchor_patterns.len() - 1
                        });
                        anchor_patterns[idx].push(id);
                    }
                }
            }
        }
        let prefilter = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&anchor_strings)
            .map_err(|e| RuleError::Toml {
                file: "(all rule files)".into(),
                message: format!("cannot build the literal prefilter: {e}"),
            })?;
        Ok(RuleSet {
            rules,
            pattern_owner,
            unanchored,
            prefilter,
            anchor_patterns,
            main_patterns,
        })
    }

    /// The rules, in priority order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The number of patterns (over all rules).
    pub fn pattern_count(&self) -> usize {
        self.main_patterns
    }

    /// The first rule (in priority order) that fires on `text`.
    pub fn find<'a>(&'a self, text: &str) -> Option<RuleHit<'a>> {
        self.find_normalized(&normalize(text))
    }

    /// Like [`find`](Self::find) on an already normalized message.
    pub fn find_normalized<'a>(&'a self, n: &Normalized) -> Option<RuleHit<'a>> {
        if n.tokens.is_empty() {
            return None;
        }
        // Prefilter: which patterns have one of their anchors in the message. A pattern whose
        // anchors are all absent cannot match, so only the rules owning a present main pattern
        // are evaluated, and only their present `unless`/`requires` patterns.
        let mut bits = vec![0u64; self.pattern_owner.len().div_ceil(64)];
        let mut rules_to_check: Vec<u32> = Vec::new();
        // (main pattern id, word index of an anchor occurrence): bounds where a match can start.
        let mut hits: Vec<(u32, u32)> = Vec::new();
        for m in self.prefilter.find_overlapping_iter(n.joined.as_str()) {
            let at = m.start() + 1;
            let word = n.word_starts.partition_point(|&(off, _)| off <= at);
            let tok = n.word_starts[word.saturating_sub(1)].1;
            for &p in &self.anchor_patterns[m.pattern().as_usize()] {
                bits[p as usize / 64] |= 1 << (p % 64);
                if let Some(r) = self.pattern_owner[p as usize] {
                    rules_to_check.push(r);
                    hits.push((p, tok));
                }
            }
        }
        hits.sort_unstable();
        let mut windows: Vec<(u32, u32, u32)> = Vec::new();
        for &(p, t) in &hits {
            match windows.last_mut() {
                Some(w) if w.0 == p => w.2 = t,
                _ => windows.push((p, t, t)),
            }
        }
        if rules_to_check.is_empty() {
            return None;
        }
        for &p in &self.unanchored {
            bits[p as usize / 64] |= 1 << (p % 64);
        }
        rules_to_check.sort_unstable();
        rules_to_check.dedup();
        let present = Present(Some(&bits));
        let window = |p: &Pattern| {
            let i = windows.partition_point(|w| w.0 < p.id);
            match windows.get(i) {
                Some(&(id, lo, hi)) if id == p.id => {
                    (lo.saturating_sub(p.lead) as usize)..(hi as usize + 1).min(n.tokens.len())
                }
                _ => 0..0,
            }
        };
        for ri in rules_to_check {
            let rule = &self.rules[ri as usize];
            if let Some((s, e)) = eval_rule(rule, &present, &window, &n.tokens) {
                return Some(RuleHit {
                    rule,
                    start: n.tokens[s].start,
                    end: n.tokens[e - 1].end,
                });
            }
        }
        None
    }

    /// Whether one rule (by index) fires on `text`, without the prefilter (for checking a rule's
    /// examples in isolation).
    pub fn rule_fires(&self, index: usize, text: &str) -> bool {
        let n = normalize(text);
        let rule = &self.rules[index];
        let all = |_: &Pattern| 0..n.tokens.len();
        eval_rule(rule, &Present(None), &all, &n.tokens).is_some()
    }
}

/// The token span of the first match of `rule` that survives its `unless` patterns and whose
/// `requires` hold. Main patterns are tried at the start positions `window` allows.
fn eval_rule(
    rule: &Rule,
    present: &Present<'_>,
    window: &dyn Fn(&Pattern) -> std::ops::Range<usize>,
    toks: &[Token],
) -> Option<(usize, usize)> {
    let mut required_checked = false;
    for p in rule.patterns.iter().filter(|p| present.has(p.id)) {
        for start in window(p) {
            let Some(end) = match_at(&p.nodes, toks, start, None) else {
                continue;
            };
            if !required_checked {
                if !rule
                    .requires
                    .iter()
                    .all(|r| present.has(r.id) && find_in(&r.nodes, toks, None, None).is_some())
                {
                    return None;
                }
                required_checked = true;
            }
            let sentence = toks[start].sentence;
            let suppressed = rule.unless.iter().any(|u| {
                present.has(u.id)
                    && find_in(&u.nodes, toks, Some(sentence), Some((start, end))).is_some()
            }) || rule.unless_within.iter().any(|u| {
                present.has(u.id) && find_in(&u.nodes, &toks[start..end], None, None).is_some()
            }) || rule
                .unless_anywhere
                .iter()
                .any(|u| present.has(u.id) && find_in(&u.nodes, toks, None, None).is_some());
            if !suppressed {
                return Some((start, end));
            }
        }
    }
    None
}

/// The first match of `nodes` starting in `sentence` (any sentence when `None`).
fn find_in(
    nodes: &[Node],
    toks: &[Token],
    sentence: Option<u32>,
    at: Option<(usize, usize)>,
) -> Option<(usize, usize)> {
    (0..toks.len())
        .filter(|&s| sentence.is_none_or(|x| toks[s].sentence == x))
        .find_map(|s| match_at(nodes, toks, s, at).map(|e| (s, e)))
}

/// Continuation of a match: the rest of the enclosing sequences.
enum Cont<'a> {
    Done,
    Then(&'a [Node], &'a Cont<'a>),
}

struct Ctx<'a> {
    toks: &'a [Token],
    sentence: u32,
    at: Option<(usize, usize)>,
}

/// Matches `nodes` starting exactly at token `start`; returns the end (exclusive) of the
/// shortest match.
fn match_at(
    nodes: &[Node],
    toks: &[Token],
    start: usize,
    at: Option<(usize, usize)>,
) -> Option<usize> {
    let ctx = Ctx {
        toks,
        sentence: toks.get(start)?.sentence,
        at,
    };
    let end = m(&ctx, nodes, &Cont::Done, start)?;
    // An empty match (only possible through `@`-less optional parts) is not a match.
    (end > start).then_some(end)
}

fn m(ctx: &Ctx<'_>, seq: &[Node], cont: &Cont<'_>, pos: usize) -> Option<usize> {
    let Some((first, rest)) = seq.split_first() else {
        return match cont {
            Cont::Done => Some(pos),
            Cont::Then(next, outer) => m(ctx, next, outer, pos),
        };
    };
    let in_sentence = |i: usize| ctx.toks.get(i).is_some_and(|t| t.sentence == ctx.sentence);
    match first {
        Node::Word(w) => {
            if in_sentence(pos) && w.matches(&ctx.toks[pos]) {
                m(ctx, rest, cont, pos + 1)
            } else {
                None
            }
        }
        Node::Any => {
            if in_sentence(pos) {
                m(ctx, rest, cont, pos + 1)
            } else {
                None
            }
        }
        Node::Number => {
            if in_sentence(pos) && ctx.toks[pos].script == Script::Number {
                m(ctx, rest, cont, pos + 1)
            } else {
                None
            }
        }
        Node::Alt(alt) => {
            let next = Cont::Then(rest, cont);
            let try_alt = |i: &u32| m(ctx, &alt.alts[*i as usize], &next, pos);
            if let Some(t) = ctx.toks.get(pos).filter(|t| t.sentence == ctx.sentence) {
                let by_text = alt.by_first.get(t.text.as_str());
                if let Some(e) = by_text.and_then(|v| v.iter().find_map(try_alt)) {
                    return Some(e);
                }
                if let Some(stripped) = t.stripped.as_deref()
                    && let Some(e) = alt
                        .by_first
                        .get(stripped)
                        .and_then(|v| v.iter().find_map(try_alt))
                {
                    return Some(e);
                }
            }
            alt.others.iter().find_map(try_alt)
        }
        Node::Gap(max) => {
            for k in 0..=*max as usize {
                if k > 0 && !in_sentence(pos + k - 1) {
                    break;
                }
                if let Some(e) = m(ctx, rest, cont, pos + k) {
                    return Some(e);
                }
            }
            None
        }
        Node::At => match ctx.at {
            Some((s, e)) if s == pos => m(ctx, rest, cont, e),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &str) -> Result<RuleSet, RuleError> {
        RuleSet::load(
            &[RuleSource::new(
                "sets.toml",
                "[sets]\nmourir = [\"mourir\", \"crever\", \"en finir\"]\n",
            )],
            &[RuleSource::new(
                "t.toml",
                format!("language = \"fr\"\n{rules}"),
            )],
            &["suicidal_ideation"],
        )
    }

    const BASIC: &str = r#"
[[rule]]
id = "fr.suicidal_ideation.veux_mourir"
kind = "suicidal_ideation"
description = "veut mourir"
patterns = ["je (veux|voudrais) * $mourir", "suicid*"]
unless = ["pas @", "@ de (faim|rire)"]
unless_within = ["(pas|jamais)"]
examples = ["je veux mourir"]
"#;

    #[test]
    fn sequences_gaps_sets_and_unless() {
        let s = set(BASIC).unwrap();
        assert!(s.find("Je veux vraiment MOURIIR").is_some());
        assert!(s.find("je voudrais en finir").is_some());
        assert!(
            s.find("je veux pas mourir").is_none(),
            "'pas' before the match"
        );
        assert!(s.find("je veux mourir de rire").is_none());
        assert!(
            s.find("je veux. mourir").is_none(),
            "no match across sentences"
        );
        assert!(s.find("idées suicidaires").is_some());
        assert!(s.find("je veux un café").is_none());
        let hit = s.find("bon, je veux crever.").unwrap();
        assert_eq!(
            &"bon, je veux crever."[hit.start..hit.end],
            "je veux crever"
        );
    }

    #[test]
    fn load_errors_name_file_and_rule() {
        let e = set(&BASIC.replace("kind = \"suicidal_ideation\"", "kind = \"sad\"")).unwrap_err();
        assert!(
            e.to_string()
                .contains("t.toml: rule fr.suicidal_ideation.veux_mourir: unknown kind"),
            "{e}"
        );
        let e = set(&format!("{BASIC}{BASIC}")).unwrap_err();
        assert!(e.to_string().contains("duplicate id"), "{e}");
        let e = set(&BASIC.replace("\"suicid*\"", "\"\"")).unwrap_err();
        assert!(e.to_string().contains("empty pattern"), "{e}");
        let e = set(&BASIC.replace("\"suicid*\"", "\"(a|b\"")).unwrap_err();
        assert!(e.to_string().contains("unbalanced"), "{e}");
        let e = set(&BASIC.replace("$mourir", "$nope")).unwrap_err();
        assert!(e.to_string().contains("unknown set $nope"), "{e}");
        let e = set(&BASIC.replace("examples = [\"je veux mourir\"]", "")).unwrap_err();
        assert!(e.to_string().contains("no examples"), "{e}");
        let e = set(&BASIC.replace("\"suicid*\"", "\"@ suicid*\"")).unwrap_err();
        assert!(e.to_string().contains("only allowed in `unless`"), "{e}");
        let e = set(&BASIC.replace("\"suicid*\"", "\"[pas]\"")).unwrap_err();
        assert!(e.to_string().contains("match nothing"), "{e}");
        let e = set(&BASIC.replace("patterns =", "paterns =")).unwrap_err();
        assert!(e.to_string().contains("t.toml: invalid rule file"), "{e}");
    }

    #[test]
    fn arabic_conjunction_and_affixes() {
        let s = RuleSet::load(
            &[],
            &[RuleSource::new(
                "ar.toml",
                r#"language = "ar"
[[rule]]
id = "ar.suicidal_ideation.nmout"
kind = "suicidal_ideation"
description = "x"
patterns = ["(بغيت|حاب) نموت", "*نتحار*"]
examples = ["بغيت نموت"]
"#,
            )],
            &["suicidal_ideation"],
        )
        .unwrap();
        assert!(s.find("وبغيت نموووت").is_some());
        assert!(s.find("فكرت في الانتحار").is_some());
        assert!(s.find("بغيت نرقد").is_none());
    }
}
