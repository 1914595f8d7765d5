//! The chat page of `amal-engine serve`: the contract of `GET /` (HTML, a strict
//! Content-Security-Policy, `<html lang dir>` in the three languages), every asset the page
//! names served with its content type, and the page driven in a real browser (Debian's headless
//! Chromium over the DevTools protocol): sign in by magic link, write, the assistant's answer
//! with its sources, a request for a person, a staff reply arriving live, the safety message,
//! Arabic, and 320 px.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;

use amal_engine::tickets::{self, CommentText, Visibility};

use crate::fixtures::{ServeProcess, TestResult, base64_decode, ingest, kb_dir, staff_account};

/// The settings the page shows: known crisis numbers, anonymous sessions open, an assistant
/// that answers from the small knowledge base.
const ENVS: &[(&str, &str)] = &[
    ("AMAL_CRISIS_LINE", "3033"),
    ("AMAL_EMERGENCY_NUMBER", "14"),
    ("AMAL_RAG_THRESHOLD", "0.5"),
    ("AMAL_CLARIFY", "false"),
];

async fn serve(pool: &PgPool, data: &Path) -> ServeProcess {
    ServeProcess::start(pool, data, &["--anonymous-sessions", "--no-workers"], ENVS).await
}

/// The `<html ...>` start tag of a page.
fn html_tag(page: &str) -> &str {
    let start = page.find("<html").expect("an <html> element");
    &page[start..start + page[start..].find('>').unwrap() + 1]
}

