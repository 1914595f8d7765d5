//! The knowledge base on real PostgreSQL: ingestion, deduplication, PII, review, retrieval
//! filters, the embedding-model check, the HTTP provider (against a local stand-in server),
//! evaluation on the shipped set, and the CLI contract.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use amal_engine::knowledge::embed::{
    EmbedError, Embedder, HttpEmbedder, HttpEmbedderConfig, TextKind,
};
use amal_engine::knowledge::store::{self, IngestOptions, IngestOutcome};
use amal_engine::knowledge::{KnowledgeError, Retriever, SearchRequest, eval};
use amal_engine::lang::Lang;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::fixtures::{another_pool, ingest, kb_dir, offline, run_engine, staff_account, write};

async fn search(
    pool: &PgPool,
    text: &str,
    lang: Option<Lang>,
    category: Option<&str>,
    k: usize,
) -> amal_engine::knowledge::SearchOutcome {
    Retriever::new(offline())
        .search(
            pool,
            &SearchRequest {
                text,
                lang,
                category,
                k,
            },
        )
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn ingest_is_idempotent_and_a_changed_file_replaces_its_chunks(pool: PgPool) {
    let dir = kb_dir();
    let first = ingest(&pool, &[dir.path().to_path_buf()], true).await;
    assert_eq!(
        (first.new, first.updated, first.unchanged, first.rejected),
        (4, 0, 0, 0),
        "{first:?}"
    );
    let chunks_before: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(chunks_before >= 4);

    let again = ingest(&pool, &[dir.path().to_path_buf()], true).await;
    assert_eq!(
        (again.new, again.updated, again.unchanged, again.chunks),
        (0, 0, 4, 0)
    );
    let chunks_again: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(chunks_again, chunks_before);

    let long: String = (0..40)
        .map(|i| format!("Sentence number {i} about tobacco and cravings. "))
        .collect();
    let changed = write(
        dir.path(),
        "en/tobacco.md",
        &format!("---\nlang: en\n---\n# Quitting tobacco\n\n{long}\n"),
    );
    let updated = ingest(&pool, std::slice::from_ref(&changed), false).await;
    assert_eq!(updated.updated, 1, "{updated:?}");
    let (id, status, chunk_count, total_tokens): (uuid::Uuid, String, i32, i32) = sqlx::query_as(
        "SELECT id, review_status, chunk_count, total_tokens FROM documents WHERE source = $1",
    )
    .bind(changed.display().to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    // Changed content goes back to review unless ingested with --approve.
    assert_eq!(status, "pending");
    let (n, min_index, max_index, sum_tokens): (i64, i32, i32, i64) = sqlx::query_as(
        "SELECT count(*), min(chunk_index), max(chunk_index), sum(token_count) FROM document_chunks WHERE document_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(n > 1, "the longer text needs several chunks");
    assert_eq!(
        (n as i32, min_index, max_index),
        (chunk_count, 0, chunk_count - 1)
    );
    assert!(
        sum_tokens >= i64::from(total_tokens),
        "overlap repeats tokens, never loses them"
    );
    let old_text: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM document_chunks WHERE document_id = $1 AND content LIKE '%remove cigarettes%'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(old_text, 0, "old chunks are gone");
}

#[sqlx::test(migrations = "../migrations")]
async fn pii_is_stripped_before_storage_and_embedding(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "contact.md",
        "---\nlang: fr\n---\n# Nous contacter\n\nÉcrivez à karim.b@example.dz ou appelez le 0555 12 34 56, ou +213 21 23 45 67. \
         Lien privé : https://x.example/r?token=s3cr3t. Carte 1234 5678 9012 3456.\n",
    );
    let summary = ingest(&pool, &[file], true).await;
    assert_eq!(summary.new, 1);
    let (content, pii_stripped, redactions): (String, bool, i64) = sqlx::query_as(
        "SELECT content, pii_stripped, (metadata->>'pii_redactions_total')::bigint FROM documents",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(pii_stripped);
    assert_eq!(redactions, 5);
    for secret in ["karim.b@", "0555", "23 45 67", "s3cr3t", "9012"] {
        assert!(!content.contains(secret), "{secret} in {content}");
    }
    assert!(
        content.contains("[EMAIL]")
            && content.contains("[PHONE]")
            && content.contains("[URL]")
            && content.contains("[ID]")
    );
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM document_chunks WHERE content ~ '0555|karim|s3cr3t' OR search_text ~ '0555|karim|s3cr3t'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_files_are_reported_and_the_batch_goes_on(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "good.md",
        "---\nlang: en\n---\n# Good\n\nA useful paragraph about stress and rest.\n",
    );
    write(dir.path(), "empty.md", "---\nlang: en\n---\n\n");
    std::fs::write(dir.path().join("binary.txt"), b"abc\0def").unwrap();
    std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9 cr\xe8me").unwrap();
    write(dir.path(), "unknown.txt", "12345 67890 !!!");
    write(
        dir.path(),
        "german.md",
        "---\nlang: de\n---\n# Hallo\n\nText.\n",
    );
    std::fs::write(dir.path().join("huge.txt"), vec![b'a'; 3 * 1024 * 1024]).unwrap();
    write(dir.path(), "image.png", "not considered inside folders");
    let explicit_unsupported = write(dir.path(), "notes.docx", "x");
    let missing = dir.path().join("missing.md");

    let summary = ingest(
        &pool,
        &[dir.path().to_path_buf(), explicit_unsupported, missing],
        true,
    )
    .await;
    assert_eq!(summary.new, 1, "{summary:#?}");
    let reason = |name: &str| -> String {
        summary
            .files
            .iter()
            .find(|f| f.source.ends_with(name))
            .map(|f| match &f.outcome {
                IngestOutcome::Rejected { reason } => reason.clone(),
                other => panic!("{name}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("{name} not reported: {summary:#?}"))
    };
    assert!(reason("empty.md").contains("empty"));
    assert!(reason("binary.txt").contains("binary"));
    assert!(reason("latin1.txt").contains("UTF-8"));
    assert!(reason("unknown.txt").contains("unknown language"));
    assert!(reason("german.md").contains("lang: de"));
    assert!(reason("huge.txt").contains("too large"));
    assert!(reason("notes.docx").contains("unsupported"));
    assert!(reason("missing.md").contains("unreadable"));
    assert_eq!(summary.rejected, 8);
    assert!(
        !summary
            .files
            .iter()
            .any(|f| f.source.ends_with("image.png"))
    );
    let docs: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(docs, 1, "nothing half-written");
}

#[sqlx::test(migrations = "../migrations")]
async fn duplicate_content_from_another_file_is_rejected_by_name(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let text = "---\nlang: en\n---\n# Same\n\nIdentical content in two files.\n";
    write(dir.path(), "a.md", text);
    write(dir.path(), "b.md", text);
    let summary = ingest(&pool, &[dir.path().to_path_buf()], true).await;
    assert_eq!((summary.new, summary.rejected), (1, 1), "{summary:#?}");
    let rejected = summary.files.iter().find_map(|f| match &f.outcome {
        IngestOutcome::Rejected { reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        rejected
            .unwrap()
            .contains("same content as the already ingested")
    );
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn only_approved_documents_are_retrieved_and_only_admins_review(pool: PgPool) {
    let dir = kb_dir();
    ingest(&pool, &[dir.path().to_path_buf()], false).await;
    let outcome = search(&pool, "insomnia bedtime", Some(Lang::En), None, 5).await;
    assert!(
        outcome.results.is_empty(),
        "pending documents are never retrieved"
    );
    assert_eq!(outcome.confidence, 0.0);

    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let mut conn = pool.acquire().await.unwrap();
    let pending = store::list_documents(&mut conn, Some("pending"))
        .await
        .unwrap();
    assert_eq!(pending.len(), 4);
    drop(conn);
    let sleep_en = pending
        .iter()
        .find(|d| d.title == "Sleep problems")
        .unwrap()
        .id;

    let err = store::approve(&pool, sleep_en, &agent).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::Staff(_)), "{err}");
    // Ingesting with approval is approving: an agent cannot publish a file that way either.
    let other = tempfile::tempdir().unwrap();
    write(
        other.path(),
        "en/cure.md",
        "---\nlang: en\ncategory: mental_health\n---\n# A quick cure\n\nA text nobody reviewed.\n",
    );
    let as_agent = IngestOptions {
        approve: true,
        actor: Some(agent.clone()),
        ..Default::default()
    };
    let err = store::ingest_paths(
        &pool,
        &offline(),
        &[other.path().to_path_buf()],
        &as_agent,
        1,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KnowledgeError::Staff(_)), "{err}");
    let err = store::ingest_document(
        &pool,
        &offline(),
        &amal_engine::knowledge::source::read(&other.path().join("en/cure.md")).unwrap(),
        &as_agent,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KnowledgeError::Staff(_)), "{err}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE title = 'A quick cure'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 0, "nothing half-written");
    store::approve(&pool, sleep_en, &admin).await.unwrap();
    let err = store::approve(&pool, sleep_en, &admin).await.unwrap_err();
    assert!(err.to_string().contains("already approved"));

    let outcome = search(&pool, "insomnia bedtime", Some(Lang::En), None, 5).await;
    assert_eq!(outcome.results.len(), 1);
    assert_eq!(outcome.results[0].title, "Sleep problems");
    assert!(outcome.confidence > 0.0);

    let (reviewed_by, audits): (Option<uuid::Uuid>, i64) = sqlx::query_as(
        "SELECT reviewed_by, (SELECT count(*) FROM audit_logs WHERE action = 'kb.approve' AND resource_id = $1) \
         FROM documents WHERE id = $1",
    )
    .bind(sleep_en)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((reviewed_by, audits), (Some(admin.id), 1));

    assert!(matches!(
        store::reject(&pool, sleep_en, &admin, "  ")
            .await
            .unwrap_err(),
        KnowledgeError::EmptyReason
    ));
    store::reject(&pool, sleep_en, &admin, "outdated advice")
        .await
        .unwrap();
    assert!(
        search(&pool, "insomnia bedtime", Some(Lang::En), None, 5)
            .await
            .results
            .is_empty()
    );
    let reason: String =
        sqlx::query_scalar("SELECT metadata->>'review_reason' FROM documents WHERE id = $1")
            .bind(sleep_en)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(reason, "outdated advice");

    // Soft-deleting an approved document removes it from retrieval too.
    let sleep_fr = store::list_documents(&mut pool.acquire().await.unwrap(), Some("pending"))
        .await
        .unwrap();
    let sleep_fr = sleep_fr.iter().find(|d| d.lang == "fr").unwrap().id;
    store::approve(&pool, sleep_fr, &admin).await.unwrap();
    assert_eq!(
        search(&pool, "insomnie écrans", Some(Lang::Fr), None, 5)
            .await
            .results
            .len(),
        1
    );
    sqlx::query("UPDATE documents SET deleted_at = now() WHERE id = $1")
        .bind(sleep_fr)
        .execute(&pool)
        .await
        .unwrap();
    assert!(
        search(&pool, "insomnie écrans", Some(Lang::Fr), None, 5)
            .await
            .results
            .is_empty()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn language_and_category_filters_do_not_starve_the_results(pool: PgPool) {
    // 300 English chunks about sleep in another category crowd the nearest neighbours of the
    // query; the five addiction chunks must still all be found with the category filter.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..60 {
        let body: String = (0..5)
            .map(|j| format!("Sleep advice {i}-{j}: keep a regular bedtime and rest well.\n\n"))
            .collect();
        write(
            dir.path(),
            &format!("crowd/{i:02}.md"),
            &format!("---\nlang: en\ncategory: mental_health\n---\n# Sleep {i}\n\n{body}"),
        );
    }
    for i in 0..5 {
        write(
            dir.path(),
            &format!("addiction/{i}.md"),
            &format!(
                "---\nlang: en\ncategory: addiction\n---\n# Sleep and alcohol {i}\n\nAlcohol disturbs sleep and bedtime rest {i}.\n"
            ),
        );
    }
    write(
        dir.path(),
        "fr.md",
        "---\nlang: fr\ncategory: addiction\n---\n# Alcool et sommeil\n\nL'alcool perturbe le sommeil.\n",
    );
    let summary = ingest(&pool, &[dir.path().to_path_buf()], true).await;
    assert_eq!(summary.rejected, 0);

    let outcome = search(
        &pool,
        "regular bedtime rest",
        Some(Lang::En),
        Some("addiction"),
        5,
    )
    .await;
    assert_eq!(
        outcome.results.len(),
        5,
        "{:#?}",
        outcome.results.iter().map(|h| &h.title).collect::<Vec<_>>()
    );
    assert!(
        outcome
            .results
            .iter()
            .all(|h| h.lang == "en" && h.title.starts_with("Sleep and alcohol"))
    );

    let fr = search(&pool, "sommeil", Some(Lang::Fr), None, 5).await;
    assert_eq!(fr.results.len(), 1);
    assert_eq!(fr.results[0].lang, "fr");

    // Without a language, every language is searched.
    let all = search(
        &pool,
        "alcool sommeil alcohol sleep",
        None,
        Some("addiction"),
        10,
    )
    .await;
    assert!(
        all.results.iter().any(|h| h.lang == "fr") && all.results.iter().any(|h| h.lang == "en")
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn misspelled_words_are_corrected_to_known_words(pool: PgPool) {
    ingest(&pool, &[kb_dir().path().to_path_buf()], true).await;
    let outcome = search(&pool, "insomnya", Some(Lang::En), None, 3).await;
    assert!(
        outcome
            .corrections
            .iter()
            .any(|(typed, used)| typed == "insomnya" && used == "insomnia"),
        "{:?}",
        outcome.corrections
    );
    assert_eq!(outcome.results[0].title, "Sleep problems");
    assert!(
        outcome.results[0].text_rank.is_some(),
        "found by full text through the correction"
    );
}

/// On a large knowledge base two common words are not enough for a full-text match
/// (`knowledge::retrieval`); "large" is scaled down here through the retriever's threshold.
/// How common a word is comes from the planner's statistics, so nothing changes before the
/// table is analyzed.
#[sqlx::test(migrations = "../migrations")]
async fn two_common_words_alone_do_not_match_once_the_table_is_analyzed(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let routines = [
        "evening walks",
        "warm showers",
        "reading",
        "breathing",
        "music",
        "tea",
    ];
    for (i, routine) in routines.iter().enumerate() {
        write(
            dir.path(),
            &format!("en/routine{i}.md"),
            &format!(
                "---\nlang: en\n---\n# Routine {i}\n\nSleep comes easier with {routine}; ask for help if it does not.\n"
            ),
        );
    }
    write(
        dir.path(),
        "en/insomnia.md",
        "---\nlang: en\n---\n# Insomnia\n\nInsomnia that lasts for weeks deserves a doctor's visit; sleep can be restored.\n",
    );
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    let text_matches = |outcome: &amal_engine::knowledge::SearchOutcome| {
        let mut titles: Vec<String> = outcome
            .results
            .iter()
            .filter(|h| h.text_rank.is_some())
            .map(|h| h.title.clone())
            .collect();
        titles.sort();
        titles
    };
    let request = SearchRequest {
        text: "sleep help insomnia",
        lang: Some(Lang::En),
        category: None,
        k: 10,
    };
    let mut retriever = Retriever::new(offline());
    retriever.common_term_chunks = 3.0;
    let before = retriever.search(&pool, &request).await.unwrap();
    assert_eq!(
        text_matches(&before).len(),
        7,
        "{:?}",
        text_matches(&before)
    );

    sqlx::query("ANALYZE document_chunks")
        .execute(&pool)
        .await
        .unwrap();
    // A new retriever: statistics are read once and reused for minutes.
    let mut retriever = Retriever::new(offline());
    retriever.common_term_chunks = 3.0;
    let after = retriever.search(&pool, &request).await.unwrap();
    assert_eq!(text_matches(&after), vec!["Insomnia".to_string()]);
    assert_eq!(after.results[0].title, "Insomnia");
    // The default threshold counts in thousands: this knowledge base has no common word.
    let default = Retriever::new(offline())
        .search(&pool, &request)
        .await
        .unwrap();
    assert_eq!(text_matches(&default).len(), 7);
}

/// A search's statements keep their generic plans once PostgreSQL has seen them a few times
/// (`knowledge::retrieval`): with parameters in the search statement's limits, and an array's
/// `unnest` in the corrections look-up, both were planned afresh at every execution.
#[sqlx::test(migrations = "../migrations")]
async fn the_search_statement_is_planned_once(pool: PgPool) {
    ingest(&pool, &[kb_dir().path().to_path_buf()], true).await;
    // Plans are chosen by estimated costs, which depend on the table's size: on a handful of
    // chunks a statement can keep its generic plan that, on more than a few hundred, is
    // planned afresh at every search. Copies of the chunks make the table that size.
    sqlx::query(
        "INSERT INTO document_chunks (document_id, content, embedding, embedding_model, chunk_index, \
                                      metadata, token_count, start_position, end_position, search_text) \
         SELECT document_id, content, embedding, embedding_model, chunk_index + 1000 * g, \
                metadata, token_count, start_position, end_position, search_text \
           FROM document_chunks CROSS JOIN generate_series(1, 400) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE document_chunks")
        .execute(&pool)
        .await
        .unwrap();
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks WHERE retrievable")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(chunks >= 1_000, "{chunks}");
    // One connection, so that its prepared statements are the ones looked at.
    let one = another_pool(&pool, PgPoolOptions::new().max_connections(1))
        .await
        .unwrap();
    let retriever = Retriever::new(offline());
    for text in [
        "sleep problems at night",
        "insomnia and screens",
        "quit tobacco cravings",
    ]
    .iter()
    .cycle()
    .take(8)
    {
        let request = SearchRequest {
            text,
            lang: Some(Lang::En),
            category: None,
            k: 5,
        };
        retriever.search(&one, &request).await.unwrap();
    }
    // Every statement of a search: the corrections look-up, the two lists and the details.
    for start in [
        "WITH corrected AS%",
        "SELECT id FROM (%",
        "WITH matched AS MATERIALIZED%",
        "SELECT c.id, c.document_id%",
    ] {
        let (generic, custom): (i64, i64) = sqlx::query_as(
            "SELECT sum(generic_plans)::int8, sum(custom_plans)::int8 FROM pg_prepared_statements \
              WHERE statement LIKE $1",
        )
        .bind(start)
        .fetch_one(&one)
        .await
        .unwrap();
        // PostgreSQL tries five custom plans before it compares them with the generic one.
        assert_eq!((generic, custom), (3, 5), "{start}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn shipped_knowledge_base_meets_its_evaluation_floor(pool: PgPool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let summary = ingest(&pool, &[root.join("seeds/knowledge")], true).await;
    assert_eq!(summary.rejected, 0, "{summary:#?}");
    assert!(summary.new >= 60, "at least 20 documents per language");
    for lang in ["ar", "fr", "en"] {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM documents WHERE lang = $1 AND review_status = 'approved'",
        )
        .bind(lang)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(n >= 20, "{lang}: {n}");
    }
    let cases = eval::load_cases(&root.join("seeds/knowledge/eval.jsonl")).unwrap();
    for lang in Lang::ALL {
        assert!(
            cases.iter().filter(|(_, l)| *l == lang).count() >= 30,
            "{lang}"
        );
    }
    let report = eval::evaluate(&pool, &Retriever::new(offline()), &cases)
        .await
        .unwrap();
    // Floors a little under the figures in README, so that a regression fails here.
    assert!(report.overall.recall_at_5 >= 0.88, "{:?}", report.overall);
    assert!(report.overall.mrr >= 0.72, "{:?}", report.overall);
    for (lang, m) in &report.per_lang {
        assert!(m.recall_at_10 >= 0.90, "{lang}: {m:?}");
    }
}

/// A stand-in for an OpenAI-compatible embeddings server: 8-dimensional vectors from the text's
/// length, with scripted failures first.
async fn stand_in(failures: usize, mode: &'static str) -> (String, Arc<AtomicUsize>) {
    use axum::{Json, Router, http::StatusCode, routing::post};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/v1/embeddings",
        post(move |Json(body): Json<serde_json::Value>| {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < failures {
                    return match mode {
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            (StatusCode::OK, "{}".to_string())
                        }
                        _ => (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string()),
                    };
                }
                if mode == "malformed" {
                    return (StatusCode::OK, "{\"data\": [ {\"embedding\": \"nope\"} ]}".to_string());
                }
                let inputs = body["input"].as_array().cloned().unwrap_or_default();
                let data: Vec<_> = inputs
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, t)| {
                        let len = t.as_str().unwrap_or("").len() as f32;
                        serde_json::json!({"index": i, "embedding": [1.0, len, 0.5, 0.0, 0.25, 1.0, 2.0, len / 2.0]})
                    })
                    .collect();
                (StatusCode::OK, serde_json::json!({ "data": data }).to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

fn http_config(url: &str) -> HttpEmbedderConfig {
    let mut config = HttpEmbedderConfig::new(url, "stand-in-8d");
    config.timeout = Duration::from_millis(500);
    config.backoff = Duration::from_millis(10);
    config.batch_size = 3;
    config
}

#[tokio::test]
async fn http_embedder_batches_retries_and_reports_failures() {
    let (url, calls) = stand_in(2, "unavailable").await;
    let embedder = HttpEmbedder::connect(http_config(&url))
        .await
        .expect("third attempt succeeds");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let embedder = Embedder::Http(embedder);
    assert_eq!(embedder.dimension(), 8);
    let texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"];
    let vectors = embedder.embed(TextKind::Passage, &texts).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3 + 3,
        "7 texts in batches of 3"
    );
    // The answer's order follows `index`, not the order of the array.
    assert_eq!(
        vectors.iter().map(|v| v[1] as usize).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6, 1]
    );
    // Personal data is replaced before the text leaves (the stand-in embeds the length of
    // what it received).
    let query = "call me on 0555 12 34 56";
    let sent = amal_engine::knowledge::pii::strip(query).0;
    assert_eq!(sent, "call me on [PHONE]");
    let vectors = embedder.embed(TextKind::Query, &[query]).await.unwrap();
    assert_eq!(vectors[0][1] as usize, sent.len());

    let (url, _) = stand_in(10, "unavailable").await;
    let err = HttpEmbedder::connect(http_config(&url)).await.unwrap_err();
    assert!(
        matches!(&err, EmbedError::Provider { reason, .. } if reason.contains("503") && reason.contains("3 attempts")),
        "{err}"
    );

    let (url, _) = stand_in(10, "slow").await;
    let err = HttpEmbedder::connect(http_config(&url)).await.unwrap_err();
    assert!(err.to_string().contains("timed out after 500 ms"), "{err}");

    let (url, _) = stand_in(0, "malformed").await;
    let err = HttpEmbedder::connect(http_config(&url)).await.unwrap_err();
    assert!(matches!(err, EmbedError::BadResponse { .. }), "{err}");
}

#[sqlx::test(migrations = "../migrations")]
async fn another_embedding_model_is_refused_until_reembedded(pool: PgPool) {
    let dir = kb_dir();
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    let (url, _) = stand_in(0, "ok").await;
    let http = Embedder::Http(HttpEmbedder::connect(http_config(&url)).await.unwrap());

    let err = store::ensure_embedder_matches(&pool, &http)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KnowledgeError::EmbeddingMismatch { .. }));
    assert!(
        msg.contains("amal-hash-ngram-v1")
            && msg.contains("stand-in-8d")
            && msg.contains("kb reembed"),
        "{msg}"
    );

    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let summary = store::reembed(&pool, &http, store::REEMBED_BATCH, {
        let seen = seen.clone();
        move |d, t| seen.lock().unwrap().push((d, t))
    })
    .await
    .unwrap();
    assert_eq!(summary.embedded as i64, chunks);
    assert_eq!(summary.already_current, 0);
    assert_eq!(
        seen.lock().unwrap().iter().max().copied(),
        Some((chunks as u64, chunks as u64))
    );
    store::ensure_embedder_matches(&pool, &http)
        .await
        .expect("now consistent");
    let (column, models): (String, i64) = sqlx::query_as(
        "SELECT format_type(atttypid, atttypmod), (SELECT count(DISTINCT embedding_model) FROM document_chunks WHERE embedding_model = 'stand-in-8d') \
         FROM pg_attribute WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((column.as_str(), models), ("vector(8)", 1));
    let outcome = Retriever::new(http.clone())
        .search(
            &pool,
            &SearchRequest {
                text: "sleep",
                lang: Some(Lang::En),
                category: None,
                k: 2,
            },
        )
        .await
        .unwrap();
    assert!(!outcome.results.is_empty());
    // And the offline embedder is now the one refused.
    assert!(
        store::ensure_embedder_matches(&pool, &offline())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn cli_contract_ingest_and_search_json() {
    let data = tempfile::tempdir().unwrap();
    let kb = kb_dir();
    let run = |args: &[&str]| run_engine(data.path(), args);
    let dir = kb.path().display().to_string();
    let summary = run(&["kb", "ingest", &dir, "--approve"]);
    assert!(summary.contains("4 new"), "{summary}");
    let json: serde_json::Value = serde_json::from_str(&run(&[
        "kb",
        "search",
        "can't sleep at night, insomnia",
        "--k",
        "5",
        "--json",
    ]))
    .unwrap();
    let results = json["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() <= 5);
    let first = &results[0];
    for key in ["document_id", "title", "source", "chunk_index", "score"] {
        assert!(!first[key].is_null(), "{key} missing in {first}");
    }
    assert_eq!(first["title"], "Sleep problems");
    assert!(first["source"].as_str().unwrap().ends_with("en/sleep.md"));
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    run(&["db", "stop"]);
}

/// Retrieval ranks full-text matches with the OR of the query's distinct words instead of the
/// pair-expanded query it matches with (`knowledge::retrieval`): PostgreSQL's `ts_rank` gives
/// both the same value whenever the top operator is not AND. Checked here on the engine's own
/// query shapes, so that a PostgreSQL upgrade that changed it would be noticed.
#[sqlx::test(migrations = "../migrations")]
async fn ranking_with_the_distinct_words_equals_ranking_with_the_pairs(pool: PgPool) {
    let texts = [
        (
            "english",
            "Stopping smoking: tobacco cravings pass. Smoking less each day helps you stop.",
        ),
        (
            "english",
            "Tobacco and alcohol; stop one, stop the other, smoking or not.",
        ),
        (
            "french",
            "Arrêter le tabac : l'envie de fumer passe. Fumer moins chaque jour aide à arrêter.",
        ),
    ];
    let cases = [
        (
            "english",
            "((stop) & (smokng | smoking)) | ((stop) & (tobacco | tabac)) | ((smokng | smoking) & (tobacco | tabac))",
            "stop | smokng | smoking | tobacco | tabac",
        ),
        (
            "english",
            "((day) & (crave)) | ((day) & (pass)) | ((day) & (help)) | ((crave) & (pass)) | ((crave) & (help)) | ((pass) & (help))",
            "day | crave | pass | help",
        ),
        (
            "french",
            "((arreter) & (tabac)) | ((arreter) & (fumer | fume)) | ((tabac) & (fumer | fume))",
            "arreter | tabac | fumer | fume",
        ),
    ];
    let mut ranked = 0;
    for (config, text) in texts {
        for (query_config, pairs, distinct) in cases {
            if config != query_config {
                continue;
            }
            let (by_pairs, by_words): (f32, f32) = sqlx::query_as(
                "SELECT ts_rank(to_tsvector($1::regconfig, $2), to_tsquery($1::regconfig, $3), 1), \
                        ts_rank(to_tsvector($1::regconfig, $2), to_tsquery($1::regconfig, $4), 1)",
            )
            .bind(config)
            .bind(text)
            .bind(pairs)
            .bind(distinct)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(by_pairs, by_words, "{text} / {pairs}");
            ranked += usize::from(by_pairs > 0.0);
        }
    }
    // Not only zeros compared: most texts match their queries.
    assert!(ranked >= 3, "{ranked} ranked");
}
