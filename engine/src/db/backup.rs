//! Logical backups of the application database: `amal-engine db backup` and `db restore`.
//!
//! A backup is a `pg_dump` archive in custom format (one consistent snapshot of the database)
//! with a manifest beside it (`<file>.manifest.json`): its SHA-256, size, creation time and the
//! schema version (the latest migration applied when it was taken). Backups are kept in
//! `AMAL_DATA_DIR/backups` unless told otherwise, readable by their owner only, and rotated: the
//! newest N are kept.
//!
//! A restore checks the manifest before touching anything (checksum, a schema no newer than this
//! engine knows, an archive `pg_restore` can read), then replaces the whole `public` schema in
//! ONE transaction: if any statement fails, the database is left as it was. Migrations then
//! bring an older dump up to date. The same client tools serve the embedded cluster and
//! `DATABASE_URL`; they come from the PostgreSQL installation the embedded cluster uses.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DbError, MIGRATOR, PgPool, redact_url};
use crate::config::{Config, DatabaseSource};

/// How many backups rotation keeps unless `--keep` or `AMAL_BACKUP_KEEP` says otherwise.
pub const DEFAULT_KEEP: usize = 7;
/// The environment variable that sets how many backups rotation keeps.
pub const KEEP_ENV: &str = "AMAL_BACKUP_KEEP";
/// What a manifest's file name adds to its backup's.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
const DUMP_PREFIX: &str = "amal-";
const DUMP_SUFFIX: &str = ".dump";
/// The roles the migrations create (global objects, outside any dump): a restore into a server
/// that lacks them creates them first, so that the dump's privileges can be granted.
const ROLES: &[&str] = &["amal_app", "amal_readonly", "amal_admin", "amal_end_user"];

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reaching the database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A PostgreSQL client tool failed.
    #[error("`{command}` failed ({status}): {output}")]
    Tool {
        /// The command (without credentials).
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr, trimmed.
        output: String,
    },
    /// The backup has no manifest beside it.
    #[error(
        "{manifest} is missing: a backup is restored only with its manifest (its checksum and schema version)"
    )]
    NoManifest {
        /// Where the manifest was looked for.
        manifest: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("the manifest {path} is unusable: {reason}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not what the manifest describes.
    #[error(
        "{file} does not match its manifest: SHA-256 {actual} ({actual_bytes} bytes), expected {expected} ({expected_bytes} bytes); the backup is damaged or was replaced, nothing was restored"
    )]
    Checksum {
        /// The backup file.
        file: PathBuf,
        /// The manifest's checksum.
        expected: String,
        /// The file's checksum.
        actual: String,
        /// The manifest's size.
        expected_bytes: u64,
        /// The file's size.
        actual_bytes: u64,
    },
    /// The dump comes from a newer schema than this engine knows.
    #[error(
        "{file} was taken at schema version {dump}, newer than this engine's latest migration {known}: restore it with the engine version that took it; nothing was restored"
    )]
    NewerSchema {
        /// The backup file.
        file: PathBuf,
        /// The dump's schema version.
        dump: i64,
        /// The newest migration this binary carries.
        known: i64,
    },
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError + use<> {
    let path = path.to_path_buf();
    move |source| BackupError::Io {
        action,
        path,
        source,
    }
}

/// What a manifest records about its backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup's file name (in the same directory as the manifest).
    pub file: String,
    /// `pg_dump` custom format.
    pub format: String,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// The file's size in bytes.
    pub size_bytes: u64,
    /// The latest migration applied to the database when it was dumped.
    pub schema_version: i64,
    /// When the dump started.
    pub created_at: DateTime<Utc>,
    /// How long the dump took, in milliseconds.
    pub duration_ms: u64,
    /// The database dumped (URL without password, or `embedded`).
    pub source: String,
    /// `pg_dump --version`.
    pub pg_dump: String,
}

/// Where and how many backups are kept.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The directory the backup is written to.
    pub dir: PathBuf,
    /// How many backups rotation keeps in that directory (at least 1).
    pub keep: usize,
}

impl BackupOptions {
    /// The defaults for `config`: `AMAL_DATA_DIR/backups` and [`KEEP_ENV`] or [`DEFAULT_KEEP`].
    pub fn from_config(config: &Config) -> Self {
        BackupOptions {
            dir: default_dir(config),
            keep: std::env::var(KEEP_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or(DEFAULT_KEEP),
        }
    }
}

/// The default backup directory: `backups/` in the data directory.
pub fn default_dir(config: &Config) -> PathBuf {
    config.data_dir.join("backups")
}

/// A backup just taken.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The backup file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Older backups rotation removed.
    pub removed: Vec<PathBuf>,
}

/// A restore just done.
#[derive(Debug, Clone)]
pub struct RestoreOutcome {
    /// The manifest of the restored backup.
    pub manifest: Manifest,
    /// How long the restore took, in milliseconds.
    pub duration_ms: u64,
}

