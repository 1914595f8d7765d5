//! Reading knowledge-base files: Markdown, plain text and HTML, with optional front matter.
//!
//! Every problem with one file is a [`SourceError`] naming it, so a batch can report it and go
//! on with the other files.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::pii::{self, PiiReport};
use crate::lang::{self, Lang};

/// Files larger than this are refused: knowledge articles are a few pages, not books or dumps.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

/// The formats the knowledge base reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `.md`, `.markdown`
    Markdown,
    /// `.txt`, `.text`
    Text,
    /// `.html`, `.htm`
    Html,
}

impl Format {
    /// The format for a file name's extension.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "txt" | "text" => Some(Format::Text),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

/// Why one file could not be ingested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("unreadable: {0}")]
    Unreadable(String),
    /// Not a Markdown, text or HTML file.
    #[error("unsupported file type (expected .md, .markdown, .txt, .html or .htm)")]
    UnsupportedType,
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("too large: {bytes} bytes (the limit is {max} bytes)")]
    TooLarge {
        /// The file's size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Contains NUL bytes: not text.
    #[error("binary content (NUL bytes): not a text file")]
    Binary,
    /// Not UTF-8.
    #[error("bad encoding: {0}; convert the file to UTF-8")]
    BadEncoding(String),
    /// No text once front matter and markup are removed.
    #[error("empty: no text after removing front matter and markup")]
    Empty,
    /// The front matter is malformed.
    #[error("bad front matter: {0}")]
    BadFrontMatter(String),
    /// `lang:` names an unsupported language.
    #[error("front matter `lang: {0}` is not one of ar, fr, en")]
    BadLang(String),
    /// No `lang:` and the text's language could not be detected.
    #[error("unknown language: add front matter `lang: ar|fr|en`")]
    UnknownLanguage,
}

/// A file read, converted to plain text, PII-stripped and ready to chunk.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The path as given (directories joined with the file's relative path).
    pub source: String,
    /// The first `# ` heading, else the front matter's `title`, else the file name.
    pub title: String,
    /// From `lang:` in the front matter, else detected.
    pub lang: Lang,
    /// The front matter's `category`, if any.
    pub category: Option<String>,
    /// The front matter's `author`, if any.
    pub author: Option<String>,
    /// Every other front-matter field, kept in the document's metadata.
    pub front_matter: BTreeMap<String, String>,
    /// Plain text, PII stripped, whitespace normalised.
    pub content: String,
    /// SHA-256 of `content`, hex.
    pub content_hash: String,
    /// The redactions made.
    pub pii: PiiReport,
    /// The file's format.
    pub format: Format,
}

/// Expands files and folders (recursively, sorted, hidden entries skipped) into the files to
/// read, with their source names. Files of other types inside folders are skipped; a file
/// named explicitly with an unsupported type is reported.
pub fn collect(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<(String, SourceError)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        match fs::metadata(input) {
            Err(e) => errors.push((
                input.display().to_string(),
                SourceError::Unreadable(e.to_string()),
            )),
            Ok(meta) if meta.is_dir() => walk(input, &mut files, &mut errors),
            Ok(_) if Format::of(input).is_none() => {
                errors.push((input.display().to_string(), SourceError::UnsupportedType))
            }
            Ok(_) => files.push(input.clone()),
        }
    }
    (files, errors)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<(String, SourceError)>) {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => {
            errors.push((
                dir.display().to_string(),
                SourceError::Unreadable(e.to_string()),
            ));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, errors),
            Ok(_) if Format::of(&path).is_some() => files.push(path),
            Ok(_) => {}
            Err(e) => errors.push((
                path.display().to_string(),
                SourceError::Unreadable(e.to_string()),
            )),
        }
    }
}

