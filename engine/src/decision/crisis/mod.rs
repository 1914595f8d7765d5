//! Step 1 of the AUTO decision: the deterministic crisis gate.
//!
//! The gate runs first on every message, before any model, and nothing can override it: a match
//! means SUPPORT with category [`CATEGORY`] and priority [`PRIORITY`], the person at once receives
//! the fixed [`safety_message`] in their language with the service's crisis numbers, and the ticket
//! is opened in the same transaction (by the caller).
//!
//! The rules are data beside this module: `rules/*.toml` (one file per language or variety) with
//! the shared word sets in `sets.toml`, in the pattern language of [`super::rules`]; `README.md`
//! there is the guide for clinicians who read and extend them. They are compiled into the
//! binary, so a deployment needs no files and cannot lose them.
//! `AMAL_CRISIS_RULES_DIR` may name a directory of extra rule files that are **added**: a rule id
//! that already exists is an error, so a built-in rule can never be replaced or disabled.
//!
//! Figures of speech ("this exam is killing me", "je meurs de faim", "أموت من الضحك") are handled
//! by each rule's `unless` patterns, written narrowly: when in doubt the gate fires, because a
//! missed crisis is far worse than a false escalation. [`eval`] measures exactly that trade-off on
//! the team's evaluation sets.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::rules::{RuleError, RuleSet, RuleSource};
use crate::lang::normalize::{Lang, guess_language_of, normalize};

pub mod eval;
pub mod semantic;

/// Ticket category of a crisis (a row of the `ticket_categories` lookup table).
pub const CATEGORY: &str = "crisis";
/// Ticket priority of a crisis (a row of the `ticket_priorities` lookup table).
pub const PRIORITY: &str = "urgent";
/// `decision_logs.reason_code` of a crisis-gate decision.
pub const REASON_CODE: &str = "crisis_gate";

/// Environment variable naming a directory of extra crisis rule files (added, never replacing).
pub const RULES_DIR_ENV: &str = "AMAL_CRISIS_RULES_DIR";

/// The shared word sets file, compiled in.
pub const BUILTIN_SETS: (&str, &str) = (
    "engine/src/decision/crisis/sets.toml",
    include_str!("sets.toml"),
);

/// The built-in crisis rule files, compiled in, in priority order.
pub const BUILTIN_RULE_FILES: &[(&str, &str)] = &[
    (
        "engine/src/decision/crisis/rules/en.toml",
        include_str!("rules/en.toml"),
    ),
    (
        "engine/src/decision/crisis/rules/fr.toml",
        include_str!("rules/fr.toml"),
    ),
    (
        "engine/src/decision/crisis/rules/ar_msa.toml",
        include_str!("rules/ar_msa.toml"),
    ),
    (
        "engine/src/decision/crisis/rules/ar_darija.toml",
        include_str!("rules/ar_darija.toml"),
    ),
    (
        "engine/src/decision/crisis/rules/arabizi.toml",
        include_str!("rules/arabizi.toml"),
    ),
];

/// The built-in safety messages, compiled in.
pub const BUILTIN_SAFETY_MESSAGES: (&str, &str) = (
    "engine/src/decision/crisis/safety_messages.toml",
    include_str!("safety_messages.toml"),
);

/// What kind of crisis a rule detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisKind {
    /// A wish to die or not to exist, explicit, passive or indirect.
    SuicidalIdeation,
    /// Intent with a time, method, preparation, location or farewell; a lethal-dose question.
    SuicidePlan,
    /// Current or ongoing self-injury.
    SelfHarm,
    /// The writer has taken too much medication or drugs.
    Overdose,
    /// The writer or a dependant has swallowed or breathed a poison.
    Poisoning,
    /// Imminent danger to the writer not framed as suicide.
    DangerToSelf,
    /// The writer intends or fears harming someone else.
    DangerToOthers,
    /// The writer is in immediate danger from someone else.
    AbuseViolence,
    /// Another person is in immediate danger right now.
    ThirdPartyCrisis,
}

