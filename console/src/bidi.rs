//! Right-to-left text for terminals that lack bidi support: most terminals (xterm, tmux,
//! the Linux console, many SSH clients) print characters in memory order, so Arabic comes out
//! backwards. The console wraps text first (in logical order) and then reorders each line into
//! visual order with the Unicode Bidirectional Algorithm. On terminals that reorder themselves
//! this is switched off (Ctrl-B or `--bidi off`).

use unicode_bidi::BidiInfo;
use unicode_width::UnicodeWidthStr;

/// Whether the paragraph's base direction is right-to-left (its first strong character).
pub fn is_rtl(text: &str) -> bool {
    let info = BidiInfo::new(text, None);
    info.paragraphs.first().is_some_and(|p| p.level.is_rtl())
}

/// One line in visual order (left to right as it should appear on screen).
pub fn visual(line: &str) -> String {
    if !line.chars().any(is_rtl_char) {
        return line.to_string();
    }
    let info = BidiInfo::new(line, None);
    let mut out = String::with_capacity(line.len());
    for para in &info.paragraphs {
        let range = para.range.clone();
        out.push_str(&info.reorder_line(para, range));
    }
    out
}

fn is_rtl_char(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Text wrapped to `width` columns (by words, long words cut), each line in visual order when
/// `reorder` is on. Right-to-left paragraphs come out right-aligned, as their readers expect.
pub fn wrap(text: &str, width: usize, reorder: bool) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let rtl = reorder && is_rtl(paragraph);
        for line in wrap_paragraph(paragraph, width) {
            let shown = if reorder { visual(&line) } else { line };
            if rtl {
                let pad = width.saturating_sub(shown.width());
                lines.push(format!("{}{shown}", " ".repeat(pad)));
            } else {
                lines.push(shown);
            }
        }
    }
    lines
}

fn wrap_paragraph(paragraph: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in paragraph.split(' ') {
        let word_width = word.width();
        let current_width = current.width();
        if current.is_empty() {
            current.push_str(word);
        } else if current_width + 1 + word_width <= width {
            current.push(' ');
            current.push_str(word);
        } else {
            lines.push(std::mem::take(&mut current));
            current.push_str(word);
        }
        // A word longer than the line is cut.
        while current.width() > width {
            let mut cut = String::new();
            let mut rest = String::new();
            for c in current.chars() {
                if cut.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) <= width
                    && rest.is_empty()
                {
                    cut.push(c);
                } else {
                    rest.push(c);
                }
            }
            lines.push(cut);
            current = rest;
        }
    }
    lines.push(current);
    lines
}

/// One line cut to `width` columns (with `…` when cut), reordered when `reorder` is on.
pub fn line(text: &str, width: usize, reorder: bool) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut out = String::new();
    for c in first.chars() {
        if out.width() + unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) + 1 > width {
            out.push('…');
            break;
        }
        out.push(c);
    }
    if reorder { visual(&out) } else { out }
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
    fn wrapping_happens_before_reordering_and_rtl_is_right_aligned() {
        let lines = wrap("واحد اثنان ثلاثة", 10, true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        // The first logical line holds the first words, shown reversed and right-aligned.
        assert!(lines[0].ends_with(&visual("واحد")) || lines[0].contains(&visual("واحد")));
        assert_eq!(lines[0].width(), 10);
        assert_eq!(wrap("abc def ghi", 7, true), vec!["abc def", "ghi"]);
        assert_eq!(wrap("abcdefghij", 4, false), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("سلام", 10, false), vec!["سلام"]);
    }

    #[test]
    fn lines_are_cut_with_an_ellipsis() {
        assert_eq!(line("abcdefgh", 5, false), "abcd…");
        assert_eq!(line("abc\ndef", 10, false), "abc");
    }
}
