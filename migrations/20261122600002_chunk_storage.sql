-- Where document_chunks keeps its large values.
--
-- A chunk row (content, its folded search_text, the tsvector and a 384-dimension embedding of
-- 1,544 bytes) is over the 2 kB TOAST threshold, so PostgreSQL compressed and moved values out
-- of line, largest first: it tried pglz on every embedding (float arrays do not compress; the
-- attempt was 4% of the server's ingestion time) and moved the tsvector out of line, so ranking
-- the full-text matches of a search read every match's tsvector through the TOAST index
-- (about three buffer reads per match: a third of a search's buffers in EXPLAIN).
--
-- Now the embedding is EXTERNAL (never compressed; it goes out of line first, and only the
-- final few rows of a search read it from the table: the HNSW indexes hold their own copy) and
-- the tsvector is MAIN (compressed in line, out of line only as a last resort). Applies to rows
-- written from now on; re-ingesting or `kb reembed` rewrites older ones.
ALTER TABLE document_chunks
    ALTER COLUMN embedding SET STORAGE EXTERNAL,
    ALTER COLUMN tsv SET STORAGE MAIN;

-- Text that is compressed (content, its folded copy, the tsvector; a document's whole text)
-- uses lz4 where the server has it (Debian's PostgreSQL does): pglz was 7% of the server's
-- ingestion time, lz4 compresses several times faster and decompresses faster for searches.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
                WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE document_chunks
            ALTER COLUMN content SET COMPRESSION lz4,
            ALTER COLUMN search_text SET COMPRESSION lz4,
            ALTER COLUMN tsv SET COMPRESSION lz4;
        ALTER TABLE documents ALTER COLUMN content SET COMPRESSION lz4;
    END IF;
END;
$$;

-- set_embedding_dimension changes the column's type, which resets its storage: set it again.
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
