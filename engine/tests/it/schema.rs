//! Schema tests: the migrations in `migrations/` and the reference data in `seeds/reference.sql`.
//!
//! Every test gets a fresh database with all migrations applied. Tests that touch conversations
//! or tickets also load the reference data as a fixture: a fixture path is relative to this file
//! (sqlx 0.9 expands it into `include_str!`), while `migrations` is relative to the crate
//! directory (`engine/`).
//!
//! Violations are asserted by constraint name, the contract the engine uses to map a database
//! error to a domain error.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use uuid::Uuid;

type TestResult = sqlx::Result<()>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts that `result` failed on the constraint `name` and returns the error message.
#[track_caller]
fn assert_violates<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, name: &str) -> String {
    let err = match result {
        Ok(value) => {
            panic!("expected a violation of {name}, but the statement succeeded: {value:?}")
        }
        Err(err) => err,
    };
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("expected a database error for {name}, got {err:?}"));
    assert_eq!(
        db.constraint(),
        Some(name),
        "wrong constraint; message: {}",
        db.message()
    );
    db.message().to_owned()
}

/// Asserts a violation of a domain's CHECK: the constraint name and the domain in the message.
#[track_caller]
fn assert_violates_domain<T: std::fmt::Debug>(
    result: Result<T, sqlx::Error>,
    domain: &str,
    name: &str,
) {
    let message = assert_violates(result, name);
    assert!(
        message.contains(&format!("domain {domain}")),
        "message does not name {domain}: {message}"
    );
}

async fn user(pool: &PgPool, email: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name) VALUES ($1, 'x', 'Test') RETURNING id",
    )
    .bind(email)
    .fetch_one(pool)
    .await
}

async fn staff(pool: &PgPool, email: &str, role: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name, staff_role) VALUES ($1, 'x', 'Staff', $2) RETURNING id",
    )
    .bind(email)
    .bind(role)
    .fetch_one(pool)
    .await
}

async fn conversation(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO conversations (user_id, title) VALUES ($1, 'Test') RETURNING id",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}

async fn message(
    pool: &PgPool,
    conversation_id: Uuid,
    role: &str,
    content: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(conversation_id)
    .bind(role)
    .bind(content)
    .fetch_one(pool)
    .await
}

async fn message_at(pool: &PgPool, conversation_id: Uuid, at: DateTime<Utc>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES ($1, 'user', 'hello', $2) RETURNING id",
    )
    .bind(conversation_id)
    .bind(at)
    .fetch_one(pool)
    .await
}

/// A ticket with only the required columns; returns (id, ticket_number).
async fn ticket(pool: &PgPool, user_id: Uuid, priority: &str) -> sqlx::Result<(Uuid, String)> {
    let row = sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status)
         VALUES ($1, 'Need help', 'addiction', $2, 'open') RETURNING id, ticket_number",
    )
    .bind(user_id)
    .bind(priority)
    .fetch_one(pool)
    .await?;
    Ok((row.get(0), row.get(1)))
}

/// A ticket created at `created_at`; returns (id, ticket_number).
async fn ticket_at(
    pool: &PgPool,
    user_id: Uuid,
    priority: &str,
    created_at: DateTime<Utc>,
) -> sqlx::Result<(Uuid, String)> {
    let row = sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
         VALUES ($1, 'Need help', 'crisis', $2, 'open', $3) RETURNING id, ticket_number",
    )
    .bind(user_id)
    .bind(priority)
    .bind(created_at)
    .fetch_one(pool)
    .await?;
    Ok((row.get(0), row.get(1)))
}

async fn message_count(pool: &PgPool, conversation_id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT message_count FROM conversations WHERE id = $1")
        .bind(conversation_id)
        .fetch_one(pool)
        .await
}