/// The PostgreSQL client tools, from the installation the embedded cluster uses.
struct Tools {
    bin: PathBuf,
}

impl Tools {
    fn find(config: &Config) -> Result<Self> {
        let bin = super::embedded::find_pg_bin(config.pg_bin.as_deref())
            .map_err(|e| BackupError::Db(e.into()))?;
        Ok(Tools { bin })
    }

    /// A client tool connected to `url` by libpq's environment, so that the password never
    /// appears on a command line, and isolated from the caller's PG* variables.
    fn command(&self, tool: &str, url: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        let (url, password) = split_password(url);
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password);
        }
        cmd.env("PGAPPNAME", "amal-engine")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("LC_ALL", "C.UTF-8")
            .arg(format!("--dbname={url}"))
            .stdin(Stdio::null());
        cmd
    }

    fn version(&self, tool: &str) -> Result<String> {
        let out = Command::new(self.bin.join(tool))
            .arg("--version")
            .output()
            .map_err(io_err("cannot run", &self.bin.join(tool)))?;
        checked(&format!("{tool} --version"), out)
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn checked(command: &str, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(BackupError::Tool {
            command: command.to_string(),
            status: out.status.to_string(),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The connection URL without its password, and the password (percent-decoded) apart.
fn split_password(url: &str) -> (String, Option<String>) {
    if let (Some(scheme_end), Some(at)) = (url.find("://"), url.rfind('@'))
        && at > scheme_end
        && let Some((user, password)) = url[scheme_end + 3..at].split_once(':')
    {
        return (
            format!("{}{}{}", &url[..scheme_end + 3], user, &url[at..]),
            Some(percent_decode(password)),
        );
    }
    (url.to_string(), None)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The latest migration applied to the database (0 before any).
pub async fn schema_version(pool: &PgPool) -> Result<i64> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?,
    )
}

/// The newest migration this binary carries.
pub fn latest_known_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn source_name(config: &Config) -> String {
    match &config.database {
        DatabaseSource::External(url) => redact_url(url),
        DatabaseSource::Embedded(_) => "embedded".to_string(),
    }
}

/// Dumps the configured database into `options.dir`, writes the manifest, then rotates.
///
/// The dump is written under a temporary name and renamed once complete and checksummed, so
/// that a failed or interrupted backup never looks like a good one.
pub async fn backup(config: &Config, options: &BackupOptions) -> Result<BackupOutcome> {
    let url = super::database_url(config).await?;
    let pool = super::connect_url(&url, 1).await?;
    let schema_version = schema_version(&pool).await;
    pool.close().await;
    let schema_version = schema_version?;
    let tools = Tools::find(config)?;
    let pg_dump = tools.version("pg_dump")?;

    create_private_dir(&options.dir)?;
    let created_at = Utc::now();
    let name = format!(
        "{DUMP_PREFIX}{}{DUMP_SUFFIX}",
        created_at.format("%Y%m%dT%H%M%S%3fZ")
    );
    let path = options.dir.join(&name);
    let partial = options.dir.join(format!(".{name}.partial"));
    let started = std::time::Instant::now();
    let dumped = {
        let mut cmd = tools.command("pg_dump", &url);
        cmd.args(["--format=custom", "--no-sync", "--file"])
            .arg(&partial);
        tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(DbError::from)?
            .map_err(io_err("cannot run", &tools.bin.join("pg_dump")))
    }?;
    let dumped = checked("pg_dump --format=custom", dumped);
    if dumped.is_err() {
        let _ = fs::remove_file(&partial);
    }
    dumped?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o600))
        .map_err(io_err("cannot set permissions on", &partial))?;
    let (sha256, size_bytes) = {
        let partial = partial.clone();
        tokio::task::spawn_blocking(move || sha256_of(&partial))
            .await
            .map_err(DbError::from)??
    };
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io_err("cannot sync", &partial))?;
    fs::rename(&partial, &path).map_err(io_err("cannot rename to", &path))?;
    let manifest = Manifest {
        file: name,
        format: "pg_dump custom".to_string(),
        sha256,
        size_bytes,
        schema_version,
        created_at,
        duration_ms: started.elapsed().as_millis() as u64,
        source: source_name(config),
        pg_dump,
    };
    write_private(
        &manifest_path(&path),
        serde_json::to_string_pretty(&manifest)
            .expect("manifest serializes")
            .as_bytes(),
    )?;
    let removed = rotate(&options.dir, options.keep)?;
    Ok(BackupOutcome {
        path,
        manifest,
        removed,
    })
}

/// The manifest's path for the backup at `file`.
pub fn manifest_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(MANIFEST_SUFFIX);
    PathBuf::from(name)
}

