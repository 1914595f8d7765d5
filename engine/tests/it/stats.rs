//! Statistics: the reporting views behind `amal-engine stats`.

use chrono::Duration;
use sqlx::PgPool;

use amal_engine::stats;
use amal_engine::tickets::{self, CommentText, TicketStatus, Visibility};

use crate::fixtures::{TestResult, end_user, now_us, staff_account, ticket_at};

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn statistics_cover_queue_sla_times_workload_and_crisis(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t0 = now - Duration::hours(6);
    // A crisis escalation answered after 10 minutes and resolved after 2 hours.
    let crisis = amal_engine::turn::escalate(
        &mut conn,
        conv,
        "crisis",
        "urgent",
        "gate",
        &Default::default(),
        t0,
    )
    .await?;
    tickets::take(&mut conn, &agent, &crisis.ticket_number, t0).await?;
    let hello = CommentText::new("Nous sommes avec vous.")?;
    tickets::comment(
        &mut conn,
        &agent,
        &crisis.ticket_number,
        &hello,
        Visibility::Public,
        t0 + Duration::minutes(10),
    )
    .await?;
    tickets::set_status(
        &mut conn,
        &agent,
        &crisis.ticket_number,
        TicketStatus::Resolved,
        None,
        t0 + Duration::hours(2),
    )
    .await?;
    // An urgent ticket left alone: its first response breaches.
    let late = ticket_at(&mut conn, user, None, "urgent", t0).await;
    tickets::take(&mut conn, &agent, &late.ticket_number, t0).await?;
    let swept = tickets::sweep(&mut conn, now).await?;
    assert_eq!(
        (swept.first_response_breaches, swept.resolution_breaches),
        (1, 1)
    );
    // Decisions for the per-day series.
    sqlx::query(
        "INSERT INTO decision_logs (conversation_id, decision, confidence, created_at) \
         VALUES ($1, 'rag', 0.8, $2), ($1, 'support', 1.0, $2), ($1, 'support', 0.6, $2)",
    )
    .bind(conv)
    .bind(now)
    .execute(&pool)
    .await?;

    stats::refresh(&mut conn).await?;
    let s = stats::collect(&mut conn, now, 30).await?;
    assert_eq!(s.open_tickets, 1);
    assert_eq!(
        (
            s.queue[0].status.as_str(),
            s.queue[0].priority.as_str(),
            s.queue[0].tickets
        ),
        ("in_progress", "urgent", 1)
    );
    assert_eq!(s.first_response.tickets, 1);
    assert_eq!(s.first_response.avg_seconds, Some(600.0));
    assert_eq!(s.resolution.p90_seconds, Some(7200.0));
    let fr: Vec<_> = s
        .sla_compliance
        .iter()
        .filter(|c| c.target == "first_response")
        .collect();
    let (met, breached): (i64, i64) = (
        fr.iter().map(|c| c.met).sum(),
        fr.iter().map(|c| c.breached).sum(),
    );
    assert_eq!((met, breached), (1, 1));
    assert_eq!(s.sla_breaches.iter().map(|b| b.breaches).sum::<i64>(), 2);
    let w = s
        .workload
        .iter()
        .find(|w| w.email == "agent@amal.example")
        .unwrap();
    assert_eq!((w.open_tickets, w.in_progress, w.breached_open), (1, 1, 1));
    let support = s
        .decisions
        .iter()
        .find(|d| d.decision == "support")
        .unwrap();
    assert_eq!(support.count, 2);
    assert!((support.avg_confidence.unwrap() - 0.8).abs() < 1e-9);
    assert!(
        s.activity.iter().map(|a| a.messages).sum::<i64>() >= 1,
        "the staff reply"
    );
    assert_eq!(s.crisis.iter().map(|c| c.tickets).sum::<i64>(), 1);
    assert_eq!(s.crisis[0].avg_first_response_seconds, Some(600.0));
    let json = serde_json::to_value(&s)?;
    assert!(json["workload"].is_array() && json["crisis"].is_array());
    Ok(())
}
