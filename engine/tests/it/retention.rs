//! Retention: periods set by admins only (audited), and a run that redacts or deletes what is
//! due, never a conversation with an open ticket, recording what ran.

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::conversations::REDACTED_TEXT;
use amal_engine::retention::{self, RetentionError, RetentionKind};
use amal_engine::staff::StaffError;

use crate::fixtures::{TestResult, end_user, staff_account, ticket_at};

/// A conversation of `email` with two messages, closed, last active `age` ago.
async fn closed_conversation(pool: &PgPool, email: &str, age: &str) -> (Uuid, Uuid) {
    let (user, conv) = end_user(pool, email).await;
    for text in ["j'ai rechuté hier soir", "I relapsed last night"] {
        sqlx::query(
            "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', $2)",
        )
        .bind(conv)
        .bind(text)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE conversations SET status = 'closed', last_message_at = now() - $2::interval, \
                created_at = now() - $2::interval WHERE id = $1",
    )
    .bind(conv)
    .bind(age)
    .execute(pool)
    .await
    .unwrap();
    (user, conv)
}

async fn texts(pool: &PgPool, conv: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT content FROM messages WHERE conversation_id = $1 ORDER BY created_at, id",
    )
    .bind(conv)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_run_redacts_and_deletes_what_is_due_and_spares_open_tickets(pool: PgPool) -> TestResult {
    let (_, due) = closed_conversation(&pool, "a@example.dz", "3 years").await;
    let (user_b, held) = closed_conversation(&pool, "b@example.dz", "3 years").await;
    let (_, recent) = closed_conversation(&pool, "c@example.dz", "1 year").await;
    let (_, ancient) = closed_conversation(&pool, "d@example.dz", "11 years").await;
    let (_, ancient_held) = closed_conversation(&pool, "e@example.dz", "11 years").await;
    let mut conn = pool.acquire().await?;
    ticket_at(&mut conn, user_b, Some(held), "urgent", Utc::now()).await;
    let user_e: Uuid = sqlx::query_scalar("SELECT user_id FROM conversations WHERE id = $1")
        .bind(ancient_held)
        .fetch_one(&pool)
        .await?;
    ticket_at(&mut conn, user_e, Some(ancient_held), "urgent", Utc::now()).await;
    sqlx::query(
        "INSERT INTO audit_logs (action, created_at) VALUES ('old.action', now() - interval '8 years'), \
                                                          ('new.action', now())",
    )
    .execute(&pool)
    .await?;

    let reports = retention::run(&pool, Utc::now()).await?;
    assert_eq!(reports.len(), 3, "{reports:?}");

    // Two years: the text goes, the rows (and what statistics count) stay.
    assert_eq!(texts(&pool, due).await, [REDACTED_TEXT, REDACTED_TEXT]);
    let count: i32 = sqlx::query_scalar("SELECT message_count FROM conversations WHERE id = $1")
        .bind(due)
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 2);
    // An open ticket keeps its conversation whole, however old.
    assert_eq!(
        texts(&pool, held).await,
        ["j'ai rechuté hier soir", "I relapsed last night"]
    );
    assert_eq!(texts(&pool, ancient_held).await.len(), 2);
    assert_ne!(texts(&pool, ancient_held).await[0], REDACTED_TEXT);
    // Not due yet.
    assert_eq!(texts(&pool, recent).await[0], "j'ai rechuté hier soir");
    // Ten years: the conversation itself goes.
    let gone: bool =
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM conversations WHERE id = $1)")
            .bind(ancient)
            .fetch_one(&pool)
            .await?;
    assert!(gone);
    // Seven years of audit trail.
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action::text FROM audit_logs WHERE action LIKE '%.action'")
            .fetch_all(&pool)
            .await?;
    assert_eq!(actions, ["new.action"]);

    // What ran is recorded; a second run finds nothing more.
    let runs: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind::text, rows_affected FROM retention_runs ORDER BY kind")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        runs,
        [
            ("audit_logs".to_string(), 1),
            ("closed_conversation_messages".to_string(), 4),
            ("statistics".to_string(), 1)
        ]
    );
    let again = retention::run(&pool, Utc::now()).await?;
    assert!(again.iter().all(|r| r.rows == 0), "{again:?}");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn only_admins_set_periods_and_it_is_audited(pool: PgPool) -> TestResult {
    let supervisor = staff_account(&pool, "supervisor@amal.example", "supervisor").await;
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let mut conn = pool.acquire().await?;
    assert!(matches!(
        retention::set(&mut conn, Some(&supervisor), RetentionKind::AuditLogs, 400).await,
        Err(RetentionError::Staff(StaffError::Forbidden { .. }))
    ));
    assert!(matches!(
        retention::set(&mut conn, Some(&admin), RetentionKind::AuditLogs, 5).await,
        Err(RetentionError::BadPeriod(5))
    ));
    retention::set(&mut conn, Some(&admin), RetentionKind::AuditLogs, 400).await?;
    let policies = retention::policies(&mut conn).await?;
    let audit = policies.iter().find(|p| p.kind == "audit_logs").unwrap();
    assert_eq!(audit.keep_days, 400);
    assert_eq!(audit.updated_by.as_deref(), Some("admin@amal.example"));
    let defaults: Vec<(String, i32)> = policies
        .iter()
        .map(|p| (p.kind.clone(), p.keep_days))
        .collect();
    assert!(defaults.contains(&("closed_conversation_messages".into(), 730)));
    assert!(defaults.contains(&("statistics".into(), 3653)));
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_logs WHERE action = 'retention.set' AND user_id = $1",
    )
    .bind(admin.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(details["from_days"], 2557);
    assert_eq!(details["to_days"], 400);
    Ok(())
}
