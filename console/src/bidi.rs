//! Right-to-left text for terminals that lack bidi support: most terminals (xterm, tmux,
//! the Linux console, many SSH clients) print characters in memory order, so Arabic comes out
//! backwards. The console wraps text first (in logical order) and then reorders each line into
//! visual order with the Unicode Bidirectional Algorithm, mirroring brackets inside
//! right-to-left runs (rule L4). On terminals that reorder themselves this is switched off
//! (Ctrl-B or `--bidi off`).
//!
//! Widths are counted one character at a time ([`cols`]): a terminal gives lam and alef a
//! cell each, while `unicode-width`'s string width counts the lam-alef pair as one (the
//! ligature a shaping renderer would draw). Measuring strings as a whole made right-aligned
//! Arabic lines one column too long per pair, and their first words were cut off.

use unicode_bidi::BidiInfo;
use unicode_width::UnicodeWidthChar;

/// The columns a terminal gives `text`: the sum of its characters' widths.
pub fn cols(text: &str) -> usize {
    text.chars().map(char_cols).sum()
}

fn char_cols(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Whether the paragraph's base direction is right-to-left (its first strong character).
pub fn is_rtl(text: &str) -> bool {
    if !text.chars().any(is_rtl_char) {
        return false;
    }
    let info = BidiInfo::new(text, None);
    info.paragraphs.first().is_some_and(|p| p.level.is_rtl())
}

/// One line in visual order (left to right as it should appear on screen), brackets
/// mirrored inside right-to-left runs.
pub fn visual(line: &str) -> String {
    visual_order(line).into_iter().map(|(_, c)| c).collect()
}

/// The characters of one line in visual order, each with its index among the line's
/// characters in logical order (the cursor of a text being typed is placed with it), brackets
/// mirrored inside right-to-left runs.
pub fn visual_order(line: &str) -> Vec<(usize, char)> {
    let chars: Vec<char> = line.chars().collect();
    if !chars.iter().copied().any(is_rtl_char) {
        return chars.into_iter().enumerate().collect();
    }
    let info = BidiInfo::new(line, None);
    let mut out = Vec::with_capacity(chars.len());
    for para in &info.paragraphs {
        // Levels come for every character of the text; this paragraph's are its own range.
        let all = info.reordered_levels_per_char(para, para.range.clone());
        let first = line[..para.range.start].chars().count();
        let count = line[para.range.clone()].chars().count();
        let levels = &all[first..first + count];
        for i in BidiInfo::reorder_visual(levels) {
            let c = chars[first + i];
            let c = if levels[i].is_rtl() { mirror(c) } else { c };
            out.push((first + i, c));
        }
    }
    out
}

fn is_rtl_char(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// The mirrored glyph of a bracket-like character (Unicode's BidiMirroring.txt, the pairs
/// that occur in messages and titles), else the character itself.
pub fn mirror(c: char) -> char {
    const PAIRS: &[(char, char)] = &[
        ('(', ')'),
        ('[', ']'),
        ('{', '}'),
        ('<', '>'),
        ('«', '»'),
        ('‹', '›'),
        ('⁅', '⁆'),
        ('⁽', '⁾'),
        ('₍', '₎'),
        ('≤', '≥'),
        ('⟨', '⟩'),
        ('〈', '〉'),
        ('《', '》'),
        ('「', '」'),
        ('『', '』'),
        ('【', '】'),
        ('﴾', '﴿'),
    ];
    for (a, b) in PAIRS {
        if c == *a {
            return *b;
        }
        if c == *b {
            return *a;
        }
    }
    c
}

/// Text wrapped to `width` columns (by words, long words cut), each line in visual order when
/// `reorder` is on. Right-to-left paragraphs come out right-aligned, as their readers expect.
pub fn wrap(text: &str, width: usize, reorder: bool) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let rtl = reorder && is_rtl(paragraph);
        let chars: Vec<char> = paragraph.chars().collect();
        for range in wrap_ranges(&chars, width) {
            let line: String = chars[range].iter().collect();
            let shown = if reorder { visual(&line) } else { line };
            if rtl {
                let pad = width.saturating_sub(cols(&shown));
                lines.push(format!("{}{shown}", " ".repeat(pad)));
            } else {
                lines.push(shown);
            }
        }
    }
    lines
}