/// Reads the manifest beside `file`.
pub fn read_manifest(file: &Path) -> Result<Manifest> {
    let path = manifest_path(file);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest { manifest: path });
        }
        Err(e) => return Err(io_err("cannot read", &path)(e)),
    };
    serde_json::from_str(&text).map_err(|e| BackupError::BadManifest {
        path,
        reason: e.to_string(),
    })
}

/// The backups in `dir` with their manifests, newest first.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, Manifest)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", dir)(e)),
    };
    let mut backups = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(DUMP_PREFIX) && name.ends_with(DUMP_SUFFIX) {
            // A dump without a readable manifest is not ours to judge (nor to delete).
            if let Ok(manifest) = read_manifest(&entry.path()) {
                backups.push((entry.path(), manifest));
            }
        }
    }
    backups.sort_by_key(|b| std::cmp::Reverse(b.1.created_at));
    Ok(backups)
}

/// Deletes all but the newest `keep` backups in `dir` (with their manifests); returns them.
pub fn rotate(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for (path, _) in list(dir)?.into_iter().skip(keep.max(1)) {
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        let manifest = manifest_path(&path);
        fs::remove_file(&manifest).map_err(io_err("cannot remove", &manifest))?;
        removed.push(path);
    }
    Ok(removed)
}

/// Checks that `file` is what its manifest says and that this engine can restore it; returns
/// the manifest.
pub fn verify(file: &Path) -> Result<Manifest> {
    let manifest = read_manifest(file)?;
    let (actual, actual_bytes) = sha256_of(file)?;
    if actual != manifest.sha256 || actual_bytes != manifest.size_bytes {
        return Err(BackupError::Checksum {
            file: file.to_path_buf(),
            expected: manifest.sha256,
            actual,
            expected_bytes: manifest.size_bytes,
            actual_bytes,
        });
    }
    let known = latest_known_migration();
    if manifest.schema_version > known {
        return Err(BackupError::NewerSchema {
            file: file.to_path_buf(),
            dump: manifest.schema_version,
            known,
        });
    }
    Ok(manifest)
}

/// Restores the backup at `file` over the configured database, then applies pending migrations.
///
/// Checks first (manifest, checksum, schema version, the archive's table of contents), then
/// drops and recreates the `public` schema and replays the dump in one transaction.
pub async fn restore(config: &Config, file: &Path) -> Result<RestoreOutcome> {
    let started = std::time::Instant::now();
    let manifest = {
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || verify(&file))
            .await
            .map_err(DbError::from)??
    };
    let tools = Tools::find(config)?;
    let toc = Command::new(tools.bin.join("pg_restore"))
        .arg("--list")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("cannot run", &tools.bin.join("pg_restore")))?;
    checked("pg_restore --list", toc)?;

    let url = super::database_url(config).await?;
    let file = file.to_path_buf();
    let replay = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || replay(&tools, &url, &file))
            .await
            .map_err(DbError::from)?
    };
    replay?;
    let pool = super::connect_url(&url, 2).await?;
    let migrated = super::migrate(&pool).await;
    pool.close().await;
    migrated?;
    Ok(RestoreOutcome {
        manifest,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Takes a base backup for point-in-time recovery and rotates the older ones, when the database
/// is the embedded cluster with continuous archiving active; `None` otherwise (a dump alone).
pub async fn archive_base_backup(
    config: &Config,
    keep: usize,
) -> Result<Option<(super::embedded::BaseBackup, Vec<String>)>> {
    if matches!(config.database, DatabaseSource::External(_))
        || !super::embedded::archiving_wanted()
    {
        return Ok(None);
    }
    let cluster = super::embedded_cluster(config)?;
    tokio::task::spawn_blocking(move || {
        let base = cluster.base_backup()?;
        let removed = cluster.rotate_base_backups(keep)?;
        Ok::<_, super::embedded::ClusterError>(Some((base, removed)))
    })
    .await
    .map_err(DbError::from)?
    .map_err(|e| BackupError::Db(e.into()))
}

/// Restores the embedded cluster to `target` from its base backups and archived WAL, then
/// applies pending migrations.
pub async fn restore_to_moment(
    config: &Config,
    target: DateTime<Utc>,
) -> Result<super::embedded::PitrOutcome> {
    if let DatabaseSource::External(url) = &config.database {
        return Err(BackupError::Db(DbError::Cluster(
            super::embedded::ClusterError::Archive(format!(
                "DATABASE_URL is set ({}): a restore to a moment uses the embedded cluster's WAL \
                 archive; for an external server use its own point-in-time recovery",
                redact_url(url)
            )),
        )));
    }
    // Started (and so archiving configured) before anything else.
    super::database_url(config).await?;
    let cluster = super::embedded_cluster(config)?;
    let outcome = tokio::task::spawn_blocking(move || cluster.restore_to(target))
        .await
        .map_err(DbError::from)?
        .map_err(|e| BackupError::Db(e.into()))?;
    let pool = super::connect(config).await?;
    let migrated = super::migrate(&pool).await;
    pool.close().await;
    migrated?;
    Ok(outcome)
}

/// Reads a moment as `db restore --at` takes it: RFC 3339 (`2026-12-07T04:30:00Z`,
/// `...+01:00`), or `YYYY-MM-DD HH:MM:SS[.ffffff]` with an optional offset; without one it is
/// UTC.
pub fn parse_moment(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let t = text.replacen(' ', "T", 1);
    if let Ok(at) = DateTime::parse_from_rfc3339(&t) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(at) = DateTime::parse_from_str(&t, format) {
            return Ok(at.with_timezone(&Utc));
        }
    }
    chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|_| {
            format!(
                "{text:?} is not a moment: write it as 2026-12-07T04:30:00Z or \
                 \"2026-12-07 04:30:00\" (UTC unless an offset such as +01:00 follows)"
            )
        })
}

