//! Retrieval evaluation: recall@1, @5, @10 and MRR per language on a JSONL set of
//! `{"q": ..., "lang": ..., "expect": [source or title, ...]}` lines.
//!
//! Ranking is by document: the chunks returned are reduced to their documents in order, and a
//! document is relevant when its title equals an expected entry or its source ends with one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::KnowledgeError;
use super::retrieval::{Hit, Retriever, SearchRequest};
use crate::lang::Lang;

/// One evaluation query.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalCase {
    /// The query.
    pub q: String,
    /// Its language.
    pub lang: String,
    /// Sources (path suffixes) or titles of the documents that answer it.
    pub expect: Vec<String>,
}

/// Reads a JSONL evaluation file; a malformed line is an error naming the line.
pub fn load_cases(path: &Path) -> Result<Vec<(EvalCase, Lang)>, KnowledgeError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| KnowledgeError::BadEvalFile {
        path: name.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| KnowledgeError::BadEvalFile {
            path: name.clone(),
            line: i + 1,
            reason,
        };
        let case: EvalCase = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let lang: Lang = case
            .lang
            .parse()
            .map_err(|e: crate::lang::UnknownLang| bad(e.to_string()))?;
        if case.q.trim().is_empty() || case.expect.is_empty() {
            return Err(bad("`q` and `expect` must not be empty".into()));
        }
        cases.push((case, lang));
    }
    Ok(cases)
}

/// Recall and MRR over a set of queries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Number of queries.
    pub queries: usize,
    /// Share of queries with a relevant document first.
    pub recall_at_1: f64,
    /// ... within the first 5 documents.
    pub recall_at_5: f64,
    /// ... within the first 10 documents.
    pub recall_at_10: f64,
    /// Mean reciprocal rank of the first relevant document (0 beyond 10).
    pub mrr: f64,
}

#[derive(Debug, Default)]
struct Accumulator {
    n: usize,
    at1: usize,
    at5: usize,
    at10: usize,
    rr: f64,
}

impl Accumulator {
    fn add(&mut self, rank: Option<usize>) {
        self.n += 1;
        if let Some(r) = rank {
            self.at1 += usize::from(r == 1);
            self.at5 += usize::from(r <= 5);
            self.at10 += usize::from(r <= 10);
            self.rr += 1.0 / r as f64;
        }
    }

    fn metrics(&self) -> Metrics {
        let n = self.n.max(1) as f64;
        Metrics {
            queries: self.n,
            recall_at_1: self.at1 as f64 / n,
            recall_at_5: self.at5 as f64 / n,
            recall_at_10: self.at10 as f64 / n,
            mrr: self.rr / n,
        }
    }
}

/// A query whose relevant document was not first.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// The query.
    pub q: String,
    /// Its language.
    pub lang: Lang,
    /// What was expected.
    pub expect: Vec<String>,
    /// The rank of the first relevant document, if within 10.
    pub rank: Option<usize>,
    /// The title ranked first.
    pub got: Option<String>,
}

/// The evaluation's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Per language.
    pub per_lang: BTreeMap<Lang, Metrics>,
    /// All queries.
    pub overall: Metrics,
    /// Queries not answered first.
    pub misses: Vec<Miss>,
    /// Per query: (calibration features of the top hit, whether it is relevant).
    #[serde(skip)]
    pub observations: Vec<([f64; 3], bool)>,
}

/// True when `hit`'s document is one of `expect`.
pub fn is_relevant(hit: &Hit, expect: &[String]) -> bool {
    expect.iter().any(|e| {
        let e = e.trim();
        hit.title.trim() == e
            || hit
                .source
                .as_deref()
                .is_some_and(|s| s == e || s.ends_with(&format!("/{e}")))
    })
}

/// The 1-based rank of the first relevant document among the distinct documents of `hits`.
pub fn first_relevant_rank(hits: &[Hit], expect: &[String]) -> Option<usize> {
    let mut seen = Vec::new();
    for hit in hits {
        if seen.contains(&hit.document_id) {
            continue;
        }
        seen.push(hit.document_id);
        if is_relevant(hit, expect) {
            return Some(seen.len());
        }
        if seen.len() == 10 {
            break;
        }
    }
    None
}

