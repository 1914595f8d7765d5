-- Retrieval tuning, from the knowledge-base benchmark (README, "Retrieval quality and
-- performance"): 100,000 chunks, hybrid search p95 <= 10 ms, HNSW recall@10 >= 0.98,
-- ingestion >= 2,000 chunks/s.
--
-- 1. The documents' three full-text indexes (to_tsvector of the whole document in arabic,
--    french and english) serve no query: retrieval searches chunks (document_chunks.tsv).
--    They cost three parses and stemmings of every ingested document, the largest share of
--    the server's ingestion work in a profile.
-- 2. idx_document_chunks_document duplicates the unique constraint's index on the same
--    columns (document_id, chunk_index): one more index to maintain for every chunk.
-- 3. Full-text search per language: one partial GIN index per language instead of one for
--    all. A query only ever asks one language's chunks (lang = ... AND tsv @@ ...), and its
--    posting lists are then a third as long.
-- 4. HNSW build parameters in one place (vector_index_ddl), used here, by
--    set_embedding_dimension and by the engine after a bulk load. The defaults (m = 16,
--    ef_construction = 64) gave recall@10 0.91 at ef_search 100 on the benchmark's hashed
--    n-gram vectors, 0.974 at ef_search 400; a denser graph built with a wider candidate list
--    reaches 0.98 at a small ef_search, which keeps searches fast.

DROP INDEX IF EXISTS idx_documents_content_fts_ar;
DROP INDEX IF EXISTS idx_documents_content_fts_fr;
DROP INDEX IF EXISTS idx_documents_content_fts_en;

DROP INDEX IF EXISTS idx_document_chunks_document;

DROP INDEX IF EXISTS idx_document_chunks_tsv;
CREATE INDEX idx_document_chunks_tsv_ar ON document_chunks USING gin (tsv)
    WHERE retrievable AND lang = 'ar';
CREATE INDEX idx_document_chunks_tsv_fr ON document_chunks USING gin (tsv)
    WHERE retrievable AND lang = 'fr';
CREATE INDEX idx_document_chunks_tsv_en ON document_chunks USING gin (tsv)
    WHERE retrievable AND lang = 'en';

-- The statement that creates one language's vector index (if missing).
CREATE FUNCTION vector_index_ddl(code text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF code IS NULL OR code NOT IN ('ar', 'fr', 'en') THEN
        RAISE EXCEPTION 'vector_index_ddl: unknown language %', coalesce(code, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN format(
        'CREATE INDEX IF NOT EXISTS idx_document_chunks_embedding_hnsw_%1$s ON document_chunks '
        'USING hnsw (embedding vector_cosine_ops) WITH (m = 24, ef_construction = 128) '
        'WHERE retrievable AND lang = %2$L', code, code);
END;
$$;
COMMENT ON FUNCTION vector_index_ddl(text) IS
    'CREATE INDEX statement of a language''s HNSW index: the one place for its build parameters.';

DO $$
DECLARE
    code text;
BEGIN
    FOREACH code IN ARRAY ARRAY['ar', 'fr', 'en'] LOOP
        EXECUTE format('DROP INDEX IF EXISTS idx_document_chunks_embedding_hnsw_%s', code);
        EXECUTE vector_index_ddl(code);
    END LOOP;
END;
$$;

-- set_embedding_dimension builds the indexes with vector_index_ddl.
CREATE OR REPLACE FUNCTION set_embedding_dimension(model text, dim integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    settings embedding_settings%ROWTYPE;
    code text;
BEGIN
    IF model IS NULL OR btrim(model) = '' THEN
        RAISE EXCEPTION 'set_embedding_dimension: model must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 2000: pgvector's maximum dimension for an HNSW index on vector.
    IF dim IS NULL OR dim < 1 OR dim > 2000 THEN
        RAISE EXCEPTION 'set_embedding_dimension: dimension must be between 1 and 2000 (got %)',
                coalesce(dim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT * INTO settings FROM embedding_settings WHERE id;
    IF FOUND AND settings.model = set_embedding_dimension.model
             AND settings.dimension = dim THEN
        RETURN;
    END IF;

    FOREACH code IN ARRAY ARRAY['ar', 'fr', 'en'] LOOP
        EXECUTE format('DROP INDEX IF EXISTS idx_document_chunks_embedding_hnsw_%s', code);
    END LOOP;
    EXECUTE format(
        'ALTER TABLE document_chunks ALTER COLUMN embedding TYPE vector(%s) USING NULL', dim);
    UPDATE document_chunks SET embedding_model = NULL WHERE embedding_model IS NOT NULL;
    FOREACH code IN ARRAY ARRAY['ar', 'fr', 'en'] LOOP
        EXECUTE vector_index_ddl(code);
    END LOOP;

    INSERT INTO embedding_settings AS s (id, model, dimension, updated_at)
    VALUES (true, set_embedding_dimension.model, dim, now())
    ON CONFLICT (id) DO UPDATE
        SET model = EXCLUDED.model,
            dimension = EXCLUDED.dimension,
            updated_at = EXCLUDED.updated_at;
END;
$$;
REVOKE ALL ON FUNCTION set_embedding_dimension(text, integer) FROM PUBLIC;
