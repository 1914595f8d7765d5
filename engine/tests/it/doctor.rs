//! `doctor`: healthy on a migrated database (the default embedder included); a missing pgvector
//! reported clearly.

use amal_engine::db::{self, DbError, embedded::EmbeddedCluster};
use amal_engine::doctor::{self, CheckStatus};
use sqlx::PgPool;

use crate::fixtures::{PostgresWithoutPgvector, engine_command};

#[sqlx::test(migrations = "../migrations")]
async fn healthy_on_a_migrated_database(pool: PgPool) {
    let report = doctor::examine(&pool).await;
    assert!(report.healthy, "{report}");
    let migrations = report.migrations.as_ref().unwrap();
    assert_eq!(migrations.applied, migrations.expected);
    assert!(migrations.expected > 0);
    assert!(report.pgvector.as_ref().unwrap().installed.is_some());
    assert!(
        report.tables.iter().any(|t| t.table == "support_tickets"),
        "{report}"
    );
    for name in [
        "connectivity",
        "server",
        "pgvector",
        "migrations",
        "size",
        "connections",
        "cache",
        "indexes",
        "embedder",
        "vectors",
        "sentences",
    ] {
        assert!(
            report.checks.iter().any(|c| c.name == name),
            "missing check {name}"
        );
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["healthy"], true);
    // The default embedder, multilingual-e5-small, with its cross-language self-test.
    let embedder = report.embedder.as_ref().unwrap();
    assert_eq!(
        embedder.model,
        amal_engine::knowledge::e5::E5_MODEL,
        "{report}"
    );
    assert_eq!(embedder.dimension, 384);
    assert!(embedder.self_test.as_ref().unwrap().passed(), "{report}");
}

#[sqlx::test(migrations = false)]
async fn pending_migrations_make_it_unhealthy(pool: PgPool) {
    let report = doctor::examine(&pool).await;
    assert!(!report.healthy);
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "migrations")
        .unwrap();
    assert_eq!(check.status, CheckStatus::Fail);
    assert!(check.detail.contains("pending"), "{}", check.detail);
}

#[tokio::test]
async fn missing_pgvector_is_reported_clearly() {
    let install = PostgresWithoutPgvector::new();
    let dir = tempfile::tempdir().unwrap();
    let cluster = EmbeddedCluster::new(dir.path(), Some(&install.bin)).unwrap();
    let url = cluster.start().unwrap();
    let pool = db::connect_url(&url, 2).await.unwrap();

    let report = doctor::examine(&pool).await;
    assert!(!report.healthy);
    let check = report.checks.iter().find(|c| c.name == "pgvector").unwrap();
    assert_eq!(check.status, CheckStatus::Fail);
    assert!(
        check.detail.contains("pgvector is NOT installed"),
        "{}",
        check.detail
    );
    assert!(
        check.detail.contains("scripts/setup.sh"),
        "{}",
        check.detail
    );

    // Migrating refuses up front, naming the cause, and leaves the database untouched.
    let err = db::migrate(&pool).await.expect_err("no pgvector");
    assert!(matches!(err, DbError::PgvectorMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("pgvector is not installed"),
        "{err}"
    );
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 0);
    pool.close().await;

    // The CLI says the same and exits non-zero.
    let out = engine_command(dir.path(), &["doctor", "--json"])
        .env("AMAL_PG_BIN", &install.bin)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["pgvector"]["available"], serde_json::Value::Null);
    cluster.destroy().unwrap();
}
