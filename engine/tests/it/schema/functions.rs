//! Functions: archiving, magic-link clean-up, the conversation summary, daily statistics.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{assert_violates, conversation, message, message_at, staff, ticket, user};
use crate::fixtures::{TestResult, ts};

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn archive_old_conversations_archives_only_inactive_ones(pool: PgPool) -> TestResult {
    let u = user(&pool, "a@example.dz").await?;
    let now = Utc::now();
    let old_messages = conversation(&pool, u).await?;
    message_at(&pool, old_messages, now - Duration::days(100)).await?;
    let old_and_empty: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (user_id, created_at) VALUES ($1, now() - interval '100 days') RETURNING id",
    )
    .bind(u)
    .fetch_one(&pool)
    .await?;
    // Created long ago but active recently.
    let recent: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (user_id, created_at) VALUES ($1, now() - interval '100 days') RETURNING id",
    )
    .bind(u)
    .fetch_one(&pool)
    .await?;
    message_at(&pool, recent, now - Duration::days(2)).await?;
    let already: Uuid = sqlx::query_scalar(
        "INSERT INTO conversations (user_id, status, created_at, archived_at)
         VALUES ($1, 'archived', now() - interval '200 days', '2025-01-01T00:00:00Z') RETURNING id",
    )
    .bind(u)
    .fetch_one(&pool)
    .await?;

    let archived: i32 = sqlx::query_scalar("SELECT archive_old_conversations(90)")
        .fetch_one(&pool)
        .await?;
    assert_eq!(archived, 2);
    let states: Vec<(Uuid, String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, status, archived_at FROM conversations")
            .fetch_all(&pool)
            .await?;
    for (id, status, archived_at) in states {
        if id == old_messages || id == old_and_empty {
            assert_eq!(status, "archived");
            assert!((Utc::now() - archived_at.unwrap()).num_seconds().abs() < 60);
        } else if id == recent {
            assert_eq!((status.as_str(), archived_at), ("active", None));
        } else {
            assert_eq!(id, already);
            assert_eq!(
                archived_at,
                Some(ts("2025-01-01T00:00:00Z")),
                "already archived: untouched"
            );
        }
    }
    let again: i32 = sqlx::query_scalar("SELECT archive_old_conversations(90)")
        .fetch_one(&pool)
        .await?;
    assert_eq!(again, 0);

    for bad in [
        "SELECT archive_old_conversations(0)",
        "SELECT archive_old_conversations(-3)",
        "SELECT archive_old_conversations(NULL)",
    ] {
        let err = sqlx::query(bad).execute(&pool).await.unwrap_err();
        let db = err.as_database_error().unwrap();
        assert!(
            db.message().contains("days must be at least 1"),
            "{}",
            db.message()
        );
        assert_eq!(
            db.code().as_deref(),
            Some("22023"),
            "invalid_parameter_value"
        );
    }
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn cleanup_expired_magic_links_removes_links_older_than_a_week(pool: PgPool) -> TestResult {
    let rows = [
        (
            "expired-long-ago",
            "now() - interval '8 days'",
            false,
            "NULL",
        ),
        (
            "expired-recently",
            "now() - interval '1 hour'",
            false,
            "NULL",
        ),
        (
            "used-long-ago",
            "now() + interval '1 hour'",
            true,
            "now() - interval '8 days'",
        ),
        (
            "used-recently",
            "now() - interval '1 day'",
            true,
            "now() - interval '1 day'",
        ),
        ("fresh", "now() + interval '15 minutes'", false, "NULL"),
    ];
    for (token, expires, used, used_at) in rows {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO magic_links (email, token, expires_at, used, used_at)
             VALUES ('m@example.dz', $1, {expires}, $2, {used_at})"
        )))
        .bind(token)
        .bind(used)
        .execute(&pool)
        .await?;
    }
    assert_violates(
        sqlx::query(
            "INSERT INTO magic_links (email, token, expires_at, used) VALUES ('m@example.dz', 'u', now(), true)",
        )
        .execute(&pool)
        .await,
        "chk_magic_links_used_at",
    );
    let deleted: i32 = sqlx::query_scalar("SELECT cleanup_expired_magic_links()")
        .fetch_one(&pool)
        .await?;
    assert_eq!(deleted, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT token FROM magic_links ORDER BY token")
        .fetch_all(&pool)
        .await?;
    assert_eq!(left, ["expired-recently", "fresh", "used-recently"]);
    let again: i32 = sqlx::query_scalar("SELECT cleanup_expired_magic_links()")
        .fetch_one(&pool)
        .await?;
    assert_eq!(again, 0);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn get_conversation_summary_reports_counts_decision_and_ticket(pool: PgPool) -> TestResult {
    let u = user(&pool, "s@example.dz").await?;
    let agent = staff(&pool, "agent@amal.dz", "agent").await?;
    let c = conversation(&pool, u).await?;
    let first = message(&pool, c, "user", "salam").await?;
    message(&pool, c, "assistant", "مرحبا").await?;
    message(&pool, c, "user", "j'ai besoin d'aide").await?;
    let deleted = message(&pool, c, "user", "oops").await?;
    sqlx::query("UPDATE messages SET deleted_at = now() WHERE id = $1")
        .bind(deleted)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO messages (conversation_id, role, content, author_id) VALUES ($1, 'staff', 'On est là', $2)",
    )
    .bind(c)
    .bind(agent)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO decision_logs (conversation_id, message_id, decision, confidence, created_at)
         VALUES ($1, $2, 'rag', 0.6, now() - interval '1 minute'), ($1, $2, 'support', 0.92, now())",
    )
    .bind(c)
    .bind(first)
    .execute(&pool)
    .await?;
    let ticket_number: String = sqlx::query_scalar(
        "INSERT INTO support_tickets (conversation_id, user_id, subject, category, priority, status)
         VALUES ($1, $2, 'Escalade', 'mental_health', 'high', 'open') RETURNING ticket_number",
    )
    .bind(c)
    .bind(u)
    .fetch_one(&pool)
    .await?;

    let row = sqlx::query("SELECT * FROM get_conversation_summary($1)")
        .bind(c)
        .fetch_one(&pool)
        .await?;
    assert_eq!(row.get::<Uuid, _>("id"), c);
    assert_eq!(row.get::<Uuid, _>("user_id"), u);
    assert_eq!(row.get::<String, _>("mode"), "AUTO");
    assert_eq!(row.get::<String, _>("status"), "active");
    assert_eq!(row.get::<i32, _>("message_count"), 4);
    assert_eq!(row.get::<i64, _>("user_message_count"), 2);
    assert_eq!(row.get::<i64, _>("assistant_message_count"), 1);
    assert_eq!(row.get::<i64, _>("staff_message_count"), 1);
    assert_eq!(row.get::<i64, _>("system_message_count"), 0);
    assert_eq!(row.get::<i64, _>("decision_count"), 2);
    assert_eq!(
        row.get::<Option<String>, _>("latest_decision").as_deref(),
        Some("support")
    );
    assert_eq!(
        row.get::<Option<f64>, _>("latest_decision_confidence"),
        Some(0.92)
    );
    assert_eq!(
        row.get::<Option<String>, _>("ticket_number"),
        Some(ticket_number)
    );
    assert_eq!(
        row.get::<Option<String>, _>("ticket_status").as_deref(),
        Some("open")
    );
    let first_at: Option<DateTime<Utc>> = row.get("first_message_at");
    let last_at: Option<DateTime<Utc>> = row.get("last_message_at");
    assert!(first_at.is_some() && first_at <= last_at);

    let none = sqlx::query("SELECT * FROM get_conversation_summary($1)")
        .bind(Uuid::new_v4())
        .fetch_optional(&pool)
        .await?;
    assert!(none.is_none());
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn refresh_daily_statistics_counts_each_metric_per_day(pool: PgPool) -> TestResult {
    let u = user(&pool, "s@example.dz").await?;
    let gone = user(&pool, "gone@example.dz").await?;
    sqlx::query("UPDATE users SET deleted_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await?;
    let c = conversation(&pool, u).await?;
    let m = message(&pool, c, "user", "hello").await?;
    message(&pool, c, "assistant", "hi").await?;
    let deleted = message(&pool, c, "user", "oops").await?;
    sqlx::query("UPDATE messages SET deleted_at = now() WHERE id = $1")
        .bind(deleted)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO decision_logs (conversation_id, message_id, decision, confidence)
         VALUES ($1, $2, 'support', 0.9), ($1, $2, 'rag', 0.4), ($1, $2, 'rag', 0.5)",
    )
    .bind(c)
    .bind(m)
    .execute(&pool)
    .await?;
    let (t, _) = ticket(&pool, u, "urgent").await?;
    sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status)
         VALUES ($1, 's', 'crisis', 'urgent', 'open')",
    )
    .bind(u)
    .execute(&pool)
    .await?;
    sqlx::query(
        "UPDATE support_tickets SET status = 'resolved', resolved_at = now() WHERE id = $1",
    )
    .bind(t)
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO ticket_escalations (ticket_id, from_tier, to_tier, reason) VALUES ($1, 'T1', 'T2', 'r')")
        .bind(t)
        .execute(&pool)
        .await?;

    // Created WITH DATA at migration time: populated but empty until refreshed.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM mv_daily_statistics")
        .fetch_one(&pool)
        .await?;
    assert_eq!(before, 0);
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(&pool)
        .await?;

    let today = "service_local_date(now())";
    let stats: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT metric_type, count FROM mv_daily_statistics WHERE date = {today} ORDER BY metric_type"
    )))
    .fetch_all(&pool)
    .await?;
    let expected = [
        ("conversations", 1),
        ("crisis_tickets", 1),
        ("decisions_rag", 2),
        ("decisions_support", 1),
        ("escalations", 1),
        ("messages", 2),
        ("tickets", 2),
        ("tickets_resolved", 1),
        ("users", 1),
    ];
    let expected: Vec<(String, i64)> = expected.iter().map(|(m, n)| (m.to_string(), *n)).collect();
    assert_eq!(stats, expected);

    // Second refresh takes the CONCURRENTLY path (populated, unique index).
    user(&pool, "another@example.dz").await?;
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(&pool)
        .await?;
    let users: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count FROM mv_daily_statistics WHERE date = {today} AND metric_type = 'users'"
    )))
    .fetch_one(&pool)
    .await?;
    assert_eq!(users, 2);

    // An unpopulated view cannot be refreshed CONCURRENTLY: the function falls back.
    sqlx::query("REFRESH MATERIALIZED VIEW mv_daily_statistics WITH NO DATA")
        .execute(&pool)
        .await?;
    assert!(
        sqlx::query("SELECT count(*) FROM mv_daily_statistics")
            .execute(&pool)
            .await
            .is_err()
    );
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(&pool)
        .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM mv_daily_statistics")
        .fetch_one(&pool)
        .await?;
    assert_eq!(rows, 9);
    Ok(())
}
