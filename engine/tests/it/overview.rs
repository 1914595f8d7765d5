//! The staff's overview of the service through the engine (what the operator console reads):
//! the conversation list and its filters, transcripts with decisions, the audit list, lookup
//! labels, staff preferences, the queue's priority filter, and the demo traffic simulator.

use chrono::Utc;
use sqlx::PgPool;

use amal_engine::audit;
use amal_engine::conversations::{self, ConversationFilter, StaffReader};
use amal_engine::decision::auto::Mode;
use amal_engine::lang::Lang;
use amal_engine::lookups::{self, LookupKind};
use amal_engine::simulator::{Simulator, SimulatorOptions};
use amal_engine::staff::{self, StaffError};
use amal_engine::tickets::{self, Queue, QueueFilter};

use crate::fixtures::{consenting_user, engine, ingest, kb_dir, kb_engine};

fn filter() -> ConversationFilter {
    ConversationFilter {
        limit: 100,
        ..ConversationFilter::default()
    }
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn simulated_traffic_fills_the_console_lists(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::demo(&pool).await?;
    let engine = engine();
    let mut crisis = Simulator::new(
        pool.clone(),
        SimulatorOptions {
            crisis_percent: 100,
            seed: 11,
            ..SimulatorOptions::default()
        },
    )?;
    for _ in 0..3 {
        let turn = crisis.step(&engine).await?;
        assert_eq!(turn.decision, "support");
        assert!(
            turn.reason_code
                .as_deref()
                .unwrap_or("")
                .starts_with("crisis_"),
            "{turn:?}"
        );
        assert!(turn.ticket_number.is_some());
    }
    let mut calm = Simulator::new(
        pool.clone(),
        SimulatorOptions {
            crisis_percent: 0,
            seed: 12,
            ..SimulatorOptions::default()
        },
    )?;
    for _ in 0..6 {
        let turn = calm.step(&engine).await?;
        assert!(
            !turn
                .reason_code
                .as_deref()
                .unwrap_or("")
                .starts_with("crisis_"),
            "{turn:?}"
        );
    }
    assert_eq!(calm.sent(), 6);

    let mut conn = pool.acquire().await?;
    let all = conversations::list(&mut conn, &mut StaffReader::default(), &filter()).await?;
    assert!(all.len() >= 5, "{}", all.len());
    // Newest activity first.
    assert!(
        all.windows(2)
            .all(|w| w[0].last_activity_at >= w[1].last_activity_at)
    );
    let escalated = conversations::list(
        &mut conn,
        &mut StaffReader::default(),
        &ConversationFilter {
            escalated: Some(true),
            ..filter()
        },
    )
    .await?;
    assert!(escalated.len() >= 3);
    assert!(
        escalated
            .iter()
            .all(|c| c.escalated_at.is_some() && c.ticket_number.is_some())
    );
    let calm_only = conversations::list(
        &mut conn,
        &mut StaffReader::default(),
        &ConversationFilter {
            escalated: Some(false),
            ..filter()
        },
    )
    .await?;
    assert!(calm_only.iter().all(|c| c.escalated_at.is_none()));
    for lang in Lang::ALL {
        let in_lang = conversations::list(
            &mut conn,
            &mut StaffReader::default(),
            &ConversationFilter {
                language: Some(lang),
                ..filter()
            },
        )
        .await?;
        assert!(
            in_lang
                .iter()
                .all(|c| c.language.as_deref() == Some(lang.code()))
        );
    }
    // A ticket number finds its conversation; so do words of its messages.
    let number = escalated[0].ticket_number.clone().unwrap();
    let by_number = conversations::list(
        &mut conn,
        &mut StaffReader::default(),
        &ConversationFilter {
            text: Some(number.to_lowercase()),
            ..filter()
        },
    )
    .await?;
    assert_eq!(by_number.len(), 1);
    assert_eq!(by_number[0].id, escalated[0].id);
    let none = conversations::list(
        &mut conn,
        &mut StaffReader::default(),
        &ConversationFilter {
            text: Some("zzqqxx-nothing".into()),
            ..filter()
        },
    )
    .await?;
    assert!(none.is_empty());
    let bad = conversations::list(
        &mut conn,
        &mut StaffReader::default(),
        &ConversationFilter::default(),
    )
    .await;
    assert!(bad.unwrap_err().to_string().contains("list size"));

    // The transcript pairs each reply with its decision.
    let transcript =
        conversations::transcript(&mut conn, &mut StaffReader::default(), escalated[0].id, 50)
            .await?;
    let reply = transcript
        .iter()
        .find(|e| e.message.role == "assistant")
        .expect("an assistant reply");
    let decision = reply.decision.as_ref().expect("the reply's decision");
    assert_eq!(decision.decision, "support");
    assert!(
        transcript
            .iter()
            .filter(|e| e.message.role == "user")
            .all(|e| e.decision.is_none())
    );
    Ok(())
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn answers_cite_their_sources_in_the_transcript(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::reference(&pool).await?;
    let dir = kb_dir();
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    let user = consenting_user(&pool, "t@example.dz", "ar-DZ").await;
    let c = conversations::start(&pool, user, Mode::Auto, Some(Lang::En)).await?;
    let engine = kb_engine(&pool).await;
    let turn = amal_engine::turn::post_message(
        &pool,
        &engine,
        c.id,
        None,
        &conversations::MessageContent::parse("how can I cut down on alcohol")?,
    )
    .await?;
    let mut conn = pool.acquire().await?;
    let transcript =
        conversations::transcript(&mut conn, &mut StaffReader::default(), c.id, 10).await?;
    let reply = transcript.last().unwrap();
    if turn.decision.decision == "rag" {
        assert!(!reply.citations.is_empty(), "{reply:?}");
    }
    assert_eq!(reply.decision.as_ref().unwrap().id, turn.decision.id);
    Ok(())
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn labels_preferences_audit_and_priority_filter(pool: PgPool) -> anyhow::Result<()> {
    amal_engine::seed::demo(&pool).await?;
    let mut conn = pool.acquire().await?;
    let labels = lookups::labels(&mut conn).await?;
    assert_eq!(
        labels.label(LookupKind::TicketPriority, "urgent", Lang::Fr),
        "Urgente"
    );
    assert_ne!(
        labels.label(LookupKind::TicketPriority, "urgent", Lang::Ar),
        "urgent"
    );
    assert_eq!(
        labels.label(LookupKind::TicketPriority, "nope", Lang::En),
        "nope"
    );
    assert_eq!(labels.codes(LookupKind::TicketPriority).len(), 4);

    let agent = staff::actor_by_email(&mut conn, "agent.demo@amal.example").await?;
    let prefs = staff::preferences(&mut conn, agent.id).await?;
    assert_eq!(prefs.lang, Lang::Fr);
    assert_eq!(prefs.theme.as_deref(), Some("dark"));
    staff::save_theme(&mut conn, &agent, "light").await?;
    assert_eq!(
        staff::preferences(&mut conn, agent.id)
            .await?
            .theme
            .as_deref(),
        Some("light")
    );
    assert!(matches!(
        staff::save_theme(&mut conn, &agent, "../etc").await,
        Err(StaffError::InvalidTheme(_))
    ));
    // Reading people's words is audited like changing them.
    let mut reader = StaffReader::new(Some(agent.clone()));
    let search = ConversationFilter {
        text: Some("sommeil".into()),
        ..filter()
    };
    let found = conversations::list(&mut conn, &mut reader, &search).await?;
    // A refresh of the same search is not a new read.
    conversations::list(&mut conn, &mut reader, &search).await?;
    // Agents may not read the trail; supervisors and admins may.
    let trail = |prefix: &str, limit: i64| audit::AuditFilter {
        action_prefix: Some(prefix.into()),
        limit,
        ..Default::default()
    };
    assert!(matches!(
        staff::audit_trail(&mut conn, &agent, &trail("conversation.search", 1)).await,
        Err(StaffError::Forbidden { .. })
    ));
    let supervisor = staff::actor_by_email(&mut conn, "supervisor.demo@amal.example").await?;
    let read = staff::audit_trail(&mut conn, &supervisor, &trail("conversation.search", 1)).await?;
    assert_eq!(
        read[0].actor_email.as_deref(),
        Some("agent.demo@amal.example")
    );
    assert_eq!(read[0].details["query"], "sommeil");
    assert_eq!(read[0].details["found"], found.len());
    assert_eq!(
        staff::audit_trail(&mut conn, &supervisor, &trail("conversation.search", 10))
            .await?
            .len(),
        1
    );

    let entries = staff::audit_trail(&mut conn, &supervisor, &trail("staff.", 10)).await?;
    assert_eq!(entries[0].action, "staff.preferences");
    assert_eq!(
        entries[0].actor_email.as_deref(),
        Some("agent.demo@amal.example")
    );

    let urgent = tickets::queue(
        &mut conn,
        None,
        &QueueFilter {
            priority: Some("urgent".into()),
            ..QueueFilter::new(Queue::Open)
        },
        Utc::now(),
    )
    .await?;
    assert!(!urgent.is_empty());
    assert!(urgent.iter().all(|t| t.priority == "urgent"));
    Ok(())
}
