//! `amal-engine ticket ...`: the support queue for administrators over SSH.
//!
//! Commands that change a ticket act as the staff account given with `--as EMAIL`, with that
//! account's permissions. `list` and `show` read as the machine's administrator unless `--as`
//! is given (`--queue mine` needs it).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Subcommand;

use amal_engine::config::Config;
use amal_engine::config::RoutingSettings;
use amal_engine::conversations::StaffReader;
use amal_engine::db;
use amal_engine::routing::{self, OfferAnswer};
use amal_engine::staff::{self, Actor};
use amal_engine::tickets::{
    self, CommentText, NewTicket, Queue, QueueFilter, Subject, Ticket, TicketStatus, Tier, Triage,
    Visibility,
};

use super::staff::resolve_actor;

/// Subcommands of `amal-engine ticket`.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// List a queue: open tickets by the deadline they face next.
    List {
        /// mine, unassigned, breached, open or all (all also lists resolved and closed tickets).
        #[arg(long, default_value = "all")]
        queue: String,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Only this priority (low, medium, high, urgent).
        #[arg(long)]
        priority: Option<String>,
        /// Only tickets worked in this language (ar, fr, en).
        #[arg(long = "lang", value_name = "LANG")]
        language: Option<String>,
        /// Only tickets at this tier (T1, T2, T3, manager).
        #[arg(long)]
        tier: Option<String>,
        /// The staff account asking (needed for --queue mine).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
        /// At most this many tickets.
        #[arg(long, default_value_t = 500)]
        limit: i64,
        /// Print a JSON array of tickets.
        #[arg(long)]
        json: bool,
    },
    /// Show a ticket with its SLA clock, comments and escalation history.
    Show {
        /// Ticket number (TKT-YYYY-NNNNNN).
        number: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Take an unassigned ticket; fails, naming the holder, when someone else has it.
    Take {
        /// Ticket number.
        number: String,
        /// The staff account taking it.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Accept a ticket offered to you (routing mode `offer`): it is yours.
    Accept {
        /// Ticket number.
        number: String,
        /// The staff account it was offered to.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Decline a ticket offered to you: the next member is asked.
    Decline {
        /// Ticket number.
        number: String,
        /// The staff account it was offered to.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Comment on a ticket: public (delivered to the user) unless --internal.
    Comment {
        /// Ticket number.
        number: String,
        /// The staff account writing.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
        /// Staff-only note, never shown to the user nor sent to a model.
        #[arg(long)]
        internal: bool,
        /// The text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Edit one's comment (the previous text is kept in its history; a public comment's
    /// message in the conversation follows).
    CommentEdit {
        /// The comment's id (`ticket show`).
        comment: uuid::Uuid,
        /// The staff account editing (the author, or a supervisor).
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
        /// The new text (several words are joined with spaces).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Delete a comment (soft: kept with its history; a public comment's message is withdrawn
    /// from the conversation).
    CommentDelete {
        /// The comment's id (`ticket show`).
        comment: uuid::Uuid,
        /// The staff account deleting (the author, or a supervisor).
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Change a ticket's status (open, in_progress, pending, resolved, closed).
    Status {
        /// Ticket number.
        number: String,
        /// The new status.
        status: String,
        /// The staff account acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
        /// Resolution notes (when resolving).
        #[arg(long)]
        note: Option<String>,
    },
    /// Assign or reassign a ticket (supervisor).
    Assign {
        /// Ticket number.
        number: String,
        /// The staff account to give it to.
        #[arg(long, value_name = "EMAIL")]
        to: String,
        /// The supervisor acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Put a ticket back in the unassigned queue (supervisor, or its holder).
    Release {
        /// Ticket number.
        number: String,
        /// The staff account acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Move a ticket to another tier (T1, T2, T3, manager) with a reason.
    Escalate {
        /// Ticket number.
        number: String,
        /// The new tier.
        #[arg(long)]
        tier: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// The staff account acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Re-triage a misfiled ticket (supervisors and admins): priority, category, tier and
    /// language, with a reason; the SLA deadlines follow the new priority. Audited; the person
    /// sees nothing of it.
    Triage {
        /// Ticket number.
        number: String,
        /// low, medium, high or urgent.
        #[arg(long)]
        priority: Option<String>,
        /// addiction, mental_health, prevention, resources or crisis.
        #[arg(long)]
        category: Option<String>,
        /// T1, T2, T3 or manager.
        #[arg(long)]
        tier: Option<String>,
        /// ar, fr or en.
        #[arg(long)]
        lang: Option<String>,
        /// Why (kept in the audit log).
        #[arg(long, required = true)]
        reason: String,
        /// The supervisor or admin acting.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Open a ticket for an end user.
    Open {
        /// The end user's e-mail.
        #[arg(long, value_name = "EMAIL")]
        user: String,
        /// Subject.
        #[arg(long)]
        subject: String,
        /// addiction, mental_health, prevention, resources or crisis.
        #[arg(long)]
        category: String,
        /// low, medium, high or urgent.
        #[arg(long, default_value = "medium")]
        priority: String,
        /// Details.
        #[arg(long)]
        description: Option<String>,
        /// The staff account opening it.
        #[arg(long = "as", value_name = "EMAIL", required = true)]
        actor: String,
    },
    /// Run one pass of the SLA breach sweeper.
    Sweep,
}

/// Runs one `amal-engine ticket` subcommand.
pub async fn run(config: &Config, cmd: TicketCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    match cmd {
        TicketCommand::List {
            queue,
            category,
            priority,
            language,
            tier,
            actor,
            limit,
            json,
        } => {
            let queue: Queue = queue.parse()?;
            let actor = resolve_actor(&mut conn, actor.as_deref()).await?;
            if queue == Queue::Mine && actor.is_none() {
                bail!("--queue mine needs --as EMAIL");
            }
            let filter = QueueFilter {
                queue,
                category,
                priority,
                assignee: None,
                language: language.as_deref().map(str::parse).transpose()?,
                tier: tier.as_deref().map(str::parse).transpose()?,
                limit,
            };
            let list = tickets::queue(&mut conn, actor.as_ref(), &filter, now)
                .await
                .context("listing tickets")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
        }
        TicketCommand::Show { number, json } => {
            // The machine's administrator at the CLI: not a staff read to record.
            let mut reader = StaffReader::new(None);
            let detail = tickets::detail(&mut conn, &mut reader, &number, now)
                .await
                .with_context(|| format!("showing {number}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                let t = &detail.ticket;
                println!("{}  {}", t.ticket_number, t.subject);
                println!(
                    "status {}  priority {}  category {}  tier {}  language {}  assigned to {}",
                    t.status,
                    t.priority,
                    t.category,
                    t.escalation_tier,
                    t.language.as_deref().unwrap_or("-"),
                    holder(t)
                );
                println!("created {}", t.created_at.format("%Y-%m-%d %H:%M:%S UTC"));
                println!(
                    "first response: {} ({}){}",
                    t.sla.first_response_state.0,
                    left(t.sla.first_response_remaining_seconds),
                    t.first_response_at
                        .map(|a| format!(", answered {}", a.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                );
                println!(
                    "resolution:     {} ({}){}",
                    t.sla.resolution_state.0,
                    left(t.sla.resolution_remaining_seconds),
                    if t.sla.sla_paused {
                        ", clock paused"
                    } else {
                        ""
                    }
                );
                if let Some(d) = &detail.description {
                    println!("\n{d}");
                }
                if let Some(n) = &detail.resolution_notes {
                    println!(
                        "\nresolution notes ({}): {n}",
                        detail.resolved_by.as_deref().unwrap_or("?")
                    );
                }
                for e in &detail.escalations {
                    println!(
                        "\n[{}] {} -> {} by {}: {}",
                        e.created_at.format("%Y-%m-%d %H:%M"),
                        e.from_tier,
                        e.to_tier,
                        e.actor_email.as_deref().unwrap_or("system"),
                        e.reason
                    );
                }
                for c in &detail.comments {
                    println!(
                        "\n[{}] {} ({}){}{}:\n{}",
                        c.created_at.format("%Y-%m-%d %H:%M"),
                        c.author_name,
                        c.author_email,
                        if c.is_internal {
                            " internal"
                        } else {
                            " public"
                        },
                        if c.deleted_at.is_some() {
                            ", deleted"
                        } else {
                            ""
                        },
                        c.content
                    );
                }
            }
        }
        TicketCommand::Accept { number, actor } => {
            answer_offer(&mut conn, &number, &actor, OfferAnswer::Accept, now).await?;
        }
        TicketCommand::Decline { number, actor } => {
            answer_offer(&mut conn, &number, &actor, OfferAnswer::Decline, now).await?;
        }
        TicketCommand::Take { number, actor } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let t = tickets::take(&mut conn, &actor, &number, now)
                .await
                .with_context(|| format!("taking {number}"))?;
            println!(
                "{} is now {}'s ({}, {})",
                t.ticket_number, actor.email, t.status, t.sla.sla_state.0
            );
        }
        TicketCommand::Comment {
            number,
            actor,
            internal,
            text,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let text = CommentText::new(&text.join(" "))?;
            let visibility = if internal {
                Visibility::Internal
            } else {
                Visibility::Public
            };
            let c = tickets::comment(&mut conn, &actor, &number, &text, visibility, now)
                .await
                .with_context(|| format!("commenting on {number}"))?;
            println!(
                "{} comment {} added to {number}{}",
                if c.is_internal { "internal" } else { "public" },
                c.id,
                if c.message_id.is_some() {
                    " and delivered to the user"
                } else {
                    ""
                }
            );
        }
        TicketCommand::CommentEdit {
            comment,
            actor,
            text,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let text = CommentText::new(&text.join(" "))?;
            let c = tickets::edit_comment(&mut conn, &actor, comment, &text, now)
                .await
                .with_context(|| format!("editing comment {comment}"))?;
            println!(
                "comment {} edited{}",
                c.id,
                if c.message_id.is_some() {
                    "; the user's conversation shows the new text"
                } else {
                    ""
                }
            );
        }
        TicketCommand::CommentDelete { comment, actor } => {
            let actor = as_staff(&mut conn, &actor).await?;
            tickets::delete_comment(&mut conn, &actor, comment, now)
                .await
                .with_context(|| format!("deleting comment {comment}"))?;
            println!("comment {comment} deleted (kept in its history)");
        }
        TicketCommand::Status {
            number,
            status,
            actor,
            note,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let to: TicketStatus = status.parse()?;
            let before = tickets::find(&mut conn, &number, now).await?.assigned_to_id;
            let t = tickets::set_status(&mut conn, &actor, &number, to, note.as_deref(), now)
                .await
                .with_context(|| format!("changing the status of {number}"))?;
            println!("{} is now {}", t.ticket_number, t.status);
            route_after(&mut conn, &t, before, now).await?;
        }
        TicketCommand::Assign { number, to, actor } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let t = tickets::assign(&mut conn, &actor, &number, &to, now)
                .await
                .with_context(|| format!("assigning {number}"))?;
            println!("{} is now assigned to {}", t.ticket_number, holder(&t));
        }
        TicketCommand::Release { number, actor } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let before = tickets::find(&mut conn, &number, now).await?.assigned_to_id;
            let t = tickets::release(&mut conn, &actor, &number, now)
                .await
                .with_context(|| format!("releasing {number}"))?;
            println!(
                "{} is back in the unassigned queue ({})",
                t.ticket_number, t.status
            );
            route_after(&mut conn, &t, before, now).await?;
        }
        TicketCommand::Escalate {
            number,
            tier,
            reason,
            actor,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let tier: Tier = tier.parse()?;
            let t = tickets::escalate(&mut conn, &actor, &number, tier, &reason, now)
                .await
                .with_context(|| format!("escalating {number}"))?;
            println!("{} is now at tier {}", t.ticket_number, t.escalation_tier);
            route_after(&mut conn, &t, None, now).await?;
        }
        TicketCommand::Triage {
            number,
            priority,
            category,
            tier,
            lang,
            reason,
            actor,
        } => {
            let change = Triage {
                priority,
                category,
                tier: tier.as_deref().map(str::parse).transpose()?,
                language: lang.as_deref().map(str::parse).transpose()?,
            };
            if change.is_empty() {
                bail!("nothing to re-triage: give --priority, --category, --tier or --lang");
            }
            let actor = as_staff(&mut conn, &actor).await?;
            let t = tickets::triage(&mut conn, &actor, &number, &change, &reason, now)
                .await
                .with_context(|| format!("re-triaging {number}"))?;
            println!(
                "{} is now {} / {} / tier {} / language {} ({})",
                t.ticket_number,
                t.priority,
                t.category,
                t.escalation_tier,
                t.language.as_deref().unwrap_or("-"),
                t.sla.sla_state.0
            );
            route_after(&mut conn, &t, None, now).await?;
        }
        TicketCommand::Open {
            user,
            subject,
            category,
            priority,
            description,
            actor,
        } => {
            let actor = as_staff(&mut conn, &actor).await?;
            let user_id: uuid::Uuid = sqlx::query_scalar(
                "SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL",
            )
            .bind(user.trim())
            .fetch_optional(&mut *conn)
            .await?
            .with_context(|| format!("no user with e-mail {user}"))?;
            let new = NewTicket {
                user_id,
                conversation_id: None,
                subject: Subject::new(&subject)?,
                description,
                category,
                priority,
            };
            let t = tickets::create(&mut conn, Some(&actor), &new, now)
                .await
                .context("opening the ticket")?;
            println!("opened {}", t.ticket_number);
            route_after(&mut conn, &t, None, now).await?;
        }
        TicketCommand::Sweep => {
            let report = tickets::sweep(&mut conn, now).await.context("sweeping")?;
            println!(
                "breaches recorded: {} first response, {} resolution",
                report.first_response_breaches, report.resolution_breaches
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn as_staff(conn: &mut sqlx::PgConnection, email: &str) -> Result<Actor> {
    staff::actor_by_email(conn, email)
        .await
        .with_context(|| format!("--as {email}"))
}

fn holder(t: &Ticket) -> String {
    match (&t.assigned_to_name, &t.assigned_to) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        _ => "nobody".into(),
    }
}

/// Working time left as `3h05m`, `-12m` (late) or `-` (no running target).
fn left(seconds: Option<i64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let sign = if s < 0 { "-" } else { "" };
    let s = s.unsigned_abs();
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    if d > 0 {
        format!("{sign}{d}d{h:02}h")
    } else if h > 0 {
        format!("{sign}{h}h{m:02}m")
    } else {
        format!("{sign}{m}m")
    }
}

fn print_table(list: &[Ticket]) {
    println!(
        "{:<16} {:<11} {:<7} {:<13} {:<7} {:<8} {:<8} {:<8} {:<24} SUBJECT",
        "NUMBER", "STATUS", "PRIO", "CATEGORY", "TIER", "FR LEFT", "RES LEFT", "SLA", "ASSIGNED"
    );
    for t in list {
        let subject: String = t.subject.chars().take(50).collect();
        println!(
            "{:<16} {:<11} {:<7} {:<13} {:<7} {:<8} {:<8} {:<8} {:<24} {}",
            t.ticket_number,
            t.status,
            t.priority,
            t.category,
            t.escalation_tier,
            left(t.sla.first_response_remaining_seconds),
            left(t.sla.resolution_remaining_seconds),
            t.sla.sla_state.0,
            t.assigned_to.as_deref().unwrap_or("-"),
            subject
        );
    }
    if list.is_empty() {
        println!("(no tickets)");
    }
}

/// Routes a ticket the command left waiting (unassigned, open, no offer) at once, as
/// `AMAL_ROUTING` says ([`routing::route_now`]), never back to `gave_back` (its holder before
/// a release), and says what came of it.
async fn route_after(
    conn: &mut sqlx::PgConnection,
    t: &tickets::Ticket,
    gave_back: Option<uuid::Uuid>,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let settings = RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
    let routed = routing::route_now(conn, &settings, t.id, gave_back, now)
        .await
        .with_context(|| format!("routing {}", t.ticket_number))?;
    let Some(r) = routed else {
        return Ok(());
    };
    let chosen = match r.chosen {
        Some(id) => r
            .considered
            .iter()
            .find(|c| c.staff_id == id)
            .map(|c| c.email.as_str()),
        None => None,
    };
    match (r.outcome, chosen) {
        (routing::Outcome::Assigned, Some(e)) => println!("routed: assigned to {e}"),
        (routing::Outcome::Offered, Some(e)) => println!("routed: offered to {e}"),
        (routing::Outcome::Nobody, _) => println!(
            "nobody online can take {}: it waits in the queue ({} on-call alerted)",
            t.ticket_number, r.alerted
        ),
        _ => {}
    }
    Ok(())
}

/// `ticket accept` and `ticket decline`.
async fn answer_offer(
    conn: &mut sqlx::PgConnection,
    number: &str,
    actor: &str,
    answer: OfferAnswer,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    let actor = as_staff(conn, actor).await?;
    let settings = RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
    let next = routing::answer_offer(conn, &actor, number, answer, &settings, now)
        .await
        .with_context(|| format!("answering the offer of {number}"))?;
    match next.map(|r| r.chosen.is_some()) {
        None => println!("{number} is now {}'s", actor.email),
        Some(true) => println!("declined {number}; offered to the next member"),
        Some(false) => {
            println!("declined {number}; nobody else can take it: it waits in the queue")
        }
    }
    Ok(())
}