fn ts(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn vector_literal(dimension: usize, value: f32) -> String {
    format!("[{}]", vec![value.to_string(); dimension].join(","))
}

// ---------------------------------------------------------------------------------------------
// Extensions, contract and constraint names
// ---------------------------------------------------------------------------------------------

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
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Users and domains
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn email_domain_rejects_invalid_addresses(pool: PgPool) -> TestResult {
    for bad in [
        "not-an-email",
        "a@b",
        "@example.dz",
        "amina@example",
        "amina example@x.dz",
    ] {
        assert_violates_domain(
            user(&pool, bad).await,
            "email_address",
            "chk_email_address_format",
        );
    }
    user(&pool, "first.last+tag@sub.example.dz").await?;
    assert_violates_domain(
        sqlx::query(
            "INSERT INTO magic_links (email, token, expires_at) VALUES ('nope', 't', now() + interval '1 hour')",
        )
        .execute(&pool)
        .await,
        "email_address",
        "chk_email_address_format",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_email_is_unique(pool: PgPool) -> TestResult {
    user(&pool, "same@example.dz").await?;
    assert_violates(user(&pool, "same@example.dz").await, "users_email_key");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn locale_domain_accepts_only_the_three_locales(pool: PgPool) -> TestResult {
    for (i, locale) in ["ar-DZ", "fr-FR", "en-US"].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO users (email, password_hash, name, locale) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("ok{i}@example.dz"))
        .bind(locale)
        .execute(&pool)
        .await?;
    }
    for (i, locale) in ["de-DE", "ar", "fr-fr", ""].into_iter().enumerate() {
        let result = sqlx::query(
            "INSERT INTO users (email, password_hash, name, locale) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("bad{i}@example.dz"))
        .bind(locale)
        .execute(&pool)
        .await;
        assert_violates_domain(result, "locale_code", "chk_locale_code_supported");
    }
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn timezone_domain_accepts_iana_names(pool: PgPool) -> TestResult {
    let good = [
        "Africa/Algiers",
        "America/Argentina/Buenos_Aires",
        "UTC",
        "Etc/GMT+1",
        "Europe/Paris",
    ];
    for (i, zone) in good.into_iter().enumerate() {
        let stored: String = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, timezone) VALUES ($1, 'x', 'n', $2) RETURNING timezone::text",
        )
        .bind(format!("tz{i}@example.dz"))
        .bind(zone)
        .fetch_one(&pool)
        .await?;
        assert_eq!(stored, zone);
    }
    for (i, zone) in [
        "Not a zone",
        "Africa/",
        "/Algiers",
        "Africa//Algiers",
        "A/B/C/D",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let result = sqlx::query(
            "INSERT INTO users (email, password_hash, name, timezone) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("badtz{i}@example.dz"))
        .bind(zone)
        .execute(&pool)
        .await;
        assert_violates_domain(result, "timezone_name", "chk_timezone_name_format");
    }
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_consent_requires_a_timestamp(pool: PgPool) -> TestResult {
    let result = sqlx::query(
        "INSERT INTO users (email, password_hash, name, consent_data_storage) VALUES ('c@example.dz', 'x', 'n', true)",
    )
    .execute(&pool)
    .await;
    assert_violates(result, "chk_users_consent");
    sqlx::query(
        "INSERT INTO users (email, password_hash, name, consent_data_storage, consent_timestamp)
         VALUES ('c@example.dz', 'x', 'n', true, now())",
    )
    .execute(&pool)
    .await?;
    // Withdrawing consent later must not require clearing the timestamp.
    sqlx::query("UPDATE users SET consent_data_storage = false WHERE email = 'c@example.dz'")
        .execute(&pool)
        .await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_staff_role_is_checked(pool: PgPool) -> TestResult {
    for role in ["agent", "supervisor", "admin"] {
        staff(&pool, &format!("{role}@amal.dz"), role).await?;
    }
    assert_violates(
        staff(&pool, "root@amal.dz", "root").await,
        "chk_users_staff_role",
    );
    assert_violates(
        staff(&pool, "empty@amal.dz", "").await,
        "chk_users_staff_role",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Messages and decisions
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Knowledge base
// ---------------------------------------------------------------------------------------------

async fn document(pool: &PgPool, hash: &str, language: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO documents (title, content, content_hash, language) VALUES ('Doc', 'Contenu', $1, $2) RETURNING id",
    )
    .bind(hash)
    .bind(language)
    .fetch_one(pool)
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn documents_review_status_is_checked_and_lang_is_derived(pool: PgPool) -> TestResult {
    let id = document(&pool, "h-fr", "fr-FR").await?;
    let (status, lang): (String, String) =
        sqlx::query_as("SELECT review_status, lang FROM documents WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await?;
    assert_eq!((status.as_str(), lang.as_str()), ("pending", "fr"));
    let ar: String = sqlx::query_scalar("SELECT lang FROM documents WHERE id = $1")
        .bind(document(&pool, "h-ar", "ar-DZ").await?)
        .fetch_one(&pool)
        .await?;
    assert_eq!(ar, "ar");

    for status in ["approved", "rejected", "pending"] {
        sqlx::query("UPDATE documents SET review_status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&pool)
            .await?;
    }
    let result = sqlx::query("UPDATE documents SET review_status = 'maybe' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await;
    assert_violates(result, "chk_documents_review_status");
    assert_violates(
        document(&pool, "h-fr", "fr-FR").await,
        "documents_content_hash_key",
    );
    assert_violates_domain(
        document(&pool, "h-de", "de-DE").await,
        "locale_code",
        "chk_locale_code_supported",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn document_chunks_store_384_dimension_embeddings_with_their_model(
    pool: PgPool,
) -> TestResult {
    let doc = document(&pool, "h", "ar-DZ").await?;
    let insert = |index: i32, vector: Option<String>, model: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO document_chunks (document_id, content, search_text, chunk_index, embedding, embedding_model)
             VALUES ($1, 'نص', 'نص', $2, $3::text::vector, $4)",
        )
        .bind(doc)
        .bind(index)
        .bind(vector)
        .bind(model)
        .execute(&pool)
    };
    insert(
        0,
        Some(vector_literal(384, 0.1)),
        Some("amal-hash-ngram-v1"),
    )
    .await?;
    insert(1, None, None).await?;
    assert_violates(
        insert(2, Some(vector_literal(384, 0.1)), None).await,
        "chk_document_chunks_embedding_model",
    );
    let wrong = insert(3, Some(vector_literal(3, 0.1)), Some("m"))
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("expected 384 dimensions"),
        "{wrong}"
    );
    assert_violates(
        insert(0, None, None).await,
        "document_chunks_document_id_chunk_index_key",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn embedding_settings_start_at_the_default_embedder_and_match_the_column(
    pool: PgPool,
) -> TestResult {
    let (model, dimension): (String, i32) =
        sqlx::query_as("SELECT model, dimension FROM embedding_settings")
            .fetch_one(&pool)
            .await?;
    assert_eq!((model.as_str(), dimension), ("amal-hash-ngram-v1", 384));
    assert_eq!(embedding_column_type(&pool).await?, "vector(384)");
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    // A singleton: no second row, no row with id = false.
    assert_violates(
        sqlx::query("INSERT INTO embedding_settings (model, dimension) VALUES ('x', 8)")
            .execute(&pool)
            .await,
        "embedding_settings_pkey",
    );
    assert_violates(
        sqlx::query("INSERT INTO embedding_settings (id, model, dimension) VALUES (false, 'x', 8)")
            .execute(&pool)
            .await,
        "chk_embedding_settings_singleton",
    );
    Ok(())
}

async fn embedding_column_type(pool: &PgPool) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'",
    )
    .fetch_one(pool)
    .await
}

/// The access method of the language's partial vector index, if it exists on the embedding
/// (an expression index: the column cast to half precision).
async fn hnsw_index(pool: &PgPool, lang: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT am.amname::text FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am am ON am.oid = c.relam
          WHERE c.relname = 'idx_document_chunks_embedding_hnsw_' || $1
            AND i.indrelid = 'document_chunks'::regclass
            AND pg_get_indexdef(i.indexrelid) LIKE '%((embedding)::halfvec(%'",
    )
    .bind(lang)
    .fetch_optional(pool)
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn set_embedding_dimension_changes_column_index_and_settings(pool: PgPool) -> TestResult {
    let doc = document(&pool, "h", "en-US").await?;
    sqlx::query(
        "INSERT INTO document_chunks (document_id, content, search_text, chunk_index, embedding, embedding_model)
         VALUES ($1, 'text', 'text', 0, $2::text::vector, 'amal-hash-ngram-v1')",
    )
    .bind(doc)
    .bind(vector_literal(384, 0.5))
    .execute(&pool)
    .await?;

    // Same model and dimension: nothing changes, the vector survives.
    sqlx::query("SELECT set_embedding_dimension('amal-hash-ngram-v1', 384)")
        .execute(&pool)
        .await?;
    let kept: Option<String> = sqlx::query_scalar("SELECT embedding_model FROM document_chunks")
        .fetch_one(&pool)
        .await?;
    assert_eq!(kept.as_deref(), Some("amal-hash-ngram-v1"));

    sqlx::query("SELECT set_embedding_dimension('multilingual-e5-base', 768)")
        .execute(&pool)
        .await?;
    assert_eq!(embedding_column_type(&pool).await?, "vector(768)");
    // The retyped column keeps its storage: never compressed, out of line before the tsvector.
    let storage: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, attstorage::text FROM pg_attribute
          WHERE attrelid = 'document_chunks'::regclass AND attname IN ('embedding', 'tsv')
          ORDER BY attname",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        storage,
        [("embedding".into(), "e".into()), ("tsv".into(), "m".into())]
    );
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    let (model, dimension): (String, i32) =
        sqlx::query_as("SELECT model, dimension FROM embedding_settings")
            .fetch_one(&pool)
            .await?;
    assert_eq!((model.as_str(), dimension), ("multilingual-e5-base", 768));
    // Old vectors are meaningless for the new model: cleared with their model.
    let (embedded, with_model): (i64, i64) =
        sqlx::query_as("SELECT count(embedding), count(embedding_model) FROM document_chunks")
            .fetch_one(&pool)
            .await?;
    assert_eq!((embedded, with_model), (0, 0));

    // The column now takes 768 dimensions and refuses 384.
    let update = |dim: usize| {
        sqlx::query("UPDATE document_chunks SET embedding = $1::text::vector, embedding_model = 'multilingual-e5-base'")
            .bind(vector_literal(dim, 0.25))
            .execute(&pool)
    };
    update(768).await?;
    assert!(update(384).await.is_err());

    // The recreated indexes are valid cosine HNSW indexes on the retyped column in half
    // precision, with its new dimension, one per language.
    for lang in ["ar", "fr", "en"] {
        let (definition, valid): (String, bool) = sqlx::query_as(
            "SELECT pg_get_indexdef(indexrelid), indisvalid FROM pg_index
              WHERE indexrelid = ('idx_document_chunks_embedding_hnsw_' || $1)::regclass",
        )
        .bind(lang)
        .fetch_one(&pool)
        .await?;
        assert!(
            definition.ends_with(&format!(
                "USING hnsw (((embedding)::halfvec(768)) halfvec_cosine_ops) WITH (m='16', ef_construction='256') \
                 WHERE (retrievable AND (lang = '{lang}'::bpchar))"
            )),
            "{definition}"
        );
        assert!(valid);
    }

    for bad in [
        "SELECT set_embedding_dimension('m', 0)",
        "SELECT set_embedding_dimension('m', 4001)",
        "SELECT set_embedding_dimension('', 8)",
    ] {
        let err = sqlx::query(bad).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("set_embedding_dimension"), "{err}");
    }
    assert_eq!(embedding_column_type(&pool).await?, "vector(768)");

    // Past vector's 2,000-dimension index limit: the half-precision indexes take up to 4,000.
    sqlx::query("SELECT set_embedding_dimension('text-embedding-3-large', 3072)")
        .execute(&pool)
        .await?;
    assert_eq!(embedding_column_type(&pool).await?, "vector(3072)");
    sqlx::query("UPDATE document_chunks SET embedding = $1::text::vector, embedding_model = 'text-embedding-3-large'")
        .bind(vector_literal(3072, 0.01))
        .execute(&pool)
        .await?;
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tickets: constraints
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn concurrent_ticket_inserts_get_distinct_consecutive_numbers(pool: PgPool) -> TestResult {
    const CLIENTS: usize = 32;
    let u = user(&pool, "t@example.dz").await?;
    // The test pool allows 5 connections; every client needs its own transaction at once.
    let wide = PgPoolOptions::new()
        .max_connections(CLIENTS as u32 + 4)
        .connect_with((*pool.connect_options()).clone())
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn v_active_conversations_excludes_archived_and_deleted_users(pool: PgPool) -> TestResult {
    let kept_user = user(&pool, "kept@example.dz").await?;
    let gone_user = user(&pool, "gone@example.dz").await?;
    let active = conversation(&pool, kept_user).await?;
    let archived = conversation(&pool, kept_user).await?;
    let of_deleted_user = conversation(&pool, gone_user).await?;
    sqlx::query("UPDATE conversations SET language = 'fr-FR' WHERE id = $1")
        .bind(active)
        .execute(&pool)
        .await?;

    let visible = || async {
        let mut ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM v_active_conversations")
            .fetch_all(&pool)
            .await?;
        ids.sort();
        Ok::<_, sqlx::Error>(ids)
    };
    let mut all = vec![active, archived, of_deleted_user];
    all.sort();
    assert_eq!(visible().await?, all);

    sqlx::query("UPDATE conversations SET archived_at = now(), status = 'archived' WHERE id = $1")
        .bind(archived)
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE users SET deleted_at = now() WHERE id = $1")
        .bind(gone_user)
        .execute(&pool)
        .await?;
    assert_eq!(visible().await?, [active]);

    let (email, lang): (String, Option<String>) =
        sqlx::query_as("SELECT email::text, lang FROM v_active_conversations WHERE id = $1")
            .bind(active)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        (email.as_str(), lang.as_deref()),
        ("kept@example.dz", Some("fr"))
    );

    // Undeleting the user brings the conversation back.
    sqlx::query("UPDATE users SET deleted_at = NULL WHERE id = $1")
        .bind(gone_user)
        .execute(&pool)
        .await?;
    assert_eq!(visible().await?.len(), 2);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn v_ticket_statistics_groups_and_averages_resolution_hours(pool: PgPool) -> TestResult {
    let u = user(&pool, "s@example.dz").await?;
    for hours in [2, 4] {
        sqlx::query(
            "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at, resolved_at)
             VALUES ($1, 's', 'addiction', 'high', 'resolved', now() - make_interval(hours => $2), now())",
        )
        .bind(u)
        .bind(hours)
        .execute(&pool)
        .await?;
    }
    sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
         VALUES ($1, 's', 'crisis', 'urgent', 'open', now() - interval '10 hours')",
    )
    .bind(u)
    .execute(&pool)
    .await?;
    let rows: Vec<(String, String, String, i64, f64)> = sqlx::query_as(
        "SELECT category, priority, status, ticket_count, avg_resolution_hours FROM v_ticket_statistics ORDER BY category",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].0.as_str(),
            rows[0].1.as_str(),
            rows[0].2.as_str(),
            rows[0].3
        ),
        ("addiction", "high", "resolved", 2)
    );
    assert!(
        (rows[0].4 - 3.0).abs() < 0.01,
        "avg of 2 h and 4 h: {}",
        rows[0].4
    );
    // Open tickets count their age so far.
    assert_eq!((rows[1].0.as_str(), rows[1].3), ("crisis", 1));
    assert!((rows[1].4 - 10.0).abs() < 0.05, "{}", rows[1].4);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn v_open_tickets_sla_computes_remaining_time_and_states(pool: PgPool) -> TestResult {
    let u = user(&pool, "s@example.dz").await?;
    // Urgent: first response 15 min (warning from 12 min), resolution 4 h (warning from 3 h 12).
    let create = |age_minutes: i32| {
        sqlx::query_scalar::<_, Uuid>(
            "INSERT INTO support_tickets (user_id, subject, category, priority, status, created_at)
             VALUES ($1, 's', 'crisis', 'urgent', 'open', now() - make_interval(mins => $2)) RETURNING id",
        )
        .bind(u)
        .bind(age_minutes)
        .fetch_one(&pool)
    };
    let fresh = create(1).await?;
    let warning = create(13).await?;
    let late = create(20).await?;
    let answered = create(20).await?;
    sqlx::query("UPDATE support_tickets SET first_response_at = created_at + interval '5 minutes' WHERE id = $1")
        .bind(answered)
        .execute(&pool)
        .await?;
    let answered_late = create(30).await?;
    sqlx::query("UPDATE support_tickets SET first_response_at = created_at + interval '20 minutes' WHERE id = $1")
        .bind(answered_late)
        .execute(&pool)
        .await?;
    // 20 minutes old, 10 of them paused: 10 minutes elapsed.
    let paused_before = create(20).await?;
    sqlx::query("UPDATE support_tickets SET sla_paused_seconds = 600 WHERE id = $1")
        .bind(paused_before)
        .execute(&pool)
        .await?;
    // Paused since 5 minutes after creation: the clock stands at 5 minutes.
    let paused_now = create(60).await?;
    sqlx::query(
        "UPDATE support_tickets SET sla_paused_at = created_at + interval '5 minutes', status = 'pending'
          WHERE id = $1",
    )
    .bind(paused_now)
    .execute(&pool)
    .await?;
    let flagged = create(1).await?;
    sqlx::query("UPDATE support_tickets SET resolution_breached = true WHERE id = $1")
        .bind(flagged)
        .execute(&pool)
        .await?;
    let resolved = create(600).await?;
    sqlx::query(
        "UPDATE support_tickets SET status = 'resolved', resolved_at = now() WHERE id = $1",
    )
    .bind(resolved)
    .execute(&pool)
    .await?;
    let closed = create(600).await?;
    sqlx::query("UPDATE support_tickets SET status = 'closed' WHERE id = $1")
        .bind(closed)
        .execute(&pool)
        .await?;

    type Row = (Uuid, Option<i64>, i64, String, String, String, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, first_response_remaining_seconds, resolution_remaining_seconds,
                first_response_state, resolution_state, sla_state, sla_paused
           FROM v_open_tickets_sla",
    )
    .fetch_all(&pool)
    .await?;
    let get = |id: Uuid| rows.iter().find(|r| r.0 == id).cloned();
    assert_eq!(rows.len(), 8, "resolved and closed tickets are not open");
    assert!(get(resolved).is_none() && get(closed).is_none());

    let states = |id: Uuid| {
        let r = get(id).unwrap();
        (r.3, r.4, r.5)
    };
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(states(fresh), s("ok", "ok", "ok"));
    assert_eq!(states(warning), s("warning", "ok", "warning"));
    assert_eq!(states(late), s("breached", "ok", "breached"));
    assert_eq!(states(answered), s("ok", "ok", "ok"));
    assert_eq!(states(answered_late), s("breached", "ok", "breached"));
    assert_eq!(states(paused_before), s("ok", "ok", "ok"));
    assert_eq!(states(paused_now), s("ok", "ok", "ok"));
    assert_eq!(states(flagged), s("ok", "breached", "breached"));

    let near = |actual: i64, expected: i64| (actual - expected).abs() <= 5;
    let r = get(fresh).unwrap();
    assert!(near(r.1.unwrap(), 14 * 60) && near(r.2, 239 * 60), "{r:?}");
    let r = get(late).unwrap();
    assert!(near(r.1.unwrap(), -5 * 60), "negative once breached: {r:?}");
    assert_eq!(
        get(answered).unwrap().1,
        None,
        "answered: no first-response clock"
    );
    let r = get(paused_before).unwrap();
    assert!(near(r.1.unwrap(), 5 * 60) && near(r.2, 230 * 60), "{r:?}");
    let r = get(paused_now).unwrap();
    assert!(r.6, "paused flag");
    assert_eq!(
        (r.1, r.2),
        (Some(10 * 60), 235 * 60),
        "a paused clock stands still"
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn v_decision_statistics_groups_per_day_and_decision(pool: PgPool) -> TestResult {
    let c = conversation(&pool, user(&pool, "d@example.dz").await?).await?;
    // 23:30 UTC on 9 March is already 10 March in Algiers.
    sqlx::query(
        "INSERT INTO decision_logs (conversation_id, decision, confidence, created_at) VALUES
           ($1, 'rag', 0.4, '2026-03-10T10:00:00Z'),
           ($1, 'rag', 0.8, '2026-03-09T23:30:00Z'),
           ($1, 'support', 0.9, '2026-03-10T11:00:00Z'),
           ($1, 'rag', 0.5, '2026-03-09T12:00:00Z')",
    )
    .bind(c)
    .execute(&pool)
    .await?;
    let rows: Vec<(chrono::NaiveDate, String, i64, f64)> = sqlx::query_as(
        "SELECT date, decision, count, avg_confidence FROM v_decision_statistics ORDER BY date, decision",
    )
    .fetch_all(&pool)
    .await?;
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].0, rows[0].1.as_str(), rows[0].2),
        (day(9), "rag", 1)
    );
    assert_eq!(
        (rows[1].0, rows[1].1.as_str(), rows[1].2),
        (day(10), "rag", 2)
    );
    assert!((rows[1].3 - 0.6).abs() < 1e-9);
    assert_eq!(
        (rows[2].0, rows[2].1.as_str(), rows[2].2),
        (day(10), "support", 1)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deletion rules
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
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

// ---------------------------------------------------------------------------------------------
// Roles and privileges
// ---------------------------------------------------------------------------------------------

#[sqlx::test(migrations = "../migrations")]
async fn roles_exist_without_login_and_with_the_right_privileges(pool: PgPool) -> TestResult {
    let roles: Vec<(String, bool)> = sqlx::query_as(
        "SELECT rolname::text, rolcanlogin FROM pg_roles WHERE rolname IN ('amal_app', 'amal_readonly', 'amal_admin') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        roles,
        [
            ("amal_admin".to_owned(), false),
            ("amal_app".to_owned(), false),
            ("amal_readonly".to_owned(), false)
        ]
    );
    let no_passwords: bool = sqlx::query_scalar(
        "SELECT bool_and(rolpassword IS NULL) FROM pg_authid WHERE rolname IN ('amal_app', 'amal_readonly', 'amal_admin')",
    )
    .fetch_one(&pool)
    .await?;
    assert!(no_passwords);

    let table_privilege = |role: &'static str, table: &'static str, privilege: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT has_table_privilege($1, $2, $3)")
            .bind(role)
            .bind(table)
            .bind(privilege)
            .fetch_one(&pool)
    };
    let tables = [
        "users",
        "user_preferences",
        "user_sessions",
        "magic_links",
        "conversations",
        "messages",
        "decision_logs",
        "documents",
        "document_chunks",
        "embedding_settings",
        "support_tickets",
        "ticket_escalations",
        "ticket_comments",
        "ticket_comment_edits",
        "audit_logs",
        "conversation_modes",
        "conversation_statuses",
        "ticket_categories",
        "ticket_priorities",
        "ticket_statuses",
    ];
    for table in tables {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            assert!(
                table_privilege("amal_app", table, privilege).await?,
                "amal_app {privilege} {table}"
            );
            assert!(
                table_privilege("amal_admin", table, privilege).await?,
                "amal_admin {privilege} {table}"
            );
        }
        assert!(
            table_privilege("amal_readonly", table, "SELECT").await?,
            "amal_readonly SELECT {table}"
        );
        for privilege in ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] {
            assert!(
                !table_privilege("amal_readonly", table, privilege).await?,
                "amal_readonly {privilege} {table}"
            );
        }
        assert!(
            !table_privilege("amal_app", table, "TRUNCATE").await?,
            "amal_app TRUNCATE {table}"
        );
        assert!(
            table_privilege("amal_admin", table, "TRUNCATE").await?,
            "amal_admin TRUNCATE {table}"
        );
    }
    for view in [
        "v_active_conversations",
        "v_ticket_statistics",
        "v_open_tickets_sla",
        "v_decision_statistics",
        "mv_daily_statistics",
    ] {
        assert!(
            table_privilege("amal_readonly", view, "SELECT").await?,
            "amal_readonly SELECT {view}"
        );
        assert!(
            table_privilege("amal_app", view, "SELECT").await?,
            "amal_app SELECT {view}"
        );
    }

    let function_privilege = |role: &'static str, function: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT has_function_privilege($1, $2, 'EXECUTE')")
            .bind(role)
            .bind(function)
            .fetch_one(&pool)
    };
    for function in [
        "archive_old_conversations(integer)",
        "cleanup_expired_magic_links()",
        "get_conversation_summary(uuid)",
        "refresh_daily_statistics()",
    ] {
        assert!(
            function_privilege("amal_app", function).await?,
            "amal_app EXECUTE {function}"
        );
    }
    assert!(!function_privilege("amal_readonly", "archive_old_conversations(integer)").await?);
    assert!(!function_privilege("amal_readonly", "refresh_daily_statistics()").await?);
    assert!(!function_privilege("amal_app", "set_embedding_dimension(text, integer)").await?);

    let connect: Vec<bool> = sqlx::query_scalar(
        "SELECT has_database_privilege(r, current_database(), 'CONNECT')
           FROM unnest(ARRAY['amal_app', 'amal_readonly', 'amal_admin']) AS r",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(connect, [true, true, true]);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn amal_app_can_do_its_work_and_future_tables_are_covered(pool: PgPool) -> TestResult {
    // Tables created later by the migrating role get the grants by default.
    sqlx::query("CREATE TABLE later_feature (id int PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let privileges: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('amal_app', 'later_feature', 'INSERT'),
                has_table_privilege('amal_readonly', 'later_feature', 'SELECT'),
                has_table_privilege('amal_readonly', 'later_feature', 'INSERT'),
                has_table_privilege('amal_admin', 'later_feature', 'TRUNCATE')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(privileges, (true, true, false, true));

    // Acting as amal_app: tickets (counter upsert, SLA lookup) and the statistics refresh work.
    let u = user(&pool, "app@example.dz").await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_app")
        .execute(&mut *tx)
        .await?;
    let number: String = sqlx::query_scalar(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status)
         VALUES ($1, 's', 'crisis', 'urgent', 'open') RETURNING ticket_number",
    )
    .bind(u)
    .fetch_one(&mut *tx)
    .await?;
    assert!(number.starts_with("TKT-"));
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT archive_old_conversations(30)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_readonly")
        .execute(&mut *tx)
        .await?;
    let err = sqlx::query("INSERT INTO audit_logs (action) VALUES ('x')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501"),
        "insufficient_privilege"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn reference_seed_is_idempotent_and_complete(pool: PgPool) -> TestResult {
    let reference = include_str!("../../../seeds/reference.sql");
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
