//! The offline extractive answer: the sentences of the approved chunks that best match the
//! question, framed and cited. Also the frame a chat model's answer gets.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auto::ANSWER_CHUNKS;
use super::replies::{closing, intro, source_in_other_language, sources_label};
use crate::knowledge::Hit;
use crate::knowledge::chunk::count_tokens;
use crate::knowledge::lexicon::Lexicon;
use crate::knowledge::sentences::split as sentences;
use crate::lang::{Lang, fold, is_stopword};

/// How many sentences an extractive answer has at most.
const ANSWER_SENTENCES: usize = 3;

/// Weight of a sentence's closeness in meaning to the question against its shared words: the
/// model's similarities between one article's sentences and a question differ by a few
/// hundredths, so 0.05 of similarity weighs about as much as one shared word in a sentence of a
/// dozen.
const MEANING_WEIGHT: f64 = 6.0;

/// A sentence sharing no word with the question is still a candidate when its similarity is
/// within this of the closest sentence's.
const MEANING_MARGIN: f32 = 0.03;

/// The similarity of each sentence of the answer's chunks to the question, by chunk and
/// position among [`sentences`] (`knowledge::sentences::similarities`); empty when the chunks
/// have no sentence vectors, and the answer goes by words alone.
pub type SentenceMeaning = HashMap<(Uuid, usize), f32>;

/// A document the answer drew from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The document.
    pub document_id: Uuid,
    /// Its title (shown in the "Sources" line).
    pub title: String,
    /// Its source path, if any.
    pub source: Option<String>,
    /// The chunks whose sentences were used.
    pub chunk_ids: Vec<Uuid>,
}

/// An extractive answer composed from approved chunks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The text the person receives.
    pub text: String,
    /// The documents it cites, in order of first use.
    pub citations: Vec<Citation>,
    /// Token count of the text ([`count_tokens`]).
    pub tokens: usize,
}

/// At most `max` characters of `text` (whole words, lines joined), with an ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map(|(head, _)| head).unwrap_or(&cut);
    format!("{cut}…")
}

/// The folded content words of a text.
fn content_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in fold(text).split(' ') {
        if w.chars().count() >= 2 && !is_stopword(w) && !words.iter().any(|x| x == w) {
            words.push(w.to_string());
        }
    }
    words
}

/// Two folded words match when equal or when they share a 5-letter prefix (a light stem:
/// "sleeping"/"sleep", "dormir"/"dormez", "النوم"/"النومي").
fn words_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let pa: Vec<char> = a.chars().take(5).collect();
    let pb: Vec<char> = b.chars().take(5).collect();
    pa.len() == 5 && pa == pb
}

