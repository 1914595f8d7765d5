//! `amal-engine canned ...`: the canned replies staff insert into a reply. Everyone on staff
//! may list them; supervisors and admins add, edit and remove them (`--as EMAIL`, audited).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use uuid::Uuid;

use amal_engine::canned::{self, CannedChange};
use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::lang::Lang;
use amal_engine::staff;

/// Subcommands of `amal-engine canned`.
#[derive(Debug, Subcommand)]
pub enum CannedCommand {
    /// List the canned replies (of one language with --lang), with their ids.
    List {
        /// ar, fr or en.
        #[arg(long)]
        lang: Option<String>,
        /// The staff account asking (any role).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a canned reply (supervisors and admins). Placeholders: {{name}} (the person's
    /// name, or a neutral form) and {{crisis_line}} (the configured crisis line).
    Add {
        /// ar, fr or en.
        #[arg(long)]
        lang: String,
        /// What the picker shows (one line, at most 80 characters).
        #[arg(long)]
        title: String,
        /// The text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// The supervisor or admin acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Edit a canned reply: its title, text or language (supervisors and admins).
    Edit {
        /// The reply's id (`canned list`).
        id: Uuid,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        /// A new text.
        #[arg(long)]
        text: Option<String>,
        /// A new language.
        #[arg(long)]
        lang: Option<String>,
        /// The supervisor or admin acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Remove a canned reply (supervisors and admins; its text stays in the audit log).
    Remove {
        /// The reply's id (`canned list`).
        id: Uuid,
        /// The supervisor or admin acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
}

fn parse_lang(code: &str) -> Result<Lang> {
    code.parse::<Lang>()
        .with_context(|| format!("--lang {code}"))
}

/// Runs one `amal-engine canned` subcommand.
pub async fn run(config: &Config, cmd: CannedCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    let as_staff = async |conn: &mut sqlx::PgConnection, email: &str| {
        staff::actor_by_email(conn, email)
            .await
            .with_context(|| format!("--as {email}"))
    };
    match cmd {
        CannedCommand::List { lang, actor, json } => {
            if let Some(email) = actor.as_deref() {
                as_staff(&mut conn, email).await?;
            }
            let lang = lang.as_deref().map(parse_lang).transpose()?;
            let list = canned::list(&mut conn, lang).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no canned replies");
            } else {
                for r in &list {
                    println!("{}  {}  {}", r.id, r.lang.code(), r.title);
                    for line in r.body.lines() {
                        println!("    {line}");
                    }
                }
            }
        }
        CannedCommand::Add {
            lang,
            title,
            text,
            actor,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let lang = parse_lang(&lang)?;
            let reply = canned::add(&mut conn, &actor, lang, &title, &text.join(" "))
                .await
                .context("adding the canned reply")?;
            println!(
                "added {} ({} · {})",
                reply.id,
                reply.lang.code(),
                reply.title
            );
        }
        CannedCommand::Edit {
            id,
            title,
            text,
            lang,
            actor,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let change = CannedChange {
                title,
                body: text,
                lang: lang.as_deref().map(parse_lang).transpose()?,
            };
            if change == CannedChange::default() {
                bail!("nothing to change: give --title, --text or --lang");
            }
            let reply = canned::edit(&mut conn, &actor, id, &change)
                .await
                .with_context(|| format!("editing canned reply {id}"))?;
            println!(
                "edited {} ({} · {})",
                reply.id,
                reply.lang.code(),
                reply.title
            );
        }
        CannedCommand::Remove { id, actor } => {
            let actor = as_staff(&mut conn, &actor).await?;
            canned::remove(&mut conn, &actor, id)
                .await
                .with_context(|| format!("removing canned reply {id}"))?;
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
