//! Continuous archiving and point-in-time recovery of the embedded cluster.
//!
//! Every completed WAL segment is copied by the server's `archive_command` into
//! `archive/wal/`; `db backup` adds a base backup (`pg_basebackup`, compressed tar) under
//! `archive/base/`. A restore to a moment replays the newest base backup finished before it
//! and the archived WAL up to that moment (`recovery_target_time`), then promotes the cluster
//! to a new timeline. `archive_timeout` bounds how old the newest archived change can be when
//! the server is idle (the recovery point objective).
//!
//! Layout added to the data directory:
//!
//! ```text
//! archive/wal/               archived WAL segments and backup history files
//! archive/base/<name>/       base.tar.gz, backup_manifest and base.json (what it covers)
//! pgdata.before-restore/     the cluster as it was before the last point-in-time restore
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{ClusterError, ClusterState, EmbeddedCluster, Result, Runner, chown, io_err};

/// Set to `off` to start the embedded cluster without continuous archiving.
pub const ARCHIVE_ENV: &str = "AMAL_WAL_ARCHIVE";
/// The longest an idle server waits before archiving a partly filled WAL segment, in seconds:
/// the recovery point objective of a point-in-time restore.
pub const ARCHIVE_TIMEOUT_SECS: u32 = 60;
const ARCHIVE_DIR: &str = "archive";
const MARKER: &str = "# Amal continuous archiving";
const BASE_INFO: &str = "base.json";
const BEFORE_RESTORE: &str = "pgdata.before-restore";
/// How long a point-in-time recovery may replay WAL before the engine gives up waiting.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long the engine waits for the archiver to copy the segment it just closed.
const ARCHIVE_WAIT: Duration = Duration::from_secs(120);

/// One base backup of the embedded cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseBackup {
    /// Its directory name under `archive/base/`.
    pub name: String,
    /// When `pg_basebackup` started.
    pub started_at: DateTime<Utc>,
    /// When it finished: the backup is consistent at some moment before this.
    pub finished_at: DateTime<Utc>,
    /// The backup history file the server archived for it (oldest WAL it needs).
    pub history_file: Option<String>,
    /// Size of the compressed archive in bytes.
    pub size_bytes: u64,
}

/// What `doctor` and `db status` say about archiving.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveStatus {
    /// Whether the configuration asks for archiving (applies from the next start).
    pub configured: bool,
    /// The WAL archive directory.
    pub wal_dir: PathBuf,
    /// Base backups, newest first.
    pub base_backups: Vec<BaseBackup>,
}

/// A point-in-time restore just done.
#[derive(Debug, Clone, Serialize)]
pub struct PitrOutcome {
    /// The base backup replayed from.
    pub base: BaseBackup,
    /// The moment restored to.
    pub target: DateTime<Utc>,
    /// Where the replaced cluster was kept.
    pub previous: PathBuf,
    /// How long the restore took (stop, unpack, replay, promote), in milliseconds.
    pub duration_ms: u64,
}

/// Whether archiving is wanted for the embedded cluster (`AMAL_WAL_ARCHIVE` not `off`).
pub fn archiving_wanted() -> bool {
    !matches!(
        std::env::var(ARCHIVE_ENV).as_deref().map(str::trim),
        Ok("off" | "0" | "false" | "no")
    )
}