/// How an evaluation searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchScope {
    /// In the query's language only (`kb search --lang`).
    #[default]
    InLanguage,
    /// Every language, hits brought to the query's language through translations (what the
    /// decision does: [`Retriever::search_across`]).
    Across,
}

/// Runs every case through `retriever`, in its language.
pub async fn evaluate(
    pool: &PgPool,
    retriever: &Retriever,
    cases: &[(EvalCase, Lang)],
) -> Result<EvalReport, KnowledgeError> {
    evaluate_scoped(pool, retriever, cases, SearchScope::InLanguage).await
}

/// Runs every case through `retriever`, searching as `scope` says.
pub async fn evaluate_scoped(
    pool: &PgPool,
    retriever: &Retriever,
    cases: &[(EvalCase, Lang)],
    scope: SearchScope,
) -> Result<EvalReport, KnowledgeError> {
    let mut per_lang: BTreeMap<Lang, Accumulator> = BTreeMap::new();
    let mut overall = Accumulator::default();
    let mut misses = Vec::new();
    let mut observations = Vec::new();
    for (case, lang) in cases {
        // Chunks, not documents: several chunks of one document may come first.
        let outcome = match scope {
            SearchScope::InLanguage => {
                retriever
                    .search(
                        pool,
                        &SearchRequest {
                            text: &case.q,
                            lang: Some(*lang),
                            category: None,
                            k: 40,
                        },
                    )
                    .await?
            }
            SearchScope::Across => retriever.search_across(pool, &case.q, *lang, 40).await?,
        };
        let rank = first_relevant_rank(&outcome.results, &case.expect);
        per_lang.entry(*lang).or_default().add(rank);
        overall.add(rank);
        if let Some(top) = outcome.results.first() {
            observations.push((
                super::retrieval::Calibration::features(top),
                is_relevant(top, &case.expect),
            ));
        }
        if rank != Some(1) {
            misses.push(Miss {
                q: case.q.clone(),
                lang: *lang,
                expect: case.expect.clone(),
                rank,
                got: outcome.results.first().map(|h| h.title.clone()),
            });
        }
    }
    Ok(EvalReport {
        per_lang: per_lang
            .into_iter()
            .map(|(l, a)| (l, a.metrics()))
            .collect(),
        overall: overall.metrics(),
        misses,
        observations,
    })
}

/// An out-of-scope query: nothing in the knowledge base answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct NegativeCase {
    /// The query.
    pub q: String,
    /// Its language.
    pub lang: String,
}

/// Reads out-of-scope queries (JSONL lines with `q` and `lang`).
pub fn load_negatives(path: &Path) -> Result<Vec<(String, Lang)>, KnowledgeError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| KnowledgeError::BadEvalFile {
        path: name.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: String| KnowledgeError::BadEvalFile {
            path: name.clone(),
            line: i + 1,
            reason,
        };
        let case: NegativeCase = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let lang = case
            .lang
            .parse()
            .map_err(|e: crate::lang::UnknownLang| bad(e.to_string()))?;
        out.push((case.q, lang));
    }
    Ok(out)
}

/// A fitted calibration and how well it fits.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationFit {
    /// The coefficients.
    pub calibration: super::retrieval::Calibration,
    /// Observations used.
    pub observations: usize,
    /// Of which relevant top hits.
    pub positives: usize,
    /// Mean squared error of the probabilities (lower is better; 0.25 = coin toss).
    pub brier: f64,
    /// Share classified right at 0.5.
    pub accuracy: f64,
    /// Reliability: (mean predicted, observed rate, count) per tenth of the probability range.
    pub reliability: Vec<(f64, f64, usize)>,
}

