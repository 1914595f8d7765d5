//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// A private copy of the machine's PostgreSQL installation without pgvector, made of hard links.
///
/// PostgreSQL finds its share and library directories relative to its own binary, so a cluster
/// started from this copy cannot see the `vector` extension: a real server with pgvector
/// missing, without uninstalling anything from the machine.
pub struct PostgresWithoutPgvector {
    /// Keeps the copy alive.
    pub _root: tempfile::TempDir,
    /// The copy's `bin` directory (pass as AMAL_PG_BIN).
    pub bin: PathBuf,
}

impl PostgresWithoutPgvector {
    pub fn new() -> Self {
        let real_bin = amal_engine::db::embedded::find_pg_bin(None).expect("PostgreSQL installed");
        // /usr/lib/postgresql/15/bin -> /usr/lib/postgresql/15 and /usr/share/postgresql/15
        let version_dir = real_bin.parent().unwrap();
        let major = version_dir.file_name().unwrap();
        let usr = version_dir
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap();
        let real_share = usr.join("share/postgresql").join(major);

        let root = tempfile::Builder::new()
            .prefix("amal-novector-")
            .tempdir()
            .unwrap();
        // The cluster's unprivileged user must be able to run the copied binaries.
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let fake_usr = root.path().join("usr");
        let fake_version_dir = fake_usr.join(version_dir.strip_prefix(usr).unwrap());
        link_tree(version_dir, &fake_version_dir);
        link_tree(
            &real_share,
            &fake_usr.join(real_share.strip_prefix(usr).unwrap()),
        );
        PostgresWithoutPgvector {
            bin: fake_version_dir.join("bin"),
            _root: root,
        }
    }
}

fn is_pgvector(name: &str) -> bool {
    name == "vector.so"
        || name.starts_with("vector--")
        || name == "vector.control"
        || name == "vector"
}

fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if is_pgvector(&name.to_string_lossy()) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            link_tree(&src, &dst);
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Runs the real `amal-engine` binary on the embedded database in `data_dir`, isolated from the
/// caller's database and provider settings, and returns its standard output; a failure fails
/// the test with the command's standard error.
pub fn run_engine(data_dir: &Path, args: &[&str]) -> String {
    let out = engine_output(data_dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `amal-engine` as [`run_engine`] does and returns its output, whatever its exit status.
pub fn engine_output(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amal-engine"));
    command.args(args).env("AMAL_DATA_DIR", data_dir);
    for var in [
        "DATABASE_URL",
        "AMAL_EMBED_URL",
        "AMAL_LLM_URL",
        "AMAL_RAG_THRESHOLD",
        "AMAL_CLARIFY",
    ] {
        command.env_remove(var);
    }
    command.output().expect("run amal-engine")
}
