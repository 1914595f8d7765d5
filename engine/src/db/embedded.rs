//! The embedded default database: a private PostgreSQL cluster that the engine creates with the
//! machine's `initdb` and runs with its `pg_ctl`, reused across runs.
//!
//! Layout of the data directory (`AMAL_DATA_DIR`, else the per-user default):
//!
//! ```text
//! cluster.json   port, superuser and generated password (mode 0600; never committed anywhere)
//! pgdata/        the cluster itself, owned by the user that runs PostgreSQL
//! .lock          serialises start, stop and reset between processes
//! ```
//!
//! PostgreSQL refuses to run as root. When the engine runs as root (as on our machines), the
//! cluster is created and run as the unprivileged system user [`SERVICE_USER`]. The server listens
//! on 127.0.0.1 only, on a free port chosen at creation, with SCRAM password authentication.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod archive;
pub use archive::{
    ARCHIVE_ENV, ARCHIVE_TIMEOUT_SECS, ArchiveStatus, BaseBackup, PitrOutcome, archiving_wanted,
};

/// The unprivileged system user that runs the cluster when the engine runs as root.
pub const SERVICE_USER: &str = "amal-postgres";
/// The cluster's superuser, used by the engine and the tests.
pub const SUPERUSER: &str = "amal";
/// The application database inside the cluster.
pub const DATABASE_NAME: &str = "amal";
/// The PostgreSQL major version the product is built and tested against.
pub const PREFERRED_PG_MAJOR: u32 = 15;

const STATE_FILE: &str = "cluster.json";
const PGDATA_DIR: &str = "pgdata";
const LOCK_FILE: &str = ".lock";
const SERVER_LOG: &str = "server.log";
/// How long `pg_ctl` may wait for the server to start or stop, in seconds.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// Why an operation on the embedded cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server installation was found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in {looked_in}. \
         Install them with `bash scripts/setup.sh` (Debian package postgresql-15) or set AMAL_PG_BIN \
         to the directory that holds them"
    )]
    BinariesNotFound {
        /// The places searched.
        looked_in: String,
    },
    /// A PostgreSQL tool exited with an error.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (stderr, then stdout), trimmed.
        output: String,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The state file exists but cannot be used.
    #[error(
        "the embedded cluster's state file {path} is unusable ({reason}); `amal-engine db reset` recreates the cluster"
    )]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster was created by another PostgreSQL major version.
    #[error(
        "the cluster in {pgdata} was created by PostgreSQL {cluster_major}, but the binaries in {pg_bin} are \
         version {binaries_major}; set AMAL_PG_BIN to a PostgreSQL {cluster_major} installation or run `amal-engine db reset`"
    )]
    VersionMismatch {
        /// The cluster directory.
        pgdata: PathBuf,
        /// The version recorded in `PG_VERSION`.
        cluster_major: String,
        /// The binaries' major version.
        binaries_major: String,
        /// The binaries' directory.
        pg_bin: PathBuf,
    },
    /// Continuous archiving or a point-in-time restore cannot proceed.
    #[error("{0}")]
    Archive(String),
    /// The unprivileged service user could not be found or created.
    #[error(
        "cannot prepare the system user `{user}` that runs PostgreSQL (it refuses to run as root): {reason}"
    )]
    ServiceUser {
        /// The user name.
        user: &'static str,
        /// What went wrong.
        reason: String,
    },
}

type Result<T, E = ClusterError> = std::result::Result<T, E>;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ClusterError + use<> {
    let path = path.to_path_buf();
    move |source| ClusterError::Io {
        action,
        path,
        source,
    }
}

/// What the engine keeps about its cluster between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterState {
    port: u16,
    superuser: String,
    password: String,
    database: String,
    created_at: DateTime<Utc>,
}

/// Who runs the PostgreSQL processes.
#[derive(Debug, Clone)]
enum Runner {
    CurrentUser,
    ServiceUser { uid: u32, gid: u32 },
}

