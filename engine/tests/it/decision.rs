//! The AUTO decision without storing anything: the order of the steps, the crisis gate's
//! precedence, languages without sources, the clarifying question, and the `decide --json` CLI
//! contract against the real binary.

use sqlx::PgPool;

use amal_engine::decision::auto::{DecisionEngine, Mode, Route, TurnContext};
use amal_engine::knowledge::Retriever;
use amal_engine::lang::Lang;

use crate::fixtures::{
    engine, engine_output, ingest, kb_dir, kb_engine, new_conversation, numbers, offline,
    run_engine, write,
};

async fn stored(pool: &PgPool) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages), \
                (SELECT count(*) FROM decision_logs), (SELECT count(*) FROM support_tickets)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn the_crisis_gate_comes_first_whatever_else_the_message_says(pool: PgPool) {
    let text = "I want to talk to someone, I really wanna die tonight";
    let dir = kb_dir();
    write(
        dir.path(),
        "en/same.md",
        &format!("---\nlang: en\ncategory: mental_health\n---\n# Same\n\n{text}\n"),
    );
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    // Even with a threshold of 0 (everything would be RAG) and SUPPORT mode.
    let lenient = DecisionEngine::new(Retriever::new(offline()), numbers(), 0.0, true).unwrap();
    for ctx in [
        TurnContext::default(),
        TurnContext {
            mode: Mode::Support,
            clarified_before: false,
            ticket_open: false,
        },
    ] {
        let d = lenient
            .decide_turn(
                &pool,
                text,
                Lang::Fr,
                ctx,
                lenient.assess_crisis(text).await,
            )
            .await;
        assert_eq!(d.decision, Route::Support);
        assert_eq!(d.reason_code, "crisis_suicidal_ideation");
        assert_eq!(
            (d.category.as_deref(), d.priority.as_deref()),
            (Some("crisis"), Some("urgent"))
        );
        assert_eq!(d.confidence, 1.0);
        assert!(d.hits.is_empty(), "retrieval never ran");
        assert!(d.is_crisis());
        // Answered in the language the person wrote in.
        assert_eq!(d.lang, Lang::En);
    }
    assert_eq!(stored(&pool).await, (0, 0, 0, 0), "deciding stores nothing");
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn human_requests_languages_without_sources_and_clarification(pool: PgPool) {
    let auto = kb_engine(&pool).await;
    let d = auto
        .decide(&pool, "can I speak to a real person please", Lang::En)
        .await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Support, "human_requested")
    );
    assert_eq!(d.priority.as_deref(), Some("medium"));
    assert!(d.category.is_some());

    // With the Arabic documents rejected, an Arabic question finds the other languages'
    // articles, but hashed n-grams see no meaning across languages: too far for an answer.
    // (With the semantic model it is answered from them: tests/it/understanding.rs.)
    sqlx::query("UPDATE documents SET review_status = 'rejected' WHERE lang = 'ar'")
        .execute(&pool)
        .await
        .unwrap();
    let d = auto
        .decide(&pool, "كيف أتعامل مع الأرق والنوم", Lang::Ar)
        .await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Support, "low_confidence")
    );

    // With nothing approved at all, no source: a human.
    sqlx::query("UPDATE documents SET review_status = 'rejected'")
        .execute(&pool)
        .await
        .unwrap();
    let d = auto
        .decide(&pool, "كيف أتعامل مع الأرق والنوم", Lang::Ar)
        .await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Support, "no_source_in_language")
    );
    assert_eq!(d.category.as_deref(), Some("mental_health"));
    sqlx::query("UPDATE documents SET review_status = 'approved' WHERE lang <> 'ar'")
        .execute(&pool)
        .await
        .unwrap();

    let d = auto
        .decide(
            &pool,
            "I can't sleep at night, insomnia for weeks",
            Lang::En,
        )
        .await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Rag, "rag_confident")
    );
    assert!(d.category.is_none() && d.priority.is_none());
    let answer = d.answer.as_ref().unwrap();
    assert_eq!(answer.citations[0].title, "Sleep problems");
    assert!(
        d.evidence["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["chunk_id"].is_string())
    );

    // With clarification on, one question first, then a human.
    let mut clarifying = engine();
    clarifying.clarify = true;
    let off_topic = "My cousin's wedding plans keep going round in my head every evening";
    let d = clarifying.decide(&pool, off_topic, Lang::En).await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Rag, "clarify")
    );
    assert!(d.reply.ends_with('?'));
    let d = clarifying
        .decide_turn(
            &pool,
            off_topic,
            Lang::En,
            TurnContext {
                mode: Mode::Auto,
                clarified_before: true,
                ticket_open: false,
            },
            clarifying.assess_crisis(off_topic).await,
        )
        .await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Support, "low_confidence")
    );
    assert_eq!(stored(&pool).await, (0, 0, 0, 0));
}