/// Where a paragraph's lines start and end (character indices, logical order) when wrapped
/// to `width` columns: at spaces where possible (the space at a break belongs to no line),
/// and inside a word longer than a line. An empty paragraph is one empty line.
pub fn wrap_ranges(chars: &[char], width: usize) -> Vec<std::ops::Range<usize>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut start = 0;
    let mut used = 0;
    // The last space in the current line: the place to break.
    let mut last_space: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let w = char_cols(c);
        if used + w > width && i > start {
            if c == ' ' {
                lines.push(start..i);
                start = i + 1;
                used = 0;
                last_space = None;
                i += 1;
                continue;
            }
            match last_space {
                Some(s) if s > start => {
                    lines.push(start..s);
                    start = s + 1;
                    used = chars[start..i].iter().copied().map(char_cols).sum();
                }
                _ => {
                    lines.push(start..i);
                    start = i;
                    used = 0;
                }
            }
            last_space = None;
            continue;
        }
        if c == ' ' {
            last_space = Some(i);
        }
        used += w;
        i += 1;
    }
    lines.push(start..chars.len());
    lines
}

/// One line cut to `width` columns (with `…` when cut), reordered when `reorder` is on. The
/// cut is made in logical order, so what goes is the end of the text (on the left of an
/// Arabic line), never its start.
pub fn line(text: &str, width: usize, reorder: bool) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut out = String::new();
    let mut used = 0;
    let total = cols(first);
    for c in first.chars() {
        let w = char_cols(c);
        if total > width && used + w + 1 > width {
            out.push('…');
            break;
        }
        used += w;
        out.push(c);
    }
    if reorder { visual(&out) } else { out }
}

