//! Splitting a document into retrieval chunks.
//!
//! Chunks are contiguous spans of the document: whole paragraphs where they fit, else whole
//! sentences, with the last sentence or two of a chunk repeated at the start of the next
//! (overlap), so an answer that straddles a boundary is still found whole. Sentences end at
//! `.`, `!`, `?`, `…` and the Arabic `؟`; over-long sentences are cut at `،`, `؛`, `,`, `;`, `:`
//! and, as a last resort, between words. Positions are in characters, as PostgreSQL counts them.

/// Chunk size limits, in tokens (words and punctuation marks).
#[derive(Debug, Clone, Copy)]
pub struct ChunkConfig {
    /// A chunk never exceeds this.
    pub max_tokens: usize,
    /// At most this many tokens of whole sentences are repeated from the previous chunk.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 180,
            overlap_tokens: 40,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: usize,
    /// The text: exactly `document[start..end]` in characters.
    pub content: String,
    /// First character, inclusive.
    pub start: usize,
    /// Last character, exclusive.
    pub end: usize,
    /// Words and punctuation marks.
    pub tokens: usize,
}

/// Counts tokens: runs of letters and digits are words; every other visible character is one mark.
pub fn count_tokens(text: &str) -> usize {
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        if crate::lang::is_alphanumeric(c)
            || c == '\u{0640}'
            || ('\u{064B}'..='\u{065F}').contains(&c)
        {
            if !in_word {
                count += 1;
                in_word = true;
            }
        } else {
            in_word = false;
            if !c.is_whitespace() {
                count += 1;
            }
        }
    }
    count
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize, // bytes
    end: usize,   // bytes
    tokens: usize,
    paragraph_start: bool,
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '؟' | '…' | '。')
}

fn is_clause_end(c: char) -> bool {
    matches!(c, '،' | '؛' | ',' | ';' | ':')
}

/// Splits `text[range]` after every char for which `boundary` holds when whitespace follows.
fn split_after(
    text: &str,
    start: usize,
    end: usize,
    boundary: fn(char) -> bool,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut piece_start = start;
    let slice = &text[start..end];
    let mut iter = slice.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let abs_end = start + i + c.len_utf8();
        let next_is_space = iter.peek().is_none_or(|&(_, n)| n.is_whitespace());
        if (boundary(c) && next_is_space) || c == '\n' {
            push_trimmed(text, piece_start, abs_end, &mut out);
            piece_start = abs_end;
        }
    }
    push_trimmed(text, piece_start, end, &mut out);
    out
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let s = &text[start..end];
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail < s.len() {
        out.push((start + lead, end - trail));
    }
}

/// Cuts a span into pieces of at most `max` tokens between words.
fn split_words(text: &str, start: usize, end: usize, max: usize, out: &mut Vec<(usize, usize)>) {
    let mut piece_start = None;
    let mut tokens = 0;
    let mut last_end = start;
    for (i, word) in text[start..end]
        .split_inclusive(char::is_whitespace)
        .scan(0, |pos, w| {
            let at = *pos;
            *pos += w.len();
            Some((at, w))
        })
    {
        let word_tokens = count_tokens(word);
        let abs = start + i;
        if tokens + word_tokens > max && piece_start.is_some() {
            push_trimmed(text, piece_start.take().unwrap(), last_end, out);
            tokens = 0;
        }
        piece_start.get_or_insert(abs);
        tokens += word_tokens;
        last_end = abs + word.len();
    }
    if let Some(s) = piece_start {
        push_trimmed(text, s, end, out);
    }
}

fn pieces(text: &str, max: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut para_start = 0;
    let bytes_len = text.len();
    let mut paragraphs = Vec::new();
    while para_start < bytes_len {
        let end = text[para_start..]
            .find("\n\n")
            .map_or(bytes_len, |i| para_start + i);
        paragraphs.push((para_start, end));
        para_start = end + 2;
    }
    for (p_start, p_end) in paragraphs {
        let mut first = true;
        for (s, e) in split_after(text, p_start, p_end, is_sentence_end) {
            let spans = if count_tokens(&text[s..e]) > max {
                let mut fine = Vec::new();
                for (cs, ce) in split_after(text, s, e, is_clause_end) {
                    if count_tokens(&text[cs..ce]) > max {
                        split_words(text, cs, ce, max, &mut fine);
                    } else {
                        fine.push((cs, ce));
                    }
                }
                fine
            } else {
                vec![(s, e)]
            };
            for (s, e) in spans {
                out.push(Piece {
                    start: s,
                    end: e,
                    tokens: count_tokens(&text[s..e]),
                    paragraph_start: first,
                });
                first = false;
            }
        }
    }
    out
}

