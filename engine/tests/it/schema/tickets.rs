//! Tickets' constraints: escalation tiers and history, the SLA columns, comments and their
//! edit history.

use sqlx::PgPool;
use uuid::Uuid;

use super::{assert_violates, staff, ticket, user};
use crate::fixtures::TestResult;

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn ticket_escalation_tier_and_history_are_checked(pool: PgPool) -> TestResult {
    let u = user(&pool, "e@example.dz").await?;
    let supervisor = staff(&pool, "sup@amal.dz", "supervisor").await?;
    let (t, _) = ticket(&pool, u, "high").await?;
    for tier in ["T2", "T3", "manager", "T1"] {
        sqlx::query("UPDATE support_tickets SET escalation_tier = $2 WHERE id = $1")
            .bind(t)
            .bind(tier)
            .execute(&pool)
            .await?;
    }
    let result = sqlx::query("UPDATE support_tickets SET escalation_tier = 'T4' WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await;
    assert_violates(result, "chk_support_tickets_escalation_tier");
    let result = sqlx::query("UPDATE support_tickets SET sla_paused_seconds = -1 WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await;
    assert_violates(result, "chk_support_tickets_sla_paused_seconds");

    let escalate = |from: &'static str, to: &'static str, reason: &'static str| {
        sqlx::query(
            "INSERT INTO ticket_escalations (ticket_id, from_tier, to_tier, reason, actor_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t)
        .bind(from)
        .bind(to)
        .bind(reason)
        .bind(supervisor)
        .execute(&pool)
    };
    escalate("T1", "T2", "Risque suicidaire signalé").await?;
    escalate("T2", "manager", "SLA breached").await?;
    assert_violates(
        escalate("T2", "T2", "same").await,
        "chk_ticket_escalations_tiers",
    );
    assert_violates(
        escalate("T2", "T9", "unknown").await,
        "chk_ticket_escalations_tiers",
    );
    assert_violates(
        escalate("T1", "T2", "   ").await,
        "chk_ticket_escalations_reason",
    );
    let history: Vec<String> = sqlx::query_scalar(
        "SELECT to_tier FROM ticket_escalations WHERE ticket_id = $1 ORDER BY created_at, to_tier DESC",
    )
    .bind(t)
    .fetch_all(&pool)
    .await?;
    assert_eq!(history, ["T2", "manager"]);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn documented_sla_columns_mirror_the_new_ones(pool: PgPool) -> TestResult {
    let (t, _) = ticket(&pool, user(&pool, "s@example.dz").await?, "medium").await?;
    sqlx::query("UPDATE support_tickets SET resolution_breached = true WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await?;
    let (breached, same_due): (bool, bool) = sqlx::query_as(
        "SELECT sla_breached, sla_due_at = resolution_due_at FROM support_tickets WHERE id = $1",
    )
    .bind(t)
    .fetch_one(&pool)
    .await?;
    assert!(breached && same_due);
    // Generated: writers must use resolution_due_at / resolution_breached.
    let err = sqlx::query("UPDATE support_tickets SET sla_due_at = now() WHERE id = $1")
        .bind(t)
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sla_due_at"), "{err}");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn ticket_comments_and_their_edit_history(pool: PgPool) -> TestResult {
    let u = user(&pool, "c@example.dz").await?;
    let agent = staff(&pool, "agent@amal.dz", "agent").await?;
    let (t, _) = ticket(&pool, u, "low").await?;
    let insert = |content: String| {
        sqlx::query_scalar::<_, Uuid>(
            "INSERT INTO ticket_comments (ticket_id, user_id, content) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(t)
        .bind(agent)
        .bind(content)
        .fetch_one(&pool)
    };
    assert_violates(
        insert(String::new()).await,
        "chk_ticket_comments_content_length",
    );
    assert_violates(
        insert("x".repeat(10_001)).await,
        "chk_ticket_comments_content_length",
    );
    let comment = insert("Premier contact".into()).await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO ticket_comment_edits (comment_id, previous_content, edited_by)
         SELECT id, content, $2 FROM ticket_comments WHERE id = $1",
    )
    .bind(comment)
    .bind(agent)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE ticket_comments SET content = 'Premier contact établi' WHERE id = $1")
        .bind(comment)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let previous: Vec<String> = sqlx::query_scalar(
        "SELECT previous_content FROM ticket_comment_edits WHERE comment_id = $1",
    )
    .bind(comment)
    .fetch_all(&pool)
    .await?;
    assert_eq!(previous, ["Premier contact"]);
    Ok(())
}
