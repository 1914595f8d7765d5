//! Triggers: updated_at, edited_at, message counts, last_message_at, ticket numbers and SLA
//! due dates.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::{
    assert_violates, conversation, document, message, message_at, message_count, ticket, ticket_at,
    user,
};
use crate::fixtures::{TestResult, another_pool, ts};

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn updated_at_is_maintained_on_every_table_that_has_it(pool: PgPool) -> TestResult {
    let u = user(&pool, "u@example.dz").await?;
    let c = conversation(&pool, u).await?;
    let (t, _) = ticket(&pool, u, "low").await?;
    let d = document(&pool, "h", "fr-FR").await?;
    sqlx::query("INSERT INTO user_preferences (user_id) VALUES ($1)")
        .bind(u)
        .execute(&pool)
        .await?;
    let comment: Uuid = sqlx::query_scalar(
        "INSERT INTO ticket_comments (ticket_id, user_id, content) VALUES ($1, $2, 'x') RETURNING id",
    )
    .bind(t)
    .bind(u)
    .fetch_one(&pool)
    .await?;

    // (table, key column, key, column to touch)
    let cases = [
        ("users", "id", u, "name = 'Renamed'"),
        ("user_preferences", "user_id", u, "theme = 'dark'"),
        ("conversations", "id", c, "title = 'Renamed'"),
        ("documents", "id", d, "title = 'Renamed'"),
        ("support_tickets", "id", t, "subject = 'Renamed'"),
        ("ticket_comments", "id", comment, "is_internal = true"),
    ];
    let long_ago = ts("2001-01-01T00:00:00Z");
    for (table, key, id, set) in cases {
        // The trigger fires on UPDATE only, so an old value can be planted by hand first...
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} DISABLE TRIGGER update_{table}_updated_at"
        )))
        .execute(&pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET updated_at = $2 WHERE {key} = $1"
        )))
        .bind(id)
        .bind(long_ago)
        .execute(&pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ENABLE TRIGGER update_{table}_updated_at"
        )))
        .execute(&pool)
        .await?;
        // ...then any update, even one that sets updated_at itself, stamps the current time.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {set}, updated_at = $2 WHERE {key} = $1"
        )))
        .bind(id)
        .bind(long_ago)
        .execute(&pool)
        .await?;
        let updated: DateTime<Utc> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT updated_at FROM {table} WHERE {key} = $1"
        )))
        .bind(id)
        .fetch_one(&pool)
        .await?;
        assert!(
            (Utc::now() - updated).num_seconds().abs() < 60,
            "{table}.updated_at = {updated}"
        );
    }
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn edited_at_is_set_only_when_content_changes(pool: PgPool) -> TestResult {
    let u = user(&pool, "u@example.dz").await?;
    let c = conversation(&pool, u).await?;
    let m = message(&pool, c, "user", "hello").await?;
    let (t, _) = ticket(&pool, u, "low").await?;
    let comment: Uuid = sqlx::query_scalar(
        "INSERT INTO ticket_comments (ticket_id, user_id, content) VALUES ($1, $2, 'x') RETURNING id",
    )
    .bind(t)
    .bind(u)
    .fetch_one(&pool)
    .await?;
    let pool = &pool;
    for (table, id) in [("messages", m), ("ticket_comments", comment)] {
        let edited = |sql: &'static str| async move {
            sqlx::query(sqlx::AssertSqlSafe(sql.replace("{table}", table)))
                .bind(id)
                .execute(pool)
                .await?;
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(sqlx::AssertSqlSafe(format!(
                "SELECT edited_at FROM {table} WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(pool)
            .await
        };
        assert_eq!(
            edited("UPDATE {table} SET content = content WHERE id = $1").await?,
            None,
            "{table}"
        );
        assert!(
            edited("UPDATE {table} SET content = 'changed' WHERE id = $1")
                .await?
                .is_some(),
            "{table}"
        );
    }
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn message_count_follows_inserts_deletes_soft_deletes_and_undeletes(
    pool: PgPool,
) -> TestResult {
    let c = conversation(&pool, user(&pool, "u@example.dz").await?).await?;
    assert_eq!(message_count(&pool, c).await?, 0);
    let m1 = message(&pool, c, "user", "one").await?;
    let m2 = message(&pool, c, "assistant", "two").await?;
    let m3 = message(&pool, c, "user", "three").await?;
    assert_eq!(message_count(&pool, c).await?, 3);

    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(m1)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 2);

    let soft_delete = "UPDATE messages SET deleted_at = now() WHERE id = $1";
    sqlx::query(soft_delete).bind(m2).execute(&pool).await?;
    assert_eq!(message_count(&pool, c).await?, 1);
    // Soft-deleting again, or touching deleted_at of a deleted message, changes nothing.
    sqlx::query(soft_delete).bind(m2).execute(&pool).await?;
    assert_eq!(message_count(&pool, c).await?, 1);
    // Hard-deleting a soft-deleted message does not count it twice.
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(m2)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 1);

    sqlx::query(soft_delete).bind(m3).execute(&pool).await?;
    assert_eq!(message_count(&pool, c).await?, 0);
    sqlx::query("UPDATE messages SET deleted_at = NULL WHERE id = $1")
        .bind(m3)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 1);

    // A message inserted already deleted is not counted.
    sqlx::query("INSERT INTO messages (conversation_id, role, content, deleted_at) VALUES ($1, 'user', 'x', now())")
        .bind(c)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 1);
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL",
    )
    .bind(c)
    .fetch_one(&pool)
    .await?;
    assert_eq!(live, 1);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn message_count_never_goes_below_zero(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "u@example.dz").await?).await?;
    let m = message(&pool, c, "user", "one").await?;
    // A counter already wrong (e.g. edited by hand) is not driven negative.
    sqlx::query("UPDATE conversations SET message_count = 0 WHERE id = $1")
        .bind(c)
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(m)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 0);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn message_moved_to_another_conversation_moves_its_count(pool: PgPool) -> TestResult {
    let u = user(&pool, "u@example.dz").await?;
    let (a, b) = (conversation(&pool, u).await?, conversation(&pool, u).await?);
    let m = message(&pool, a, "user", "one").await?;
    message(&pool, a, "user", "two").await?;
    sqlx::query("UPDATE messages SET conversation_id = $2 WHERE id = $1")
        .bind(m)
        .bind(b)
        .execute(&pool)
        .await?;
    assert_eq!(
        (
            message_count(&pool, a).await?,
            message_count(&pool, b).await?
        ),
        (1, 1)
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn last_message_at_is_the_latest_posted_message(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "u@example.dz").await?).await?;
    let last = || {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT last_message_at FROM conversations WHERE id = $1",
        )
        .bind(c)
        .fetch_one(&pool)
    };
    assert_eq!(last().await?, None);
    let t2 = ts("2026-03-01T10:00:00Z");
    let m2 = message_at(&pool, c, t2).await?;
    assert_eq!(last().await?, Some(t2));
    // Out-of-order arrival does not move it back.
    message_at(&pool, c, ts("2026-02-01T10:00:00Z")).await?;
    assert_eq!(last().await?, Some(t2));
    // Deletes do not move it either: it records activity.
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(m2)
        .execute(&pool)
        .await?;
    assert_eq!(last().await?, Some(t2));
    let t3 = ts("2026-04-01T10:00:00Z");
    message_at(&pool, c, t3).await?;
    assert_eq!(last().await?, Some(t3));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn ticket_numbers_are_per_year_in_algiers_time(pool: PgPool) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    let (_, n1) = ticket_at(&pool, u, "low", ts("2026-06-01T12:00:00Z")).await?;
    let (_, n2) = ticket_at(&pool, u, "low", ts("2026-12-31T22:59:59Z")).await?;
    // 23:30 UTC on 31 December is 00:30 on 1 January in Algiers (UTC+1).
    let (_, n3) = ticket_at(&pool, u, "low", ts("2026-12-31T23:30:00Z")).await?;
    let (_, n4) = ticket_at(&pool, u, "low", ts("2027-01-02T08:00:00Z")).await?;
    assert_eq!(
        [n1, n2, n3, n4],
        [
            "TKT-2026-000001",
            "TKT-2026-000002",
            "TKT-2027-000001",
            "TKT-2027-000002"
        ]
    );

    // A number supplied by the caller is replaced by the next one.
    let supplied: String = sqlx::query_scalar(
        "INSERT INTO support_tickets (ticket_number, user_id, subject, category, priority, status, created_at)
         VALUES ('TKT-2027-999999', $1, 's', 'crisis', 'low', 'open', '2027-03-01T00:00:00Z') RETURNING ticket_number",
    )
    .bind(u)
    .fetch_one(&pool)
    .await?;
    assert_eq!(supplied, "TKT-2027-000003");

    let result = sqlx::query(
        "UPDATE support_tickets SET ticket_number = 'TKT-2026-000001' WHERE ticket_number = 'TKT-2027-000001'",
    )
    .execute(&pool)
    .await;
    assert_violates(result, "support_tickets_ticket_number_key");
    let result = sqlx::query(
        "UPDATE support_tickets SET ticket_number = 'T-1' WHERE ticket_number = 'TKT-2027-000001'",
    )
    .execute(&pool)
    .await;
    assert_violates(result, "chk_support_tickets_ticket_number_format");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn ticket_number_widens_beyond_six_digits(pool: PgPool) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    sqlx::query("SELECT setval(ticket_number_sequence(2031), 999998)")
        .execute(&pool)
        .await?;
    let (_, a) = ticket_at(&pool, u, "low", ts("2031-05-01T12:00:00Z")).await?;
    let (_, b) = ticket_at(&pool, u, "low", ts("2031-05-01T12:00:00Z")).await?;
    assert_eq!([a, b], ["TKT-2031-999999", "TKT-2031-1000000"]);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn concurrent_ticket_inserts_get_distinct_consecutive_numbers(pool: PgPool) -> TestResult {
    const CLIENTS: usize = 32;
    let u = user(&pool, "t@example.dz").await?;
    // The test pool allows 5 connections; every client needs its own transaction at once.
    let wide = another_pool(
        &pool,
        PgPoolOptions::new().max_connections(CLIENTS as u32 + 4),
    )
    .await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (wide, barrier) = (wide.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut tx = wide.begin().await?;
            // All transactions are open before any inserts: they race for the same year.
            barrier.wait().await;
            let number: String = sqlx::query_scalar(
                "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
                 VALUES ($1, 'race', 'crisis', 'urgent', 'open', '2030-05-01T12:00:00+01:00') RETURNING ticket_number",
            )
            .bind(u)
            .fetch_one(&mut *tx)
            .await?;
            // Keep every transaction open together: numbering must not depend on commit order.
            tokio::time::sleep(StdDuration::from_millis(10)).await;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(number)
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.expect("task panicked")?);
    }
    wide.close().await;

    numbers.sort();
    let expected: Vec<String> = (1..=CLIENTS).map(|n| format!("TKT-2030-{n:06}")).collect();
    assert_eq!(numbers, expected);
    let last: i64 = sqlx::query_scalar("SELECT last_value FROM ticket_number_seq_2030")
        .fetch_one(&pool)
        .await?;
    assert_eq!(last, CLIENTS as i64);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn rolled_back_ticket_insert_never_reuses_its_number(pool: PgPool) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    let at = ts("2029-02-01T12:00:00Z");
    let (_, first) = ticket_at(&pool, u, "low", at).await?;
    let mut tx = pool.begin().await?;
    let abandoned: String = sqlx::query_scalar(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
         VALUES ($1, 's', 'crisis', 'low', 'open', $2) RETURNING ticket_number",
    )
    .bind(u)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    assert_eq!(abandoned, "TKT-2029-000002");
    tx.rollback().await?;
    // A failed insert (unknown category) uses a number too: numbers are unique, not gapless.
    assert_violates(
        sqlx::query(
            "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
             VALUES ($1, 's', 'nope', 'low', 'open', $2)",
        )
        .bind(u)
        .bind(at)
        .execute(&pool)
        .await,
        "support_tickets_category_fkey",
    );
    let (_, second) = ticket_at(&pool, u, "low", at).await?;
    assert_eq!([first, second], ["TKT-2029-000001", "TKT-2029-000004"]);
    let numbers: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT ticket_number) FROM support_tickets WHERE ticket_number LIKE 'TKT-2029-%'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(numbers, 2);
    Ok(())
}

