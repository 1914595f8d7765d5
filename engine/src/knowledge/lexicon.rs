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
    /// Generic words ("smoking", "fumer", "تدخين") that bring the concept only when no other
    /// concept is named: "smoking cannabis" is about cannabis, not tobacco.
    weak: Vec<String>,
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
            let mut weak: Vec<String> = Vec::new();
            let canonical: Vec<String> = canonical
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| match w.strip_prefix('~') {
                    Some(generic) => {
                        weak.push(fold(generic));
                        fold(generic)
                    }
                    None => fold(w),
                })
                .collect();
            if canonical.is_empty() {
                return Err(err("no canonical words before `:`"));
            }
            let mut triggers: Vec<String> = Vec::new();
            for word in colloquial
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
            {
                match word.strip_prefix('~') {
                    Some(generic) => weak.push(fold(generic)),
                    None => triggers.push(fold(word)),
                }
            }
            triggers.extend(canonical.iter().filter(|c| !weak.contains(c)).cloned());
            triggers.retain(|t| !t.is_empty());
            weak.retain(|t| !t.is_empty());
            concepts.push(Concept {
                canonical,
                triggers,
                weak,
            });
        }
        Ok(Lexicon { concepts })
    }

    /// The canonical words of every concept the query mentions, folded, without repeats and
    /// without words the query already has.
    pub fn expand(&self, query: &str) -> Vec<String> {
        let folded = format!(" {} ", fold(query));
        let found = |words: &[String]| words.iter().any(|t| folded.contains(&format!(" {t} ")));
        let strong: Vec<bool> = self.concepts.iter().map(|c| found(&c.triggers)).collect();
        let any_strong = strong.contains(&true);
        let mut out: Vec<String> = Vec::new();
        for (concept, strong) in self.concepts.iter().zip(strong) {
            if strong || (!any_strong && found(&concept.weak)) {
                for word in &concept.canonical {
                    if !out.contains(word) && !folded.contains(&format!(" {word} ")) {
                        out.push(word.clone());
                    }
                }
            }
        }
        out
    }

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
        let lex = Lexicon::parse("tobacco ~تدخين : ~smoking, clope\ncannabis : weed").unwrap();
        assert_eq!(
            lex.expand("how do I stop smoking"),
            vec!["tobacco", "تدخين"]
        );
        assert_eq!(
            lex.expand("how do I stop smoking weed"),
            vec!["cannabis"],
            "a generic word yields to a named concept"
        );
        assert!(
            lex.expand("كيف أتوقف عن تدخين")
                .contains(&"tobacco".to_string())
        );
        assert_eq!(
            lex.expand("clope et weed"),
            vec!["tobacco", "تدخين", "cannabis"]
        );
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(Lexicon::parse("# c\nno colon here").unwrap_err().line, 2);
        assert!(Lexicon::parse(" : a, b").is_err());
    }
}
