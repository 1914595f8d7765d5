//! Reference and demo data, loaded idempotently by `amal-engine seed [--demo]`.
//!
//! The SQL lives in `seeds/` (readable and reviewable as data) and is compiled into the binary so
//! that an installed engine needs no source tree.

use sqlx::PgPool;

/// Modes, statuses, categories, priorities (with SLA targets) and ticket statuses, in Arabic,
/// French and English.
pub const REFERENCE_SQL: &str = include_str!("../../seeds/reference.sql");

/// The starter canned replies in the three languages.
pub const CANNED_SQL: &str = include_str!("../../seeds/canned.sql");

/// The demo data set: people, conversations, messages, decisions and tickets.
pub const DEMO_SQL: &str = include_str!("../../seeds/demo.sql");

/// Loads the reference data and the starter canned replies in one transaction. Running it again changes nothing.
pub async fn reference(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(REFERENCE_SQL).execute(&mut *tx).await?;
    sqlx::raw_sql(CANNED_SQL).execute(&mut *tx).await?;
    tx.commit().await
}

/// Loads the reference data, then the demo data set, in one transaction; then gives the demo
/// staff accounts their demo password and returns them (e-mail, role, password) for printing.
pub async fn demo(
    pool: &PgPool,
) -> Result<Vec<crate::staff::DemoAccount>, crate::staff::StaffError> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(REFERENCE_SQL).execute(&mut *tx).await?;
    sqlx::raw_sql(CANNED_SQL).execute(&mut *tx).await?;
    sqlx::raw_sql(DEMO_SQL).execute(&mut *tx).await?;
    tx.commit().await?;
    let mut conn = pool.acquire().await?;
    crate::staff::set_demo_passwords(&mut conn).await
}

/// Where the starter knowledge base is read from: `AMAL_KNOWLEDGE_DIR`, else `seeds/knowledge`
/// under the working directory (a checkout), else the checkout this binary was built from.
pub fn knowledge_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("AMAL_KNOWLEDGE_DIR").filter(|v| !v.is_empty()) {
        return dir.into();
    }
    let relative = std::path::PathBuf::from("seeds/knowledge");
    if relative.is_dir() {
        return relative;
    }
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../seeds/knowledge"))
}

/// Ingests and approves the starter knowledge base with `embedder` (after checking it against
/// the stored vectors). Idempotent: unchanged files change nothing.
pub async fn demo_knowledge(
    pool: &PgPool,
    embedder: &crate::knowledge::Embedder,
) -> Result<crate::knowledge::store::IngestSummary, crate::knowledge::KnowledgeError> {
    use crate::knowledge::store;
    store::ensure_embedder_matches(pool, embedder).await?;
    let options = store::IngestOptions {
        approve: true,
        ..Default::default()
    };
    store::ingest_paths(pool, embedder, &[knowledge_dir()], &options, 2, |_| {}).await
}
