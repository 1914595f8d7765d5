//! The query lexicon (`lexicon.txt` beside this module): colloquial words, slang, Darija and
//! Arabizi mapped to the vocabulary the knowledge base is written in. A query containing a
//! concept's word gains the concept's canonical words, for both the vector and the text search:
//! "la clope" finds the article on tobacco, "الزطلة" the one on cannabis.

use std::sync::LazyLock;

use crate::lang::fold;

/// The lexicon shipped with the engine.
pub const BUILTIN: &str = include_str!("lexicon.txt");

/// One concept.
#[derive(Debug, Clone)]
struct Concept {
    canonical: Vec<String>,
    triggers: Vec<String>,
}

/// Query expansion by concept.
#[derive(Debug, Clone)]
pub struct Lexicon {
    concepts: Vec<Concept>,
}

/// A malformed lexicon line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("lexicon line {line}: {reason}")]
pub struct LexiconError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

static SHIPPED: LazyLock<Lexicon> =
    LazyLock::new(|| Lexicon::parse(BUILTIN).expect("the shipped lexicon parses"));

impl Lexicon {
    /// The shipped lexicon.
    pub fn builtin() -> &'static Lexicon {
        &SHIPPED
    }

    /// Parses `canonical words : colloquial, words` lines (`#` starts a comment line).
    pub fn parse(text: &str) -> Result<Self, LexiconError> {
        let mut concepts = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: &str| LexiconError {
                line: i + 1,
                reason: reason.to_string(),
            };
            let (canonical, colloquial) = line
                .split_once(':')
                .ok_or_else(|| err("missing `:` between canonical and colloquial words"))?;
            let canonical: Vec<String> = fold(canonical)
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            if canonical.is_empty() {
                return Err(err("no canonical words before `:`"));
            }
            let mut triggers: Vec<String> = colloquial
                .split(',')
                .map(fold)
                .filter(|w| !w.is_empty())
                .collect();
            triggers.extend(canonical.iter().cloned());
            concepts.push(Concept {
                canonical,
                triggers,
            });
        }
        Ok(Lexicon { concepts })
    }

    /// The canonical words of every concept the query mentions, folded, without repeats and
    /// without words the query already has.
    pub fn expand(&self, query: &str) -> Vec<String> {
        let folded = format!(" {} ", fold(query));
        let mut out: Vec<String> = Vec::new();
        for concept in &self.concepts {
            if concept
                .triggers
                .iter()
                .any(|t| folded.contains(&format!(" {t} ")))
            {
                for word in &concept.canonical {
                    if !out.contains(word) && !folded.contains(&format!(" {word} ")) {
                        out.push(word.clone());
                    }
                }
            }
        }
        out
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    /// True when there are no concepts.
    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_lexicon_parses() {
        assert!(Lexicon::builtin().len() >= 20);
    }

    #[test]
    fn expands_slang_in_three_languages_and_phrases() {
        let lex =
            Lexicon::parse("tobacco tabac : clope, الدخان, can't sleep\nsleep : insomnie").unwrap();
        assert_eq!(
            lex.expand("comment arrêter la clope"),
            vec!["tobacco", "tabac"]
        );
        assert_eq!(
            lex.expand("واش ندير باش نبطل الدخان"),
            vec!["tobacco", "tabac"]
        );
        assert_eq!(lex.expand("I CAN'T SLEEP"), vec!["tobacco", "tabac"]);
        assert!(lex.expand("cloporte").is_empty(), "whole words only");
        assert_eq!(lex.expand("tabac et clope"), vec!["tobacco"]);
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(Lexicon::parse("# c\nno colon here").unwrap_err().line, 2);
        assert!(Lexicon::parse(" : a, b").is_err());
    }
}
