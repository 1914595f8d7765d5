//! The admin CLI's contract: `db url`, `seed`, `doctor --json`, `db stop`, all honouring AMAL_DATA_DIR.

use std::process::{Command, Output};

use amal_engine::db;

fn engine(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amal-engine"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("AMAL_DATA_DIR", data_dir)
        .output()
        .expect("run amal-engine")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn contract_db_url_seed_doctor_stop() {
    let dir = tempfile::tempdir().unwrap();
    let url = ok(engine(dir.path(), &["db", "url"]))
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(url.starts_with("postgres://"), "{url}");

    ok(engine(dir.path(), &["seed"]));
    ok(engine(dir.path(), &["seed"])); // idempotent

    let report: serde_json::Value =
        serde_json::from_str(&ok(engine(dir.path(), &["doctor", "--json"]))).unwrap();
    assert_eq!(report["healthy"], true, "{report:#}");

    let pool = db::connect_url(&url, 2).await.unwrap();
    let priorities: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_priorities")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        priorities, 4,
        "seed loaded exactly the four priorities once"
    );

    // A users row with only email, password_hash and name is a valid end user.
    let user: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name) VALUES ('a@example.dz', 'x', 'A') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // A ticket with only user_id, subject, category, priority and status gets number and SLA due date.
    let (number, due): (String, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status) \
         VALUES ($1, 'help', 'crisis', 'urgent', 'open') RETURNING ticket_number, sla_due_at",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        number.starts_with("TKT-") && number.ends_with("-000001"),
        "{number}"
    );
    assert!(due.is_some());
    pool.close().await;

    assert!(ok(engine(dir.path(), &["db", "stop"])).contains("stopped"));
    let status: serde_json::Value =
        serde_json::from_str(&ok(engine(dir.path(), &["db", "status", "--json"]))).unwrap();
    assert_eq!(status["running"], false);
    // `db url` starts it again, same URL.
    let again = ok(engine(dir.path(), &["db", "url"]))
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(again, url);
    ok(engine(dir.path(), &["db", "stop"]));
}

#[test]
fn reset_refuses_without_confirmation_when_not_interactive() {
    let dir = tempfile::tempdir().unwrap();
    let out = engine(dir.path(), &["db", "reset"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

#[test]
fn db_commands_refuse_an_external_database() {
    let out = Command::new(env!("CARGO_BIN_EXE_amal-engine"))
        .args(["db", "stop"])
        .env(
            "DATABASE_URL",
            "postgres://someone:secret@db.example:5432/amal",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DATABASE_URL is set") && !err.contains("secret"),
        "{err}"
    );
}
