//! Messages about something else than what the service helps with: weather, football,
//! paperwork, prices and the like. They get a short reply in the person's language saying what
//! the service helps with and that they can ask for a person, and no ticket.
//!
//! The rules are `rules.toml` beside this module, in the pattern language of the crisis gate
//! ([`super::rules`]). A rule fires only on positive evidence of another subject, and never
//! when the message carries any word of the service's own subjects or of distress (each rule's
//! `unless_anywhere`): a message no rule matches still reaches the team. The decision asks this
//! only after the crisis gate, an open ticket and a request for a human.

use serde::Serialize;

use super::crisis::BUILTIN_SETS;
use super::rules::{RuleError, RuleSet, RuleSource};

pub mod net;

/// The kind of the rules that find another subject.
pub const KIND: &str = "off_topic";
/// The kind of the rule that finds a word of the service's subjects or of distress.
pub const SUBJECT_KIND: &str = "service_subject";
/// `decision_logs.reason_code` of a decision on a message outside the service's subjects.
pub const REASON_CODE: &str = "out_of_scope";

/// The built-in scope rule file, compiled in.
pub const BUILTIN_RULE_FILE: (&str, &str) = (
    "engine/src/decision/scope/rules.toml",
    include_str!("rules.toml"),
);

/// A message about another subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffTopicMatch {
    /// The stable id of the rule that fired.
    pub rule_id: String,
    /// The matched words, as written in the message.
    pub matched: String,
}

/// Detects messages outside the service's subjects (`Send + Sync`, built once).
#[derive(Debug)]
pub struct ScopeDetector {
    rules: RuleSet,
    /// Index of the `service_subject` rule in `rules`.
    subject: usize,
}

impl ScopeDetector {
    /// The detector with the built-in rules.
    pub fn builtin() -> Result<Self, RuleError> {
        let sets = [RuleSource::new(BUILTIN_SETS.0, BUILTIN_SETS.1)];
        let files = [RuleSource::new(BUILTIN_RULE_FILE.0, BUILTIN_RULE_FILE.1)];
        let rules = RuleSet::load(&sets, &files, &[KIND, SUBJECT_KIND])?;
        let subject = rules
            .rules()
            .iter()
            .position(|r| r.kind == SUBJECT_KIND)
            .expect("the built-in scope rules have a service_subject rule");
        Ok(ScopeDetector { rules, subject })
    }

    /// The compiled rules (for tools and tests).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// `Some` when the message is about another subject than the service's.
    pub fn off_topic(&self, text: &str) -> Option<OffTopicMatch> {
        // Every off-topic rule yields to a word of the service's subjects, so the subject rule
        // is found first exactly when no off-topic rule fires.
        let hit = self.rules.find(text).filter(|h| h.rule.kind == KIND)?;
        Some(OffTopicMatch {
            rule_id: hit.rule.id.clone(),
            matched: text[hit.start..hit.end].to_string(),
        })
    }

    /// Whether the message carries a word of the service's subjects or of distress, in any
    /// language (what every off-topic rule yields to).
    pub fn mentions_service_subject(&self, text: &str) -> bool {
        self.rules.rule_fires(self.subject, text)
    }
}
