//! Row-level security, the second wall between people: statements of an end-user request run as
//! `amal_end_user` with the person's id set, and see or change only that person's rows, even
//! when a query forgets its `WHERE`.

use sqlx::{Connection, PgPool, Row};
use uuid::Uuid;

use amal_engine::db::person::{self, END_USER_ROLE, Scope};

use crate::fixtures::{TestResult, consenting_user, now_us, staff_account, ticket_at};

/// Two people, each with a conversation, messages, a decision, preferences, a session and a
/// ticket; returns (person, their conversation) for each.
async fn two_people(pool: &PgPool) -> ((Uuid, Uuid), (Uuid, Uuid)) {
    let mut out = Vec::new();
    for email in ["amina@example.org", "yacine@example.org"] {
        let user = consenting_user(pool, email, "fr-FR").await;
        let conv: Uuid = sqlx::query_scalar(
            "INSERT INTO conversations (user_id, title) VALUES ($1, 'Parler') RETURNING id",
        )
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
        let message: Uuid = sqlx::query_scalar(
            "INSERT INTO messages (conversation_id, role, content) \
             VALUES ($1, 'user', 'secret of ' || $2::text) RETURNING id",
        )
        .bind(conv)
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'assistant', 'reply')",
        )
        .bind(conv)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO decision_logs (conversation_id, message_id, decision, confidence) \
             VALUES ($1, $2, 'support', 0.9)",
        )
        .bind(conv)
        .bind(message)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO user_preferences (user_id) VALUES ($1)")
            .bind(user)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO user_sessions (user_id, refresh_token_hash, expires_at) \
             VALUES ($1, $2, now() + interval '1 day')",
        )
        .bind(user)
        .bind(format!("hash-{email}"))
        .execute(pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        ticket_at(&mut conn, user, Some(conv), "high", now_us()).await;
        out.push((user, conv));
    }
    (out[0], out[1])
}

/// Counts the rows of `table` (all of them: no WHERE) as `user` behind the wall.
async fn visible(pool: &PgPool, user: Uuid, sql: &str) -> Vec<Uuid> {
    let mut tx = Scope::Person(user).begin(pool).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    rows.iter().map(|r| r.get::<Uuid, _>(0)).collect()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn an_unscoped_query_behind_the_wall_sees_only_the_persons_own_rows(
    pool: PgPool,
) -> TestResult {
    let ((amina, amina_conv), (yacine, yacine_conv)) = two_people(&pool).await;

    // The deliberate mistake: every message, no WHERE.
    let mut tx = Scope::Person(amina).begin(&pool).await?;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(role, END_USER_ROLE);
    let messages = sqlx::query("SELECT * FROM messages")
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    assert_eq!(messages.len(), 2, "Amina's two messages, nothing else");
    for m in &messages {
        assert_eq!(m.get::<Uuid, _>("conversation_id"), amina_conv);
        assert!(!m.get::<String, _>("content").contains("yacine"));
    }

    // The same for every table of a person's data.
    let cases = [
        ("SELECT id FROM users", vec![amina], vec![yacine]),
        (
            "SELECT user_id FROM user_preferences",
            vec![amina],
            vec![yacine],
        ),
        (
            "SELECT user_id FROM user_sessions",
            vec![amina],
            vec![yacine],
        ),
        (
            "SELECT id FROM conversations",
            vec![amina_conv],
            vec![yacine_conv],
        ),
        (
            "SELECT conversation_id FROM decision_logs",
            vec![amina_conv],
            vec![yacine_conv],
        ),
        (
            "SELECT user_id FROM support_tickets",
            vec![amina],
            vec![yacine],
        ),
    ];
    for (sql, own, others) in cases {
        assert_eq!(visible(&pool, amina, sql).await, own, "{sql} as Amina");
        assert_eq!(visible(&pool, yacine, sql).await, others, "{sql} as Yacine");
    }

    // The engine's own role, outside any request, still sees everyone (staff are unchanged).
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(all, 4);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn behind_the_wall_another_persons_rows_cannot_be_changed_nor_internal_parts_read(
    pool: PgPool,
) -> TestResult {
    let ((amina, _), (yacine, yacine_conv)) = two_people(&pool).await;
    let mut conn = pool.acquire().await?;

    // Writing into Yacine's conversation as Amina: refused by the policy.
    let mut tx = conn.begin().await?;
    person::enter(&mut tx, amina).await?;
    let err = sqlx::query(
        "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', 'intrusion')",
    )
    .bind(yacine_conv)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await?;

    // Updates and deletes of others' rows find nothing to change.
    let mut tx = conn.begin().await?;
    person::enter(&mut tx, amina).await?;
    let closed = sqlx::query("UPDATE conversations SET status = 'closed'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    assert_eq!(closed, 1, "Amina's own conversation only");
    let gone = sqlx::query("DELETE FROM user_preferences")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    assert_eq!(gone, 1);
    tx.rollback().await?;

    // Nor may a person write the assistant's part, or make themselves staff.
    for sql in [
        "INSERT INTO messages (conversation_id, role, content) \
         SELECT id, 'assistant', 'forged' FROM conversations",
        "UPDATE users SET staff_role = 'admin'",
        "SELECT description FROM support_tickets",
        "SELECT * FROM ticket_comments",
        "SELECT * FROM audit_logs",
        "SELECT * FROM staff_presence",
    ] {
        let mut tx = conn.begin().await?;
        person::enter(&mut tx, amina).await?;
        let err = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("permission denied") || text.contains("row-level security"),
            "{sql}: {text}"
        );
        tx.rollback().await?;
    }

    // Without a person set, the end-user role sees nobody at all.
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_end_user")
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(n, 0);
    tx.rollback().await?;

    // The role and the setting end with the transaction: the pooled connection is the
    // engine's again.
    let (role, setting): (String, Option<String>) = sqlx::query_as(
        "SELECT current_user::text, NULLIF(current_setting('amal.user_id', true), '')",
    )
    .fetch_one(&mut *conn)
    .await?;
    assert_ne!(role, END_USER_ROLE);
    assert_eq!(setting, None);
    let _ = yacine;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn staff_in_a_group_role_still_see_everyone(pool: PgPool) -> TestResult {
    // A deployment's login role that is a member of amal_app, not the tables' owner: the
    // permissive staff policy keeps the console and the workers seeing every row.
    let _ = two_people(&pool).await;
    staff_account(&pool, "agent@example.org", "agent").await;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_app")
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(n, 4);
    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(people, 3);
    tx.rollback().await?;
    Ok(())
}
