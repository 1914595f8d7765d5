//! Writing the knowledge base: ingestion, review and re-embedding.
//!
//! A document and its chunks always change together in one transaction: after a crash a
//! document has either its old chunks or its new ones, never a mixture.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use pgvector::Vector;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::KnowledgeError;
use super::chunk::{self, ChunkConfig};
use super::embed::{Embedder, TextKind};
use super::source::SourceDocument;
use crate::audit::{self, AuditEntry};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::lang::{fold, is_stopword};
use crate::staff::{self, Actor, StaffRole};

/// How documents are ingested.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Mark the documents approved (trusted sources).
    pub approve: bool,
    /// The staff member ingesting, recorded as reviewer when approving and in the audit trail.
    pub actor: Option<Actor>,
    /// Chunk sizes.
    pub chunking: ChunkConfig,
}

impl IngestOptions {
    /// Approving while ingesting is approving: admins only, as [`approve`]. Without an actor
    /// the caller is the machine's administrator (the CLI without `--as`, seeding).
    fn authorize(&self) -> Result<(), KnowledgeError> {
        match (&self.actor, self.approve) {
            (Some(actor), true) => {
                staff::require(actor, StaffRole::Admin, "approving knowledge")?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// What ingesting one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum IngestOutcome {
    /// A new document.
    New {
        /// Its id.
        document_id: Uuid,
        /// Its chunks.
        chunks: usize,
    },
    /// The file changed: its document and chunks were replaced.
    Updated {
        /// Its id.
        document_id: Uuid,
        /// Its new chunks.
        chunks: usize,
    },
    /// Same content as already stored (approved now if `--approve` and it was not).
    Unchanged {
        /// Its id.
        document_id: Uuid,
    },
    /// Not ingested, with the reason.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// Prepares chunk rows: content, folded search text, embedding.
struct PreparedChunks {
    chunks: Vec<chunk::Chunk>,
    search_texts: Vec<String>,
    embeddings: Vec<Vector>,
    terms: Vec<String>,
}

async fn prepare(
    doc: &SourceDocument,
    embedder: &Embedder,
    config: ChunkConfig,
) -> Result<PreparedChunks, KnowledgeError> {
    let chunks = chunk::chunk(&doc.content, config);
    let tags = doc.front_matter.get("tags").map(String::as_str);
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| chunk_text(&doc.title, tags, &c.content))
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = embedder
        .embed(TextKind::Passage, &text_refs)
        .await?
        .into_iter()
        .map(Vector::from)
        .collect();
    let search_texts: Vec<String> = texts.iter().map(|t| fold(t)).collect();
    let terms: BTreeSet<String> = search_texts
        .iter()
        .flat_map(|t| t.split(' '))
        .filter(|w| {
            w.chars().count() >= 3 && !is_stopword(w) && !w.chars().all(|c| c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect();
    Ok(PreparedChunks {
        chunks,
        search_texts,
        embeddings,
        terms: terms.into_iter().collect(),
    })
}

/// The text a chunk is embedded and indexed as: its document's title and front-matter tags
/// (`tags: [a, b]`) as context, then its content. A paragraph about "cutting down" is about
/// alcohol because its document says so. Ingestion and re-embedding both use it, so that a
/// re-embedded chunk gets the vector ingestion would give it.
pub fn chunk_text(title: &str, tags: Option<&str>, content: &str) -> String {
    let tags = tags
        .map(|t| t.trim_matches(|c| c == '[' || c == ']').replace(',', " "))
        .unwrap_or_default();
    let context = format!("{title} {tags}");
    format!("{}\n{content}", context.trim())
}

/// The vocabulary words (`kb_terms`) an ingestion run has already committed, per language:
/// a bulk load's documents share most of their words, and sending them again only for the
/// database to find each one present was a tenth of its ingestion work.
#[derive(Default)]
struct SeenTerms(Mutex<HashSet<(&'static str, String)>>);

impl SeenTerms {
    /// The terms of `prepared` not committed yet by this run.
    fn unseen(&self, lang: &'static str, terms: &[String]) -> Vec<String> {
        let seen = self.0.lock().expect("seen terms");
        terms
            .iter()
            .filter(|t| !seen.contains(&(lang, (*t).clone())))
            .cloned()
            .collect()
    }

    /// Records terms whose insert has committed.
    fn committed(&self, lang: &'static str, terms: Vec<String>) {
        let mut seen = self.0.lock().expect("seen terms");
        seen.extend(terms.into_iter().map(|t| (lang, t)));
    }
}

/// Stores one prepared file: new, updated, unchanged or rejected as a duplicate.
pub async fn ingest_document(
    pool: &PgPool,
    embedder: &Embedder,
    doc: &SourceDocument,
    options: &IngestOptions,
) -> Result<IngestOutcome, KnowledgeError> {
    options.authorize()?;
    store_document(pool, embedder, doc, options, &SeenTerms::default()).await
}

/// [`ingest_document`] within an ingestion run that shares `seen` between its documents.
/// Whether a stored document is `doc` as read now: the same text, title and front matter. A
/// changed title, tags or translation key is a change too: the title and tags are embedded
/// with every chunk, and the translation key decides which article answers in which language.
fn same_document(
    doc: &SourceDocument,
    hash: &str,
    title: &str,
    front: Option<serde_json::Value>,
) -> bool {
    hash == doc.content_hash
        && title == doc.title
        && front
            .and_then(|f| {
                serde_json::from_value::<std::collections::BTreeMap<String, String>>(f).ok()
            })
            .is_some_and(|f| f == doc.front_matter)
}

async fn store_document(
    pool: &PgPool,
    embedder: &Embedder,
    doc: &SourceDocument,
    options: &IngestOptions,
    seen: &SeenTerms,
) -> Result<IngestOutcome, KnowledgeError> {
    // Embedding may call a remote provider: do it before taking any lock, then re-check
    // under the lock in case another process stored this file meanwhile.
    let known: Option<(String, String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT content_hash, title, metadata -> 'front_matter' FROM documents \
         WHERE source = $1 AND deleted_at IS NULL",
    )
    .bind(&doc.source)
    .fetch_optional(pool)
    .await?;
    let prepared =
        if known.is_some_and(|(hash, title, front)| same_document(doc, &hash, &title, front)) {
            None
        } else {
            Some(prepare(doc, embedder, options.chunking).await?)
        };

    let mut tx = pool.begin().await?;
    // Ingestion is idempotent: a crash can only lose the last moments of ingested documents
    // (never leave one half-written), and ingesting again restores them; not waiting for each
    // commit's WAL flush is what makes bulk loads fast.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let existing: Option<(Uuid, String, String, String, Option<serde_json::Value>)> =
        sqlx::query_as(
            "SELECT id, content_hash, review_status, title, metadata -> 'front_matter' \
               FROM documents WHERE source = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(&doc.source)
        .fetch_optional(&mut *tx)
        .await?;

    if let Some((id, hash, status, title, front)) = &existing
        && same_document(doc, hash, title, front.clone())
    {
        if options.approve && status != "approved" {
            approve_row(&mut tx, *id, options.actor.as_ref(), "kb.ingest.approve").await?;
            events::notify(
                &mut tx,
                &ChangeNotice::new(ChangeKind::Document).document(*id),
            )
            .await?;
            tx.commit().await?;
        }
        return Ok(IngestOutcome::Unchanged { document_id: *id });
    }

    let prepared = match prepared {
        Some(p) => p,
        // Changed by another process between the two reads: prepare now (rare).
        None => prepare(doc, embedder, options.chunking).await?,
    };
    let total_tokens: usize = prepared.chunks.iter().map(|c| c.tokens).sum();
    let metadata = json!({
        "format": doc.format,
        "front_matter": doc.front_matter,
        "pii_redactions": doc.pii,
        "pii_redactions_total": doc.pii.total(),
    });
    let (status, reviewer, reviewed) = if options.approve {
        ("approved", options.actor.as_ref().map(|a| a.id), true)
    } else {
        ("pending", None, false)
    };

    let (document_id, updated) = match existing {
        Some((id, ..)) => {
            let result = sqlx::query(
                "UPDATE documents SET title = $2, content = $3, content_hash = $4, language = $5, category = $6, \
                        author = $7, metadata = $8, pii_stripped = true, review_status = $9, reviewed_by = $10, \
                        reviewed_at = CASE WHEN $11 THEN now() END, chunk_count = $12, total_tokens = $13 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&doc.title)
            .bind(&doc.content)
            .bind(&doc.content_hash)
            .bind(doc.lang.locale())
            .bind(&doc.category)
            .bind(&doc.author)
            .bind(&metadata)
            .bind(status)
            .bind(reviewer)
            .bind(reviewed)
            .bind(prepared.chunks.len() as i32)
            .bind(total_tokens as i32)
            .execute(&mut *tx)
            .await;
            if let Err(e) = result {
                return duplicate_or(e, pool, &doc.content_hash).await;
            }
            sqlx::query("DELETE FROM document_chunks WHERE document_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            (id, true)
        }
        None => {
            let inserted: Result<Uuid, sqlx::Error> = sqlx::query_scalar(
                "INSERT INTO documents (title, content, content_hash, metadata, source, author, language, category, \
                        pii_stripped, review_status, reviewed_by, reviewed_at, chunk_count, total_tokens) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $10, CASE WHEN $11 THEN now() END, $12, $13) \
                 RETURNING id",
            )
            .bind(&doc.title)
            .bind(&doc.content)
            .bind(&doc.content_hash)
            .bind(&metadata)
            .bind(&doc.source)
            .bind(&doc.author)
            .bind(doc.lang.locale())
            .bind(&doc.category)
            .bind(status)
            .bind(reviewer)
            .bind(reviewed)
            .bind(prepared.chunks.len() as i32)
            .bind(total_tokens as i32)
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(id) => (id, false),
                Err(e) => return duplicate_or(e, pool, &doc.content_hash).await,
            }
        }
    };

    insert_chunks(&mut tx, document_id, embedder.model(), &prepared).await?;
    let new_terms = seen.unseen(doc.lang.code(), &prepared.terms);
    if !new_terms.is_empty() {
        sqlx::query(
            "INSERT INTO kb_terms (lang, term) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(doc.lang.code())
        .bind(&new_terms)
        .execute(&mut *tx)
        .await?;
    }
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: options.actor.as_ref().map(|a| a.id),
            action: if updated { "kb.ingest.update" } else { "kb.ingest.new" },
            resource_type: "document",
            resource_id: Some(document_id),
            details: json!({ "source": doc.source, "approved": options.approve, "chunks": prepared.chunks.len() }),
        },
    )
    .await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::Document).document(document_id),
    )
    .await?;
    tx.commit().await?;
    seen.committed(doc.lang.code(), new_terms);
    let chunks = prepared.chunks.len();
    Ok(if updated {
        IngestOutcome::Updated {
            document_id,
            chunks,
        }
    } else {
        IngestOutcome::New {
            document_id,
            chunks,
        }
    })
}

/// A unique-hash violation means the same content is already stored from another file.
async fn duplicate_or(
    e: sqlx::Error,
    pool: &PgPool,
    hash: &str,
) -> Result<IngestOutcome, KnowledgeError> {
    match crate::db::violated_constraint(&e) {
        Some("documents_content_hash_key") => {
            let other: Option<String> =
                sqlx::query_scalar("SELECT source FROM documents WHERE content_hash = $1")
                    .bind(hash)
                    .fetch_optional(pool)
                    .await?
                    .flatten();
            Ok(IngestOutcome::Rejected {
                reason: format!(
                    "same content as the already ingested {}",
                    other.as_deref().unwrap_or("document without a source")
                ),
            })
        }
        Some("documents_source_live_key") => Ok(IngestOutcome::Rejected {
            reason: "ingested concurrently by another process; run again".into(),
        }),
        _ => Err(e.into()),
    }
}

async fn insert_chunks(
    conn: &mut PgConnection,
    document_id: Uuid,
    model: &str,
    prepared: &PreparedChunks,
) -> Result<(), sqlx::Error> {
    let n = prepared.chunks.len();
    let mut contents = Vec::with_capacity(n);
    let (mut indexes, mut tokens, mut starts, mut ends) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in &prepared.chunks {
        contents.push(c.content.as_str());
        indexes.push(c.index as i32);
        tokens.push(c.tokens as i32);
        starts.push(c.start as i32);
        ends.push(c.end as i32);
    }
    sqlx::query(
        "INSERT INTO document_chunks (document_id, content, search_text, embedding, embedding_model, chunk_index, \
                token_count, start_position, end_position) \
         SELECT $1, u.content, u.search_text, u.embedding, $5, u.idx, u.tokens, u.start_pos, u.end_pos \
         FROM UNNEST($2::text[], $3::text[], $4::vector[], $6::int4[], $7::int4[], $8::int4[], $9::int4[]) \
              AS u(content, search_text, embedding, idx, tokens, start_pos, end_pos)",
    )
    .bind(document_id)
    .bind(&contents)
    .bind(&prepared.search_texts)
    .bind(&prepared.embeddings)
    .bind(model)
    .bind(&indexes)
    .bind(&tokens)
    .bind(&starts)
    .bind(&ends)
    .execute(conn)
    .await?;
    Ok(())
}

async fn approve_row(
    conn: &mut PgConnection,
    id: Uuid,
    actor: Option<&Actor>,
    action: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE documents SET review_status = 'approved', reviewed_by = $2, reviewed_at = now(), \
                metadata = metadata - 'review_reason' WHERE id = $1",
    )
    .bind(id)
    .bind(actor.map(|a| a.id))
    .execute(&mut *conn)
    .await?;
    audit::record(
        conn,
        &AuditEntry {
            actor: actor.map(|a| a.id),
            action,
            resource_type: "document",
            resource_id: Some(id),
            details: json!({}),
        },
    )
    .await?;
    Ok(())
}

/// A document as the review queue lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DocumentSummary {
    /// Its id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// The file it came from.
    pub source: Option<String>,
    /// ar, fr or en.
    pub lang: String,
    /// Its category, if any.
    pub category: Option<String>,
    /// pending, approved or rejected.
    pub review_status: String,
    /// Number of chunks.
    pub chunk_count: i32,
    /// PII redactions made at ingestion.
    pub pii_redactions: i64,
    /// When it was ingested.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Documents with the given review status (`None`: all), oldest first, deleted ones excluded.
pub async fn list_documents(
    conn: &mut PgConnection,
    status: Option<&str>,
) -> Result<Vec<DocumentSummary>, KnowledgeError> {
    Ok(sqlx::query_as(
        "SELECT id, title, source, lang::text AS lang, category, review_status, chunk_count, \
                COALESCE((metadata->>'pii_redactions_total')::bigint, 0) AS pii_redactions, created_at \
         FROM documents WHERE deleted_at IS NULL AND ($1::text IS NULL OR review_status = $1) \
         ORDER BY created_at, title",
    )
    .bind(status)
    .fetch_all(conn)
    .await?)
}

/// A document's whole text as a reviewer reads it before approving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DocumentText {
    /// Its id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// ar, fr or en.
    pub lang: String,
    /// pending, approved or rejected.
    pub review_status: String,
    /// The text as stored (after PII redaction), which the assistant would cite.
    pub content: String,
}

/// The text of document `id` (deleted ones are not found). Knowledge documents are the
/// service's own published material, not people's data: any staff member may read them.
pub async fn document_text(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<DocumentText, KnowledgeError> {
    sqlx::query_as(
        "SELECT id, title::text AS title, lang::text AS lang, review_status::text AS review_status, \
                content FROM documents WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(KnowledgeError::DocumentNotFound(id))
}

/// Approves a pending or rejected document (admins only). Its chunks become retrievable.
pub async fn approve(pool: &PgPool, id: Uuid, actor: &Actor) -> Result<(), KnowledgeError> {
    staff::require(actor, StaffRole::Admin, "approving knowledge")?;
    let mut tx = pool.begin().await?;
    let status = review_status_for_update(&mut tx, id).await?;
    if status == "approved" {
        return Err(KnowledgeError::AlreadyReviewed { id, status });
    }
    approve_row(&mut tx, id, Some(actor), "kb.approve").await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::Document).document(id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Rejects a document with a reason (admins only). It is never retrieved.
pub async fn reject(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
    reason: &str,
) -> Result<(), KnowledgeError> {
    staff::require(actor, StaffRole::Admin, "rejecting knowledge")?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(KnowledgeError::EmptyReason);
    }
    let mut tx = pool.begin().await?;
    let status = review_status_for_update(&mut tx, id).await?;
    if status == "rejected" {
        return Err(KnowledgeError::AlreadyReviewed { id, status });
    }
    sqlx::query(
        "UPDATE documents SET review_status = 'rejected', reviewed_by = $2, reviewed_at = now(), \
                metadata = jsonb_set(metadata, '{review_reason}', to_jsonb($3::text)) WHERE id = $1",
    )
    .bind(id)
    .bind(actor.id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(actor.id),
            action: "kb.reject",
            resource_type: "document",
            resource_id: Some(id),
            details: json!({ "reason": reason, "previous_status": status }),
        },
    )
    .await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::Document).document(id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn review_status_for_update(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<String, KnowledgeError> {
    sqlx::query_scalar(
        "SELECT review_status FROM documents WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(KnowledgeError::DocumentNotFound(id))
}

/// The embedding model and dimension the stored vectors belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddingSettings {
    /// Model name.
    pub model: String,
    /// Dimension.
    pub dimension: usize,
}

/// Reads `embedding_settings`.
pub async fn embedding_settings(
    conn: &mut PgConnection,
) -> Result<EmbeddingSettings, KnowledgeError> {
    let (model, dimension): (String, i32) =
        sqlx::query_as("SELECT model, dimension FROM embedding_settings WHERE id")
            .fetch_one(conn)
            .await?;
    Ok(EmbeddingSettings {
        model,
        dimension: dimension as usize,
    })
}

/// How many chunks have a vector (a scan of the whole table on a large knowledge base).
pub async fn embedded_chunks(conn: &mut PgConnection) -> Result<i64, KnowledgeError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM document_chunks WHERE embedding IS NOT NULL")
            .fetch_one(conn)
            .await?,
    )
}

/// Checks at start-up that the configured embedder is the one the stored vectors came from.
///
/// With no vectors stored yet, the schema simply follows the configured model. With vectors of
/// another model or dimension, searching would compare incomparable vectors: that is an error
/// telling the operator to run `amal-engine kb reembed`.
pub async fn ensure_embedder_matches(
    pool: &PgPool,
    embedder: &Embedder,
) -> Result<(), KnowledgeError> {
    let rebuilt = ensure_search_indexes(pool).await?;
    if rebuilt > 0 {
        tracing::warn!(
            rebuilt,
            "search indexes were missing (an interrupted bulk load?) and were rebuilt"
        );
    }
    let mut conn = pool.acquire().await?;
    let settings = embedding_settings(&mut conn).await?;
    if settings.model == embedder.model() && settings.dimension == embedder.dimension() {
        return Ok(());
    }
    // Every command and server start passes here: only a model change counts the chunks.
    let embedded = embedded_chunks(&mut conn).await?;
    if embedded == 0 {
        sqlx::query("SELECT set_embedding_dimension($1, $2)")
            .bind(embedder.model())
            .bind(embedder.dimension() as i32)
            .execute(&mut *conn)
            .await?;
        tracing::info!(
            model = embedder.model(),
            dimension = embedder.dimension(),
            "embedding column follows the configured model"
        );
        return Ok(());
    }
    Err(KnowledgeError::EmbeddingMismatch {
        configured_model: embedder.model().to_string(),
        configured_dimension: embedder.dimension(),
        stored_model: settings.model,
        stored_dimension: settings.dimension,
        embedded_chunks: embedded,
    })
}

/// What [`reembed`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReembedSummary {
    /// Chunks this run embedded.
    pub embedded: u64,
    /// Chunks that already had a vector of the model (ingested with it, or re-embedded by an
    /// interrupted run) and were left as they were.
    pub already_current: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Chunks a re-embedding worker reads, embeds and writes at a time (`kb reembed`'s batch).
/// Each batch commits on its own, so an interrupted run loses at most the batches in flight.
pub const REEMBED_BATCH: usize = 32;

/// Re-embeds, with `embedder`, every chunk whose vector is not of its model yet; changes the
/// column's model and dimension first if needed (which clears every vector of the old model).
///
/// Resumable: a chunk already embedded with the model is not embedded again, so a run that
/// was interrupted goes on where it stopped. [`Embedder::parallelism`] workers each read a
/// batch, embed it and write it, so embedding uses every core while the database reads and
/// writes. Searches keep working meanwhile: the full-text half over every chunk, the vector half
/// over the chunks re-embedded so far. `batch` chunks at a time ([`REEMBED_BATCH`]); `progress`
/// is told (done, to do) before the first batch and after each.
pub async fn reembed(
    pool: &PgPool,
    embedder: &Embedder,
    batch: usize,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<ReembedSummary, KnowledgeError> {
    let started = std::time::Instant::now();
    sqlx::query("SELECT set_embedding_dimension($1, $2)")
        .bind(embedder.model())
        .bind(embedder.dimension() as i32)
        .execute(pool)
        .await?;
    let (total, todo): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE embedding IS NULL OR embedding_model IS DISTINCT FROM $1) \
         FROM document_chunks",
    )
    .bind(embedder.model())
    .fetch_one(pool)
    .await?;
    let (total, todo) = (total as u64, todo as u64);
    progress(0, todo);

    // Workers take batches in id order from one cursor; each batch commits alone.
    let cursor = std::sync::Arc::new(tokio::sync::Mutex::new(Uuid::nil()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = std::sync::Arc::new(progress);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..embedder.parallelism().max(1) {
        let (pool, embedder, cursor, done, progress) = (
            pool.clone(),
            embedder.clone(),
            cursor.clone(),
            done.clone(),
            progress.clone(),
        );
        workers.spawn(async move {
            while let Some(n) = reembed_batch(&pool, &embedder, &cursor, batch).await? {
                progress(
                    done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n,
                    todo,
                );
            }
            Ok::<_, KnowledgeError>(())
        });
    }
    // The first failure stops the others: what they committed stays, and a new run resumes.
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        let result = match joined {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(KnowledgeError::BadQuery(format!(
                "re-embedding worker failed: {e}"
            ))),
        };
        if let Err(e) = result
            && failure.is_none()
        {
            workers.abort_all();
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(ReembedSummary {
        embedded: done.load(std::sync::atomic::Ordering::Relaxed),
        already_current: total.saturating_sub(todo),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Takes the next batch after `cursor` of chunks without a vector of `embedder`'s model, embeds
/// it and writes it. Returns how many chunks it did, `None` when none is left.
async fn reembed_batch(
    pool: &PgPool,
    embedder: &Embedder,
    cursor: &tokio::sync::Mutex<Uuid>,
    batch: usize,
) -> Result<Option<u64>, KnowledgeError> {
    let rows: Vec<(Uuid, String, String, Option<String>)> = {
        let mut after = cursor.lock().await;
        let rows: Vec<(Uuid, String, String, Option<String>)> = sqlx::query_as(
            "SELECT c.id, c.content, d.title, d.metadata->'front_matter'->>'tags' \
             FROM document_chunks c JOIN documents d ON d.id = c.document_id \
             WHERE c.id > $1 AND (c.embedding IS NULL OR c.embedding_model IS DISTINCT FROM $2) \
             ORDER BY c.id LIMIT $3",
        )
        .bind(*after)
        .bind(embedder.model())
        .bind(batch.max(1) as i64)
        .fetch_all(pool)
        .await?;
        match rows.last() {
            Some((last, ..)) => *after = *last,
            None => return Ok(None),
        }
        rows
    };
    let texts: Vec<String> = rows
        .iter()
        .map(|(_, content, title, tags)| chunk_text(title, tags.as_deref(), content))
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors: Vec<Vector> = embedder
        .embed(TextKind::Passage, &text_refs)
        .await?
        .into_iter()
        .map(Vector::from)
        .collect();
    let ids: Vec<Uuid> = rows.iter().map(|(id, ..)| *id).collect();
    sqlx::query(
        "UPDATE document_chunks c SET embedding = u.embedding, embedding_model = $3 \
         FROM UNNEST($1::uuid[], $2::vector[]) AS u(id, embedding) WHERE c.id = u.id",
    )
    .bind(&ids)
    .bind(&vectors)
    .bind(embedder.model())
    .execute(pool)
    .await?;
    Ok(Some(rows.len() as u64))
}

/// Concurrent documents in an ingestion run. Each document is text processing in the engine
/// (chunking, PII stripping, embedding) and then its transaction in the database; twice the
/// cores of our machines keeps both sides busy (fewer left CPU idle, more gained nothing;
/// docs/retrieval.md, "Design choices").
pub const INGEST_WORKERS: usize = 4;

/// From this many files on, a batch rebuilds the search indexes instead of maintaining them.
pub const BULK_FILES: usize = 500;

/// The index names of one language: its HNSW index and its full-text (GIN) index.
fn search_index_names(lang: crate::lang::Lang) -> [String; 2] {
    [
        format!("idx_document_chunks_embedding_hnsw_{}", lang.code()),
        format!("idx_document_chunks_tsv_{}", lang.code()),
    ]
}

/// Drops the per-language search indexes, HNSW and full-text (before a bulk load).
pub async fn drop_search_indexes(pool: &PgPool) -> Result<(), KnowledgeError> {
    for lang in crate::lang::Lang::ALL {
        for name in search_index_names(lang) {
            let sql = format!("DROP INDEX IF EXISTS {name}");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
        }
    }
    Ok(())
}

/// Creates any missing per-language search index, HNSW or full-text (after a bulk load, or at
/// start-up after a load was interrupted). Returns how many were built.
pub async fn ensure_search_indexes(pool: &PgPool) -> Result<usize, KnowledgeError> {
    let mut built = 0;
    for lang in crate::lang::Lang::ALL {
        for name in search_index_names(lang) {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(pool)
                .await?;
            if exists {
                continue;
            }
            let mut tx = pool.begin().await?;
            // The builds are fastest when the whole graph (or posting lists) fits in memory.
            sqlx::query("SET LOCAL maintenance_work_mem = '512MB'")
                .execute(&mut *tx)
                .await?;
            let sql: String = if name.contains("_hnsw_") {
                // The build parameters live in the database (vector_index_ddl), with the
                // migration and set_embedding_dimension that build the same index.
                sqlx::query_scalar("SELECT vector_index_ddl($1)")
                    .bind(lang.code())
                    .fetch_one(&mut *tx)
                    .await?
            } else {
                // As migration 20261122400001 creates it.
                format!(
                    "CREATE INDEX {name} ON document_chunks USING gin (tsv) \
                     WHERE retrievable AND lang = '{}'",
                    lang.code()
                )
            };
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            built += 1;
        }
    }
    Ok(built)
}

/// One file's outcome in a batch.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The path as given.
    pub source: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: IngestOutcome,
}

/// The totals of a batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    /// New documents.
    pub new: usize,
    /// Changed documents whose chunks were replaced.
    pub updated: usize,
    /// Documents already stored with the same content.
    pub unchanged: usize,
    /// Files not ingested (each with its reason in `files`).
    pub rejected: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Of those, seconds spent building the search indexes after a bulk load.
    pub index_seconds: f64,
    /// Every file, in the order given.
    pub files: Vec<FileReport>,
}

/// Reads, prepares and stores every file under `paths` with `workers` concurrent workers.
/// A bad file is reported and the batch goes on; a database or embedder failure stops it.
/// `on_file` is called as each file finishes (for progress bars).
pub async fn ingest_paths(
    pool: &PgPool,
    embedder: &Embedder,
    paths: &[std::path::PathBuf],
    options: &IngestOptions,
    workers: usize,
    on_file: impl Fn(&FileReport) + Send + Sync + 'static,
) -> Result<IngestSummary, KnowledgeError> {
    options.authorize()?;
    let started = std::time::Instant::now();
    let (files, errors) = super::source::collect(paths);
    let mut reports: Vec<Option<FileReport>> = vec![None; files.len()];
    let on_file = std::sync::Arc::new(on_file);
    let mut summary = IngestSummary::default();
    for (source, error) in errors {
        let report = FileReport {
            source,
            outcome: IngestOutcome::Rejected {
                reason: error.to_string(),
            },
        };
        on_file(&report);
        summary.files.push(report);
    }

    // Inserting into an HNSW graph (or a GIN index) row by row costs far more than building it
    // once: a large batch drops the search indexes and rebuilds them at the end (searches stay
    // correct meanwhile, through exact scans; a crash leaves them to the next start-up's
    // ensure_search_indexes).
    let bulk = files.len() >= BULK_FILES;
    if bulk {
        drop_search_indexes(pool).await?;
    }
    let queue = std::sync::Arc::new(std::sync::Mutex::new(
        files.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let seen = std::sync::Arc::new(SeenTerms::default());
    queue.lock().expect("queue").reverse();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (pool, embedder, options, queue, on_file, seen) = (
            pool.clone(),
            embedder.clone(),
            options.clone(),
            queue.clone(),
            on_file.clone(),
            seen.clone(),
        );
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some((i, path)) = next else { break };
                let source = path.display().to_string();
                let outcome = match super::source::read(&path) {
                    Err(e) => IngestOutcome::Rejected {
                        reason: e.to_string(),
                    },
                    Ok(doc) => store_document(&pool, &embedder, &doc, &options, &seen).await?,
                };
                let report = FileReport { source, outcome };
                on_file(&report);
                done.push((i, report));
            }
            Ok::<_, KnowledgeError>(done)
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| KnowledgeError::BadQuery(format!("ingestion worker failed: {e}")))
        {
            Ok(Ok(done)) => {
                for (i, report) in done {
                    reports[i] = Some(report);
                }
            }
            Ok(Err(e)) | Err(e) => failure = Some(e),
        }
    }
    if bulk {
        let indexing = std::time::Instant::now();
        ensure_search_indexes(pool).await?;
        summary.index_seconds = indexing.elapsed().as_secs_f64();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    summary.files.extend(reports.into_iter().flatten());
    for f in &summary.files {
        match &f.outcome {
            IngestOutcome::New { chunks, .. } => {
                summary.new += 1;
                summary.chunks += chunks;
            }
            IngestOutcome::Updated { chunks, .. } => {
                summary.updated += 1;
                summary.chunks += chunks;
            }
            IngestOutcome::Unchanged { .. } => summary.unchanged += 1,
            IngestOutcome::Rejected { .. } => summary.rejected += 1,
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}