/// Fits the logistic calibration by Newton's method (with a little L2 regularisation so that
/// separable data cannot drive the weights to infinity). Observations: each in-scope query's
/// top hit (relevant or not) and each out-of-scope query's top hit (never relevant), searched
/// as the decision searches.
pub async fn calibrate(
    pool: &PgPool,
    retriever: &Retriever,
    cases: &[(EvalCase, Lang)],
    negatives: &[(String, Lang)],
) -> Result<CalibrationFit, KnowledgeError> {
    // The decision searches every language ([`Retriever::search_across`]): fitted the same way.
    let report = evaluate_scoped(pool, retriever, cases, SearchScope::Across).await?;
    let mut data = report.observations;
    for (q, lang) in negatives {
        let outcome = retriever.search_across(pool, q, *lang, 1).await?;
        if let Some(top) = outcome.results.first() {
            data.push((super::retrieval::Calibration::features(top), false));
        }
    }
    Ok(fit_logistic(&data))
}

/// Fits `p = σ(w·x + b)` on the observations.
pub fn fit_logistic(data: &[([f64; 3], bool)]) -> CalibrationFit {
    const LAMBDA: f64 = 1e-3;
    let mut w = [0.0f64; 4]; // three weights, then the bias
    for _ in 0..50 {
        let mut grad = [0.0f64; 4];
        let mut hess = [[0.0f64; 4]; 4];
        for (x, y) in data {
            let xs = [x[0], x[1], x[2], 1.0];
            let z: f64 = xs.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let err = p - f64::from(u8::from(*y));
            let v = p * (1.0 - p);
            for i in 0..4 {
                grad[i] += err * xs[i];
                for j in 0..4 {
                    hess[i][j] += v * xs[i] * xs[j];
                }
            }
        }
        for i in 0..4 {
            grad[i] += LAMBDA * w[i];
            hess[i][i] += LAMBDA;
        }
        let Some(step) = solve4(hess, grad) else {
            break;
        };
        let mut change = 0.0;
        for i in 0..4 {
            w[i] -= step[i];
            change += step[i].abs();
        }
        if change < 1e-9 {
            break;
        }
    }
    let calibration = super::retrieval::Calibration {
        similarity: w[0],
        text_match: w[1],
        text_score: w[2],
        bias: w[3],
    };
    let predict =
        |x: &[f64; 3]| 1.0 / (1.0 + (-(w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3])).exp());
    let n = data.len().max(1) as f64;
    let mut brier = 0.0;
    let mut right = 0usize;
    let mut bins = vec![(0.0f64, 0usize, 0usize); 10];
    for (x, y) in data {
        let p = predict(x);
        let t = f64::from(u8::from(*y));
        brier += (p - t).powi(2);
        right += usize::from((p >= 0.5) == *y);
        let b = ((p * 10.0) as usize).min(9);
        bins[b].0 += p;
        bins[b].1 += usize::from(*y);
        bins[b].2 += 1;
    }
    CalibrationFit {
        calibration,
        observations: data.len(),
        positives: data.iter().filter(|(_, y)| *y).count(),
        brier: brier / n,
        accuracy: right as f64 / n,
        reliability: bins
            .into_iter()
            .filter(|b| b.2 > 0)
            .map(|(sum, pos, count)| (sum / count as f64, pos as f64 / count as f64, count))
            .collect(),
    }
}

/// Solves a 4×4 linear system by Gaussian elimination with partial pivoting.
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..4 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (cell, pivot) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * pivot;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 4];
    for row in (0..4).rev() {
        let s: f64 = (row + 1..4).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_fit_separates_and_calibrates() {
        // Relevant when similarity is high: the fit must order them and beat a coin toss.
        let mut data = Vec::new();
        for i in 0..200 {
            let s = i as f64 / 200.0;
            data.push(([s, 0.0, 0.0], s > 0.5 && i % 7 != 0));
        }
        let fit = fit_logistic(&data);
        assert!(fit.calibration.similarity > 1.0, "{fit:?}");
        assert!(fit.brier < 0.15, "{fit:?}");
        assert!(fit.accuracy > 0.85, "{fit:?}");
    }
}