impl CrisisKind {
    /// Every kind, in a fixed order.
    pub const ALL: [CrisisKind; 9] = [
        CrisisKind::SuicidalIdeation,
        CrisisKind::SuicidePlan,
        CrisisKind::SelfHarm,
        CrisisKind::Overdose,
        CrisisKind::Poisoning,
        CrisisKind::DangerToSelf,
        CrisisKind::DangerToOthers,
        CrisisKind::AbuseViolence,
        CrisisKind::ThirdPartyCrisis,
    ];

    /// The kind's name in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            CrisisKind::SuicidalIdeation => "suicidal_ideation",
            CrisisKind::SuicidePlan => "suicide_plan",
            CrisisKind::SelfHarm => "self_harm",
            CrisisKind::Overdose => "overdose",
            CrisisKind::Poisoning => "poisoning",
            CrisisKind::DangerToSelf => "danger_to_self",
            CrisisKind::DangerToOthers => "danger_to_others",
            CrisisKind::AbuseViolence => "abuse_violence",
            CrisisKind::ThirdPartyCrisis => "third_party_crisis",
        }
    }
}

impl fmt::Display for CrisisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CrisisKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CrisisKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown crisis kind {s:?}"))
    }
}

/// The gate fired: which rule, on which words, and the language to answer in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrisisMatch {
    /// The stable id of the rule that fired.
    pub rule_id: String,
    /// What kind of crisis.
    pub kind: CrisisKind,
    /// The matched words, as written in the message.
    pub matched: String,
    /// The language of the message (for the safety message): guessed from the message, else the
    /// language of the rule's file.
    pub language: Lang,
}

/// The crisis gate: compiled rules, built once and shared (`Send + Sync`, cheap behind an `Arc`).
#[derive(Debug)]
pub struct CrisisGate {
    rules: RuleSet,
}

fn kind_names() -> Vec<&'static str> {
    CrisisKind::ALL.iter().map(|k| k.as_str()).collect()
}

fn builtin_sources() -> Vec<RuleSource> {
    BUILTIN_RULE_FILES
        .iter()
        .map(|(name, text)| RuleSource::new(*name, *text))
        .collect()
}

impl CrisisGate {
    /// The gate with the built-in rules only.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::with_extra(Vec::new())
    }

    /// The built-in rules plus extra rule files; the extra files may add rules but a rule id that
    /// already exists is an error, so no built-in rule can be replaced.
    pub fn with_extra(extra: Vec<RuleSource>) -> Result<Self, RuleError> {
        let mut files = builtin_sources();
        files.extend(extra);
        let sets = [RuleSource::new(BUILTIN_SETS.0, BUILTIN_SETS.1)];
        let rules = RuleSet::load(&sets, &files, &kind_names())?;
        Ok(CrisisGate { rules })
    }

    /// The built-in rules plus every `*.toml` file of `dir`.
    pub fn with_extra_dir(dir: &Path) -> Result<Self, RuleError> {
        Self::with_extra(RuleSource::read_dir(dir)?)
    }

    /// The built-in rules plus the files of `AMAL_CRISIS_RULES_DIR` when it is set.
    pub fn from_env() -> Result<Self, RuleError> {
        match std::env::var_os(RULES_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Self::with_extra_dir(Path::new(&dir)),
            _ => Self::builtin(),
        }
    }

    /// The compiled rules (for tools and tests).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Assesses one message: `Some` when it signals a crisis.
    pub fn assess(&self, text: &str) -> Option<CrisisMatch> {
        let n = normalize(text);
        let hit = self.rules.find_normalized(&n)?;
        // Kinds were validated at load, so this parse cannot fail; fall back to the most
        // cautious reading rather than panicking.
        let kind = hit
            .rule
            .kind
            .parse()
            .unwrap_or(CrisisKind::SuicidalIdeation);
        Some(CrisisMatch {
            rule_id: hit.rule.id.clone(),
            kind,
            matched: text[hit.start..hit.end].to_string(),
            language: guess_language_of(text, &n.tokens).unwrap_or(hit.rule.language),
        })
    }
}

/// The service's crisis numbers, substituted into the safety message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrisisNumbers {
    /// The crisis line (replaces `{{CRISIS_LINE}}`).
    pub crisis_line: String,
    /// The emergency number (replaces `{{EMERGENCY_NUMBER}}`).
    pub emergency_number: String,
}

