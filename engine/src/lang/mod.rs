//! The service's three languages: codes, detection and text normalisation for matching.
//!
//! Detection is deliberately simple and deterministic: Arabic script means Arabic; Latin text
//! with Arabizi features (digits used as letters, Darija words) is Arabic too; otherwise French
//! and English are told apart by their function words and accents.

pub mod normalize;

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// A language the service answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Arabic (Modern Standard, Algerian Darija, Arabizi).
    Ar,
    /// French.
    Fr,
    /// English.
    En,
}

/// The language code is not one of ar, fr, en (or their locales).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language `{0}` (expected ar, fr or en)")]
pub struct UnknownLang(pub String);

impl Lang {
    /// All languages, in the service's order.
    pub const ALL: [Lang; 3] = [Lang::Ar, Lang::Fr, Lang::En];

    /// The short code stored in `lang` columns.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ar => "ar",
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The locale stored in `locale_code` columns.
    pub fn locale(self) -> &'static str {
        match self {
            Lang::Ar => "ar-DZ",
            Lang::Fr => "fr-FR",
            Lang::En => "en-US",
        }
    }

    /// PostgreSQL's text-search configuration for the language.
    pub fn ts_config(self) -> &'static str {
        match self {
            Lang::Ar => "arabic",
            Lang::Fr => "french",
            Lang::En => "english",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Lang {
    type Err = UnknownLang;

    /// Accepts `ar`, `fr`, `en`, their locales (`ar-DZ`, `fr_FR`, ...) and any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let primary = lower.split(['-', '_']).next().unwrap_or_default();
        match primary {
            "ar" | "ara" | "arabic" => Ok(Lang::Ar),
            "fr" | "fra" | "fre" | "french" => Ok(Lang::Fr),
            "en" | "eng" | "english" => Ok(Lang::En),
            _ => Err(UnknownLang(s.trim().to_string())),
        }
    }
}

const FRENCH_WORDS: &[&str] = &[
    "le", "la", "les", "des", "une", "est", "et", "je", "pas", "pour", "que", "qui", "dans", "du",
    "sur", "avec", "ce", "il", "elle", "vous", "nous", "mon", "ma", "mes", "ne", "plus", "au",
    "aux", "être", "sont", "mais", "ou", "son", "sa", "ses", "leur", "comment", "quoi", "j'ai",
    "c'est", "peut", "faire", "aussi", "très", "moi", "toi", "ça",
];
const ENGLISH_WORDS: &[&str] = &[
    "the", "and", "is", "are", "to", "of", "in", "that", "it", "you", "i", "for", "with", "my",
    "this", "not", "have", "be", "was", "what", "how", "can", "do", "your", "they", "but", "or",
    "if", "from", "about", "when", "will", "me", "i'm", "don't", "it's", "can't", "should",
    "would", "there", "their", "been", "feel", "help",
];
const DARIJA_LATIN_WORDS: &[&str] = &[
    "rani", "raki", "rana", "bghit", "nheb", "n7eb", "wach", "wesh", "khlas", "5las", "ma3lich",
    "kifach", "kifah", "bezzaf", "bzaf", "hadi", "hadak", "ndir", "nmout", "m3a", "3la", "ana",
    "nta", "nti", "wallah", "rabi", "ya3ni", "chwiya", "chwia", "sahbi", "khouya", "mama", "baba",
    "hna", "ghodwa", "lyoum", "dork", "drk", "mazal",
];

/// Characters below this code point (Latin, Latin-1, Latin Extended, Arabic: every script the
/// service's texts are written in) are classified from tables built once.
const TABLE_CHARS: u32 = 0x800;

/// One bit per character below [`TABLE_CHARS`].
type CharBits = [u64; (TABLE_CHARS / 64) as usize];

