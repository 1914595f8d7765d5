//! Hybrid retrieval over approved knowledge: nearest neighbours by embedding fused with
//! full-text search by reciprocal rank fusion (RRF), and a confidence for the decision.
//!
//! - Vector: `ORDER BY embedding <=> q LIMIT n` (in half precision, as the index holds the
//!   vectors; no threshold ever sits in front of the index scan), on the language's partial
//!   HNSW index, re-ordered by full-precision distance; the category filter
//!   uses pgvector 0.8's iterative index scan so it cannot starve the list (only then: it slows
//!   every scan).
//! - Text: the language's text-search configuration on the folded chunk text; a chunk matches
//!   with two of the query's word groups, but on a large knowledge base two
//!   common words (by the planner's statistics) are not enough. A query word the knowledge
//!   base does not contain is corrected to its most similar known word (trigram similarity),
//!   so misspellings still match.
//! - Fusion: each list contributes `1 / (60 + rank)`; the sum orders the results.
//!
//! A search is four statements: the corrections look-up, then the vector list and the text
//! list at once on two connections (on two cores a search takes about the longer of the two,
//! not their sum), fusion in the engine, and the chunks and documents of the results.
//!
//! Only chunks of approved, PII-stripped, not deleted documents are ever returned: the
//! `retrievable` flag (kept by triggers) is in every branch's WHERE clause and in the vector
//! indexes' predicates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgvector::Vector;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::KnowledgeError;
use super::embed::Embedder;
use super::query_cache::{self, QueryCache};
use crate::lang::{Lang, fold, is_stopword};

/// The RRF constant: damps the weight of the very first ranks (the usual value from the
/// original RRF paper).
pub const RRF_K: u32 = 60;

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// The person's words.
    pub text: &'a str,
    /// Only chunks in this language; `None`: all three.
    pub lang: Option<Lang>,
    /// Only chunks of documents in this category.
    pub category: Option<&'a str>,
    /// How many results.
    pub k: usize,
}

/// One retrieved chunk, with the parts of its score.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The chunk.
    pub chunk_id: Uuid,
    /// Its document.
    pub document_id: Uuid,
    /// The document's title.
    pub title: String,
    /// The document's source (the ingested file's path).
    pub source: Option<String>,
    /// The document's category, if it has one.
    pub category: Option<String>,
    /// ar, fr or en.
    pub lang: String,
    /// The chunk's position in its document.
    pub chunk_index: i32,
    /// The chunk's text.
    pub content: String,
    /// The fused RRF score.
    pub score: f64,
    /// Rank in the vector list (1 = nearest), if it was in it.
    pub vector_rank: Option<i64>,
    /// Cosine similarity to the query (1 - cosine distance).
    pub vector_similarity: f64,
    /// Rank in the full-text list, if it matched.
    pub text_rank: Option<i64>,
    /// The full-text rank value (`ts_rank`, length-normalised), if it matched.
    pub text_score: Option<f32>,
    /// When the search matched this article in another language and this hit is its
    /// translation in the person's language ([`Retriever::search_across`]): the language and
    /// title of what was matched. The scores above are the matched chunk's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translated_from: Option<TranslatedFrom>,
}

/// What a search matched before it was brought to the person's language.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranslatedFrom {
    /// The matched chunk's language.
    pub lang: String,
    /// Its document's title.
    pub title: String,
}

/// The ranked hits and the confidence that the best one answers the query.
#[derive(Debug, Clone, Serialize)]
pub struct SearchOutcome {
    /// Best first.
    pub results: Vec<Hit>,
    /// Probability-like confidence in 0..1 that the top result is relevant (see [`confidence`]).
    pub confidence: f64,
    /// Query words corrected to known words: (typed, used).
    pub corrections: Vec<(String, String)>,
    /// Time spent in the database and embedder.
    #[serde(skip)]
    pub elapsed: Duration,
    /// Where that time went (for benchmarks and slow-query logs).
    #[serde(skip)]
    pub stages: StageTimings,
}

/// The time of each stage of a search; summed over the passes when a search falls back to
/// every language.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimings {
    /// Lexicon expansion and embedding the query.
    pub embed: Duration,
    /// Looking up corrections for unknown query words.
    pub correct: Duration,
    /// The vector list's statement (at the same time as the text list's).
    pub vector: Duration,
    /// The text list's statement.
    pub text: Duration,
    /// Fusion and reading the results' chunks, after both lists.
    pub details: Duration,
}

impl StageTimings {
    /// Each stage with its name, in the order a search runs them (the vector list at the same
    /// time as the text list).
    pub fn named(&self) -> [(&'static str, Duration); 5] {
        [
            ("embedding", self.embed),
            ("corrections", self.correct),
            ("vector list", self.vector),
            ("text list", self.text),
            ("fusion, details", self.details),
        ]
    }
}

impl std::ops::AddAssign for StageTimings {
    fn add_assign(&mut self, other: StageTimings) {
        self.embed += other.embed;
        self.correct += other.correct;
        self.vector += other.vector;
        self.text += other.text;
        self.details += other.details;
    }
}

/// Runs searches with one embedder and index settings.
#[derive(Debug, Clone)]
pub struct Retriever {
    embedder: Embedder,
    /// HNSW candidate list size per query (`hnsw.ef_search`): recall against speed.
    pub ef_search: u32,
    /// How many candidates each list contributes before fusion (at least k, at most 100).
    pub candidates: usize,
    /// A query word in more chunks than this is common: full-text matching does not pair it
    /// with another common word.
    pub common_term_chunks: f64,
    lexeme_stats: Arc<LexemeStats>,
    query_cache: Arc<QueryCache>,
    /// Turns the top hit's evidence into the confidence.
    pub calibration: Calibration,
}

/// Default `hnsw.ef_search`, which every engine connection starts with (`db::SESSION_SETTINGS`):
/// the lowest value at which the knowledge benchmark keeps recall@10 against an exact scan at
/// its target on a large knowledge base with the index parameters of `vector_index_ddl`
/// (figures: docs/benchmarks.md).
pub const DEFAULT_EF_SEARCH: u32 = 200;

impl Retriever {
    /// A retriever with the default settings.
    pub fn new(embedder: Embedder) -> Self {
        Retriever {
            ef_search: DEFAULT_EF_SEARCH,
            candidates: 40,
            common_term_chunks: COMMON_TERM_CHUNKS,
            lexeme_stats: Arc::default(),
            query_cache: Arc::new(QueryCache::from_env()),
            calibration: Calibration::for_model(embedder.model()),
            embedder,
        }
    }

