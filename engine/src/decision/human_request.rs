//! Step 2 of the AUTO decision: an explicit request for a human means SUPPORT.
//!
//! "I want to talk to someone", "je veux parler à un conseiller", "بغيت نهدر مع واحد",
//! "3andi l7aja nahder m3a wahed": the person asks for a person, and gets one. The rules are
//! `human_request.toml` beside this module, in the same pattern language as the crisis gate
//! ([`super::rules`]), compiled into the binary. Mentions that are not requests ("talking to
//! someone about it is hard") are excluded by the rules' `unless` patterns.

use serde::Serialize;

use super::crisis::BUILTIN_SETS;
use super::rules::{RuleError, RuleSet, RuleSource};
use crate::lang::normalize::{Lang, guess_language_of, normalize};

/// The only kind of human-request rule.
pub const KIND: &str = "human_request";
/// `decision_logs.reason_code` of a decision taken on an explicit request for a human.
pub const REASON_CODE: &str = "human_requested";

/// The built-in human-request rule file, compiled in.
pub const BUILTIN_RULE_FILE: (&str, &str) = (
    "engine/src/decision/human_request.toml",
    include_str!("human_request.toml"),
);

/// An explicit request for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HumanRequestMatch {
    /// The stable id of the rule that fired.
    pub rule_id: String,
    /// The matched words, as written in the message.
    pub matched: String,
    /// The language of the message: guessed from it, else the rule file's language.
    pub language: Lang,
}

/// Detects explicit requests for a human (`Send + Sync`, built once).
#[derive(Debug)]
pub struct HumanRequestDetector {
    rules: RuleSet,
}

impl HumanRequestDetector {
    /// The detector with the built-in rules.
    pub fn builtin() -> Result<Self, RuleError> {
        let sets = [RuleSource::new(BUILTIN_SETS.0, BUILTIN_SETS.1)];
        let files = [RuleSource::new(BUILTIN_RULE_FILE.0, BUILTIN_RULE_FILE.1)];
        Ok(HumanRequestDetector {
            rules: RuleSet::load(&sets, &files, &[KIND])?,
        })
    }

    /// The compiled rules (for tools and tests).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// `Some` when the message explicitly asks for a human.
    pub fn detect(&self, text: &str) -> Option<HumanRequestMatch> {
        let n = normalize(text);
        let hit = self.rules.find_normalized(&n)?;
        Some(HumanRequestMatch {
            rule_id: hit.rule.id.clone(),
            matched: text[hit.start..hit.end].to_string(),
            language: guess_language_of(text, &n.tokens).unwrap_or(hit.rule.language),
        })
    }
}
