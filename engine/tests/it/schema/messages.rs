//! Messages and decision logs: content length, roles and staff authors, token counts, the
//! idempotency key.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{assert_violates, conversation, message, message_count, staff, user};
use crate::fixtures::TestResult;

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn messages_content_length_is_1_to_10000_characters(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "m@example.dz").await?).await?;
    assert_violates(
        message(&pool, c, "user", "").await,
        "chk_messages_content_length",
    );
    assert_violates(
        message(&pool, c, "user", &"a".repeat(10_001)).await,
        "chk_messages_content_length",
    );
    message(&pool, c, "user", "a").await?;
    message(&pool, c, "user", &"a".repeat(10_000)).await?;
    // Characters, not bytes: 10,000 Arabic letters are 20,000 bytes.
    message(&pool, c, "user", &"س".repeat(10_000)).await?;
    assert_violates(
        message(&pool, c, "user", &"س".repeat(10_001)).await,
        "chk_messages_content_length",
    );
    assert_eq!(message_count(&pool, c).await?, 3);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn messages_role_and_staff_author_are_checked(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "m@example.dz").await?).await?;
    for role in ["user", "assistant", "system"] {
        message(&pool, c, role, "hello").await?;
    }
    assert_violates(
        message(&pool, c, "robot", "hello").await,
        "chk_messages_role",
    );
    // A staff reply must name its author.
    assert_violates(
        message(&pool, c, "staff", "hello").await,
        "chk_messages_staff_author",
    );
    let agent = staff(&pool, "agent@amal.dz", "agent").await?;
    sqlx::query("INSERT INTO messages (conversation_id, role, content, author_id) VALUES ($1, 'staff', 'Bonjour', $2)")
        .bind(c)
        .bind(agent)
        .execute(&pool)
        .await?;
    assert_eq!(message_count(&pool, c).await?, 4);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn messages_tokens_used_must_be_positive(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "m@example.dz").await?).await?;
    let insert = |tokens: Option<i32>| {
        sqlx::query(
            "INSERT INTO messages (conversation_id, role, content, tokens_used) VALUES ($1, 'assistant', 'x', $2)",
        )
        .bind(c)
        .bind(tokens)
        .execute(&pool)
    };
    assert_violates(insert(Some(0)).await, "chk_messages_tokens_used");
    assert_violates(insert(Some(-5)).await, "chk_messages_tokens_used");
    insert(Some(1)).await?;
    insert(None).await?;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn client_message_id_is_an_idempotency_key_per_conversation(pool: PgPool) -> TestResult {
    let u = user(&pool, "m@example.dz").await?;
    let (c1, c2) = (conversation(&pool, u).await?, conversation(&pool, u).await?);
    let insert = |c: Uuid, key: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO messages (conversation_id, role, content, client_message_id) VALUES ($1, 'user', 'x', $2)",
        )
        .bind(c)
        .bind(key)
        .execute(&pool)
    };
    insert(c1, Some("k-1")).await?;
    assert_violates(
        insert(c1, Some("k-1")).await,
        "messages_conversation_id_client_message_id_key",
    );
    // The same key in another conversation, and any number of messages without a key.
    insert(c2, Some("k-1")).await?;
    insert(c1, None).await?;
    insert(c1, None).await?;
    // A retried send is absorbed by ON CONFLICT on the constraint's columns.
    let retried = sqlx::query(
        "INSERT INTO messages (conversation_id, role, content, client_message_id) VALUES ($1, 'user', 'x', 'k-1')
         ON CONFLICT (conversation_id, client_message_id) DO NOTHING",
    )
    .bind(c1)
    .execute(&pool)
    .await?;
    assert_eq!(retried.rows_affected(), 0);
    assert_eq!(message_count(&pool, c1).await?, 3);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn decision_logs_confidence_and_decision_are_checked(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "d@example.dz").await?).await?;
    let m = message(&pool, c, "user", "je me sens mal").await?;
    let insert = |decision: &'static str, confidence: f64| {
        sqlx::query(
            "INSERT INTO decision_logs (conversation_id, message_id, decision, confidence) VALUES ($1, $2, $3, $4)",
        )
        .bind(c)
        .bind(m)
        .bind(decision)
        .bind(confidence)
        .execute(&pool)
    };
    assert_violates(insert("rag", 1.5).await, "chk_decision_logs_confidence");
    assert_violates(insert("rag", -0.01).await, "chk_decision_logs_confidence");
    assert_violates(insert("maybe", 0.5).await, "chk_decision_logs_decision");
    insert("rag", 0.0).await?;
    insert("support", 1.0).await?;
    let row = sqlx::query(
        "INSERT INTO decision_logs (conversation_id, decision, confidence, reason, reason_code, reason_ar, reason_fr,
                                    reason_en, evidence)
         VALUES ($1, 'support', 0.9, 'أزمة', 'crisis_keyword', 'أزمة', 'Crise', 'Crisis', '{\"keywords\": [\"suicide\"]}')
         RETURNING reason_code, evidence",
    )
    .bind(c)
    .fetch_one(&pool)
    .await?;
    assert_eq!(row.get::<String, _>(0), "crisis_keyword");
    assert_eq!(row.get::<serde_json::Value, _>(1)["keywords"][0], "suicide");
    Ok(())
}