/// Reads and prepares one file.
pub fn read(path: &Path) -> Result<SourceDocument, SourceError> {
    let format = Format::of(path).ok_or(SourceError::UnsupportedType)?;
    let file = fs::File::open(path).map_err(|e| SourceError::Unreadable(e.to_string()))?;
    let bytes_len = file
        .metadata()
        .map_err(|e| SourceError::Unreadable(e.to_string()))?
        .len();
    if bytes_len > MAX_FILE_BYTES {
        return Err(SourceError::TooLarge {
            bytes: bytes_len,
            max: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(bytes_len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::Unreadable(e.to_string()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&bytes, format, &name, &path.display().to_string())
}

/// Prepares a document from raw bytes (what [`read`] does after reading).
pub fn parse(
    bytes: &[u8],
    format: Format,
    file_name: &str,
    source: &str,
) -> Result<SourceDocument, SourceError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(SourceError::TooLarge {
            bytes: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(SourceError::BadEncoding("UTF-16 byte-order mark".into()));
    }
    if bytes.contains(&0) {
        return Err(SourceError::Binary);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        SourceError::BadEncoding(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    let text = text
        .strip_prefix('\u{FEFF}')
        .unwrap_or(text)
        .replace("\r\n", "\n");

    let (mut front, body) = split_front_matter(&text)?;
    let (heading, plain) = match format {
        Format::Markdown => markdown_to_text(body),
        Format::Text => (None, body.to_string()),
        Format::Html => html_to_text(body),
    };
    // Whitespace first: a phone number written with doubled spaces is a phone number.
    let (content, mut pii) = pii::strip(&normalize_whitespace(&plain));
    // Front matter is text too: the title goes into every chunk's indexed text and to a chat
    // model, the tags into the index, the author into the document row. Only the codes the
    // engine reads (language, category, translation key) are left as written.
    let mut strip_field = |value: &str| {
        let (clean, found) = pii::strip(value);
        pii += found;
        clean
    };
    for (key, value) in front.iter_mut() {
        if key != "lang" && key != "category" && key != "translation" {
            *value = strip_field(value);
        }
    }
    if content.is_empty() {
        return Err(SourceError::Empty);
    }
    let lang = match front.get("lang") {
        Some(value) => value
            .parse::<Lang>()
            .map_err(|_| SourceError::BadLang(value.clone()))?,
        None => lang::detect(&content).ok_or(SourceError::UnknownLanguage)?,
    };
    // A heading is part of the body, whose redactions were counted already.
    let title = heading
        .map(|h| pii::strip(&h).0)
        .or_else(|| front.get("title").cloned())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| strip_field(file_name));
    let content_hash = format!("{:x}", Sha256::digest(content.as_bytes()));
    let category = front.remove("category");
    let author = front.remove("author");
    front.remove("lang");
    front.remove("title");
    Ok(SourceDocument {
        source: source.to_string(),
        title: title.trim().chars().take(500).collect(),
        lang,
        category,
        author,
        front_matter: front,
        content,
        content_hash,
        pii,
        format,
    })
}

/// Splits `---` front matter (simple `key: value` lines; `[a, b]` lists kept as text) from the body.
fn split_front_matter(text: &str) -> Result<(BTreeMap<String, String>, &str), SourceError> {
    let mut map = BTreeMap::new();
    let Some(rest) = text.strip_prefix("---\n") else {
        return Ok((map, text));
    };
    let Some(end) = rest.find("\n---\n").map(|i| (i, i + 5)).or_else(|| {
        rest.strip_suffix("\n---")
            .map(|inner| (inner.len(), rest.len()))
    }) else {
        return Err(SourceError::BadFrontMatter(
            "opening `---` has no closing `---` line".into(),
        ));
    };
    for (n, line) in rest[..end.0].lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(SourceError::BadFrontMatter(format!(
                "line {} is not `key: value`: {line:?}",
                n + 2
            )));
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        map.insert(key.trim().to_ascii_lowercase(), value.to_string());
    }
    Ok((map, &rest[end.1..]))
}

static MD_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"!?\[([^\]]*)\]\([^)]*\)").expect("md link"));
static MD_EMPHASIS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\*\*|__|`+").expect("md emphasis"));
static MD_HEADING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s{0,3}#{1,6}\s+").expect("md heading"));

/// Markdown to readable plain text; returns the first level-1 heading as well.
fn markdown_to_text(body: &str) -> (Option<String>, String) {
    let mut title = None;
    let mut out = String::with_capacity(body.len());
    let mut in_code = false;
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let mut text = line.to_string();
        if !in_code {
            if title.is_none()
                && let Some(h) = line.strip_prefix("# ")
            {
                title = Some(clean_inline(h).trim().to_string());
            }
            text = MD_HEADING.replace(&text, "").into_owned();
            text = clean_inline(&text);
        }
        out.push_str(&text);
        out.push('\n');
    }
    (title, out)
}

fn clean_inline(text: &str) -> String {
    let text = MD_LINK.replace_all(text, "$1");
    MD_EMPHASIS.replace_all(&text, "").into_owned()
}

static HTML_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>").expect("html title")
});
static HTML_TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("html tag"));

/// HTML to plain text with html2text; the title from `<h1>` or `<title>`.
fn html_to_text(body: &str) -> (Option<String>, String) {
    let title = HTML_TITLE.captures(body).and_then(|c| {
        let raw = c.get(2).or_else(|| c.get(1))?.as_str();
        let text = HTML_TAG.replace_all(raw, " ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!text.is_empty()).then_some(text)
    });
    // A wide line length keeps paragraphs on one line; chunking works on paragraphs.
    let text = html2text::config::plain()
        .string_from_read(body.as_bytes(), 10_000)
        .unwrap_or_else(|_| HTML_TAG.replace_all(body, " ").into_owned());
    // html2text marks headings with '#' and emphasis with '*': plain text wanted.
    let (_, plain) = markdown_to_text(&text);
    (title, plain)
}

/// Trims lines, collapses runs of blank lines to one and of spaces to one.
fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_with_front_matter() {
        let doc = parse(
            b"---\nlang: fr\ncategory: addiction\ntags: [a, b]\n---\n# Le **cannabis**\n\nUn [lien](http://x.example) et du texte.\n\n\n## Aide\nAppelez le 0555 12 34 56.\n",
            Format::Markdown,
            "02-cannabis",
            "kb/02-cannabis.md",
        )
        .unwrap();
        assert_eq!(doc.title, "Le cannabis");
        assert_eq!(doc.lang, Lang::Fr);
        assert_eq!(doc.category.as_deref(), Some("addiction"));
        assert_eq!(
            doc.front_matter.get("tags").map(String::as_str),
            Some("[a, b]")
        );
        assert_eq!(
            doc.content,
            "Le cannabis\n\nUn lien et du texte.\n\nAide\nAppelez le [PHONE]."
        );
        assert_eq!(doc.pii.phones, 1);
        assert_eq!(doc.content_hash.len(), 64);
    }

    #[test]
    fn front_matter_and_file_names_are_stripped_too() {
        let doc = parse(
            b"---\nlang: fr\ncategory: addiction\ntitle: Appelez Karim au 0555 12 34 56\nauthor: karim@example.dz\ntags: [karim@example.dz, aide]\n---\nUn texte sur l'aide aux familles. Karim : 0555  12  34 56.\n",
            Format::Text,
            "f",
            "kb/f.txt",
        )
        .unwrap();
        assert_eq!(doc.title, "Appelez Karim au [PHONE]");
        assert_eq!(doc.author.as_deref(), Some("[EMAIL]"));
        assert_eq!(
            doc.front_matter.get("tags").map(String::as_str),
            Some("[[EMAIL], aide]")
        );
        assert_eq!(doc.category.as_deref(), Some("addiction"));
        assert!(doc.content.ends_with("Karim : [PHONE]."), "{}", doc.content);
        assert_eq!((doc.pii.phones, doc.pii.emails), (2, 2));
        let named = parse(
            "Un texte sur le sommeil et la fatigue.".as_bytes(),
            Format::Text,
            "notes karim@example.dz",
            "kb/notes.txt",
        )
        .unwrap();
        assert_eq!(named.title, "notes [EMAIL]");
    }

    #[test]
    fn title_falls_back_to_file_name_and_language_is_detected() {
        let doc = parse(
            "القلق شعور طبيعي عند الضغط.".as_bytes(),
            Format::Text,
            "anxiety",
            "a.txt",
        )
        .unwrap();
        assert_eq!(doc.title, "anxiety");
        assert_eq!(doc.lang, Lang::Ar);
    }

    #[test]
    fn html_title_and_text() {
        let doc = parse(
            b"<html><head><title>Sleep</title><script>var x=1;</script></head><body><h1>Sleeping better</h1><p>Keep a regular <b>schedule</b> and you will sleep better.</p></body></html>",
            Format::Html,
            "sleep",
            "sleep.html",
        )
        .unwrap();
        assert_eq!(doc.title, "Sleep");
        assert!(
            doc.content.contains("Keep a regular schedule"),
            "{}",
            doc.content
        );
        assert!(!doc.content.contains("var x"), "{}", doc.content);
    }

    #[test]
    fn bad_inputs_are_named() {
        assert_eq!(
            parse(b"", Format::Text, "e", "e.txt").unwrap_err(),
            SourceError::Empty
        );
        assert_eq!(
            parse(b"---\nlang: en\n---\n  \n", Format::Markdown, "e", "e.md").unwrap_err(),
            SourceError::Empty
        );
        assert_eq!(
            parse(b"ab\0cd", Format::Text, "b", "b.txt").unwrap_err(),
            SourceError::Binary
        );
        assert!(
            matches!(parse(b"caf\xe9 au lait", Format::Text, "c", "c.txt").unwrap_err(), SourceError::BadEncoding(m) if m.contains("byte 3"))
        );
        assert_eq!(
            parse(b"---\nlang: de\n---\nHallo", Format::Markdown, "d", "d.md").unwrap_err(),
            SourceError::BadLang("de".into())
        );
        assert_eq!(
            parse(b"12345 678", Format::Text, "n", "n.txt").unwrap_err(),
            SourceError::UnknownLanguage
        );
        assert!(matches!(
            parse(b"---\nlang: en\nno end", Format::Markdown, "f", "f.md").unwrap_err(),
            SourceError::BadFrontMatter(_)
        ));
        let big = vec![b'a'; MAX_FILE_BYTES as usize + 1];
        assert!(matches!(
            parse(&big, Format::Text, "big", "big.txt").unwrap_err(),
            SourceError::TooLarge { .. }
        ));
    }
}