/// The `/assets/...` addresses a page names in `src` and `href`.
fn asset_paths(page: &str) -> Vec<String> {
    let mut paths: Vec<String> = ["src=\"/assets/", "href=\"/assets/"]
        .iter()
        .flat_map(|attr| page.match_indices(attr).map(move |(i, _)| (i, attr.len())))
        .map(|(i, len)| {
            let from = i + len - "/assets/".len();
            page[from..from + page[from..].find('"').unwrap()].to_string()
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[sqlx::test(migrations = "../migrations")]
async fn contract_the_chat_page_in_three_languages_with_a_strict_policy(
    pool: PgPool,
) -> TestResult {
    let data = tempfile::tempdir()?;
    let serve = serve(&pool, data.path()).await;
    let http = reqwest::Client::new();
    let get = |path: &str, accept_language: Option<&str>| {
        let mut r = http.get(format!("{}{path}", serve.base));
        if let Some(l) = accept_language {
            r = r.header("accept-language", l);
        }
        r.send()
    };

    // GET /: HTML with the policy, `<html lang>`.
    let response = get("/", None).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(headers["content-type"].to_str()?.starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str()?.to_string();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    for loose in [
        "unsafe-inline",
        "unsafe-eval",
        "*",
        "http:",
        "https:",
        "data:",
    ] {
        assert!(!csp.contains(loose), "{loose} in {csp}");
    }
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let page = response.text().await?;
    assert!(html_tag(&page).contains(" lang=\""), "{}", html_tag(&page));

    // The language: ?lang= first, then Accept-Language; Arabic right to left.
    for (path, accept, lang, dir) in [
        ("/?lang=ar", None, "ar", "rtl"),
        ("/?lang=fr", None, "fr", "ltr"),
        ("/?lang=en", None, "en", "ltr"),
        ("/?lang=ar", Some("en-GB,en;q=0.9"), "ar", "rtl"),
        ("/", Some("fr-DZ,fr;q=0.9,en;q=0.5"), "fr", "ltr"),
        ("/", Some("de-DE,en;q=0.7,ar;q=0.8"), "ar", "rtl"),
        ("/", Some("en-US,en;q=0.9"), "en", "ltr"),
        ("/?lang=xx", Some("en"), "en", "ltr"),
        ("/sign-in?token=abc&lang=fr", None, "fr", "ltr"),
    ] {
        let page = get(path, accept).await?.text().await?;
        let tag = html_tag(&page);
        assert!(
            tag.contains(&format!("lang=\"{lang}\"")),
            "{path} {accept:?}: {tag}"
        );
        assert!(
            tag.contains(&format!("dir=\"{dir}\"")),
            "{path} {accept:?}: {tag}"
        );
    }
    let ar = get("/?lang=ar", None).await?.text().await?;
    let fr = get("/?lang=fr", None).await?.text().await?;
    assert!(ar.contains("تسجيل الدخول") && fr.contains("Connexion"));
    // The Darija welcome in every language; the crisis numbers always on the page.
    for p in [&page, &ar, &fr] {
        assert!(p.contains("مرحبا بيك"));
        assert!(p.contains("href=\"tel:3033\"") && p.contains("href=\"tel:14\""));
        assert!(p.contains("data-anonymous=\"true\""));
    }

    // No inline script: each <script> is a file of this origin or a JSON data block; nothing
    // from elsewhere, no inline style or handler.
    for (i, _) in page.match_indices("<script") {
        let tag = &page[i..i + page[i..].find('>').unwrap()];
        assert!(
            tag.contains("src=\"/assets/") || tag.contains("type=\"application/json\""),
            "{tag}"
        );
    }
    for needle in [
        " style=",
        " onclick=",
        " onload=",
        "src=\"http",
        "href=\"http",
        "//cdn",
    ] {
        assert!(!page.contains(needle), "{needle} in the page");
    }

    // Every asset the page names, with its content type and the policy.
    let assets = asset_paths(&page);
    assert_eq!(
        assets,
        ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"],
        "the page's assets"
    );
    for path in &assets {
        let response = get(path, None).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let kind = response.headers()["content-type"].to_str()?.to_string();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
        assert!(response.headers().contains_key("content-security-policy"));
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let text = response.text().await?;
        assert!(!text.is_empty(), "{path}");
        for third_party in ["http://", "https://", "@import", "//cdn"] {
            // The SVG's namespace is a name, not a request.
            let text = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(!text.contains(third_party), "{third_party} in {path}");
        }
    }
    let missing = get("/assets/nothing.js", None).await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        missing.headers()["content-type"]
            .to_str()?
            .starts_with("application/problem+json")
    );
    // The API is untouched: still problems for unknown routes.
    assert_eq!(
        get("/v1/nothing", None).await?.status(),
        StatusCode::NOT_FOUND
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The page in a real browser

/// Headless Chromium with its DevTools endpoint, killed when dropped.
struct Browser {
    child: std::process::Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Chromium, if installed (`scripts/setup.sh` installs it).
fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    })
}

impl Browser {
    async fn launch(program: &Path) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(program)
            .args([
                "--headless=new",
                // Tests may run as root (CI containers), where the sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=480,1000",
                "--lang=en-US",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting chromium");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(Ok(port)) = text.lines().next().map(str::parse::<u16>)
            {
                break port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromium never opened its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Browser {
            child,
            _profile: profile,
            port,
        }
    }

    /// A DevTools session on the browser's first page.
    async fn page(&self) -> Cdp {
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let mut cdp = Cdp {
            ws,
            next_id: 0,
            requests: Vec::new(),
            problems: Vec::new(),
        };
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Network.enable",
            "Log.enable",
        ] {
            cdp.call(domain, json!({})).await;
        }
        cdp
    }
}

/// A minimal DevTools protocol client: commands with their answers, and the events the test
/// checks (requests made, script errors, policy violations).
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    /// Every URL the page requested.
    requests: Vec<String>,
    /// Uncaught exceptions and errors logged by the browser.
    problems: Vec<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    /// A command's result, or the protocol's error (a navigation under way, say).
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::Text(command.into())).await.unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in 30 s"))
                .expect("devtools connection open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
            self.observe(&v);
        }
    }

    fn observe(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Network.requestWillBeSent") => {
                if let Some(url) = params["request"]["url"].as_str() {
                    self.requests.push(url.to_string());
                }
            }
            Some("Runtime.exceptionThrown") => {
                self.problems.push(params["exceptionDetails"].to_string());
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let text = params["entry"]["text"].as_str().unwrap_or_default();
                // Problems the page handles (a 404 while probing) are the API's answers;
                // what must never happen is a script error or a blocked resource.
                if params["entry"]["source"] != "network" {
                    self.problems.push(text.to_string());
                }
            }
            _ => {}
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until `expression` is truthy; returns its value. While a navigation
    /// runs the document may not be there yet: an exception counts as "not yet".
    async fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let guarded = format!(
            "(() => {{ try {{ return ({expression}); }} catch (_) {{ return null; }} }})()"
        );
        loop {
            let v = self
                .try_call(
                    "Runtime.evaluate",
                    json!({ "expression": guarded, "returnByValue": true }),
                )
                .await
                .map(|r| r["result"]["value"].clone())
                .unwrap_or(Value::Null);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.eval("document.body.innerText").await;
                panic!("never happened: {what}\npage text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            "document.readyState === 'complete' && !!document.getElementById('main')",
            "the page loaded",
        )
        .await;
    }

    /// Clicks the element `selector` names.
    async fn click(&mut self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.click(); return true; }})()",
                s = json!(selector)
            ))
            .await;
        assert_eq!(found, true, "no {selector} to click");
    }

    /// Types `text` into the field `selector` names, as keystrokes of the keyboard.
    async fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            json!(selector)
        ))
        .await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses a key on the focused element: `Enter`, `Tab` or `Space`.
    async fn press(&mut self, key: &str) {
        let (name, code, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            "Tab" => ("Tab", 9, ""),
            "Space" => (" ", 32, " "),
            other => panic!("no key {other}"),
        };
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": name, "code": key,
                        "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code,
                        "text": if kind == "keyDown" { text } else { "" } }),
            )
            .await;
        }
    }

    async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let bytes = base64_decode(shot["data"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Where the screenshots go: `docs/screenshots/` with `AMAL_UPDATE_SCREENSHOTS=1` (to refresh
/// the documentation's), else a scratch folder under the target directory.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if std::env::var("AMAL_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    }
}

/// The newest sign-in link the server's outbox holds for `email` (links go out after the
/// answer, so this waits a while).
async fn link_from_outbox(outbox: &Path, email: &str) -> String {
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(outbox)
            && let Some(link) = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["to"] == email)
                .filter_map(|v| v["link"].as_str().map(String::from))
                .next_back()
        {
            return link;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no sign-in link for {email} in {}", outbox.display());
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn in_a_browser_a_person_signs_in_writes_asks_for_a_person_and_reads_a_staff_reply_live(
    pool: PgPool,
) -> TestResult {
    let Some(program) = chromium() else {
        println!("SKIPPED: chromium is not installed (scripts/setup.sh installs Debian's package)");
        return Ok(());
    };
    let kb = kb_dir();
    ingest(&pool, &[kb.path().to_path_buf()], true).await;
    let data = tempfile::tempdir()?;
    let serve = serve(&pool, data.path()).await;
    let base = serve.base.clone();
    let browser = Browser::launch(&program).await;
    let mut page = browser.page().await;
    let shots = screenshot_dir();

    // English, then consent: the box must be ticked (keyboard: Space on the focused box).
    page.navigate(&format!("{base}/?lang=en")).await;
    assert_eq!(page.eval("document.documentElement.lang").await, "en");
    page.wait_for(
        "!document.getElementById('welcome').hidden",
        "the consent screen",
    )
    .await;
    assert_eq!(page.eval("document.activeElement.id").await, "consent");
    page.click("#consent-continue").await;
    page.wait_for(
        "!document.getElementById('consent-error').hidden",
        "consent is asked for",
    )
    .await;
    page.press("Space").await;
    assert_eq!(
        page.eval("document.getElementById('consent').checked")
            .await,
        true
    );
    page.click("#consent-continue").await;
    page.wait_for(
        "!document.getElementById('signin').hidden",
        "the sign-in screen",
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('anonymous-box').hidden")
            .await,
        false,
        "anonymous sessions are open on this server"
    );

    // A sign-in link by e-mail, opened in the browser.
    page.type_into("#email", "amina@example.dz").await;
    page.press("Enter").await;
    page.wait_for(
        "!document.getElementById('email-sent').hidden",
        "the link is sent",
    )
    .await;
    let link = link_from_outbox(
        &data.path().join("magic-link-outbox.jsonl"),
        "amina@example.dz",
    )
    .await;
    assert!(
        link.starts_with(&format!("{base}/sign-in?token=")),
        "{link}"
    );
    page.navigate(&link).await;
    page.wait_for(
        "!document.getElementById('welcome').hidden",
        "consent at the link",
    )
    .await;
    assert!(
        !page
            .eval("location.href")
            .await
            .as_str()
            .unwrap()
            .contains("token="),
        "the token leaves the address bar"
    );
    page.click("#consent").await;
    page.click("#consent-continue").await;
    page.wait_for(
        "!document.getElementById('chat').hidden",
        "the conversation",
    )
    .await;

    // Write (Enter sends); the assistant answers with its sources.
    page.type_into("#message", "How can I sleep better? I have insomnia")
        .await;
    page.press("Enter").await;
    page.wait_for(
        "document.querySelector('#messages .msg-assistant .sources li')?.textContent",
        "the assistant's answer with its sources",
    )
    .await;
    let answer = page
        .eval("document.querySelector('#messages .msg-assistant').innerText")
        .await;
    assert!(
        answer.as_str().unwrap().contains("Sleep problems"),
        "{answer}"
    );

    // Ask for a person: the hand-over with the ticket's number.
    page.click("#human").await;
    let ticket = page
        .wait_for(
            "document.querySelector('#messages .ticket')?.textContent",
            "the hand-over with a ticket number",
        )
        .await;
    let number = ticket
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("TKT-"))
        .expect("a ticket number")
        .to_string();

    // A staff member replies; the reply arrives on the live stream, no reload.
    let staff = staff_account(&pool, "samir@amal.example", "supervisor").await;
    let mut conn = pool.acquire().await?;
    tickets::comment(
        &mut conn,
        &staff,
        &number,
        &CommentText::new("Hello, I am Samir from the team. I am here with you.")?,
        Visibility::Public,
        Utc::now(),
    )
    .await?;
    tickets::comment(
        &mut conn,
        &staff,
        &number,
        &CommentText::new("INTERNAL: call back tomorrow")?,
        Visibility::Internal,
        Utc::now(),
    )
    .await?;
    page.wait_for(
        "document.querySelector('#messages .msg-staff')?.textContent.includes('I am here with you')",
        "the staff reply, live",
    )
    .await;
    let shown = page.eval("document.body.innerText").await;
    assert!(!shown.as_str().unwrap().contains("INTERNAL"));
    page.wait_for(
        "document.querySelectorAll('#conversations button').length === 1",
        "the history lists the conversation",
    )
    .await;
    page.screenshot(&shots.join("chat-en.png")).await;

    // Arabic: the link of the language menu; right to left, the conversation resumed.
    page.click("a[hreflang=ar]").await;
    page.wait_for("document.documentElement.lang === 'ar'", "the Arabic page")
        .await;
    assert_eq!(page.eval("document.documentElement.dir").await, "rtl");
    page.wait_for(
        "document.querySelector('#messages .msg-staff')?.textContent.includes('I am here with you')",
        "the conversation in Arabic",
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('human').textContent")
            .await,
        "التحدث مع شخص"
    );
    page.screenshot(&shots.join("chat-ar.png")).await;

    // French, at 320 px: nothing wider than the screen. Then a message in crisis: the safety
    // message with the numbers, prominent and focused.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 320, "height": 900, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    page.navigate(&format!("{base}/?lang=fr")).await;
    page.wait_for("!document.getElementById('chat').hidden", "the French page")
        .await;
    assert_eq!(page.eval("document.documentElement.dir").await, "ltr");
    let width = page
        .eval("document.documentElement.scrollWidth")
        .await
        .as_u64()
        .unwrap();
    assert!(width <= 320, "the page is {width} px wide at 320 px");
    page.type_into("#message", "je veux me suicider ce soir")
        .await;
    page.click("#send").await;
    page.wait_for(
        "!document.getElementById('safety').hidden",
        "the safety message",
    )
    .await;
    let safety = page
        .eval("document.getElementById('safety').innerText")
        .await;
    let safety = safety.as_str().unwrap();
    assert!(safety.contains("3033") && safety.contains("14"), "{safety}");
    assert_eq!(page.eval("document.activeElement.id").await, "safety");
    page.screenshot(&shots.join("chat-fr.png")).await;

    // Keyboard: from the message box, Tab reaches Send, drawn with a visible focus ring.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 480, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    page.navigate(&format!("{base}/?lang=en")).await;
    page.wait_for(
        "document.activeElement.id === 'message'",
        "the message box focused",
    )
    .await;
    page.press("Tab").await;
    assert_eq!(page.eval("document.activeElement.id").await, "send");
    let outline = page
        .eval("getComputedStyle(document.activeElement).outlineWidth")
        .await;
    assert_eq!(outline, "3px");

    // Export and deletion are reachable; deletion signs the person out.
    assert_eq!(
        page.eval("document.getElementById('account').hidden").await,
        false
    );
    page.click("#delete").await;
    assert_eq!(
        page.eval("document.activeElement.id").await,
        "delete-cancel"
    );
    page.click("#delete-yes").await;
    page.wait_for(
        "!document.getElementById('welcome').hidden",
        "signed out after deletion",
    )
    .await;
    let email: Option<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE email = 'amina@example.dz'")
            .fetch_optional(&pool)
            .await?;
    assert_eq!(email, None, "the account was forgotten");

    // Nothing but this server was asked for anything; no script error, no policy violation.
    let foreign: Vec<&String> = page
        .requests
        .iter()
        .filter(|u| !u.starts_with(&base) && *u != "about:blank")
        .collect();
    assert!(foreign.is_empty(), "requests elsewhere: {foreign:?}");
    assert!(page.problems.is_empty(), "{:#?}", page.problems);
    drop(browser);
    Ok(())
}
