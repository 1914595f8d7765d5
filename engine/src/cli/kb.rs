//! `amal-engine kb ...`: the knowledge base.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::knowledge::store::{self, IngestOptions, IngestOutcome};
use amal_engine::knowledge::{Embedder, Retriever, SearchRequest, eval, sentences};
use amal_engine::lang::Lang;
use amal_engine::staff;

/// Subcommands of `amal-engine kb`.
#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Ingest Markdown, text and HTML files and folders (recursively).
    Ingest {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Mark the documents approved (trusted sources).
        #[arg(long)]
        approve: bool,
        /// The staff account ingesting (recorded as reviewer and in the audit trail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
        /// Print the summary and every file's outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Review queue: list, approve or reject documents.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Search approved knowledge (hybrid: vectors + full text).
    Search(SearchArgs),
    /// Recall@1/5/10 and MRR per language on a JSONL evaluation set.
    Eval {
        /// Lines of {"q": ..., "lang": ..., "expect": [source or title, ...]}.
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Search every language and bring hits to the query's language through translations,
        /// as the decision does (default: the query's language only).
        #[arg(long)]
        across: bool,
    },
    /// Re-embed every chunk with the configured embedder (changes the vector dimension if needed).
    Reembed,
    /// Embed the sentences of every chunk that has no sentence vectors yet (answers then choose
    /// sentences by meaning as well as words; the server does it in the background).
    Sentences,
    /// Fit the confidence calibration on an evaluation set plus out-of-scope queries.
    Calibrate {
        /// The evaluation set (in-scope queries).
        file: PathBuf,
        /// Out-of-scope queries, one JSON object per line with "q" and "lang".
        #[arg(long)]
        negatives: PathBuf,
    },
}

/// Subcommands of `amal-engine kb review`.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List documents awaiting review (or with another status).
    List {
        /// pending (default), approved, rejected or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a document: its chunks become retrievable.
    Approve {
        /// The document's id.
        id: Uuid,
        /// The reviewing admin.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
    /// Reject a document with a reason.
    Reject {
        /// The document's id.
        id: Uuid,
        /// Why.
        #[arg(long)]
        reason: String,
        /// The reviewing admin.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
}

/// Arguments of `kb search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query.
    query: String,
    /// Only this language (ar, fr, en).
    #[arg(long)]
    lang: Option<Lang>,
    /// Only this category.
    #[arg(long)]
    category: Option<String>,
    /// Number of results.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    k: u16,
    /// Print one JSON object with a `results` array.
    #[arg(long)]
    json: bool,
    /// Search every language and answer in --lang through translations, as the decision does
    /// (needs --lang; no --category).
    #[arg(long, requires = "lang", conflicts_with = "category")]
    across: bool,
}

/// The embedder from the environment, checked against the stored vectors.
async fn embedder(pool: &PgPool) -> Result<Embedder> {
    let embedder = Embedder::from_env()
        .await
        .context("configuring the embedder")?;
    store::ensure_embedder_matches(pool, &embedder).await?;
    Ok(embedder)
}

async fn actor(pool: &PgPool, email: &str) -> Result<staff::Actor> {
    let mut conn = pool.acquire().await?;
    Ok(staff::actor_by_email(&mut conn, email).await?)
}

/// Runs shorter than this many items get no progress bar.
const MIN_PROGRESS_BAR: u64 = 20;

fn progress_bar(len: u64) -> ProgressBar {
    // Long runs only, and only on a terminal: scripts and CI get the summary alone.
    if len < MIN_PROGRESS_BAR || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(progress_style());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {bar:40} {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]",
    )
    .expect("progress template")
}

