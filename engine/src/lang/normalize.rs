//! Text normalization for matching rules against what people write: shared by the crisis gate
//! and the human-request detector, and the message-language guess of [`super::message_language`].
//!
//! People write to the service in Modern Standard Arabic, Algerian Darija (in Arabic script and
//! in Latin-script "Arabizi", where digits are letters: 3=ع, 7=ح, 9=ق, 5=خ, 2=ء, 8=غ), French and
//! English, with SMS spelling, missing accents and hamzas, elongations and emojis. The detectors
//! compare words after one folding, applied identically to messages and to the rule files'
//! patterns, so a rule written `أموت` also matches `اموت`, `أمـــوت` and `أمُوت`:
//!
//! - Unicode compatibility decomposition (NFKD, char by char): Arabic presentation forms and
//!   ligatures become plain letters, full-width Latin becomes ASCII;
//! - combining marks are dropped: Latin accents (`é` → `e`, so `tué` = `tue`), Arabic harakat
//!   U+064B–U+065F and U+0670, Quranic marks, and the hamza/madda carried by `أ إ آ ؤ ئ` (so those
//!   become `ا ا ا و ي`); tatweel U+0640, zero-width joiners and emoji modifiers are dropped too;
//! - letter unification: `ٱ` → `ا`, `ى` → `ي`, `ة` → `ه`, Persian/Maghrebi letters `ک ی ہ ھ` →
//!   `ك ي ه ه`, Algerian `ڨ گ` (the /g/ of `ڨاع`) → `ق`, `ڤ` → `ف`, `œ` → `oe`;
//! - Arabic-Indic and Eastern Arabic-Indic digits → ASCII digits (Arabizi digits stay as they are:
//!   inside a Latin word they are letters);
//! - lowercase;
//! - a letter repeated in a row is written once (`mouuuut` → `mout`, `dieee` → `die`, `موووت` →
//!   `موت`, but also `kill` → `kil`): elongation is the commonest spelling variant, and because
//!   patterns are folded the same way, collapsing real double letters costs nothing;
//! - anything that is not a letter, a digit or an emoji separates words; `. ! ? ؟ ; ؛` and line
//!   breaks also end a sentence (rules never match across sentences);
//! - emojis are kept, each as a one-character word, because a few (💊 🔪 🩸 ⚰ 😂) carry meaning
//!   in context; the rule files decide when.

use std::collections::HashSet;
use std::sync::OnceLock;

/// The service's languages: the crate-wide type, re-exported where the gate's modules use it.
pub use crate::lang::Lang;

/// The writing system of a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Arabic script.
    Arabic,
    /// Latin script (French, English and Arabizi), possibly with digits.
    Latin,
    /// Digits only.
    Number,
    /// One emoji or pictograph.
    Emoji,
}

/// One word of a message after folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The folded word.
    pub text: String,
    /// For an Arabic word starting with the conjunction `و` or `ف` ("and", "so"), the word
    /// without it: Arabic writes the conjunction attached (`ونموت` = "and I die"), and rules
    /// should not have to spell every word twice.
    pub stripped: Option<String>,
    /// Byte offsets of the word in the original message.
    pub start: usize,
    /// End byte offset (exclusive) in the original message.
    pub end: usize,
    /// Index of the sentence the word belongs to.
    pub sentence: u32,
    /// The word's script.
    pub script: Script,
}

impl Token {
    /// Whether the word (or its form without a leading conjunction) satisfies `f`.
    #[inline]
    pub fn any_form(&self, f: impl Fn(&str) -> bool) -> bool {
        f(&self.text) || self.stripped.as_deref().is_some_and(f)
    }
}

/// A message after folding and tokenization.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// The words, in order.
    pub tokens: Vec<Token>,
    /// The folded words between single spaces, with a space at both ends (what the literal
    /// prefilter scans); a word's form without its leading conjunction is listed after it.
    pub joined: String,
    /// For every word listed in `joined`: its byte offset there and the index of its token.
    pub word_starts: Vec<(usize, u32)>,
}

/// What one character of the original text becomes.
enum Piece {
    /// Nothing (a combining mark, tatweel, a joiner): the word goes on.
    Skip,
    /// Part of a word.
    Word(char),
    /// A word of its own (an emoji).
    Emoji(char),
    /// A separator between words.
    Space,
    /// A separator that also ends a sentence.
    Stop,
}

