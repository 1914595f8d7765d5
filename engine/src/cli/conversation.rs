//! `amal-engine conversation`: staff tools over people's conversations.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use amal_engine::config::Config;
use amal_engine::lang::Lang;
use amal_engine::{conversations, db, staff};

/// `amal-engine conversation ...`
#[derive(Debug, Subcommand)]
pub enum ConversationCommand {
    /// Full-text search over messages (audited: the query and the number found).
    Search {
        /// Words to find (web-search syntax: "exact phrase", -excluded, or).
        query: String,
        /// The staff member searching.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// Search in one language's text configuration only (default: all three).
        #[arg(long)]
        lang: Option<Lang>,
        /// Most messages shown.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print a JSON array of messages found.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `amal-engine conversation ...`.
pub async fn run(config: &Config, command: ConversationCommand) -> Result<ExitCode> {
    match command {
        ConversationCommand::Search {
            query,
            actor,
            lang,
            limit,
            json,
        } => {
            let pool = db::connect_and_migrate(config).await?;
            let mut conn = pool.acquire().await?;
            let actor = staff::actor_by_email(&mut conn, &actor)
                .await
                .with_context(|| format!("signing in as {actor}"))?;
            drop(conn);
            let hits = conversations::search_messages(&pool, &actor, &query, lang, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("no message matches {query:?}");
            } else {
                for h in &hits {
                    println!(
                        "{}  conversation {}  {:<9}  {}",
                        h.created_at.format("%Y-%m-%d %H:%M"),
                        h.conversation_id,
                        h.role,
                        h.snippet.replace('\n', " ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
