//! Understanding with the real model (multilingual-e5-small, installed by `scripts/setup.sh`),
//! on small data: answers from the right article in the person's language through
//! translations, and the crisis gate's second net.

use amal_engine::decision::auto::{DecisionEngine, Route};
use amal_engine::knowledge::e5::E5Embedder;
use amal_engine::knowledge::store::{self, IngestOptions};
use amal_engine::knowledge::{Embedder, Retriever};
use amal_engine::lang::Lang;
use sqlx::PgPool;

use crate::fixtures::numbers;

fn e5() -> Embedder {
    Embedder::E5(E5Embedder::from_env().unwrap_or_else(|e| panic!("{e}")))
}

fn engine_with(embedder: Embedder) -> DecisionEngine {
    DecisionEngine::new(Retriever::new(embedder), numbers(), 0.5, false).unwrap()
}

/// The starter knowledge base's articles on cannabis and tobacco, in English and French.
fn starter_articles() -> Vec<std::path::PathBuf> {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/knowledge");
    [
        "en/02-cannabis.md",
        "fr/02-cannabis.md",
        "en/04-tobacco-nicotine.md",
        "fr/04-tobacco-nicotine.md",
    ]
    .iter()
    .map(|p| seeds.join(p))
    .collect()
}

/// An engine on the model over [`starter_articles`], ingested and approved.
async fn engine_over_starter_articles(pool: &PgPool) -> DecisionEngine {
    let embedder = e5();
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    store::ingest_paths(pool, &embedder, &starter_articles(), &options, 2, |_| {})
        .await
        .unwrap();
    engine_with(embedder)
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn cannabis_is_answered_from_the_cannabis_article_in_the_persons_language(pool: PgPool) {
    let engine = engine_over_starter_articles(&pool).await;

    for (question, lang, source) in [
        (
            "How can I stop smoking cannabis?",
            Lang::En,
            "en/02-cannabis.md",
        ),
        (
            "comment arrêter de fumer du cannabis ?",
            Lang::Fr,
            "fr/02-cannabis.md",
        ),
        (
            "how do I quit cigarettes?",
            Lang::En,
            "en/04-tobacco-nicotine.md",
        ),
    ] {
        let d = engine.decide(&pool, question, lang).await;
        assert_eq!(d.decision, Route::Rag, "{question}: {:?}", d.evidence);
        let cited = &d.answer.as_ref().unwrap().citations;
        assert!(
            cited[0].source.as_deref().unwrap().ends_with(source),
            "{question}: {cited:?} {}",
            d.evidence
        );
    }

    // The English article answers a French question when the French articles are withdrawn,
    // and the answer says so in French.
    sqlx::query("UPDATE documents SET review_status = 'rejected' WHERE lang = 'fr'")
        .execute(&pool)
        .await
        .unwrap();
    let question = "comment arrêter de fumer du cannabis ?";
    // Found by meaning alone, across languages: an answer comes from the cannabis article and
    // says where it comes from; a match too weak for an answer goes to a person (what e5-small
    // does here today: its nearest English chunk is the tobacco article's, docs/retrieval.md).
    let d = engine.decide(&pool, question, Lang::Fr).await;
    assert_eq!(d.lang, Lang::Fr);
    match d.decision {
        Route::Rag => {
            let cited = &d.answer.as_ref().unwrap().citations;
            assert!(
                cited[0]
                    .source
                    .as_deref()
                    .unwrap()
                    .ends_with("en/02-cannabis.md"),
                "{cited:?}"
            );
            assert!(d.reply.contains("notre article en anglais"), "{}", d.reply);
        }
        Route::Support => assert_eq!(d.reason_code, "low_confidence"),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_second_net_only_adds_escalations_and_needs_a_semantic_model(_pool: PgPool) {
    let engine = engine_with(e5());
    assert!(engine.semantic_net().await.is_some());
    // An exemplar of the bank the rules let through: the net catches it.
    let text = "je voudrais m'endormir et que tout s'arrête";
    assert!(engine.assess_crisis_rules(text).is_none());
    let m = engine
        .assess_crisis(text)
        .await
        .expect("the second net fires");
    assert!(m.rule_id.starts_with("semantic."), "{m:?}");
    assert_eq!(m.language, Lang::Fr);
    // Everyday questions are not crises, and the rules keep their authority.
    for everyday in [
        "I can't sleep at night",
        "comment arrêter de fumer ?",
        "ما نقدرش نرقد",
    ] {
        assert!(engine.assess_crisis(everyday).await.is_none(), "{everyday}");
    }
    let rule = engine.assess_crisis("I want to kill myself").await.unwrap();
    assert!(!rule.rule_id.starts_with("semantic."), "{rule:?}");
    // The hashed embedder has no notion of meaning: no second net.
    let hashed = engine_with(Embedder::hashed());
    assert!(hashed.semantic_net().await.is_none());
    assert!(hashed.assess_crisis(text).await.is_none());
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn other_subjects_no_rule_names_get_the_scope_reply_by_meaning(pool: PgPool) {
    let engine = engine_over_starter_articles(&pool).await;
    assert!(engine.scope_net().await.is_some());
    for (text, lang) in [
        (
            "what's the exchange rate of the euro to the dinar today",
            Lang::En,
        ),
        ("who scored for Algeria in the last game", Lang::En),
        ("où est-ce que je peux réparer mon frigo à Oran ?", Lang::Fr),
    ] {
        let d = engine.decide(&pool, text, lang).await;
        assert_eq!(d.reason_code, "out_of_scope", "{text}: {}", d.evidence);
        assert_eq!(d.evidence["step"], "scope_net", "{text}: not a rule's");
        assert_eq!(d.decision, Route::Rag, "no ticket");
        assert!((0.0..=1.0).contains(&d.confidence));
    }
    // The service's questions are never off-topic: a word of its subjects keeps the net out,
    // and a question near the service's own stays with the team when nothing answers it.
    for (text, lang) in [
        ("my son spends all his salary on football bets", Lang::En),
        ("wach kayen tbib nafsani f dzayer?", Lang::Ar),
        ("How do I open up to someone?", Lang::En),
    ] {
        let d = engine.decide(&pool, text, lang).await;
        assert_ne!(d.reason_code, "out_of_scope", "{text}: {}", d.evidence);
    }
    // The hashed embedder has no notion of meaning: no scope net.
    assert!(engine_with(Embedder::hashed()).scope_net().await.is_none());
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn answers_choose_sentences_by_meaning_once_they_are_embedded(pool: PgPool) {
    use amal_engine::knowledge::sentences;

    let embedder = e5();
    let article = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seeds/knowledge/fr/01-alcohol.md");
    let options = IngestOptions {
        approve: true,
        ..Default::default()
    };
    store::ingest_paths(&pool, &embedder, &[article], &options, 2, |_| {})
        .await
        .unwrap();
    let engine = engine_with(embedder.clone());
    let question = "peut-on arrêter l'alcool du jour au lendemain sans risque";

    // Before the sentences are embedded: by words alone, said in the decision log.
    let d = engine.decide(&pool, question, Lang::Fr).await;
    assert_eq!(d.decision, Route::Rag, "{:?}", d.evidence);
    assert_eq!(d.evidence["sentences_by_meaning"], false, "{}", d.evidence);

    let chunks = sentences::missing(&pool, embedder.model()).await.unwrap();
    assert!(chunks > 0);
    let done = sentences::fill_all(&pool, &embedder, 2, |_, _| {})
        .await
        .unwrap();
    assert_eq!(done as i64, chunks);
    assert_eq!(
        sentences::missing(&pool, embedder.model()).await.unwrap(),
        0
    );
    // Every chunk has one row per sentence the answer splits it into (or one empty marker).
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.content, (SELECT count(*) FROM chunk_sentences s WHERE s.chunk_id = c.id) \
         FROM document_chunks c",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (content, n) in rows {
        assert_eq!(
            n as usize,
            sentences::split(&content).len().max(1),
            "{content}"
        );
    }
    assert_eq!(
        sentences::fill(&pool, &embedder, 8, sentences::Share::OneCore)
            .await
            .unwrap(),
        0
    );

    // By meaning: the sentence that answers (do not stop suddenly and alone when drinking
    // heavily every day) shares almost no word with the question.
    let d = engine.decide(&pool, question, Lang::Fr).await;
    assert_eq!(d.evidence["sentences_by_meaning"], true, "{}", d.evidence);
    assert!(d.reply.contains("n'arrêtez pas brutalement"), "{}", d.reply);

    // A re-ingested (changed) document's chunks take their sentence vectors with them.
    sqlx::query("DELETE FROM document_chunks")
        .execute(&pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM chunk_sentences")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