/// Splits `text` into chunks.
pub fn chunk(text: &str, config: ChunkConfig) -> Vec<Chunk> {
    let max = config.max_tokens.max(8);
    let pieces = pieces(text, max);
    let mut groups: Vec<Vec<Piece>> = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut current_tokens = 0;
    // Tokens of the current paragraph still ahead, to keep paragraphs whole where they fit.
    let paragraph_tokens = |from: usize| -> usize {
        let mut total = pieces[from].tokens;
        for p in &pieces[from + 1..] {
            if p.paragraph_start {
                break;
            }
            total += p.tokens;
        }
        total
    };
    let mut fresh = 0; // pieces in `current` that are not overlap
    for (i, piece) in pieces.iter().enumerate() {
        let starts_paragraph_that_will_not_fit = piece.paragraph_start
            && current_tokens >= max / 2
            && current_tokens + paragraph_tokens(i) > max;
        if fresh > 0 && (current_tokens + piece.tokens > max || starts_paragraph_that_will_not_fit)
        {
            groups.push(current.clone());
            // Overlap: the trailing whole sentences that fit in overlap_tokens, and leave room.
            let mut overlap: Vec<Piece> = Vec::new();
            let mut overlap_tokens = 0;
            for p in current.iter().rev() {
                if overlap_tokens + p.tokens > config.overlap_tokens
                    || overlap.len() + 1 >= current.len()
                {
                    break;
                }
                overlap_tokens += p.tokens;
                overlap.insert(0, *p);
            }
            // A paragraph break is a natural boundary: nothing needs repeating across it.
            if overlap_tokens + piece.tokens > max || starts_paragraph_that_will_not_fit {
                overlap.clear();
                overlap_tokens = 0;
            }
            current = overlap;
            current_tokens = overlap_tokens;
            fresh = 0;
        }
        current.push(*piece);
        current_tokens += piece.tokens;
        fresh += 1;
    }
    if fresh > 0 {
        groups.push(current);
    }

    // Byte offsets to character offsets, walking forward once.
    let mut char_at = Vec::with_capacity(groups.len() * 2);
    for g in &groups {
        char_at.push(g[0].start);
        char_at.push(g[g.len() - 1].end);
    }
    let mut sorted: Vec<usize> = char_at.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let mut map = std::collections::HashMap::with_capacity(sorted.len());
    let (mut chars, mut last) = (0usize, 0usize);
    for b in sorted {
        chars += text[last..b].chars().count();
        last = b;
        map.insert(b, chars);
    }
    groups
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let (bs, be) = (g[0].start, g[g.len() - 1].end);
            let content = text[bs..be].to_string();
            Chunk {
                index,
                tokens: count_tokens(&content),
                content,
                start: map[&bs],
                end: map[&be],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
        }
    }

    #[test]
    fn tokens_are_words_and_marks() {
        assert_eq!(count_tokens("Hello, world!"), 4);
        assert_eq!(count_tokens("هل أنت بخير؟"), 4);
        assert_eq!(count_tokens("  "), 0);
    }

    #[test]
    fn short_text_is_one_chunk_with_exact_positions() {
        let text = "Un paragraphe.\n\nUn autre.";
        let chunks = chunk(text, ChunkConfig::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].start, chunks[0].end), (0, text.chars().count()));
        assert_eq!(chunks[0].content, text);
    }

    #[test]
    fn positions_are_characters_and_slices_match() {
        let text = "النوم مهم جدا. الأرق شائع؟ نعم، شائع جدا.\n\nالرياضة تساعد. والضوء في الصباح أيضا!\n\nتحدث مع طبيب إذا استمر الأمر.";
        let chunks = chunk(text, cfg(10, 4));
        assert!(chunks.len() >= 3, "{chunks:#?}");
        let chars: Vec<char> = text.chars().collect();
        for c in &chunks {
            let slice: String = chars[c.start..c.end].iter().collect();
            assert_eq!(slice, c.content);
            assert!(c.tokens <= 10, "{c:?}");
        }
        assert!(chunks.windows(2).all(|w| w[0].index + 1 == w[1].index));
        // Overlap: a later chunk starts before the previous one ends.
        assert!(
            chunks.windows(2).any(|w| w[1].start < w[0].end),
            "{chunks:#?}"
        );
        // Nothing is lost: every sentence appears in some chunk.
        for sentence in [
            "الأرق شائع؟",
            "والضوء في الصباح أيضا!",
            "تحدث مع طبيب إذا استمر الأمر.",
        ] {
            assert!(
                chunks.iter().any(|c| c.content.contains(sentence)),
                "{sentence}"
            );
        }
    }

    #[test]
    fn long_sentences_are_cut_at_arabic_commas_then_words() {
        let long = "كلمة ".repeat(30);
        let text = format!("جملة أولى طويلة، {long}؛ ثم نهاية.");
        let chunks = chunk(&text, cfg(12, 0));
        assert!(chunks.iter().all(|c| c.tokens <= 12), "{chunks:#?}");
        let rebuilt: usize = chunks.iter().map(|c| c.tokens).sum();
        assert_eq!(rebuilt, count_tokens(&text));
    }

    #[test]
    fn paragraphs_stay_whole_when_they_fit() {
        let p1 = "One two three four five six. Seven eight nine ten.";
        let p2 = "Eleven twelve thirteen. Fourteen fifteen sixteen seventeen eighteen.";
        let text = format!("{p1}\n\n{p2}");
        let chunks = chunk(&text, cfg(20, 5));
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert_eq!(chunks[1].content, p2);
    }
}
