//! The crisis gate and the human-request detector (steps 1 and 2 of the AUTO decision): rule
//! files, their examples, the team's evaluation set, idioms, mixed languages, safety messages.
//! None of these tests needs the database.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use amal_engine::decision::crisis::{
    BUILTIN_RULE_FILES, BUILTIN_SETS, CrisisGate, CrisisKind, CrisisNumbers, eval, safety_message,
};
use amal_engine::decision::human_request::HumanRequestDetector;
use amal_engine::decision::rules::{RuleSet, RuleSource};
use amal_engine::decision::scope::ScopeDetector;
use amal_engine::lang::normalize::Lang;

/// The highest false-escalation rate allowed on the team's evaluation set (look-alikes that
/// fire the gate). Measured when the rules were written: 0 of 224 (see README.md, "Crisis gate");
/// the ceiling adds a small margin (about 4 messages) so that a rule change that makes the gate
/// noisier is noticed, while recall must stay at 100%.
const EVAL_FALSE_ESCALATION_CEILING: f64 = 0.02;
/// The same for the development set (seeds/crisis/dev.jsonl): measured 0 of 107.
const DEV_FALSE_ESCALATION_CEILING: f64 = 0.03;

fn gate() -> &'static CrisisGate {
    static GATE: OnceLock<CrisisGate> = OnceLock::new();
    GATE.get_or_init(|| CrisisGate::builtin().expect("the built-in crisis rules load"))
}

fn human() -> &'static HumanRequestDetector {
    static H: OnceLock<HumanRequestDetector> = OnceLock::new();
    H.get_or_init(|| {
        HumanRequestDetector::builtin().expect("the built-in human-request rules load")
    })
}

/// The repository's root: built-in rule files are named by their path from it.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The evaluation sets.
fn seeds() -> PathBuf {
    repo_root().join("seeds/crisis")
}

