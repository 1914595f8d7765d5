//! The database commands of the admin CLI: `db url`, `seed`, `doctor --json`, `db stop`,
//! `db status`, `db reset`, all honouring AMAL_DATA_DIR and refusing an external database.

use amal_engine::db;

use crate::fixtures::{engine_command, engine_output, run_engine};

#[tokio::test]
async fn contract_db_url_seed_doctor_stop() {
    let dir = tempfile::tempdir().unwrap();
    let url = run_engine(dir.path(), &["db", "url"])
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(url.starts_with("postgres://"), "{url}");

    run_engine(dir.path(), &["seed"]);
    run_engine(dir.path(), &["seed"]); // idempotent

    let report: serde_json::Value =
        serde_json::from_str(&run_engine(dir.path(), &["doctor", "--json"])).unwrap();
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

    assert!(run_engine(dir.path(), &["db", "stop"]).contains("stopped"));
    let status: serde_json::Value =
        serde_json::from_str(&run_engine(dir.path(), &["db", "status", "--json"])).unwrap();
    assert_eq!(status["running"], false);
    // `db url` starts it again, same URL.
    let again = run_engine(dir.path(), &["db", "url"])
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(again, url);
    run_engine(dir.path(), &["db", "stop"]);
}

#[test]
fn reset_refuses_without_confirmation_when_not_interactive() {
    let dir = tempfile::tempdir().unwrap();
    let out = engine_output(dir.path(), &["db", "reset"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
}

#[test]
fn db_commands_refuse_an_external_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = engine_command(dir.path(), &["db", "stop"])
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
