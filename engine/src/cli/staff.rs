//! `amal-engine staff ...`: staff accounts, for the administrator over SSH.
//!
//! Without `--as` the command acts as the machine's administrator (who already holds the
//! database's keys); with `--as EMAIL` it acts as that staff account, which must be an admin.
//! Passwords are read from standard input: one line, without echo when it is a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::Subcommand;

use amal_engine::config::Config;
use amal_engine::config::RoutingSettings;
use amal_engine::db;
use amal_engine::presence::{self, Presence, PresenceCause, ProfileChange};
use amal_engine::roster;
use amal_engine::staff::{self, Actor, DemoAccount, Password, StaffRole};

/// Subcommands of `amal-engine staff`.
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff account; the password (at least 10 characters) is read from standard input.
    Add {
        /// E-mail address (the sign-in name).
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// agent, supervisor or admin.
        #[arg(long)]
        role: StaffRole,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// List the staff accounts.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: no sign-in, sessions revoked, open tickets back to the queue.
    Disable {
        /// The account.
        email: String,
        /// Act as this admin account.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Enable a disabled account again (admins only; audited).
    Enable {
        /// The account.
        email: String,
        /// Act as this admin account.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Clear a sign-in lock after too many failed attempts (admins only; audited).
    Unlock {
        /// The account.
        email: String,
        /// Act as this admin account.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Set a new password (read from standard input); clears a lock, revokes sessions.
    Passwd {
        /// The account.
        email: String,
        /// Act as this staff account (an admin, or the account itself).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Set a member's routing profile (admins only; audited): languages, tier, capacity, on-call.
    Set {
        /// The account.
        email: String,
        /// Languages they answer in, comma-separated: ar, fr, en (Darija counts as ar).
        #[arg(long, value_name = "ar,fr,en")]
        languages: Option<String>,
        /// Tier: T1, T2, T3 or manager (they take tickets at this tier and below).
        #[arg(long, value_name = "T1|T2|T3|manager")]
        tier: Option<String>,
        /// Open tickets routing may give them at once (0 to 100).
        #[arg(long, value_name = "N")]
        capacity: Option<String>,
        /// Alerted when a ticket finds nobody online: true or false.
        #[arg(long = "on-call", value_name = "true|false")]
        on_call: Option<String>,
        /// The admin account acting.
        #[arg(long = "as", value_name = "ADMIN_EMAIL")]
        actor: String,
    },
    /// Set a member's presence: online, away or offline (oneself, or an admin for anyone;
    /// audited). Going offline hands their unanswered tickets back to the queue.
    Presence {
        /// The account.
        email: String,
        /// online, away or offline.
        status: String,
        /// Act as this staff account (the member, or an admin).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Who is on shift: presence, languages, tier, capacity and load of every active member.
    Shift {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's role.
    Role {
        /// The account.
        email: String,
        /// agent, supervisor or admin.
        role: StaffRole,
        /// Act as this admin account.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
}

/// Runs one `amal-engine staff` subcommand.
pub async fn run(config: &Config, cmd: StaffCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    match cmd {
        StaffCommand::Add {
            email,
            name,
            role,
            actor,
        } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let password = read_password(&format!("Password for {email}: "))?;
            let account = staff::add(&mut conn, by.as_ref(), &email, &name, role, &password)
                .await
                .with_context(|| format!("adding staff account {email}"))?;
            println!(
                "added {} <{}> as {}",
                account.name, account.email, account.role
            );
        }
        StaffCommand::List { json } => {
            let accounts = staff::list(&mut conn).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else {
                println!(
                    "{:<36} {:<11} {:<8} {:<26} NAME",
                    "EMAIL", "ROLE", "ACTIVE", "LOCKED UNTIL"
                );
                for a in accounts {
                    let locked = a
                        .locked_until
                        .filter(|t| *t > now)
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default();
                    println!(
                        "{:<36} {:<11} {:<8} {:<26} {}",
                        a.email,
                        a.role,
                        if a.is_active { "yes" } else { "no" },
                        locked,
                        a.name
                    );
                }
            }
        }
        StaffCommand::Disable { email, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let settings = RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
            let account =
                amal_engine::roster::disable(&mut conn, by.as_ref(), &email, &settings, now)
                    .await
                    .with_context(|| format!("disabling {email}"))?;
            println!("disabled {}", account.email);
        }
        StaffCommand::Enable { email, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            match staff::enable(&mut conn, by.as_ref(), &email)
                .await
                .with_context(|| format!("enabling {email}"))?
            {
                Some(a) => println!("enabled {}", a.email),
                None => println!("{} is already enabled", email.trim()),
            }
        }
        StaffCommand::Unlock { email, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            match staff::unlock(&mut conn, by.as_ref(), &email, now)
                .await
                .with_context(|| format!("unlocking {email}"))?
            {
                Some(a) => println!("unlocked {}", a.email),
                None => println!("{} is not locked", email.trim()),
            }
        }
        StaffCommand::Passwd { email, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let password = read_password(&format!("New password for {email}: "))?;
            let account = staff::set_password(&mut conn, by.as_ref(), &email, &password, now)
                .await
                .with_context(|| format!("setting the password of {email}"))?;
            println!("password changed for {} (sessions revoked)", account.email);
        }
        StaffCommand::Set {
            email,
            languages,
            tier,
            capacity,
            on_call,
            actor,
        } => {
            let change = ProfileChange {
                languages: languages
                    .as_deref()
                    .map(presence::parse_languages)
                    .transpose()
                    .context("--languages")?,
                tier: tier
                    .as_deref()
                    .map(presence::parse_tier)
                    .transpose()
                    .context("--tier")?,
                capacity: capacity
                    .as_deref()
                    .map(parse_capacity)
                    .transpose()
                    .context("--capacity")?,
                on_call: on_call
                    .as_deref()
                    .map(presence::parse_on_call)
                    .transpose()
                    .context("--on-call")?,
            };
            if change == ProfileChange::default() {
                bail!("nothing to set: give --languages, --tier, --capacity or --on-call");
            }
            let by = staff::actor_by_email(&mut conn, &actor)
                .await
                .with_context(|| format!("--as {actor}"))?;
            let p = presence::set_profile(&mut conn, &by, &email, &change)
                .await
                .with_context(|| format!("setting the profile of {email}"))?;
            println!(
                "{}: languages {}, tier {}, capacity {}, on call {}",
                p.email,
                lang_list(&p.languages),
                p.tier,
                p.capacity,
                p.on_call
            );
        }
        StaffCommand::Presence {
            email,
            status,
            actor,
        } => {
            let to: Presence = status.parse()?;
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let cause = match &by {
                Some(a) if !a.email.eq_ignore_ascii_case(email.trim()) => PresenceCause::Admin,
                Some(_) => PresenceCause::SelfSet,
                None => PresenceCause::Admin,
            };
            let settings = RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
            let update =
                roster::set_presence(&mut conn, by.as_ref(), &email, to, cause, &settings, now)
                    .await
                    .with_context(|| format!("setting the presence of {email}"))?;
            match update.change {
                Some(c) => println!("{} is now {} (was {})", update.email, c.to, c.from),
                None => println!("{} is already {}", update.email, to),
            }
            if !update.tickets_released.is_empty() {
                println!(
                    "handed back to the queue: {}",
                    update.tickets_released.join(", ")
                );
            }
            if update.tickets_routed > 0 {
                println!("waiting tickets routed: {}", update.tickets_routed);
            }
        }
        StaffCommand::Shift { json } => {
            let settings = RoutingSettings::from_env().map_err(anyhow::Error::msg)?;
            let board = presence::board(&mut conn, settings.presence_timeout_seconds, now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&board)?);
            } else {
                println!(
                    "{:<36} {:<8} {:<9} {:<8} {:<9} {:<7} SINCE",
                    "EMAIL", "PRESENCE", "LANGUAGES", "TIER", "LOAD", "ON CALL"
                );
                for m in board {
                    println!(
                        "{:<36} {:<8} {:<9} {:<8} {:<9} {:<7} {}",
                        m.profile.email,
                        m.presence,
                        lang_list(&m.profile.languages),
                        m.profile.tier,
                        format!("{}/{}", m.open_tickets, m.profile.capacity),
                        if m.profile.on_call { "yes" } else { "no" },
                        m.since
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                            .unwrap_or_default()
                    );
                }
            }
        }
        StaffCommand::Role { email, role, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let account = staff::set_role(&mut conn, by.as_ref(), &email, role)
                .await
                .with_context(|| format!("changing the role of {email}"))?;
            println!("{} is now {}", account.email, account.role);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A capacity as typed: a whole number from 0 to [`presence::MAX_CAPACITY`].
fn parse_capacity(s: &str) -> Result<i32> {
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (0..=presence::MAX_CAPACITY).contains(n))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "capacity must be a whole number of open tickets from 0 to {}, not `{s}`",
                presence::MAX_CAPACITY
            )
        })
}

fn lang_list(langs: &[amal_engine::lang::Lang]) -> String {
    langs.iter().map(|l| l.code()).collect::<Vec<_>>().join(",")
}

/// The staff account named by `--as`, if any.
pub async fn resolve_actor(
    conn: &mut sqlx::PgConnection,
    email: Option<&str>,
) -> Result<Option<Actor>> {
    match email {
        Some(email) => Ok(Some(
            staff::actor_by_email(conn, email)
                .await
                .with_context(|| format!("--as {email}"))?,
        )),
        None => Ok(None),
    }
}

/// Reads one password line from standard input: without echo, asked twice, when it is a
/// terminal; as is (one line) when it is a pipe, for scripts.
fn read_password(prompt: &str) -> Result<Password> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        let first = prompt_hidden(prompt)?;
        let second = prompt_hidden("Again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line
    };
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        bail!("no password on standard input (pipe one line, e.g. `printf '%s\\n' \"$PW\" |`)");
    }
    Ok(Password::new(line)?)
}

/// Prompts on stderr and reads a line from the terminal with echo off (restored afterwards,
/// even when reading fails).
fn prompt_hidden(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin, term points to a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading the terminal settings");
    }
    let original = term;
    term.c_lflag &= !libc::ECHO;
    term.c_lflag |= libc::ECHONL;
    // SAFETY: as above; the settings come from tcgetattr with ECHO cleared.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read.context("reading the password")?;
    Ok(line)
}

/// Prints the demo staff accounts after `seed --demo`.
pub fn print_demo_accounts(accounts: &[DemoAccount]) {
    if accounts.is_empty() {
        return;
    }
    println!("demo staff accounts (demo only, never in production):");
    for a in accounts {
        println!("  {:<30} {:<11} password: {}", a.email, a.role, a.password);
    }
}
