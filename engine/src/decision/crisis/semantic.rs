//! The crisis gate's second net: meaning, not words.
//!
//! The deterministic rules stay first and keep their authority; when they do not fire, the
//! message's embedding (multilingual-e5-small) is compared with a curated exemplar bank:
//! crisis messages of every kind and the look-alikes the rules were written to let through
//! (figures of speech, questions about substances, distress with no risk, past or negated
//! ideation, fiction and news), in Arabic (MSA, Darija in both scripts), French and English. The
//! net fires when the message is close to a crisis exemplar and clearly closer to it than to any
//! look-alike ([`NetSettings`]). It can only escalate: it runs only when the rules found
//! nothing, and nothing it says clears a message.
//!
//! The bank is the team's development set (`seeds/crisis/dev.jsonl`, written apart from the
//! evaluation set `seeds/crisis/eval.jsonl`, which stays held out), `exemplars.jsonl` beside
//! this file (families of phrasings added for the net), and, as look-alikes, the knowledge
//! base's everyday and off-topic questions. Both are compiled in. The bank's vectors
//! are computed once per model and bank and kept in the user's cache directory, so a command
//! that starts does not embed several hundred sentences again.
//!
//! A hashed embedder sees spelling, not meaning: with it there is no second net (the rules alone
//! decide), and `doctor` and the decision's evidence say so.

use serde::Serialize;

use super::super::bank::{self, Classifier};
use super::eval::{EvalCase, parse_cases};
use super::{CrisisKind, CrisisMatch};
use crate::knowledge::embed::{EmbedError, Embedder, cosine};
use crate::lang::Lang;
use crate::lang::normalize::{guess_language_of, normalize};

/// The bank's files (name, text), compiled in.
pub const BUILTIN_BANK: [(&str, &str); 2] = [
    (
        "seeds/crisis/dev.jsonl",
        include_str!("../../../../seeds/crisis/dev.jsonl"),
    ),
    (
        "engine/src/decision/crisis/exemplars.jsonl",
        include_str!("exemplars.jsonl"),
    ),
];

/// The rule id recorded when the net fires: `semantic.<kind>`.
pub const RULE_PREFIX: &str = "semantic";

/// When the net fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetSettings {
    /// Minimum cosine similarity to the nearest crisis exemplar.
    pub threshold: f32,
    /// How much closer the nearest crisis exemplar must be than the nearest look-alike.
    pub margin: f32,
    /// Minimum probability of the bank's classifier.
    pub probability: f32,
}

/// The shipped settings, from `amal-engine crisis net` (the bank cross-validated, then the
/// held-out evaluation set and the public tweet sets): the classifier's probability carries
/// the decision; the nearest exemplar's similarity is a floor. A lower probability catches
/// more of what the rules miss but flags look-alikes beyond the 5% the gate allows
/// (docs/decision.md, "The second net").
pub const SETTINGS: NetSettings = NetSettings {
    threshold: 0.85,
    margin: 0.0,
    probability: 0.7,
};

/// One exemplar of the bank.
#[derive(Debug, Clone)]
pub struct Exemplar {
    /// The message.
    pub text: String,
    /// Its language.
    pub lang: Lang,
    /// Its crisis kind; `None` for a look-alike.
    pub kind: Option<CrisisKind>,
}

/// Everyday questions to the service and questions on other subjects, compiled in: the
/// look-alikes a crisis bank alone lacks ("I can't sleep at night" is not a wish to die).
pub const EVERYDAY_QUESTIONS: [(&str, &str); 2] = [
    (
        "seeds/knowledge/eval.jsonl",
        include_str!("../../../../seeds/knowledge/eval.jsonl"),
    ),
    (
        "seeds/knowledge/out_of_scope.jsonl",
        include_str!("../../../../seeds/knowledge/out_of_scope.jsonl"),
    ),
];

/// A line of the knowledge base's question sets.
#[derive(serde::Deserialize)]
struct Question {
    q: String,
    lang: String,
}