fn is_dropped_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'   // Latin combining accents
        | '\u{0610}'..='\u{061A}' // Arabic honorific and Quranic signs
        | '\u{064B}'..='\u{065F}' // harakat, shadda, sukun, hamza and madda above/below
        | '\u{0670}'              // superscript alef
        | '\u{06D6}'..='\u{06ED}' // Quranic annotation marks
        | '\u{0640}'              // tatweel (kashida), used for elongation
        | '\u{200B}'..='\u{200F}' // zero-width space/joiners, direction marks
        | '\u{202A}'..='\u{202E}' // bidi embeddings
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FE00}'..='\u{FE0F}' // variation selectors (emoji presentation)
        | '\u{1F3FB}'..='\u{1F3FF}' // skin-tone modifiers
        | '\u{E0020}'..='\u{E007F}' // tag characters (flag sequences)
    )
}

fn is_emoji(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}'
        | '\u{2600}'..='\u{27BF}'
        | '\u{2300}'..='\u{23FF}'
        | '\u{2B00}'..='\u{2BFF}'
        | '\u{2190}'..='\u{21FF}'
    )
}

fn is_arabic_letter(c: char) -> bool {
    matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}')
}

/// Folds one decomposed character (see the module documentation).
fn fold_char(c: char) -> Piece {
    if is_dropped_mark(c) {
        return Piece::Skip;
    }
    let c = match c {
        'ٱ' => 'ا',
        'ى' | 'ی' | 'ې' => 'ي',
        'ة' | 'ہ' | 'ۀ' | 'ھ' | 'ە' => 'ه',
        'ک' => 'ك',
        'ڨ' | 'گ' => 'ق',
        'ڤ' => 'ف',
        '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
        '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
        _ => c,
    };
    if super::is_alphanumeric(c) {
        return Piece::Word(c);
    }
    if is_emoji(c) {
        return Piece::Emoji(c);
    }
    match c {
        '.' | '!' | '?' | '؟' | ';' | '؛' | '\n' | '\r' | '…' | '¡' | '¿' | '۔' => {
            Piece::Stop
        }
        _ => Piece::Space,
    }
}

/// Appends the lowercase folding of `c` to `out` (`œ` → `oe`, `æ` → `ae`, `ß` → `ss`).
fn push_lower(out: &mut String, c: char) {
    match c {
        'œ' | 'Œ' => out.push_str("oe"),
        'æ' | 'Æ' => out.push_str("ae"),
        'ß' => out.push_str("ss"),
        _ if c.is_ascii() => out.push(c.to_ascii_lowercase()),
        _ => out.extend(c.to_lowercase()),
    }
}

fn classify(word: &str) -> Script {
    let mut arabic = false;
    let mut letter = false;
    for c in word.chars() {
        if is_arabic_letter(c) {
            arabic = true;
        } else if super::is_alphabetic(c) {
            letter = true;
        }
    }
    if arabic {
        Script::Arabic
    } else if letter {
        Script::Latin
    } else {
        Script::Number
    }
}

struct Builder {
    tokens: Vec<Token>,
    word: String,
    start: usize,
    end: usize,
    sentence: u32,
    sentence_has_words: bool,
}

impl Builder {
    /// Appends a letter or digit, lowercased, unless it repeats the previous letter: a letter
    /// repeated in a row is written once (digits are left alone: `100` stays `100`).
    #[inline]
    fn push(&mut self, c: char) {
        let before = self.word.len();
        push_lower(&mut self.word, c);
        let added = &self.word[before..];
        let mut it = added.chars();
        if let (Some(first), None) = (it.next(), it.next())
            && !first.is_ascii_digit()
            && self.word[..before].ends_with(first)
        {
            self.word.truncate(before);
        }
    }

