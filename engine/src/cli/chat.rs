//! `amal-engine chat`: talk to the assistant as an end user, for admins to try it.
//!
//! Every line is posted as a real message of a real conversation (stored, decided, answered,
//! and escalated to a ticket when the decision says so), exactly as the server would.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::config::Config;
use amal_engine::conversations::{self, ContentError, ConversationError, MessageContent};
use amal_engine::db;
use amal_engine::decision::auto::Mode;
use amal_engine::lang::Lang;
use amal_engine::turn::{self, TurnError};

/// The end user `chat` writes as unless `--as` names another.
pub const DEMO_USER: &str = "chat.demo@example.dz";

/// Arguments of `amal-engine chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The conversation's language (default: detected from the first message).
    #[arg(long)]
    lang: Option<Lang>,
    /// The end user to write as (created with consent if missing).
    #[arg(long = "as", value_name = "EMAIL", default_value = DEMO_USER)]
    user: String,
    /// AUTO, RAG or SUPPORT.
    #[arg(long, default_value = "AUTO")]
    mode: Mode,
}

/// Marks the accounts this tool creates (and matches no password: they cannot sign in).
const CHAT_ACCOUNT_HASH: &str = "!chat-demo";

/// The end user with this e-mail, created (with consent to storage, as the sign-up flow
/// requires) when missing. Only accounts this tool created are reused: writing into a real
/// person's account would put an admin's test messages, decisions and tickets in their
/// history. Staff accounts are refused: chat is the end user's side.
async fn end_user(pool: &PgPool, email: &str, lang: Option<Lang>) -> Result<Uuid> {
    let found: Option<(Uuid, Option<String>, String)> = sqlx::query_as(
        "SELECT id, staff_role, password_hash FROM users WHERE email = $1 AND deleted_at IS NULL",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    if let Some((id, role, hash)) = found {
        anyhow::ensure!(
            role.is_none(),
            "{email} is a staff account ({}); chat as an end user",
            role.unwrap_or_default()
        );
        anyhow::ensure!(
            hash == CHAT_ACCOUNT_HASH,
            "{email} is a person's account; chat writes only as accounts it creates \
             (choose an e-mail address that is not in use)"
        );
        return Ok(id);
    }
    // The placeholder hash matches no password: this account cannot log in.
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
         VALUES ($1, $3, 'Chat demo', $2, true, now()) \
         ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email \
         WHERE users.password_hash = $3 AND users.staff_role IS NULL RETURNING id",
    )
    .bind(email)
    .bind(lang.unwrap_or(Lang::Ar).locale())
    .bind(CHAT_ACCOUNT_HASH)
    .fetch_optional(pool)
    .await
    .with_context(|| format!("creating the end user {email}"))?
    .with_context(|| format!("{email} is already in use by an account chat did not create"))
}

/// Prints the team's messages (public ticket comments delivered into the conversation) that
/// have not been shown yet: they arrive between the person's turns, not as a turn's reply.
async fn show_team_replies(
    pool: &PgPool,
    conversation: Uuid,
    seen: &mut HashSet<Uuid>,
) -> Result<()> {
    let page = conversations::page(&mut *pool.acquire().await?, conversation, None, 50)
        .await
        .context("reading the conversation")?;
    for m in page.messages {
        if seen.insert(m.id) && m.role == "staff" {
            println!("\n[team] {}\n", m.content);
        }
    }
    Ok(())
}

/// Runs `amal-engine chat`.
pub async fn run(config: &Config, args: ChatArgs) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let engine = super::decide::engine(&pool).await?;
    let user = end_user(&pool, &args.user, args.lang).await?;
    let conversation = conversations::start(&pool, user, args.mode, args.lang).await?;
    eprintln!(
        "conversation {} ({}) as {}; type a message, an empty line to see the team's replies, \
         /quit or end of input to leave",
        conversation.id,
        args.mode.as_str(),
        args.user
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut seen: HashSet<Uuid> = HashSet::new();
    loop {
        show_team_replies(&pool, conversation.id, &mut seen).await?;
        eprint!("> ");
        std::io::stderr().flush().ok();
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        if line.trim() == "/quit" {
            break;
        }
        let content = match MessageContent::parse(&line) {
            Ok(c) => c,
            Err(ContentError::Empty) => continue,
            Err(e) => {
                eprintln!("not sent: {e}");
                continue;
            }
        };
        let key = Uuid::new_v4().to_string();
        let turn =
            match turn::post_message(&pool, &engine, conversation.id, Some(&key), &content).await {
                Ok(t) => t,
                Err(TurnError::Conversation(ConversationError::NotActive { status, .. })) => {
                    eprintln!("the conversation is {status}; start a new chat");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
        seen.extend([turn.user_message.id, turn.reply.id]);
        println!("\n{}\n", turn.reply.content);
        let d = &turn.decision;
        let mut line = format!(
            "[{} · {} · confidence {:.2} · {}",
            d.decision,
            d.reason_code.as_deref().unwrap_or("-"),
            d.confidence,
            d.reason_en.as_deref().unwrap_or("")
        );
        if let Some(t) = &turn.ticket {
            line.push_str(&format!(
                " · ticket {} ({}, {})",
                t.ticket_number, t.category, t.priority
            ));
        }
        line.push(']');
        println!("{line}");
        if let Some(cited) = turn
            .reply
            .metadata
            .get("citations")
            .and_then(|c| c.as_array())
        {
            for c in cited {
                println!(
                    "  cited: {} ({})",
                    c["title"].as_str().unwrap_or("?"),
                    c["source"].as_str().unwrap_or("-")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