/// The crisis-line placeholder in safety messages.
pub const CRISIS_LINE_PLACEHOLDER: &str = "{{CRISIS_LINE}}";
/// The emergency-number placeholder in safety messages.
pub const EMERGENCY_NUMBER_PLACEHOLDER: &str = "{{EMERGENCY_NUMBER}}";

impl Default for CrisisNumbers {
    /// The placeholders themselves: the seeds hold no real numbers until the service configures
    /// them.
    fn default() -> Self {
        CrisisNumbers {
            crisis_line: CRISIS_LINE_PLACEHOLDER.to_string(),
            emergency_number: EMERGENCY_NUMBER_PLACEHOLDER.to_string(),
        }
    }
}

impl CrisisNumbers {
    /// From `AMAL_CRISIS_LINE` and `AMAL_EMERGENCY_NUMBER`; an unset or empty variable keeps its
    /// placeholder.
    pub fn from_env() -> Self {
        let get = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        CrisisNumbers {
            crisis_line: get("AMAL_CRISIS_LINE", CRISIS_LINE_PLACEHOLDER),
            emergency_number: get("AMAL_EMERGENCY_NUMBER", EMERGENCY_NUMBER_PLACEHOLDER),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyEntry {
    text: String,
    unstaffed: String,
    unstored: String,
}

/// The placeholder of the unstaffed safety message for when the team can answer.
pub const WHEN_PLACEHOLDER: &str = "{{WHEN}}";

/// The two safety messages of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyTexts {
    /// Sent when someone who can take the conversation is online: a human is joining now.
    pub staffed: String,
    /// Sent when nobody who can take it is online: when the team can answer, and the numbers.
    pub unstaffed: String,
    /// Sent where nothing is stored and no ticket is opened (no consent, not signed in): no
    /// human will see the message; the numbers, and how to reach the team.
    pub unstored: String,
}

/// Parses a safety-messages file: one `[ar]`, `[fr]` and `[en]` table with a `text`, an
/// `unstaffed` and an `unstored` text, each with both number placeholders (`unstaffed` with
/// `{{WHEN}}`, which the others must not have: they are sent without a time).
pub fn parse_safety_messages(
    name: &str,
    text: &str,
) -> Result<HashMap<Lang, SafetyTexts>, RuleError> {
    let err = |message: String| RuleError::Toml {
        file: name.to_string(),
        message,
    };
    let raw: HashMap<String, SafetyEntry> = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    let mut out = HashMap::new();
    for (code, entry) in raw {
        let lang: Lang = code
            .parse()
            .map_err(|e: crate::lang::UnknownLang| err(e.to_string()))?;
        let texts = [
            ("text", &entry.text),
            ("unstaffed", &entry.unstaffed),
            ("unstored", &entry.unstored),
        ];
        for (key, text) in texts {
            for ph in [CRISIS_LINE_PLACEHOLDER, EMERGENCY_NUMBER_PLACEHOLDER] {
                if !text.contains(ph) {
                    return Err(err(format!("[{code}] {key} lacks the placeholder {ph}")));
                }
            }
            let wants_when = key == "unstaffed";
            if text.contains(WHEN_PLACEHOLDER) != wants_when {
                return Err(err(if wants_when {
                    format!("[{code}] unstaffed lacks the placeholder {WHEN_PLACEHOLDER}")
                } else {
                    format!("[{code}] {key} must not use {WHEN_PLACEHOLDER}")
                }));
            }
        }
        out.insert(
            lang,
            SafetyTexts {
                staffed: entry.text.trim().to_string(),
                unstaffed: entry.unstaffed.trim().to_string(),
                unstored: entry.unstored.trim().to_string(),
            },
        );
    }
    for lang in Lang::ALL {
        if !out.contains_key(&lang) {
            return Err(err(format!("no [{lang}] message")));
        }
    }
    Ok(out)
}

/// Last resort if the compiled-in file were ever unreadable (a test guarantees it is not): the
/// person must still get the numbers, in the two most widely read languages.
const FALLBACK_SAFETY_MESSAGE: &str = "نحن معك. أحد أعضاء فريقنا سينضم إليك الآن. إذا كنت في خطر مباشر، اتصل بـ {{EMERGENCY_NUMBER}}. خط الأزمات: {{CRISIS_LINE}}.\n\
Nous sommes avec vous. Une personne de l'équipe vous rejoint maintenant. En danger immédiat, appelez le {{EMERGENCY_NUMBER}}. Ligne de crise : {{CRISIS_LINE}}.";

/// The same last resort when nobody is online: no promise, the numbers.
const FALLBACK_UNSTAFFED_MESSAGE: &str = "نحن معك. إذا كنت في خطر مباشر، اتصل بـ {{EMERGENCY_NUMBER}}. خط الأزمات: {{CRISIS_LINE}}.\n\
Nous sommes avec vous. En danger immédiat, appelez le {{EMERGENCY_NUMBER}}. Ligne de crise : {{CRISIS_LINE}}.";

/// The same last resort where nothing is stored: no promise of anyone, the numbers.
const FALLBACK_UNSTORED_MESSAGE: &str = "لم تُحفظ رسالتك. إذا كنت في خطر مباشر، اتصل بـ {{EMERGENCY_NUMBER}}. خط الأزمات: {{CRISIS_LINE}}.\n\
Votre message n'a pas été conservé. En danger immédiat, appelez le {{EMERGENCY_NUMBER}}. Ligne de crise : {{CRISIS_LINE}}.";

fn builtin_safety_messages() -> Option<&'static HashMap<Lang, SafetyTexts>> {
    static MESSAGES: OnceLock<Option<HashMap<Lang, SafetyTexts>>> = OnceLock::new();
    MESSAGES
        .get_or_init(|| {
            parse_safety_messages(BUILTIN_SAFETY_MESSAGES.0, BUILTIN_SAFETY_MESSAGES.1).ok()
        })
        .as_ref()
}

/// What a person reads where a number is not configured: words that fit the safety
/// message's sentences, never a placeholder and never an invented number.
fn unconfigured_wording(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        // (emergency number, crisis line)
        Lang::Ar => ("الخاص بالطوارئ", "على الرقم الذي يعطيك إياه فريقنا"),
        Lang::Fr => ("numéro d'urgence", "numéro que notre équipe vous donnera"),
        Lang::En => (
            "your local emergency number",
            "the number our team gives you",
        ),
    }
}

