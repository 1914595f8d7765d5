//! The scope net: another subject recognised by meaning, where the words of the rules run out.
//!
//! The rules ([`super::ScopeDetector`]) catch the plain cases before retrieval; what they do not
//! name ("what time does the metro close?", "tell me a joke", "b ch7al lbanan?") used to find
//! no source and go to a human as a low-confidence question. The net is asked only then: after
//! the crisis gate, an open ticket and a request for a human, when retrieval found nothing
//! confident, and never when the message carries a word of the service's subjects or of
//! distress ([`super::ScopeDetector::mentions_service_subject`]). It compares the message's
//! embedding with a bank of questions on other subjects and of questions people ask the service
//! (the knowledge base's evaluation sets, the crisis gate's development bank, generic requests
//! for help), in Arabic (MSA, Darija in both scripts), French and English.
//!
//! It fires when the nearest exemplar is one on another subject, by a margin, and a classifier
//! fitted on the bank does not rule it out ([`ScopeSettings`]); the service's questions weigh more when fitting, since
//! calling a real question off-topic costs more than a ticket (the reply still says that a
//! person can be asked for). With the hashed embedder there is no net.

use serde::Serialize;

use super::super::bank::{self, Classifier};
use super::super::crisis::eval::parse_cases;
use super::super::crisis::semantic::{BUILTIN_BANK as CRISIS_BANK, EVERYDAY_QUESTIONS};
use super::OffTopicMatch;
use crate::knowledge::embed::{EmbedError, Embedder, cosine};
use crate::lang::Lang;

/// The rule id recorded when the net fires.
pub const RULE_ID: &str = "semantic.off_topic";

/// The net's own exemplars (both sides), compiled in.
pub const EXEMPLARS: (&str, &str) = (
    "engine/src/decision/scope/exemplars.jsonl",
    include_str!("exemplars.jsonl"),
);

/// The service's questions in other sets, compiled in: the everyday questions of the knowledge
/// base's evaluation sets (off-topic ones apart) count as the service's subjects.
const SERVICE_QUESTIONS: (&str, &str) = (
    "seeds/knowledge/eval_crosslingual.jsonl",
    include_str!("../../../../seeds/knowledge/eval_crosslingual.jsonl"),
);

/// When the net fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScopeSettings {
    /// Minimum probability of the bank's classifier that the message is on another subject,
    /// with the margin.
    pub probability: f32,
    /// How much closer the nearest off-topic exemplar must be than the nearest question of the
    /// service's.
    pub margin: f32,
    /// A probability that fires alone, whatever the nearest exemplars.
    pub sure: f32,
}

/// The shipped settings, from `amal-engine decide --file` on held-out sets (docs/decision.md,
/// "Off-topic by meaning"): the nearest exemplar carries the decision, the classifier keeps out
/// what merely sits between the two sides; a confident classifier suffices.
pub const SETTINGS: ScopeSettings = ScopeSettings {
    probability: 0.2,
    margin: 0.01,
    sure: 0.6,
};

/// How much more a question of the service's weighs than an off-topic one when fitting.
const SERVICE_WEIGHT: f32 = 2.0;
/// The classifier's regularisation.
const L2: f32 = 0.01;

/// One exemplar of the bank.
#[derive(Debug, Clone)]
pub struct ScopeExemplar {
    /// The message.
    pub text: String,
    /// Its language.
    pub lang: Lang,
    /// On another subject than the service's.
    pub off_topic: bool,
}

#[derive(serde::Deserialize)]
struct Line {
    q: String,
    lang: String,
    #[serde(default)]
    off_topic: Option<bool>,
}

fn parse_lines(name: &str, text: &str, off_topic: Option<bool>) -> Vec<ScopeExemplar> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Line = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("the built-in scope bank {name}: {e}: {l}"));
            ScopeExemplar {
                off_topic: off_topic.or(line.off_topic).unwrap_or_else(|| {
                    panic!("the built-in scope bank {name}: a line without off_topic: {l}")
                }),
                text: line.q,
                lang: line.lang.parse().unwrap_or(Lang::En),
            }
        })
        .collect()
}

/// The built-in bank: the net's exemplars, the knowledge base's off-topic questions, and as the
/// service's subjects its everyday questions and every message of the crisis gate's bank (crisis
/// or look-alike, all of them the service's business).
pub fn builtin_bank() -> Vec<ScopeExemplar> {
    let mut bank = parse_lines(EXEMPLARS.0, EXEMPLARS.1, None);
    for (name, text) in EVERYDAY_QUESTIONS {
        let off_topic = name.ends_with("out_of_scope.jsonl");
        bank.extend(parse_lines(name, text, Some(off_topic)));
    }
    bank.extend(parse_lines(
        SERVICE_QUESTIONS.0,
        SERVICE_QUESTIONS.1,
        Some(false),
    ));
    for (name, text) in CRISIS_BANK {
        let cases =
            parse_cases(name, text).unwrap_or_else(|e| panic!("the built-in bank {name}: {e}"));
        bank.extend(cases.into_iter().map(|c| ScopeExemplar {
            lang: c.lang.parse().unwrap_or(Lang::En),
            text: c.text,
            off_topic: false,
        }));
    }
    bank
}

