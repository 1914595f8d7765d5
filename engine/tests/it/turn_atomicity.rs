//! A turn is stored whole or not at all. The engine process is killed (SIGKILL) in the middle
//! of a stream of turns: every message stored must be a complete turn (decision, reply, and the
//! ticket for SUPPORT), and a retry of a stored turn returns it without writing anything. More
//! concurrent turns than connections all complete.

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use amal_engine::conversations::MessageContent;

use crate::fixtures::{another_pool, engine, engine_command, new_conversation, own_database_url};

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn killed_mid_turn_leaves_only_complete_turns(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::demo(&pool).await?;
    let url = own_database_url(&pool);
    let data_dir = tempfile::tempdir()?;
    for (round, kill_after_ms) in [(1u64, 900u64), (2, 1_300), (3, 1_700)] {
        let seed = round.to_string();
        let args = [
            "simulate",
            "--messages-per-minute",
            "6000",
            "--crisis-percent",
            "30",
            "--seed",
            &seed,
        ];
        let mut child = engine_command(data_dir.path(), &args)
            .env("DATABASE_URL", &url)
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
    let engine = engine();
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
    let small = another_pool(
        &pool,
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5)),
    )
    .await?;
    let engine = std::sync::Arc::new(engine());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let conv = new_conversation(&pool, &format!("p{i}@example.dz")).await;
        let (small, engine) = (small.clone(), engine.clone());
        tasks.push(tokio::spawn(async move {
            amal_engine::turn::post_message(
                &small,
                &engine,
                conv,
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