    /// The query embedding of `text` after [`query_cache::normalise`], from the cache when the
    /// same text was embedded before (by a search or by the crisis gate's second net).
    pub async fn embed_query(&self, text: &str) -> Result<Arc<Vec<f32>>, KnowledgeError> {
        let key = query_cache::normalise(text);
        if let Some(v) = self.query_cache.get(&key) {
            return Ok(v);
        }
        let v = Arc::new(self.embedder.embed_query(&key).await?);
        self.query_cache.put(key, v.clone());
        Ok(v)
    }

    /// The vector a message is searched with: [`message_text`] embedded as a query through the
    /// cache. The
    /// decision's nets read the same vector, so that a new message costs the model one call:
    /// the expansion only adds the knowledge base's words for slang, Darija and Arabizi
    /// (measured: embedding the bare text for retrieval lowered the shipped set's recall@1 from
    /// 0.802 to 0.760).
    pub async fn message_vector(&self, text: &str) -> Result<Arc<Vec<f32>>, KnowledgeError> {
        self.embed_query(&message_text(text)).await
    }

    /// Query vectors held by the cache.
    pub fn cached_queries(&self) -> usize {
        self.query_cache.len()
    }

    /// The embedder queries are embedded with.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Searches approved knowledge. Without a language, the query's detected language is
    /// searched first, and every language when that finds nothing or nothing is detected.
    pub async fn search(
        &self,
        pool: &PgPool,
        request: &SearchRequest<'_>,
    ) -> Result<SearchOutcome, KnowledgeError> {
        let started = Instant::now();
        let text = request.text.trim();
        if text.is_empty() {
            return Err(KnowledgeError::BadQuery("the query is empty".into()));
        }
        let mut outcome = match request.lang.or_else(|| crate::lang::detect(text)) {
            Some(lang) => self.search_in(pool, request, &[lang], false).await?,
            None => self.search_in(pool, request, &Lang::ALL, false).await?,
        };
        if outcome.results.is_empty() && request.lang.is_none() {
            let first = outcome.stages;
            outcome = self.search_in(pool, request, &Lang::ALL, false).await?;
            outcome.stages += first;
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// Searches every language and brings each hit to `lang`: a hit in another language is
    /// replaced by the chunk of its translation in `lang` (documents sharing the front matter's
    /// `translation` key) nearest to the query, keeping the matched chunk's scores and
    /// naming it in [`Hit::translated_from`]; a hit with no translation in `lang` stays as it
    /// is. One article appears once, at its best rank. Meaning crosses languages (Darija asked
    /// of an article that matches best in French), and the person is answered in their own.
    pub async fn search_across(
        &self,
        pool: &PgPool,
        text: &str,
        lang: Lang,
        k: usize,
    ) -> Result<SearchOutcome, KnowledgeError> {
        let started = Instant::now();
        if text.trim().is_empty() {
            return Err(KnowledgeError::BadQuery("the query is empty".into()));
        }
        let request = SearchRequest {
            text,
            lang: None,
            category: None,
            k,
        };
        // An Arabic-speaking person writing in Latin script writes Darija (Arabizi): its words
        // are not misspelt French or English words to be corrected ("rani" is not "ranger").
        let arabizi = lang == Lang::Ar && text.chars().any(|c| c.is_ascii_alphabetic());
        let mut outcome = self.search_in(pool, &request, &Lang::ALL, arabizi).await?;
        let foreign: Vec<String> = outcome
            .results
            .iter()
            .filter(|h| h.lang != lang.code())
            .map(|h| h.document_id.to_string())
            .collect();
        if !foreign.is_empty() {
            let t = Instant::now();
            let query_vector = Vector::from(self.message_vector(text).await?.as_ref().clone());
            let rows: Vec<TranslationRow> = sqlx::query_as(TRANSLATIONS_SQL)
                .bind(&query_vector)
                .bind(foreign.join(" "))
                .bind(lang.code())
                .fetch_all(pool)
                .await?;
            let by_source: HashMap<Uuid, TranslationRow> = rows
                .into_iter()
                .map(|r| (r.source_document_id, r))
                .collect();
            for hit in &mut outcome.results {
                if hit.lang == lang.code() {
                    continue;
                }
                if let Some(row) = by_source.get(&hit.document_id) {
                    let matched = TranslatedFrom {
                        lang: hit.lang.clone(),
                        title: hit.title.clone(),
                    };
                    row.chunk.clone().place(hit);
                    hit.translated_from = Some(matched);
                }
            }
            let mut seen = std::collections::HashSet::new();
            outcome.results.retain(|h| seen.insert(h.document_id));
            outcome.stages.details += t.elapsed();
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// The vector list on a connection of its own.
    async fn vector_list(
        &self,
        pool: &PgPool,
        shape: &SearchShape<'_>,
        query_vector: &Vector,
        category: Option<&str>,
    ) -> Result<Vec<Uuid>, KnowledgeError> {
        // A message with no words ("👍", "???") embeds to the zero vector, which has no
        // direction: every cosine distance to it is undefined, so nothing is near it.
        if query_vector.as_slice().iter().all(|x| *x == 0.0) {
            return Ok(Vec::new());
        }
        let sql = vector_sql(shape);
        let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(query_vector)
            .bind(category);
        if self.ef_search == DEFAULT_EF_SEARCH && category.is_none() {
            // Every connection of the engine's pools starts with these settings
            // (`db::SESSION_SETTINGS`): one statement, one round trip, no transaction.
            return Ok(query.fetch_all(pool).await?);
        }
        // A category filter, or another ef_search, for this search only. Iterative scans keep
        // filtered (category) searches from returning fewer than k rows. The settings travel
        // with BEGIN in one message (a number from the engine, not user text): one round trip
        // fewer than a separate set_config.
        let mut tx = pool
            .begin_with(sqlx::AssertSqlSafe(format!(
                "BEGIN; SET LOCAL hnsw.ef_search = {}; \
                 SET LOCAL hnsw.iterative_scan = relaxed_order",
                self.ef_search
            )))
            .await?;
        let ids = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn search_in(
        &self,
        pool: &PgPool,
        request: &SearchRequest<'_>,
        langs: &[Lang],
        arabizi: bool,
    ) -> Result<SearchOutcome, KnowledgeError> {
        let text = request.text.trim();
        let k = request.k.clamp(1, MAX_K);
        let candidates = self.candidates.clamp(k, MAX_K);
        let lang_codes: Vec<&str> = langs.iter().map(|l| l.code()).collect();

        let mut stages = StageTimings::default();
        let t = Instant::now();
        let expansion = super::lexicon::Lexicon::builtin().expand(text);
        let query_vector = Vector::from(
            self.embed_query(&with_expansion(text, &expansion))
                .await?
                .as_ref()
                .clone(),
        );
        stages.embed = t.elapsed();
        let shape = SearchShape {
            langs,
            with_category: request.category.is_some(),
            dimension: query_vector.as_slice().len(),
            candidates,
        };
        let t = Instant::now();
        let words = query_words(text);
        let expansion_words = query_words(&expansion.join(" "));
        // Word frequencies can be estimated only in one language's stemming.
        let stemming = match langs {
            [one] => Some(*one),
            _ => None,
        };
        let facts = if words.is_empty() {
            WordFacts::default()
        } else {
            let correctable: Vec<String> = words
                .iter()
                .filter(|w| !(arabizi && w.chars().any(|c| c.is_ascii_alphabetic())))
                .cloned()
                .collect();
            word_facts(pool, &correctable, &expansion_words, &lang_codes, stemming).await?
        };
        let frequencies = if facts.lexemes.is_empty() {
            HashMap::new()
        } else {
            let stats = self.lexeme_stats.get(pool).await?;
            facts.estimated_chunks(&stats)
        };
        stages.correct = t.elapsed();
        // A word the knowledge base does not contain and could not correct (Arabizi written
        // to an Arabic knowledge base, a name) matches nothing: it is not a group a chunk must
        // hold, so the lexicon's expansion of "ma nergodch" can match on its own.
        let searchable: Vec<String> = if words.is_empty() {
            Vec::new()
        } else {
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT term FROM kb_terms WHERE lang = ANY($2::bpchar[]) \
                   AND term IN (SELECT w FROM string_to_table($1, ' ') AS w LIMIT 32)",
            )
            .bind(words.join(" "))
            .bind(&lang_codes)
            .fetch_all(pool)
            .await?;
            words
                .iter()
                .filter(|w| {
                    known.contains(w) || facts.corrections.iter().any(|(typed, _)| typed == *w)
                })
                .cloned()
                .collect()
        };
        let tsquery = text_queries(
            &searchable,
            &facts.corrections,
            &expansion_words,
            &Commonness {
                chunks: &frequencies,
                threshold: self.common_term_chunks,
            },
        );

        // The two candidate lists run at once, on two of the pool's connections: a search then
        // takes about the longer of the two instead of their sum. The vector list waits for the
        // corrections although it does not need them: started earlier, it delayed that short
        // look-up and gained nothing.
        let vector_list = async {
            let t = Instant::now();
            let ids = self
                .vector_list(pool, &shape, &query_vector, request.category)
                .await?;
            Ok::<_, KnowledgeError>((ids, t.elapsed()))
        };
        let text_list = async {
            let t = Instant::now();
            let list: Vec<(Uuid, f32)> = if tsquery.matching.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(sqlx::AssertSqlSafe(text_sql(&shape)))
                    .bind(&tsquery.matching)
                    .bind(&tsquery.ranking)
                    .bind(request.category)
                    .fetch_all(pool)
                    .await?
            };
            Ok::<_, KnowledgeError>((list, t.elapsed()))
        };
        let ((vector, vector_time), (text_matches, text_time)) =
            tokio::try_join!(vector_list, text_list)?;
        stages.vector = vector_time;
        stages.text = text_time;

        let t = Instant::now();
        let fused = fuse(&vector, &text_matches, k);
        let rows: Vec<DetailRow> = if fused.is_empty() {
            Vec::new()
        } else {
            // Each list has at most `candidates` (<= MAX_K) ids.
            debug_assert!(fused.len() <= MAX_FUSED);
            let ids: Vec<String> = fused.iter().map(|f| f.id.to_string()).collect();
            sqlx::query_as(DETAILS_SQL)
                .bind(&query_vector)
                .bind(ids.join(" "))
                .fetch_all(pool)
                .await?
        };
        let mut rows: HashMap<Uuid, DetailRow> =
            rows.into_iter().map(|r| (r.chunk.id, r)).collect();
        // A chunk that stopped being retrievable since the lists were read is left out.
        let mut results: Vec<Hit> = fused
            .into_iter()
            .filter_map(|f| rows.remove(&f.id).map(|r| r.hit(f)))
            .collect();
        results.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.vector_similarity.total_cmp(&a.vector_similarity))
                .then(a.chunk_id.cmp(&b.chunk_id))
        });
        results.truncate(k);
        stages.details = t.elapsed();

        let confidence = self.calibration.apply(results.first());
        Ok(SearchOutcome {
            results,
            confidence,
            corrections: facts.corrections,
            elapsed: Duration::ZERO,
            stages,
        })
    }
}

/// The text a message is embedded as, by retrieval and by the decision's nets alike: the
/// person's words and the lexicon's expansion of them.
pub fn message_text(text: &str) -> String {
    with_expansion(text, &super::lexicon::Lexicon::builtin().expand(text))
}

/// `text` followed by the lexicon's `expansion` of it.
fn with_expansion(text: &str, expansion: &[String]) -> String {
    if expansion.is_empty() {
        text.to_string()
    } else {
        format!("{text} {}", expansion.join(" "))
    }
}

/// For each matched document (`$2`, ids in one text), the chunk of its translation in `$3`
/// nearest to the query vector `$1`: approved, retrievable, same `translation` key.
const TRANSLATIONS_SQL: &str = "SELECT DISTINCT ON (src.id) src.id AS source_document_id, c.id, c.document_id, \
            d.title, d.source, d.category::text AS category, c.lang::text AS lang, c.chunk_index, c.content \
       FROM documents src \
       JOIN documents d ON d.metadata -> 'front_matter' ->> 'translation' = src.metadata -> 'front_matter' ->> 'translation' \
            AND d.lang = $3 AND d.deleted_at IS NULL AND d.id <> src.id \
       JOIN document_chunks c ON c.document_id = d.id AND c.retrievable AND c.embedding IS NOT NULL \
      WHERE src.id IN (SELECT x::uuid FROM string_to_table($2, ' ') AS x LIMIT 200) \
        AND src.metadata -> 'front_matter' ->> 'translation' IS NOT NULL \
      ORDER BY src.id, c.embedding <=> $1, c.id";

/// A translation's chunk for [`TRANSLATIONS_SQL`].
#[derive(sqlx::FromRow)]
struct TranslationRow {
    source_document_id: Uuid,
    #[sqlx(flatten)]
    chunk: ChunkRow,
}

/// A candidate after fusion, before its chunk is read.
#[derive(Debug, Clone, PartialEq)]
struct Fused {
    id: Uuid,
    score: f64,
    vector_rank: Option<i64>,
    text_rank: Option<i64>,
    text_score: Option<f32>,
}

/// The fused score of a candidate from its ranks: each list it is in contributes
/// `1 / (RRF_K + rank)`. The sum is formed as one fraction of integers and divided once, so
/// mathematically equal sums (ranks 6 and 39 against 12 and 28, or two ranks against one) are
/// the same `f64` and tie; terms rounded separately could differ in the last bit and break
/// such a tie arbitrarily. Distinct sums stay distinct: with ranks up to a few hundred they
/// differ by far more than an `f64`'s precision.
fn rrf_score(vector_rank: Option<i64>, text_rank: Option<i64>) -> f64 {
    let d = |rank: i64| i64::from(RRF_K) + rank;
    let (numerator, denominator) = match (vector_rank, text_rank) {
        (Some(v), Some(t)) => (d(v) + d(t), d(v) * d(t)),
        (Some(r), None) | (None, Some(r)) => (1, d(r)),
        (None, None) => (0, 1),
    };
    numerator as f64 / denominator as f64
}

/// Reciprocal rank fusion of the vector list (ids, nearest first) and the text list (ids and
/// rank values, best first), scored by [`rrf_score`]. Keeps only the candidates that can reach
/// the first k, best first: the k-th best score and every candidate tied with it, since ties
/// are broken by similarity, which is read with the chunk.
fn fuse(vector: &[Uuid], text: &[(Uuid, f32)], k: usize) -> Vec<Fused> {
    let mut fused: Vec<Fused> = Vec::with_capacity(vector.len() + text.len());
    let mut position: HashMap<Uuid, usize> = HashMap::with_capacity(vector.len());
    for (i, id) in vector.iter().enumerate() {
        position.insert(*id, fused.len());
        fused.push(Fused {
            id: *id,
            score: 0.0,
            vector_rank: Some(i as i64 + 1),
            text_rank: None,
            text_score: None,
        });
    }
    for (i, (id, text_score)) in text.iter().enumerate() {
        let rank = Some(i as i64 + 1);
        match position.get(id) {
            Some(&p) => {
                fused[p].text_rank = rank;
                fused[p].text_score = Some(*text_score);
            }
            None => fused.push(Fused {
                id: *id,
                score: 0.0,
                vector_rank: None,
                text_rank: rank,
                text_score: Some(*text_score),
            }),
        }
    }
    for f in &mut fused {
        f.score = rrf_score(f.vector_rank, f.text_rank);
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(kth) = fused.get(k.max(1) - 1).map(|f| f.score) {
        fused.retain(|f| f.score >= kth);
    }
    fused
}

/// A chunk and its document, as a hit shows them.
#[derive(sqlx::FromRow, Clone)]
struct ChunkRow {
    id: Uuid,
    document_id: Uuid,
    title: String,
    source: Option<String>,
    category: Option<String>,
    lang: String,
    chunk_index: i32,
    content: String,
}

/// A fused candidate's chunk and document, and its similarity to the query.
#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    chunk: ChunkRow,
    vector_similarity: f64,
}

impl ChunkRow {
    /// Puts this chunk and its document in `hit`, keeping the hit's scores.
    fn place(self, hit: &mut Hit) {
        hit.chunk_id = self.id;
        hit.document_id = self.document_id;
        hit.title = self.title;
        hit.source = self.source;
        hit.category = self.category;
        hit.lang = self.lang;
        hit.chunk_index = self.chunk_index;
        hit.content = self.content;
    }
}

impl DetailRow {
    fn hit(self, f: Fused) -> Hit {
        let c = self.chunk;
        Hit {
            chunk_id: c.id,
            document_id: c.document_id,
            title: c.title,
            source: c.source,
            category: c.category,
            lang: c.lang,
            chunk_index: c.chunk_index,
            content: c.content,
            score: f.score,
            vector_rank: f.vector_rank,
            // Undefined (NaN) when either vector is zero: no similarity at all.
            vector_similarity: if self.vector_similarity.is_finite() {
                self.vector_similarity
            } else {
                0.0
            },
            text_rank: f.text_rank,
            text_score: f.text_score,
            translated_from: None,
        }
    }
}

/// The folded, de-duplicated content words of a query.
fn query_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in fold(text).split(' ') {
        if w.chars().count() >= 2 && !is_stopword(w) && !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
        if words.len() == 32 {
            break;
        }
    }
    words
}