/// Composes the offline extractive answer: the two or three sentences of the best article's
/// top chunks (retrieval chose the article and its chunks by meaning and words) that best
/// address the query, by the words they share with it (and its lexicon expansion) and, when
/// the chunks have sentence vectors (`meaning`), by their closeness in meaning to it; in their
/// original order, with a one-line introduction and a "Sources" line citing the article.
pub fn compose_answer(query: &str, lang: Lang, hits: &[Hit], meaning: &SentenceMeaning) -> Answer {
    let mut query_words = content_words(query);
    for w in Lexicon::builtin().expand(query) {
        for f in content_words(&w) {
            if !query_words.contains(&f) {
                query_words.push(f);
            }
        }
    }
    // The answer's language is the top hit's: the person's own whenever retrieval found the
    // article, or its translation, in it ([`crate::knowledge::Retriever::search_across`]).
    let source_lang = answer_source_lang(lang, hits);
    // Candidate sentences: (hit index, position, word score, sentence, shares a word with the
    // query, similarity to the query).
    let mut candidates = Vec::new();
    // One article answers: the best one's chunks. Sentences picked by shared words across
    // several articles could quote the tobacco article to a question about smoking cannabis.
    let article = hits
        .iter()
        .find(|h| h.lang == source_lang)
        .map(|h| h.document_id);
    for (hi, hit) in hits
        .iter()
        .enumerate()
        .filter(|(_, h)| h.lang == source_lang && Some(h.document_id) == article)
        .take(ANSWER_CHUNKS)
    {
        for (pos, s) in sentences(&hit.content).into_iter().enumerate() {
            let words = content_words(&s);
            let overlap = query_words
                .iter()
                .filter(|q| words.iter().any(|w| words_match(q, w)))
                .count() as f64;
            // Overlap normalised by length, with a small preference for better-ranked chunks
            // and earlier sentences (articles put the gist first).
            let score =
                overlap / (words.len().max(1) as f64).sqrt() - 0.05 * hi as f64 - 0.01 * pos as f64;
            let similarity = meaning.get(&(hit.chunk_id, pos)).copied();
            candidates.push((hi, pos, score, s, overlap > 0.0, similarity));
        }
    }
    // By meaning: each sentence's similarity against the closest one's, so that the weight
    // does not depend on where the model's similarities sit for this question.
    let closest = candidates
        .iter()
        .filter_map(|c| c.5)
        .fold(f32::MIN, f32::max);
    let candidates: Vec<(usize, usize, f64, String)> = candidates
        .into_iter()
        .map(|(hi, pos, score, s, shares_words, similarity)| {
            let score = match similarity {
                Some(sim) if shares_words || sim >= closest - MEANING_MARGIN => {
                    score + MEANING_WEIGHT * f64::from(sim - closest)
                }
                _ if shares_words => score,
                _ => f64::MIN,
            };
            (hi, pos, score, s)
        })
        .collect();
    let mut chosen: Vec<(usize, usize, String)> = Vec::new();
    let mut ranked = candidates.clone();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (hi, pos, score, s) in ranked {
        if chosen.len() == ANSWER_SENTENCES || score == f64::MIN {
            break;
        }
        if !chosen.iter().any(|(_, _, c)| fold(c) == fold(&s)) {
            chosen.push((hi, pos, s));
        }
    }
    if chosen.is_empty() {
        // Retrieval found the chunk by meaning rather than shared words: its opening sentences.
        let first = candidates.first().map(|c| c.0);
        chosen = candidates
            .into_iter()
            .filter(|c| Some(c.0) == first)
            .take(2)
            .map(|(hi, pos, _, s)| (hi, pos, s))
            .collect();
    }
    if chosen.is_empty() {
        // No complete sentence at all (a chunk cut mid-sentence): the top chunk's own text.
        if let Some((hi, hit)) = hits.iter().enumerate().find(|(_, h)| h.lang == source_lang) {
            chosen.push((hi, 0, excerpt(&hit.content, 400)));
        }
    }
    chosen.sort_by_key(|(hi, pos, _)| (*hi, *pos));
    let used: Vec<&Hit> = chosen.iter().map(|(hi, _, _)| &hits[*hi]).collect();

    let mut body: Vec<String> = chosen.into_iter().map(|(_, _, s)| s).collect();
    if source_lang != lang.code() {
        body.insert(0, source_in_other_language(lang, &source_lang));
    }
    finish_answer(lang, &body.join(" "), &used)
}

/// The language an answer is drawn from: the person's when a hit is in it, else the top
/// hit's (an article with no version in the person's language yet).
pub(crate) fn answer_source_lang(lang: Lang, hits: &[Hit]) -> String {
    match hits.first() {
        Some(top) if top.lang != lang.code() => top.lang.clone(),
        _ => lang.code().to_string(),
    }
}

