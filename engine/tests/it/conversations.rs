//! Conversations on real PostgreSQL: the turn (message, decision, reply, ticket) in one
//! transaction for crises in every language, requests for a human, off-topic and on-topic
//! messages; idempotent retries; content rules; paging, closing, archiving and search.

use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::conversations::{self, ContentError, ConversationError, MessageContent};
use amal_engine::decision::auto::{DecisionEngine, Mode};
use amal_engine::decision::crisis::safety_message;
use amal_engine::knowledge::chunk::count_tokens;
use amal_engine::knowledge::{Retriever, SearchRequest};
use amal_engine::lang::Lang;
use amal_engine::lang::normalize;
use amal_engine::turn::{Turn, TurnError};

use crate::fixtures::{
    consenting_user, engine, ingest, kb_dir, kb_engine, new_conversation, numbers, offline,
    staff_account, write,
};

async fn post(
    pool: &PgPool,
    engine: &DecisionEngine,
    conv: Uuid,
    key: Option<&str>,
    text: &str,
) -> Turn {
    amal_engine::turn::post_message(
        pool,
        engine,
        conv,
        key,
        &MessageContent::parse(text).unwrap(),
    )
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str, conv: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(conv)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn rows(pool: &PgPool, conv: Uuid) -> (i64, i64, i64) {
    (
        count(
            pool,
            "SELECT count(*) FROM messages WHERE conversation_id = $1",
            conv,
        )
        .await,
        count(
            pool,
            "SELECT count(*) FROM decision_logs WHERE conversation_id = $1",
            conv,
        )
        .await,
        count(
            pool,
            "SELECT count(*) FROM support_tickets WHERE conversation_id = $1",
            conv,
        )
        .await,
    )
}

fn detector_lang(code: &str) -> normalize::Lang {
    code.parse().unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_crisis_in_any_language_gets_the_safety_message_and_an_urgent_ticket_in_one_transaction(
    pool: PgPool,
) {
    let engine = kb_engine(&pool).await;
    // Someone is online: the safety message's promise of a human holds.
    crate::fixtures::someone_on_shift(&pool).await;
    let cases = [
        ("i really wanna die tonight", "en"),
        ("j'ai envie de mourir", "fr"),
        ("أريد أن أموت", "ar"),
        ("bghit nmout", "ar"),
    ];
    for (i, (text, lang)) in cases.into_iter().enumerate() {
        let conv = new_conversation(&pool, &format!("crisis{i}@example.dz")).await;
        let turn = post(&pool, &engine, conv, Some("k1"), text).await;
        assert_eq!(turn.decision.decision, "support", "{text}");
        assert_eq!(
            turn.decision.reason_code.as_deref(),
            Some("crisis_suicidal_ideation"),
            "{text}"
        );
        assert_eq!(turn.decision.confidence, 1.0);
        assert_eq!(turn.decision.evidence["step"], "crisis_gate");
        assert!(
            turn.decision.evidence["rule"]
                .as_str()
                .unwrap()
                .contains("suicidal_ideation")
        );
        for r in [
            &turn.decision.reason_ar,
            &turn.decision.reason_fr,
            &turn.decision.reason_en,
        ] {
            assert!(r.as_deref().is_some_and(|r| !r.is_empty()));
        }
        let ticket = turn.ticket.as_ref().expect("ticket");
        assert_eq!(
            (ticket.category.as_str(), ticket.priority.as_str()),
            ("crisis", "urgent")
        );
        assert!(ticket.ticket_number.starts_with("TKT-"));
        // The fixed safety message in the person's language, with the configured numbers.
        assert_eq!(turn.reply.role, "assistant");
        assert_eq!(
            turn.reply.content,
            safety_message(detector_lang(lang), &numbers()),
            "{text}"
        );
        assert!(turn.reply.content.contains("3033") && turn.reply.content.contains("14"));
        assert_eq!(
            turn.reply.tokens_used,
            Some(count_tokens(&turn.reply.content) as i32)
        );
        assert!(turn.reply.processing_time_ms.is_some());

        assert_eq!(
            rows(&pool, conv).await,
            (2, 1, 1),
            "{text}: messages, decisions, tickets"
        );
        let status: String = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(status, "escalated");
        // The message, decision and reply carry one transaction id (the ticket is written in a
        // savepoint of that transaction, with a sub-transaction id; atomicity is tested below).
        let xids: Vec<String> = sqlx::query_scalar(
            "SELECT xmin::text FROM messages WHERE conversation_id = $1 \
             UNION ALL SELECT xmin::text FROM decision_logs WHERE conversation_id = $1",
        )
        .bind(conv)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(xids.len(), 3);
        assert!(xids.iter().all(|x| *x == xids[0]), "{xids:?}");
        let stored_ticket: Option<String> = sqlx::query_scalar(
            "SELECT evidence->>'ticket_id' FROM decision_logs WHERE conversation_id = $1",
        )
        .bind(conv)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(stored_ticket, Some(ticket.id.to_string()));
    }
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn the_crisis_gate_wins_over_a_perfect_knowledge_base_match(pool: PgPool) {
    let text = "I really wanna die tonight, nothing helps with my sleep anymore";
    let dir = kb_dir();
    write(
        dir.path(),
        "en/mirror.md",
        &format!("---\nlang: en\ncategory: mental_health\n---\n# Mirror\n\n{text}\n"),
    );
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    let engine = engine();
    // The knowledge base does hold the message itself, approved, found first and confidently...
    let found = Retriever::new(offline())
        .search(
            &pool,
            &SearchRequest {
                text,
                lang: Some(Lang::En),
                category: None,
                k: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.results[0].title, "Mirror");
    assert!(found.confidence >= 0.5, "{}", found.confidence);
    // ...and the gate still decides.
    crate::fixtures::someone_on_shift(&pool).await;
    let conv = new_conversation(&pool, "mirror@example.dz").await;
    let turn = post(&pool, &engine, conv, None, text).await;
    assert_eq!(turn.decision.decision, "support");
    assert_eq!(
        turn.decision.reason_code.as_deref(),
        Some("crisis_suicidal_ideation")
    );
    assert_eq!(turn.ticket.unwrap().priority, "urgent");
    assert_eq!(
        turn.reply.content,
        safety_message(normalize::Lang::En, &numbers())
    );
    assert!(turn.decision.model_used.is_none());
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn an_explicit_request_for_a_human_opens_a_ticket(pool: PgPool) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "human@example.dz").await;
    let turn = post(
        &pool,
        &engine,
        conv,
        Some("a"),
        "I want to talk to a counsellor please",
    )
    .await;
    assert_eq!(turn.decision.decision, "support");
    assert_eq!(
        turn.decision.reason_code.as_deref(),
        Some("human_requested")
    );
    let ticket = turn.ticket.unwrap();
    assert_eq!(ticket.priority, "medium");
    assert_eq!(ticket.status, "open");
    assert!(
        turn.reply.content.contains(&ticket.ticket_number),
        "{}",
        turn.reply.content
    );
    assert_eq!(rows(&pool, conv).await, (2, 1, 1));

    // A later crisis in the same conversation turns its open ticket into an urgent crisis one.
    let turn = post(
        &pool,
        &engine,
        conv,
        Some("b"),
        "i really wanna die tonight",
    )
    .await;
    let again = turn.ticket.unwrap();
    assert_eq!(again.id, ticket.id);
    assert_eq!(
        (again.category.as_str(), again.priority.as_str()),
        ("crisis", "urgent")
    );
    assert_eq!(rows(&pool, conv).await, (4, 2, 1));
    // Named after the message that raised the crisis, not the request that opened it.
    assert_eq!(
        subject_of(&pool, ticket.id).await,
        "i really wanna die tonight"
    );
}

async fn subject_of(pool: &PgPool, ticket: uuid::Uuid) -> String {
    sqlx::query_scalar("SELECT subject FROM support_tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A crisis ticket's subject is the message that raised it, not the conversation's first one.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_crisis_ticket_is_named_after_the_message_that_raised_it(pool: PgPool) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "vaping@example.dz").await;
    post(&pool, &engine, conv, None, "how to stop vaping").await;
    let turn = post(&pool, &engine, conv, None, "i really wanna die tonight").await;
    let ticket = turn.ticket.unwrap();
    assert_eq!(ticket.priority, "urgent");
    assert_eq!(
        subject_of(&pool, ticket.id).await,
        "i really wanna die tonight"
    );
}

/// Once a conversation has an open ticket, a person of the team has it: later messages join
/// the ticket without an answer from the assistant (even to a question it could answer), the
/// crisis gate still comes first, and once the ticket is closed the assistant answers again.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn an_open_ticket_keeps_the_assistant_out_of_the_conversation(pool: PgPool) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "handed@example.dz").await;
    let first = post(&pool, &engine, conv, None, "I want to talk to someone").await;
    let ticket = first.ticket.unwrap();
    let question = "How can I sleep better at night? insomnia for weeks";
    let turn = post(&pool, &engine, conv, None, question).await;
    assert_eq!(turn.decision.decision, "support");
    assert_eq!(turn.decision.reason_code.as_deref(), Some("ticket_open"));
    assert_eq!(turn.ticket.as_ref().map(|t| t.id), Some(ticket.id));
    assert!(
        turn.reply.content.contains(&ticket.ticket_number)
            && !turn.reply.content.contains("bedtime"),
        "{}",
        turn.reply.content
    );
    let tickets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM support_tickets WHERE conversation_id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tickets, 1);
    // The crisis gate still runs first: the ticket becomes a crisis one.
    let turn = post(&pool, &engine, conv, None, "i really wanna die tonight").await;
    assert!(
        turn.decision
            .reason_code
            .as_deref()
            .unwrap()
            .starts_with("crisis_")
    );
    assert_eq!(turn.ticket.unwrap().priority, "urgent");
    // Closed: the assistant answers again.
    sqlx::query("UPDATE support_tickets SET status = 'closed' WHERE id = $1")
        .bind(ticket.id)
        .execute(&pool)
        .await
        .unwrap();
    let turn = post(&pool, &engine, conv, None, question).await;
    assert_eq!(
        turn.decision.decision, "rag",
        "{:?}",
        turn.decision.reason_code
    );
}

/// A ticket waiting on the person (pending, clock stopped) is worked again when they write
/// in its conversation, whatever the turn decides: its clock runs from that message on, the
/// resumption is audited and the turn's notice names the ticket.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn writing_resumes_a_ticket_pending_on_the_person(pool: PgPool) {
    use amal_engine::tickets::{self, TicketStatus};
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "pending@example.dz").await;
    let turn = post(&pool, &engine, conv, Some("a"), "I want to talk to someone").await;
    let ticket = turn.ticket.unwrap();
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let mut conn = pool.acquire().await.unwrap();
    let now = chrono::Utc::now();
    tickets::take(&mut conn, &agent, &ticket.ticket_number, now)
        .await
        .unwrap();
    tickets::set_status(
        &mut conn,
        &agent,
        &ticket.ticket_number,
        TicketStatus::Pending,
        None,
        now,
    )
    .await
    .unwrap();

    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(amal_engine::events::CHANNEL).await.unwrap();
    // An on-topic question the assistant answers itself: the ticket resumes all the same.
    let turn = post(
        &pool,
        &engine,
        conv,
        Some("b"),
        "How can I sleep better at night?",
    )
    .await;
    let (status, paused_at, paused_seconds): (String, Option<chrono::DateTime<chrono::Utc>>, i32) =
        sqlx::query_as(
            "SELECT status, sla_paused_at, sla_paused_seconds FROM support_tickets WHERE id = $1",
        )
        .bind(ticket.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "in_progress", "decided {}", turn.decision.decision);
    assert_eq!(paused_at, None, "the clock runs again");
    assert!(paused_seconds >= 0);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'ticket.resume' AND resource_id = $1",
    )
    .bind(ticket.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    let notice = amal_engine::events::ChangeNotice::parse(notice.payload()).unwrap();
    assert_eq!(notice.ticket_id, Some(ticket.id));
    assert_eq!(notice.conversation_id, Some(conv));

    // Nothing is pending any more: the next message changes no ticket.
    post(&pool, &engine, conv, Some("c"), "Thank you").await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'ticket.resume' AND resource_id = $1",
    )
    .bind(ticket.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_message_the_knowledge_base_cannot_answer_goes_to_a_human_for_low_confidence(
    pool: PgPool,
) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "unanswered@example.dz").await;
    // Not another subject (those get a reply and no ticket): something the knowledge base has
    // no article for.
    let turn = post(
        &pool,
        &engine,
        conv,
        None,
        "My cousin's wedding plans keep going round in my head every evening",
    )
    .await;
    assert_eq!(turn.decision.decision, "support");
    assert_eq!(turn.decision.reason_code.as_deref(), Some("low_confidence"));
    assert!(turn.decision.confidence < 0.5);
    let ticket = turn.ticket.unwrap();
    assert_eq!(ticket.priority, "medium");
    assert!(
        !turn.decision.evidence["chunks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn an_on_topic_message_gets_an_extractive_answer_citing_approved_documents_only(
    pool: PgPool,
) {
    let engine = kb_engine(&pool).await;
    // A pending document on the same topic must never be cited.
    let pending = tempfile::tempdir().unwrap();
    write(
        pending.path(),
        "en/unreviewed.md",
        "---\nlang: en\ncategory: mental_health\n---\n# Unreviewed sleep tips\n\nInsomnia at night: drink a glass of wine before sleeping.\n",
    );
    ingest(&pool, &[pending.path().to_path_buf()], false).await;
    let approved: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM documents WHERE review_status = 'approved'")
            .fetch_all(&pool)
            .await
            .unwrap();

    for (text, lang, intro, title) in [
        (
            "I can't sleep at night, insomnia for weeks",
            "en",
            "Here is what our approved sources say:",
            "Sleep problems",
        ),
        (
            "Je n'arrive pas à dormir, insomnie depuis des semaines",
            "fr",
            "Voici ce que disent nos sources validées :",
            "Troubles du sommeil",
        ),
    ] {
        let conv = new_conversation(&pool, &format!("rag-{lang}@example.dz")).await;
        let turn = post(&pool, &engine, conv, Some("q"), text).await;
        assert_eq!(turn.decision.decision, "rag", "{text}: {:?}", turn.decision);
        assert_eq!(turn.decision.reason_code.as_deref(), Some("rag_confident"));
        assert!(turn.decision.confidence >= 0.5);
        assert_eq!(
            turn.decision.model_used.as_deref(),
            Some("offline-extractive")
        );
        assert!(turn.ticket.is_none());
        let reply = &turn.reply;
        assert!(reply.content.starts_with(intro), "{}", reply.content);
        assert!(reply.content.contains(title), "{}", reply.content);
        assert!(!reply.content.contains("wine"), "{}", reply.content);
        assert_eq!(reply.metadata["lang"], lang);
        let cited: Vec<String> = reply.metadata["cited_documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(!cited.is_empty());
        assert!(cited.iter().all(|c| approved.contains(c)), "{cited:?}");
        assert_eq!(
            turn.decision.evidence["cited_documents"],
            reply.metadata["cited_documents"]
        );
        let doc_langs: Vec<String> =
            sqlx::query_scalar("SELECT lang::text FROM documents WHERE id::text = ANY($1)")
                .bind(&cited)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(doc_langs.iter().all(|l| l == lang), "{doc_langs:?}");
        assert_eq!(reply.tokens_used, Some(count_tokens(&reply.content) as i32));
        assert!(reply.processing_time_ms.is_some_and(|ms| ms >= 0));
        assert_eq!(rows(&pool, conv).await, (2, 1, 0));
        let status: String = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(status, "active");
        let language: Option<String> =
            sqlx::query_scalar("SELECT lang::text FROM conversations WHERE id = $1")
                .bind(conv)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            language.as_deref(),
            Some(lang),
            "the conversation takes the detected language"
        );
    }
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_retry_with_the_same_client_message_id_returns_the_same_turn_without_duplicates(
    pool: PgPool,
) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "retry@example.dz").await;
    for (key, text, expected) in [
        (
            "m-1",
            "I can't sleep at night, insomnia for weeks",
            (2, 1, 0),
        ),
        ("m-2", "j'ai envie de mourir", (4, 2, 1)),
    ] {
        let first = post(&pool, &engine, conv, Some(key), text).await;
        assert!(!first.replayed);
        let notices_before = rows(&pool, conv).await;
        assert_eq!(notices_before, expected);
        let second = post(&pool, &engine, conv, Some(key), text).await;
        assert!(second.replayed);
        assert_eq!(second.user_message.id, first.user_message.id);
        assert_eq!(second.decision.id, first.decision.id);
        assert_eq!(second.reply.id, first.reply.id);
        assert_eq!(second.reply.content, first.reply.content);
        assert_eq!(second.ticket.map(|t| t.id), first.ticket.map(|t| t.id));
        assert_eq!(rows(&pool, conv).await, expected, "no duplicate rows");
    }
    // Concurrent retries of a new key still make one turn.
    let tobacco = MessageContent::parse("Nicotine cravings, how do I quit tobacco?").unwrap();
    let (a, b) = tokio::join!(
        amal_engine::turn::post_message(&pool, &engine, conv, Some("m-3"), &tobacco),
        amal_engine::turn::post_message(&pool, &engine, conv, Some("m-3"), &tobacco),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.user_message.id, b.user_message.id);
    assert_eq!(a.decision.id, b.decision.id);
    assert!(a.replayed != b.replayed);
    assert_eq!(rows(&pool, conv).await, (6, 3, 1));
    // The same key for another message is refused.
    let err = amal_engine::turn::post_message(
        &pool,
        &engine,
        conv,
        Some("m-1"),
        &MessageContent::parse("something else").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, TurnError::Conversation(ConversationError::IdempotencyConflict(ref k)) if k == "m-1"),
        "{err}"
    );
}

