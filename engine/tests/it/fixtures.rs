//! The fixtures the integration tests share: what a test returns, clocks, the rows a test starts
//! from (users, staff, conversations, tickets), a small knowledge base and a decision engine over
//! it, the test's own database (its URL, other pools on it), runs of the real `amal-engine`
//! binary, and PostgreSQL without pgvector.
//!
//! A helper of one domain stays with its tests (the schema's plain-SQL rows in `schema/`); one
//! that several domains use lives here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use amal_engine::conversations;
use amal_engine::decision::auto::{DecisionEngine, Mode};
use amal_engine::decision::crisis::CrisisNumbers;
use amal_engine::knowledge::Retriever;
use amal_engine::knowledge::embed::Embedder;
use amal_engine::knowledge::store::{self, IngestOptions, IngestSummary};
use amal_engine::staff::{self, Actor};
use amal_engine::tickets::{self, NewTicket, Subject, Ticket};

/// What a test returns: any error fails it, with the error.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// The current time at PostgreSQL's precision (microseconds), so that stored times compare equal.
pub fn now_us() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// An RFC 3339 time.
pub fn ts(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

// ---------------------------------------------------------------------------------------------
// People, conversations and tickets
// ---------------------------------------------------------------------------------------------

/// An end user who consented to data storage, speaking `locale`.
pub async fn consenting_user(pool: &PgPool, email: &str, locale: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
         VALUES ($1, '!', 'Test', $2, true, now()) RETURNING id",
    )
    .bind(email)
    .bind(locale)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A conversation in AUTO mode, started through the engine by a new consenting end user.
pub async fn new_conversation(pool: &PgPool, email: &str) -> Uuid {
    let user = consenting_user(pool, email, "ar-DZ").await;
    conversations::start(pool, user, Mode::Auto, None)
        .await
        .unwrap()
        .id
}

/// An end user with a conversation (rows only, not through the engine); returns (user,
/// conversation).
pub async fn end_user(pool: &PgPool, email: &str) -> (Uuid, Uuid) {
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name) VALUES ($1, '!', 'User') RETURNING id",
    )
    .bind(email)
    .fetch_one(pool)
    .await
    .unwrap();
    let conv: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (user_id, title) VALUES ($1, 'Besoin de parler') RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    (user, conv)
}

/// A staff account named "Name of {email}" without a usable password (tests that sign in use
/// `staff::add`).
pub async fn staff_account(pool: &PgPool, email: &str, role: &str) -> Actor {
    sqlx::query(
        "INSERT INTO users (email, password_hash, name, staff_role) VALUES ($1, '!', $2, $3)",
    )
    .bind(email)
    .bind(format!("Name of {email}"))
    .bind(role)
    .execute(pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    staff::actor_by_email(&mut conn, email).await.unwrap()
}

/// A ticket opened by the system at `at`.
pub async fn ticket_at(
    conn: &mut PgConnection,
    user: Uuid,
    conversation: Option<Uuid>,
    priority: &str,
    at: DateTime<Utc>,
) -> Ticket {
    let new = NewTicket {
        user_id: user,
        conversation_id: conversation,
        subject: Subject::new("Besoin d'aide").unwrap(),
        description: None,
        category: "addiction".into(),
        priority: priority.into(),
    };
    tickets::create(conn, None, &new, at).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Knowledge base and decision engine
// ---------------------------------------------------------------------------------------------

/// Writes `text` to `dir/name`, creating the folders on the way.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A small knowledge base in the three languages.
pub fn kb_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "en/sleep.md",
        "---\nlang: en\ncategory: mental_health\n---\n# Sleep problems\n\nKeep a regular bedtime and avoid screens before sleeping. Insomnia that lasts weeks deserves a doctor's advice.\n\nDaylight in the morning helps your body clock. Caffeine after noon makes it harder to fall asleep at night.\n",
    );
    write(
        dir.path(),
        "en/tobacco.md",
        "---\nlang: en\ncategory: addiction\n---\n# Quitting tobacco\n\nNicotine cravings pass within minutes. Plan your quit day, remove cigarettes from home and ask for support.\n",
    );
    write(
        dir.path(),
        "fr/sommeil.md",
        "---\nlang: fr\ncategory: mental_health\n---\n# Troubles du sommeil\n\nGardez des horaires réguliers et évitez les écrans avant de dormir. Une insomnie qui dure mérite l'avis d'un médecin.\n",
    );
    write(
        dir.path(),
        "ar/sleep.md",
        "---\nlang: ar\ncategory: mental_health\n---\n# اضطرابات النوم\n\nحافظ على موعد ثابت للنوم وابتعد عن الشاشات قبل النوم. الأرق الذي يستمر أسابيع يستحق استشارة طبيب.\n",
    );
    dir
}

/// The offline hashed embedder, which the tests of everything but the model itself use.
pub fn offline() -> Embedder {
    Embedder::hashed()
}

/// Ingests `paths` with the offline embedder, approved or left pending.
pub async fn ingest(pool: &PgPool, paths: &[PathBuf], approve: bool) -> IngestSummary {
    let options = IngestOptions {
        approve,
        ..Default::default()
    };
    store::ingest_paths(pool, &offline(), paths, &options, 2, |_| {})
        .await
        .unwrap()
}

