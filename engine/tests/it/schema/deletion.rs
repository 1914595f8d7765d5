//! Deletion rules: what deleting a user keeps and what it may not remove.

use sqlx::PgPool;
use uuid::Uuid;

use super::{assert_violates, conversation, message, staff, ticket, user};
use crate::fixtures::TestResult;

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn deleting_a_user_keeps_the_audit_trail_and_staff_authorship_is_protected(
    pool: PgPool,
) -> TestResult {
    let u = user(&pool, "gdpr@example.dz").await?;
    let c = conversation(&pool, u).await?;
    message(&pool, c, "user", "hello").await?;
    ticket(&pool, u, "low").await?;
    sqlx::query(
        "INSERT INTO audit_logs (user_id, action, resource_type, resource_id) VALUES ($1, 'login', 'user', $1)",
    )
    .bind(u)
    .execute(&pool)
    .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(u)
        .execute(&pool)
        .await?;
    let (conversations, tickets, audit_actor): (i64, i64, Option<Uuid>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM support_tickets),
                (SELECT user_id FROM audit_logs WHERE action = 'login')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((conversations, tickets, audit_actor), (0, 0, None));

    // A staff member who wrote into a conversation is soft-deleted, not erased.
    let agent = staff(&pool, "agent@amal.dz", "agent").await?;
    let c = conversation(&pool, user(&pool, "other@example.dz").await?).await?;
    sqlx::query("INSERT INTO messages (conversation_id, role, content, author_id) VALUES ($1, 'staff', 'x', $2)")
        .bind(c)
        .bind(agent)
        .execute(&pool)
        .await?;
    assert_violates(
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(agent)
            .execute(&pool)
            .await,
        "messages_author_id_fkey",
    );
    Ok(())
}
