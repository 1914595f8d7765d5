//! `amal-engine decide "TEXT" [--lang ar|fr|en] [--json]`: a dry run of the AUTO decision.
//!
//! It only reads (retrieval over approved knowledge): no conversation, message, decision log or
//! ticket is written. `--json` prints one object whose `decision`, `category`, `priority`,
//! `reason_code` and `confidence` keys are a contract used by acceptance checks.
//!
//! `amal-engine decide --file FILE.jsonl` decides on every line (`{"q": "...", "lang": "fr"}`,
//! `lang` optional) with one engine, prints one JSON object per line (the same object, plus
//! `q`) and a count per reason code on standard error: how a set of messages would be routed.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use sqlx::PgPool;

use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::decision::auto::{Decision, DecisionEngine};
use amal_engine::knowledge::store;
use amal_engine::knowledge::{Embedder, Retriever};
use amal_engine::lang::{Lang, message_language};

/// Arguments of `amal-engine decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The message to decide on.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Decide on every line of a JSONL file of `{"q": ..., "lang": ...}` instead (one JSON
    /// object per line out).
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// The person's language (default: detected from the text, else Arabic).
    #[arg(long)]
    lang: Option<Lang>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The decision engine from the environment (embedder checked against the stored vectors,
/// crisis numbers, threshold, clarify setting).
pub async fn engine(pool: &PgPool) -> Result<DecisionEngine> {
    let embedder = Embedder::from_env()
        .await
        .context("configuring the embedder")?;
    store::ensure_embedder_matches(pool, &embedder).await?;
    let mut engine = DecisionEngine::from_env(Retriever::new(embedder))
        .context("loading the crisis and human-request rules")?;
    engine.routing =
        amal_engine::config::RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
    Ok(engine)
}

/// The decision as the `--json` contract object (plus reasons, language, reply and evidence).
pub fn decision_json(d: &Decision) -> serde_json::Value {
    json!({
        "decision": d.decision,
        "category": d.category,
        "priority": d.priority,
        "reason_code": d.reason_code,
        "confidence": d.confidence,
        "reason": d.reason,
        "lang": d.lang,
        "model_used": d.model_used,
        "prompt_tokens": d.prompt_tokens,
        "completion_tokens": d.completion_tokens,
        "reply": d.reply,
        "citations": d.answer.as_ref().map(|a| &a.citations),
        "evidence": d.evidence,
    })
}

/// Runs `amal-engine decide`.
pub async fn run(config: &Config, args: DecideArgs) -> Result<ExitCode> {
    let text = match (&args.text, &args.file) {
        (Some(text), _) => text,
        (None, Some(file)) => return run_file(config, file, args.lang).await,
        (None, None) => anyhow::bail!("give a message, or --file FILE"),
    };
    // The same rules as a posted message, before anything starts: a dry run of a message the
    // service would refuse means nothing.
    let content = amal_engine::conversations::MessageContent::parse(text)
        .map_err(|e| anyhow::anyhow!("the message is not accepted: {e}"))?;
    let text = content.as_str();
    let pool = db::connect_and_migrate(config).await?;
    let engine = engine(&pool).await?;
    let lang = args
        .lang
        .unwrap_or_else(|| message_language(text, Lang::Ar));
    let d = engine.decide(&pool, text, lang).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decision_json(&d))?);
    } else {
        println!("decision:   {}", d.decision.as_str());
        if let (Some(c), Some(p)) = (&d.category, &d.priority) {
            println!("ticket:     category {c}, priority {p}");
        }
        println!("reason:     {} ({})", d.reason_code, d.reason.en);
        println!("confidence: {:.3}", d.confidence);
        println!("language:   {}", d.lang.code());
        println!("\n{}", d.reply);
    }
    Ok(ExitCode::SUCCESS)
}

/// A line of a `decide --file` set.
#[derive(serde::Deserialize)]
struct FileLine {
    q: String,
    #[serde(default)]
    lang: Option<String>,
}

/// `decide --file`: every line of the set through one engine.
async fn run_file(config: &Config, file: &std::path::Path, lang: Option<Lang>) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut lines = Vec::new();
    for (i, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line: FileLine = serde_json::from_str(raw).with_context(|| {
            format!(
                "{}:{}: not a {{\"q\": ..., \"lang\": ...}} line",
                file.display(),
                i + 1
            )
        })?;
        let line_lang = match line.lang.as_deref() {
            Some(l) => Some(
                l.parse::<Lang>()
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?,
            ),
            None => lang,
        };
        let content = amal_engine::conversations::MessageContent::parse(&line.q).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: the message is not accepted: {e}",
                file.display(),
                i + 1
            )
        })?;
        lines.push((content, line_lang));
    }
    let pool = db::connect_and_migrate(config).await?;
    let engine = engine(&pool).await?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (content, line_lang) in &lines {
        let text = content.as_str();
        let lang = line_lang.unwrap_or_else(|| message_language(text, Lang::Ar));
        let d = engine.decide(&pool, text, lang).await;
        *counts.entry(d.reason_code.clone()).or_default() += 1;
        let mut out = decision_json(&d);
        out["q"] = json!(text);
        println!("{}", serde_json::to_string(&out)?);
    }
    for (code, n) in &counts {
        eprintln!("{code}: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