    fn flush(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.word);
        let script = classify(&text);
        let stripped = if script == Script::Arabic {
            let mut chars = text.chars();
            match chars.next() {
                Some('و' | 'ف') if text.chars().count() >= 3 => Some(chars.as_str().to_string()),
                _ => None,
            }
        } else {
            None
        };
        self.tokens.push(Token {
            text,
            stripped,
            start: self.start,
            end: self.end,
            sentence: self.sentence,
            script,
        });
        self.sentence_has_words = true;
    }

    fn stop(&mut self) {
        self.flush();
        if self.sentence_has_words {
            self.sentence += 1;
            self.sentence_has_words = false;
        }
    }
}

/// Folds and tokenizes a message (see the module documentation).
pub fn normalize(text: &str) -> Normalized {
    let mut b = Builder {
        tokens: Vec::with_capacity(text.len() / 4 + 1),
        word: String::with_capacity(32),
        start: 0,
        end: 0,
        sentence: 0,
        sentence_has_words: false,
    };
    let mut buf: [char; 18] = ['\0'; 18];
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        // Compatibility decomposition of one character yields at most 18 characters.
        let mut n = 0;
        if c.is_ascii() {
            buf[0] = c;
            n = 1;
        } else {
            unicode_normalization::char::decompose_compatible(c, |d| {
                if n < buf.len() {
                    buf[n] = d;
                    n += 1;
                }
            });
        }
        for &d in &buf[..n] {
            match fold_char(d) {
                Piece::Skip => {}
                Piece::Word(w) => {
                    if b.word.is_empty() {
                        b.start = i;
                    }
                    b.push(w);
                    b.end = next;
                }
                Piece::Emoji(e) => {
                    b.flush();
                    b.start = i;
                    b.end = next;
                    b.word.push(e);
                    b.flush();
                }
                Piece::Space => b.flush(),
                Piece::Stop => b.stop(),
            }
        }
    }
    b.flush();
    // " w1 w2 w3 ": every word between spaces, so that the prefilter can look for whole words
    // (" w "), word starts (" w") and word ends ("w "); a word's form without its conjunction
    // follows it as if it were one more word.
    let mut joined = String::with_capacity(text.len() * 2 + 2);
    let mut word_starts = Vec::with_capacity(b.tokens.len() + 4);
    joined.push(' ');
    for (i, t) in b.tokens.iter().enumerate() {
        word_starts.push((joined.len(), i as u32));
        joined.push_str(&t.text);
        joined.push(' ');
        if let Some(s) = &t.stripped {
            word_starts.push((joined.len(), i as u32));
            joined.push_str(s);
            joined.push(' ');
        }
    }
    Normalized {
        tokens: b.tokens,
        joined,
        word_starts,
    }
}

/// The folded words of a short phrase (used for pattern literals, so that they are folded exactly
/// like messages).
pub fn fold_words(phrase: &str) -> Vec<String> {
    normalize(phrase)
        .tokens
        .into_iter()
        .map(|t| t.text)
        .collect()
}

/// Looks a word up in one of the word lists below (built once into hash sets).
fn in_list(
    list: &'static [&'static str],
    cell: &'static OnceLock<HashSet<&'static str>>,
    w: &str,
) -> bool {
    cell.get_or_init(|| list.iter().copied().collect())
        .contains(w)
}

static ARABIZI_SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
static FRENCH_SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
static ENGLISH_SET: OnceLock<HashSet<&'static str>> = OnceLock::new();

/// Darija words commonly written in Latin script; one of them marks a message as Arabic (Arabizi)
/// even without digits.
const ARABIZI_WORDS: &[&str] = &[
    "rani",
    "rak",
    "raki",
    "rah",
    "rahi",
    "rahom",
    "rana",
    "bghit",
    "bghat",
    "nheb",
    "nhab",
    "nhabes",
    "wach",
    "wech",
    "wesh",
    "wsh",
    "khlas",
    "khalas",
    "kifach",
    "kifech",
    "bezaf",
    "bzaf",
    "walou",
    "walo",
    "wallah",
    "walah",
    "nmout",
    "nmot",
    "rouhi",
    "rohi",
    "nefsi",
    "nafsi",
    "ya",
    "kho",
    "khouya",
    "khoya",
    "yemma",
    "yema",
    "baba",
    "dork",
    "drk",
    "ghir",
    "brk",
    "barka",
    "mazal",
    "mazel",
    "hadi",
    "hada",
    "hadou",
    "kayen",
    "makanch",
    "machi",
    "mchi",
    "ana",
    "nta",
    "nti",
    "ntia",
    "ntaya",
    "houma",
    "lyoum",
    "ghodwa",
    "bach",
    "besah",
    "bessah",
    "kima",
    "ida",
    "lazem",
    "nahder",
    "nahdar",
    "netkalem",
    "wahed",
    "wa7ed",
    "3lach",
    "3lech",
    "zatla",
    "qorqobi",
    "karqobi",
    "nchallah",
    "inchallah",
    "hamdoulah",
    "hamdullah",
    "sahbi",
    "sa7bi",
    "dirha",
    "kach",
    "chwiya",
    "chwia",
    "bark",
    "tani",
    "3ayit",
    "3yit",
    "9alb",
    "galbi",
    "9albi",
    "mlih",
    "khir",
];

