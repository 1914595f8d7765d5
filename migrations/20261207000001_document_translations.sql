-- Translations of a knowledge document are linked by the `translation` key of their front
-- matter (kept in documents.metadata): a hit in one language answers from the same article in
-- the person's language. Looked up by key and language for every cross-language answer.
CREATE INDEX IF NOT EXISTS idx_documents_translation
    ON documents ((metadata -> 'front_matter' ->> 'translation'), lang)
    WHERE deleted_at IS NULL;