/// The built-in exemplar bank: the crisis sets, and the everyday questions the rules do not
/// flag (a question about a friend who took heroin and does not wake up is a crisis, not a
/// look-alike).
pub fn builtin_bank() -> Vec<Exemplar> {
    let mut bank: Vec<Exemplar> = BUILTIN_BANK
        .iter()
        .flat_map(|(name, text)| {
            parse_cases(name, text).unwrap_or_else(|e| panic!("the built-in bank {name}: {e}"))
        })
        .map(exemplar)
        .collect();
    let gate = super::CrisisGate::builtin().expect("the built-in rules load");
    for (name, text) in EVERYDAY_QUESTIONS {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let q: Question = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("the built-in question set {name}: {e}"));
            if gate.assess(&q.q).is_none() {
                bank.push(Exemplar {
                    text: q.q,
                    lang: q.lang.parse().unwrap_or(Lang::En),
                    kind: None,
                });
            }
        }
    }
    bank
}

fn exemplar(case: EvalCase) -> Exemplar {
    let lang = case.lang.parse().unwrap_or(Lang::En);
    let kind = if case.crisis {
        // A crisis exemplar of a kind the gate does not know is still a crisis.
        Some(case.kind.parse().unwrap_or(CrisisKind::SuicidalIdeation))
    } else {
        None
    };
    Exemplar {
        text: case.text,
        lang,
        kind,
    }
}

/// How close a message is to the bank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetScore {
    /// Similarity to the nearest crisis exemplar.
    pub crisis: f32,
    /// Index of that exemplar in the bank.
    pub nearest_crisis: usize,
    /// Similarity to the nearest look-alike.
    pub look_alike: f32,
    /// The classifier's probability of a crisis.
    pub probability: f32,
}

/// The classifier's regularisation.
pub const L2: f32 = 0.01;
/// How much more a look-alike weighs than a crisis exemplar when fitting.
pub const NEGATIVE_WEIGHT: f32 = 2.0;

/// The second net: the bank and its vectors for one model.
#[derive(Debug)]
pub struct SemanticNet {
    model: String,
    bank: Vec<Exemplar>,
    vectors: Vec<Vec<f32>>,
    classifier: Classifier,
    /// When it fires.
    pub settings: NetSettings,
}

impl SemanticNet {
    /// The net over the built-in bank for `embedder`'s model; `None` for the hashed embedder,
    /// which has no notion of meaning. The bank's vectors come from the cache when present.
    pub async fn build(embedder: &Embedder) -> Result<Option<Self>, EmbedError> {
        if matches!(embedder, Embedder::Hash(_)) {
            return Ok(None);
        }
        Self::with_bank(embedder, builtin_bank()).await.map(Some)
    }

    /// The net over `bank`, embedded with `embedder` (or read from the cache).
    pub async fn with_bank(embedder: &Embedder, bank: Vec<Exemplar>) -> Result<Self, EmbedError> {
        let model = embedder.model().to_string();
        let vectors = embed_all(embedder, &bank).await?;
        let classifier = fit_bank(&bank, &vectors, None);
        Ok(SemanticNet {
            model,
            bank,
            vectors,
            classifier,
            settings: SETTINGS,
        })
    }

    /// The model the bank was embedded with.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The bank.
    pub fn bank(&self) -> &[Exemplar] {
        &self.bank
    }

    /// How close a query vector is to the bank, leaving out exemplar `skip` (for leave-one-out
    /// evaluation of the bank itself).
    pub fn score_without(&self, vector: &[f32], skip: Option<usize>) -> NetScore {
        let mut score = NetScore {
            crisis: -1.0,
            nearest_crisis: 0,
            look_alike: -1.0,
            probability: self.classifier.probability(vector),
        };
        for (i, (e, v)) in self.bank.iter().zip(&self.vectors).enumerate() {
            if Some(i) == skip {
                continue;
            }
            let s = cosine(vector, v);
            if !s.is_finite() {
                continue;
            }
            match e.kind {
                Some(_) if s > score.crisis => {
                    score.crisis = s;
                    score.nearest_crisis = i;
                }
                None if s > score.look_alike => score.look_alike = s,
                _ => {}
            }
        }
        score
    }