/// A text being typed, as it is drawn: soft-wrapped to `width` columns, each screen line in
/// reading order (right-to-left lines right-aligned, one column kept free for the cursor at
/// their end) when `reorder` is on, and the cursor's place on screen (row, column).
/// `lines` are the text's logical lines and `cursor` is (line, character) in them, as
/// `tui-textarea` reports it.
pub fn edit_view(
    lines: &[String],
    cursor: (usize, usize),
    width: usize,
    reorder: bool,
) -> (Vec<String>, (usize, usize)) {
    let width = width.max(2);
    let mut out = Vec::new();
    let mut at = (0, 0);
    for (row, text) in lines.iter().enumerate() {
        let chars: Vec<char> = text.chars().collect();
        let rtl = reorder && is_rtl(text);
        // One column stays free for the cursor after the last character.
        let ranges = wrap_ranges(&chars, width - 1);
        let last = ranges.len() - 1;
        for (k, range) in ranges.into_iter().enumerate() {
            let segment: String = chars[range.clone()].iter().collect();
            let order = if reorder {
                visual_order(&segment)
            } else {
                segment.chars().enumerate().collect()
            };
            let used: usize = order.iter().map(|(_, c)| char_cols(*c)).sum();
            let pad = if rtl { width.saturating_sub(used) } else { 0 };
            let mine = row == cursor.0
                && cursor.1 >= range.start
                && (cursor.1 < range.end
                    || (cursor.1 == range.end && (k == last || range.is_empty())));
            if mine {
                let logical = cursor.1 - range.start;
                let col = match order.iter().position(|(i, _)| *i == logical) {
                    Some(p) => pad + order[..p].iter().map(|(_, c)| char_cols(*c)).sum::<usize>(),
                    // After the last character: left of a right-to-left line, right of others.
                    None if rtl => pad.saturating_sub(1),
                    None => used,
                };
                at = (out.len(), col.min(width - 1));
            }
            let shown: String = order.into_iter().map(|(_, c)| c).collect();
            out.push(format!("{}{shown}", " ".repeat(pad)));
        }
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_is_reversed_into_visual_order_and_latin_is_not() {
        assert_eq!(visual("hello world"), "hello world");
        // "سلام" in memory order is س ل ا م; on screen, left to right, it is م ا ل س.
        assert_eq!(visual("سلام"), "مالس");
        // Numbers inside Arabic keep their own left-to-right order.
        let v = visual("رقم 3033");
        assert!(v.starts_with("3033"), "{v}");
    }

    #[test]
    fn brackets_are_mirrored_in_right_to_left_runs() {
        // "(نعم)" reads right to left: the opening bracket is on the right, drawn as `(`.
        assert_eq!(visual("(نعم)"), "(معن)");
        assert_eq!(visual("«سلام»"), "«مالس»");
        assert_eq!(visual("(ok)"), "(ok)");
    }

    #[test]
    fn lam_alef_counts_two_columns_and_lines_keep_their_start() {
        // unicode-width counts the lam-alef pair as one column; a terminal gives it two.
        assert_eq!(cols("لا"), 2);
        let text = "ما عنديش الخاطر";
        let lines = wrap(text, 20, true);
        assert_eq!(lines.len(), 1);
        assert_eq!(cols(&lines[0]), 20, "{:?}", lines[0]);
        // The negation, the paragraph's first word, is on the right edge.
        assert!(lines[0].ends_with(&visual("ما")), "{:?}", lines[0]);
        let bawaba = wrap("بوابة الأزمات", 16, true);
        assert!(bawaba[0].ends_with(&visual("بوابة")), "{bawaba:?}");
        // Cutting drops the logical end (the left of the line), never its start.
        let cut = line("قيد المعالجة الآن", 9, true);
        assert!(cut.ends_with(&visual("قيد")), "{cut}");
        assert!(cut.starts_with('…'), "{cut}");
    }

    #[test]
    fn wrapping_happens_before_reordering_and_rtl_is_right_aligned() {
        let lines = wrap("واحد اثنان ثلاثة", 10, true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with(&visual("واحد")), "{lines:?}");
        assert_eq!(cols(&lines[0]), 10);
        assert_eq!(wrap("abc def ghi", 7, true), vec!["abc def", "ghi"]);
        assert_eq!(wrap("abcdefghij", 4, false), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("سلام", 10, false), vec!["سلام"]);
        assert_eq!(wrap("", 10, true), vec![""]);
    }

    #[test]
    fn lines_are_cut_with_an_ellipsis() {
        assert_eq!(line("abcdefgh", 5, false), "abcd…");
        assert_eq!(line("abcde", 5, false), "abcde");
        assert_eq!(line("abc\ndef", 10, false), "abc");
    }

    #[test]
    fn typed_text_is_shown_in_reading_order_with_its_cursor() {
        let lines = vec!["hello".to_string()];
        assert_eq!(
            edit_view(&lines, (0, 5), 10, true),
            (vec!["hello".into()], (0, 5))
        );
        // Arabic being typed: right-aligned, reversed, the cursor after the last letter is on
        // its left.
        let lines = vec!["سلام".to_string()];
        let (shown, at) = edit_view(&lines, (0, 4), 10, true);
        assert_eq!(shown, vec![format!("      {}", visual("سلام"))]);
        assert_eq!(at, (0, 5));
        // The cursor on the first letter is on the right edge.
        let (_, at) = edit_view(&lines, (0, 0), 10, true);
        assert_eq!(at, (0, 9));
        // Soft wrapping, the cursor following onto the second line.
        let lines = vec!["aaa bbb ccc".to_string()];
        let (shown, at) = edit_view(&lines, (0, 9), 8, false);
        assert_eq!(shown, vec!["aaa bbb", "ccc"]);
        assert_eq!(at, (1, 1));
    }
}
