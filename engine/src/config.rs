//! Run-time configuration, read from the environment.
//!
//! Everything has an offline default: with no variables set the engine uses its embedded
//! PostgreSQL cluster under the per-user data directory.

use std::path::{Path, PathBuf};

/// Where the engine finds its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// `DATABASE_URL` names a server that someone else runs.
    External(String),
    /// The embedded default: a private cluster under this data directory.
    Embedded(PathBuf),
}

/// Engine configuration shared by the server, the workers, the CLI and the console.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database to use.
    pub database: DatabaseSource,
    /// The embedded cluster's data directory (also used for state when the database is external).
    pub data_dir: PathBuf,
    /// Directory holding `initdb`, `pg_ctl` and `postgres`; `None` means detect.
    pub pg_bin: Option<PathBuf>,
}

impl Config {
    /// Reads `DATABASE_URL`, `AMAL_DATA_DIR` and `AMAL_PG_BIN`.
    pub fn from_env() -> Self {
        let data_dir = std::env::var_os("AMAL_DATA_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        let database = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => DatabaseSource::External(url),
            _ => DatabaseSource::Embedded(data_dir.clone()),
        };
        let pg_bin = std::env::var_os("AMAL_PG_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Config {
            database,
            data_dir,
            pg_bin,
        }
    }

    /// A configuration for the embedded cluster in `data_dir`, ignoring the environment.
    pub fn embedded(data_dir: impl AsRef<Path>) -> Self {
        let data_dir = data_dir.as_ref().to_path_buf();
        Config {
            database: DatabaseSource::Embedded(data_dir.clone()),
            data_dir,
            pg_bin: None,
        }
    }
}

/// The per-user data directory: `$XDG_DATA_HOME/amal`, else `~/.local/share/amal`.
///
/// Root gets `/var/lib/amal`: the cluster runs as an unprivileged user that cannot enter `/root`.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/amal");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("amal");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/amal");
    }
    PathBuf::from(".amal-data")
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// How new tickets reach staff (`AMAL_ROUTING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// Today's shared queue: nobody is given a ticket.
    #[default]
    Off,
    /// The ticket is the chosen member's at once.
    Assign,
    /// The chosen member accepts or declines within the offer's time limit; then the next one
    /// is asked.
    Offer,
}

impl RoutingMode {
    /// The value of `AMAL_ROUTING` and of `ticket_routing.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Off => "off",
            RoutingMode::Assign => "assign",
            RoutingMode::Offer => "offer",
        }
    }
}

impl std::str::FromStr for RoutingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Ok(RoutingMode::Off),
            "assign" => Ok(RoutingMode::Assign),
            "offer" => Ok(RoutingMode::Offer),
            other => Err(format!(
                "AMAL_ROUTING={other:?} is not a routing mode (expected off, assign or offer)"
            )),
        }
    }
}

/// Routing and presence settings, read from the environment by the server and the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RoutingSettings {
    /// `AMAL_ROUTING`: off (default), assign or offer.
    pub mode: RoutingMode,
    /// `AMAL_OFFER_SECONDS`: how long an offer waits for an answer (default 60).
    pub offer_seconds: i64,
    /// `AMAL_PRESENCE_TIMEOUT_SECONDS`: a presence not refreshed for this long counts as
    /// offline (default 90; consoles beat every 30 seconds).
    pub presence_timeout_seconds: i64,
    /// `AMAL_IDLE_SECONDS`: a console without input for this long sets its member away
    /// (default 600).
    pub idle_seconds: i64,
    /// `AMAL_ALERT_EMAIL`: on-call staff are also alerted by e-mail when a ticket finds nobody
    /// (on by default; `off` leaves the console's banner alone).
    pub alert_email: bool,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            mode: RoutingMode::Off,
            offer_seconds: DEFAULT_OFFER_SECONDS,
            presence_timeout_seconds: DEFAULT_PRESENCE_TIMEOUT_SECONDS,
            idle_seconds: DEFAULT_IDLE_SECONDS,
            alert_email: true,
        }
    }
}

/// `on`/`off` (also true/false, yes/no, 1/0), any case.
fn parse_switch(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Default of `AMAL_IDLE_SECONDS`.
pub const DEFAULT_IDLE_SECONDS: i64 = 600;

/// Default of `AMAL_OFFER_SECONDS`.
pub const DEFAULT_OFFER_SECONDS: i64 = 60;
/// Default of `AMAL_PRESENCE_TIMEOUT_SECONDS`.
pub const DEFAULT_PRESENCE_TIMEOUT_SECONDS: i64 = 90;

impl RoutingSettings {
    /// Reads `AMAL_ROUTING`, `AMAL_OFFER_SECONDS`, `AMAL_PRESENCE_TIMEOUT_SECONDS`,
    /// `AMAL_IDLE_SECONDS` and `AMAL_ALERT_EMAIL`; a value that does not parse is an error naming
    /// the variable, never a silent default.
    pub fn from_env() -> Result<Self, String> {
        let mode = std::env::var("AMAL_ROUTING")
            .unwrap_or_default()
            .parse::<RoutingMode>()?;
        let seconds =
            |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match std::env::var(
                name,
            ) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{name}={v:?} is not a number of seconds from {} to {}",
                            range.start(),
                            range.end()
                        )
                    }),
                _ => Ok(default),
            };
        Ok(RoutingSettings {
            mode,
            offer_seconds: seconds("AMAL_OFFER_SECONDS", DEFAULT_OFFER_SECONDS, 5..=3600)?,
            presence_timeout_seconds: seconds(
                "AMAL_PRESENCE_TIMEOUT_SECONDS",
                DEFAULT_PRESENCE_TIMEOUT_SECONDS,
                10..=86_400,
            )?,
            idle_seconds: seconds("AMAL_IDLE_SECONDS", DEFAULT_IDLE_SECONDS, 30..=86_400)?,
            alert_email: match std::env::var("AMAL_ALERT_EMAIL") {
                Ok(v) if !v.trim().is_empty() => parse_switch(&v)
                    .ok_or_else(|| format!("AMAL_ALERT_EMAIL={v:?} is not on or off"))?,
                _ => true,
            },
        })
    }
}