/// The full-text queries of a search: `matching` selects the chunks, `ranking` scores them.
#[derive(Debug, PartialEq)]
struct TextQueries {
    matching: String,
    ranking: String,
}

/// How common each query word is, for [`text_queries`].
struct Commonness<'a> {
    /// Estimated number of chunks containing each word (absent: rare or unknown).
    chunks: &'a HashMap<String, f64>,
    /// A group of alternatives estimated in more chunks than this is common.
    threshold: f64,
}

/// The full-text query: each query word with its correction is a group of alternatives, the
/// lexicon's expansion is one more group, and a chunk must match at least two groups
/// (`(a & b) | (a & c) | ...`; one group alone when there is only one). A plain OR of every
/// word matches a large share of a big knowledge base through its common words, and ranking
/// every match is what made full-text search slow; two groups together are selective, and GIN
/// answers them by intersecting posting lists.
///
/// A pair of two common groups is left out (when another pair remains): on a large knowledge
/// base it matches thousands of chunks that say nothing particular about the query, and GIN
/// had to merge those long posting lists on every search. With every pair holding a word that
/// is not common, GIN's fast scan walks only the short lists and checks the long ones for
/// their items. When every group is common, the two least common make the one pair. Small
/// knowledge bases have no common words (see [`COMMON_TERM_CHUNKS`]), so nothing changes
/// for them.
///
/// Ranking uses the OR of the distinct words instead, which gives `ts_rank` the same value:
/// for a query whose top operator is not AND, `ts_rank` scores the query's distinct words,
/// whatever their arrangement (`calc_rank_or` after `SortAndUniqItems`), and it sorted and
/// de-duplicated the pairs' dozens of repeated words again for every match, the largest part
/// of ranking. With exactly two groups the pair is an AND, ranked differently, and is kept.
fn text_queries(
    words: &[String],
    corrections: &[(String, String)],
    expansion: &[String],
    commonness: &Commonness<'_>,
) -> TextQueries {
    let mut groups: Vec<Vec<&str>> = words
        .iter()
        .take(8)
        .map(|w| {
            let mut g = vec![w.as_str()];
            g.extend(
                corrections
                    .iter()
                    .filter(|(typed, _)| typed == w)
                    .map(|(_, used)| used.as_str()),
            );
            g
        })
        .collect();
    let expansion: Vec<&str> = expansion
        .iter()
        .map(String::as_str)
        .filter(|w| !words.iter().any(|x| x == w))
        .collect();
    if !expansion.is_empty() {
        groups.push(expansion);
    }
    // A group matches at most the sum of its alternatives' chunks.
    let estimates: Vec<f64> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|w| commonness.chunks.get(*w).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let common = |i: usize| estimates[i] > commonness.threshold;
    let group = |g: &Vec<&str>| format!("({})", g.join(" | "));
    let pair = |i: usize, j: usize| format!("({} & {})", group(&groups[i]), group(&groups[j]));
    let matching = match groups.len() {
        0 => String::new(),
        1 => group(&groups[0]),
        n => {
            let mut pairs = Vec::with_capacity(n * (n - 1) / 2);
            for i in 0..n {
                for j in i + 1..n {
                    if !(common(i) && common(j)) {
                        pairs.push(pair(i, j));
                    }
                }
            }
            if pairs.is_empty() {
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by(|&a, &b| estimates[a].total_cmp(&estimates[b]).then(a.cmp(&b)));
                let (i, j) = (order[0].min(order[1]), order[0].max(order[1]));
                pairs.push(pair(i, j));
            }
            pairs.join(" | ")
        }
    };
    let ranking = if groups.len() == 2 {
        matching.clone()
    } else {
        let mut distinct: Vec<&str> = Vec::new();
        for w in groups.iter().flatten() {
            if !distinct.contains(w) {
                distinct.push(w);
            }
        }
        distinct.join(" | ")
    };
    TextQueries { matching, ranking }
}