/// A snapshot of the embedded cluster, as `amal-engine db status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether `initdb` has run.
    pub initialized: bool,
    /// Whether the server is running.
    pub running: bool,
    /// The port it listens on (when initialized).
    pub port: Option<u16>,
    /// The postmaster's process id (when running).
    pub pid: Option<u32>,
    /// The directory of the PostgreSQL binaries in use.
    pub pg_bin: PathBuf,
    /// The system user that runs the server.
    pub run_as: String,
}

/// The embedded PostgreSQL cluster in one data directory.
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    data_dir: PathBuf,
    pg_bin: PathBuf,
    runner: Runner,
}

impl EmbeddedCluster {
    /// Describes the cluster in `data_dir`, using the PostgreSQL binaries in `pg_bin` or the
    /// detected installation. Nothing is created until [`EmbeddedCluster::start`].
    pub fn new(data_dir: impl AsRef<Path>, pg_bin: Option<&Path>) -> Result<Self> {
        let data_dir = absolute(data_dir.as_ref());
        let pg_bin = find_pg_bin(pg_bin)?;
        let runner = if crate::config::is_root() {
            let (uid, gid) = ensure_service_user()?;
            Runner::ServiceUser { uid, gid }
        } else {
            Runner::CurrentUser
        };
        Ok(EmbeddedCluster {
            data_dir,
            pg_bin,
            runner,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the PostgreSQL binaries in use.
    pub fn pg_bin(&self) -> &Path {
        &self.pg_bin
    }

    fn pgdata(&self) -> PathBuf {
        self.data_dir.join(PGDATA_DIR)
    }

    fn state_path(&self) -> PathBuf {
        self.data_dir.join(STATE_FILE)
    }

    /// The connection URL of the application database, when the cluster has been initialized.
    pub fn url(&self) -> Result<Option<String>> {
        Ok(self.read_state()?.map(|s| state_url(&s, &s.database)))
    }

    /// The connection URL of the `postgres` maintenance database (tests create their databases there).
    pub fn maintenance_url(&self) -> Result<Option<String>> {
        Ok(self.read_state()?.map(|s| state_url(&s, "postgres")))
    }

    /// Creates the cluster if needed, starts it if it is not running, and returns the
    /// application database's URL. Safe to call from several processes at once.
    pub fn start(&self) -> Result<String> {
        fs::create_dir_all(&self.data_dir).map_err(io_err("cannot create", &self.data_dir))?;
        let _lock = self.lock()?;
        let state = match self.read_state()? {
            Some(state) if self.pgdata().join("PG_VERSION").exists() => state,
            _ => self.initialize()?,
        };
        self.check_version()?;
        self.configure_archiving()?;
        let state = if self.is_running()? {
            state
        } else {
            self.launch(state)?
        };
        Ok(state_url(&state, &state.database))
    }

    /// Stops the server if it runs. Returns whether it was running.
    pub fn stop(&self) -> Result<bool> {
        if !self.data_dir.exists() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        if !self.is_running()? {
            return Ok(false);
        }
        let pgdata = self.pgdata();
        self.run_pg(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                PG_CTL_TIMEOUT_SECS.as_ref(),
            ],
        )?;
        Ok(true)
    }

    /// Stops the server and deletes the cluster and its state: the next start creates a new, empty one.
    pub fn destroy(&self) -> Result<()> {
        if !self.data_dir.exists() {
            return Ok(());
        }
        self.stop()?;
        let _lock = self.lock()?;
        let pgdata = self.pgdata();
        if pgdata.exists() {
            fs::remove_dir_all(&pgdata).map_err(io_err("cannot remove", &pgdata))?;
        }
        let state = self.state_path();
        if state.exists() {
            fs::remove_file(&state).map_err(io_err("cannot remove", &state))?;
        }
        Ok(())
    }

    /// Reports whether the cluster exists and runs.
    pub fn status(&self) -> Result<ClusterStatus> {
        let state = self.read_state()?;
        let initialized = state.is_some() && self.pgdata().join("PG_VERSION").exists();
        let running = initialized && self.is_running()?;
        let pid = if running { self.postmaster_pid() } else { None };
        Ok(ClusterStatus {
            data_dir: self.data_dir.clone(),
            initialized,
            running,
            port: state.map(|s| s.port),
            pid,
            pg_bin: self.pg_bin.clone(),
            run_as: match self.runner {
                Runner::CurrentUser => current_user_name(),
                Runner::ServiceUser { .. } => SERVICE_USER.to_string(),
            },
        })
    }

    fn lock(&self) -> Result<File> {
        let path = self.data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("cannot open", &path))?;
        file.lock().map_err(io_err("cannot lock", &path))?;
        Ok(file)
    }

    fn read_state(&self) -> Result<Option<ClusterState>> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ClusterError::State {
                path,
                reason: e.to_string(),
            })
    }

    fn write_state(&self, state: &ClusterState) -> Result<()> {
        let path = self.state_path();
        let tmp = self.data_dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_string_pretty(state).expect("cluster state serializes");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("cannot write", &tmp))?;
        file.write_all(json.as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(io_err("cannot write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("cannot replace", &path))
    }

    /// Runs `initdb` into a fresh `pgdata/` and records the new cluster's state.
    fn initialize(&self) -> Result<ClusterState> {
        let pgdata = self.pgdata();
        if pgdata.exists() {
            // A half-created cluster from an interrupted first start: nothing in it is worth keeping.
            fs::remove_dir_all(&pgdata).map_err(io_err("cannot remove", &pgdata))?;
        }
        fs::create_dir(&pgdata).map_err(io_err("cannot create", &pgdata))?;
        fs::set_permissions(&pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot set permissions on", &pgdata))?;
        if let Runner::ServiceUser { uid, gid } = self.runner {
            self.make_reachable_by_service_user()?;
            chown(&pgdata, uid, gid)?;
        }

        let password = generate_password();
        let pwfile = self.data_dir.join(".initdb-password");
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&pwfile)
                .map_err(io_err("cannot write", &pwfile))?;
            f.write_all(password.as_bytes())
                .map_err(io_err("cannot write", &pwfile))?;
        }
        if let Runner::ServiceUser { uid, gid } = self.runner {
            chown(&pwfile, uid, gid)?;
        }
        let pwfile_arg = {
            let mut s = std::ffi::OsString::from("--pwfile=");
            s.push(&pwfile);
            s
        };
        let initdb = self.run_pg(
            "initdb",
            &[
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                pwfile_arg.as_os_str(),
                "--auth=scram-sha-256".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C.UTF-8".as_ref(),
            ],
        );
        let _ = fs::remove_file(&pwfile);
        initdb?;

        // Local-only, TCP-only: unix sockets are off because a socket path under a deep data
        // directory can exceed the 107-byte limit.
        let conf = pgdata.join("postgresql.conf");
        let mut f = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err("cannot open", &conf))?;
        let settings = format!(
            "\n# Amal embedded cluster\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             max_connections = 300\n\
             shared_buffers = {}MB\n\
             log_min_messages = warning\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n",
            shared_buffers_mib(memory_total_mib())
        );
        f.write_all(settings.as_bytes())
            .map_err(io_err("cannot write", &conf))?;

        let state = ClusterState {
            port: free_port()
                .map_err(io_err("cannot find a free port on", Path::new("127.0.0.1")))?,
            superuser: SUPERUSER.to_string(),
            password,
            database: DATABASE_NAME.to_string(),
            created_at: Utc::now(),
        };
        self.write_state(&state)?;
        tracing::info!(data_dir = %self.data_dir.display(), "created embedded PostgreSQL cluster");
        Ok(state)
    }

    /// Starts the postmaster, moving to a new free port when another program took ours, and
    /// creates the application database on the first start.
    fn launch(&self, mut state: ClusterState) -> Result<ClusterState> {
        if !port_is_free(state.port) {
            let old = state.port;
            state.port = free_port()
                .map_err(io_err("cannot find a free port on", Path::new("127.0.0.1")))?;
            tracing::warn!(
                old,
                new = state.port,
                "embedded cluster port taken by another program; moving"
            );
            self.write_state(&state)?;
        }
        let pgdata = self.pgdata();
        let log = pgdata.join(SERVER_LOG);
        let port_opt = format!("-p {}", state.port);
        let started = self.run_pg(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                pgdata.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                port_opt.as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                PG_CTL_TIMEOUT_SECS.as_ref(),
            ],
        );
        if let Err(ClusterError::Command {
            command,
            status,
            output,
        }) = started
        {
            let tail = tail_of_file(&log, 20);
            return Err(ClusterError::Command {
                command,
                status,
                output: format!("{output}\nserver log ({}):\n{tail}", log.display()),
            });
        }
        if !self.database_exists(&state)? {
            self.create_database(&state)?;
        }
        Ok(state)
    }

    fn database_exists(&self, state: &ClusterState) -> Result<bool> {
        let out = self.run_client(
            state,
            "psql",
            &[
                "-d",
                "postgres",
                "-tAc",
                "SELECT 1 FROM pg_database WHERE datname = 'amal'",
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "1")
    }

    fn create_database(&self, state: &ClusterState) -> Result<()> {
        self.run_client(state, "createdb", &["-T", "template0", &state.database])?;
        Ok(())
    }

    fn is_running(&self) -> Result<bool> {
        let pgdata = self.pgdata();
        if !pgdata.join("PG_VERSION").exists() {
            return Ok(false);
        }
        let out = self
            .command("pg_ctl")
            .args(["status".as_ref(), "-D".as_ref(), pgdata.as_os_str()])
            .output()
            .map_err(io_err("cannot run", &self.pg_bin.join("pg_ctl")))?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(command_error("pg_ctl status", &out)),
        }
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn check_version(&self) -> Result<()> {
        let path = self.pgdata().join("PG_VERSION");
        let cluster_major = fs::read_to_string(&path)
            .map_err(io_err("cannot read", &path))?
            .trim()
            .to_string();
        let binaries_major = pg_major_of(&self.pg_bin)?;
        if cluster_major != binaries_major {
            return Err(ClusterError::VersionMismatch {
                pgdata: self.pgdata(),
                cluster_major,
                binaries_major,
                pg_bin: self.pg_bin.clone(),
            });
        }
        Ok(())
    }

    /// A command for one of the PostgreSQL binaries, run as the cluster's user, isolated from
    /// the caller's PG* variables and working directory.
    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.pg_bin.join(tool));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .env("LC_ALL", "C.UTF-8");
        if let Runner::ServiceUser { uid, gid } = self.runner {
            cmd.uid(uid)
                .gid(gid)
                .env("HOME", &self.data_dir)
                .env("USER", SERVICE_USER);
        }
        cmd
    }

    fn run_pg(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<Output> {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .map_err(io_err("cannot run", &self.pg_bin.join(tool)))?;
        if out.status.success() {
            Ok(out)
        } else {
            let line = std::iter::once(tool.to_string())
                .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(" ");
            Err(command_error(&line, &out))
        }
    }

    /// Runs a client tool (psql, createdb) against the running cluster.
    fn run_client(&self, state: &ClusterState, tool: &str, args: &[&str]) -> Result<Output> {
        let port = state.port.to_string();
        let out = self
            .command(tool)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", &state.superuser])
            .args(args)
            .env("PGPASSWORD", &state.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(io_err("cannot run", &self.pg_bin.join(tool)))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(command_error(&format!("{tool} {}", args.join(" ")), &out))
        }
    }

    /// The service user must be able to enter the data directory and every directory above it
    /// (`mktemp -d` makes 0700 directories). Only the search bit is added: nobody gains the
    /// right to list or read those directories.
    fn make_reachable_by_service_user(&self) -> Result<()> {
        for dir in self.data_dir.ancestors() {
            let meta = fs::metadata(dir).map_err(io_err("cannot inspect", dir))?;
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode((mode | 0o001) & 0o7777))
                    .map_err(io_err(
                        "cannot add o+x (needed by the cluster's user) to",
                        dir,
                    ))?;
                tracing::info!(dir = %dir.display(), "added o+x so that {SERVICE_USER} can reach the data directory");
            }
        }
        Ok(())
    }
}

