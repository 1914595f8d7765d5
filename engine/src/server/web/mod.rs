//! The person's side: the chat page at `/` (and `/sign-in`, where sign-in links land) with its
//! assets, compiled into the binary (`include_str!`): plain HTML, CSS and JavaScript, no build
//! step, nothing from a third party.
//!
//! The page is rendered per request in the person's language (`?lang=`, else the browser's
//! `Accept-Language`, else Arabic): `<html lang dir>`, every text of the page and the service's
//! settings it shows (crisis numbers, retention, whether anonymous sessions are open). The
//! script then talks to the API under `/v1` like any other client. Every response carries a
//! strict Content-Security-Policy: only this origin, no inline script or style, no frames.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;
use crate::lang::Lang;

/// The page's Content-Security-Policy: this origin only, no inline script or style, no
/// plug-ins, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("index.html");
const STRINGS_JSON: &str = include_str!("strings.json");

/// An asset of the page: its name under `/assets/`, content type and text.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("icon.svg"),
    },
];

/// The page's texts: language code (`ar`, `fr`, `en`) to key to text.
type Strings = HashMap<String, HashMap<String, String>>;

static STRINGS: LazyLock<Strings> = LazyLock::new(|| {
    // Checked by the unit tests below: every language has every key the page uses.
    serde_json::from_str(STRINGS_JSON).expect("web/strings.json is valid JSON")
});

/// The page's routes: `/`, `/sign-in` and `/assets/{name}`. They are not part of the API and
/// so not in `/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::get(page))
        .route("/sign-in", axum::routing::get(page))
        .route("/assets/{name}", axum::routing::get(asset))
}

/// The language code the page uses for `lang` (`ar`, `fr`, `en`).
fn code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "ar",
        Lang::Fr => "fr",
        Lang::En => "en",
    }
}

fn lang_from_code(code: &str) -> Option<Lang> {
    let primary = code.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    match primary.as_str() {
        "ar" => Some(Lang::Ar),
        "fr" => Some(Lang::Fr),
        "en" => Some(Lang::En),
        _ => None,
    }
}

/// The page's language: `?lang=` when it names one of the three, else the first of the three
/// in `Accept-Language` by weight, else Arabic (the country's first language).
pub fn choose_language(query: Option<&str>, accept_language: Option<&str>) -> Lang {
    let asked = query.and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.strip_prefix("lang="))
            .find_map(lang_from_code)
    });
    asked
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or(Lang::Ar)
}

/// The preferred of ar, fr and en in an `Accept-Language` header (`fr-DZ,ar;q=0.8`).
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(f32, usize, Lang)> = None;
    for (position, item) in header.split(',').enumerate() {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(lang_from_code) else {
            continue;
        };
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
            .unwrap_or(0.0);
        if weight <= 0.0 {
            continue;
        }
        // Higher weight wins; at equal weight, the earlier entry.
        let better = match best {
            None => true,
            Some((w, p, _)) => weight > w || (weight == w && position < p),
        };
        if better {
            best = Some((weight, position, lang));
        }
    }
    best.map(|(_, _, lang)| lang)
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// What the page shows of the service's settings.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// Whether anonymous sessions are open.
    pub anonymous_sessions: bool,
    /// The crisis line.
    pub crisis_line: String,
    /// The emergency number.
    pub emergency_number: String,
    /// Lifetime of a sign-in link.
    pub magic_link_ttl_minutes: i64,
    /// Lifetime of a session.
    pub session_ttl_hours: i64,
    /// Idle conversations are archived after this many days.
    pub archive_after_days: i32,
}

/// Fills `{name}` placeholders of a page text with the settings' figures.
fn fill(text: &str, settings: &PageSettings) -> String {
    text.replace(
        "{link_minutes}",
        &settings.magic_link_ttl_minutes.to_string(),
    )
    .replace(
        "{session_days}",
        &(settings.session_ttl_hours / 24).max(1).to_string(),
    )
    .replace("{archive_days}", &settings.archive_after_days.to_string())
}