/// French function words and common short words that English does not share.
const FRENCH_WORDS: &[&str] = &[
    "je",
    "j",
    "suis",
    "pas",
    "est",
    "c",
    "ce",
    "ca",
    "le",
    "la",
    "les",
    "des",
    "du",
    "de",
    "et",
    "mais",
    "moi",
    "tu",
    "vous",
    "veux",
    "plus",
    "avec",
    "pour",
    "ne",
    "me",
    "mon",
    "ma",
    "mes",
    "qu",
    "que",
    "qui",
    "ai",
    "une",
    "un",
    "il",
    "elle",
    "sa",
    "son",
    "ses",
    "au",
    "aux",
    "sur",
    "dans",
    "tout",
    "toute",
    "rien",
    "jamais",
    "quoi",
    "comment",
    "pourquoi",
    "tres",
    "trop",
    "fait",
    "faire",
    "vie",
    "mourir",
    "envie",
    "aide",
    "bonjour",
    "merci",
    "oui",
    "non",
    "j'ai",
    "m",
    "t",
    "l",
    "d",
    "n",
    "s",
    "parler",
    "quelqu",
    "quelqu'un",
    "peux",
    "veut",
    "nous",
    "mere",
    "pere",
    "soeur",
    "frere",
    "parce",
];

/// English function words and common short words that French does not share.
const ENGLISH_WORDS: &[&str] = &[
    "i", "im", "the", "to", "and", "is", "are", "my", "you", "want", "don", "dont", "can", "cant",
    "of", "it", "this", "that", "what", "with", "have", "just", "not", "be", "am", "was", "do",
    "he", "she", "they", "we", "me", "myself", "anymore", "feel", "life", "die", "kil", "help",
    "someone", "talk", "please", "how", "why", "if", "so", "but", "no", "at", "in", "on", "for",
    "wil", "would", "could", "should", "going", "gona", "wana", "ve", "ll", "re", "didn", "doesn",
    "need", "know", "think", "friend", "mom", "dad", "sister", "brother", "hi", "hello", "thanks",
];

/// Guesses the language of a message for choosing the safety message and reply language.
///
/// Arabic script counts for Arabic; so does Arabizi, recognised by digits used as letters inside
/// Latin words (`3andi`, `ro7i`, `n9tel`) or by common Darija words (`rani`, `bghit`, `wach`,
/// `khlas`, ...). Otherwise French and English are told apart by function words and French
/// accents. Returns `None` when the message gives no signal at all (only numbers or emojis).
/// Ties go to Arabic, then French: a mixed Darija/French message is most often written by
/// someone who reads Arabic, and French is the service's second language.
///
/// This is deliberately small and local to the decision engine (the document pipeline has its own
/// language detection); it only has to pick one of three safety messages.
pub fn guess_message_language(text: &str) -> Option<Lang> {
    guess_language_of(text, &normalize(text).tokens)
}

