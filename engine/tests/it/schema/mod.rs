//! Schema tests: the migrations in `migrations/` and the reference data in `seeds/reference.sql`.
//!
//! Every test gets a fresh database with all migrations applied. Tests that touch conversations
//! or tickets also load the reference data as a fixture: a fixture path is relative to the test's
//! file (sqlx 0.9 expands it into `include_str!`), while `migrations` is relative to the crate
//! directory (`engine/`).
//!
//! Violations are asserted by constraint name, the contract the engine uses to map a database
//! error to a domain error.
//!
//! One file per part of the schema; the helpers below are theirs.

mod contract;
mod deletion;
mod functions;
mod knowledge;
mod messages;
mod reference_data;
mod roles;
mod tickets;
mod triggers;
mod users;
mod views;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

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

fn vector_literal(dimension: usize, value: f32) -> String {
    format!("[{}]", vec![value.to_string(); dimension].join(","))
}

async fn document(pool: &PgPool, hash: &str, language: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO documents (title, content, content_hash, language) VALUES ('Doc', 'Contenu', $1, $2) RETURNING id",
    )
    .bind(hash)
    .bind(language)
    .fetch_one(pool)
    .await
}
