//! Tickets: lifecycle, permissions, the take race, comments, escalation, audit rows, and the
//! `ticket` CLI's contract.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use amal_engine::lang::Lang;
use amal_engine::staff;
use amal_engine::tickets::{
    self, CommentText, NewTicket, Queue, QueueFilter, Subject, Ticket, TicketError, TicketStatus,
    Tier, Triage, Visibility,
};

use crate::fixtures::{
    TestResult, another_pool, end_user, engine_output, engine_output_with_input, now_us,
    run_engine, run_engine_with_input, staff_account, ticket_at,
};

async fn set_raw_status(pool: &PgPool, id: Uuid, status: &str) {
    sqlx::query("UPDATE support_tickets SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
}

async fn audit_actions(pool: &PgPool, ticket: Uuid) -> Vec<(String, Option<Uuid>)> {
    sqlx::query_as(
        "SELECT action, user_id FROM audit_logs WHERE resource_id = $1 ORDER BY created_at, id",
    )
    .bind(ticket)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn lifecycle_allows_the_table_and_refuses_everything_else(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let sup = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = ticket_at(&mut conn, user, Some(conv), "medium", now).await;
    let n = t.ticket_number.clone();
    assert_eq!(t.status, "open");

    let t = tickets::take(&mut conn, &agent, &n, now).await?;
    assert_eq!(
        (t.status.as_str(), t.assigned_to.as_deref()),
        ("in_progress", Some("agent@amal.example"))
    );
    let t = tickets::set_status(&mut conn, &agent, &n, TicketStatus::Pending, None, now).await?;
    assert!(t.sla.sla_paused, "pending stops the clock");
    let t = tickets::set_status(&mut conn, &agent, &n, TicketStatus::InProgress, None, now).await?;
    assert!(!t.sla.sla_paused);
    let t = tickets::set_status(
        &mut conn,
        &agent,
        &n,
        TicketStatus::Resolved,
        Some("Orienté vers un CSAPA"),
        now,
    )
    .await?;
    assert_eq!(t.resolved_at, Some(now));
    let (notes, by): (Option<String>, Option<Uuid>) =
        sqlx::query_as("SELECT resolution_notes, resolved_by FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        (notes.as_deref(), by),
        (Some("Orienté vers un CSAPA"), Some(agent.id))
    );
    let t = tickets::set_status(&mut conn, &agent, &n, TicketStatus::Closed, None, now).await?;
    assert_eq!(t.closed_at, Some(now));
    // Reopen from closed: back to in_progress (still held), resolution fields cleared.
    let t = tickets::reopen(&mut conn, &agent, &n, now).await?;
    assert_eq!(t.status, "in_progress");
    assert_eq!((t.resolved_at, t.closed_at), (None, None));
    // in_progress -> open gives the ticket back to the queue.
    let t = tickets::set_status(&mut conn, &agent, &n, TicketStatus::Open, None, now).await?;
    assert_eq!((t.status.as_str(), t.assigned_to), ("open", None));

    // Every pair: allowed ones succeed, the others are refused with a clear error.
    for from in TicketStatus::ALL {
        for to in TicketStatus::ALL {
            let t = ticket_at(&mut conn, user, Some(conv), "low", now).await;
            set_raw_status(&pool, t.id, from.as_str()).await;
            let result =
                tickets::set_status(&mut conn, &sup, &t.ticket_number, to, None, now).await;
            if from.can_go_to(to) {
                let t = result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                assert_eq!(t.status, to.as_str());
            } else {
                let err = result.expect_err(&format!("{from} -> {to} must be refused"));
                assert!(
                    matches!(err, TicketError::InvalidTransition { .. }),
                    "{from} -> {to}: {err}"
                );
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("is {from}"))
                        && msg.contains(&format!("cannot go to {to}")),
                    "{msg}"
                );
            }
        }
    }
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn permissions_agent_supervisor_admin(pool: PgPool) -> TestResult {
    let nadia = staff_account(&pool, "nadia@amal.example", "agent").await;
    let omar = staff_account(&pool, "omar@amal.example", "agent").await;
    let sup = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = ticket_at(&mut conn, user, Some(conv), "high", now).await;
    let n = t.ticket_number.clone();

    // Agents work unassigned tickets: an internal note on an unassigned ticket is fine.
    let note = CommentText::new("Vu en premier")?;
    tickets::comment(&mut conn, &omar, &n, &note, Visibility::Internal, now).await?;
    tickets::take(&mut conn, &nadia, &n, now).await?;
    // ... and their own, not someone else's.
    for err in [
        tickets::set_status(&mut conn, &omar, &n, TicketStatus::Resolved, None, now)
            .await
            .unwrap_err(),
        tickets::comment(&mut conn, &omar, &n, &note, Visibility::Public, now)
            .await
            .map(|_| ())
            .unwrap_err(),
        tickets::escalate(&mut conn, &omar, &n, Tier::T2, "x", now)
            .await
            .map(|_| ())
            .unwrap_err(),
        tickets::release(&mut conn, &omar, &n, now)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(
            msg.contains("nadia@amal.example") || msg.contains("needs supervisor"),
            "{msg}"
        );
    }
    // Assigning is for supervisors and admins.
    let err = tickets::assign(&mut conn, &nadia, &n, "omar@amal.example", now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs supervisor"), "{err}");
    let t = tickets::assign(&mut conn, &sup, &n, "omar@amal.example", now).await?;
    assert_eq!(t.assigned_to.as_deref(), Some("omar@amal.example"));
    let t = tickets::assign(&mut conn, &admin, &n, "nadia@amal.example", now).await?;
    assert_eq!(t.assigned_to.as_deref(), Some("nadia@amal.example"));
    // Supervisors act on anyone's ticket.
    tickets::comment(&mut conn, &sup, &n, &note, Visibility::Internal, now).await?;
    // Escalation: the holder upwards; only a supervisor downwards.
    let t = tickets::escalate(&mut conn, &nadia, &n, Tier::T3, "Risque élevé", now).await?;
    assert_eq!(t.escalation_tier, "T3");
    let err = tickets::escalate(&mut conn, &nadia, &n, Tier::T2, "erreur", now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs supervisor"), "{err}");
    tickets::escalate(
        &mut conn,
        &sup,
        &n,
        Tier::Manager,
        "Décision du responsable",
        now + Duration::seconds(1),
    )
    .await?;
    let t = tickets::escalate(
        &mut conn,
        &sup,
        &n,
        Tier::T2,
        "Retour en T2",
        now + Duration::seconds(2),
    )
    .await?;
    assert_eq!(t.escalation_tier, "T2");
    let history: Vec<(String, String, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT from_tier, to_tier, reason, actor_id FROM ticket_escalations WHERE ticket_id = $1 \
          ORDER BY created_at, id",
    )
    .bind(t.id)
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        history,
        [
            (
                "T1".into(),
                "T3".into(),
                "Risque élevé".into(),
                Some(nadia.id)
            ),
            (
                "T3".into(),
                "manager".into(),
                "Décision du responsable".into(),
                Some(sup.id)
            ),
            (
                "manager".into(),
                "T2".into(),
                "Retour en T2".into(),
                Some(sup.id)
            ),
        ]
    );
    // Release: supervisor (or the holder).
    let t = tickets::release(&mut conn, &sup, &n, now).await?;
    assert_eq!((t.assigned_to, t.status.as_str()), (None, "open"));
    // Staff management is for admins.
    let pw = staff::Password::new("long-enough-pw")?;
    let err = staff::add(
        &mut conn,
        Some(&sup),
        "x@amal.example",
        "X",
        staff::StaffRole::Agent,
        &pw,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs admin"), "{err}");
    staff::add(
        &mut conn,
        Some(&admin),
        "x@amal.example",
        "X",
        staff::StaffRole::Agent,
        &pw,
    )
    .await?;
    Ok(())
}

/// 32 agents race for the same 100 tickets: each ticket is taken exactly once, and every loser
/// is told who holds it.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn thirty_two_agents_race_for_a_hundred_tickets(pool: PgPool) -> TestResult {
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let now = now_us();
    let mut numbers = Vec::new();
    {
        let mut conn = pool.acquire().await?;
        for _ in 0..100 {
            numbers.push(
                ticket_at(&mut conn, user, Some(conv), "urgent", now)
                    .await
                    .ticket_number,
            );
        }
    }
    let mut agents = Vec::new();
    for i in 0..32 {
        agents.push(staff_account(&pool, &format!("agent{i}@amal.example"), "agent").await);
    }
    let racers = another_pool(&pool, PgPoolOptions::new().max_connections(32)).await?;
    let numbers = Arc::new(numbers);
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let (racers, numbers, barrier) = (racers.clone(), numbers.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = racers.acquire().await.unwrap();
            barrier.wait().await;
            let mut won = Vec::new();
            let mut lost = Vec::new();
            // Each agent walks the tickets from a different starting point.
            for k in 0..numbers.len() {
                let n = &numbers[(k + i * 3) % numbers.len()];
                match tickets::take(&mut conn, &agent, n, now).await {
                    Ok(t) => {
                        assert_eq!(t.assigned_to.as_deref(), Some(agent.email.as_str()));
                        won.push(n.clone());
                    }
                    Err(TicketError::HeldBy {
                        number,
                        holder_email,
                        holder_name,
                    }) => {
                        assert_eq!(&number, n);
                        assert!(holder_name.starts_with("Name of"), "{holder_name}");
                        lost.push((n.clone(), holder_email));
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (agent.email, won, lost)
        }));
    }
    let mut winner_of = std::collections::HashMap::new();
    let mut losses = Vec::new();
    for task in tasks {
        let (email, won, lost) = task.await?;
        for n in won {
            assert!(winner_of.insert(n, email.clone()).is_none(), "taken twice");
        }
        losses.extend(lost);
    }
    assert_eq!(winner_of.len(), 100, "every ticket taken exactly once");
    assert_eq!(losses.len(), 32 * 100 - 100);
    for (n, holder) in &losses {
        assert_eq!(
            &winner_of[n], holder,
            "the loser is told the real holder of {n}"
        );
    }
    let (assigned, takes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM support_tickets WHERE assigned_to IS NOT NULL), \
                (SELECT count(*) FROM audit_logs WHERE action = 'ticket.take')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((assigned, takes), (100, 100));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn comments_public_internal_edit_delete(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let other = staff_account(&pool, "other@amal.example", "agent").await;
    let sup = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let t0 = now_us() - Duration::minutes(30);
    let t = ticket_at(&mut conn, user, Some(conv), "medium", t0).await;
    let n = t.ticket_number.clone();
    tickets::take(&mut conn, &agent, &n, t0).await?;

    let internal = tickets::comment(
        &mut conn,
        &agent,
        &n,
        &CommentText::new("Note interne : antécédents")?,
        Visibility::Internal,
        t0 + Duration::minutes(1),
    )
    .await?;
    assert!(internal.is_internal && internal.message_id.is_none());
    let fr: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT first_response_at FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(fr, None, "an internal note is not a response");

    let at = t0 + Duration::minutes(10);
    let public = tickets::comment(
        &mut conn,
        &agent,
        &n,
        &CommentText::new("Bonjour, je suis là pour vous aider.")?,
        Visibility::Public,
        at,
    )
    .await?;
    let message = public.message_id.expect("delivered");
    let (role, author, content, mconv): (String, Option<Uuid>, String, Uuid) = sqlx::query_as(
        "SELECT role, author_id, content, conversation_id FROM messages WHERE id = $1",
    )
    .bind(message)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (role.as_str(), author, content.as_str(), mconv),
        (
            "staff",
            Some(agent.id),
            "Bonjour, je suis là pour vous aider.",
            conv
        )
    );
    let fr: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT first_response_at FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        fr,
        Some(at),
        "the first public comment is the first response"
    );
    // Internal comments never reach the conversation.
    let staff_messages: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE conversation_id = $1 AND role = 'staff'",
    )
    .bind(conv)
    .fetch_one(&pool)
    .await?;
    assert_eq!(staff_messages, 1);

    // Edits keep history and follow into the conversation; only the author or a supervisor.
    let err = tickets::edit_comment(&mut conn, &other, public.id, &CommentText::new("x")?, at)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs supervisor"), "{err}");
    let edited = tickets::edit_comment(
        &mut conn,
        &agent,
        public.id,
        &CommentText::new("Bonjour Yacine, je suis là.")?,
        at + Duration::minutes(1),
    )
    .await?;
    assert_eq!(edited.content, "Bonjour Yacine, je suis là.");
    assert!(edited.edited_at.is_some());
    let (previous, edited_by): (String, Uuid) = sqlx::query_as(
        "SELECT previous_content, edited_by FROM ticket_comment_edits WHERE comment_id = $1",
    )
    .bind(public.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (previous.as_str(), edited_by),
        ("Bonjour, je suis là pour vous aider.", agent.id)
    );
    let now_content: String = sqlx::query_scalar("SELECT content FROM messages WHERE id = $1")
        .bind(message)
        .fetch_one(&pool)
        .await?;
    assert_eq!(now_content, "Bonjour Yacine, je suis là.");
    // Soft delete by a supervisor: the text stays, the message is withdrawn.
    tickets::delete_comment(&mut conn, &sup, public.id, at + Duration::minutes(2)).await?;
    let (deleted, kept): (bool, String) =
        sqlx::query_as("SELECT deleted_at IS NOT NULL, content FROM ticket_comments WHERE id = $1")
            .bind(public.id)
            .fetch_one(&pool)
            .await?;
    assert!(deleted && kept == "Bonjour Yacine, je suis là.");
    let message_deleted: bool =
        sqlx::query_scalar("SELECT deleted_at IS NOT NULL FROM messages WHERE id = $1")
            .bind(message)
            .fetch_one(&pool)
            .await?;
    assert!(message_deleted);
    assert!(matches!(
        tickets::delete_comment(&mut conn, &sup, public.id, at).await,
        Err(TicketError::CommentNotFound(_))
    ));

    // Validation.
    for bad in ["", "   \n", "bell \u{7}"] {
        assert!(
            matches!(CommentText::new(bad), Err(TicketError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(CommentText::new(&"م".repeat(10_001)).is_err());

    // A public comment on a ticket without a conversation opens one for the user.
    let lone = ticket_at(&mut conn, user, None, "low", at).await;
    let c = tickets::comment(
        &mut conn,
        &sup,
        &lone.ticket_number,
        &CommentText::new("Nous vous contactons ici.")?,
        Visibility::Public,
        at,
    )
    .await?;
    let linked: Option<Uuid> =
        sqlx::query_scalar("SELECT conversation_id FROM support_tickets WHERE id = $1")
            .bind(lone.id)
            .fetch_one(&pool)
            .await?;
    let (owner, mconv): (Uuid, Uuid) = sqlx::query_as(
        "SELECT c.user_id, m.conversation_id FROM messages m JOIN conversations c \
           ON c.id = m.conversation_id WHERE m.id = $1",
    )
    .bind(c.message_id.unwrap())
    .fetch_one(&pool)
    .await?;
    assert_eq!((Some(mconv), owner), (linked, user));

    // Every action above left an audit row naming its actor.
    let actions = audit_actions(&pool, t.id).await;
    let expected = [
        ("ticket.create", None),
        ("ticket.take", Some(agent.id)),
        ("ticket.comment", Some(agent.id)),
        ("ticket.comment", Some(agent.id)),
        ("ticket.comment_edit", Some(agent.id)),
        ("ticket.comment_delete", Some(sup.id)),
    ];
    assert_eq!(
        actions,
        expected
            .iter()
            .map(|(a, u)| (a.to_string(), *u))
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn escalated_conversation_opens_one_linked_ticket(pool: PgPool) -> TestResult {
    let (_, conv) = end_user(&pool, "u@example.dz").await;
    sqlx::query("UPDATE conversations SET title = NULL WHERE id = $1")
        .bind(conv)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', 'ما بقاش عندي سبب باش نعيش')",
    )
    .bind(conv)
    .execute(&pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = amal_engine::turn::escalate(
        &mut conn,
        conv,
        "crisis",
        "urgent",
        "Crisis gate: suicidal ideation",
        &Default::default(),
        now,
    )
    .await?;
    assert_eq!(t.subject, "ما بقاش عندي سبب باش نعيش");
    assert_eq!(
        (t.category.as_str(), t.priority.as_str(), t.conversation_id),
        ("crisis", "urgent", Some(conv))
    );
    assert_eq!(t.sla.first_response_remaining_seconds, Some(15 * 60));
    let (status, escalated_at): (String, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT status, escalated_at FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await?;
    assert_eq!((status.as_str(), escalated_at), ("escalated", Some(now)));
    let again = amal_engine::turn::escalate(
        &mut conn,
        conv,
        "crisis",
        "urgent",
        "retry",
        &Default::default(),
        now,
    )
    .await?;
    assert_eq!(
        again.id, t.id,
        "a retried escalation returns the same ticket"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM support_tickets")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 1);
    // Unknown references are domain errors.
    let new = NewTicket {
        user_id: Uuid::new_v4(),
        conversation_id: None,
        subject: Subject::new("x")?,
        description: None,
        category: "crisis".into(),
        priority: "urgent".into(),
    };
    assert!(matches!(
        tickets::create(&mut conn, None, &new, now).await,
        Err(TicketError::UnknownReference(_))
    ));
    let (user, _) = end_user(&pool, "v@example.dz").await;
    let bad = NewTicket {
        user_id: user,
        category: "gaming".into(),
        ..new
    };
    assert!(matches!(
        tickets::create(&mut conn, None, &bad, now).await,
        Err(TicketError::UnknownCategory(_))
    ));
    Ok(())
}

/// A standalone creation commits without waiting for its flush (the notify lock) and then
/// waits for the flush itself: the session's commit mode is left as it was, the notice is
/// delivered, and inside a caller's transaction nothing of this applies (its rollback undoes
/// the ticket and sends no notice).
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn creation_defers_only_its_own_flush(pool: PgPool) -> TestResult {
    let (user, _) = end_user(&pool, "f@example.dz").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(amal_engine::events::CHANNEL).await?;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = ticket_at(&mut conn, user, None, "high", now).await;
    let mode: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(mode, "on", "the session's commit mode is unchanged");
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await??;
    let notice = amal_engine::events::ChangeNotice::parse(notice.payload())?;
    assert_eq!(notice.ticket_id, Some(t.id));

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let inside = ticket_at(&mut tx, user, None, "high", now).await;
    let mode: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(
        mode, "on",
        "a caller's transaction keeps its durable commit"
    );
    tx.rollback().await?;
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM support_tickets WHERE id = $1")
        .bind(inside.id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(found, 0);
    let late = tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv()).await;
    assert!(late.is_err(), "a rolled-back creation sends no notice");
    Ok(())
}

/// `create` returns the ticket as `get` reads it (its statement computes the clock from the
/// inserted row, `get` from the stored one), standalone and inside a caller's transaction, by
/// staff and by the system, around the clock and in business hours; the audit row names the
/// creator.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn creation_returns_the_ticket_as_read(pool: PgPool) -> TestResult {
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let (user, conv) = end_user(&pool, "c@example.dz").await;
    let mut conn = pool.acquire().await?;
    // Thursday 15:00 in Algiers: in business hours the first-response clock runs into Sunday.
    let thursday: DateTime<Utc> = "2026-12-03T14:00:00Z".parse()?;
    let mut created = Vec::new();
    for business_hours in [false, true] {
        if business_hours {
            let calendar = amal_engine::sla::calendar(&mut conn).await?;
            let on = amal_engine::sla::Calendar {
                business_hours: true,
                ..calendar
            };
            amal_engine::sla::set_calendar(&mut conn, Some(&admin), &on).await?;
        }
        for (by, conversation) in [(None, None), (Some(&admin), Some(conv))] {
            let new = NewTicket {
                user_id: user,
                conversation_id: conversation,
                subject: Subject::new("Sommeil")?,
                description: Some("Depuis deux semaines".into()),
                category: "mental_health".into(),
                priority: "high".into(),
            };
            let standalone = tickets::create(&mut conn, by, &new, thursday).await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let inside = tickets::create(&mut tx, by, &new, thursday).await?;
            tx.commit().await?;
            for t in [standalone, inside] {
                let read = tickets::get(&mut conn, t.id, thursday).await?;
                assert_eq!(t, read, "business hours {business_hours}");
                let actor: Option<Uuid> = sqlx::query_scalar(
                    "SELECT user_id FROM audit_logs WHERE action = 'ticket.create' AND resource_id = $1",
                )
                .bind(t.id)
                .fetch_one(&pool)
                .await?;
                assert_eq!(actor, by.map(|a| a.id));
                created.push(t);
            }
        }
    }
    // High priority: 1 hour to respond and 24 to resolve. Thursday 15:00 to 16:00 is working
    // time; the 24 working hours end on Tuesday at 12:00 in Algiers (11:00 UTC).
    for t in [&created[0], &created[4]] {
        assert_eq!(t.sla.first_response_remaining_seconds, Some(3600));
        assert_eq!(t.sla.resolution_remaining_seconds, Some(86_400));
    }
    assert_eq!(
        created[0].sla.resolution_due_at,
        Some("2026-12-04T14:00:00Z".parse()?)
    );
    assert_eq!(
        created[4].sla.resolution_due_at,
        Some("2026-12-08T11:00:00Z".parse()?)
    );
    assert_eq!(created[0].subject, "Sommeil");
    assert_eq!(created[2].conversation_id, Some(conv));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn queues_order_by_the_next_deadline(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let low = ticket_at(&mut conn, user, Some(conv), "low", now).await;
    let urgent = ticket_at(&mut conn, user, Some(conv), "urgent", now).await;
    let late = ticket_at(
        &mut conn,
        user,
        Some(conv),
        "high",
        now - Duration::hours(2),
    )
    .await;
    let done = ticket_at(&mut conn, user, Some(conv), "medium", now).await;
    set_raw_status(&pool, done.id, "closed").await;
    tickets::take(&mut conn, &agent, &low.ticket_number, now).await?;

    let ids = |v: Vec<Ticket>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let all = tickets::queue(&mut conn, None, &QueueFilter::new(Queue::All), now).await?;
    for t in &all {
        let sql = amal_engine::sla::clock(&mut conn, t.id, now).await?;
        assert_eq!(t.sla, sql, "{}", t.ticket_number);
    }
    assert_eq!(ids(all), [late.id, urgent.id, low.id, done.id]);
    let mine = tickets::queue(&mut conn, Some(&agent), &QueueFilter::new(Queue::Mine), now).await?;
    assert_eq!(ids(mine), [low.id]);
    let unassigned =
        tickets::queue(&mut conn, None, &QueueFilter::new(Queue::Unassigned), now).await?;
    assert_eq!(ids(unassigned), [late.id, urgent.id]);
    let breached = tickets::queue(&mut conn, None, &QueueFilter::new(Queue::Breached), now).await?;
    assert_eq!(ids(breached), [late.id]);
    assert!(
        tickets::queue(&mut conn, None, &QueueFilter::new(Queue::Mine), now)
            .await
            .is_err()
    );
    let mut by_category = QueueFilter::new(Queue::All);
    by_category.category = Some("crisis".into());
    assert!(
        tickets::queue(&mut conn, None, &by_category, now)
            .await?
            .is_empty()
    );
    let mut by_assignee = QueueFilter::new(Queue::All);
    by_assignee.assignee = Some(agent.id);
    assert_eq!(
        ids(tickets::queue(&mut conn, None, &by_assignee, now).await?),
        [low.id]
    );

    // Language and tier, as re-triage sets them.
    sqlx::query("UPDATE support_tickets SET language = 'ar', escalation_tier = 'T2' WHERE id = $1")
        .bind(late.id)
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE support_tickets SET language = 'fr' WHERE id = $1")
        .bind(urgent.id)
        .execute(&pool)
        .await?;
    let by_language = |lang| QueueFilter {
        language: Some(lang),
        ..QueueFilter::new(Queue::Open)
    };
    assert_eq!(
        ids(tickets::queue(&mut conn, None, &by_language(Lang::Ar), now).await?),
        [late.id]
    );
    assert_eq!(
        ids(tickets::queue(&mut conn, None, &by_language(Lang::Fr), now).await?),
        [urgent.id]
    );
    assert!(
        tickets::queue(&mut conn, None, &by_language(Lang::En), now)
            .await?
            .is_empty()
    );
    let by_tier = |tier| QueueFilter {
        tier: Some(tier),
        ..QueueFilter::new(Queue::All)
    };
    assert_eq!(
        ids(tickets::queue(&mut conn, None, &by_tier(Tier::T2), now).await?),
        [late.id]
    );
    assert_eq!(
        ids(tickets::queue(&mut conn, None, &by_tier(Tier::T1), now).await?),
        [urgent.id, low.id, done.id]
    );

    // Inside a caller's transaction: the page's planner setting ends with the page, and the
    // transaction goes on.
    let mut tx = pool.begin().await?;
    let page = tickets::queue(&mut tx, None, &QueueFilter::new(Queue::Open), now).await?;
    assert_eq!(ids(page), [late.id, urgent.id, low.id]);
    let sort: String = sqlx::query_scalar("SHOW enable_sort")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(sort, "on");
    tx.commit().await?;
    let plan = tickets::queue_plan(&mut conn, None, &by_language(Lang::Ar), now).await?;
    assert!(
        plan.iter()
            .any(|l| l.contains("idx_support_tickets_queue_language")),
        "{plan:#?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CLI contract
// ---------------------------------------------------------------------------------------------

#[test]
fn contract_staff_add_ticket_take_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_engine(d, &["seed", "--demo"]);
    run_engine_with_input(
        d,
        &[
            "staff",
            "add",
            "karima@amal.example",
            "--name",
            "Karima",
            "--role",
            "agent",
        ],
        "a-long-password\n",
    );
    run_engine_with_input(
        d,
        &[
            "staff",
            "add",
            "yanis@amal.example",
            "--name",
            "Yanis",
            "--role",
            "agent",
        ],
        "another-long-password\n",
    );
    let short = engine_output_with_input(
        d,
        &[
            "staff",
            "add",
            "s@amal.example",
            "--name",
            "S",
            "--role",
            "agent",
        ],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));
    let list = run_engine(d, &["staff", "list", "--json"]);
    assert!(list.contains("karima@amal.example"), "{list}");

    let tickets: serde_json::Value = serde_json::from_str(&run_engine(
        d,
        &["ticket", "list", "--queue", "all", "--json"],
    ))
    .unwrap();
    let array = tickets.as_array().expect("a JSON array");
    let open = array
        .iter()
        .find(|t| t["status"] == "open" && t["assigned_to"].is_null())
        .expect("an unassigned demo ticket");
    for key in [
        "ticket_number",
        "subject",
        "category",
        "priority",
        "status",
        "assigned_to",
        "escalation_tier",
        "created_at",
        "first_response_due_at",
        "resolution_due_at",
        "first_response_state",
        "resolution_state",
        "first_response_remaining_seconds",
        "resolution_remaining_seconds",
    ] {
        assert!(open.get(key).is_some(), "missing {key}: {open}");
    }
    let number = open["ticket_number"].as_str().unwrap().to_string();

    run_engine(
        d,
        &["ticket", "take", &number, "--as", "karima@amal.example"],
    );
    // Taking it again is fine: it is already hers.
    run_engine(
        d,
        &["ticket", "take", &number, "--as", "karima@amal.example"],
    );
    let lost = engine_output(
        d,
        &["ticket", "take", &number, "--as", "yanis@amal.example"],
    );
    assert!(!lost.status.success());
    let err = String::from_utf8_lossy(&lost.stderr);
    assert!(
        err.contains("karima@amal.example") && err.contains("Karima"),
        "{err}"
    );

    let after: serde_json::Value = serde_json::from_str(&run_engine(
        d,
        &["ticket", "list", "--queue", "all", "--json"],
    ))
    .unwrap();
    let taken = after
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ticket_number"] == number.as_str())
        .unwrap();
    assert_eq!(taken["assigned_to"], "karima@amal.example");
    assert_eq!(taken["status"], "in_progress");

    run_engine(
        d,
        &[
            "ticket",
            "comment",
            &number,
            "--as",
            "karima@amal.example",
            "--internal",
            "note",
            "interne",
        ],
    );
    run_engine(
        d,
        &[
            "ticket",
            "comment",
            &number,
            "--as",
            "karima@amal.example",
            "Bonjour, je suis Karima.",
        ],
    );
    // Comments are edited and deleted by id, keeping their history; not by another agent.
    let comments = |d| -> Vec<serde_json::Value> {
        let shown: serde_json::Value =
            serde_json::from_str(&run_engine(d, &["ticket", "show", &number, "--json"])).unwrap();
        shown["comments"].as_array().unwrap().clone()
    };
    let id_of = |all: &[serde_json::Value], internal: bool| {
        all.iter().find(|c| c["is_internal"] == internal).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let all = comments(d);
    let (public, note) = (id_of(&all, false), id_of(&all, true));
    let other = engine_output(
        d,
        &[
            "ticket",
            "comment-edit",
            &public,
            "--as",
            "yanis@amal.example",
            "pris",
        ],
    );
    assert!(!other.status.success());
    run_engine(
        d,
        &[
            "ticket",
            "comment-edit",
            &public,
            "--as",
            "karima@amal.example",
            "Bonjour,",
            "ici Karima.",
        ],
    );
    run_engine(
        d,
        &[
            "ticket",
            "comment-delete",
            &note,
            "--as",
            "karima@amal.example",
        ],
    );
    let all = comments(d);
    let find = |id: &str| all.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(find(&public)["content"], "Bonjour, ici Karima.");
    assert!(find(&public)["edited_at"].is_string());
    assert!(find(&note)["deleted_at"].is_string());
    let refused = engine_output(
        d,
        &[
            "ticket",
            "status",
            &number,
            "closed",
            "--as",
            "yanis@amal.example",
        ],
    );
    assert!(!refused.status.success());
    run_engine(
        d,
        &[
            "ticket",
            "status",
            &number,
            "resolved",
            "--as",
            "karima@amal.example",
        ],
    );
    let bad = engine_output(
        d,
        &[
            "ticket",
            "status",
            &number,
            "pending",
            "--as",
            "karima@amal.example",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot go to pending"));
    let show = run_engine(d, &["ticket", "show", &number]);
    assert!(
        show.contains("Bonjour, ici Karima.") && show.contains("internal, deleted"),
        "{show}"
    );
    let mine: serde_json::Value = serde_json::from_str(&run_engine(
        d,
        &[
            "ticket",
            "list",
            "--queue",
            "mine",
            "--as",
            "karima@amal.example",
            "--json",
        ],
    ))
    .unwrap();
    assert!(
        mine.as_array().unwrap().is_empty(),
        "resolved: no longer in her open queue"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&run_engine(d, &["stats", "--json"])).unwrap();
    assert!(stats["open_tickets"].as_i64().unwrap() >= 1, "{stats}");
    run_engine(d, &["db", "stop"]);
}

// ---------------------------------------------------------------------------------------------
// Re-triage
// ---------------------------------------------------------------------------------------------

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn triage_is_for_supervisors_recomputes_the_clock_and_leaves_the_person_alone(
    pool: PgPool,
) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let sup = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    sqlx::query("UPDATE conversations SET language = 'fr-FR' WHERE id = $1")
        .bind(conv)
        .execute(&pool)
        .await?;
    let mut conn = pool.acquire().await?;
    let created = now_us() - Duration::minutes(30);
    let t = ticket_at(&mut conn, user, Some(conv), "low", created).await;
    let n = t.ticket_number.clone();
    assert_eq!(t.language.as_deref(), Some("fr"), "from the conversation");
    let messages_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await?;
    let urgent = Triage {
        priority: Some("urgent".into()),
        category: Some("mental_health".into()),
        tier: Some(Tier::T2),
        language: Some("ar".parse()?),
    };
    let now = now_us();

    // Agents may not; the refusal names the rule.
    let err = tickets::triage(&mut conn, &agent, &n, &urgent, "mal classé", now)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("re-triaging tickets needs supervisor"),
        "{err}"
    );
    // A reason and at least one change are needed; bad codes are named.
    let err = tickets::triage(&mut conn, &sup, &n, &urgent, "  ", now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a reason"), "{err}");
    let err = tickets::triage(&mut conn, &sup, &n, &Triage::default(), "x", now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least one"), "{err}");
    let bad = Triage {
        category: Some("gossip".into()),
        ..Triage::default()
    };
    let err = tickets::triage(&mut conn, &sup, &n, &bad, "x", now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TicketError::UnknownCategory(ref c) if c == "gossip"),
        "{err}"
    );

    // Low gave a day for the first response; urgent gives 15 minutes from creation: 30
    // minutes in, it is breached at once.
    assert_eq!(t.sla.first_response_state.0, amal_engine::sla::SlaState::Ok);
    let after = tickets::triage(&mut conn, &sup, &n, &urgent, "crise mal classée", now).await?;
    assert_eq!(after.priority, "urgent");
    assert_eq!(after.category, "mental_health");
    assert_eq!(after.escalation_tier, "T2");
    assert_eq!(after.language.as_deref(), Some("ar"));
    assert_eq!(
        after.sla.first_response_due_at,
        Some(created + Duration::minutes(15))
    );
    assert_eq!(
        after.sla.first_response_state.0,
        amal_engine::sla::SlaState::Breached
    );
    assert!(after.sla.first_response_remaining_seconds.unwrap() < 0);

    // Audited with every field's old and new value and the reason; the tier is in the
    // escalation history.
    let (action, details): (String, serde_json::Value) = sqlx::query_as(
        "SELECT action, details FROM audit_logs WHERE resource_id = $1 \
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(action, "ticket.triage");
    assert_eq!(details["reason"], "crise mal classée");
    assert_eq!(details["changes"]["priority"]["from"], "low");
    assert_eq!(details["changes"]["priority"]["to"], "urgent");
    assert_eq!(details["changes"]["category"]["to"], "mental_health");
    assert_eq!(details["changes"]["tier"]["to"], "T2");
    assert_eq!(details["changes"]["language"]["from"], "fr");
    let mut reader = amal_engine::conversations::StaffReader::new(None);
    let detail = tickets::detail(&mut conn, &mut reader, &n, now).await?;
    assert_eq!(detail.escalations.len(), 1);
    assert_eq!(detail.escalations[0].reason, "crise mal classée");

    // The person sees nothing: no message, the conversation's language unchanged.
    let (messages_after, language): (i64, Option<String>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE conversation_id = $1), \
                (SELECT language::text FROM conversations WHERE id = $1)",
    )
    .bind(conv)
    .fetch_one(&pool)
    .await?;
    assert_eq!(messages_after, messages_before);
    assert_eq!(language.as_deref(), Some("fr-FR"));

    // The same values again change nothing and write no audit row.
    let audits = audit_actions(&pool, t.id).await.len();
    tickets::triage(&mut conn, &sup, &n, &urgent, "encore", now).await?;
    assert_eq!(audit_actions(&pool, t.id).await.len(), audits);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn alerts_count_unassigned_crisis_tickets_and_breaches(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    assert_eq!(
        tickets::alerts(&mut conn, now).await?,
        tickets::Alerts::default()
    );
    let crisis = |subject: &str| NewTicket {
        user_id: user,
        conversation_id: None,
        subject: Subject::new(subject).unwrap(),
        description: None,
        category: "crisis".into(),
        priority: "urgent".into(),
    };
    let old = tickets::create(&mut conn, None, &crisis("a"), now - Duration::hours(1)).await?;
    let new = tickets::create(&mut conn, None, &crisis("b"), now - Duration::minutes(1)).await?;
    ticket_at(&mut conn, user, Some(conv), "low", now).await;
    let a = tickets::alerts(&mut conn, now).await?;
    assert_eq!(a.unassigned_crisis, 2);
    // The hour-old urgent ticket missed its 15 minutes (not swept yet).
    assert_eq!(a.breached, 1);
    assert_eq!(
        a.newest_unassigned_crisis.as_deref(),
        Some(new.ticket_number.as_str())
    );
    tickets::take(&mut conn, &agent, &new.ticket_number, now).await?;
    let a = tickets::alerts(&mut conn, now).await?;
    assert_eq!(a.unassigned_crisis, 1);
    assert_eq!(
        a.newest_unassigned_crisis.as_deref(),
        Some(old.ticket_number.as_str())
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn contract_ticket_triage(pool: PgPool) -> TestResult {
    staff_account(&pool, "agent@amal.example", "agent").await;
    staff_account(&pool, "sup@amal.example", "supervisor").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let t = ticket_at(&mut conn, user, Some(conv), "medium", now_us()).await;
    let n = t.ticket_number.as_str();
    let url = crate::fixtures::own_database_url(&pool);
    let dir = tempfile::tempdir()?;
    let engine = |args: &[&str]| {
        crate::fixtures::engine_command(dir.path(), args)
            .env("DATABASE_URL", &url)
            .output()
            .expect("run amal-engine")
    };
    let args = |who: &'static str| {
        vec![
            "ticket",
            "triage",
            n,
            "--priority",
            "high",
            "--category",
            "mental_health",
            "--tier",
            "T3",
            "--lang",
            "en",
            "--reason",
            "misfiled",
            "--as",
            who,
        ]
    };
    let refused = engine(&args("agent@amal.example"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("re-triaging tickets needs supervisor"),
        "{err}"
    );

    let done = engine(&args("sup@amal.example"));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let show = engine(&["ticket", "show", n, "--json"]);
    assert!(show.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    assert_eq!(shown["priority"], "high");
    assert_eq!(shown["category"], "mental_health");
    assert_eq!(shown["escalation_tier"], "T3");
    assert_eq!(shown["language"], "en");
    let action: String = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE resource_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(t.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(action, "ticket.triage");
    // A reason is required by the command line itself.
    let no_reason = engine(&[
        "ticket",
        "triage",
        n,
        "--priority",
        "low",
        "--as",
        "sup@amal.example",
    ]);
    assert!(!no_reason.status.success());
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn staff_take_over_a_live_conversation_with_a_linked_ticket(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let other = staff_account(&pool, "other@amal.example", "agent").await;
    let (_, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = amal_engine::turn::take_over(&mut conn, &agent, conv, now).await?;
    assert_eq!(t.conversation_id, Some(conv));
    assert_eq!(t.assigned_to.as_deref(), Some("agent@amal.example"));
    assert_eq!(t.status, "in_progress");
    // One transaction: both rows have its time, in no particular order.
    let mut actions = audit_actions(&pool, t.id).await;
    actions.sort();
    assert_eq!(
        actions,
        vec![
            ("ticket.create".to_string(), None),
            ("ticket.take".to_string(), Some(agent.id))
        ]
    );
    let escalated: String = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
        .bind(conv)
        .fetch_one(&pool)
        .await?;
    assert_eq!(escalated, "escalated");
    // Someone else stepping in is told who has it; no second ticket.
    let err = amal_engine::turn::take_over(&mut conn, &other, conv, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("agent@amal.example"), "{err}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM support_tickets WHERE conversation_id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await?;
    assert_eq!(count, 1);
    Ok(())
}