/// Runs one `amal-engine kb` subcommand.
pub async fn run(config: &Config, cmd: KbCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    match cmd {
        KbCommand::Ingest {
            paths,
            approve,
            actor: actor_email,
            json,
        } => {
            let embedder = embedder(&pool).await?;
            let actor = match actor_email {
                Some(email) => Some(actor(&pool, &email).await?),
                None => None,
            };
            let (files, _) = amal_engine::knowledge::source::collect(&paths);
            let bar = progress_bar(files.len() as u64);
            let on_file = {
                let bar = bar.clone();
                move |report: &store::FileReport| {
                    if let IngestOutcome::Rejected { reason } = &report.outcome {
                        bar.suspend(|| eprintln!("rejected {}: {reason}", report.source));
                    }
                    bar.inc(1);
                }
            };
            let options = IngestOptions {
                approve,
                actor,
                ..Default::default()
            };
            let summary = store::ingest_paths(
                &pool,
                &embedder,
                &paths,
                &options,
                store::INGEST_WORKERS,
                on_file,
            )
            .await?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "documents: {} new, {} updated, {} unchanged, {} rejected; chunks: {}; {:.2} s",
                    summary.new,
                    summary.updated,
                    summary.unchanged,
                    summary.rejected,
                    summary.chunks,
                    summary.seconds
                );
            }
            // Bad files are reported, not fatal: the batch's other files are in.
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Review(review) => run_review(&pool, review).await,
        KbCommand::Search(args) => {
            let retriever = Retriever::new(embedder(&pool).await?);
            let outcome = match (args.across, args.lang) {
                (true, Some(lang)) => {
                    retriever
                        .search_across(&pool, &args.query, lang, args.k as usize)
                        .await?
                }
                _ => {
                    retriever
                        .search(
                            &pool,
                            &SearchRequest {
                                text: &args.query,
                                lang: args.lang,
                                category: args.category.as_deref(),
                                k: args.k as usize,
                            },
                        )
                        .await?
                }
            };
            if args.json {
                let results: Vec<_> = outcome
                    .results
                    .iter()
                    .map(|h| {
                        json!({
                            "document_id": h.document_id,
                            "title": h.title,
                            "source": h.source,
                            "lang": h.lang,
                            "chunk_index": h.chunk_index,
                            "score": h.score,
                            "parts": {
                                "vector_rank": h.vector_rank,
                                "vector_similarity": h.vector_similarity,
                                "text_rank": h.text_rank,
                                "text_score": h.text_score,
                            },
                            "content": h.content,
                            "translated_from": h.translated_from,
                        })
                    })
                    .collect();
                let corrections: Vec<_> = outcome
                    .corrections
                    .iter()
                    .map(|(typed, used)| json!({"typed": typed, "used": used}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "query": args.query,
                        "lang": args.lang,
                        "confidence": outcome.confidence,
                        "corrections": corrections,
                        "results": results,
                    }))?
                );
            } else {
                println!("confidence {:.2}", outcome.confidence);
                for (typed, used) in &outcome.corrections {
                    println!("(searched `{typed}` as `{used}`)");
                }
                for (i, h) in outcome.results.iter().enumerate() {
                    println!(
                        "{:>2}. {:.4}  [{} #{}] {}  (vector {} sim {:.3}; text {} {:.4})\n    {}\n    {}",
                        i + 1,
                        h.score,
                        h.lang,
                        h.chunk_index,
                        h.title,
                        h.vector_rank.map_or("-".into(), |r| format!("#{r}")),
                        h.vector_similarity,
                        h.text_rank.map_or("-".into(), |r| format!("#{r}")),
                        h.text_score.unwrap_or(0.0),
                        h.source.as_deref().unwrap_or("-"),
                        h.document_id,
                    );
                    if let Some(from) = &h.translated_from {
                        println!("    (matched in {}: {})", from.lang, from.title);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Eval { file, json, across } => {
            let retriever = Retriever::new(embedder(&pool).await?);
            let cases = eval::load_cases(&file)?;
            let scope = if across {
                eval::SearchScope::Across
            } else {
                eval::SearchScope::InLanguage
            };
            let report = eval::evaluate_scoped(&pool, &retriever, &cases, scope).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{:<8} {:>7} {:>9} {:>9} {:>10} {:>7}",
                    "lang", "queries", "recall@1", "recall@5", "recall@10", "MRR"
                );
                let rows = report
                    .per_lang
                    .iter()
                    .map(|(l, m)| (l.to_string(), m))
                    .chain([("all".to_string(), &report.overall)]);
                for (lang, m) in rows {
                    println!(
                        "{:<8} {:>7} {:>9.3} {:>9.3} {:>10.3} {:>7.3}",
                        lang, m.queries, m.recall_at_1, m.recall_at_5, m.recall_at_10, m.mrr
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Reembed => {
            let embedder = Embedder::from_env()
                .await
                .context("configuring the embedder")?;
            // Drawn from the first report on, which says how many chunks are to do: a run with
            // nothing (or little) to do draws no bar at all.
            let bar = ProgressBar::hidden();
            let summary = store::reembed(&pool, &embedder, store::REEMBED_BATCH, {
                let bar = bar.clone();
                move |done, todo| {
                    if done == 0 && todo >= MIN_PROGRESS_BAR && std::io::stderr().is_terminal() {
                        bar.set_style(progress_style());
                        bar.set_draw_target(ProgressDrawTarget::stderr());
                        bar.enable_steady_tick(Duration::from_millis(200));
                    }
                    bar.set_length(todo);
                    bar.set_position(done);
                }
            })
            .await?;
            bar.finish_and_clear();
            let (model, dimension) = (embedder.model(), embedder.dimension());
            if summary.embedded > 0 {
                println!(
                    "re-embedded {} chunks with {model} ({dimension} dimensions) in {:.1} s \
                     ({:.1} chunks/s); {} already were",
                    summary.embedded,
                    summary.seconds,
                    summary.embedded as f64 / summary.seconds.max(1e-9),
                    summary.already_current,
                );
            } else {
                println!(
                    "all {} chunks are embedded with {model} ({dimension} dimensions): nothing to do",
                    summary.already_current
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Sentences => {
            let embedder = embedder(&pool).await?;
            if !sentences::has_meaning(&embedder) {
                println!(
                    "the {} embedder has no notion of meaning: answers choose sentences by words",
                    embedder.model()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let started = std::time::Instant::now();
            let done = fill_sentences(&pool, &embedder).await?;
            println!(
                "sentence vectors for {done} chunks in {:.1} s; {} chunks still without",
                started.elapsed().as_secs_f64(),
                sentences::missing(&pool, embedder.model()).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        KbCommand::Calibrate { file, negatives } => {
            let retriever = Retriever::new(embedder(&pool).await?);
            let cases = eval::load_cases(&file)?;
            let negatives = eval::load_negatives(&negatives)?;
            let fitted = eval::calibrate(&pool, &retriever, &cases, &negatives).await?;
            println!("{}", serde_json::to_string_pretty(&fitted)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_review(pool: &PgPool, cmd: ReviewCommand) -> Result<ExitCode> {
    match cmd {
        ReviewCommand::List { status, json } => {
            let status = match status.as_str() {
                "all" => None,
                s @ ("pending" | "approved" | "rejected") => Some(s),
                other => bail!(
                    "unknown review status `{other}` (expected pending, approved, rejected or all)"
                ),
            };
            let mut conn = pool.acquire().await?;
            let docs = store::list_documents(&mut conn, status).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else if docs.is_empty() {
                println!("no documents");
            } else {
                for d in docs {
                    println!(
                        "{}  {:<8} {}  {:<40}  {} chunks, {} redactions  {}",
                        d.id,
                        d.review_status,
                        d.lang,
                        d.title.chars().take(40).collect::<String>(),
                        d.chunk_count,
                        d.pii_redactions,
                        d.source.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        ReviewCommand::Approve { id, actor: email } => {
            let actor = actor(pool, &email).await?;
            store::approve(pool, id, &actor).await?;
            println!("approved {id}");
        }
        ReviewCommand::Reject {
            id,
            reason,
            actor: email,
        } => {
            let actor = actor(pool, &email).await?;
            store::reject(pool, id, &actor, &reason).await?;
            println!("rejected {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Embeds the sentences of every chunk without sentence vectors ([`sentences::fill_all`]), on
/// every core, with a progress bar on a terminal; returns how many chunks it did.
pub async fn fill_sentences(pool: &PgPool, embedder: &Embedder) -> Result<usize> {
    let bar = ProgressBar::hidden();
    let done = sentences::fill_all(pool, embedder, 16, {
        let bar = bar.clone();
        move |done, total| {
            if bar.is_hidden()
                && total >= MIN_PROGRESS_BAR as usize
                && std::io::stderr().is_terminal()
            {
                bar.set_style(progress_style());
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(200));
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    })
    .await
    .context("embedding the chunks' sentences")?;
    bar.finish_and_clear();
    Ok(done)
}