/// What one round trip learns about the query words: corrections of unknown words and, when a
/// single language is searched, each word's lexemes in that language's stemming.
#[derive(Debug, Default)]
struct WordFacts {
    /// (typed, used) for words of 4+ letters the knowledge base does not contain.
    corrections: Vec<(String, String)>,
    /// Word (query word, expansion word or correction) to its lexemes.
    lexemes: HashMap<String, Vec<String>>,
}

impl WordFacts {
    /// Each word's estimated number of chunks: that of its rarest lexeme (a word of several
    /// lexemes is a phrase, found only where all are); words without common lexemes are absent.
    fn estimated_chunks(&self, stats: &HashMap<String, f64>) -> HashMap<String, f64> {
        self.lexemes
            .iter()
            .filter_map(|(word, lexemes)| {
                let rarest = lexemes
                    .iter()
                    .map(|l| stats.get(l).copied().unwrap_or(0.0))
                    .min_by(f64::total_cmp)?;
                (rarest > 0.0).then(|| (word.clone(), rarest))
            })
            .collect()
    }
}

/// Corrections for query words of 4+ letters the knowledge base does not contain (its most
/// similar word), and the lexemes of the query, expansion and correction words in `stemming`.
async fn word_facts(
    pool: &PgPool,
    words: &[String],
    expansion: &[String],
    langs: &[&str],
    stemming: Option<Lang>,
) -> Result<WordFacts, KnowledgeError> {
    // Known words are filtered out first through the primary key (lang is char(2): comparing
    // it with text would cast the column and miss the index), so the trigram search, the
    // expensive part, runs only for the words that need it (OFFSET 0 keeps it that way).
    //
    // The words come as one space-separated text (folded words never contain a space) and
    // `LIMIT 32` (query_words' own cap) bounds the estimate: an array parameter's `unnest`
    // is estimated from the array's length in a custom plan but as 10 rows in the generic one,
    // so PostgreSQL planned this statement afresh at every search; with the same estimate in
    // both it keeps the generic plan.
    let rows: Vec<(String, Option<String>, Vec<String>)> = sqlx::query_as(
        "WITH corrected AS ( \
             SELECT u.w, best.term FROM ( \
                 SELECT w FROM (SELECT w FROM string_to_table($1, ' ') AS w LIMIT 32) q \
                 WHERE char_length(w) >= 4 \
                   AND NOT EXISTS (SELECT 1 FROM kb_terms k2 WHERE k2.lang = ANY($2::bpchar[]) AND k2.term = w) \
                 OFFSET 0) u \
             CROSS JOIN LATERAL ( \
                 SELECT k.term FROM kb_terms k WHERE k.lang = ANY($2::bpchar[]) AND k.term % u.w \
                 ORDER BY similarity(k.term, u.w) DESC, k.term LIMIT 1) best) \
         SELECT w, NULL::text, \
                COALESCE(tsvector_to_array(to_tsvector($3::regconfig, w)), '{}') \
           FROM string_to_table(concat_ws(' ', $1, $4), ' ') AS w WHERE w <> '' \
         UNION ALL \
         SELECT w, term, COALESCE(tsvector_to_array(to_tsvector($3::regconfig, term)), '{}') \
           FROM corrected",
    )
    .bind(words.join(" "))
    .bind(langs)
    .bind(stemming.map(Lang::ts_config))
    .bind((!expansion.is_empty()).then(|| expansion.join(" ")))
    .fetch_all(pool)
    .await?;
    let mut facts = WordFacts::default();
    for (word, correction, lexemes) in rows {
        let key = match correction {
            Some(used) => {
                facts.corrections.push((word, used.clone()));
                used
            }
            None => word,
        };
        if stemming.is_some() {
            facts.lexemes.insert(key, lexemes);
        }
    }
    Ok(facts)
}