/// `(alphabetic, alphanumeric)` bits, from the standard library's own answers.
static CHAR_CLASSES: LazyLock<(CharBits, CharBits)> = LazyLock::new(|| {
    let (mut alphabetic, mut alphanumeric) = ([0u64; 32], [0u64; 32]);
    for c in (0..TABLE_CHARS).filter_map(char::from_u32) {
        let (word, bit) = ((c as u32 / 64) as usize, c as u32 % 64);
        alphabetic[word] |= u64::from(c.is_alphabetic()) << bit;
        alphanumeric[word] |= u64::from(c.is_alphanumeric()) << bit;
    }
    (alphabetic, alphanumeric)
});

fn table_bit(bits: &CharBits, c: char) -> bool {
    let i = c as u32;
    bits[(i / 64) as usize] >> (i % 64) & 1 == 1
}

/// Exactly `char::is_alphabetic`, answered from a table for Latin and Arabic: the standard
/// library searches a table for every non-ASCII character, which was a tenth of ingestion's
/// CPU on Arabic text.
#[inline]
pub fn is_alphabetic(c: char) -> bool {
    if (c as u32) < TABLE_CHARS {
        table_bit(&CHAR_CLASSES.0, c)
    } else {
        c.is_alphabetic()
    }
}

/// Exactly `char::is_alphanumeric`, answered from a table like [`is_alphabetic`].
#[inline]
pub fn is_alphanumeric(c: char) -> bool {
    if (c as u32) < TABLE_CHARS {
        table_bit(&CHAR_CLASSES.1, c)
    } else {
        c.is_alphanumeric()
    }
}

/// Counts of the signals detection looks at.
#[derive(Debug, Default, Clone, Copy)]
struct Signals {
    arabic_letters: usize,
    latin_letters: usize,
    french: usize,
    english: usize,
    arabizi: usize,
    accents: usize,
}

fn signals(text: &str) -> Signals {
    let mut s = Signals::default();
    for c in text.chars() {
        if is_arabic_letter(c) {
            s.arabic_letters += 1;
        } else if is_alphabetic(c) && (c.is_ascii() || ('\u{00C0}'..='\u{024F}').contains(&c)) {
            s.latin_letters += 1;
            if matches!(
                c,
                'é' | 'è' | 'ê' | 'à' | 'ç' | 'ù' | 'û' | 'ô' | 'î' | 'ï' | 'ë' | 'â' | 'œ'
            ) {
                s.accents += 1;
            }
        }
    }
    for raw in text.split(|c: char| !(is_alphanumeric(c) || c == '\'' || c == '’')) {
        if raw.is_empty() {
            continue;
        }
        let word = raw.replace('’', "'").to_lowercase();
        let w = word.as_str();
        if FRENCH_WORDS.contains(&w) {
            s.french += 1;
        }
        if ENGLISH_WORDS.contains(&w) {
            s.english += 1;
        }
        if DARIJA_LATIN_WORDS.contains(&w) || is_arabizi_word(w) {
            s.arabizi += 1;
        }
    }
    s
}

/// A Latin word that uses digits as letters, as Arabizi does (`3la`, `n7eb`, `9alb`, `5ouya`).
fn is_arabizi_word(word: &str) -> bool {
    let has_letter = word.chars().any(|c| c.is_ascii_alphabetic());
    let has_letter_digit = word
        .chars()
        .any(|c| matches!(c, '2' | '3' | '5' | '7' | '8' | '9'));
    has_letter && has_letter_digit && word.chars().all(|c| c.is_ascii_alphanumeric())
}