/// Whether both numbers are configured (the doctor warns when not).
pub fn numbers_configured(numbers: &CrisisNumbers) -> bool {
    numbers.crisis_line != CRISIS_LINE_PLACEHOLDER
        && numbers.emergency_number != EMERGENCY_NUMBER_PLACEHOLDER
}

/// `template` with the configured numbers substituted. A number not configured is replaced by
/// wording that sends the person to emergency services or to the team: a person in crisis must
/// never read `{{EMERGENCY_NUMBER}}`.
pub fn fill_numbers(template: &str, lang: Lang, numbers: &CrisisNumbers) -> String {
    let (emergency_words, crisis_words) = unconfigured_wording(lang);
    let emergency = if numbers.emergency_number == EMERGENCY_NUMBER_PLACEHOLDER {
        emergency_words
    } else {
        numbers.emergency_number.as_str()
    };
    let crisis = if numbers.crisis_line == CRISIS_LINE_PLACEHOLDER {
        crisis_words
    } else {
        numbers.crisis_line.as_str()
    };
    template
        .replace(CRISIS_LINE_PLACEHOLDER, crisis)
        .replace(EMERGENCY_NUMBER_PLACEHOLDER, emergency)
}

/// The fixed safety message for `lang` with the configured numbers substituted (see
/// [`fill_numbers`]): the one that says a human is joining now.
pub fn safety_message(lang: Lang, numbers: &CrisisNumbers) -> String {
    let template = builtin_safety_messages()
        .and_then(|m| m.get(&lang))
        .map(|t| t.staffed.as_str())
        .unwrap_or(FALLBACK_SAFETY_MESSAGE);
    fill_numbers(template, lang, numbers)
}

