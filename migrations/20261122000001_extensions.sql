-- Extensions the data model depends on.
--
-- vector     pgvector (0.8): embedding column and HNSW index on document_chunks.
-- pg_trgm    trigram GIN index for fuzzy matching on chunk text.
-- btree_gin  lets GIN indexes combine scalar columns with tsvector/jsonb keys.
--
-- UUID keys use gen_random_uuid(), built into PostgreSQL 13+, so neither
-- uuid-ossp nor pgcrypto is needed.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;
