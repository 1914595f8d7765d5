-- Sentence vectors (issue 17, answers that address the question): each retrievable chunk's
-- sentences embedded apart, so that the extractive answer can choose the sentences closest in
-- meaning to the question, not only those sharing its words. Owned by the knowledge module.
--
-- A sentence is identified by its position among the chunk's sentences as the answer splits
-- them (`knowledge::sentences::split`), so its text is not stored twice. Rows are filled after
-- ingestion (`kb sentences`, the server's worker, the demo's seeding), never in its path: a
-- chunk without rows is answered by words alone. A chunk with no complete sentence gets one
-- row with no vector, so that it is not picked again. A re-embedded knowledge base keeps the
-- rows of the previous model until the worker replaces them; readers take only the current
-- model's.
CREATE TABLE chunk_sentences (
    chunk_id        uuid    NOT NULL REFERENCES document_chunks (id) ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 0),
    embedding       vector,
    embedding_model text    NOT NULL,
    PRIMARY KEY (chunk_id, position)
);
