//! PII stripping: applied before anything is stored, embedded or sent to an external model.
//!
//! Each kind of personal data is replaced by a typed placeholder so that text stays readable
//! ("call me on [PHONE]") and a reviewer can see what was removed. The service's own configured
//! placeholders (`{{CRISIS_LINE}}` and the like) contain no digits and are left alone.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::Serialize;

/// How many redactions of each kind were made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PiiReport {
    /// E-mail addresses.
    pub emails: u32,
    /// Phone numbers.
    pub phones: u32,
    /// URLs carrying tokens or credentials.
    pub urls: u32,
    /// ID-like digit runs (national ID, card and account numbers).
    pub ids: u32,
}

impl PiiReport {
    /// All redactions.
    pub fn total(&self) -> u32 {
        self.emails + self.phones + self.urls + self.ids
    }
}

impl std::ops::AddAssign for PiiReport {
    fn add_assign(&mut self, other: Self) {
        self.emails += other.emails;
        self.phones += other.phones;
        self.urls += other.urls;
        self.ids += other.ids;
    }
}

/// Placeholder for an e-mail address.
pub const EMAIL: &str = "[EMAIL]";
/// Placeholder for a phone number.
pub const PHONE: &str = "[PHONE]";
/// Placeholder for a URL with credentials or tokens.
pub const URL: &str = "[URL]";
/// Placeholder for an ID-like number.
pub const ID: &str = "[ID]";

static URL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?|ftp)://[^\s<>"'()\[\]]+"#).expect("url regex"));
/// `user:password@` in a URL's authority.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[a-z]+://[^/@\s]+:[^/@\s]*@").expect("url credentials regex")
});
/// A query or fragment parameter whose name says it carries a secret.
static URL_SECRET_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)[?&#;](?:access_token|refresh_token|id_token|token|api_?key|key|secret|client_secret|password|passwd|pwd|pass|auth|authorization|sig|signature|session|sessionid|sid|code|otp|jwt)=[^&#\s]+",
    )
    .expect("url secret regex")
});
static EMAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
        .expect("email regex")
});
/// Phone numbers: Algerian international (+213 / 00213, with or without the trunk 0) and national
/// (mobile 05/06/07 + 8 digits, landline 02x-04x + 6 digits) forms with spaces, dots or dashes,
/// and other international numbers (+CC then 6 to 14 digits in groups).
static PHONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = r"(?x)
        (?:
            (?:\+|\b00)\s?213[\s.\-]?(?:\(0\)[\s.\-]?|0[\s.\-]?)?
                (?:[5-7](?:[\s.\-]?\d){8} | [2-4](?:[\s.\-]?\d){7})
          | \b0[5-7](?:[\s.\-]?\d){8}
          | \b0[2-4]\d(?:[\s.\-]?\d){6}
          | (?:\+|\b00)[1-9]\d{0,2}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d(?:[\s.\-]?\d){5,13}
        )\b";
    Regex::new(&any_digits(pattern)).expect("phone regex")
});

/// Rewrites the literal ASCII digits and digit ranges of a pattern to also accept the
/// Arabic-Indic (٠-٩) and Persian (۰-۹) digits, as people type numbers in either script.
fn any_digits(pattern: &str) -> String {
    const ARABIC: [char; 10] = ['٠', '١', '٢', '٣', '٤', '٥', '٦', '٧', '٨', '٩'];
    const PERSIAN: [char; 10] = ['۰', '۱', '۲', '۳', '۴', '۵', '۶', '۷', '۸', '۹'];
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                out.push(c);
                out.push(chars[i + 1]);
                // Quantifier counts such as {8} or {0,2} follow; digits inside braces stay.
                i += 2;
                continue;
            }
            '{' => {
                let end = chars[i..]
                    .iter()
                    .position(|&x| x == '}')
                    .map_or(chars.len(), |p| i + p);
                out.extend(&chars[i..=end.min(chars.len() - 1)]);
                i = end + 1;
                continue;
            }
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
        if let Some(d) = c.to_digit(10) {
            if in_class
                && chars.get(i + 1) == Some(&'-')
                && chars.get(i + 2).is_some_and(|n| n.is_ascii_digit())
            {
                let e = chars[i + 2].to_digit(10).expect("digit") as usize;
                let d = d as usize;
                out.push_str(&format!(
                    "{c}-{}{}-{}{}-{}",
                    chars[i + 2],
                    ARABIC[d],
                    ARABIC[e],
                    PERSIAN[d],
                    PERSIAN[e]
                ));
                i += 3;
                continue;
            }
            let d = d as usize;
            if in_class {
                out.push_str(&format!("{c}{}{}", ARABIC[d], PERSIAN[d]));
            } else {
                out.push_str(&format!("[{c}{}{}]", ARABIC[d], PERSIAN[d]));
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}
/// ID-like runs: 8 or more digits, or 3+ groups of 3-6 digits (card and account numbers).
static ID_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d{8,}|\d{3,6}(?:[ \-]\d{3,6}){2,})\b").expect("id regex"));

