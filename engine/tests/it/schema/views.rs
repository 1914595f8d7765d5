//! Views: active conversations, ticket statistics, open tickets' SLA, decision statistics.

use sqlx::PgPool;
use uuid::Uuid;

use super::{conversation, user};
use crate::fixtures::TestResult;

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../../seeds", scripts("reference"))
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
    fixtures(path = "../../../../seeds", scripts("reference"))
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
