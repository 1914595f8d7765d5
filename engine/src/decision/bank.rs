//! Exemplar banks of the decision's semantic checks (the crisis gate's second net, the scope
//! net): sentences embedded once per model and kept in the user's cache directory, and a small
//! logistic classifier fitted on them when the engine starts.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::knowledge::embed::{EmbedError, Embedder, TextKind};
use crate::knowledge::query_cache::normalise;
use crate::knowledge::retrieval::message_text;

/// A logistic classifier over embeddings, trained on a bank: the probability that a message
/// belongs with the bank's positive exemplars (crisis messages; messages on other subjects)
/// rather than its negative ones. The vectors are centred on
/// the bank's mean first: every e5 vector shares a large common component that says nothing.
#[derive(Debug, Clone)]
pub struct Classifier {
    mean: Vec<f32>,
    weights: Vec<f32>,
    bias: f32,
}

impl Classifier {
    /// Fits by full-batch gradient descent with L2 regularisation (`l2`), negative exemplars
    /// weighted `negative_weight` times a positive one: the checks built on it must above all
    /// avoid firing on a negative (each net says why).
    pub fn fit(vectors: &[&[f32]], labels: &[bool], l2: f32, negative_weight: f32) -> Self {
        let dim = vectors.first().map_or(0, |v| v.len());
        let n = vectors.len().max(1) as f32;
        let mut mean = vec![0.0f32; dim];
        for v in vectors {
            for (m, x) in mean.iter_mut().zip(v.iter()) {
                *m += x / n;
            }
        }
        let centred: Vec<Vec<f32>> = vectors
            .iter()
            .map(|v| {
                v.iter()
                    .zip(&mean)
                    .map(|(x, m)| (x - m) * FEATURE_SCALE)
                    .collect()
            })
            .collect();
        let mut weights = vec![0.0f32; dim];
        let mut bias = 0.0f32;
        let total: f32 = labels
            .iter()
            .map(|&y| if y { 1.0 } else { negative_weight })
            .sum();
        for _ in 0..FIT_ROUNDS {
            let mut grad = vec![0.0f32; dim];
            let mut grad_b = 0.0f32;
            for (x, &y) in centred.iter().zip(labels) {
                let z: f32 = bias + x.iter().zip(&weights).map(|(a, w)| a * w).sum::<f32>();
                let p = 1.0 / (1.0 + (-z).exp());
                let weight = if y { 1.0 } else { negative_weight };
                let err = weight * (p - if y { 1.0 } else { 0.0 }) / total;
                for (g, a) in grad.iter_mut().zip(x) {
                    *g += err * a;
                }
                grad_b += err;
            }
            for (w, g) in weights.iter_mut().zip(&grad) {
                *w -= FIT_RATE * (g + l2 * *w);
            }
            bias -= FIT_RATE * grad_b;
        }
        Classifier {
            mean,
            weights,
            bias,
        }
    }

    /// The probability that `vector` belongs with the positive exemplars.
    pub fn probability(&self, vector: &[f32]) -> f32 {
        let z: f32 = self.bias
            + vector
                .iter()
                .zip(&self.mean)
                .zip(&self.weights)
                .map(|((x, m), w)| (x - m) * FEATURE_SCALE * w)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// Centred e5 components are small (about 0.05); scaled so that gradient descent moves.
const FEATURE_SCALE: f32 = 10.0;
const FIT_ROUNDS: usize = 400;
const FIT_RATE: f32 = 0.5;
/// `texts` embedded as the engine embeds a message ([`message_text`], as a query: what they
/// are compared with), read from the cache `name` when it holds this model's vectors of exactly
/// these texts, else embedded and cached.
pub async fn embed_cached(
    embedder: &Embedder,
    name: &str,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let texts: Vec<String> = texts.iter().map(|t| normalise(&message_text(t))).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let texts = texts.as_slice();
    let cache = cache_path(name, embedder.model(), texts);
    if let Some(v) = cache
        .as_deref()
        .and_then(|p| read_cache(p, texts.len(), embedder.dimension()))
    {
        return Ok(v);
    }
    let vectors = embedder.embed_all(TextKind::Query, texts).await?;
    if let Some(p) = &cache {
        write_cache(p, &vectors);
    }
    Ok(vectors)
}

/// `$XDG_CACHE_HOME/amal` or `~/.cache/amal`, with a file named after the bank, the model and the
/// texts: a changed bank or another model never reads stale vectors.
fn cache_path(name: &str, model: &str, texts: &[&str]) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    for t in texts {
        h.update([0u8]);
        h.update(t.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    Some(
        base.join("amal")
            .join(format!("{name}-{}.f32", &digest[..24])),
    )
}

fn read_cache(path: &Path, rows: usize, dimension: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != rows * dimension * 4 {
        tracing::warn!(path = %path.display(), "bank cache has the wrong size: recomputed");
        return None;
    }
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(floats.chunks(dimension).map(<[f32]>::to_vec).collect())
}

/// Writes the cache through a temporary file and a rename, so that a reader never sees half a
/// file; a failure only costs the next start the embedding time.
fn write_cache(path: &Path, vectors: &[Vec<f32>]) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "bank cache not written");
    }
}