fn quote_conf(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl EmbeddedCluster {
    /// The WAL archive directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join(ARCHIVE_DIR).join("wal")
    }

    fn base_dir(&self) -> PathBuf {
        self.data_dir.join(ARCHIVE_DIR).join("base")
    }

    /// A directory the cluster's user owns, private to it.
    fn cluster_private_dir(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot set permissions on", dir))?;
        if let Runner::ServiceUser { uid, gid } = self.runner {
            chown(dir, uid, gid)?;
        }
        Ok(())
    }

    /// Adds the archiving settings to `postgresql.conf` once (they take effect at the next
    /// start) and creates the archive's directories.
    pub(super) fn configure_archiving(&self) -> Result<()> {
        if !archiving_wanted() {
            return Ok(());
        }
        let archive = self.data_dir.join(ARCHIVE_DIR);
        self.cluster_private_dir(&archive)?;
        self.cluster_private_dir(&self.wal_dir())?;
        self.cluster_private_dir(&self.base_dir())?;
        let conf = self.pgdata().join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(io_err("cannot read", &conf))?;
        if text.contains(MARKER) {
            return Ok(());
        }
        let wal = self.wal_dir();
        let wal = wal.display();
        // Copied under a temporary name, then renamed: a crash mid-copy never leaves a
        // truncated segment under its real name, and an existing segment is never overwritten.
        let command = format!(
            "test ! -f '{wal}/%f' && cp '%p' '{wal}/%f.tmp' && mv '{wal}/%f.tmp' '{wal}/%f'"
        );
        let settings = format!(
            "\n{MARKER}\n\
             archive_mode = on\n\
             archive_command = {}\n\
             archive_timeout = {ARCHIVE_TIMEOUT_SECS}\n",
            quote_conf(&command)
        );
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(io_err("cannot write", &conf))
    }

    /// Whether archiving is configured and the base backups taken.
    pub fn archive_status(&self) -> Result<ArchiveStatus> {
        let conf = self.pgdata().join("postgresql.conf");
        let configured = fs::read_to_string(&conf).is_ok_and(|t| t.contains(MARKER));
        Ok(ArchiveStatus {
            configured,
            wal_dir: self.wal_dir(),
            base_backups: self.base_backups()?,
        })
    }

    /// The base backups, newest first.
    pub fn base_backups(&self) -> Result<Vec<BaseBackup>> {
        let dir = self.base_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot list", &dir)(e)),
        };
        let mut backups: Vec<BaseBackup> = entries
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path().join(BASE_INFO)).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect();
        backups.sort_by_key(|b| std::cmp::Reverse(b.finished_at));
        Ok(backups)
    }

    /// Runs SQL on the application database as the superuser; returns the unaligned output.
    fn sql(&self, state: &ClusterState, sql: &str) -> Result<String> {
        let out = self.run_client(state, "psql", &["-d", &state.database, "-XtAc", sql])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn running_state(&self) -> Result<ClusterState> {
        match self.read_state()? {
            Some(state) if self.is_running()? => Ok(state),
            _ => Err(ClusterError::Archive(
                "the embedded cluster is not running; `amal-engine db start` starts it".into(),
            )),
        }
    }

    fn require_archiving_active(&self, state: &ClusterState) -> Result<()> {
        let mode = self.sql(state, "SHOW archive_mode")?;
        if mode != "on" {
            return Err(ClusterError::Archive(format!(
                "continuous archiving is not active (archive_mode = {mode}); it is configured on \
                 start unless {ARCHIVE_ENV}=off: restart the cluster (`amal-engine db stop`, then \
                 `db start`) to turn it on"
            )));
        }
        Ok(())
    }

    /// Takes a base backup with `pg_basebackup` into `archive/base/`, as the cluster's user.
    pub fn base_backup(&self) -> Result<BaseBackup> {
        let state = self.running_state()?;
        self.require_archiving_active(&state)?;
        let history_before = self.history_files()?;
        let started_at = Utc::now();
        let name = started_at.format("base-%Y%m%dT%H%M%S%3fZ").to_string();
        let partial = self.base_dir().join(format!(".{name}.partial"));
        let target = self.base_dir().join(&name);
        let port = state.port.to_string();
        let out = self
            .command("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", &state.superuser])
            .arg("-D")
            .arg(&partial)
            .args([
                "--format=tar",
                "--gzip",
                "--wal-method=none",
                "--checkpoint=fast",
            ])
            .env("PGPASSWORD", &state.password)
            .output()
            .map_err(io_err("cannot run", &self.pg_bin.join("pg_basebackup")))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&partial);
            return Err(super::command_error("pg_basebackup", &out));
        }
        let finished_at = Utc::now();
        let history_file = self
            .history_files()?
            .into_iter()
            .filter(|f| !history_before.contains(f))
            .max();
        let size_bytes = fs::metadata(partial.join("base.tar.gz"))
            .map_err(io_err("cannot inspect", &partial))?
            .len();
        let base = BaseBackup {
            name,
            started_at,
            finished_at,
            history_file,
            size_bytes,
        };
        let info = partial.join(BASE_INFO);
        fs::write(
            &info,
            serde_json::to_string_pretty(&base).expect("base backup info serializes"),
        )
        .map_err(io_err("cannot write", &info))?;
        fs::rename(&partial, &target).map_err(io_err("cannot rename to", &target))?;
        Ok(base)
    }

    fn history_files(&self) -> Result<Vec<String>> {
        let dir = self.wal_dir();
        Ok(fs::read_dir(&dir)
            .map_err(io_err("cannot list", &dir))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".backup"))
            .collect())
    }

    /// Keeps the newest `keep` base backups and removes the archived WAL that none of them
    /// needs (`pg_archivecleanup` up to the oldest kept one's start). Returns the removed names.
    pub fn rotate_base_backups(&self, keep: usize) -> Result<Vec<String>> {
        let backups = self.base_backups()?;
        let mut removed = Vec::new();
        for old in backups.iter().skip(keep.max(1)) {
            let dir = self.base_dir().join(&old.name);
            fs::remove_dir_all(&dir).map_err(io_err("cannot remove", &dir))?;
            removed.push(old.name.clone());
        }
        if let Some(history) = backups[..keep.max(1).min(backups.len())]
            .last()
            .and_then(|b| b.history_file.as_deref())
        {
            let wal = self.wal_dir();
            self.run_pg(
                "pg_archivecleanup",
                &[wal.as_os_str(), std::ffi::OsStr::new(history)],
            )?;
        }
        Ok(removed)
    }

    /// Closes the current WAL segment with a commit in it and waits until the archiver has
    /// copied it: everything committed so far is then in the archive, and a recovery aiming at
    /// any earlier moment finds a commit after it to stop at.
    fn archive_up_to_now(&self, state: &ClusterState) -> Result<()> {
        let segment = self.sql(
            state,
            "SELECT txid_current(); SELECT pg_walfile_name(pg_switch_wal())",
        )?;
        let segment = segment.lines().last().unwrap_or_default().to_string();
        let deadline = Instant::now() + ARCHIVE_WAIT;
        loop {
            let last = self.sql(
                state,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            )?;
            if last.as_str() >= segment.as_str() && !last.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Archive(format!(
                    "WAL segment {segment} was not archived within {} s (last archived: {last}); \
                     see the server log in {}",
                    ARCHIVE_WAIT.as_secs(),
                    self.pgdata().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restores the cluster to `target`: the newest base backup finished before it, then the
    /// archived WAL replayed up to it; the cluster is promoted to a new timeline. The replaced
    /// data directory is kept as `pgdata.before-restore` (replacing the one kept before).
    pub fn restore_to(&self, target: DateTime<Utc>) -> Result<PitrOutcome> {
        let started = Instant::now();
        let state = self.running_state()?;
        self.require_archiving_active(&state)?;
        let now = Utc::now();
        if target >= now {
            return Err(ClusterError::Archive(format!(
                "{} is not in the past (now is {}); nothing was restored",
                target.to_rfc3339_opts(SecondsFormat::Micros, true),
                now.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        let backups = self.base_backups()?;
        let base = backups
            .iter()
            .find(|b| b.finished_at < target)
            .cloned()
            .ok_or_else(|| {
                ClusterError::Archive(match backups.last() {
                    Some(oldest) => format!(
                        "no base backup finished before {}: the oldest finished at {}; nothing was restored",
                        target.to_rfc3339_opts(SecondsFormat::Secs, true),
                        oldest.finished_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                    None => "no base backup yet: `amal-engine db backup` takes one; nothing was restored".into(),
                })
            })?;
        self.archive_up_to_now(&state)?;
        self.stop()?;
        let _lock = self.lock()?;

        let pgdata = self.pgdata();
        let previous = self.data_dir.join(BEFORE_RESTORE);
        if previous.exists() {
            fs::remove_dir_all(&previous).map_err(io_err("cannot remove", &previous))?;
        }
        fs::rename(&pgdata, &previous).map_err(io_err("cannot move aside", &pgdata))?;
        let unpacked = self.unpack(&base, target);
        if let Err(e) = unpacked {
            // Put the cluster back as it was.
            let _ = fs::remove_dir_all(&pgdata);
            let _ = fs::rename(&previous, &pgdata);
            return Err(e);
        }
        self.launch(state.clone())?;
        self.wait_for_promotion(&state)?;
        // The recovery settings served their purpose; left in place they would steer the next
        // recovery (each ALTER SYSTEM on its own: it refuses to run in a transaction block).
        for setting in [
            "restore_command",
            "recovery_target_time",
            "recovery_target_action",
        ] {
            self.sql(&state, &format!("ALTER SYSTEM RESET {setting}"))?;
        }
        self.sql(&state, "SELECT pg_reload_conf()")?;
        Ok(PitrOutcome {
            base,
            target,
            previous,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Unpacks `base` into a fresh `pgdata/` and asks for recovery up to `target`.
    fn unpack(&self, base: &BaseBackup, target: DateTime<Utc>) -> Result<()> {
        let pgdata = self.pgdata();
        self.cluster_private_dir(&pgdata)?;
        let tarball = self.base_dir().join(&base.name).join("base.tar.gz");
        let mut tar = std::process::Command::new("tar");
        tar.arg("-xzf").arg(&tarball).arg("-C").arg(&pgdata);
        if let Runner::ServiceUser { uid, gid } = self.runner {
            use std::os::unix::process::CommandExt;
            tar.uid(uid).gid(gid);
        }
        let out = tar
            .output()
            .map_err(io_err("cannot run tar for", &tarball))?;
        if !out.status.success() {
            return Err(super::command_error("tar -xzf base.tar.gz", &out));
        }
        let pg_wal = pgdata.join("pg_wal");
        if !pg_wal.exists() {
            self.cluster_private_dir(&pg_wal)?;
        }
        let signal = pgdata.join("recovery.signal");
        fs::write(&signal, "").map_err(io_err("cannot write", &signal))?;
        let auto = pgdata.join("postgresql.auto.conf");
        let wal = self.wal_dir();
        let settings = format!(
            "restore_command = {}\nrecovery_target_time = {}\nrecovery_target_action = 'promote'\n",
            quote_conf(&format!("cp '{}/%f' '%p'", wal.display())),
            quote_conf(&target.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        );
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .open(&auto)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(io_err("cannot write", &auto))?;
        if let Runner::ServiceUser { uid, gid } = self.runner {
            chown(&signal, uid, gid)?;
        }
        Ok(())
    }

    fn wait_for_promotion(&self, state: &ClusterState) -> Result<()> {
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        loop {
            match self.sql(state, "SELECT pg_is_in_recovery()") {
                Ok(answer) if answer == "f" => return Ok(()),
                Ok(_) => {}
                Err(e) if !self.is_running()? => {
                    return Err(ClusterError::Archive(format!(
                        "recovery stopped: {e}\nserver log:\n{}",
                        super::tail_of_file(&self.pgdata().join(super::SERVER_LOG), 20)
                    )));
                }
                Err(_) => {}
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Archive(format!(
                    "recovery still running after {} s; see {}",
                    RECOVERY_TIMEOUT.as_secs(),
                    self.pgdata().join(super::SERVER_LOG).display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
