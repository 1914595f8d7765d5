-- Retrieval: what the knowledge base's hybrid search needs on document_chunks.
--
-- 1. Each chunk carries its document's language, category and whether it may be retrieved
--    (approved, PII-stripped, not deleted), kept in step by triggers so that every writer gets
--    them. Filters then act on the chunk row itself, inside the index scans.
-- 2. One partial HNSW index per language (WHERE retrievable AND lang = ...): a language filter
--    can never starve the nearest-neighbour list, because each index holds only the rows that
--    pass it. (The category filter relies on pgvector 0.8 iterative index scans, which the
--    engine enables per query.) Pending and rejected chunks are in no vector index at all.
-- 3. Full-text search runs on search_text (the engine's folding of the content: lower case,
--    accents and Arabic diacritics removed, letter variants unified) with each language's own
--    text-search configuration, in a stored tsvector column with a GIN index.
-- 4. kb_terms: the vocabulary of the knowledge base per language, with a trigram index, to
--    correct misspelled query words before full-text search. A trigram index over whole chunks
--    (idx_document_chunks_content_trgm) cost thousands of index entries per chunk on every
--    ingestion and could not rank; it and the three expression FTS indexes are replaced.

ALTER TABLE documents ADD COLUMN category varchar(30);
COMMENT ON COLUMN documents.category IS
    'Knowledge category (addiction, mental_health, prevention, resources, crisis), from front matter.';

ALTER TABLE document_chunks
    ADD COLUMN lang char(2),
    ADD COLUMN category varchar(30),
    ADD COLUMN retrievable boolean NOT NULL DEFAULT false,
    ADD COLUMN search_text text;

-- Chunks written before this migration (none in practice) get their folding at re-ingestion.
UPDATE document_chunks SET search_text = lower(content) WHERE search_text IS NULL;

ALTER TABLE document_chunks
    ALTER COLUMN search_text SET NOT NULL,
    ADD CONSTRAINT chk_document_chunks_lang CHECK (lang IN ('ar', 'fr', 'en')),
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
        CASE lang
            WHEN 'ar' THEN to_tsvector('arabic'::regconfig, search_text)
            WHEN 'fr' THEN to_tsvector('french'::regconfig, search_text)
            ELSE to_tsvector('english'::regconfig, search_text)
        END) STORED;

COMMENT ON COLUMN document_chunks.retrievable IS
    'Copy of: document approved AND pii_stripped AND not deleted. Maintained by triggers.';
COMMENT ON COLUMN document_chunks.search_text IS
    'The content folded for matching (engine''s lang::fold); the source of tsv.';

-- A chunk inherits its document's state when inserted or moved.
CREATE FUNCTION document_chunks_inherit_document() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.lang,
           d.category,
           d.review_status = 'approved' AND d.pii_stripped AND d.deleted_at IS NULL
      INTO NEW.lang, NEW.category, NEW.retrievable
      FROM documents d
     WHERE d.id = NEW.document_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_document_chunks_inherit_document
    BEFORE INSERT OR UPDATE OF document_id ON document_chunks
    FOR EACH ROW EXECUTE FUNCTION document_chunks_inherit_document();

-- A document's review, deletion, language or category change reaches its chunks.
CREATE FUNCTION documents_propagate_to_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    now_retrievable boolean := NEW.review_status = 'approved' AND NEW.pii_stripped AND NEW.deleted_at IS NULL;
BEGIN
    UPDATE document_chunks c
       SET lang = NEW.lang,
           category = NEW.category,
           retrievable = now_retrievable
     WHERE c.document_id = NEW.id
       AND (c.lang IS DISTINCT FROM NEW.lang
            OR c.category IS DISTINCT FROM NEW.category
            OR c.retrievable IS DISTINCT FROM now_retrievable);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trigger_documents_propagate_to_chunks
    AFTER UPDATE OF review_status, pii_stripped, deleted_at, language, category ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_propagate_to_chunks();

DROP INDEX IF EXISTS idx_document_chunks_embedding_hnsw;
DROP INDEX IF EXISTS idx_document_chunks_content_trgm;
DROP INDEX IF EXISTS idx_document_chunks_content_fts_ar;
DROP INDEX IF EXISTS idx_document_chunks_content_fts_fr;
DROP INDEX IF EXISTS idx_document_chunks_content_fts_en;

CREATE INDEX idx_document_chunks_embedding_hnsw_ar ON document_chunks
    USING hnsw (embedding vector_cosine_ops) WHERE retrievable AND lang = 'ar';
CREATE INDEX idx_document_chunks_embedding_hnsw_fr ON document_chunks
    USING hnsw (embedding vector_cosine_ops) WHERE retrievable AND lang = 'fr';
CREATE INDEX idx_document_chunks_embedding_hnsw_en ON document_chunks
    USING hnsw (embedding vector_cosine_ops) WHERE retrievable AND lang = 'en';
CREATE INDEX idx_document_chunks_tsv ON document_chunks USING gin (tsv) WHERE retrievable;
CREATE INDEX idx_document_chunks_document ON document_chunks (document_id, chunk_index);

-- Ingestion identifies a document by its source path: one live document per source, which also
-- makes concurrent ingestion of the same file safe.
CREATE UNIQUE INDEX documents_source_live_key ON documents (source)
    WHERE deleted_at IS NULL AND source IS NOT NULL;

CREATE TABLE kb_terms (
    lang char(2) NOT NULL,
    term text    NOT NULL,
    CONSTRAINT kb_terms_pkey PRIMARY KEY (lang, term),
    CONSTRAINT chk_kb_terms_lang CHECK (lang IN ('ar', 'fr', 'en'))
);
COMMENT ON TABLE kb_terms IS
    'Folded words of the knowledge base per language, for correcting misspelled query words.';
CREATE INDEX idx_kb_terms_trgm ON kb_terms USING gin (term gin_trgm_ops);

GRANT SELECT, INSERT, UPDATE, DELETE ON kb_terms TO amal_app;
GRANT SELECT ON kb_terms TO amal_readonly;
GRANT ALL ON kb_terms TO amal_admin;

-- set_embedding_dimension now manages the per-language indexes.
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
        EXECUTE format(
            'CREATE INDEX idx_document_chunks_embedding_hnsw_%1$s ON document_chunks '
            'USING hnsw (embedding vector_cosine_ops) WHERE retrievable AND lang = %2$L', code, code);
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
