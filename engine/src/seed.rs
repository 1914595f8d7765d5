//! Reference and demo data, loaded idempotently by `amal-engine seed [--demo]`.
//!
//! The SQL lives in `seeds/` (readable and reviewable as data) and is compiled into the binary so
//! that an installed engine needs no source tree.

use sqlx::PgPool;

/// Modes, statuses, categories, priorities (with SLA targets) and ticket statuses, in Arabic,
/// French and English.
pub const REFERENCE_SQL: &str = include_str!("../../seeds/reference.sql");

/// The demo data set: people, conversations, messages, decisions and tickets.
pub const DEMO_SQL: &str = include_str!("../../seeds/demo.sql");

/// Loads the reference data in one transaction. Running it again changes nothing.
pub async fn reference(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(REFERENCE_SQL).execute(&mut *tx).await?;
    tx.commit().await
}

/// Loads the reference data, then the demo data set, in one transaction.
pub async fn demo(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(REFERENCE_SQL).execute(&mut *tx).await?;
    sqlx::raw_sql(DEMO_SQL).execute(&mut *tx).await?;
    tx.commit().await
}