/// A word in more chunks than this is common (the default of
/// [`Retriever::common_term_chunks`]): five times as many as the full-text list can rank
/// ([`TEXT_RANK_CAP`]), so a knowledge base needs several thousand chunks before any word is.
pub const COMMON_TERM_CHUNKS: f64 = 2_000.0;

/// How long the lexeme statistics are reused before they are read again.
const LEXEME_STATS_TTL: Duration = Duration::from_secs(300);

/// The planner's statistics of the chunks' tsvectors (ANALYZE's most common elements, kept
/// current by autovacuum): each common lexeme's estimated number of chunks. Read at most every
/// [`LEXEME_STATS_TTL`] and shared by the retriever's clones; empty until the table is analyzed,
/// which leaves every word rare.
#[derive(Debug, Default)]
struct LexemeStats(std::sync::Mutex<Option<(Instant, Arc<LexemeChunks>)>>);

/// Lexeme to its estimated number of chunks.
type LexemeChunks = HashMap<String, f64>;

impl LexemeStats {
    async fn get(&self, pool: &PgPool) -> Result<Arc<LexemeChunks>, KnowledgeError> {
        if let Some((read_at, stats)) = &*self.0.lock().expect("lexeme stats")
            && read_at.elapsed() < LEXEME_STATS_TTL
        {
            return Ok(stats.clone());
        }
        // most_common_elem_freqs has three more entries than most_common_elems (minimum,
        // maximum and null frequency); unnest pads the elements with NULL for them.
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT e.elem, (e.freq * GREATEST(c.reltuples, 0))::float8 \
               FROM pg_stats s \
               JOIN pg_class c ON c.oid = 'document_chunks'::regclass \
              CROSS JOIN LATERAL unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(elem, freq) \
              WHERE s.schemaname = current_schema() AND s.tablename = 'document_chunks' \
                AND s.attname = 'tsv' AND e.elem IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        let stats = Arc::new(rows.into_iter().collect::<HashMap<_, _>>());
        *self.0.lock().expect("lexeme stats") = Some((Instant::now(), stats.clone()));
        Ok(stats)
    }
}