/// The page in `lang`: the template's `{{...}}` placeholders filled, texts escaped.
pub fn render(lang: Lang, settings: &PageSettings) -> String {
    let code = code(lang);
    let texts = &STRINGS[code];
    let mut out = String::with_capacity(INDEX_HTML.len() + 4096);
    let mut rest = INDEX_HTML;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = &after[..end];
        rest = &after[end + 2..];
        let value = match key {
            "lang" => code.to_string(),
            "dir" => if lang == Lang::Ar { "rtl" } else { "ltr" }.to_string(),
            "anonymous" => settings.anonymous_sessions.to_string(),
            "crisis_line" => escape(&settings.crisis_line),
            "emergency_number" => escape(&settings.emergency_number),
            // The script's texts, filled like the page's. A JSON block is data, never run,
            // so the policy's `script-src 'self'` holds; `<` is escaped so that no text can
            // close the block.
            "strings" => {
                let filled: HashMap<&str, String> = texts
                    .iter()
                    .map(|(k, v)| (k.as_str(), fill(v, settings)))
                    .collect();
                serde_json::to_string(&filled)
                    .unwrap_or_else(|_| "{}".into())
                    .replace('<', "\\u003c")
            }
            _ => {
                if let Some(other) = key.strip_prefix("current:") {
                    if other == code {
                        "aria-current=\"page\"".to_string()
                    } else {
                        String::new()
                    }
                } else if let Some(name) = key.strip_prefix("t:") {
                    texts
                        .get(name)
                        .map(|s| escape(&fill(s, settings)))
                        .unwrap_or_else(|| escape(name))
                } else {
                    escape(key)
                }
            }
        };
        out.push_str(&value);
    }
    out.push_str(rest);
    out
}

/// The security headers of every page response.
fn secure(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Sign-in links carry their token in the address: it must not leak as a referrer.
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, cache);
    response
}

/// Settings of the page from the server's state.
fn settings(state: &AppState) -> PageSettings {
    let numbers = state.engine.numbers();
    PageSettings {
        anonymous_sessions: state.config.anonymous_sessions,
        crisis_line: numbers.crisis_line.clone(),
        emergency_number: numbers.emergency_number.clone(),
        magic_link_ttl_minutes: state.config.magic_link_ttl_minutes,
        session_ttl_hours: state.config.session_ttl_hours,
        archive_after_days: state.config.workers.archive_after_days,
    }
}

/// `GET /` and `GET /sign-in`: the page in the person's language.
async fn page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = choose_language(query.as_deref(), accept);
    let html = render(lang, &settings(&state));
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    // The page may show a sign-in token's landing: never stored by caches.
    secure(response, "no-store")
}

/// `GET /assets/{name}`: a file of the page.
async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => secure(
            ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
            // Revalidated on each load, so a new version of the engine is picked up at once.
            "no-cache",
        ),
        None => Problem::not_found("no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PageSettings {
        PageSettings {
            anonymous_sessions: true,
            crisis_line: "3033".into(),
            emergency_number: "14".into(),
            magic_link_ttl_minutes: 15,
            session_ttl_hours: 720,
            archive_after_days: 90,
        }
    }

    #[test]
    fn every_language_has_every_text_and_the_page_leaves_no_placeholder() {
        let en: Vec<&String> = STRINGS["en"].keys().collect();
        for code in ["ar", "fr"] {
            for key in &en {
                assert!(STRINGS[code].contains_key(*key), "{code} lacks {key}");
            }
            assert_eq!(STRINGS[code].len(), en.len(), "{code} has extra keys");
        }
        for lang in [Lang::Ar, Lang::Fr, Lang::En] {
            let html = render(lang, &settings());
            assert!(!html.contains("{{"), "{lang:?}: unfilled placeholder");
            assert!(!html.contains("{link_minutes}") && !html.contains("{archive_days}"));
            for (key, text) in &STRINGS[code(lang)] {
                // Texts of the markup (not only the script's) appear filled.
                if INDEX_HTML.contains(&format!("{{{{t:{key}}}}}")) {
                    assert!(html.contains(&escape(&fill(text, &settings()))), "{key}");
                }
            }
        }
        let ar = render(Lang::Ar, &settings());
        assert!(ar.contains("<html lang=\"ar\" dir=\"rtl\">"));
        assert!(ar.contains("30 يوما"), "session days filled");
        assert!(render(Lang::Fr, &settings()).contains("<html lang=\"fr\" dir=\"ltr\">"));
    }

    #[test]
    fn the_language_comes_from_the_query_then_the_browser_then_arabic() {
        assert_eq!(choose_language(Some("lang=fr"), Some("en")), Lang::Fr);
        assert_eq!(choose_language(Some("x=1&lang=en-GB"), None), Lang::En);
        assert_eq!(
            choose_language(Some("lang=de"), Some("fr-DZ,ar;q=0.8")),
            Lang::Fr
        );
        assert_eq!(
            choose_language(None, Some("de-DE, en;q=0.5, ar;q=0.9")),
            Lang::Ar
        );
        assert_eq!(choose_language(None, Some("en;q=0, fr;q=0.1")), Lang::Fr);
        assert_eq!(choose_language(None, Some("de, it")), Lang::Ar);
        assert_eq!(choose_language(None, Some("fr;q=bad, en")), Lang::En);
        assert_eq!(choose_language(None, None), Lang::Ar);
    }

    #[test]
    fn settings_are_escaped_into_the_page() {
        let mut s = settings();
        s.crisis_line = "<b>\"3033\"".into();
        let html = render(Lang::En, &s);
        assert!(html.contains("&lt;b&gt;&quot;3033&quot;"));
        assert!(!html.contains("<b>\""));
    }
}
