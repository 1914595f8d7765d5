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
