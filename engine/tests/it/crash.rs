//! The crash test: the engine process is killed (SIGKILL) in the middle of a stream of turns;
//! every message stored must be a complete turn (decision, reply, and the ticket for SUPPORT),
//! and a retry of a stored turn returns it without writing anything.

use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use amal_engine::conversations::{self, MessageContent};

/// The URL of the test's own database on DATABASE_URL's server.
async fn own_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL (run through scripts/test.sh)");
    amal_engine::db::with_database(&server, &name)
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn killed_mid_turn_leaves_only_complete_turns(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::demo(&pool).await?;
    let url = own_url(&pool).await;
    let data_dir = tempfile::tempdir()?;
    for (round, kill_after_ms) in [(1u64, 900u64), (2, 1_300), (3, 1_700)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_amal-engine"))
            .args([
                "simulate",
                "--messages-per-minute",
                "6000",
                "--crisis-percent",
                "30",
                "--seed",
                &round.to_string(),
            ])
            .env("DATABASE_URL", &url)
            .env("AMAL_DATA_DIR", data_dir.path())
            .env_remove("AMAL_LLM_URL")
            .env_remove("AMAL_EMBED_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        // SIGKILL: no clean-up, no rollback by the process itself.
        child.kill()?;
        child.wait()?;
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE role = 'user'")
        .fetch_one(&pool)
        .await?;
    assert!(
        users >= 10,
        "the simulator wrote too little before the kills ({users} messages)"
    );
    let incomplete: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT m.id, m.content FROM messages m \
          WHERE m.role = 'user' AND m.conversation_id IN \
                (SELECT c.id FROM conversations c JOIN users u ON u.id = c.user_id \
                  WHERE u.email LIKE '%@simulated.amal.example') \
            AND (NOT EXISTS (SELECT 1 FROM decision_logs d WHERE d.message_id = m.id) \
                 OR NOT EXISTS (SELECT 1 FROM messages r WHERE r.role = 'assistant' \
                                AND r.metadata->>'reply_to' = m.id::text))",
    )
    .fetch_all(&pool)
    .await?;
    assert!(
        incomplete.is_empty(),
        "half turns after a kill: {incomplete:?}"
    );
    let support_without_ticket: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM decision_logs d WHERE d.decision = 'support' \
            AND NOT EXISTS (SELECT 1 FROM support_tickets t WHERE t.conversation_id = d.conversation_id)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(support_without_ticket, 0);
    let orphan_replies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages r WHERE r.role = 'assistant' AND r.metadata ? 'reply_to' \
            AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id::text = r.metadata->>'reply_to')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(orphan_replies, 0);

    // The client retries its last message after the crash: the stored turn comes back, nothing
    // is written twice.
    let (conversation, key, content): (uuid::Uuid, String, String) = sqlx::query_as(
        "SELECT conversation_id, client_message_id, content FROM messages \
          WHERE role = 'user' AND client_message_id IS NOT NULL ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    let engine = super::conversations::engine();
    let turn = amal_engine::turn::post_message(
        &pool,
        &engine,
        conversation,
        Some(&key),
        &MessageContent::parse(&content)?,
    )
    .await?;
    assert!(turn.replayed);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(before, after);
    Ok(())
}

/// More concurrent turns than connections: a turn gives its connection back while retrieval
/// runs, so none waits for a connection another waiting turn holds.
#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn more_turns_than_connections_all_complete(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::reference(&pool).await?;
    let small = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let engine = std::sync::Arc::new(super::conversations::engine());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let user: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, consent_data_storage, consent_timestamp) \
             VALUES ($1, '!', 'P', true, now()) RETURNING id",
        )
        .bind(format!("p{i}@example.dz"))
        .fetch_one(&pool)
        .await?;
        let c = conversations::start(&pool, user, amal_engine::decision::auto::Mode::Auto, None)
            .await?;
        let (small, engine) = (small.clone(), engine.clone());
        tasks.push(tokio::spawn(async move {
            amal_engine::turn::post_message(
                &small,
                &engine,
                c.id,
                None,
                &MessageContent::parse("how do I sleep better after stopping cannabis").unwrap(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