/// At most this many full-text matches are ranked. Ranking reads every match's row (and its
/// tsvector out of line); a query whose words match more chunks than this cannot be told apart
/// by full text anyway, and the vector list leads. Bounds a search's cost on a large knowledge
/// base. The matches kept are not the best ones, so a lower cap costs quality (measured on the
/// public FAQ set; docs/retrieval.md).
pub const TEXT_RANK_CAP: usize = 400;

/// What the text of a search's statements depends on; everything else is a parameter.
struct SearchShape<'a> {
    /// The languages searched, one vector branch each.
    langs: &'a [Lang],
    /// Whether a category filter applies.
    with_category: bool,
    /// The embedding dimension, for the half-precision index expression.
    dimension: usize,
    /// Candidates per list.
    candidates: usize,
}

/// The category condition, when a category is asked for, with its parameter's number.
fn category_condition(shape: &SearchShape<'_>, parameter: u8) -> String {
    if shape.with_category {
        format!(" AND c.category = ${parameter}")
    } else {
        String::new()
    }
}

/// The vector list: the nearest chunks' ids, nearest first. Each language's branch walks its
/// partial index in half precision (the index's own expression, migration 20261206000001)
/// and reports the full-precision distance, by which the candidates are then ordered. No
/// threshold sits in front of the index scan: `ORDER BY ... LIMIT` is what the index answers.
/// A chunk without a vector (while `kb reembed` runs) is not in this list; an exact scan would
/// otherwise rank it last rather than leave it out.
///
/// Languages are spliced in as literals from [`Lang`] (never user text) so that the planner
/// matches each branch to its partial index. The limit is a literal too (a number from the
/// engine), and the category condition is there only when a category is asked for: with
/// `LIMIT $n` and `$c IS NULL OR category = $c` the generic plan's cost estimate was far above
/// a custom plan's, so PostgreSQL planned the statement afresh at every execution; with the
/// literals, the two plans cost the same and the prepared statement keeps its generic plan.
///
/// Parameters: $1 query vector, $2 category (referenced only with a category).
fn vector_sql(shape: &SearchShape<'_>) -> String {
    let SearchShape {
        langs,
        dimension,
        candidates,
        ..
    } = *shape;
    let category = category_condition(shape, 2);
    let branches: Vec<String> = langs
        .iter()
        .map(|l| {
            format!(
                "(SELECT c.id, c.embedding <=> $1 AS distance FROM document_chunks c \
                  WHERE c.retrievable AND c.lang = '{code}'{category} AND c.embedding IS NOT NULL \
                  ORDER BY c.embedding::halfvec({dimension}) <=> $1::halfvec({dimension}) LIMIT {candidates})",
                code = l.code()
            )
        })
        .collect();
    format!(
        "SELECT id FROM ({}) branches ORDER BY distance LIMIT {candidates}",
        branches.join(" UNION ALL ")
    )
}

/// The text list: matching chunks' ids and rank values, best first. At most
/// [`TEXT_RANK_CAP`] matches are ranked. Each language's condition uses its text-search
/// configuration, a literal as in [`vector_sql`]; the tsqueries are initplans, parsed once per
/// search rather than for every candidate row.
///
/// Parameters: $1 matching tsquery text, $2 ranking tsquery text ([`text_queries`]),
/// $3 category (referenced only with a category).
fn text_sql(shape: &SearchShape<'_>) -> String {
    let SearchShape {
        langs, candidates, ..
    } = *shape;
    let category = category_condition(shape, 3);
    // One piece per language, from its code and text-search configuration.
    let each = |piece: fn(&str, &str) -> String, separator: &str| {
        let pieces: Vec<String> = langs
            .iter()
            .map(|l| piece(l.code(), l.ts_config()))
            .collect();
        pieces.join(separator)
    };
    let matching = each(
        |code, cfg| format!("(c.lang = '{code}' AND c.tsv @@ (SELECT to_tsquery('{cfg}', $1)))"),
        " OR ",
    );
    let ranking = each(
        |code, cfg| format!("WHEN '{code}' THEN (SELECT to_tsquery('{cfg}', $2))"),
        " ",
    );
    format!(
        "WITH matched AS MATERIALIZED ( \
             SELECT c.id, c.lang, c.tsv FROM document_chunks c \
             WHERE c.retrievable{category} AND ({matching}) \
             LIMIT {TEXT_RANK_CAP}) \
         SELECT c.id, ts_rank(c.tsv, CASE c.lang {ranking} END, 1) AS text_score FROM matched c \
         ORDER BY text_score DESC, c.id LIMIT {candidates}"
    )
}

/// The fused candidates' chunks and documents, read only for the candidates that can reach
/// the first k (reading every candidate's row was a tenth of a search). `retrievable` again:
/// a document rejected since the lists were read is never returned.
///
/// The ids come as one space-separated text under a `LIMIT` of [`MAX_FUSED`], as the
/// corrections look-up's words do: `c.id = ANY($2)` with a `uuid[]` was estimated from the
/// array's length in a custom plan and as 10 rows in the generic one, so on a knowledge base
/// of more than a few hundred chunks PostgreSQL planned the statement at every search.
///
/// A chunk without a vector (found by full text while `kb reembed` runs) has similarity 0.
///
/// Parameters: $1 query vector, $2 the candidates' ids, space-separated.
const DETAILS_SQL: &str = "SELECT c.id, c.document_id, d.title, d.source, d.category::text AS category, \
            c.lang::text AS lang, c.chunk_index, c.content, \
            COALESCE(1 - (c.embedding <=> $1), 0)::float8 AS vector_similarity \
       FROM document_chunks c JOIN documents d ON d.id = c.document_id \
      WHERE c.id IN (SELECT x::uuid FROM string_to_table($2, ' ') AS x LIMIT 200) \
        AND c.retrievable";

/// The most results a search returns, and the most candidates a list contributes.
const MAX_K: usize = 100;

/// The most candidates fusion can keep: both lists' candidates ([`DETAILS_SQL`]'s `LIMIT`).
const MAX_FUSED: usize = 2 * MAX_K;
const _: () = assert!(MAX_FUSED == 200, "DETAILS_SQL's LIMIT");