/// Returns `text` with personal data replaced by placeholders, and what was replaced.
///
/// Order matters: URLs first (they may contain e-mails and digits), then e-mails, phones, IDs.
pub fn strip(text: &str) -> (String, PiiReport) {
    let mut report = PiiReport::default();
    let text = URL_RE.replace_all(text, |c: &Captures| {
        let url = &c[0];
        if URL_CREDENTIALS.is_match(url) || URL_SECRET_PARAM.is_match(url) {
            report.urls += 1;
            URL.to_string()
        } else {
            url.to_string()
        }
    });
    let text = EMAIL_RE.replace_all(&text, |_: &Captures| {
        report.emails += 1;
        EMAIL
    });
    let text = PHONE_RE.replace_all(&text, |_: &Captures| {
        report.phones += 1;
        PHONE
    });
    let text = ID_RE.replace_all(&text, |_: &Captures| {
        report.ids += 1;
        ID
    });
    (text.into_owned(), report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn stripped(text: &str) -> String {
        strip(text).0
    }

    #[test]
    fn emails() {
        assert_eq!(
            stripped("écrivez à amina.b+x@mail.example.dz."),
            "écrivez à [EMAIL]."
        );
    }

    #[test]
    fn algerian_phones_in_every_form() {
        for phone in [
            "0555 12 34 56",
            "0555123456",
            "05 55 12 34 56",
            "06.61.22.33.44",
            "07-71-22-33-44",
            "+213 555 12 34 56",
            "+213555123456",
            "00213 5 55 12 34 56",
            "+213 (0) 555 12 34 56",
            "021 23 45 67",
            "+213 21 23 45 67",
        ] {
            let (out, report) = strip(&format!("appelle {phone} stp"));
            assert_eq!(out, "appelle [PHONE] stp", "{phone}");
            assert_eq!(report.phones, 1, "{phone}");
        }
    }

    #[test]
    fn international_phones() {
        assert_eq!(
            stripped("call +33 6 12 34 56 78 or +1 (415) 555-0100"),
            "call [PHONE] or [PHONE]"
        );
    }

    #[test]
    fn urls_only_with_secrets() {
        assert_eq!(
            stripped("see https://example.org/help and https://x.example/reset?token=abc123&u=1"),
            "see https://example.org/help and [URL]"
        );
        assert_eq!(stripped("ftp://bob:hunter2@files.example/x"), "[URL]");
    }

    #[test]
    fn id_runs_but_not_years_or_small_numbers() {
        let (out, report) =
            strip("carte 1234 5678 9012 3456, NIN 109876543210987, en 2024 j'avais 3 enfants");
        assert_eq!(out, "carte [ID], NIN [ID], en 2024 j'avais 3 enfants");
        assert_eq!(report.ids, 2);
    }

    #[test]
    fn arabic_text_and_indic_digits() {
        let (out, report) = strip("اتصل بي على ٠٥٥٥١٢٣٤٥٦ أو راسلني");
        assert_eq!(out, "اتصل بي على [PHONE] أو راسلني");
        assert_eq!(report.total(), 1);
    }

    #[test]
    fn digit_classes_accept_every_script() {
        assert_eq!(any_digits(r"\b0[5-7]\d{8}"), r"\b[0٠۰][5-7٥-٧۵-۷]\d{8}");
    }

    #[test]
    fn service_placeholders_survive() {
        let text = "Appelez {{CRISIS_LINE}} ou {{EMERGENCY_NUMBER}}.";
        assert_eq!(strip(text), (text.to_string(), PiiReport::default()));
    }
}
