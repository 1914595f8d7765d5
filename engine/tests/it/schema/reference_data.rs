//! The reference data in `seeds/reference.sql`: idempotent, complete and consistent.

use sqlx::PgPool;

use super::assert_violates;
use crate::fixtures::TestResult;

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn reference_seed_is_idempotent_and_complete(pool: PgPool) -> TestResult {
    let reference = include_str!("../../../../seeds/reference.sql");
    // Drift a label and a target: a re-run restores them.
    sqlx::query("UPDATE ticket_categories SET name_fr = 'x' WHERE code = 'crisis'")
        .execute(&pool)
        .await?;
    sqlx::query(
        "UPDATE ticket_priorities SET first_response_minutes = 30, resolution_minutes = 300, sla_hours = 5
          WHERE code = 'urgent'",
    )
    .execute(&pool)
    .await?;
    sqlx::raw_sql(reference).execute(&pool).await?;
    sqlx::raw_sql(reference).execute(&pool).await?;

    let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversation_modes), (SELECT count(*) FROM conversation_statuses),
                (SELECT count(*) FROM ticket_categories), (SELECT count(*) FROM ticket_priorities),
                (SELECT count(*) FROM ticket_statuses)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(counts, (3, 4, 5, 4, 5));

    let modes: Vec<String> =
        sqlx::query_scalar("SELECT code FROM conversation_modes ORDER BY code")
            .fetch_all(&pool)
            .await?;
    assert_eq!(modes, ["AUTO", "RAG", "SUPPORT"]);
    let terminal: Vec<String> = sqlx::query_scalar(
        "SELECT code FROM conversation_statuses WHERE is_terminal ORDER BY code",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(terminal, ["archived", "closed"]);

    let crisis: (String, String, String, Option<String>, i32) = sqlx::query_as(
        "SELECT name_ar, name_fr, name_en, icon, sort_order FROM ticket_categories WHERE code = 'crisis'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (crisis.0.as_str(), crisis.1.as_str(), crisis.2.as_str()),
        ("أزمة", "Crise", "Crisis")
    );
    assert!(crisis.3.is_some());
    let categories: Vec<String> =
        sqlx::query_scalar("SELECT code FROM ticket_categories ORDER BY sort_order")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        categories,
        [
            "addiction",
            "mental_health",
            "prevention",
            "resources",
            "crisis"
        ]
    );

    let priorities: Vec<(String, i32, i32, i32, i32, String)> = sqlx::query_as(
        "SELECT code, level, sla_hours, first_response_minutes, resolution_minutes, color FROM ticket_priorities ORDER BY level",
    )
    .fetch_all(&pool)
    .await?;
    let summary: Vec<(&str, i32, i32, i32, i32)> = priorities
        .iter()
        .map(|p| (p.0.as_str(), p.1, p.2, p.3, p.4))
        .collect();
    assert_eq!(
        summary,
        [
            ("low", 1, 168, 1440, 10080),
            ("medium", 2, 72, 240, 4320),
            ("high", 3, 24, 60, 1440),
            ("urgent", 4, 4, 15, 240),
        ]
    );
    assert!(
        priorities
            .iter()
            .all(|p| p.5.starts_with('#') && p.5.len() == 7)
    );

    let statuses: Vec<(String, bool, bool)> =
        sqlx::query_as("SELECT code, is_open, is_terminal FROM ticket_statuses ORDER BY code")
            .fetch_all(&pool)
            .await?;
    let statuses: Vec<(&str, bool, bool)> =
        statuses.iter().map(|s| (s.0.as_str(), s.1, s.2)).collect();
    assert_eq!(
        statuses,
        [
            ("closed", false, true),
            ("in_progress", true, false),
            ("open", true, false),
            ("pending", true, false),
            ("resolved", false, false),
        ]
    );

    // Every label exists in the three languages, and the Arabic ones are in Arabic script.
    let untranslated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
            SELECT name_ar, name_fr, name_en FROM conversation_modes
            UNION ALL SELECT name_ar, name_fr, name_en FROM conversation_statuses
            UNION ALL SELECT name_ar, name_fr, name_en FROM ticket_categories
            UNION ALL SELECT name_ar, name_fr, name_en FROM ticket_priorities
            UNION ALL SELECT name_ar, name_fr, name_en FROM ticket_statuses) l
          WHERE btrim(name_fr) = '' OR btrim(name_en) = '' OR name_ar !~ '[\\u0600-\\u06FF]'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(untranslated, 0);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn priority_targets_are_consistent(pool: PgPool) -> TestResult {
    let insert = |sla_hours: i32, first: i32, resolution: i32| {
        sqlx::query(
            "INSERT INTO ticket_priorities (code, name_ar, name_fr, name_en, level, color, sla_hours,
                                            first_response_minutes, resolution_minutes)
             VALUES ('p', 'ع', 'f', 'e', 9, '#123456', $1, $2, $3)",
        )
        .bind(sla_hours)
        .bind(first)
        .bind(resolution)
        .execute(&pool)
    };
    assert_violates(
        insert(4, 300, 240).await,
        "chk_ticket_priorities_response_before_resolution",
    );
    assert_violates(insert(5, 15, 240).await, "chk_ticket_priorities_sla_hours");
    assert_violates(
        insert(0, 0, 0).await,
        "chk_ticket_priorities_targets_positive",
    );
    insert(2, 15, 90).await?;
    Ok(())
}