#[test]
fn every_shipped_rule_file_loads_on_its_own() {
    let sets = [RuleSource::new(BUILTIN_SETS.0, BUILTIN_SETS.1)];
    for (name, text) in BUILTIN_RULE_FILES {
        let set = RuleSet::load(
            &sets,
            &[RuleSource::new(*name, *text)],
            &CrisisKind::ALL.map(|k| k.as_str()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            set.rules().len() >= 5,
            "{name} has only {} rules",
            set.rules().len()
        );
    }
    // The files on disk are the ones compiled in (nobody edited a copy).
    for (name, text) in BUILTIN_RULE_FILES {
        let disk = std::fs::read_to_string(repo_root().join(name)).unwrap();
        assert_eq!(&disk, text, "{name}");
    }
    let g = gate();
    assert!(g.rules().rules().len() >= 40);
    assert!(human().rules().rules().len() >= 3);
}

#[test]
fn gate_is_shareable() {
    fn check<T: Send + Sync + 'static>() {}
    check::<CrisisGate>();
    check::<HumanRequestDetector>();
    let g = Arc::new(CrisisGate::builtin().unwrap());
    let g2 = Arc::clone(&g);
    let t = std::thread::spawn(move || g2.assess("I want to die").is_some());
    assert!(t.join().unwrap());
}

/// Every rule's `examples` fire that very rule, and its `non_examples` fire nothing at all.
fn check_examples(set: &RuleSet, fires: impl Fn(&str) -> Option<String>) {
    let mut failures = Vec::new();
    for (i, rule) in set.rules().iter().enumerate() {
        for ex in &rule.examples {
            if !set.rule_fires(i, ex) {
                failures.push(format!("{}: example does not fire: {ex:?}", rule.id));
            }
        }
        for ne in &rule.non_examples {
            if let Some(other) = fires(ne) {
                failures.push(format!("{}: non-example fires {other}: {ne:?}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn crisis_rule_examples() {
    check_examples(gate().rules(), |t| gate().assess(t).map(|m| m.rule_id));
}

#[test]
fn human_request_rule_examples() {
    check_examples(human().rules(), |t| human().detect(t).map(|m| m.rule_id));
}

fn scope() -> &'static ScopeDetector {
    static S: OnceLock<ScopeDetector> = OnceLock::new();
    S.get_or_init(|| ScopeDetector::builtin().expect("the built-in scope rules load"))
}

#[test]
fn scope_rule_examples() {
    check_examples(scope().rules(), |t| scope().off_topic(t).map(|m| m.rule_id));
}

/// The questions of a `seeds/knowledge/*.jsonl` set.
fn questions(name: &str) -> Vec<String> {
    std::fs::read_to_string(repo_root().join("seeds/knowledge").join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["q"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Off-topic questions are recognised, the service's own questions and every message of the
/// crisis sets never are (a person in distress must not be told "that is not what we do").
#[test]
fn scope_separates_other_subjects_from_the_services_own() {
    let off: Vec<String> = questions("out_of_scope.jsonl");
    let missed: Vec<&String> = off
        .iter()
        .filter(|q| scope().off_topic(q).is_none())
        .collect();
    println!(
        "off-topic recognised: {} of {}",
        off.len() - missed.len(),
        off.len()
    );
    assert!(
        missed.is_empty(),
        "not recognised as off-topic: {missed:#?}"
    );
    let own = questions("eval.jsonl");
    let wrong: Vec<String> = own
        .iter()
        .filter_map(|q| scope().off_topic(q).map(|m| format!("{q} ({})", m.rule_id)))
        .collect();
    assert!(
        wrong.is_empty(),
        "the service's questions taken as off-topic: {wrong:#?}"
    );
    for set in ["eval.jsonl", "dev.jsonl"] {
        let text = std::fs::read_to_string(repo_root().join("seeds/crisis").join(set)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let msg = v["text"].as_str().unwrap_or_default();
            if v["crisis"].as_bool() == Some(true) {
                assert!(
                    scope().off_topic(msg).is_none(),
                    "{set}: a crisis message taken as off-topic: {msg}"
                );
            }
        }
    }
}

/// Runs a set of `seeds/crisis/` through the library's evaluation; prints the report (with every
/// false escalation); returns the misses and the false-escalation rate.
fn run_set(name: &str) -> (Vec<String>, f64) {
    let cases = eval::load_cases(&seeds().join(name)).unwrap();
    let report = eval::evaluate(gate(), &cases);
    println!("{name}:\n{}", report.render(None, true));
    let misses = report
        .misses
        .iter()
        .map(|m| format!("[{} {} {}] {}", m.lang, m.variety, m.kind, m.text))
        .collect();
    let rate = report
        .overall
        .false_escalation_rate()
        .unwrap_or_else(|| panic!("{name} has no look-alikes"));
    (misses, rate)
}

#[test]
fn shipped_eval_set_full_recall_and_bounded_false_escalation() {
    let (misses, rate) = run_set("eval.jsonl");
    assert!(misses.is_empty(), "missed crises:\n{}", misses.join("\n"));
    assert!(
        rate <= EVAL_FALSE_ESCALATION_CEILING,
        "false-escalation rate {:.1}% above the ceiling {:.1}%",
        100.0 * rate,
        100.0 * EVAL_FALSE_ESCALATION_CEILING
    );
}

#[test]
fn dev_set_full_recall_and_bounded_false_escalation() {
    let (misses, rate) = run_set("dev.jsonl");
    assert!(misses.is_empty(), "missed crises:\n{}", misses.join("\n"));
    assert!(
        rate <= DEV_FALSE_ESCALATION_CEILING,
        "false-escalation rate {rate}"
    );
}

#[test]
fn quoted_idioms_never_fire() {
    for t in [
        "this exam is killing me",
        "This exam is KILLING me 😩",
        "je meurs de faim",
        "je meurs de faiiiim",
        "Je meurs de faim, on mange quand ?",
        "أموت من الضحك",
        "أمووووت من الضحك 😂",
        "اموت من الضحك",
        "rani nmout bel dahk",
        "I'd kill for a coffee",
        "j'ai fait une overdose de séries",
        "je suis mort de rire",
        "my boss is killing me with these deadlines",
    ] {
        assert_eq!(gate().assess(t), None, "{t:?}");
    }
}

#[test]
fn crisis_in_every_language_and_variety() {
    for (t, lang) in [
        ("I want to kill myself", Lang::En),
        ("je veux mourir", Lang::Fr),
        ("أريد أن أموت", Lang::Ar),
        ("بغيت نموت", Lang::Ar),
        ("bghit nmout", Lang::Ar),
        ("nheb n9tel rou7i", Lang::Ar),
    ] {
        let m = gate()
            .assess(t)
            .unwrap_or_else(|| panic!("{t:?} did not fire"));
        assert_eq!(m.language, lang, "{t:?}");
    }
    let m = gate().assess("Je veux MOURIIIR.").unwrap();
    assert_eq!(m.kind, CrisisKind::SuicidalIdeation);
    assert!(m.rule_id.starts_with("fr."), "{}", m.rule_id);
    assert_eq!(m.matched, "Je veux MOURIIIR");
}

#[test]
fn mixed_language_messages() {
    for t in [
        "wallah j'en peux plus, bghit nmout",
        "franchement je veux mourir, rani 3yit",
        "rani ncharet again, the cuts won't stop bleeding",
        "بغيت نموت honestly, i'm done",
        "i took all my lyrica w rani ndokh",
        "khouya kla ga3 dwa ta3 yemma and he's not waking up",
        "ma sœur راهي تشرب جافيل",
    ] {
        assert!(gate().assess(t).is_some(), "{t:?} did not fire");
    }
    for t in [
        "je meurs de faim wallah, rani ndokh",
        "this exam is killing me, rani 3yit",
        "c'est quoi la dose max ta3 paracetamol par jour ?",
    ] {
        assert_eq!(gate().assess(t), None, "{t:?}");
    }
}

#[test]
fn human_requests_in_all_languages() {
    for t in [
        "I want to talk to someone",
        "can I speak to a real person please",
        "i need a human",
        "is there a counsellor I can talk to?",
        "je veux parler à un conseiller",
        "est-ce que je peux parler à quelqu'un ?",
        "je voudrais parler avec un humain",
        "بغيت نهدر مع واحد",
        "نحب نهدر مع شخص",
        "ابغي نتكلم مع مختص",
        "أريد التحدث مع شخص حقيقي",
        "3andi l7aja nahder m3a wahed",
        "bghit nahder m3a chi wa7ed",
        "nheb nahdar m3a bnadem",
    ] {
        assert!(human().detect(t).is_some(), "{t:?} not detected");
    }
    for t in [
        "talking to someone about it is hard",
        "I talked to someone yesterday and it helped",
        "what is a counsellor?",
        "how do I stop smoking?",
        "je n'arrive pas à parler à quelqu'un de mes problèmes",
        "هدرت مع واحد البارح",
    ] {
        assert_eq!(human().detect(t), None, "{t:?}");
    }
}

#[test]
fn safety_message_per_language_with_configured_numbers() {
    let numbers = CrisisNumbers {
        crisis_line: "3033".into(),
        emergency_number: "14".into(),
    };
    for lang in Lang::ALL {
        let m = safety_message(lang, &numbers);
        assert!(m.contains("3033") && m.contains("14"), "{lang}: {m}");
        assert!(!m.contains("{{"), "{lang}: {m}");
    }
    assert!(
        safety_message(Lang::Ar, &numbers)
            .chars()
            .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))
    );
    // Unconfigured: words, never a placeholder or an invented number.
    for lang in Lang::ALL {
        let m = safety_message(lang, &CrisisNumbers::default());
        assert!(!m.contains("{{") && !m.contains("3033"), "{lang}: {m}");
    }
}

#[test]
fn extra_rules_add_but_never_replace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.toml"),
        r#"language = "fr"
[[rule]]
id = "local.danger_to_self.test_phrase"
kind = "danger_to_self"
description = "A phrase added by the service."
patterns = ["phrase de test locale"]
examples = ["voici la phrase de test locale"]
"#,
    )
    .unwrap();
    let g = CrisisGate::with_extra_dir(dir.path()).unwrap();
    assert_eq!(
        g.assess("voici la phrase de test locale").unwrap().rule_id,
        "local.danger_to_self.test_phrase"
    );
    // Built-in rules are still there.
    assert!(g.assess("je veux mourir").is_some());

    // Re-using a built-in id is an error: nothing may replace or disable a built-in rule.
    let builtin_id = gate().rules().rules()[0].id.clone();
    std::fs::write(
        dir.path().join("local.toml"),
        format!(
            "language = \"en\"\n[[rule]]\nid = \"{builtin_id}\"\nkind = \"{}\"\ndescription = \"x\"\npatterns = [\"zzz qqq\"]\nexamples = [\"zzz qqq\"]\n",
            gate().rules().rules()[0].kind
        ),
    )
    .unwrap();
    let e = CrisisGate::with_extra_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("duplicate id") && e.contains("local.toml"),
        "{e}"
    );

    // Errors name the file and the rule.
    std::fs::write(
        dir.path().join("local.toml"),
        "language = \"en\"\n[[rule]]\nid = \"x.sadness.y\"\nkind = \"sadness\"\ndescription = \"x\"\npatterns = [\"a b\"]\nexamples = [\"a b\"]\n",
    )
    .unwrap();
    let e = CrisisGate::with_extra_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("local.toml") && e.contains("x.sadness.y") && e.contains("unknown kind"),
        "{e}"
    );
}