    /// How close a query vector is to the bank.
    pub fn score(&self, vector: &[f32]) -> NetScore {
        self.score_without(vector, None)
    }

    /// Whether a score fires under `settings`.
    pub fn fires(score: &NetScore, settings: &NetSettings) -> bool {
        score.crisis >= settings.threshold
            && score.crisis - score.look_alike >= settings.margin
            && score.probability >= settings.probability
    }

    /// The bank's vectors.
    pub fn vectors(&self) -> &[Vec<f32>] {
        &self.vectors
    }

    /// The net with another classifier (cross-validation).
    pub fn with_classifier(&self, classifier: Classifier) -> SemanticNet {
        SemanticNet {
            model: self.model.clone(),
            bank: self.bank.clone(),
            vectors: self.vectors.clone(),
            classifier,
            settings: self.settings,
        }
    }

    /// The net's verdict on `text`, whose query embedding is `vector`: a match naming the
    /// nearest crisis exemplar, or `None`. A zero vector (a message with no words) is near
    /// nothing.
    pub fn assess(&self, text: &str, vector: &[f32]) -> Option<CrisisMatch> {
        let score = self.score(vector);
        if !Self::fires(&score, &self.settings) {
            return None;
        }
        let nearest = &self.bank[score.nearest_crisis];
        let kind = nearest.kind.unwrap_or(CrisisKind::SuicidalIdeation);
        let n = normalize(text);
        Some(CrisisMatch {
            rule_id: format!("{RULE_PREFIX}.{kind}"),
            kind,
            // What the message was found close to, with the similarity: the explanation a
            // reviewer of the decision log needs.
            matched: format!("≈ {:?} ({:.3})", nearest.text, score.crisis),
            language: guess_language_of(text, &n.tokens).unwrap_or(nearest.lang),
        })
    }
}

/// The classifier fitted on the bank, leaving out the exemplars `skip` marks (cross-validation).
pub fn fit_bank(
    bank: &[Exemplar],
    vectors: &[Vec<f32>],
    skip: Option<&dyn Fn(usize) -> bool>,
) -> Classifier {
    let keep = |i: usize| skip.is_none_or(|s| !s(i));
    let xs: Vec<&[f32]> = vectors
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, v)| v.as_slice())
        .collect();
    let ys: Vec<bool> = bank
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, e)| e.kind.is_some())
        .collect();
    Classifier::fit(&xs, &ys, L2, NEGATIVE_WEIGHT)
}

/// Embeds the bank as queries (messages, like what is compared with it), through the cache.
async fn embed_all(embedder: &Embedder, bank: &[Exemplar]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let texts: Vec<&str> = bank.iter().map(|e| e.text.as_str()).collect();
    bank::embed_cached(embedder, CACHE_NAME, &texts).await
}

/// The name of the bank's vector cache ([`bank::embed_cached`]).
const CACHE_NAME: &str = "crisis-bank";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_bank_parses_and_has_both_sides_in_every_language() {
        let bank = builtin_bank();
        for lang in Lang::ALL {
            let crisis = bank
                .iter()
                .filter(|e| e.lang == lang && e.kind.is_some())
                .count();
            let look = bank
                .iter()
                .filter(|e| e.lang == lang && e.kind.is_none())
                .count();
            assert!(crisis >= 30 && look >= 20, "{lang:?}: {crisis} / {look}");
        }
    }

    #[test]
    fn firing_needs_both_closeness_and_margin() {
        let s = NetSettings {
            threshold: 0.9,
            margin: 0.02,
            probability: 0.5,
        };
        let score = |crisis, look_alike| NetScore {
            crisis,
            nearest_crisis: 0,
            look_alike,
            probability: 0.9,
        };
        assert!(SemanticNet::fires(&score(0.93, 0.90), &s));
        assert!(
            !SemanticNet::fires(&score(0.93, 0.92), &s),
            "too close to a look-alike"
        );
        assert!(
            !SemanticNet::fires(&score(0.89, 0.5), &s),
            "not close enough"
        );
    }
}