/// The crisis numbers the tests configure.
pub fn numbers() -> CrisisNumbers {
    CrisisNumbers {
        crisis_line: "3033".into(),
        emergency_number: "14".into(),
    }
}

/// A decision engine with the offline embedder, threshold 0.5 and no clarifying question.
pub fn engine() -> DecisionEngine {
    DecisionEngine::new(Retriever::new(offline()), numbers(), 0.5, false).unwrap()
}

/// The knowledge base of [`kb_dir`], approved, and an engine over it.
pub async fn kb_engine(pool: &PgPool) -> DecisionEngine {
    let dir = kb_dir();
    ingest(pool, &[dir.path().to_path_buf()], true).await;
    engine()
}

// ---------------------------------------------------------------------------------------------
// The test's database
// ---------------------------------------------------------------------------------------------

/// Another pool on the test's own database, made with `options` (a size, a timeout).
pub async fn another_pool(pool: &PgPool, options: PgPoolOptions) -> sqlx::Result<PgPool> {
    options
        .connect_with((*pool.connect_options()).clone())
        .await
}

/// The URL of the test's own database on DATABASE_URL's server.
pub fn own_database_url(pool: &PgPool) -> String {
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL (run through scripts/test.sh)");
    let name = pool.connect_options().get_database().unwrap().to_string();
    amal_engine::db::with_database(&server, &name)
}

/// Standard base64 (screenshots, mail bodies), without a dependency for two uses in tests.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| !matches!(c, b'=' | b'\n' | b'\r' | b' '))
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= u32::from(value(c)) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The amal-engine binary
// ---------------------------------------------------------------------------------------------

/// The real `amal-engine` binary with `args`, on the embedded database in `data_dir`, isolated
/// from the caller's database and provider settings, and on the hashed embedder (as the
/// library's fixtures are) unless the test sets `AMAL_EMBEDDER` itself.
pub fn engine_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amal-engine"));
    command
        .args(args)
        .env("AMAL_DATA_DIR", data_dir)
        .env("AMAL_EMBEDDER", "hashed");
    for var in [
        "DATABASE_URL",
        "AMAL_EMBED_URL",
        "AMAL_LLM_URL",
        "AMAL_RAG_THRESHOLD",
        "AMAL_CLARIFY",
        // The clusters tests make archive their WAL, as a user's do by default.
        "AMAL_WAL_ARCHIVE",
    ] {
        command.env_remove(var);
    }
    command
}

/// A running `amal-engine serve` on the test's own database, stopped (killed) when dropped,
/// however the test ends.
pub struct ServeProcess {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: std::process::Child,
}

impl ServeProcess {
    /// Starts `amal-engine serve` on a free port with `args` and `envs` and waits (up to 60 s)
    /// until `/healthz` answers 200.
    pub async fn start(
        pool: &PgPool,
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bind = format!("127.0.0.1:{port}");
        let mut all = vec!["serve", "--bind", &bind];
        all.extend_from_slice(args);
        let mut command = engine_command(data_dir, &all);
        command
            .env("DATABASE_URL", own_database_url(pool))
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let serve = ServeProcess {
            base: format!("http://{bind}"),
            child: command.spawn().unwrap(),
        };
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", serve.base)).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return serve;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/healthz never answered 200"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs [`engine_command`] and returns its standard output; a failure fails the test with the
/// command's exit status and both outputs.
#[track_caller]
pub fn run_engine(data_dir: &Path, args: &[&str]) -> String {
    stdout_of_success(args, engine_output(data_dir, args))
}

/// Runs [`engine_command`] with `input` on its standard input, as [`run_engine`] does.
#[track_caller]
pub fn run_engine_with_input(data_dir: &Path, args: &[&str], input: &str) -> String {
    stdout_of_success(args, engine_output_with_input(data_dir, args, input))
}

/// Runs [`engine_command`] and returns its output, whatever its exit status.
pub fn engine_output(data_dir: &Path, args: &[&str]) -> Output {
    engine_command(data_dir, args)
        .output()
        .expect("run amal-engine")
}

/// Runs [`engine_command`] with `input` on its standard input and returns its output, whatever
/// its exit status.
pub fn engine_output_with_input(data_dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = engine_command(data_dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run amal-engine");
    // Dropped after writing: the command reads to the end of its input.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[track_caller]
fn stdout_of_success(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{args:?}: exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL without pgvector
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Who is on shift
// ---------------------------------------------------------------------------------------------

/// A staff member online now who answers in Arabic, French and English, so that a hand-over
/// may truthfully promise a human (with nobody online the engine says when the team is back).
pub async fn someone_on_shift(pool: &PgPool) -> Actor {
    let member = staff_account(pool, "on.shift@amal.example", "agent").await;
    sqlx::query("INSERT INTO staff_profiles (user_id, languages) VALUES ($1, '{ar,fr,en}')")
        .bind(member.id)
        .execute(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    amal_engine::roster::set_presence(
        &mut conn,
        None,
        &member.email,
        amal_engine::presence::Presence::Online,
        amal_engine::presence::PresenceCause::Admin,
        &amal_engine::config::RoutingSettings::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    member
}
