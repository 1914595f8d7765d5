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
use amal_engine::db;
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
    /// Set a new password (read from standard input); clears a lock, revokes sessions.
    Passwd {
        /// The account.
        email: String,
        /// Act as this staff account (an admin, or the account itself).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
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
            let account = amal_engine::roster::disable(&mut conn, by.as_ref(), &email, now)
                .await
                .with_context(|| format!("disabling {email}"))?;
            println!("disabled {}", account.email);
        }
        StaffCommand::Passwd { email, actor } => {
            let by = resolve_actor(&mut conn, actor.as_deref()).await?;
            let password = read_password(&format!("New password for {email}: "))?;
            let account = staff::set_password(&mut conn, by.as_ref(), &email, &password, now)
                .await
                .with_context(|| format!("setting the password of {email}"))?;
            println!("password changed for {} (sessions revoked)", account.email);
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