/// [`guess_message_language`] on a message already normalized into `tokens` (saves a second
/// normalization on the hot path).
pub fn guess_language_of(text: &str, tokens: &[Token]) -> Option<Lang> {
    // Accents are folded away by `normalize`, so look for them in the raw text.
    let mut fr = text
        .chars()
        .filter(|c| {
            matches!(
                c,
                'é' | 'è' | 'ê' | 'à' | 'ç' | 'ù' | 'â' | 'î' | 'ô' | 'û' | 'ë' | 'ï' | 'œ'
            )
        })
        .count()
        .min(3);
    let mut ar = 0usize;
    let mut en = 0usize;
    for t in tokens {
        match t.script {
            Script::Arabic => ar += 2,
            Script::Latin => {
                let w = t.text.as_str();
                let has_digit = w
                    .chars()
                    .any(|c| matches!(c, '2' | '3' | '5' | '7' | '8' | '9'));
                let has_letter = w.chars().any(|c| c.is_ascii_alphabetic());
                let ordinal = matches!(
                    w,
                    "2nd"
                        | "3rd"
                        | "5th"
                        | "7th"
                        | "8th"
                        | "9th"
                        | "mp3"
                        | "h24"
                        | "24h"
                        | "3h"
                        | "5h"
                        | "7h"
                        | "8h"
                        | "9h"
                        | "2h"
                );
                if (has_digit && has_letter && !ordinal) || in_list(ARABIZI_WORDS, &ARABIZI_SET, w)
                {
                    ar += 2;
                } else if in_list(FRENCH_WORDS, &FRENCH_SET, w) {
                    fr += 1;
                } else if in_list(ENGLISH_WORDS, &ENGLISH_SET, w) {
                    en += 1;
                }
            }
            Script::Number | Script::Emoji => {}
        }
    }
    if ar == 0 && fr == 0 && en == 0 {
        return None;
    }
    if ar >= fr && ar >= en {
        Some(Lang::Ar)
    } else if fr >= en {
        Some(Lang::Fr)
    } else {
        Some(Lang::En)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        fold_words(s)
    }

    #[test]
    fn arabic_folding() {
        assert_eq!(words("أَمُوتُ"), words("اموت"));
        assert_eq!(words("إنتحار"), words("انتحار"));
        assert_eq!(words("آخر"), words("اخر"));
        assert_eq!(words("مـــوووت"), words("موت"));
        assert_eq!(words("الحياة"), words("الحياه"));
        assert_eq!(words("على"), words("علي"));
        assert_eq!(words("مسؤول"), words("مسوول"));
        assert_eq!(words("ڨاع"), words("قاع"));
        assert_eq!(words("٣ حبات"), vec!["3".to_string(), "حبات".to_string()]);
    }

    #[test]
    fn latin_folding() {
        assert_eq!(words("Je veux MOURIIIR"), words("je veux mourir"));
        assert_eq!(words("tué"), words("tue"));
        assert_eq!(
            words("ma sœur"),
            vec!["ma".to_string(), "soeur".to_string()]
        );
        assert_eq!(words("i want to dieee"), words("i want to die"));
        assert_eq!(words("j'ai"), vec!["j".to_string(), "ai".to_string()]);
        assert_eq!(words("ro7i"), vec!["ro7i".to_string()]);
        assert_eq!(
            words("100 pills"),
            vec!["100".to_string(), "pils".to_string()]
        );
    }

    #[test]
    fn sentences_offsets_and_emoji() {
        let n = normalize("Adieu. Merci 😔💊!");
        let t: Vec<_> = n
            .tokens
            .iter()
            .map(|t| (t.text.as_str(), t.sentence))
            .collect();
        assert_eq!(t, vec![("adieu", 0), ("merci", 1), ("😔", 1), ("💊", 1)]);
        let n = normalize("rani   نموت");
        assert_eq!(&"rani   نموت"[n.tokens[1].start..n.tokens[1].end], "نموت");
        assert_eq!(n.joined, " rani نموت ");
    }

    #[test]
    fn conjunction_form() {
        let n = normalize("ونموت");
        assert_eq!(n.tokens[0].stripped.as_deref(), Some("نموت"));
    }

    #[test]
    fn language_guess() {
        assert_eq!(guess_message_language("بغيت نموت"), Some(Lang::Ar));
        assert_eq!(
            guess_message_language("rani 3ayi bghit nmout"),
            Some(Lang::Ar)
        );
        assert_eq!(guess_message_language("je veux mourir"), Some(Lang::Fr));
        assert_eq!(guess_message_language("j'en peux plus"), Some(Lang::Fr));
        assert_eq!(guess_message_language("I want to die"), Some(Lang::En));
        assert_eq!(guess_message_language("😔😔"), None);
    }
}