#[test]
fn cli_contract_decide_json() {
    let data = tempfile::tempdir().unwrap();
    let kb = kb_dir();
    let run = |args: &[&str]| run_engine(data.path(), args);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    run(&["seed"]);
    let dir = kb.path().display().to_string();
    run(&["kb", "ingest", &dir, "--approve"]);

    let crisis = json(&["decide", "je veux plus vivre", "--json"]);
    assert_eq!(crisis["decision"], "support", "{crisis}");
    assert_eq!(crisis["category"], "crisis");
    assert_eq!(crisis["priority"], "urgent");
    assert_eq!(crisis["reason_code"], "crisis_suicidal_ideation");
    assert_eq!(crisis["confidence"], 1.0);
    assert_eq!(crisis["lang"], "fr");

    let rag = json(&[
        "decide",
        "I can't sleep at night, insomnia for weeks",
        "--lang",
        "en",
        "--json",
    ]);
    assert_eq!(rag["decision"], "rag", "{rag}");
    assert!(rag["category"].is_null() && rag["priority"].is_null());
    assert_eq!(rag["reason_code"], "rag_confident");
    let c = rag["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&c), "{c}");
    assert!(rag["reply"].as_str().unwrap().contains("Sleep problems"));

    let off = json(&["decide", "What's the weather in Oran?", "--json"]);
    assert_eq!(off["reason_code"], "out_of_scope", "{off}");
    assert_eq!(off["decision"], "rag");
    assert!(off["category"].is_null() && off["priority"].is_null());
    assert_eq!(off["lang"], "en");

    // A message the service would refuse is refused here too, naming the rule.
    for (text, rule) in [
        ("   ", "at least 1 character"),
        ("a\u{7}b", "control character"),
    ] {
        let out = engine_output(data.path(), &["decide", text, "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(rule),
            "{text:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }

    // A dry run: nothing was stored.
    let url = run(&["db", "url"]);
    let url = url.lines().last().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = rt.block_on(async {
        let pool = PgPool::connect(&url).await.unwrap();
        let counts = stored(&pool).await;
        pool.close().await;
        counts
    });
    assert_eq!(counts, (0, 0, 0, 0));

    // chat writes only as accounts it creates, never into a person's own account.
    run(&["chat", "--as", "try.chat@example.dz"]);
    run(&["chat", "--as", "try.chat@example.dz"]);
    rt.block_on(async {
        let pool = PgPool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO users (email, password_hash, name) VALUES ('real@example.dz', 'x', 'R')",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let out = engine_output(data.path(), &["chat", "--as", "real@example.dz"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("a person's account"),
        "{stderr}"
    );
    run(&["db", "stop"]);
}

/// An OpenAI-compatible chat endpoint: mode 0 answers citing source 1, 1 declines, 2 fails,
/// 3 answers after 3 seconds, 4 answers malformed JSON.
/// Returns its URL, the mode switch, the call count and the last request body.
async fn chat_stand_in() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
) {
    use axum::{Json, Router, http::StatusCode, routing::post};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex, atomic::AtomicUsize};
    let mode = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(serde_json::Value::Null));
    let (m, c, l) = (mode.clone(), calls.clone(), last.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<serde_json::Value>| {
            let (m, c, l) = (m.clone(), c.clone(), l.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                *l.lock().unwrap() = body;
                let content = match m.load(Ordering::SeqCst) {
                    0 => "Keep a regular bedtime and avoid screens before sleeping [1].",
                    1 => "NO_ANSWER",
                    3 => {
                        // Slower than any timeout the tests set.
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        "Too late [1]."
                    }
                    4 => {
                        return (
                            StatusCode::OK,
                            "{\"choices\": [{\"message\": 42}]".to_string(),
                        );
                    }
                    _ => return (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()),
                };
                let reply = serde_json::json!({
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 321, "completion_tokens": 17},
                });
                (StatusCode::OK, reply.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, mode, calls, last)
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_chat_model_writes_grounded_answers_may_decline_and_never_sees_a_crisis(pool: PgPool) {
    use amal_engine::decision::llm::ChatModel;
    use std::sync::atomic::Ordering;
    let (url, mode, calls, last) = chat_stand_in().await;
    let mut auto = kb_engine(&pool).await;
    auto.model = Some(
        ChatModel::new(
            &url,
            "stand-in-chat",
            None,
            std::time::Duration::from_secs(5),
        )
        .unwrap(),
    );
    let question = "I can't sleep at night, insomnia for weeks";

    let d = auto.decide(&pool, question, Lang::En).await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Rag, "rag_confident")
    );
    assert_eq!(d.model_used.as_deref(), Some("stand-in-chat"));
    assert_eq!(
        (d.prompt_tokens, d.completion_tokens),
        (Some(321), Some(17))
    );
    assert!(d.reply.contains("Keep a regular bedtime"), "{}", d.reply);
    assert!(d.reply.ends_with("Sources: Sleep problems"), "{}", d.reply);
    let prompt = last.lock().unwrap().to_string();
    assert!(
        prompt.contains("in English") && prompt.contains("Sleep problems"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("Troubles du sommeil"),
        "sources in the person's language only"
    );
    // Personal data in the question never reaches the provider.
    let with_pii = format!("{question}. Reach me at amina.b@example.dz or 0555 12 34 56");
    let d = auto.decide(&pool, &with_pii, Lang::En).await;
    assert_eq!(d.model_used.as_deref(), Some("stand-in-chat"));
    let prompt = last.lock().unwrap().to_string();
    assert!(
        prompt.contains("[EMAIL]") && prompt.contains("[PHONE]"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("amina.b") && !prompt.contains("0555 12"),
        "{prompt}"
    );

    // Stored turn: the model's name and token counts reach decision_logs.
    let conv = new_conversation(&pool, "llm@example.dz").await;
    let content = amal_engine::conversations::MessageContent::parse(question).unwrap();
    let turn = amal_engine::turn::post_message(&pool, &auto, conv, None, &content)
        .await
        .unwrap();
    assert_eq!(turn.decision.model_used.as_deref(), Some("stand-in-chat"));
    let tokens: (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT prompt_tokens, completion_tokens FROM decision_logs WHERE id = $1")
            .bind(turn.decision.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tokens, (Some(321), Some(17)));

    // The model may turn RAG into SUPPORT...
    mode.store(1, Ordering::SeqCst);
    let d = auto.decide(&pool, question, Lang::En).await;
    assert_eq!(
        (d.decision, d.reason_code.as_str()),
        (Route::Support, "model_declined")
    );
    assert_eq!(d.priority.as_deref(), Some("medium"));

    // ...a failing model falls back to the offline answer...
    mode.store(2, Ordering::SeqCst);
    let d = auto.decide(&pool, question, Lang::En).await;
    assert_eq!(
        (d.decision, d.model_used.as_deref()),
        (Route::Rag, Some("offline-extractive"))
    );
    assert!(d.evidence["model_error"].is_string());

    // ...as do malformed answers and answers slower than the configured timeout, within it.
    mode.store(4, Ordering::SeqCst);
    let d = auto.decide(&pool, question, Lang::En).await;
    assert_eq!(d.model_used.as_deref(), Some("offline-extractive"));
    assert!(d.evidence["model_error"].is_string(), "{}", d.evidence);
    mode.store(3, Ordering::SeqCst);
    let mut impatient = kb_engine(&pool).await;
    impatient.model = Some(
        ChatModel::new(
            &url,
            "stand-in-chat",
            None,
            std::time::Duration::from_millis(300),
        )
        .unwrap(),
    );
    let started = std::time::Instant::now();
    let d = impatient.decide(&pool, question, Lang::En).await;
    let waited = started.elapsed();
    assert_eq!(
        (d.decision, d.model_used.as_deref()),
        (Route::Rag, Some("offline-extractive"))
    );
    assert!(d.reply.contains("Sleep problems"), "{}", d.reply);
    assert!(
        waited < std::time::Duration::from_millis(1500),
        "the fallback came after {waited:?}, far past the 300 ms timeout"
    );

    // ...and it is never asked about a crisis, a request for a human, a low-confidence message
    // or another subject.
    mode.store(0, Ordering::SeqCst);
    let before = calls.load(Ordering::SeqCst);
    for text in [
        "i really wanna die tonight",
        "can I speak to a real person please",
        "My cousin's wedding plans keep going round in my head every evening",
    ] {
        let d = auto.decide(&pool, text, Lang::En).await;
        assert_eq!(d.decision, Route::Support, "{text}");
    }
    let d = auto
        .decide(
            &pool,
            "Which football team won the league last season?",
            Lang::En,
        )
        .await;
    assert_eq!(d.reason_code, "out_of_scope");
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn messages_without_words_are_ordinary_turns_with_a_finite_confidence(pool: PgPool) {
    let auto = kb_engine(&pool).await;
    let many_emoji = "👍".repeat(10_000);
    for (i, text) in [
        "👍",
        "???",
        "...",
        ":)",
        "؟؟؟",
        "❤️",
        "!!!",
        "   .   ",
        many_emoji.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let d = auto.decide(&pool, text, Lang::Ar).await;
        assert!(
            d.confidence.is_finite() && (0.0..=1.0).contains(&d.confidence),
            "{text:?}: confidence {}",
            d.confidence
        );
        assert_ne!(
            d.reason_code, "rag_confident",
            "{text:?} answered from nothing"
        );
        let conv = new_conversation(&pool, &format!("p{i}@example.dz")).await;
        let content = amal_engine::conversations::MessageContent::parse(text).unwrap();
        let turn = amal_engine::turn::post_message(&pool, &auto, conv, None, &content)
            .await
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(turn.decision.confidence.is_finite(), "{text:?}");
    }
    // The crisis gate still reads a message among emoji.
    let d = auto.decide(&pool, "😭😭 je veux mourir 😭", Lang::Fr).await;
    assert_eq!(d.decision, Route::Support);
    assert!(d.reason_code.starts_with("crisis"), "{}", d.reason_code);
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn other_subjects_get_a_reply_in_the_persons_language_and_no_ticket(pool: PgPool) {
    let auto = kb_engine(&pool).await;
    for (i, (text, lang, words)) in [
        ("What's the weather in Oran?", Lang::En, "addiction"),
        ("qui a gagné le match hier soir ?", Lang::Fr, "addictions"),
        ("شحال سومة الذهب اليوم؟", Lang::Ar, "الإدمان"),
        ("chkoun reb7 lmatch lbere7", Lang::Ar, "الإدمان"),
    ]
    .into_iter()
    .enumerate()
    {
        let conv = new_conversation(&pool, &format!("off{i}@example.dz")).await;
        let content = amal_engine::conversations::MessageContent::parse(text).unwrap();
        let turn = amal_engine::turn::post_message(&pool, &auto, conv, None, &content)
            .await
            .unwrap();
        assert_eq!(
            turn.decision.reason_code.as_deref(),
            Some("out_of_scope"),
            "{text}"
        );
        assert!(turn.ticket.is_none(), "{text}");
        assert_eq!(turn.reply.metadata["lang"], lang.code(), "{text}");
        assert!(
            turn.reply.content.contains(words),
            "{text}: {}",
            turn.reply.content
        );
    }
    // The same subjects with a word of distress, or a request for a person, reach the team.
    for (i, text) in [
        "I'm so stressed about the football match I bet on",
        "je veux parler à quelqu'un, pas de la météo",
        "ما نرقدش من الخوف على الماتش",
    ]
    .into_iter()
    .enumerate()
    {
        let conv = new_conversation(&pool, &format!("in{i}@example.dz")).await;
        let content = amal_engine::conversations::MessageContent::parse(text).unwrap();
        let turn = amal_engine::turn::post_message(&pool, &auto, conv, None, &content)
            .await
            .unwrap();
        assert_ne!(
            turn.decision.reason_code.as_deref(),
            Some("out_of_scope"),
            "{text}"
        );
    }
    let mut conn = pool.acquire().await.unwrap();
    let stats = amal_engine::stats::collect(&mut conn, chrono::Utc::now(), 1)
        .await
        .unwrap();
    let counted: i64 = stats.decisions.iter().map(|d| d.out_of_scope).sum();
    assert_eq!(counted, 4);
}