/// True for letters of the Arabic script blocks.
pub fn is_arabic_letter(c: char) -> bool {
    matches!(c, '\u{0621}'..='\u{064A}' | '\u{066E}'..='\u{06D3}' | '\u{06FA}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

/// The language a person's message is answered in when its conversation has none yet: the
/// text's detected language ([`detect`]), else the word-level guess the crisis gate's reading
/// uses (Arabizi included; [`normalize::guess_message_language`]), else `fallback` (the
/// person's locale). The one place the engine picks a message's language.
pub fn message_language(text: &str, fallback: Lang) -> Lang {
    detect(text)
        .or_else(|| normalize::guess_message_language(text))
        .unwrap_or(fallback)
}

/// Detects the language of `text`; `None` when there is too little to tell.
pub fn detect(text: &str) -> Option<Lang> {
    let s = signals(text);
    let letters = s.arabic_letters + s.latin_letters;
    if letters < 2 {
        return None;
    }
    if s.arabic_letters * 10 >= letters * 3 {
        return Some(Lang::Ar);
    }
    let french = s.french * 2 + s.accents;
    let english = s.english * 2;
    if s.arabizi >= 2 && s.arabizi * 2 >= (s.french + s.english).max(1) {
        return Some(Lang::Ar);
    }
    match french.cmp(&english) {
        std::cmp::Ordering::Greater => Some(Lang::Fr),
        std::cmp::Ordering::Less => Some(Lang::En),
        std::cmp::Ordering::Equal if s.arabizi > 0 => Some(Lang::Ar),
        std::cmp::Ordering::Equal => None,
    }
}

/// Folds text for matching: lower case, Latin accents removed, Arabic diacritics and tatweel
/// removed, alef/ya/ta-marbuta variants unified, Arabic-Indic digits to ASCII, punctuation to
/// spaces, runs of spaces collapsed. Digits inside Latin words stay: in Arabizi they are letters.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = true;
    // Arabic has no case: only other non-ASCII characters need the standard library's
    // (searched) lower-case mapping.
    let lower = |c: char| {
        let simple = c.is_ascii() || ('\u{0600}'..='\u{06FF}').contains(&c);
        let (one, many) = if simple {
            (Some(c.to_ascii_lowercase()), None)
        } else {
            (None, Some(c.to_lowercase()))
        };
        one.into_iter().chain(many.into_iter().flatten())
    };
    for c in text.chars().flat_map(lower) {
        let mapped: Option<char> = match c {
            // Arabic diacritics (harakat, shadda, sukun, superscript alef) and tatweel: dropped.
            '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}' => None,
            'أ' | 'إ' | 'آ' | 'ٱ' => Some('ا'),
            'ى' => Some('ي'),
            'ة' => Some('ه'),
            'ؤ' => Some('و'),
            'ئ' => Some('ي'),
            '٠'..='٩' => char::from_digit(c as u32 - '٠' as u32, 10),
            '۰'..='۹' => char::from_digit(c as u32 - '۰' as u32, 10),
            'à' | 'á' | 'â' | 'ä' | 'ã' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' => Some('e'),
            'î' | 'ï' | 'í' | 'ì' => Some('i'),
            'ô' | 'ö' | 'ó' | 'ò' => Some('o'),
            'ù' | 'û' | 'ü' | 'ú' => Some('u'),
            'ç' => Some('c'),
            'œ' => {
                out.push('o');
                Some('e')
            }
            c if is_alphanumeric(c) => Some(c),
            _ => Some(' '),
        };
        match mapped {
            Some(' ') if !last_space => {
                out.push(' ');
                last_space = true;
            }
            Some(' ') | None => {}
            Some(ch) => {
                out.push(ch);
                last_space = false;
            }
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Words that carry no topic in any of the three languages (already [`fold`]ed).
pub fn is_stopword(word: &str) -> bool {
    const STOP: &[&str] = &[
        // English
        "the",
        "and",
        "is",
        "are",
        "to",
        "of",
        "in",
        "that",
        "it",
        "you",
        "i",
        "for",
        "with",
        "my",
        "this",
        "not",
        "have",
        "be",
        "was",
        "what",
        "how",
        "can",
        "do",
        "your",
        "they",
        "but",
        "or",
        "if",
        "from",
        "about",
        "when",
        "will",
        "me",
        "a",
        "an",
        "on",
        "at",
        "as",
        "by",
        "so",
        "we",
        "he",
        "she",
        "them",
        "its",
        "our",
        "am",
        "im",
        "has",
        "had",
        "does",
        "did",
        "been",
        "there",
        "their",
        "which",
        "who",
        "would",
        "should",
        "could",
        "than",
        "then",
        "too",
        "very",
        "just",
        "also",
        "into",
        "out",
        "up",
        "all",
        "any",
        "some",
        "no",
        "yes",
        "s",
        "t",
        "don",
        "can",
        "get",
        "got",
        // French (folded)
        "le",
        "la",
        "les",
        "des",
        "un",
        "une",
        "est",
        "et",
        "je",
        "j",
        "pas",
        "pour",
        "que",
        "qui",
        "dans",
        "du",
        "de",
        "d",
        "l",
        "en",
        "sur",
        "avec",
        "ce",
        "cet",
        "cette",
        "il",
        "elle",
        "ils",
        "elles",
        "vous",
        "nous",
        "tu",
        "mon",
        "ma",
        "mes",
        "ton",
        "ta",
        "tes",
        "ne",
        "n",
        "plus",
        "au",
        "aux",
        "etre",
        "sont",
        "mais",
        "ou",
        "son",
        "sa",
        "ses",
        "leur",
        "leurs",
        "c",
        "s",
        "qu",
        "se",
        "me",
        "te",
        "y",
        "a",
        "ai",
        "as",
        "avez",
        "avons",
        "fait",
        "faire",
        "peut",
        "tres",
        "moi",
        "toi",
        "ca",
        "si",
        "par",
        "comme",
        "quand",
        "tout",
        "tous",
        "toute",
        "on",
        // Arabic (folded)
        "في",
        "من",
        "على",
        "الي",
        "الى",
        "عن",
        "ان",
        "او",
        "و",
        "ما",
        "لا",
        "هذا",
        "هذه",
        "ذلك",
        "تلك",
        "هو",
        "هي",
        "انا",
        "انت",
        "نحن",
        "هم",
        "كان",
        "كانت",
        "يكون",
        "مع",
        "كل",
        "قد",
        "لم",
        "لن",
        "ثم",
        "اذا",
        "التي",
        "الذي",
        "الذين",
        "بين",
        "عند",
        "كما",
        "لكن",
        "حتي",
        "اي",
        "به",
        "بها",
        "له",
        "لها",
        "واش",
        "راني",
        "باش",
        "بلي",
    ];
    STOP.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_tables_answer_as_the_standard_library() {
        for c in (0..0x1_0000).filter_map(char::from_u32) {
            assert_eq!(is_alphabetic(c), c.is_alphabetic(), "{c:?}");
            assert_eq!(is_alphanumeric(c), c.is_alphanumeric(), "{c:?}");
        }
    }

    #[test]
    fn fold_lowers_every_script() {
        assert_eq!(fold("ÉCOLE Straße ΑΘΗΝΑ İ"), "ecole straße αθηνα i");
        assert_eq!(fold("الْكُحُولِ ٣"), "الكحول 3");
    }

    #[test]
    fn codes_and_locales_parse() {
        assert_eq!("ar-DZ".parse::<Lang>().unwrap(), Lang::Ar);
        assert_eq!("FR".parse::<Lang>().unwrap(), Lang::Fr);
        assert_eq!("en_US".parse::<Lang>().unwrap(), Lang::En);
        assert!("de".parse::<Lang>().is_err());
        assert_eq!(Lang::Fr.ts_config(), "french");
    }

    #[test]
    fn detects_the_three_languages_and_arabizi() {
        assert_eq!(detect("ما نقدرش نرقد في الليل"), Some(Lang::Ar));
        assert_eq!(detect("Je n'arrive pas à dormir la nuit"), Some(Lang::Fr));
        assert_eq!(
            detect("I can't sleep at night and I feel anxious"),
            Some(Lang::En)
        );
        assert_eq!(
            detect("rani 3ayan bezzaf, ma nekderch nr9ed"),
            Some(Lang::Ar)
        );
        assert_eq!(detect("1234 !!"), None);
    }

    #[test]
    fn folding_unifies_arabic_and_latin_variants() {
        assert_eq!(fold("أَلْمَدْرَسَةُ"), "المدرسه");
        assert_eq!(fold("إلى  مستشفى"), "الي مستشفي");
        assert_eq!(fold("Étudiant, ÉTÉ!"), "etudiant ete");
        assert_eq!(fold("٠٥٥٥ n7eb"), "0555 n7eb");
        assert_eq!(fold("l'anxiété"), "l anxiete");
    }
}