fn state_url(state: &ClusterState, database: &str) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{}/{}",
        state.superuser, state.password, state.port, database
    )
}

fn command_error(command: &str, out: &Output) -> ClusterError {
    let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        if !output.is_empty() {
            output.push('\n');
        }
        output.push_str(stdout.trim());
    }
    ClusterError::Command {
        command: command.to_string(),
        status: out.status.to_string(),
        output,
    }
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The machine's memory in MiB (`MemTotal` of /proc/meminfo), if it can be read.
fn memory_total_mib() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// shared_buffers for a new cluster, in MiB: an eighth of the machine's memory, between 128 MiB
/// and 1 GiB: a large knowledge base's table and indexes should stay cached, since with too
/// small a cache searches re-read evicted pages and wrote back hint bits on the way
/// (docs/retrieval.md, "Design choices"). The memory is touched only as pages are cached.
fn shared_buffers_mib(memory_total_mib: Option<u64>) -> u64 {
    memory_total_mib.map_or(256, |total| (total / 8).clamp(128, 1024))
}

/// 256 random bits as hex, from the operating system's generator (through uuid v4).
fn generate_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Finds the PostgreSQL server binaries: an explicit directory, else the preferred major version
/// under /usr/lib/postgresql, else the newest there, else `pg_config --bindir` on the PATH.
pub fn find_pg_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    if let Some(dir) = explicit {
        return if has_tools(dir) {
            Ok(dir.to_path_buf())
        } else {
            Err(ClusterError::BinariesNotFound {
                looked_in: format!("{} (AMAL_PG_BIN)", dir.display()),
            })
        };
    }
    let root = Path::new("/usr/lib/postgresql");
    let preferred = root.join(PREFERRED_PG_MAJOR.to_string()).join("bin");
    if has_tools(&preferred) {
        return Ok(preferred);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Ok(dir);
        }
    }
    Err(ClusterError::BinariesNotFound {
        looked_in: format!("{}, the PATH's pg_config", root.join("*/bin").display()),
    })
}

