-- Embedding models of up to 4,000 dimensions.
--
-- The HNSW indexes hold half-precision vectors since 20261206000001, and pgvector indexes
-- halfvec up to 4,000 dimensions (vector: 2,000), so models such as 3,072-dimension ones can
-- now be configured. The column stays vector(N) (up to 16,000).

ALTER TABLE embedding_settings
    DROP CONSTRAINT chk_embedding_settings_dimension,
    ADD CONSTRAINT chk_embedding_settings_dimension CHECK (dimension BETWEEN 1 AND 4000);

-- Only the limit changes; the rest as in 20261122600002.
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
    -- 4000: pgvector's maximum dimension for an HNSW index on halfvec (the indexes' type
    -- since 20261206000001; on vector it was 2000).
    IF dim IS NULL OR dim < 1 OR dim > 4000 THEN
        RAISE EXCEPTION 'set_embedding_dimension: dimension must be between 1 and 4000 (got %)',
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
    -- A type change resets the column's storage to the type's default.
    ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE EXTERNAL;
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
