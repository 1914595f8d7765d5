//! Sentence vectors: each retrievable chunk's sentences embedded apart (table
//! `chunk_sentences`), so that the extractive answer can choose the sentences closest in
//! meaning to a question as well as those sharing its words: a Darija question shares few
//! words with an article in MSA, and a paragraph's most useful sentence need not repeat the
//! question's words.
//!
//! Filled after ingestion, never in its path ([`fill`]: `kb sentences`, the server's worker,
//! the demo's seeding): embedding every sentence again costs about as much as embedding the
//! chunks, and ingestion keeps the model's speed (docs/benchmarks.md). A chunk without sentence
//! vectors is answered by words alone. A sentence is its position among [`split`]'s sentences
//! of the chunk, so its text is not stored twice.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use pgvector::Vector;
use sqlx::PgPool;
use uuid::Uuid;

use super::KnowledgeError;
use super::chunk::count_tokens;
use super::embed::{Embedder, TextKind};

/// Splits chunk text into sentences (keeping their end marks), as the chunker does. Lines
/// without an end mark are headings or list stubs, which read badly inside a paragraph: they
/// are left out, and so are sentences of fewer than four tokens ("Yes." "See below."), which
/// carry no answer.
pub fn split(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '\n' {
            // A line break without an end mark ends a heading: drop it.
            current.clear();
            continue;
        }
        current.push(c);
        if matches!(c, '.' | '!' | '?' | '…' | '؟') {
            let s = current
                .trim()
                .trim_start_matches(['#', '-', '*', ' '])
                .trim();
            if count_tokens(s) >= 4 {
                out.push(s.to_string());
            }
            current.clear();
        }
    }
    out
}

/// Whether `embedder` gives sentence vectors worth comparing: the hashed embedder sees
/// spelling, which the answer's word matching already does.
pub fn has_meaning(embedder: &Embedder) -> bool {
    !matches!(embedder, Embedder::Hash(_))
}

/// Retrievable chunks whose sentences have no vectors of `model` yet.
pub async fn missing(pool: &PgPool, model: &str) -> Result<i64, KnowledgeError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM document_chunks c WHERE c.retrievable AND NOT EXISTS \
         (SELECT 1 FROM chunk_sentences s WHERE s.chunk_id = c.id AND s.embedding_model = $1)",
    )
    .bind(model)
    .fetch_one(pool)
    .await?)
}

/// How much of the model a fill may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Every core (a command run for it).
    AllCores,
    /// One call at a time: in a server, the other cores stay free for people's messages.
    OneCore,
}

/// Embeds the sentences of up to `limit` retrievable chunks that have none of `embedder`'s
/// model yet, and returns how many chunks it did (0: nothing left, or an embedder without
/// meaning). The chunks are locked while their sentences are embedded (`SKIP LOCKED`: several
/// servers share the work), and each batch commits whole.
pub async fn fill(
    pool: &PgPool,
    embedder: &Embedder,
    limit: usize,
    share: Share,
) -> Result<usize, KnowledgeError> {
    if !has_meaning(embedder) || limit == 0 {
        return Ok(0);
    }
    let model = embedder.model();
    let mut tx = pool.begin().await?;
    let chunks: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT c.id, c.content FROM document_chunks c WHERE c.retrievable AND NOT EXISTS \
         (SELECT 1 FROM chunk_sentences s WHERE s.chunk_id = c.id AND s.embedding_model = $1) \
         ORDER BY c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED",
    )
    .bind(model)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?;
    if chunks.is_empty() {
        return Ok(0);
    }
    // One row per sentence, in the order the sentences are embedded; a chunk without a
    // sentence gets one row with no vector.
    let (mut chunk_ids, mut positions, mut embedded) = (Vec::new(), Vec::new(), Vec::new());
    let mut texts: Vec<String> = Vec::new();
    for (id, content) in &chunks {
        let sentences = split(content);
        if sentences.is_empty() {
            chunk_ids.push(*id);
            positions.push(0i32);
            embedded.push(false);
        }
        for (position, s) in sentences.into_iter().enumerate() {
            chunk_ids.push(*id);
            positions.push(position as i32);
            embedded.push(true);
            texts.push(s);
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut vectors = match share {
        Share::AllCores => embedder.embed_all(TextKind::Passage, &refs).await?,
        Share::OneCore => embedder.embed(TextKind::Passage, &refs).await?,
    }
    .into_iter();
    let embeddings: Vec<Option<Vector>> = embedded
        .iter()
        .map(|&e| e.then(|| Vector::from(vectors.next().expect("one vector per sentence"))))
        .collect();
    let ids: Vec<Uuid> = chunks.iter().map(|(id, _)| *id).collect();
    sqlx::query("DELETE FROM chunk_sentences WHERE chunk_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO chunk_sentences (chunk_id, position, embedding, embedding_model) \
         SELECT u.chunk_id, u.position, u.embedding, $4 \
         FROM UNNEST($1::uuid[], $2::int4[], $3::vector[]) AS u(chunk_id, position, embedding)",
    )
    .bind(&chunk_ids)
    .bind(&positions)
    .bind(&embeddings)
    .bind(model)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(chunks.len())
}

/// Fills every missing chunk in batches of `batch`, calling `progress(done, total)` after each.
pub async fn fill_all(
    pool: &PgPool,
    embedder: &Embedder,
    batch: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, KnowledgeError> {
    if !has_meaning(embedder) {
        return Ok(0);
    }
    let total = missing(pool, embedder.model()).await? as usize;
    let mut done = 0;
    loop {
        let n = fill(pool, embedder, batch.max(1), Share::AllCores).await?;
        if n == 0 {
            return Ok(done);
        }
        done += n;
        progress(done, total.max(done));
    }
}

/// Cosine similarity of each sentence of `chunks` to `query` (a normalised query vector of
/// `model`), by chunk and position: empty for chunks without sentence vectors of `model`.
pub async fn similarities(
    pool: &PgPool,
    chunks: &[Uuid],
    model: &str,
    query: &[f32],
) -> Result<HashMap<(Uuid, usize), f32>, KnowledgeError> {
    let mut out = HashMap::new();
    if chunks.is_empty() {
        return Ok(out);
    }
    // The few sentences of an answer's chunks: computed here rather than by a scan's
    // operator, with the vector the search already has.
    let mut rows = sqlx::query_as::<_, (Uuid, i32, Vector)>(
        "SELECT chunk_id, position, embedding FROM chunk_sentences \
         WHERE chunk_id = ANY($1) AND embedding_model = $2 AND embedding IS NOT NULL",
    )
    .bind(chunks)
    .bind(model)
    .fetch(pool);
    while let Some((chunk, position, v)) = rows.try_next().await? {
        let v = v.as_slice();
        if v.len() == query.len() {
            let dot: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
            out.insert((chunk, position as usize), dot);
        }
    }
    Ok(out)
}
