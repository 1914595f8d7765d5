//! What the console's shift tools need from the engine (issue 18): canned replies, bulk
//! assign and close, who is viewing a ticket, the audit trail's filters and targets, and a
//! knowledge document's text for review.

use chrono::Duration;
use sqlx::PgPool;

use amal_engine::audit::AuditFilter;
use amal_engine::canned::{self, CannedChange, CannedError};
use amal_engine::knowledge::store;
use amal_engine::lang::Lang;
use amal_engine::staff::{self, StaffError};
use amal_engine::tickets::{self, TicketError, Triage};

use super::fixtures::{
    TestResult, consenting_user, end_user, ingest, now_us, numbers, staff_account, ticket_at, write,
};

async fn audit_count(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference", "canned"))
)]
async fn canned_replies_are_written_by_supervisors_read_by_all_and_audited(
    pool: PgPool,
) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.test", "agent").await;
    let sup = staff_account(&pool, "sup@amal.test", "supervisor").await;
    let mut conn = pool.acquire().await?;

    // The starter replies: three a language, each with the crisis line's placeholder once.
    let all = canned::list(&mut conn, None).await?;
    assert_eq!(all.len(), 9);
    for lang in Lang::ALL {
        let of = canned::list(&mut conn, Some(lang)).await?;
        assert_eq!(of.len(), 3, "{lang:?}");
        assert!(of.iter().all(|r| r.lang == lang));
        assert!(of.iter().any(|r| r.body.contains(canned::CRISIS_LINE)));
    }

    // Agents read only.
    let refused = canned::add(&mut conn, &agent, Lang::En, "Mine", "Hi {{name}}").await;
    assert!(matches!(
        refused,
        Err(CannedError::Staff(StaffError::Forbidden { .. }))
    ));
    assert!(matches!(
        canned::remove(&mut conn, &agent, all[0].id).await,
        Err(CannedError::Staff(StaffError::Forbidden { .. }))
    ));

    let added = canned::add(
        &mut conn,
        &sup,
        Lang::En,
        "Breathing",
        "Hello {{name}}, breathe in.",
    )
    .await?;
    assert_eq!(added.updated_by.as_deref(), Some("sup@amal.test"));
    // One title per language; a bad placeholder is refused by name.
    assert!(matches!(
        canned::add(&mut conn, &sup, Lang::En, "Breathing", "again").await,
        Err(CannedError::Duplicate { .. })
    ));
    let bad = canned::add(&mut conn, &sup, Lang::En, "Bad", "Hi {{person}}").await;
    assert!(bad.unwrap_err().to_string().contains("{{person}}"));

    let edited = canned::edit(
        &mut conn,
        &sup,
        added.id,
        &CannedChange {
            lang: Some(Lang::Fr),
            title: Some("Respiration".into()),
            body: Some("Bonjour {{name}}, respirez.".into()),
        },
    )
    .await?;
    assert_eq!(
        (edited.lang, edited.title.as_str()),
        (Lang::Fr, "Respiration")
    );
    canned::remove(&mut conn, &sup, added.id).await?;
    assert!(matches!(
        canned::get(&mut conn, added.id).await,
        Err(CannedError::NotFound(_))
    ));
    assert_eq!(audit_count(&pool, "canned.add").await, 1);
    assert_eq!(audit_count(&pool, "canned.edit").await, 1);
    assert_eq!(audit_count(&pool, "canned.remove").await, 1);

    // Filled for a ticket: the person's name, else the neutral form; the configured line.
    let named = consenting_user(&pool, "samir@amal.test", "ar-DZ").await;
    let (anonymous, _) = end_user(&pool, "anon@amal.test").await;
    sqlx::query("UPDATE users SET name = '' WHERE id = $1")
        .bind(anonymous)
        .execute(&pool)
        .await?;
    let t1 = ticket_at(&mut conn, named, None, "medium", now_us()).await;
    let t2 = ticket_at(&mut conn, anonymous, None, "medium", now_us()).await;
    let crisis = canned::list(&mut conn, Some(Lang::En))
        .await?
        .into_iter()
        .find(|r| r.title == "Crisis line")
        .unwrap();
    let text = canned::fill_for_ticket(&mut conn, crisis.id, &t1.ticket_number, &numbers()).await?;
    assert!(text.starts_with("Hello Test, "), "{text}");
    assert!(text.contains("3033") && !text.contains("{{"), "{text}");
    let text = canned::fill_for_ticket(&mut conn, crisis.id, &t2.ticket_number, &numbers()).await?;
    assert!(text.starts_with("Hello there, "), "{text}");
    assert!(matches!(
        canned::fill_for_ticket(&mut conn, crisis.id, "TKT-2026-999999", &numbers()).await,
        Err(CannedError::NoTicket(_))
    ));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn bulk_changes_go_ticket_by_ticket_and_crisis_tickets_need_a_confirmation(
    pool: PgPool,
) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.test", "agent").await;
    let sup = staff_account(&pool, "sup@amal.test", "supervisor").await;
    let (user, _) = end_user(&pool, "p@amal.test").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let a = ticket_at(&mut conn, user, None, "medium", now).await;
    let b = ticket_at(&mut conn, user, None, "high", now).await;
    let c = ticket_at(&mut conn, user, None, "low", now).await;
    tickets::set_status(
        &mut conn,
        &sup,
        &c.ticket_number,
        tickets::TicketStatus::Closed,
        None,
        now,
    )
    .await?;
    let numbers = vec![
        a.ticket_number.clone(),
        b.ticket_number.clone(),
        c.ticket_number.clone(),
    ];

    // Agents do not assign; an unknown assignee refuses the whole.
    assert!(
        tickets::bulk_assign(&mut conn, &agent, &numbers, "agent@amal.test", now)
            .await
            .is_err()
    );
    assert!(
        tickets::bulk_assign(&mut conn, &sup, &numbers, "nobody@amal.test", now)
            .await
            .is_err()
    );

    // One refused ticket (closed) does not undo the others: each is its own transaction.
    let outcomes = tickets::bulk_assign(&mut conn, &sup, &numbers, "agent@amal.test", now).await?;
    let summary = tickets::BulkSummary::of(&outcomes);
    assert_eq!(summary.done, 2);
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].0, c.ticket_number);
    assert_eq!(audit_count(&pool, "ticket.assign").await, 2);
    for n in [&a.ticket_number, &b.ticket_number] {
        let t = tickets::find(&mut conn, n, now).await?;
        assert_eq!(t.assigned_to.as_deref(), Some("agent@amal.test"));
    }

    // A crisis ticket is not closed in bulk without the confirmation; the others are.
    tickets::triage(
        &mut conn,
        &sup,
        &b.ticket_number,
        &Triage {
            category: Some("crisis".into()),
            ..Default::default()
        },
        "misfiled",
        now,
    )
    .await?;
    let two = vec![a.ticket_number.clone(), b.ticket_number.clone()];
    let outcomes = tickets::bulk_close(&mut conn, &agent, &two, false, now).await;
    assert!(outcomes[0].result.is_ok());
    assert!(matches!(
        outcomes[1].result,
        Err(TicketError::CrisisNotConfirmed(_))
    ));
    assert_eq!(
        tickets::find(&mut conn, &b.ticket_number, now)
            .await?
            .status,
        "in_progress"
    );
    let outcomes = tickets::bulk_close(&mut conn, &agent, &two[1..], true, now).await;
    assert_eq!(outcomes[0].result.as_ref().unwrap().status, "closed");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn viewing_marks_show_the_others_and_expire_without_a_heartbeat(pool: PgPool) -> TestResult {
    let nadia = staff_account(&pool, "nadia@amal.test", "agent").await;
    let karim = staff_account(&pool, "karim@amal.test", "supervisor").await;
    let (user, _) = end_user(&pool, "p@amal.test").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = ticket_at(&mut conn, user, None, "medium", now).await;
    let n = &t.ticket_number;

    assert!(
        tickets::viewing(&mut conn, &nadia, n, now)
            .await?
            .is_empty()
    );
    let seen = tickets::viewing(&mut conn, &karim, n, now + Duration::seconds(5)).await?;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].email, "nadia@amal.test");
    // Nadia's heartbeat stops: 30 s later she is no longer shown, and her mark is gone.
    let later = now + tickets::VIEWING_EXPIRY + Duration::seconds(1);
    assert!(
        tickets::viewing(&mut conn, &karim, n, later)
            .await?
            .is_empty()
    );
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_viewers")
        .fetch_one(&pool)
        .await?;
    assert_eq!(marks, 1);
    // Leaving removes the mark at once.
    tickets::viewing(&mut conn, &nadia, n, later).await?;
    tickets::stop_viewing(&mut conn, &karim, n).await?;
    assert!(
        tickets::viewing(&mut conn, &nadia, n, later)
            .await?
            .is_empty()
    );
    assert!(matches!(
        tickets::viewing(&mut conn, &nadia, "TKT-2026-999999", later).await,
        Err(TicketError::NotFound(_))
    ));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn the_audit_trail_filters_by_actor_and_time_and_names_what_was_read(
    pool: PgPool,
) -> TestResult {
    let agent = staff_account(&pool, "agent@amal.test", "agent").await;
    let sup = staff_account(&pool, "sup@amal.test", "supervisor").await;
    let (user, _) = end_user(&pool, "p@amal.test").await;
    let mut conn = pool.acquire().await?;
    let now = now_us();
    let t = ticket_at(&mut conn, user, None, "medium", now).await;
    let mut reader = amal_engine::conversations::StaffReader::new(Some(agent.clone()));
    tickets::open(&mut conn, &mut reader, &t.ticket_number, now, 10).await?;
    tickets::take(&mut conn, &agent, &t.ticket_number, now).await?;

    // Agents may not read it.
    assert!(matches!(
        staff::audit_trail(
            &mut conn,
            &agent,
            &AuditFilter {
                limit: 10,
                ..Default::default()
            }
        )
        .await,
        Err(StaffError::Forbidden { .. })
    ));
    let by = |actor: &str| AuditFilter {
        actor: Some(actor.into()),
        limit: 50,
        ..Default::default()
    };
    let rows = staff::audit_trail(&mut conn, &sup, &by("AGENT@")).await?;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let read = rows.iter().find(|r| r.action == "ticket.read").unwrap();
    assert_eq!(
        read.target.as_deref(),
        Some(format!("ticket {}", t.ticket_number).as_str())
    );
    assert!(
        staff::audit_trail(&mut conn, &sup, &by("sup@"))
            .await?
            .is_empty()
    );
    let window = |since, until| AuditFilter {
        since: Some(since),
        until: Some(until),
        actor: Some("agent".into()),
        limit: 50,
        ..Default::default()
    };
    let hour = Duration::hours(1);
    assert_eq!(
        staff::audit_trail(&mut conn, &sup, &window(now - hour, now + hour))
            .await?
            .len(),
        2
    );
    assert!(
        staff::audit_trail(&mut conn, &sup, &window(now + hour, now + hour * 2))
            .await?
            .is_empty()
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_document_s_text_is_read_for_review(pool: PgPool) -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = write(
        dir.path(),
        "en/sleep.md",
        "---\nlang: en\ncategory: mental_health\n---\n# Sleep\n\nKeep a regular bedtime.\n",
    );
    ingest(&pool, &[path], false).await;
    let mut conn = pool.acquire().await?;
    let docs = store::list_documents(&mut conn, None).await?;
    let doc = docs.first().expect("one document");
    let text = store::document_text(&mut conn, doc.id).await?;
    assert_eq!(text.review_status, "pending");
    assert!(
        text.content.contains("Keep a regular bedtime."),
        "{}",
        text.content
    );
    assert!(
        store::document_text(&mut conn, uuid::Uuid::nil())
            .await
            .is_err()
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference", "canned"))
)]
async fn the_canned_command_lists_for_all_and_writes_for_supervisors(pool: PgPool) -> TestResult {
    staff_account(&pool, "agent@amal.example", "agent").await;
    staff_account(&pool, "sup@amal.example", "supervisor").await;
    let url = crate::fixtures::own_database_url(&pool);
    let dir = tempfile::tempdir()?;
    let engine = |args: &[&str]| {
        crate::fixtures::engine_command(dir.path(), args)
            .env("DATABASE_URL", &url)
            .output()
            .expect("run amal-engine")
    };
    let add = |who: &'static str| {
        vec![
            "canned",
            "add",
            "--lang",
            "fr",
            "--title",
            "Respiration",
            "Bonjour",
            "{{name}},",
            "respirez.",
            "--as",
            who,
        ]
    };
    let refused = engine(&add("agent@amal.example"));
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("writing canned replies needs supervisor"),
        "{err}"
    );
    let done = engine(&add("sup@amal.example"));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let list = engine(&[
        "canned",
        "list",
        "--lang",
        "fr",
        "--json",
        "--as",
        "agent@amal.example",
    ]);
    assert!(list.status.success());
    let replies: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout)?;
    assert_eq!(replies.len(), 4);
    let mine = replies
        .iter()
        .find(|r| r["title"] == "Respiration")
        .expect("the added reply");
    assert_eq!(mine["body"], "Bonjour {{name}}, respirez.");
    let id = mine["id"].as_str().unwrap().to_string();

    let edit = engine(&[
        "canned",
        "edit",
        &id,
        "--text",
        "Bonjour {{name}}, on respire.",
        "--as",
        "sup@amal.example",
    ]);
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    let bad = engine(&[
        "canned",
        "edit",
        &id,
        "--text",
        "Bonjour {{prenom}}",
        "--as",
        "sup@amal.example",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("{{prenom}}"));
    let remove = engine(&["canned", "remove", &id, "--as", "sup@amal.example"]);
    assert!(remove.status.success());
    assert_eq!(audit_count(&pool, "canned.remove").await, 1);
    Ok(())
}