/// The major version of the binaries in `pg_bin`, from `postgres --version`.
fn pg_major_of(pg_bin: &Path) -> Result<String> {
    let tool = pg_bin.join("postgres");
    let out = Command::new(&tool)
        .arg("--version")
        .output()
        .map_err(io_err("cannot run", &tool))?;
    if !out.status.success() {
        return Err(command_error("postgres --version", &out));
    }
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .map(str::to_string)
        .ok_or_else(|| ClusterError::Command {
            command: "postgres --version".into(),
            status: "unparseable".into(),
            output: text.trim().to_string(),
        })
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the ids out
    // immediately, before any other call that could overwrite it.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

fn current_user_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| {
        // SAFETY: geteuid has no preconditions.
        format!("uid {}", unsafe { libc::geteuid() })
    })
}

/// Finds or creates [`SERVICE_USER`] and returns its uid and gid.
fn ensure_service_user() -> Result<(u32, u32)> {
    if let Some(ids) = lookup_user(SERVICE_USER) {
        return Ok(ids);
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "Amal embedded PostgreSQL",
            SERVICE_USER,
        ])
        .output()
        .map_err(|e| ClusterError::ServiceUser {
            user: SERVICE_USER,
            reason: format!("cannot run useradd: {e}"),
        })?;
    // Another process may have created it meanwhile (useradd exits 9 then): look again either way.
    lookup_user(SERVICE_USER).ok_or_else(|| ClusterError::ServiceUser {
        user: SERVICE_USER,
        reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err("cannot chown", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_buffers_follow_the_machines_memory_within_bounds() {
        assert_eq!(shared_buffers_mib(Some(24 * 1024)), 1024);
        assert_eq!(shared_buffers_mib(Some(4 * 1024)), 512);
        assert_eq!(shared_buffers_mib(Some(512)), 128);
        assert_eq!(shared_buffers_mib(None), 256);
        // Linux reports MemTotal; this machine has some.
        assert!(memory_total_mib().is_some_and(|m| m > 0));
    }
}