/// The safety message for when nobody who could take the conversation is online: `when` (in
/// `lang`, e.g. from [`crate::decision::replies::team_return`]) says when the team can answer;
/// the numbers are always given.
pub fn unstaffed_safety_message(lang: Lang, numbers: &CrisisNumbers, when: &str) -> String {
    let template = builtin_safety_messages()
        .and_then(|m| m.get(&lang))
        .map(|t| t.unstaffed.as_str())
        .unwrap_or(FALLBACK_UNSTAFFED_MESSAGE);
    fill_numbers(template, lang, numbers).replace(WHEN_PLACEHOLDER, when)
}

/// The safety message where nothing is stored and no ticket is opened (a person without
/// consent, or not signed in): nobody from the team will read the message, so it promises no
/// one; it gives the numbers (a person answers the crisis line now) and how to reach the team.
pub fn unstored_safety_message(lang: Lang, numbers: &CrisisNumbers) -> String {
    let template = builtin_safety_messages()
        .and_then(|m| m.get(&lang))
        .map(|t| t.unstored.as_str())
        .unwrap_or(FALLBACK_UNSTORED_MESSAGE);
    fill_numbers(template, lang, numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<CrisisGate>();
    }

    #[test]
    fn safety_messages_parse_and_substitute() {
        parse_safety_messages(BUILTIN_SAFETY_MESSAGES.0, BUILTIN_SAFETY_MESSAGES.1).unwrap();
        let n = CrisisNumbers {
            crisis_line: "1111".into(),
            emergency_number: "14".into(),
        };
        for lang in Lang::ALL {
            let m = safety_message(lang, &n);
            assert!(m.contains("1111") && m.contains("14"), "{lang}: {m}");
            assert!(!m.contains("{{"), "{lang}: {m}");
        }
        // Unconfigured numbers never reach the person as placeholders.
        for lang in Lang::ALL {
            let m = safety_message(lang, &CrisisNumbers::default());
            assert!(!m.contains("{{"), "{lang}: {m}");
        }
        assert!(
            safety_message(Lang::En, &CrisisNumbers::default())
                .contains("please call your local emergency number right now")
        );
        assert!(!numbers_configured(&CrisisNumbers::default()));
        assert!(numbers_configured(&n));
    }

    /// Where nothing is stored, the message says so and promises nobody: no "joining", no
    /// "will answer you here", in any language; the numbers and the way to the team are there.
    #[test]
    fn the_unstored_safety_message_promises_nobody_in_every_language() {
        let n = CrisisNumbers {
            crisis_line: "3033".into(),
            emergency_number: "14".into(),
        };
        // (a promise of a human that only a stored conversation can keep, what it must say)
        let cases = [
            (
                Lang::Ar,
                ["ينضم", "سيرد عليك"],
                ["لم تُحفظ", "سجّل الدخول", "تتحدث فيه إلى شخص"],
            ),
            (
                Lang::Fr,
                ["rejoint", "vous répondra"],
                [
                    "n'a pas été conservé",
                    "connectez-vous",
                    "parler à quelqu'un",
                ],
            ),
            (
                Lang::En,
                ["joining", "will answer you"],
                ["was not kept", "sign in", "talk to a person"],
            ),
        ];
        for (lang, promises, facts) in cases {
            let m = unstored_safety_message(lang, &n);
            assert!(m.contains("3033") && m.contains("14"), "{lang}: {m}");
            assert!(!m.contains("{{"), "{lang}: {m}");
            for p in promises {
                assert!(!m.contains(p), "{lang} promises {p:?}: {m}");
            }
            for f in facts {
                assert!(m.contains(f), "{lang} lacks {f:?}: {m}");
            }
            // The staffed message does make the promise: the check above can fail.
            assert!(safety_message(lang, &n).contains(promises[0]), "{lang}");
            let unconfigured = unstored_safety_message(lang, &CrisisNumbers::default());
            assert!(!unconfigured.contains("{{"), "{lang}: {unconfigured}");
        }
        // A file whose unstored text promises a time is refused.
        let bad = BUILTIN_SAFETY_MESSAGES.1.replacen(
            "your message will then reach the team.",
            "{{WHEN}}",
            1,
        );
        let e = parse_safety_messages("x.toml", &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[en] unstored must not use {{WHEN}}"), "{e}");
    }
}