#[test]
fn content_errors_name_the_rule_broken() {
    let empty = MessageContent::parse("  \n\t  ").unwrap_err();
    assert_eq!(empty, ContentError::Empty);
    assert!(
        empty
            .to_string()
            .contains("at least 1 character after trimming"),
        "{empty}"
    );
    let long = MessageContent::parse(&"x".repeat(10_001)).unwrap_err();
    assert_eq!(long, ContentError::TooLong { chars: 10_001 });
    assert!(
        long.to_string().contains("at most 10,000 characters"),
        "{long}"
    );
    assert!(MessageContent::parse(&format!("  {}  ", "ن".repeat(10_000))).is_ok());
    let control = MessageContent::parse("hello\u{0}world").unwrap_err();
    assert_eq!(
        control,
        ContentError::ControlCharacter {
            code: 0,
            position: 6
        }
    );
    assert!(
        control
            .to_string()
            .contains("no control characters other than newline and tab"),
        "{control}"
    );
    assert!(MessageContent::parse("a\r\nb").is_err());
    assert!(MessageContent::parse("first line\n\tsecond").is_ok());
    let utf8 = MessageContent::parse_bytes(b"caf\xe9").unwrap_err();
    assert!(utf8.to_string().contains("valid UTF-8"), "{utf8}");
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn pages_close_archive_and_search(pool: PgPool) {
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "pages@example.dz").await;
    for i in 0..3 {
        post(
            &pool,
            &engine,
            conv,
            Some(&format!("p{i}")),
            &format!("Quitting tobacco: nicotine cravings, day {i}"),
        )
        .await;
    }
    // Newest first by page, oldest first within a page; the cursor walks back without gaps.
    let newest = conversations::page(&mut pool.acquire().await.unwrap(), conv, None, 4)
        .await
        .unwrap();
    assert_eq!(newest.messages.len(), 4);
    assert_eq!(newest.messages[0].role, "user");
    assert!(newest.messages[0].content.ends_with("day 1"));
    assert_eq!(newest.messages[3].role, "assistant");
    let cursor = newest.older.expect("an older page");
    let cursor: conversations::Cursor = cursor.to_string().parse().unwrap();
    let older = conversations::page(&mut pool.acquire().await.unwrap(), conv, Some(cursor), 4)
        .await
        .unwrap();
    assert_eq!(older.messages.len(), 2);
    assert!(older.messages[0].content.ends_with("day 0"));
    assert!(older.older.is_none());
    assert!(
        conversations::page(&mut pool.acquire().await.unwrap(), Uuid::new_v4(), None, 4)
            .await
            .is_err()
    );

    let agent = staff_account(&pool, "search@amal.example", "agent").await;
    let hits = conversations::search_messages(&pool, &agent, "nicotine", Some(Lang::En), 10)
        .await
        .unwrap();
    let audited: (i64, Option<String>) = sqlx::query_as(
        "SELECT count(*), max(details->>'query') FROM audit_logs \
          WHERE action = 'conversation.search' AND user_id = $1",
    )
    .bind(agent.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        (1, Some("nicotine".to_string())),
        "every search is audited"
    );
    assert!(
        hits.iter()
            .any(|h| h.conversation_id == conv && h.role == "user"),
        "{hits:?}"
    );
    assert!(hits[0].snippet.contains("«"), "{:?}", hits[0]);
    assert!(
        conversations::search_messages(&pool, &agent, "nicotine", None, 10)
            .await
            .unwrap()
            .len()
            >= 3
    );

    let closed = conversations::close(&mut pool.acquire().await.unwrap(), conv)
        .await
        .unwrap();
    assert_eq!(closed.status, "closed");
    let err = amal_engine::turn::post_message(
        &pool,
        &engine,
        conv,
        None,
        &MessageContent::parse("hello").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TurnError::Conversation(ConversationError::NotActive { .. })
        ),
        "{err}"
    );
    // A message in crisis is never refused: the conversation opens again and escalates.
    let turn = post(&pool, &engine, conv, Some("late"), "je veux plus vivre").await;
    assert_eq!(turn.decision.decision, "support");
    assert_eq!(turn.ticket.as_ref().unwrap().priority, "urgent");
    assert_eq!(
        conversations::get(&pool, conv).await.unwrap().status,
        "escalated"
    );
    // Nor for a key reused for other text: the key is the client's mistake, not the crisis.
    let again = post(
        &pool,
        &engine,
        conv,
        Some("late"),
        "i really wanna die tonight",
    )
    .await;
    assert!(!again.replayed);
    assert!(
        again
            .decision
            .reason_code
            .as_deref()
            .unwrap()
            .starts_with("crisis_")
    );
    assert_ne!(again.user_message.id, turn.user_message.id);
    // ...and its retries stay idempotent.
    let retried = post(
        &pool,
        &engine,
        conv,
        Some("late"),
        "i really wanna die tonight",
    )
    .await;
    assert!(retried.replayed);
    assert_eq!(retried.user_message.id, again.user_message.id);
    let err = amal_engine::turn::post_message(
        &pool,
        &engine,
        conv,
        Some("late"),
        &MessageContent::parse("bonjour").unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            TurnError::Conversation(ConversationError::IdempotencyConflict(_))
        ),
        "{err}"
    );

    let old = new_conversation(&pool, "old@example.dz").await;
    // As old, but its ticket is still open (say, pending on the person): it stays.
    let waiting = new_conversation(&pool, "waiting@example.dz").await;
    post(&pool, &engine, waiting, None, "I want to talk to someone").await;
    sqlx::query(
        "UPDATE conversations SET created_at = now() - interval '100 days', \
                last_message_at = now() - interval '100 days' WHERE id = ANY($1)",
    )
    .bind(vec![old, waiting])
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(conversations::archive_old(&pool, 90).await.unwrap(), 1);
    assert_eq!(
        conversations::get(&pool, old).await.unwrap().status,
        "archived"
    );
    assert_eq!(
        conversations::get(&pool, waiting).await.unwrap().status,
        "escalated"
    );
    sqlx::query("UPDATE support_tickets SET status = 'closed' WHERE conversation_id = $1")
        .bind(waiting)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(conversations::archive_old(&pool, 90).await.unwrap(), 1);
    assert!(conversations::archive_old(&pool, 0).await.is_err());
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn support_mode_and_unknown_users(pool: PgPool) {
    let engine = kb_engine(&pool).await;
    let user = consenting_user(&pool, "mode@example.dz", "fr-FR").await;
    let conv = conversations::start(&pool, user, Mode::Support, Some(Lang::Fr))
        .await
        .unwrap();
    assert_eq!(conv.language.as_deref(), Some("fr-FR"));
    let turn = post(
        &pool,
        &engine,
        conv.id,
        None,
        "I can't sleep at night, insomnia for weeks",
    )
    .await;
    assert_eq!(turn.decision.reason_code.as_deref(), Some("support_mode"));
    // The conversation's language wins over the message's.
    assert!(
        turn.reply.content.starts_with("Merci"),
        "{}",
        turn.reply.content
    );
    let err = conversations::start(&pool, Uuid::new_v4(), Mode::Auto, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ConversationError::UnknownUser(_)), "{err}");
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn every_turn_sends_exactly_one_notice(pool: PgPool) {
    use amal_engine::events::{CHANNEL, ChangeNotice};
    let engine = kb_engine(&pool).await;
    let conv = new_conversation(&pool, "events@example.dz").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let mut received = Vec::new();
    for (key, text) in [
        ("e1", "I can't sleep at night, insomnia for weeks"),
        ("e2", "i really wanna die tonight"),
        ("e3", "can I speak to a real person please"),
        ("e1", "I can't sleep at night, insomnia for weeks"),
    ] {
        post(&pool, &engine, conv, Some(key), text).await;
        let mut notices = Vec::new();
        while let Ok(Ok(Some(n))) =
            tokio::time::timeout(std::time::Duration::from_millis(300), listener.try_recv()).await
        {
            notices.push(ChangeNotice::parse(n.payload()).unwrap());
        }
        received.push(notices);
    }
    // A turn: one notice naming the conversation (a retry writes nothing and sends nothing).
    for notices in &received[..3] {
        assert_eq!(notices.len(), 1, "{received:?}");
        assert_eq!(notices[0].conversation_id, Some(conv));
    }
    assert!(
        received[1][0].ticket_id.is_some(),
        "the crisis turn names its ticket"
    );
    assert!(received[3].is_empty(), "{received:?}");
}
