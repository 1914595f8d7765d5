//! The knowledge base: documents, chunks, their embeddings and the embedding settings.

use sqlx::PgPool;

use super::{assert_violates, assert_violates_domain, document, vector_literal};
use crate::fixtures::TestResult;

#[sqlx::test(migrations = "../migrations")]
async fn documents_review_status_is_checked_and_lang_is_derived(pool: PgPool) -> TestResult {
    let id = document(&pool, "h-fr", "fr-FR").await?;
    let (status, lang): (String, String) =
        sqlx::query_as("SELECT review_status, lang FROM documents WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await?;
    assert_eq!((status.as_str(), lang.as_str()), ("pending", "fr"));
    let ar: String = sqlx::query_scalar("SELECT lang FROM documents WHERE id = $1")
        .bind(document(&pool, "h-ar", "ar-DZ").await?)
        .fetch_one(&pool)
        .await?;
    assert_eq!(ar, "ar");

    for status in ["approved", "rejected", "pending"] {
        sqlx::query("UPDATE documents SET review_status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&pool)
            .await?;
    }
    let result = sqlx::query("UPDATE documents SET review_status = 'maybe' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await;
    assert_violates(result, "chk_documents_review_status");
    assert_violates(
        document(&pool, "h-fr", "fr-FR").await,
        "documents_content_hash_key",
    );
    assert_violates_domain(
        document(&pool, "h-de", "de-DE").await,
        "locale_code",
        "chk_locale_code_supported",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn document_chunks_store_384_dimension_embeddings_with_their_model(
    pool: PgPool,
) -> TestResult {
    let doc = document(&pool, "h", "ar-DZ").await?;
    let insert = |index: i32, vector: Option<String>, model: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO document_chunks (document_id, content, search_text, chunk_index, embedding, embedding_model)
             VALUES ($1, 'نص', 'نص', $2, $3::text::vector, $4)",
        )
        .bind(doc)
        .bind(index)
        .bind(vector)
        .bind(model)
        .execute(&pool)
    };
    insert(
        0,
        Some(vector_literal(384, 0.1)),
        Some("amal-hash-ngram-v1"),
    )
    .await?;
    insert(1, None, None).await?;
    assert_violates(
        insert(2, Some(vector_literal(384, 0.1)), None).await,
        "chk_document_chunks_embedding_model",
    );
    let wrong = insert(3, Some(vector_literal(3, 0.1)), Some("m"))
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("expected 384 dimensions"),
        "{wrong}"
    );
    assert_violates(
        insert(0, None, None).await,
        "document_chunks_document_id_chunk_index_key",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn embedding_settings_start_at_the_default_embedder_and_match_the_column(
    pool: PgPool,
) -> TestResult {
    let (model, dimension): (String, i32) =
        sqlx::query_as("SELECT model, dimension FROM embedding_settings")
            .fetch_one(&pool)
            .await?;
    assert_eq!((model.as_str(), dimension), ("amal-hash-ngram-v1", 384));
    assert_eq!(embedding_column_type(&pool).await?, "vector(384)");
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    // A singleton: no second row, no row with id = false.
    assert_violates(
        sqlx::query("INSERT INTO embedding_settings (model, dimension) VALUES ('x', 8)")
            .execute(&pool)
            .await,
        "embedding_settings_pkey",
    );
    assert_violates(
        sqlx::query("INSERT INTO embedding_settings (id, model, dimension) VALUES (false, 'x', 8)")
            .execute(&pool)
            .await,
        "chk_embedding_settings_singleton",
    );
    Ok(())
}

async fn embedding_column_type(pool: &PgPool) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'",
    )
    .fetch_one(pool)
    .await
}

/// The access method of the language's partial vector index, if it exists on the embedding
/// (an expression index: the column cast to half precision).
async fn hnsw_index(pool: &PgPool, lang: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT am.amname::text FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am am ON am.oid = c.relam
          WHERE c.relname = 'idx_document_chunks_embedding_hnsw_' || $1
            AND i.indrelid = 'document_chunks'::regclass
            AND pg_get_indexdef(i.indexrelid) LIKE '%((embedding)::halfvec(%'",
    )
    .bind(lang)
    .fetch_optional(pool)
    .await
}

#[sqlx::test(migrations = "../migrations")]
async fn set_embedding_dimension_changes_column_index_and_settings(pool: PgPool) -> TestResult {
    let doc = document(&pool, "h", "en-US").await?;
    sqlx::query(
        "INSERT INTO document_chunks (document_id, content, search_text, chunk_index, embedding, embedding_model)
         VALUES ($1, 'text', 'text', 0, $2::text::vector, 'amal-hash-ngram-v1')",
    )
    .bind(doc)
    .bind(vector_literal(384, 0.5))
    .execute(&pool)
    .await?;

    // Same model and dimension: nothing changes, the vector survives.
    sqlx::query("SELECT set_embedding_dimension('amal-hash-ngram-v1', 384)")
        .execute(&pool)
        .await?;
    let kept: Option<String> = sqlx::query_scalar("SELECT embedding_model FROM document_chunks")
        .fetch_one(&pool)
        .await?;
    assert_eq!(kept.as_deref(), Some("amal-hash-ngram-v1"));

    sqlx::query("SELECT set_embedding_dimension('multilingual-e5-base', 768)")
        .execute(&pool)
        .await?;
    assert_eq!(embedding_column_type(&pool).await?, "vector(768)");
    // The retyped column keeps its storage: never compressed, out of line before the tsvector.
    let storage: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, attstorage::text FROM pg_attribute
          WHERE attrelid = 'document_chunks'::regclass AND attname IN ('embedding', 'tsv')
          ORDER BY attname",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        storage,
        [("embedding".into(), "e".into()), ("tsv".into(), "m".into())]
    );
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    let (model, dimension): (String, i32) =
        sqlx::query_as("SELECT model, dimension FROM embedding_settings")
            .fetch_one(&pool)
            .await?;
    assert_eq!((model.as_str(), dimension), ("multilingual-e5-base", 768));
    // Old vectors are meaningless for the new model: cleared with their model.
    let (embedded, with_model): (i64, i64) =
        sqlx::query_as("SELECT count(embedding), count(embedding_model) FROM document_chunks")
            .fetch_one(&pool)
            .await?;
    assert_eq!((embedded, with_model), (0, 0));

    // The column now takes 768 dimensions and refuses 384.
    let update = |dim: usize| {
        sqlx::query("UPDATE document_chunks SET embedding = $1::text::vector, embedding_model = 'multilingual-e5-base'")
            .bind(vector_literal(dim, 0.25))
            .execute(&pool)
    };
    update(768).await?;
    assert!(update(384).await.is_err());

    // The recreated indexes are valid cosine HNSW indexes on the retyped column in half
    // precision, with its new dimension, one per language.
    for lang in ["ar", "fr", "en"] {
        let (definition, valid): (String, bool) = sqlx::query_as(
            "SELECT pg_get_indexdef(indexrelid), indisvalid FROM pg_index
              WHERE indexrelid = ('idx_document_chunks_embedding_hnsw_' || $1)::regclass",
        )
        .bind(lang)
        .fetch_one(&pool)
        .await?;
        assert!(
            definition.ends_with(&format!(
                "USING hnsw (((embedding)::halfvec(768)) halfvec_cosine_ops) WITH (m='16', ef_construction='256') \
                 WHERE (retrievable AND (lang = '{lang}'::bpchar))"
            )),
            "{definition}"
        );
        assert!(valid);
    }

    for bad in [
        "SELECT set_embedding_dimension('m', 0)",
        "SELECT set_embedding_dimension('m', 4001)",
        "SELECT set_embedding_dimension('', 8)",
    ] {
        let err = sqlx::query(bad).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("set_embedding_dimension"), "{err}");
    }
    assert_eq!(embedding_column_type(&pool).await?, "vector(768)");

    // Past vector's 2,000-dimension index limit: the half-precision indexes take up to 4,000.
    sqlx::query("SELECT set_embedding_dimension('text-embedding-3-large', 3072)")
        .execute(&pool)
        .await?;
    assert_eq!(embedding_column_type(&pool).await?, "vector(3072)");
    sqlx::query("UPDATE document_chunks SET embedding = $1::text::vector, embedding_model = 'text-embedding-3-large'")
        .bind(vector_literal(3072, 0.01))
        .execute(&pool)
        .await?;
    for lang in ["ar", "fr", "en"] {
        assert_eq!(
            hnsw_index(&pool, lang).await?.as_deref(),
            Some("hnsw"),
            "{lang}"
        );
    }
    Ok(())
}
