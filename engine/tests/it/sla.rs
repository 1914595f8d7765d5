//! SLA: targets, pause and resume arithmetic, warning and breach states, breaches recorded
//! exactly once by racing sweepers, and the business-hours calendar. Time is always explicit.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use amal_engine::sla::{self, Calendar, SlaState};
use amal_engine::tickets::{self, CommentText, TicketStatus, Visibility};

use crate::fixtures::{TestResult, another_pool, end_user, staff_account, ticket_at, ts};

/// The clock from `sla::clock` (SQL, `ticket_sla_at`) after checking that the ticket read by
/// `tickets::get` (the list queries' path) computes the very same clock.
async fn both(
    conn: &mut sqlx::PgConnection,
    id: uuid::Uuid,
    at: DateTime<Utc>,
) -> Result<sla::SlaClock, Box<dyn std::error::Error>> {
    let sql = sla::clock(conn, id, at).await?;
    let listed = tickets::get(conn, id, at).await?;
    assert_eq!(listed.sla, sql, "list path and SQL disagree at {at}");
    Ok(sql)
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn targets_are_seeded_and_editable(pool: PgPool) -> TestResult {
    let mut conn = pool.acquire().await?;
    let targets: Vec<(String, i32, i32)> = sla::targets(&mut conn)
        .await?
        .into_iter()
        .map(|t| (t.code, t.first_response_minutes, t.resolution_minutes))
        .collect();
    assert_eq!(
        targets,
        [
            ("urgent".into(), 15, 4 * 60),
            ("high".into(), 60, 24 * 60),
            ("medium".into(), 4 * 60, 72 * 60),
            ("low".into(), 24 * 60, 7 * 24 * 60),
        ]
    );
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    assert!(
        sla::set_targets(&mut conn, Some(&agent), "urgent", 10, 120)
            .await
            .is_err()
    );
    assert!(
        sla::set_targets(&mut conn, Some(&admin), "urgent", 130, 120)
            .await
            .is_err()
    );
    assert!(
        sla::set_targets(&mut conn, Some(&admin), "nope", 10, 120)
            .await
            .is_err()
    );
    sla::set_targets(&mut conn, Some(&admin), "urgent", 10, 150).await?;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let t0 = ts("2026-03-10T09:00:00Z");
    let t = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
    assert_eq!(
        t.sla.first_response_due_at,
        Some(t0 + Duration::minutes(10))
    );
    assert_eq!(t.sla.resolution_due_at, Some(t0 + Duration::minutes(150)));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'sla.targets'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(audited, 1);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn states_warn_at_80_percent_and_breach_at_100(pool: PgPool) -> TestResult {
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let t0 = ts("2026-03-10T09:00:00Z");
    // Urgent: first response 15 min (warning from 12), resolution 4 h (warning from 3 h 12).
    let t = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
    let at = |m: i64| t0 + Duration::minutes(m);
    let c = both(&mut conn, t.id, at(11)).await?;
    assert_eq!(c.first_response_state.0, SlaState::Ok);
    assert_eq!(c.first_response_remaining_seconds, Some(4 * 60));
    assert_eq!(c.resolution_remaining_seconds, Some((240 - 11) * 60));
    let c = both(&mut conn, t.id, at(12)).await?;
    assert_eq!(
        (c.first_response_state.0, c.sla_state.0),
        (SlaState::Warning, SlaState::Warning)
    );
    let c = both(&mut conn, t.id, at(15)).await?;
    assert_eq!(c.first_response_state.0, SlaState::Breached);
    assert_eq!(c.first_response_remaining_seconds, Some(0));
    let c = both(&mut conn, t.id, at(20)).await?;
    assert_eq!(c.first_response_remaining_seconds, Some(-5 * 60));
    assert_eq!(c.resolution_state.0, SlaState::Ok);
    let c = both(&mut conn, t.id, at(192)).await?;
    assert_eq!(c.resolution_state.0, SlaState::Warning);
    let c = both(&mut conn, t.id, at(240)).await?;
    assert_eq!(c.resolution_state.0, SlaState::Breached);
    Ok(())
}

/// Pending stops both clocks; the user writing resumes them and pushes the deadlines back by
/// exactly the time they stood still.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn pause_and_resume_arithmetic(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let t0 = ts("2026-03-10T09:00:00Z");
    let at = |m: i64| t0 + Duration::minutes(m);
    let t = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
    let n = t.ticket_number.clone();
    tickets::take(&mut conn, &agent, &n, at(1)).await?;
    // Waiting on the user from minute 5.
    tickets::set_status(&mut conn, &agent, &n, TicketStatus::Pending, None, at(5)).await?;
    let c = both(&mut conn, t.id, at(65)).await?;
    assert!(c.sla_paused);
    assert_eq!(
        c.first_response_remaining_seconds,
        Some(10 * 60),
        "frozen at 10 min left"
    );
    assert_eq!(c.resolution_remaining_seconds, Some(235 * 60));
    assert_eq!(
        c.first_response_state.0,
        SlaState::Ok,
        "a stopped clock does not breach"
    );
    // The sweeper leaves a stopped clock alone, even far past the nominal deadline.
    assert_eq!(tickets::sweep(&mut conn, at(600)).await?.total(), 0);

    // The user writes at minute 65: back to in_progress, one hour added to the paused time.
    let resumed = tickets::resume_pending(&mut conn, conv, at(65)).await?;
    assert_eq!(resumed, [t.id]);
    let (status, paused_seconds, paused_at, fr_deadline, res_deadline): (
        String,
        i32,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT status, sla_paused_seconds, sla_paused_at, first_response_deadline_at, \
                resolution_deadline_at FROM support_tickets WHERE id = $1",
    )
    .bind(t.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(status, "in_progress");
    assert_eq!((paused_seconds, paused_at), (3600, None));
    assert_eq!(fr_deadline, at(15 + 60));
    assert_eq!(res_deadline, at(240 + 60));
    let c = both(&mut conn, t.id, at(70)).await?;
    assert_eq!(c.first_response_remaining_seconds, Some(5 * 60));
    assert_eq!(
        c.first_response_state.0,
        SlaState::Ok,
        "10 of 15 working minutes used"
    );
    let c = both(&mut conn, t.id, at(73)).await?;
    assert_eq!(
        c.first_response_state.0,
        SlaState::Warning,
        "13 of 15: past 80%"
    );
    // A second pause adds up.
    tickets::set_status(&mut conn, &agent, &n, TicketStatus::Pending, None, at(71)).await?;
    tickets::resume_pending(&mut conn, conv, at(101)).await?;
    let c = both(&mut conn, t.id, at(101)).await?;
    assert_eq!(c.first_response_remaining_seconds, Some(4 * 60));
    // Resolving stops the clock; reopening later resumes it.
    tickets::set_status(&mut conn, &agent, &n, TicketStatus::Resolved, None, at(110)).await?;
    tickets::reopen(&mut conn, &agent, &n, at(170)).await?;
    let paused: i32 =
        sqlx::query_scalar("SELECT sla_paused_seconds FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(paused, 3600 + 1800 + 3600);
    // The resume is audited as a system action.
    let resumes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'ticket.resume' AND user_id IS NULL",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(resumes, 2);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn first_response_stops_its_clock_and_late_stops_are_recorded(pool: PgPool) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let t0 = ts("2026-03-10T09:00:00Z");
    let at = |m: i64| t0 + Duration::minutes(m);
    // Answered in time: no first-response clock any more.
    let a = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
    let text = CommentText::new("Nous sommes là.")?;
    tickets::comment(
        &mut conn,
        &agent,
        &a.ticket_number,
        &text,
        Visibility::Public,
        at(10),
    )
    .await?;
    let c = both(&mut conn, a.id, at(30)).await?;
    assert_eq!(c.first_response_remaining_seconds, None);
    assert_eq!(c.first_response_state.0, SlaState::Ok);
    // Answered late (no sweeper ran): the breach is recorded when the answer is written.
    let b = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
    tickets::comment(
        &mut conn,
        &agent,
        &b.ticket_number,
        &text,
        Visibility::Public,
        at(20),
    )
    .await?;
    let c = both(&mut conn, b.id, at(21)).await?;
    assert_eq!(c.first_response_state.0, SlaState::Breached);
    // Resolved late: recorded at resolution.
    tickets::set_status(
        &mut conn,
        &agent,
        &b.ticket_number,
        TicketStatus::Resolved,
        None,
        at(300),
    )
    .await?;
    let events: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT target, due_at FROM sla_breach_events WHERE ticket_id = $1 ORDER BY target",
    )
    .bind(b.id)
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        events,
        [
            ("first_response".into(), at(15)),
            ("resolution".into(), at(240))
        ]
    );
    let flags: (bool, bool, bool) = sqlx::query_as(
        "SELECT first_response_breached, resolution_breached, sla_breached FROM support_tickets WHERE id = $1",
    )
    .bind(b.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(flags, (true, true, true));
    Ok(())
}

/// Two sweepers on separate connections at the same moment: each breach is recorded once.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn racing_sweepers_record_each_breach_exactly_once(pool: PgPool) -> TestResult {
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let t0 = ts("2026-03-10T09:00:00Z");
    {
        let mut conn = pool.acquire().await?;
        // 300 urgent tickets: at t0 + 1 h their first response (15 min) is late, not their
        // resolution (4 h); 20 are answered and 20 pending, which must not be swept.
        for i in 0..300 {
            let t = ticket_at(&mut conn, user, Some(conv), "urgent", t0).await;
            if i < 20 {
                sqlx::query("UPDATE support_tickets SET first_response_at = $2 WHERE id = $1")
                    .bind(t.id)
                    .bind(t0 + Duration::minutes(5))
                    .execute(&mut *conn)
                    .await?;
            } else if i < 40 {
                sqlx::query(
                    "UPDATE support_tickets SET status = 'pending', sla_paused_at = $2 WHERE id = $1",
                )
                .bind(t.id)
                .bind(t0 + Duration::minutes(5))
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    let sweepers = another_pool(&pool, PgPoolOptions::new().max_connections(2)).await?;
    let now = t0 + Duration::hours(1);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |pool: sqlx::PgPool, barrier: std::sync::Arc<tokio::sync::Barrier>| {
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            barrier.wait().await;
            tickets::sweep(&mut conn, now).await.unwrap()
        })
    };
    let a = run(sweepers.clone(), barrier.clone());
    let b = run(sweepers.clone(), barrier.clone());
    let (a, b) = (a.await?, b.await?);
    assert_eq!(a.first_response_breaches + b.first_response_breaches, 260);
    assert_eq!(a.resolution_breaches + b.resolution_breaches, 0);
    let (events, distinct, flagged): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT ticket_id), \
                (SELECT count(*) FROM support_tickets WHERE first_response_breached) \
           FROM sla_breach_events WHERE target = 'first_response'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((events, distinct, flagged), (260, 260, 260));
    // Later passes find nothing new until the resolution deadlines pass.
    let mut conn = pool.acquire().await?;
    assert_eq!(tickets::sweep(&mut conn, now).await?.total(), 0);
    let later = tickets::sweep(&mut conn, t0 + Duration::hours(5)).await?;
    assert_eq!(
        (later.first_response_breaches, later.resolution_breaches),
        (0, 280)
    );
    assert_eq!(
        tickets::sweep(&mut conn, t0 + Duration::hours(6))
            .await?
            .total(),
        0
    );
    let c = both(&mut conn, uuid_of_any_breached(&pool).await, now).await?;
    assert_eq!(c.sla_state.0, SlaState::Breached);
    Ok(())
}

async fn uuid_of_any_breached(pool: &PgPool) -> uuid::Uuid {
    sqlx::query_scalar("SELECT ticket_id FROM sla_breach_events LIMIT 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Business hours (Africa/Algiers, Sunday to Thursday, 08:00-17:00): a ticket opened on
/// Thursday at 16:00 with a 4-hour target is due on Sunday at 11:00.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn business_hours_calendar(pool: PgPool) -> TestResult {
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let (user, conv) = end_user(&pool, "u@example.dz").await;
    let mut conn = pool.acquire().await?;
    let default = sla::calendar(&mut conn).await?;
    assert!(!default.business_hours, "around the clock by default");
    assert_eq!(default.working_days, [0, 1, 2, 3, 4]);
    assert_eq!(default.timezone, "Africa/Algiers");
    let on = Calendar {
        business_hours: true,
        ..default.clone()
    };
    assert!(
        sla::set_calendar(&mut conn, Some(&agent), &on)
            .await
            .is_err()
    );
    let bad = Calendar {
        workday_start: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
        ..on.clone()
    };
    assert!(
        sla::set_calendar(&mut conn, Some(&admin), &bad)
            .await
            .is_err()
    );
    let bad_zone = Calendar {
        timezone: "Mars/Olympus".into(),
        ..on.clone()
    };
    assert!(
        sla::set_calendar(&mut conn, Some(&admin), &bad_zone)
            .await
            .is_err()
    );
    sla::set_calendar(&mut conn, Some(&admin), &on).await?;

    // 2026-03-12 is a Thursday; 16:00 in Algiers is 15:00 UTC.
    let thursday_4pm = ts("2026-03-12T15:00:00Z");
    let t = ticket_at(&mut conn, user, Some(conv), "urgent", thursday_4pm).await;
    assert_eq!(
        t.sla.first_response_due_at,
        Some(ts("2026-03-12T15:15:00Z"))
    );
    assert_eq!(
        t.sla.resolution_due_at,
        Some(ts("2026-03-15T10:00:00Z")),
        "Sunday 11:00 Algiers"
    );
    assert_eq!(t.sla.resolution_target_seconds, Some(4 * 3600));
    // Over the weekend the clock does not move.
    let friday = ts("2026-03-13T12:00:00Z");
    let c = both(&mut conn, t.id, friday).await?;
    assert_eq!(c.resolution_remaining_seconds, Some(3 * 3600));
    assert_eq!(
        sla::working_seconds(&mut conn, thursday_4pm, ts("2026-03-15T10:00:00Z")).await?,
        4.0 * 3600.0
    );
    // Opened on Friday: the clock starts on Sunday at 08:00.
    let t2 = ticket_at(&mut conn, user, Some(conv), "urgent", friday).await;
    assert_eq!(
        t2.sla.first_response_due_at,
        Some(ts("2026-03-15T07:15:00Z"))
    );
    // A holiday on that Sunday moves the deadline to Monday.
    sla::add_holiday(
        &mut conn,
        Some(&admin),
        NaiveDate::from_ymd_opt(2026, 3, 15).unwrap(),
        "Test",
    )
    .await?;
    assert_eq!(
        sla::add_working_seconds(&mut conn, thursday_4pm, 4.0 * 3600.0).await?,
        ts("2026-03-16T10:00:00Z")
    );
    // A pause counts working time only: pending from Thursday 16:30 to Sunday 09:00 (holiday
    // removed) is 30 min Thursday + 1 h Sunday = 5400 working seconds.
    sqlx::query("DELETE FROM sla_holidays")
        .execute(&pool)
        .await?;
    tickets::take(&mut conn, &agent, &t.ticket_number, thursday_4pm).await?;
    tickets::set_status(
        &mut conn,
        &agent,
        &t.ticket_number,
        TicketStatus::Pending,
        None,
        ts("2026-03-12T15:30:00Z"),
    )
    .await?;
    tickets::resume_pending(&mut conn, conv, ts("2026-03-15T08:00:00Z")).await?;
    let (paused, deadline): (i32, DateTime<Utc>) = sqlx::query_as(
        "SELECT sla_paused_seconds, resolution_deadline_at FROM support_tickets WHERE id = $1",
    )
    .bind(t.id)
    .fetch_one(&pool)
    .await?;
    assert_eq!(paused, 5400);
    assert_eq!(deadline, ts("2026-03-15T11:30:00Z"), "Sunday 12:30 Algiers");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn holidays_and_hours_are_edited_by_admins_and_counted_by_the_clocks(
    pool: PgPool,
) -> TestResult {
    let mut conn = pool.acquire().await?;
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    // Typed forms, with errors that name the problem.
    assert_eq!(sla::parse_working_days("sun-thu")?, vec![0, 1, 2, 3, 4]);
    assert_eq!(sla::parse_working_days("fri-sun")?, vec![0, 5, 6]);
    assert_eq!(sla::parse_working_days("mon, 3,Friday")?, vec![1, 3, 5]);
    assert_eq!(
        sla::working_days_text(&[0, 1, 2, 3, 4]),
        "sun,mon,tue,wed,thu"
    );
    let e = sla::parse_working_days("sun-funday")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`funday` is not a day"), "{e}");
    assert!(sla::parse_working_days(" , ").is_err());
    let (start, end) = sla::parse_hours("08:30-17:00")?;
    assert_eq!(
        (start.to_string(), end.to_string()),
        ("08:30:00".into(), "17:00:00".into())
    );
    let e = sla::parse_hours("17:00-08:00").unwrap_err().to_string();
    assert!(
        e.contains("08:00-17:00") && e.contains("17:00-08:00"),
        "{e}"
    );
    assert!(sla::parse_hours("8h-5pm").is_err());

    // Business hours on (Algiers, Sunday to Thursday 08:00-17:00) by an admin; agents refused.
    let mut cal = sla::calendar(&mut conn).await?;
    cal.business_hours = true;
    let refused = sla::set_calendar(&mut conn, Some(&agent), &cal).await;
    assert!(
        matches!(refused, Err(sla::SlaError::Staff(_))),
        "{refused:?}"
    );
    let bad_zone = Calendar {
        timezone: "Mars/Olympus".into(),
        ..cal.clone()
    };
    let e = sla::set_calendar(&mut conn, Some(&admin), &bad_zone)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown time zone Mars/Olympus"), "{e}");
    sla::set_calendar(&mut conn, Some(&admin), &cal).await?;
    let audited: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_logs WHERE action = 'sla.calendar' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(audited["before"]["business_hours"], false);
    assert_eq!(audited["after"]["business_hours"], true);

    // Thursday 16:00 Algiers + 4 working hours: Sunday 11:00; with Sunday a holiday, Monday.
    let thursday_4pm = ts("2026-03-12T15:00:00Z");
    let sunday = NaiveDate::from_ymd_opt(2026, 3, 15).unwrap();
    assert_eq!(
        sla::add_working_seconds(&mut conn, thursday_4pm, 4.0 * 3600.0).await?,
        ts("2026-03-15T10:00:00Z")
    );
    let e = sla::add_holiday(&mut conn, Some(&admin), sunday, "  ")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a holiday needs a name"), "{e}");
    assert!(
        sla::add_holiday(&mut conn, Some(&agent), sunday, "Test")
            .await
            .is_err()
    );
    sla::add_holiday(&mut conn, Some(&admin), sunday, "Spring day").await?;
    assert_eq!(
        sla::holidays(&mut conn).await?,
        vec![sla::Holiday {
            day: sunday,
            name: "Spring day".into()
        }]
    );
    assert_eq!(
        sla::add_working_seconds(&mut conn, thursday_4pm, 4.0 * 3600.0).await?,
        ts("2026-03-16T10:00:00Z")
    );
    // Removing it gives Sunday back; removing it twice names the day.
    assert!(
        sla::remove_holiday(&mut conn, Some(&agent), sunday)
            .await
            .is_err()
    );
    let removed = sla::remove_holiday(&mut conn, Some(&admin), sunday).await?;
    assert_eq!(removed.name, "Spring day");
    assert_eq!(
        sla::add_working_seconds(&mut conn, thursday_4pm, 4.0 * 3600.0).await?,
        ts("2026-03-15T10:00:00Z")
    );
    let e = sla::remove_holiday(&mut conn, Some(&admin), sunday)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("2026-03-15 is not a holiday"), "{e}");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE action LIKE 'sla.holiday%' AND user_id = $1 \
         ORDER BY created_at",
    )
    .bind(admin.id)
    .fetch_all(&pool)
    .await?;
    assert_eq!(actions, vec!["sla.holiday_add", "sla.holiday_remove"]);
    Ok(())
}
