//! `amal-engine sla ...`: the SLA targets per priority, the business hours and the holidays
//! that the SLA clocks count with (shown to anyone at the machine; changed by admins, audited).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Subcommand;

use amal_engine::config::Config;
use amal_engine::db;
use amal_engine::sla::{self, Calendar};

/// Subcommands of `amal-engine sla`.
#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// The first-response and resolution targets per priority (`set` changes one).
    Targets {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        change: Option<TargetsCommand>,
    },
    /// The business hours the clocks count (`set` changes them).
    Hours {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        change: Option<HoursCommand>,
    },
    /// The holidays: days without working time (`add`, `remove`).
    Holidays {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        change: Option<HolidaysCommand>,
    },
}

/// `sla targets set`.
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// Set a priority's targets in minutes (new and re-prioritized tickets use them).
    Set {
        /// low, medium, high or urgent.
        priority: String,
        /// First public reply due within this many minutes.
        #[arg(long = "first-response", value_name = "MINUTES")]
        first_response: i32,
        /// Resolution due within this many minutes.
        #[arg(long, value_name = "MINUTES")]
        resolution: i32,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
}

/// `sla hours set`.
#[derive(Debug, Subcommand)]
pub enum HoursCommand {
    /// Change the business hours; what is not given stays.
    Set {
        /// on: count working time only; off: around the clock.
        #[arg(long, value_name = "on|off")]
        business_hours: Option<String>,
        /// IANA time zone of the hours (e.g. Africa/Algiers).
        #[arg(long)]
        timezone: Option<String>,
        /// Working days: sun-thu, mon,wed,fri, or 0-4 (0 = Sunday).
        #[arg(long)]
        days: Option<String>,
        /// The working day: 08:00-17:00.
        #[arg(long)]
        hours: Option<String>,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
}

/// `sla holidays add|remove`.
#[derive(Debug, Subcommand)]
pub enum HolidaysCommand {
    /// Add a holiday (or rename one).
    Add {
        /// The day: YYYY-MM-DD.
        day: String,
        /// Its name.
        name: String,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
    /// Remove a holiday.
    Remove {
        /// The day: YYYY-MM-DD.
        day: String,
        /// Act as this admin account instead of the machine's administrator.
        #[arg(long = "as", value_name = "EMAIL")]
        actor: Option<String>,
    },
}

/// A day as typed: YYYY-MM-DD.
pub fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("a day reads like 2026-07-05, not `{}`", text.trim()))
}

/// on/off as typed.
fn parse_on_off(text: &str) -> Result<bool> {
    match text.trim().to_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        other => bail!("--business-hours is on or off, not `{other}`"),
    }
}

/// The calendar in one line, as `sla hours` prints it.
pub fn calendar_line(c: &Calendar) -> String {
    if c.business_hours {
        format!(
            "business hours: {} {}-{} ({})",
            sla::working_days_text(&c.working_days),
            c.workday_start.format("%H:%M"),
            c.workday_end.format("%H:%M"),
            c.timezone
        )
    } else {
        format!(
            "around the clock (business hours off; kept: {} {}-{} {})",
            sla::working_days_text(&c.working_days),
            c.workday_start.format("%H:%M"),
            c.workday_end.format("%H:%M"),
            c.timezone
        )
    }
}

/// Runs one `amal-engine sla` subcommand.
pub async fn run(config: &Config, cmd: SlaCommand) -> Result<ExitCode> {
    let pool = db::connect_and_migrate(config).await?;
    let mut conn = pool.acquire().await?;
    match cmd {
        SlaCommand::Targets { json, change } => {
            if let Some(TargetsCommand::Set {
                priority,
                first_response,
                resolution,
                actor,
            }) = change
            {
                let by = super::staff::resolve_actor(&mut conn, actor.as_deref()).await?;
                let t = sla::set_targets(
                    &mut conn,
                    by.as_ref(),
                    priority.trim(),
                    first_response,
                    resolution,
                )
                .await
                .with_context(|| format!("setting the targets of {priority}"))?;
                println!(
                    "{}: first response {} min, resolution {} min",
                    t.code, t.first_response_minutes, t.resolution_minutes
                );
                return Ok(ExitCode::SUCCESS);
            }
            let targets = sla::targets(&mut conn).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&targets)?);
            } else {
                println!(
                    "{:<9} {:>15} {:>15}",
                    "PRIORITY", "FIRST RESPONSE", "RESOLUTION"
                );
                for t in targets {
                    println!(
                        "{:<9} {:>11} min {:>11} min",
                        t.code, t.first_response_minutes, t.resolution_minutes
                    );
                }
            }
        }
        SlaCommand::Hours { json, change } => {
            if let Some(HoursCommand::Set {
                business_hours,
                timezone,
                days,
                hours,
                actor,
            }) = change
            {
                if business_hours.is_none()
                    && timezone.is_none()
                    && days.is_none()
                    && hours.is_none()
                {
                    bail!("nothing to set: give --business-hours, --timezone, --days or --hours");
                }
                let by = super::staff::resolve_actor(&mut conn, actor.as_deref()).await?;
                let mut calendar = sla::calendar(&mut conn).await?;
                if let Some(on) = business_hours {
                    calendar.business_hours = parse_on_off(&on)?;
                }
                if let Some(tz) = timezone {
                    calendar.timezone = tz.trim().to_string();
                }
                if let Some(days) = days {
                    calendar.working_days = sla::parse_working_days(&days).context("--days")?;
                }
                if let Some(hours) = hours {
                    let (start, end) = sla::parse_hours(&hours).context("--hours")?;
                    calendar.workday_start = start;
                    calendar.workday_end = end;
                }
                sla::set_calendar(&mut conn, by.as_ref(), &calendar)
                    .await
                    .context("setting the business hours")?;
                println!("{}", calendar_line(&calendar));
                return Ok(ExitCode::SUCCESS);
            }
            let calendar = sla::calendar(&mut conn).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&calendar)?);
            } else {
                println!("{}", calendar_line(&calendar));
            }
        }
        SlaCommand::Holidays { json, change } => match change {
            Some(HolidaysCommand::Add { day, name, actor }) => {
                let day = parse_day(&day)?;
                let by = super::staff::resolve_actor(&mut conn, actor.as_deref()).await?;
                sla::add_holiday(&mut conn, by.as_ref(), day, &name)
                    .await
                    .with_context(|| format!("adding the holiday {day}"))?;
                println!("{day} is a holiday: {}", name.trim());
            }
            Some(HolidaysCommand::Remove { day, actor }) => {
                let day = parse_day(&day)?;
                let by = super::staff::resolve_actor(&mut conn, actor.as_deref()).await?;
                let h = sla::remove_holiday(&mut conn, by.as_ref(), day)
                    .await
                    .with_context(|| format!("removing the holiday {day}"))?;
                println!("{} ({}) is a working day again", h.day, h.name);
            }
            None => {
                let list = sla::holidays(&mut conn).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.is_empty() {
                    println!("no holidays");
                } else {
                    for h in list {
                        println!("{}  {}", h.day, h.name);
                    }
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
