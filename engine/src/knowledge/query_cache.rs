//! A bounded cache of query embeddings: a question asked again (or the crisis gate's second net
//! and the search embedding the same message) costs no model time.
//!
//! Keys are the normalised text ([`normalise`]: trimmed, inner whitespace collapsed to one
//! space), and the text embedded is that same normalised text, so a cached and a fresh vector
//! are identical: results never depend on what was asked before. The embedder's model is part
//! of every cache's identity (one cache per [`super::retrieval::Retriever`]).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

/// Entries kept by default: 384 floats each, about 6 MiB in all.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Environment variable overriding [`DEFAULT_CAPACITY`] (0 turns the cache off).
pub const CAPACITY_ENV: &str = "AMAL_QUERY_CACHE";

/// The text a query is embedded as: trimmed, with every run of whitespace one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Query vectors by normalised text, least recently used evicted first.
#[derive(Debug)]
pub struct QueryCache {
    entries: Option<Mutex<LruCache<String, Arc<Vec<f32>>>>>,
}

impl QueryCache {
    /// A cache of `capacity` entries; 0 caches nothing.
    pub fn new(capacity: usize) -> Self {
        QueryCache {
            entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The capacity [`CAPACITY_ENV`] sets, else [`DEFAULT_CAPACITY`]; a value that is not a
    /// number is logged and ignored.
    pub fn from_env() -> Self {
        let capacity = match std::env::var(CAPACITY_ENV) {
            Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(value = %v, "{CAPACITY_ENV} is not a number of entries: default used");
                DEFAULT_CAPACITY
            }),
            Err(_) => DEFAULT_CAPACITY,
        };
        Self::new(capacity)
    }

    /// The cached vector of a normalised text.
    pub fn get(&self, key: &str) -> Option<Arc<Vec<f32>>> {
        let entries = self.entries.as_ref()?;
        entries.lock().expect("never poisoned").get(key).cloned()
    }

    /// Keeps a vector.
    pub fn put(&self, key: String, vector: Arc<Vec<f32>>) {
        if let Some(entries) = &self.entries {
            entries.lock().expect("never poisoned").put(key, vector);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |e| e.lock().expect("never poisoned").len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for QueryCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_collapses_whitespace_only() {
        assert_eq!(
            normalise("  How   do I\tstop\n smoking? "),
            "How do I stop smoking?"
        );
        assert_eq!(normalise("كيف   أتوقف"), "كيف أتوقف");
        assert_eq!(normalise(" \n "), "");
    }

    #[test]
    fn least_recently_used_goes_first() {
        let cache = QueryCache::new(2);
        cache.put("a".into(), Arc::new(vec![1.0]));
        cache.put("b".into(), Arc::new(vec![2.0]));
        assert!(cache.get("a").is_some());
        cache.put("c".into(), Arc::new(vec![3.0]));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert_eq!(cache.get("a").as_deref(), Some(&vec![1.0]));
        assert_eq!(cache.len(), 2);
        let off = QueryCache::new(0);
        off.put("a".into(), Arc::new(vec![1.0]));
        assert!(off.get("a").is_none() && off.is_empty());
    }
}