/// Logistic calibration of the top hit's evidence into a probability that it is relevant.
///
/// Features: the top hit's cosine similarity, whether full-text search also found it, and its
/// (length-normalised) text rank. The coefficients come from `amal-engine kb calibrate` on the
/// shipped evaluation set plus out-of-scope queries (docs/retrieval.md, "Confidence").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// Weight of the cosine similarity.
    pub similarity: f64,
    /// Weight of "full-text matched the top hit".
    pub text_match: f64,
    /// Weight of the text rank value (scaled ×10).
    pub text_score: f64,
    /// Intercept.
    pub bias: f64,
}

/// The shipped calibration for the hashed embedder (see [`Calibration`]).
///
/// Fitted on the shipped evaluation set and the out-of-scope queries
/// (`seeds/knowledge/out_of_scope.jsonl`); its reliability table is in docs/retrieval.md.
pub const CALIBRATION: Calibration = Calibration {
    similarity: 9.89,
    text_match: 6.97,
    text_score: 5.97,
    bias: -9.46,
};

/// The shipped calibration for multilingual-e5-small (the default embedder), fitted the same
/// way by `kb calibrate` on searches across languages: its similarities sit in a narrow band
/// (0.80 to 0.92), so the weight on similarity is steep.
pub const E5_CALIBRATION: Calibration = Calibration {
    similarity: E5_SIMILARITY,
    text_match: E5_TEXT_MATCH,
    text_score: E5_TEXT_SCORE,
    bias: E5_BIAS,
};
const E5_SIMILARITY: f64 = 32.13;
const E5_TEXT_MATCH: f64 = 1.45;
const E5_TEXT_SCORE: f64 = 20.93;
const E5_BIAS: f64 = -29.46;

/// Environment variable with a fitted calibration (`similarity,text_match,text_score,bias`, as
/// `kb calibrate` prints it) for a model without a shipped one.
pub const CALIBRATION_ENV: &str = "AMAL_CALIBRATION";

impl Calibration {
    /// The calibration for an embedding model: [`CALIBRATION_ENV`] when set, else the shipped
    /// one for the hashed embedder or multilingual-e5-small; another model gets e5's (a
    /// semantic model's similarities) with a warning to fit its own.
    pub fn for_model(model: &str) -> Calibration {
        if let Ok(v) = std::env::var(CALIBRATION_ENV) {
            let parts: Vec<f64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if let [similarity, text_match, text_score, bias] = parts[..] {
                return Calibration {
                    similarity,
                    text_match,
                    text_score,
                    bias,
                };
            }
            tracing::warn!(value = %v, "{CALIBRATION_ENV} is not four numbers: shipped calibration used");
        }
        if model == super::embed::HASH_MODEL {
            CALIBRATION
        } else {
            if model != super::e5::E5_MODEL {
                tracing::warn!(%model, "no calibration fitted for this model: run `amal-engine kb calibrate` and set {CALIBRATION_ENV}");
            }
            E5_CALIBRATION
        }
    }

    /// The features of a hit, in the order of the weights; evidence that is not a finite
    /// number counts as none.
    pub fn features(hit: &Hit) -> [f64; 3] {
        let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
        [
            finite(hit.vector_similarity),
            if hit.text_rank.is_some() { 1.0 } else { 0.0 },
            finite(f64::from(hit.text_score.unwrap_or(0.0))) * 10.0,
        ]
    }

    /// The calibrated probability for a hit: always a finite number in [0, 1], 0 when there
    /// is no hit or its evidence is not a number (a confidence that is not a number would
    /// compare as "not below the threshold" and pass for a confident answer).
    pub fn apply(&self, hit: Option<&Hit>) -> f64 {
        let Some(hit) = hit else { return 0.0 };
        let [s, m, t] = Self::features(hit);
        let z = self.similarity * s + self.text_match * m + self.text_score * t + self.bias;
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
    }
}