/// The statements run before the dump's, in the same transaction: missing roles created, the
/// `public` schema emptied and recreated as PostgreSQL 15 creates it (owned by the database
/// owner, usable by everyone), which is what `pg_dump` expects to find.
fn restore_prelude() -> String {
    let roles = ROLES
        .iter()
        .map(|r| format!("'{r}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SET lock_timeout = '60s';\n\
         DO $$ DECLARE r text; BEGIN\n\
           FOREACH r IN ARRAY ARRAY[{roles}] LOOP\n\
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN\n\
               EXECUTE format('CREATE ROLE %I NOLOGIN', r);\n\
             END IF;\n\
           END LOOP;\n\
         END $$;\n\
         DROP SCHEMA IF EXISTS public CASCADE;\n\
         CREATE SCHEMA public AUTHORIZATION pg_database_owner;\n\
         GRANT USAGE ON SCHEMA public TO PUBLIC;\n\
         COMMENT ON SCHEMA public IS 'standard public schema';\n"
    )
}

/// `pg_restore` writes the dump as SQL into `psql`, which runs the prelude and every statement
/// in one transaction and stops at the first error (rolling all of it back).
fn replay(tools: &Tools, url: &str, file: &Path) -> Result<()> {
    let mut restore = Command::new(tools.bin.join("pg_restore"))
        .args(["--no-owner", "--file", "-"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("cannot run", &tools.bin.join("pg_restore")))?;
    let sql = restore.stdout.take().expect("piped stdout");
    let psql = tools
        .command("psql", url)
        .args([
            "--no-psqlrc",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "--command",
        ])
        .arg(restore_prelude())
        .args(["--file", "-"])
        .stdin(Stdio::from(sql))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(io_err("cannot run", &tools.bin.join("psql")));
    let restored = restore
        .wait_with_output()
        .map_err(io_err("cannot run", &tools.bin.join("pg_restore")))?;
    checked("psql --single-transaction (the dump's statements)", psql?)?;
    checked("pg_restore --file -", restored)?;
    Ok(())
}

/// SHA-256 (lowercase hex) and size of a file.
fn sha256_of(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(io_err("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err("cannot read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Creates `dir` (and its parents) and makes it private to its owner: backups hold everything
/// people confided.
fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err("cannot set permissions on", dir))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("cannot write", &tmp))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot rename to", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://amal:s%40cret@127.0.0.1:5432/amal?sslmode=require"),
            (
                "postgres://amal@127.0.0.1:5432/amal?sslmode=require".to_string(),
                Some("s@cret".to_string())
            )
        );
        assert_eq!(
            split_password("postgres://amal@host/db"),
            ("postgres://amal@host/db".to_string(), None)
        );
    }

    #[test]
    fn moments_in_the_forms_people_write() {
        let utc = "2026-12-07T04:30:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_moment("2026-12-07T04:30:00Z").unwrap(), utc);
        assert_eq!(parse_moment("2026-12-07 04:30:00").unwrap(), utc);
        assert_eq!(parse_moment("2026-12-07 05:30:00+01:00").unwrap(), utc);
        assert_eq!(parse_moment("2026-12-07 05:30:00+01").unwrap(), utc);
        assert_eq!(
            parse_moment("2026-12-07 04:30:00.250").unwrap(),
            utc + chrono::Duration::milliseconds(250)
        );
        assert!(
            parse_moment("yesterday")
                .unwrap_err()
                .contains("not a moment")
        );
    }

    #[test]
    fn the_prelude_recreates_public_as_postgres_does() {
        let sql = restore_prelude();
        assert!(sql.contains("DROP SCHEMA IF EXISTS public CASCADE"));
        assert!(sql.contains("AUTHORIZATION pg_database_owner"));
        assert!(sql.contains("'amal_app'"));
    }
}
