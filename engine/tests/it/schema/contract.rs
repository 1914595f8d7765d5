//! Extensions, the contract a minimal row relies on, and the constraint names the engine maps
//! to errors.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::user;
use crate::fixtures::TestResult;

#[sqlx::test(migrations = "../migrations")]
async fn extensions_are_installed(pool: PgPool) -> TestResult {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT extname::text FROM pg_extension WHERE extname IN ('vector', 'pg_trgm', 'btree_gin') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    names.sort();
    assert_eq!(names, ["btree_gin", "pg_trgm", "vector"]);
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn contract_user_with_only_email_password_and_name_is_a_valid_end_user(
    pool: PgPool,
) -> TestResult {
    let row = sqlx::query(
        "INSERT INTO users (email, password_hash, name) VALUES ('amina@example.dz', 'hash', 'Amina')
         RETURNING id, locale::text, timezone::text, consent_data_storage, is_active, is_verified,
                   failed_login_attempts, staff_role, created_at, updated_at, deleted_at",
    )
    .fetch_one(&pool)
    .await?;
    let id: Uuid = row.get("id");
    assert_ne!(id, Uuid::nil());
    assert_eq!(row.get::<String, _>("locale"), "ar-DZ");
    assert_eq!(row.get::<String, _>("timezone"), "Africa/Algiers");
    assert!(!row.get::<bool, _>("consent_data_storage"));
    assert!(row.get::<bool, _>("is_active"));
    assert!(!row.get::<bool, _>("is_verified"));
    assert_eq!(row.get::<i32, _>("failed_login_attempts"), 0);
    assert_eq!(row.get::<Option<String>, _>("staff_role"), None);
    assert_eq!(row.get::<Option<DateTime<Utc>>, _>("deleted_at"), None);
    let created: DateTime<Utc> = row.get("created_at");
    assert_eq!(created, row.get::<DateTime<Utc>, _>("updated_at"));
    assert!((Utc::now() - created).num_seconds().abs() < 60);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn contract_ticket_with_only_required_columns_gets_number_and_sla(
    pool: PgPool,
) -> TestResult {
    let user_id = user(&pool, "t@example.dz").await?;
    let row = sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status)
         VALUES ($1, 'Besoin d''aide', 'crisis', 'urgent', 'open')
         RETURNING ticket_number, created_at, sla_due_at, resolution_due_at, first_response_due_at,
                   escalation_tier, sla_paused_seconds, sla_breached, first_response_breached,
                   resolution_breached, escalated",
    )
    .bind(user_id)
    .fetch_one(&pool)
    .await?;
    let created: DateTime<Utc> = row.get("created_at");
    let year: i32 = sqlx::query_scalar(
        "SELECT extract(year FROM $1::timestamptz AT TIME ZONE 'Africa/Algiers')::int",
    )
    .bind(created)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        row.get::<String, _>("ticket_number"),
        format!("TKT-{year}-000001")
    );
    assert_eq!(
        row.get::<DateTime<Utc>, _>("sla_due_at"),
        created + Duration::hours(4)
    );
    assert_eq!(
        row.get::<DateTime<Utc>, _>("resolution_due_at"),
        created + Duration::hours(4)
    );
    assert_eq!(
        row.get::<DateTime<Utc>, _>("first_response_due_at"),
        created + Duration::minutes(15)
    );
    assert_eq!(row.get::<String, _>("escalation_tier"), "T1");
    assert_eq!(row.get::<i32, _>("sla_paused_seconds"), 0);
    assert!(!row.get::<bool, _>("sla_breached"));
    assert!(!row.get::<bool, _>("first_response_breached"));
    assert!(!row.get::<bool, _>("resolution_breached"));
    assert!(!row.get::<bool, _>("escalated"));
    Ok(())
}

/// The names the engine maps to domain errors: renaming one is a breaking change.
#[sqlx::test(migrations = "../migrations")]
async fn constraint_names_are_stable(pool: PgPool) -> TestResult {
    let expected = [
        ("users", "users_email_key"),
        ("users", "chk_users_consent"),
        ("users", "chk_users_staff_role"),
        ("user_sessions", "user_sessions_refresh_token_hash_key"),
        ("magic_links", "magic_links_token_key"),
        ("messages", "chk_messages_role"),
        ("messages", "chk_messages_content_length"),
        ("messages", "chk_messages_tokens_used"),
        ("messages", "chk_messages_staff_author"),
        ("messages", "messages_conversation_id_client_message_id_key"),
        ("messages", "messages_conversation_id_fkey"),
        ("decision_logs", "chk_decision_logs_confidence"),
        ("decision_logs", "chk_decision_logs_decision"),
        ("documents", "chk_documents_review_status"),
        ("documents", "documents_content_hash_key"),
        ("document_chunks", "chk_document_chunks_embedding_model"),
        (
            "document_chunks",
            "document_chunks_document_id_chunk_index_key",
        ),
        ("support_tickets", "support_tickets_ticket_number_key"),
        ("support_tickets", "chk_support_tickets_escalation_tier"),
        ("support_tickets", "chk_support_tickets_sla_paused_seconds"),
        ("support_tickets", "support_tickets_priority_fkey"),
        ("ticket_escalations", "chk_ticket_escalations_tiers"),
        ("ticket_comments", "chk_ticket_comments_content_length"),
        ("embedding_settings", "chk_embedding_settings_dimension"),
    ];
    for (table, name) in expected {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)",
        )
        .bind(table)
        .bind(name)
        .fetch_one(&pool)
        .await?;
        assert!(found, "constraint {name} missing on {table}");
    }
    let domains: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.typname::text, c.conname::text FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
          WHERE t.typname IN ('email_address', 'locale_code', 'timezone_name') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        domains,
        [
            (
                "email_address".to_owned(),
                "chk_email_address_format".to_owned()
            ),
            (
                "locale_code".to_owned(),
                "chk_locale_code_supported".to_owned()
            ),
            (
                "timezone_name".to_owned(),
                "chk_timezone_name_format".to_owned()
            ),
        ]
    );
    Ok(())
}