/// The application role creates a year's sequence through the SECURITY DEFINER function
/// (it may not create objects itself), and years keep separate sequences.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn a_new_years_sequence_is_created_for_the_application_role(pool: PgPool) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_app")
        .execute(&mut *tx)
        .await?;
    let mut numbers = Vec::new();
    for at in [
        "2033-06-01T12:00:00Z",
        "2034-06-01T12:00:00Z",
        "2033-07-01T12:00:00Z",
    ] {
        let number: String = sqlx::query_scalar(
            "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
             VALUES ($1, 's', 'crisis', 'low', 'open', $2) RETURNING ticket_number",
        )
        .bind(u)
        .bind(ts(at))
        .fetch_one(&mut *tx)
        .await?;
        numbers.push(number);
    }
    tx.commit().await?;
    assert_eq!(
        numbers,
        ["TKT-2033-000001", "TKT-2034-000001", "TKT-2033-000002"]
    );
    let err = sqlx::query("SELECT ticket_number_sequence(20000)")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("year 20000 is out of range"),
        "{err}"
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn sla_due_dates_are_created_at_plus_the_priority_minutes(pool: PgPool) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    let created = ts("2026-03-10T09:00:00Z");
    // priority, first response, resolution (the seeded targets)
    let targets = [
        ("urgent", Duration::minutes(15), Duration::hours(4)),
        ("high", Duration::minutes(60), Duration::hours(24)),
        ("medium", Duration::minutes(240), Duration::hours(72)),
        ("low", Duration::minutes(1440), Duration::days(7)),
    ];
    for (priority, first_response, resolution) in targets {
        let (t, _) = ticket_at(&pool, u, priority, created).await?;
        let (fr, rd, sla): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
            "SELECT first_response_due_at, resolution_due_at, sla_due_at FROM support_tickets WHERE id = $1",
        )
        .bind(t)
        .fetch_one(&pool)
        .await?;
        assert_eq!(fr, created + first_response, "{priority} first response");
        assert_eq!(rd, created + resolution, "{priority} resolution");
        assert_eq!(sla, rd, "{priority} sla_due_at");
    }
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn sla_due_dates_are_recomputed_from_created_at_when_priority_changes(
    pool: PgPool,
) -> TestResult {
    let u = user(&pool, "t@example.dz").await?;
    let created = ts("2026-03-10T09:00:00Z");
    let (t, _) = ticket_at(&pool, u, "low", created).await?;
    let due = || {
        sqlx::query_as::<_, (DateTime<Utc>, DateTime<Utc>)>(
            "SELECT first_response_due_at, sla_due_at FROM support_tickets WHERE id = $1",
        )
        .bind(t)
        .fetch_one(&pool)
    };
    sqlx::query("UPDATE support_tickets SET priority = 'urgent' WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await?;
    assert_eq!(
        due().await?,
        (
            created + Duration::minutes(15),
            created + Duration::hours(4)
        )
    );

    // Other updates leave the dates alone, including dates adjusted by hand.
    let adjusted = created + Duration::hours(5);
    sqlx::query("UPDATE support_tickets SET resolution_due_at = $2 WHERE id = $1")
        .bind(t)
        .bind(adjusted)
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE support_tickets SET subject = 'x', status = 'in_progress', priority = 'urgent' WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await?;
    assert_eq!(due().await?, (created + Duration::minutes(15), adjusted));

    sqlx::query("UPDATE support_tickets SET priority = 'high' WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await?;
    assert_eq!(
        due().await?,
        (created + Duration::hours(1), created + Duration::hours(24))
    );

    // An SLA target edited in the reference data applies to the next recomputation.
    sqlx::query("UPDATE ticket_priorities SET first_response_minutes = 5 WHERE code = 'medium'")
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE support_tickets SET priority = 'medium' WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await?;
    assert_eq!(
        due().await?,
        (
            created + Duration::minutes(5),
            created + Duration::hours(72)
        )
    );
    Ok(())
}
