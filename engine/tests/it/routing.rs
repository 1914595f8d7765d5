//! Who is on shift, on real PostgreSQL: staff profiles, presence with heartbeat expiry and
//! history, routing (language, tier, capacity, least loaded, races), offers, on-call alerts,
//! the truthful safety and hand-over messages, statistics, and the CLI contracts.

use chrono::{Datelike, Duration, NaiveTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use amal_engine::config::{RoutingMode, RoutingSettings};
use amal_engine::conversations::MessageContent;
use amal_engine::decision::auto::DecisionEngine;
use amal_engine::decision::crisis::{safety_message, unstaffed_safety_message};
use amal_engine::lang::Lang;
use amal_engine::presence::{
    self, Presence, PresenceCause, PresenceError, ProfileChange, parse_languages,
};
use amal_engine::routing::{self, OfferAnswer, RoutingError};
use amal_engine::sla::{self, Calendar};
use amal_engine::staff::Actor;
use amal_engine::tickets::Tier;
use amal_engine::turn::{self, Turn};
use amal_engine::{roster, stats};

use crate::fixtures::{
    TestResult, another_pool, engine, new_conversation, now_us, numbers, staff_account,
};

fn settings(mode: RoutingMode) -> RoutingSettings {
    RoutingSettings {
        mode,
        ..RoutingSettings::default()
    }
}

fn routed_engine(mode: RoutingMode) -> DecisionEngine {
    let mut e = engine();
    e.routing = settings(mode);
    e
}

/// A staff member with a profile, online now.
async fn on_shift(pool: &PgPool, email: &str, langs: &str, tier: Tier, capacity: i32) -> Actor {
    let member = staff_account(pool, email, "agent").await;
    set_profile(pool, email, langs, tier, capacity).await;
    let mut conn = pool.acquire().await.unwrap();
    roster::set_presence(
        &mut conn,
        Some(&member),
        email,
        Presence::Online,
        PresenceCause::Console,
        &RoutingSettings::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    member
}

async fn admin(pool: &PgPool) -> Actor {
    let mut conn = pool.acquire().await.unwrap();
    match amal_engine::staff::actor_by_email(&mut conn, "boss@amal.example").await {
        Ok(a) => a,
        Err(_) => staff_account(pool, "boss@amal.example", "admin").await,
    }
}

async fn set_profile(pool: &PgPool, email: &str, langs: &str, tier: Tier, capacity: i32) {
    let by = admin(pool).await;
    let mut conn = pool.acquire().await.unwrap();
    presence::set_profile(
        &mut conn,
        &by,
        email,
        &ProfileChange {
            languages: Some(parse_languages(langs).unwrap()),
            tier: Some(tier),
            capacity: Some(capacity),
            on_call: None,
        },
    )
    .await
    .unwrap();
}

async fn post(pool: &PgPool, engine: &DecisionEngine, conv: Uuid, text: &str) -> Turn {
    turn::post_message(
        pool,
        engine,
        conv,
        None,
        &MessageContent::parse(text).unwrap(),
    )
    .await
    .unwrap()
}

async fn holder(pool: &PgPool, ticket: Uuid) -> Option<String> {
    sqlx::query_scalar(
        "SELECT u.email::text FROM support_tickets t LEFT JOIN users u ON u.id = t.assigned_to \
          WHERE t.id = $1",
    )
    .bind(ticket)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn profiles_are_set_by_admins_only_audited_with_clear_errors(pool: PgPool) -> TestResult {
    let boss = admin(&pool).await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let mut conn = pool.acquire().await?;
    // Defaults before any profile: the locale's language, T1, capacity 5.
    let p = presence::profile(&mut conn, agent.id).await?;
    assert_eq!(
        (p.languages, p.tier, p.capacity, p.on_call),
        (vec![Lang::Ar], Tier::T1, 5, false)
    );

    let change = ProfileChange {
        languages: Some(parse_languages("fr, darija,fr")?),
        tier: Some(Tier::T2),
        capacity: Some(3),
        on_call: Some(true),
    };
    let p = presence::set_profile(&mut conn, &boss, "agent@amal.example", &change).await?;
    assert_eq!(p.languages, vec![Lang::Fr, Lang::Ar]);
    assert_eq!((p.tier, p.capacity, p.on_call), (Tier::T2, 3, true));
    let audited: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_logs WHERE action = 'staff.profile' AND user_id = $1",
    )
    .bind(boss.id)
    .fetch_one(&mut *conn)
    .await?;
    assert_eq!(audited["before"]["tier"], "T1");
    assert_eq!(audited["after"]["tier"], "T2");

    // Only admins.
    let err = presence::set_profile(&mut conn, &agent, "agent@amal.example", &change)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs admin"), "{err}");
    // Bad values name the problem.
    let bad = ProfileChange {
        capacity: Some(101),
        ..ProfileChange::default()
    };
    let err = presence::set_profile(&mut conn, &boss, "agent@amal.example", &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, PresenceError::Invalid(_)) && err.to_string().contains("capacity"));
    assert!(
        parse_languages("ar,de")
            .unwrap_err()
            .to_string()
            .contains("`de`")
    );
    assert!(parse_languages(" , ").is_err());
    assert!(
        presence::parse_tier("T4")
            .unwrap_err()
            .to_string()
            .contains("T1, T2, T3 or manager")
    );
    assert!(presence::parse_on_call("yes").is_err());
    assert!("busy".parse::<Presence>().is_err());
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn presence_keeps_history_expires_without_heartbeat_and_hands_back_unanswered_tickets(
    pool: PgPool,
) -> TestResult {
    let s = RoutingSettings {
        mode: RoutingMode::Assign,
        presence_timeout_seconds: 60,
        ..RoutingSettings::default()
    };
    let member = staff_account(&pool, "night@amal.example", "agent").await;
    let other = staff_account(&pool, "other@amal.example", "agent").await;
    let mut conn = pool.acquire().await?;
    let t0 = now_us() - Duration::minutes(30);
    let up = roster::set_presence(
        &mut conn,
        Some(&member),
        "night@amal.example",
        Presence::Online,
        PresenceCause::Console,
        &s,
        t0,
    )
    .await?;
    assert_eq!(
        up.change.map(|c| (c.from, c.to)),
        Some((Presence::Offline, Presence::Online))
    );
    // Someone else may not set it; the same status again is no change.
    let err = roster::set_presence(
        &mut conn,
        Some(&other),
        "night@amal.example",
        Presence::Away,
        PresenceCause::SelfSet,
        &s,
        t0,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs admin"), "{err}");

    // Two tickets given to them by routing, one of which they answered.
    let mut e = routed_engine(RoutingMode::Assign);
    e.routing = s;
    // Routing at real time needs a fresh heartbeat: beat now (within an hour of t0).
    assert_eq!(
        presence::heartbeat(&mut conn, member.id, 3600, Utc::now()).await?,
        Presence::Online
    );
    let c1 = new_conversation(&pool, "p1@example.dz").await;
    let c2 = new_conversation(&pool, "p2@example.dz").await;
    let t1 = post(&pool, &e, c1, "bghit nahder m3a chi wa7ed")
        .await
        .ticket
        .unwrap();
    let t2 = post(&pool, &e, c2, "bghit nahder m3a chi wa7ed")
        .await
        .ticket
        .unwrap();
    assert_eq!(
        holder(&pool, t1.id).await.as_deref(),
        Some("night@amal.example")
    );
    assert_eq!(
        holder(&pool, t2.id).await.as_deref(),
        Some("night@amal.example")
    );
    amal_engine::tickets::comment(
        &mut conn,
        &member,
        &t2.ticket_number,
        &amal_engine::tickets::CommentText::new("Bonjour, je suis là.")?,
        amal_engine::tickets::Visibility::Public,
        Utc::now(),
    )
    .await?;

    // The heartbeat stops: past the timeout they count as offline before anyone records it...
    let last_beat = Utc::now();
    let later = last_beat + Duration::seconds(61);
    assert!(!routing::coverage(&mut conn, Lang::Ar, Tier::T1, &s, later).await?);
    let board = presence::board(&mut conn, 60, later).await?;
    let night = board
        .iter()
        .find(|m| m.profile.email == "night@amal.example")
        .unwrap();
    assert_eq!(night.presence, Presence::Offline);
    assert_eq!(
        presence::heartbeat(&mut conn, member.id, 60, later).await?,
        Presence::Offline
    );
    // ...and the sweeper records it, handing back only the unanswered ticket.
    let expired = roster::expire_presences(&mut conn, &s, later).await?;
    assert_eq!(expired, vec!["night@amal.example".to_string()]);
    assert_eq!(holder(&pool, t1.id).await, None);
    assert_eq!(
        holder(&pool, t2.id).await.as_deref(),
        Some("night@amal.example")
    );
    assert!(
        roster::expire_presences(&mut conn, &s, later)
            .await?
            .is_empty()
    );
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_logs WHERE action = 'staff.presence' AND resource_id = $1 \
          ORDER BY created_at DESC LIMIT 1",
    )
    .bind(member.id)
    .fetch_one(&mut *conn)
    .await?;
    assert_eq!(details["cause"], "heartbeat_expired");
    assert_eq!(
        details["tickets_released"],
        serde_json::json!([t1.ticket_number])
    );

    // History: online from t0 until the last heartbeat, then offline.
    type Period = (
        String,
        chrono::DateTime<Utc>,
        Option<chrono::DateTime<Utc>>,
        String,
    );
    let history: Vec<Period> = sqlx::query_as(
        "SELECT status, started_at, ended_at, cause FROM staff_presence_history \
              WHERE user_id = $1 ORDER BY id",
    )
    .bind(member.id)
    .fetch_all(&mut *conn)
    .await?;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!((history[0].0.as_str(), history[0].1), ("online", t0));
    let ended = history[0].2.unwrap();
    assert!(
        (ended - last_beat).num_seconds().abs() <= 5,
        "{ended} vs {last_beat}"
    );
    assert_eq!(
        (history[1].0.as_str(), history[1].3.as_str()),
        ("offline", "heartbeat_expired")
    );

    // Staffed hours come from that history: about half an hour of Arabic.
    let st = stats::collect(&mut conn, later, 7).await?;
    let ar = st
        .routing
        .staffed_hours
        .iter()
        .find(|h| h.language == "ar")
        .unwrap();
    assert!((ar.hours - 0.5).abs() < 0.05, "{ar:?}");
    assert_eq!(st.routing.tickets_routed, 2);
    assert_eq!(st.routing.tickets_assigned, 2);
    assert!(st.routing.avg_seconds_to_assignment.unwrap() < 5.0);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn routing_matches_language_and_tier_least_loaded_first_and_explains_itself(
    pool: PgPool,
) -> TestResult {
    let e = routed_engine(RoutingMode::Assign);
    on_shift(&pool, "fr@amal.example", "fr", Tier::T1, 5).await;
    on_shift(&pool, "ar1@amal.example", "ar", Tier::T1, 5).await;
    on_shift(&pool, "ar2@amal.example", "ar,en", Tier::T2, 5).await;
    let away = on_shift(&pool, "away@amal.example", "ar,fr,en", Tier::T1, 5).await;
    let mut conn = pool.acquire().await?;
    roster::set_presence(
        &mut conn,
        Some(&away),
        "away@amal.example",
        Presence::Away,
        PresenceCause::Idle,
        &RoutingSettings::default(),
        Utc::now(),
    )
    .await?;

    // Darija: the Arabic speakers, least loaded first (ar1 and ar2 alternate).
    let mut holders = Vec::new();
    for i in 0..4 {
        let c = new_conversation(&pool, &format!("d{i}@example.dz")).await;
        let t = post(&pool, &e, c, "bghit nahder m3a chi wa7ed").await;
        let ticket = t.ticket.unwrap();
        assert_eq!(ticket.status, "in_progress");
        holders.push(holder(&pool, ticket.id).await.unwrap());
        assert_eq!(t.decision.evidence["staffing"]["staffed"], true);
        assert_eq!(t.decision.evidence["staffing"]["routing"], "assigned");
    }
    holders.sort();
    assert_eq!(
        holders,
        [
            "ar1@amal.example",
            "ar1@amal.example",
            "ar2@amal.example",
            "ar2@amal.example"
        ]
    );
    // French goes to the French speaker.
    let c = new_conversation(&pool, "f@example.dz").await;
    let t = post(&pool, &e, c, "je veux parler à un conseiller").await;
    let fr_ticket = t.ticket.unwrap();
    assert_eq!(
        holder(&pool, fr_ticket.id).await.as_deref(),
        Some("fr@amal.example")
    );

    // The decision's reason: everyone considered, and why not.
    let considered: serde_json::Value =
        sqlx::query_scalar("SELECT considered FROM ticket_routing WHERE ticket_id = $1")
            .bind(fr_ticket.id)
            .fetch_one(&mut *conn)
            .await?;
    let verdict = |email: &str| {
        considered
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["email"] == email)
            .map(|c| c["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(verdict("fr@amal.example").as_deref(), Some("chosen"));
    assert_eq!(verdict("ar1@amal.example").as_deref(), Some("language"));
    assert_eq!(verdict("away@amal.example").as_deref(), Some("away"));
    assert_eq!(verdict("boss@amal.example").as_deref(), Some("offline"));

    // A T2 ticket: only the T2 member may take it, whatever their load.
    let c = new_conversation(&pool, "t2@example.dz").await;
    let ticket = amal_engine::turn::escalate(
        &mut conn,
        c,
        "addiction",
        "high",
        "test",
        &Default::default(),
        Utc::now(),
    )
    .await?;
    sqlx::query("UPDATE support_tickets SET escalation_tier = 'T2' WHERE id = $1")
        .bind(ticket.id)
        .execute(&mut *conn)
        .await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let r = routing::route(
        &mut tx,
        &settings(RoutingMode::Assign),
        &routing::RouteRequest {
            ticket_id: ticket.id,
            language: Lang::Ar,
            tier: Tier::T2,
            crisis: false,
        },
        Utc::now(),
    )
    .await?;
    tx.commit().await?;
    assert_eq!(
        holder(&pool, ticket.id).await.as_deref(),
        Some("ar2@amal.example")
    );
    let ar1 = r
        .considered
        .iter()
        .find(|c| c.email == "ar1@amal.example")
        .unwrap();
    assert_eq!(ar1.verdict, routing::Verdict::Tier);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn concurrent_tickets_never_double_assign_nor_exceed_capacity(pool: PgPool) -> TestResult {
    const TICKETS: usize = 24;
    const CAPACITY: i64 = 3;
    let e = std::sync::Arc::new(routed_engine(RoutingMode::Assign));
    let a = on_shift(
        &pool,
        "a@amal.example",
        "ar,fr,en",
        Tier::T1,
        CAPACITY as i32,
    )
    .await;
    let b = on_shift(
        &pool,
        "b@amal.example",
        "ar,fr,en",
        Tier::T1,
        CAPACITY as i32,
    )
    .await;
    let wide = another_pool(&pool, PgPoolOptions::new().max_connections(16)).await?;
    let mut convs = Vec::new();
    for i in 0..TICKETS {
        convs.push(new_conversation(&pool, &format!("race{i}@example.dz")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in convs.into_iter().enumerate() {
        let (p, e) = (wide.clone(), e.clone());
        // Crises and requests for a human, mixed.
        let text = if i % 3 == 0 {
            "bghit nmout"
        } else {
            "bghit nahder m3a chi wa7ed"
        };
        tasks.spawn(async move { post(&p, &e, c, text).await });
    }
    let mut replies = Vec::new();
    while let Some(t) = tasks.join_next().await {
        replies.push(t?);
    }
    for member in [&a, &b] {
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM support_tickets WHERE assigned_to = $1")
                .bind(member.id)
                .fetch_one(&pool)
                .await?;
        assert_eq!(held, CAPACITY, "{} holds {held}", member.email);
    }
    let (decisions, tickets, assigned_rows, nobody): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT ticket_id), count(*) FILTER (WHERE outcome = 'assigned'), \
                count(*) FILTER (WHERE outcome = 'nobody') FROM ticket_routing",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((decisions, tickets), (TICKETS as i64, TICKETS as i64));
    assert_eq!(
        (assigned_rows, nobody),
        (2 * CAPACITY, TICKETS as i64 - 2 * CAPACITY)
    );
    let assigns: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'ticket.assign'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(assigns, 2 * CAPACITY);
    // Whoever found nobody was told the truth; whoever got someone was not told otherwise.
    let unstaffed = replies
        .iter()
        .filter(|t| t.decision.evidence["staffing"]["staffed"] == false)
        .count();
    assert_eq!(unstaffed as i64, TICKETS as i64 - 2 * CAPACITY);
    Ok(())
}

/// A calendar whose only working day is three days from today: the team's next opening is in
/// the future whatever the time.
async fn closed_today(pool: &PgPool) -> chrono::Weekday {
    let day = (Utc::now().weekday().num_days_from_sunday() + 3) % 7;
    let mut conn = pool.acquire().await.unwrap();
    sla::set_calendar(
        &mut conn,
        None,
        &Calendar {
            business_hours: true,
            timezone: "Africa/Algiers".into(),
            workday_start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            workday_end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            working_days: vec![day as i16],
        },
    )
    .await
    .unwrap();
    let mut d = chrono::Weekday::Sun;
    for _ in 0..day {
        d = d.succ();
    }
    d
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn with_nobody_online_the_safety_message_tells_the_truth_in_three_languages(
    pool: PgPool,
) -> TestResult {
    let opening = closed_today(&pool).await;
    let e = routed_engine(RoutingMode::Assign);
    // An on-call supervisor, offline.
    staff_account(&pool, "oncall@amal.example", "supervisor").await;
    let boss = admin(&pool).await;
    let mut conn = pool.acquire().await?;
    presence::set_profile(
        &mut conn,
        &boss,
        "oncall@amal.example",
        &ProfileChange {
            on_call: Some(true),
            ..ProfileChange::default()
        },
    )
    .await?;
    let cases = [
        ("i really wanna die tonight", Lang::En),
        ("j'ai envie de mourir", Lang::Fr),
        ("أريد أن أموت", Lang::Ar),
    ];
    let day_name = |lang: Lang| {
        let i = opening.num_days_from_sunday() as usize;
        match lang {
            Lang::En => [
                "Sunday",
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
            ][i],
            Lang::Fr => [
                "dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
            ][i],
            Lang::Ar => [
                "الأحد",
                "الإثنين",
                "الثلاثاء",
                "الأربعاء",
                "الخميس",
                "الجمعة",
                "السبت",
            ][i],
        }
    };
    for (i, (text, lang)) in cases.into_iter().enumerate() {
        let conv = new_conversation(&pool, &format!("alone{i}@example.dz")).await;
        let turn = post(&pool, &e, conv, text).await;
        assert!(turn.is_safety_reply());
        let reply = &turn.reply.content;
        assert_ne!(
            reply,
            &safety_message(lang, &numbers()),
            "{lang}: promised a human"
        );
        for promise in [
            "joining this conversation now",
            "rejoint la conversation maintenant",
            "ينضم إلى المحادثة الآن",
        ] {
            assert!(!reply.contains(promise), "{lang}: {reply}");
        }
        assert!(
            reply.contains("3033") && reply.contains("14"),
            "{lang}: {reply}"
        );
        assert!(reply.contains(day_name(lang)), "{lang}: {reply}");
        assert!(reply.contains("08:00"), "{lang}: {reply}");
        assert!(!reply.contains("{{"), "{lang}: {reply}");
        assert_eq!(turn.decision.evidence["staffing"]["staffed"], false);
        let ticket = turn.ticket.unwrap();
        let alerts: i64 =
            sqlx::query_scalar("SELECT count(*) FROM staff_alerts WHERE ticket_id = $1 AND crisis")
                .bind(ticket.id)
                .fetch_one(&mut *conn)
                .await?;
        assert_eq!(alerts, 1, "the on-call supervisor is alerted");
    }
    let oncall = amal_engine::staff::actor_by_email(&mut conn, "oncall@amal.example").await?;
    assert_eq!(routing::unseen_alerts(&mut conn, oncall.id).await?.len(), 3);
    assert_eq!(
        routing::mark_alerts_seen(&mut conn, oncall.id, Utc::now()).await?,
        3
    );

    // A request for a human: the hand-over reply does not promise either, and gives the numbers.
    let conv = new_conversation(&pool, "alone-human@example.dz").await;
    let turn = post(&pool, &e, conv, "I want to talk to someone").await;
    assert!(
        turn.reply
            .content
            .contains("Nobody from our team is online right now")
    );
    assert!(turn.reply.content.contains("3033") && turn.reply.content.contains("14"));
    assert!(turn.reply.content.contains("Your request number: TKT-"));

    // Around the clock (no business hours), the message says "as soon as someone is back".
    let mut cal = sla::calendar(&mut conn).await?;
    cal.business_hours = false;
    sla::set_calendar(&mut conn, None, &cal).await?;
    let conv = new_conversation(&pool, "alone-night@example.dz").await;
    let turn = post(&pool, &e, conv, "i really wanna die tonight").await;
    assert_eq!(
        turn.reply.content,
        unstaffed_safety_message(
            Lang::En,
            &numbers(),
            "as soon as a member of the team is back online"
        )
    );

    // With someone online who speaks the language, the promise is kept and made.
    on_shift(&pool, "en@amal.example", "en", Tier::T1, 5).await;
    let conv = new_conversation(&pool, "staffed@example.dz").await;
    let turn = post(&pool, &e, conv, "i really wanna die tonight").await;
    assert_eq!(turn.reply.content, safety_message(Lang::En, &numbers()));
    assert_eq!(
        holder(&pool, turn.ticket.unwrap().id).await.as_deref(),
        Some("en@amal.example")
    );
    // The statistics count the tickets that found nobody.
    let st = stats::collect(&mut conn, Utc::now(), 1).await?;
    assert_eq!(st.routing.tickets_found_nobody, 5);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn offers_are_accepted_declined_or_expire_to_the_next_member(pool: PgPool) -> TestResult {
    let s = settings(RoutingMode::Offer);
    let e = routed_engine(RoutingMode::Offer);
    let a = on_shift(&pool, "a@amal.example", "ar", Tier::T1, 5).await;
    let b = on_shift(&pool, "b@amal.example", "ar", Tier::T1, 5).await;
    let mut conn = pool.acquire().await?;
    let c = new_conversation(&pool, "offer@example.dz").await;
    let t = post(&pool, &e, c, "bghit nahder m3a chi wa7ed").await;
    let ticket = t.ticket.unwrap();
    assert_eq!(
        holder(&pool, ticket.id).await,
        None,
        "offered, not assigned"
    );
    assert_eq!(t.decision.evidence["staffing"]["routing"], "offered");
    let first: Uuid = sqlx::query_scalar(
        "SELECT staff_id FROM ticket_offers WHERE ticket_id = $1 AND status = 'pending'",
    )
    .bind(ticket.id)
    .fetch_one(&mut *conn)
    .await?;
    let (first_member, second_member) = if first == a.id { (&a, &b) } else { (&b, &a) };
    // Only the member it is offered to can answer.
    let err = routing::answer_offer(
        &mut conn,
        second_member,
        &ticket.ticket_number,
        OfferAnswer::Accept,
        &s,
        Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RoutingError::NoOffer { .. }), "{err}");
    // Declined: offered to the other one.
    let next = routing::answer_offer(
        &mut conn,
        first_member,
        &ticket.ticket_number,
        OfferAnswer::Decline,
        &s,
        Utc::now(),
    )
    .await?
    .unwrap();
    assert_eq!(next.chosen, Some(second_member.id));
    // They let it expire: nobody is left who has not declined or let it go.
    let later = Utc::now() + Duration::seconds(s.offer_seconds + 1);
    assert_eq!(routing::sweep_offers(&mut conn, &s, later).await?, 1);
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM ticket_offers WHERE ticket_id = $1 ORDER BY id")
            .bind(ticket.id)
            .fetch_all(&mut *conn)
            .await?;
    assert_eq!(statuses, ["declined", "expired"]);
    let last: String = sqlx::query_scalar(
        "SELECT outcome FROM ticket_routing WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(ticket.id)
    .fetch_one(&mut *conn)
    .await?;
    assert_eq!(last, "nobody");

    // A second ticket, accepted: it is theirs, and its clock was not touched.
    let c = new_conversation(&pool, "offer2@example.dz").await;
    let t = post(&pool, &e, c, "bghit nahder m3a chi wa7ed")
        .await
        .ticket
        .unwrap();
    let offered: Uuid = sqlx::query_scalar(
        "SELECT staff_id FROM ticket_offers WHERE ticket_id = $1 AND status = 'pending'",
    )
    .bind(t.id)
    .fetch_one(&mut *conn)
    .await?;
    let member = if offered == a.id { &a } else { &b };
    let due_before: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT first_response_deadline_at FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&mut *conn)
            .await?;
    assert!(
        routing::answer_offer(
            &mut conn,
            member,
            &t.ticket_number,
            OfferAnswer::Accept,
            &s,
            Utc::now()
        )
        .await?
        .is_none()
    );
    assert_eq!(holder(&pool, t.id).await, Some(member.email.clone()));
    let due_after: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT first_response_deadline_at FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&mut *conn)
            .await?;
    assert_eq!(due_before, due_after);
    let st = stats::collect(&mut conn, Utc::now(), 1).await?;
    assert_eq!(
        (st.routing.offers_declined, st.routing.offers_expired),
        (1, 1)
    );
    assert_eq!(st.routing.tickets_assigned, 1);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_member_coming_online_gets_the_waiting_tickets_crisis_first(pool: PgPool) -> TestResult {
    let s = settings(RoutingMode::Assign);
    let e = routed_engine(RoutingMode::Assign);
    // Nobody online: both wait, the crisis second.
    let c1 = new_conversation(&pool, "w1@example.dz").await;
    let plain = post(&pool, &e, c1, "bghit nahder m3a chi wa7ed")
        .await
        .ticket
        .unwrap();
    let c2 = new_conversation(&pool, "w2@example.dz").await;
    let crisis = post(&pool, &e, c2, "bghit nmout").await.ticket.unwrap();
    let member = staff_account(&pool, "late@amal.example", "agent").await;
    set_profile(&pool, "late@amal.example", "ar", Tier::T1, 1).await;
    let mut conn = pool.acquire().await?;
    let up = roster::set_presence(
        &mut conn,
        Some(&member),
        "late@amal.example",
        Presence::Online,
        PresenceCause::Console,
        &s,
        Utc::now(),
    )
    .await?;
    assert_eq!(up.tickets_routed, 1);
    // Capacity 1: the crisis is theirs, the other still waits.
    assert_eq!(
        holder(&pool, crisis.id).await.as_deref(),
        Some("late@amal.example")
    );
    assert_eq!(holder(&pool, plain.id).await, None);
    Ok(())
}

/// The CLI contracts: `staff set` (admins only, clear errors), `staff presence` (oneself or an
/// admin), and `chat` routing a hand-over to the online member when `AMAL_ROUTING=assign`.
#[test]
fn cli_contracts_staff_set_staff_presence_and_chat_routing() {
    use crate::fixtures::{engine_command, engine_output, run_engine, run_engine_with_input};
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let fails = |args: &[&str], needle: &str| {
        let out = engine_output(dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    run_engine(dir, &["seed"]);
    run_engine_with_input(
        dir,
        &[
            "staff",
            "add",
            "chief@amal.example",
            "--name",
            "Chief",
            "--role",
            "admin",
        ],
        "a-long-password-1\n",
    );
    for who in ["agent@amal.example", "other@amal.example"] {
        run_engine_with_input(
            dir,
            &["staff", "add", who, "--name", "Agent", "--role", "agent"],
            "a-long-password-2\n",
        );
    }
    let out = run_engine(
        dir,
        &[
            "staff",
            "set",
            "agent@amal.example",
            "--languages",
            "en,fr",
            "--tier",
            "T1",
            "--capacity",
            "2",
            "--on-call",
            "false",
            "--as",
            "chief@amal.example",
        ],
    );
    assert!(
        out.contains("languages en,fr, tier T1, capacity 2, on call false"),
        "{out}"
    );
    fn set<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["staff", "set", "agent@amal.example"];
        args.extend_from_slice(extra);
        args
    }
    fails(
        &set(&["--capacity", "lots", "--as", "chief@amal.example"]),
        "capacity",
    );
    fails(
        &set(&["--capacity=-1", "--as", "chief@amal.example"]),
        "capacity",
    );
    fails(
        &set(&["--tier", "T9", "--as", "chief@amal.example"]),
        "T1, T2, T3 or manager",
    );
    fails(
        &set(&["--languages", "ar,de", "--as", "chief@amal.example"]),
        "`de`",
    );
    fails(
        &set(&["--on-call", "maybe", "--as", "chief@amal.example"]),
        "true or false",
    );
    fails(&set(&["--as", "chief@amal.example"]), "nothing to set");
    fails(
        &set(&["--tier", "T2", "--as", "other@amal.example"]),
        "needs admin",
    );
    fails(&set(&["--tier", "T2"]), "--as");

    fails(
        &[
            "staff",
            "presence",
            "agent@amal.example",
            "online",
            "--as",
            "other@amal.example",
        ],
        "needs admin",
    );
    fails(
        &["staff", "presence", "agent@amal.example", "busy"],
        "online, away or offline",
    );
    let out = run_engine(
        dir,
        &[
            "staff",
            "presence",
            "agent@amal.example",
            "online",
            "--as",
            "agent@amal.example",
        ],
    );
    assert!(
        out.contains("agent@amal.example is now online (was offline)"),
        "{out}"
    );

    // A hand-over in English goes to the online English speaker.
    let mut chat = engine_command(dir, &["chat", "--as", "person@example.com", "--lang", "en"]);
    let out = chat
        .env("AMAL_ROUTING", "assign")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut child = out;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"I want to talk to someone\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("ticket TKT-"), "{stdout}");
        assert!(
            !stdout.contains("Nobody from our team is online"),
            "{stdout}"
        );
    }
    let list: serde_json::Value =
        serde_json::from_str(&run_engine(dir, &["ticket", "list", "--json"])).unwrap();
    assert_eq!(list[0]["assigned_to"], "agent@amal.example", "{list}");
    // A bad routing mode stops chat with a message naming it.
    let mut bad = engine_command(dir, &["chat", "--as", "person@example.com"]);
    let out = bad.env("AMAL_ROUTING", "round-robin").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AMAL_ROUTING"));

    // Going offline hands the unanswered ticket back.
    let out = run_engine(dir, &["staff", "presence", "agent@amal.example", "offline"]);
    assert!(out.contains("handed back to the queue: TKT-"), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&run_engine(dir, &["ticket", "list", "--json"])).unwrap();
    assert_eq!(list[0]["assigned_to"], serde_json::Value::Null, "{list}");
    let shift = run_engine(dir, &["staff", "shift", "--json"]);
    assert!(shift.contains("\"presence\": \"offline\""), "{shift}");
    run_engine(dir, &["db", "stop"]);
}

/// Puts a member on call (a profile with the defaults otherwise).
async fn on_call(pool: &PgPool, id: Uuid) {
    sqlx::query(
        "INSERT INTO staff_profiles (user_id, languages, on_call) VALUES ($1, '{fr}', true) \
         ON CONFLICT (user_id) DO UPDATE SET on_call = true",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
}

/// A ticket opened by staff or the system, with no routing of its own.
async fn unrouted_ticket(
    pool: &PgPool,
    email: &str,
    priority: &str,
) -> amal_engine::tickets::Ticket {
    let (user, conv) = crate::fixtures::end_user(pool, email).await;
    let mut conn = pool.acquire().await.unwrap();
    crate::fixtures::ticket_at(&mut conn, user, Some(conv), priority, now_us()).await
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn escalations_outside_a_turn_are_routed_at_once(pool: PgPool) -> TestResult {
    let s = settings(RoutingMode::Assign);
    let ar = on_shift(&pool, "ar@amal.example", "ar", Tier::T1, 5).await;
    let ar2 = on_shift(&pool, "ar2@amal.example", "ar", Tier::T1, 5).await;
    let fr = on_shift(&pool, "fr@amal.example", "fr", Tier::T2, 5).await;
    let boss = admin(&pool).await;
    on_call(&pool, boss.id).await;
    let mut conn = pool.acquire().await?;

    // Escalated by the system outside a turn: assigned before escalate returns.
    let c = new_conversation(&pool, "e1@example.dz").await;
    let t = turn::escalate(
        &mut conn,
        c,
        "addiction",
        "high",
        "escalated",
        &s,
        Utc::now(),
    )
    .await?;
    assert_eq!(t.assigned_to_id, Some(ar.id), "{t:?}");
    assert_eq!(t.status, "in_progress");

    // Opened by staff: waiting until routed, then the least-loaded Arabic speaker's.
    let opened = unrouted_ticket(&pool, "e2@example.dz", "medium").await;
    assert_eq!(holder(&pool, opened.id).await, None);
    let r = routing::route_now(&mut conn, &s, opened.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.chosen, Some(ar2.id));
    // Routing it again changes nothing: it is no longer waiting.
    assert!(
        routing::route_now(&mut conn, &s, opened.id, None, Utc::now())
            .await?
            .is_none()
    );

    // Released by its holder: routed at once, but not back to them.
    amal_engine::tickets::release(&mut conn, &ar2, &opened.ticket_number, Utc::now()).await?;
    let r = routing::route_now(&mut conn, &s, opened.id, Some(ar2.id), Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.chosen, Some(ar.id));
    let gave_back = r.considered.iter().find(|c| c.staff_id == ar2.id).unwrap();
    assert_eq!(gave_back.verdict, routing::Verdict::Declined);

    // Re-triaged to French by a supervisor while waiting: the French speaker's at once.
    let misfiled = unrouted_ticket(&pool, "e3@example.dz", "low").await;
    amal_engine::tickets::triage(
        &mut conn,
        &boss,
        &misfiled.ticket_number,
        &amal_engine::tickets::Triage {
            language: Some(Lang::Fr),
            ..Default::default()
        },
        "writes in French",
        Utc::now(),
    )
    .await?;
    let r = routing::route_now(&mut conn, &s, misfiled.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.chosen, Some(fr.id));

    // Escalated to T2 while waiting: no Arabic speaker at T2 is online, so nobody, and the
    // on-call admin is alerted once (a second pass adds no alert).
    let hard = unrouted_ticket(&pool, "e4@example.dz", "urgent").await;
    amal_engine::tickets::escalate(
        &mut conn,
        &boss,
        &hard.ticket_number,
        Tier::T2,
        "needs T2",
        Utc::now(),
    )
    .await?;
    let r = routing::route_now(&mut conn, &s, hard.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.outcome, routing::Outcome::Nobody);
    assert_eq!(r.alerted, 1);
    let verdicts: Vec<_> = r
        .considered
        .iter()
        .map(|c| (c.email.as_str(), c.verdict))
        .collect();
    assert!(
        verdicts.contains(&("ar@amal.example", routing::Verdict::Tier)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("fr@amal.example", routing::Verdict::Language)),
        "{verdicts:?}"
    );
    let again = routing::route_now(&mut conn, &s, hard.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(again.alerted, 0);

    // Going offline hands the unanswered ticket back, and it reaches the other member at once.
    let update = roster::set_presence(
        &mut conn,
        Some(&ar),
        "ar@amal.example",
        Presence::Offline,
        PresenceCause::SelfSet,
        &s,
        Utc::now(),
    )
    .await?;
    assert_eq!(update.tickets_released.len(), 2, "{update:?}");
    assert_eq!(update.tickets_routed, 2, "{update:?}");
    assert_eq!(
        holder(&pool, t.id).await.as_deref(),
        Some("ar2@amal.example")
    );
    assert_eq!(
        holder(&pool, opened.id).await.as_deref(),
        Some("ar2@amal.example")
    );
    Ok(())
}

/// Many waiting tickets routed at once from many connections (escalations, hand-backs and
/// the shift worker's pass at the same time), few members: nobody over capacity, no ticket
/// assigned twice, one alert per ticket.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn tickets_routed_at_once_from_many_connections_never_double_assign(
    pool: PgPool,
) -> TestResult {
    const TICKETS: usize = 24;
    const CAPACITY: i64 = 3;
    let s = settings(RoutingMode::Assign);
    let a = on_shift(&pool, "a@amal.example", "ar", Tier::T1, CAPACITY as i32).await;
    let b = on_shift(&pool, "b@amal.example", "ar", Tier::T1, CAPACITY as i32).await;
    let boss = admin(&pool).await;
    on_call(&pool, boss.id).await;
    let mut ids = Vec::new();
    for i in 0..TICKETS {
        let priority = if i % 4 == 0 { "urgent" } else { "high" };
        ids.push(
            unrouted_ticket(&pool, &format!("w{i}@example.dz"), priority)
                .await
                .id,
        );
    }
    let wide = another_pool(&pool, PgPoolOptions::new().max_connections(16)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    // Each ticket routed twice concurrently (say, an escalation and a re-triage), with the shift
    // worker's passes in between.
    for (i, id) in ids.iter().chain(ids.iter()).enumerate() {
        let (p, id) = (wide.clone(), *id);
        tasks.spawn(async move {
            let mut conn = p.acquire().await.unwrap();
            if i % 8 == 0 {
                routing::route_waiting(&mut conn, &s, Utc::now())
                    .await
                    .unwrap();
            }
            routing::route_now(&mut conn, &s, id, None, Utc::now())
                .await
                .unwrap();
        });
    }
    while let Some(t) = tasks.join_next().await {
        t?;
    }
    for member in [&a, &b] {
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM support_tickets WHERE assigned_to = $1")
                .bind(member.id)
                .fetch_one(&pool)
                .await?;
        assert_eq!(held, CAPACITY, "{} holds {held}", member.email);
    }
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT ticket_id FROM ticket_routing WHERE outcome = 'assigned' \
                                GROUP BY ticket_id HAVING count(*) > 1) x",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(twice, 0);
    let assigns: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'ticket.assign'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(assigns, 2 * CAPACITY);
    // Every ticket left waiting alerted the on-call admin exactly once, by banner and e-mail.
    let (alerts, alerted_tickets, mails): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM staff_alerts), (SELECT count(DISTINCT ticket_id) FROM staff_alerts), \
                (SELECT count(*) FROM mail_deliveries WHERE kind = 'staff_alert')",
    )
    .fetch_one(&pool)
    .await?;
    let waiting = TICKETS as i64 - 2 * CAPACITY;
    assert_eq!(
        (alerts, alerted_tickets, mails),
        (waiting, waiting, waiting)
    );
    Ok(())
}

/// The routing statistics of issue 19 with figures known in advance: staffed hours per
/// language (a stopped console counts no hours past its last heartbeat), tickets routed and
/// assigned, seconds to assignment (mean and p90), and tickets that found nobody, `off` mode
/// included.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn routing_statistics_are_exact(pool: PgPool) -> TestResult {
    let s = RoutingSettings {
        mode: RoutingMode::Assign,
        presence_timeout_seconds: 3600,
        ..RoutingSettings::default()
    };
    let off = RoutingSettings {
        mode: RoutingMode::Off,
        ..s
    };
    let t0 = now_us() - Duration::hours(4);
    let a = staff_account(&pool, "a@amal.example", "agent").await;
    set_profile(&pool, "a@amal.example", "ar,fr", Tier::T1, 5).await;
    let b = staff_account(&pool, "b@amal.example", "agent").await;
    set_profile(&pool, "b@amal.example", "en", Tier::T1, 5).await;
    let mut conn = pool.acquire().await?;
    let presence = |member: Actor, to: Presence, at| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            roster::set_presence(
                &mut conn,
                Some(&member),
                &member.email,
                to,
                PresenceCause::SelfSet,
                &s,
                at,
            )
            .await
            .unwrap()
        }
    };
    presence(a.clone(), Presence::Online, t0).await;
    // Two tickets assigned 60 s and 180 s after they were opened.
    let (u1, c1) = crate::fixtures::end_user(&pool, "s1@example.dz").await;
    let t1 = crate::fixtures::ticket_at(&mut conn, u1, Some(c1), "high", t0).await;
    routing::route_now(&mut conn, &s, t1.id, None, t0 + Duration::seconds(60)).await?;
    let (u2, c2) = crate::fixtures::end_user(&pool, "s2@example.dz").await;
    let t2 =
        crate::fixtures::ticket_at(&mut conn, u2, Some(c2), "high", t0 + Duration::seconds(60))
            .await;
    routing::route_now(&mut conn, &s, t2.id, None, t0 + Duration::seconds(240)).await?;
    assert_eq!(
        holder(&pool, t2.id).await.as_deref(),
        Some("a@amal.example")
    );
    for minutes in [50, 100] {
        let beat = presence::heartbeat(&mut conn, a.id, 3600, t0 + Duration::minutes(minutes));
        assert_eq!(beat.await?, Presence::Online);
    }
    // A's console beats until A signs out after two hours; both tickets are handed back and find nobody then, which
    // does not make them tickets that found nobody (their first decision assigned them).
    let down = presence(a.clone(), Presence::Offline, t0 + Duration::hours(2)).await;
    assert_eq!(down.tickets_released.len(), 2);
    // B comes online by the CLI and never beats again: no hours past that moment.
    presence(b.clone(), Presence::Online, t0 + Duration::hours(2)).await;
    // With routing off, a ticket finds nobody who speaks Arabic online.
    let (u3, c3) = crate::fixtures::end_user(&pool, "s3@example.dz").await;
    let later = t0 + Duration::hours(3) + Duration::seconds(1);
    let t3 = crate::fixtures::ticket_at(&mut conn, u3, Some(c3), "medium", later).await;
    let r = routing::route_now(&mut conn, &off, t3.id, None, later)
        .await?
        .unwrap();
    assert_eq!(r.outcome, routing::Outcome::Nobody);

    let st = stats::collect(&mut conn, t0 + Duration::hours(4), 1)
        .await?
        .routing;
    let hours: Vec<(String, f64)> = st
        .staffed_hours
        .iter()
        .map(|h| (h.language.clone(), (h.hours * 1000.0).round() / 1000.0))
        .collect();
    assert_eq!(
        hours,
        vec![("ar".into(), 2.0), ("en".into(), 0.0), ("fr".into(), 2.0)]
    );
    assert_eq!((st.tickets_routed, st.tickets_assigned), (2, 2));
    assert_eq!(st.avg_seconds_to_assignment, Some(120.0));
    assert_eq!(st.p90_seconds_to_assignment, Some(168.0));
    assert_eq!(st.tickets_found_nobody, 1);
    Ok(())
}