/// How close a message is to each side of the bank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScopeScore {
    /// Similarity to the nearest off-topic exemplar.
    pub off_topic: f32,
    /// Index of that exemplar in the bank.
    pub nearest_off_topic: usize,
    /// Similarity to the nearest question of the service's.
    pub service: f32,
    /// The classifier's probability that the message is on another subject.
    pub probability: f32,
}

/// The scope net: the bank, its vectors for one model and the classifier fitted on them.
#[derive(Debug)]
pub struct ScopeNet {
    bank: Vec<ScopeExemplar>,
    vectors: Vec<Vec<f32>>,
    classifier: Classifier,
    /// When it fires.
    pub settings: ScopeSettings,
}

impl ScopeNet {
    /// The net over the built-in bank for `embedder`'s model; `None` for the hashed embedder.
    pub async fn build(embedder: &Embedder) -> Result<Option<Self>, EmbedError> {
        if matches!(embedder, Embedder::Hash(_)) {
            return Ok(None);
        }
        let bank = builtin_bank();
        let texts: Vec<&str> = bank.iter().map(|e| e.text.as_str()).collect();
        let vectors = bank::embed_cached(embedder, "scope-bank", &texts).await?;
        let classifier = fit(&bank, &vectors, |_| true);
        Ok(Some(ScopeNet {
            bank,
            vectors,
            classifier,
            settings: SETTINGS,
        }))
    }

    /// The bank.
    pub fn bank(&self) -> &[ScopeExemplar] {
        &self.bank
    }

    /// How close a query vector is to the bank.
    pub fn score(&self, vector: &[f32]) -> ScopeScore {
        let mut score = ScopeScore {
            off_topic: -1.0,
            nearest_off_topic: 0,
            service: -1.0,
            probability: self.classifier.probability(vector),
        };
        for (i, (e, v)) in self.bank.iter().zip(&self.vectors).enumerate() {
            let s = cosine(vector, v);
            if !s.is_finite() {
                continue;
            }
            if e.off_topic && s > score.off_topic {
                score.off_topic = s;
                score.nearest_off_topic = i;
            } else if !e.off_topic && s > score.service {
                score.service = s;
            }
        }
        score
    }

    /// Whether a score fires under `settings`.
    pub fn fires(score: &ScopeScore, settings: &ScopeSettings) -> bool {
        score.probability.is_finite()
            && (score.probability >= settings.sure
                || (score.probability >= settings.probability
                    && score.off_topic - score.service >= settings.margin))
    }

    /// The net's verdict on a message of this [`Self::score`]: a match naming the nearest
    /// off-topic exemplar, or `None`.
    pub fn verdict(&self, score: &ScopeScore) -> Option<OffTopicMatch> {
        if !Self::fires(score, &self.settings) {
            return None;
        }
        let nearest = &self.bank[score.nearest_off_topic];
        Some(OffTopicMatch {
            rule_id: RULE_ID.to_string(),
            // What the message was found close to, with the classifier's probability: the
            // explanation a reviewer of the decision log needs.
            matched: format!(
                "≈ {:?} ({:.3}, p = {:.2})",
                nearest.text, score.off_topic, score.probability
            ),
        })
    }
}

/// The classifier fitted on the exemplars `keep` admits.
fn fit(bank: &[ScopeExemplar], vectors: &[Vec<f32>], keep: impl Fn(usize) -> bool) -> Classifier {
    let (xs, ys): (Vec<&[f32]>, Vec<bool>) = bank
        .iter()
        .zip(vectors)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, (e, v))| (v.as_slice(), e.off_topic))
        .unzip();
    Classifier::fit(&xs, &ys, L2, SERVICE_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_bank_has_both_sides_in_every_language() {
        let bank = builtin_bank();
        for lang in Lang::ALL {
            let off = bank
                .iter()
                .filter(|e| e.lang == lang && e.off_topic)
                .count();
            let service = bank
                .iter()
                .filter(|e| e.lang == lang && !e.off_topic)
                .count();
            assert!(off >= 30 && service >= 50, "{lang:?}: {off} / {service}");
        }
    }

    #[test]
    fn firing_needs_the_nearest_exemplar_off_topic_or_a_sure_classifier() {
        let s = ScopeSettings {
            probability: 0.2,
            margin: 0.01,
            sure: 0.6,
        };
        let score = |probability, off_topic, service| ScopeScore {
            off_topic,
            nearest_off_topic: 0,
            service,
            probability,
        };
        assert!(ScopeNet::fires(&score(0.3, 0.88, 0.85), &s));
        assert!(
            !ScopeNet::fires(&score(0.3, 0.85, 0.88), &s),
            "nearer the service"
        );
        assert!(
            !ScopeNet::fires(&score(0.3, 0.885, 0.88), &s),
            "too small a margin"
        );
        assert!(
            !ScopeNet::fires(&score(0.1, 0.88, 0.85), &s),
            "not probable"
        );
        assert!(ScopeNet::fires(&score(0.7, 0.85, 0.88), &s), "sure");
        assert!(!ScopeNet::fires(&score(f32::NAN, 0.88, 0.85), &s));
    }
}