/// The confidence of a result list with the shipped calibration.
pub fn confidence(top: Option<&Hit>) -> f64 {
    CALIBRATION.apply(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit_with(similarity: f64, text_score: Option<f32>) -> Hit {
        Hit {
            chunk_id: Uuid::nil(),
            document_id: Uuid::nil(),
            title: String::new(),
            source: None,
            category: None,
            lang: "en".into(),
            chunk_index: 0,
            content: String::new(),
            score: 0.0,
            vector_rank: None,
            vector_similarity: similarity,
            text_rank: text_score.map(|_| 1),
            text_score,
            translated_from: None,
        }
    }

    #[test]
    fn confidence_is_a_finite_probability_whatever_the_evidence() {
        for similarity in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            1.0,
            1e300,
        ] {
            for text_score in [
                None,
                Some(f32::NAN),
                Some(f32::INFINITY),
                Some(0.0),
                Some(0.5),
            ] {
                let c = confidence(Some(&hit_with(similarity, text_score)));
                assert!(
                    c.is_finite() && (0.0..=1.0).contains(&c),
                    "{similarity} {text_score:?} -> {c}"
                );
            }
        }
        assert_eq!(confidence(None), 0.0);
        assert!(confidence(Some(&hit_with(f64::NAN, None))) < 0.01);
    }

    #[test]
    fn query_words_are_folded_and_stopwords_dropped() {
        assert_eq!(
            query_words("How do I stop SMOKING, smoking?"),
            vec!["stop", "smoking"]
        );
        assert_eq!(query_words("واش ندير مع القلق"), vec!["ندير", "القلق"]);
        assert!(query_words("the and of").is_empty());
    }

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn counts(pairs: &[(&str, f64)]) -> HashMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn none_common() -> HashMap<String, f64> {
        HashMap::new()
    }

    fn commonness(chunks: &HashMap<String, f64>) -> Commonness<'_> {
        Commonness {
            chunks,
            threshold: COMMON_TERM_CHUNKS,
        }
    }

    #[test]
    fn text_query_needs_two_groups_together() {
        let rare = none_common();
        let one = text_queries(&w(&["insomnia"]), &[], &[], &commonness(&rare));
        assert_eq!(
            (one.matching.as_str(), one.ranking.as_str()),
            ("(insomnia)", "insomnia")
        );
        let three = text_queries(
            &w(&["stop", "smokng"]),
            &[("smokng".into(), "smoking".into())],
            &w(&["tobacco", "tabac"]),
            &commonness(&rare),
        );
        assert_eq!(
            three.matching,
            "((stop) & (smokng | smoking)) | ((stop) & (tobacco | tabac)) | ((smokng | smoking) & (tobacco | tabac))"
        );
        assert_eq!(three.ranking, "stop | smokng | smoking | tobacco | tabac");
        // Two groups make one AND: ranked as matched.
        let two = text_queries(&w(&["stop", "smoking"]), &[], &[], &commonness(&rare));
        assert_eq!(two.ranking, two.matching);
        assert_eq!(text_queries(&[], &[], &[], &commonness(&rare)).matching, "");
    }

    #[test]
    fn two_common_words_do_not_make_a_match() {
        let chunks: HashMap<String, f64> =
            counts(&[("help", 9_000.0), ("sleep", 4_000.0), ("night", 2_500.0)]);
        let q = text_queries(
            &w(&["help", "sleep", "insomnia"]),
            &[],
            &[],
            &commonness(&chunks),
        );
        assert_eq!(q.matching, "((help) & (insomnia)) | ((sleep) & (insomnia))");
        // Ranking still scores every word.
        assert_eq!(q.ranking, "help | sleep | insomnia");
        // All common: the two least common groups, in query order.
        let q = text_queries(
            &w(&["night", "help", "sleep"]),
            &[],
            &[],
            &commonness(&chunks),
        );
        assert_eq!(q.matching, "((night) & (sleep))");
        // A group's alternatives add up: two words under the threshold can make it common.
        let chunks: HashMap<String, f64> =
            counts(&[("night", 2_500.0), ("nap", 1_200.0), ("dream", 1_000.0)]);
        let q = text_queries(
            &w(&["night", "insomnia"]),
            &[],
            &w(&["nap", "dream"]),
            &commonness(&chunks),
        );
        assert_eq!(
            q.matching,
            "((night) & (insomnia)) | ((insomnia) & (nap | dream))"
        );
        // Below the threshold nothing is common.
        let q = text_queries(
            &w(&["night", "help", "sleep"]),
            &[],
            &[],
            &Commonness {
                chunks: &chunks,
                threshold: 10_000.0,
            },
        );
        assert_eq!(q.matching.matches(" & ").count(), 3);
    }

    #[test]
    fn a_word_is_as_common_as_its_rarest_lexeme() {
        let facts = WordFacts {
            corrections: Vec::new(),
            lexemes: [
                ("anti-drogue", vec!["anti", "drogu"]),
                ("drogue", vec!["drogu"]),
                ("rare", vec!["rar"]),
                ("le", vec![]),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), w(&v)))
            .collect(),
        };
        let stats: HashMap<String, f64> = counts(&[("anti", 5_000.0), ("drogu", 3_000.0)]);
        let chunks = facts.estimated_chunks(&stats);
        assert_eq!(chunks.get("anti-drogue"), Some(&3_000.0));
        assert_eq!(chunks.get("drogue"), Some(&3_000.0));
        assert_eq!(chunks.get("rare"), None);
        assert_eq!(chunks.get("le"), None);
    }

    #[test]
    fn connections_start_with_the_default_ef_search() {
        let ef = crate::db::SESSION_SETTINGS
            .iter()
            .find(|(k, _)| *k == "hnsw.ef_search")
            .map(|(_, v)| *v);
        assert_eq!(ef, Some(DEFAULT_EF_SEARCH.to_string().as_str()));
    }

    #[test]
    fn sql_names_each_language_literally_and_never_user_text() {
        let shape = SearchShape {
            langs: &[Lang::Fr],
            with_category: false,
            dimension: 384,
            candidates: 40,
        };
        let vector = vector_sql(&shape);
        let text = text_sql(&shape);
        assert!(vector.contains("c.lang = 'fr'") && text.contains("c.lang = 'fr'"));
        assert!(text.contains("(SELECT to_tsquery('french', $1))"));
        assert!(text.contains("WHEN 'fr' THEN (SELECT to_tsquery('french', $2))"));
        assert!(!vector.contains("'ar'") && !text.contains("'ar'"));
        // The index's own expression, with the dimension.
        assert!(
            vector.contains("ORDER BY c.embedding::halfvec(384) <=> $1::halfvec(384) LIMIT 40")
        );
        // Limits are literals; no category, no category condition.
        assert!(vector.ends_with("LIMIT 40") && text.ends_with("LIMIT 40"));
        assert!(text.contains(&format!("LIMIT {TEXT_RANK_CAP})")));
        assert!(!vector.contains("$2") && !text.contains("$3") && !text.contains("category"));
        let all = SearchShape {
            langs: &Lang::ALL,
            with_category: true,
            ..shape
        };
        let vector = vector_sql(&all);
        assert_eq!(vector.matches("UNION ALL").count(), 2);
        // Each vector branch filters by category, and so does the text match.
        assert_eq!(vector.matches("c.category = $2").count(), 3);
        let text = text_sql(&all);
        assert_eq!(text.matches("c.category = $3").count(), 1);
        assert_eq!(text.matches("to_tsquery(").count(), 6);
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn fusion_adds_reciprocal_ranks_and_keeps_ties_at_the_kth_place() {
        let vector = [id(1), id(2), id(3), id(4)];
        let text = [(id(3), 0.5), (id(5), 0.4), (id(1), 0.1)];
        let fused = fuse(&vector, &text, 2);
        let order: Vec<Uuid> = fused.iter().map(|f| f.id).collect();
        // 1: 1/61 + 1/63; 3: 1/63 + 1/61 (tied); then 2 and 5 (1/62 each) are below the 2nd.
        assert_eq!(order, vec![id(1), id(3)]);
        assert_eq!(fused[0].score, fused[1].score);
        assert_eq!(
            fused[1],
            Fused {
                id: id(3),
                score: rrf_score(Some(3), Some(1)),
                vector_rank: Some(3),
                text_rank: Some(1),
                text_score: Some(0.5),
            }
        );
        // Tied with the 3rd place: 2 and 5 both stay, 4 does not.
        let third: Vec<Uuid> = fuse(&vector, &text, 3).iter().map(|f| f.id).collect();
        assert_eq!(third.len(), 4);
        assert!(third.contains(&id(2)) && third.contains(&id(5)) && !third.contains(&id(4)));
        // Equal sums are equal scores, however the ranks are split.
        assert_eq!(rrf_score(Some(6), Some(39)), rrf_score(Some(12), Some(28)));
        assert_eq!(rrf_score(Some(39), Some(6)), rrf_score(Some(12), Some(28)));
        assert_eq!(rrf_score(Some(3), Some(39)), rrf_score(Some(17), Some(17)));
        assert_eq!(rrf_score(Some(62), Some(62)), rrf_score(Some(1), None));
        assert!(rrf_score(Some(1), Some(2)) > rrf_score(Some(1), Some(3)));
        assert_eq!(rrf_score(None, Some(2)), 1.0 / 62.0);
        // Fewer candidates than k: all of them; a text-only match has no vector rank.
        let few = fuse(&[], &[(id(9), 0.2)], 5);
        assert_eq!(few.len(), 1);
        assert_eq!((few[0].vector_rank, few[0].text_rank), (None, Some(1)));
        assert!(fuse(&[], &[], 5).is_empty());
    }
}