/// The answer as the person reads it: an introduction, the body, the offer of a human and a
/// "Sources" line naming the documents of `used` (chunks of one document cited once).
pub(crate) fn finish_answer(lang: Lang, body: &str, used: &[&Hit]) -> Answer {
    let mut citations: Vec<Citation> = Vec::new();
    for hit in used {
        match citations
            .iter_mut()
            .find(|c| c.document_id == hit.document_id)
        {
            Some(c) => {
                if !c.chunk_ids.contains(&hit.chunk_id) {
                    c.chunk_ids.push(hit.chunk_id);
                }
            }
            None => citations.push(Citation {
                document_id: hit.document_id,
                title: hit.title.clone(),
                source: hit.source.clone(),
                chunk_ids: vec![hit.chunk_id],
            }),
        }
    }
    let (label, sep) = sources_label(lang);
    let titles: Vec<&str> = citations.iter().map(|c| c.title.as_str()).collect();
    let text = format!(
        "{}\n\n{}\n\n{}\n\n{}{}",
        intro(lang),
        body.trim(),
        closing(lang),
        label,
        titles.join(sep)
    );
    let tokens = count_tokens(&text);
    Answer {
        text,
        citations,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: u128, lang: &str, title: &str, content: &str) -> Hit {
        Hit {
            chunk_id: Uuid::from_u128(doc + 1000),
            document_id: Uuid::from_u128(doc),
            title: title.into(),
            source: None,
            category: None,
            lang: lang.into(),
            chunk_index: 0,
            content: content.into(),
            score: 0.03,
            vector_rank: Some(1),
            vector_similarity: 0.8,
            text_rank: Some(1),
            text_score: Some(0.1),
            translated_from: None,
        }
    }

    #[test]
    fn extractive_answer_picks_overlapping_sentences_and_cites_documents() {
        let hits = vec![
            hit(
                1,
                "en",
                "Sleep problems",
                "# Sleep problems\n\nKeep a regular bedtime and avoid screens before sleeping. Insomnia that lasts weeks deserves a doctor's advice. Cats are nice animals to live with.",
            ),
            hit(
                2,
                "en",
                "Quitting tobacco",
                "Nicotine cravings pass within minutes.",
            ),
        ];
        let a = compose_answer(
            "I can't sleep, insomnia every night",
            Lang::En,
            &hits,
            &SentenceMeaning::new(),
        );
        assert!(
            a.text.starts_with("Here is what our approved sources say:"),
            "{}",
            a.text
        );
        assert!(a.text.contains("Insomnia that lasts weeks"), "{}", a.text);
        assert!(!a.text.contains("Cats"), "{}", a.text);
        assert!(a.text.ends_with("Sources: Sleep problems"), "{}", a.text);
        assert_eq!(a.citations.len(), 1);
        assert_eq!(a.citations[0].document_id, Uuid::from_u128(1));
        assert_eq!(a.tokens, count_tokens(&a.text));
    }

    #[test]
    fn answer_in_the_persons_language_or_from_the_best_article_saying_so() {
        let sleep_en = hit(
            2,
            "en",
            "Sleep",
            "Keep a regular bedtime to sleep well at night.",
        );
        let sommeil_fr = hit(
            1,
            "fr",
            "Sommeil",
            "Gardez des horaires réguliers pour bien dormir le soir.",
        );
        // The best hit is in the person's language: other languages' chunks are left out.
        let a = compose_answer(
            "sleep bedtime",
            Lang::En,
            &[sleep_en.clone(), sommeil_fr.clone()],
            &SentenceMeaning::new(),
        );
        assert_eq!(a.citations.len(), 1);
        assert_eq!(a.citations[0].title, "Sleep");
        assert!(!a.text.contains("article in"), "{}", a.text);
        // The best article exists only in French: answered from it, saying so in English.
        let a = compose_answer(
            "sleep bedtime",
            Lang::En,
            &[sommeil_fr, sleep_en],
            &SentenceMeaning::new(),
        );
        assert_eq!(a.citations.len(), 1);
        assert_eq!(a.citations[0].title, "Sommeil");
        assert!(
            a.text.contains("comes from our article in French"),
            "{}",
            a.text
        );
    }

    #[test]
    fn headings_are_left_out_and_a_chunk_without_sentences_is_excerpted() {
        let hits = vec![hit(
            1,
            "fr",
            "Tabac",
            "Tabac et nicotine : arrêter de fumer\n\nArrêter de fumer demande souvent plusieurs tentatives.",
        )];
        let a = compose_answer("arrêter de fumer", Lang::Fr, &hits, &SentenceMeaning::new());
        assert!(
            a.text.contains("\n\nArrêter de fumer demande"),
            "{}",
            a.text
        );
        assert!(!a.text.contains("nicotine : arrêter"), "{}", a.text);
        let hits = vec![hit(
            2,
            "en",
            "Cut",
            "a chunk cut in the middle of a long sentence, without",
        )];
        let a = compose_answer("long sentence", Lang::En, &hits, &SentenceMeaning::new());
        assert!(a.text.contains("a chunk cut in the middle"), "{}", a.text);
        assert_eq!(a.citations.len(), 1);
    }

    #[test]
    fn sentences_are_chosen_by_meaning_when_they_share_no_words() {
        let content = "Sleep matters to everyone in many different ways. Keep a regular bedtime \
                       and put screens away an hour before. Our team can talk with you on any day.";
        let h = hit(7, "en", "Sleep", content);
        let query = "my nights feel endless lately";
        // By words alone nothing matches: the chunk's opening sentences.
        let a = compose_answer(
            query,
            Lang::En,
            std::slice::from_ref(&h),
            &SentenceMeaning::new(),
        );
        assert!(a.text.contains("Sleep matters"), "{}", a.text);
        // By meaning: the sentence closest to the question, and not those far below it.
        let meaning: SentenceMeaning = [0.80, 0.86, 0.78]
            .into_iter()
            .enumerate()
            .map(|(pos, sim)| ((h.chunk_id, pos), sim))
            .collect();
        let a = compose_answer(query, Lang::En, std::slice::from_ref(&h), &meaning);
        assert!(a.text.contains("Keep a regular bedtime"), "{}", a.text);
        assert!(!a.text.contains("Sleep matters"), "{}", a.text);
        assert!(!a.text.contains("Our team"), "{}", a.text);
        // Shared words still count: a sentence sharing the question's words stays beside the
        // closest in meaning.
        let a = compose_answer(
            "why does sleep matter",
            Lang::En,
            std::slice::from_ref(&h),
            &meaning,
        );
        assert!(
            a.text.contains("Sleep matters") && a.text.contains("Keep a regular bedtime"),
            "{}",
            a.text
        );
    }
}
