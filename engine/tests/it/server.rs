//! The engine server over real HTTP on real PostgreSQL: the whole journey (magic link, consent,
//! conversation, a crisis with its urgent ticket, a staff public reply on the live stream),
//! isolation between users, a live stream ending with its session, a table of bad inputs, rate limits, forgetting and export, two
//! instances sharing the workers, and the `serve` binary's contract.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use amal_engine::lang::Lang;
use amal_engine::mail::MemoryMailer;
use amal_engine::server::{self, AppState, ServerConfig};
use amal_engine::sessions::ClientInfo;
use amal_engine::staff::{self, Password, StaffRole};
use amal_engine::tickets::{self, CommentText, Visibility};
use amal_engine::workers::{self, Job, WorkerConfig};

use crate::fixtures::{
    ServeProcess, TestResult, another_pool, end_user, engine, kb_engine, numbers, staff_account,
};

/// A server on 127.0.0.1:0 with the test's pool, stopped by [`TestServer::stop`].
struct TestServer {
    base: String,
    http: reqwest::Client,
    mailer: Arc<MemoryMailer>,
    hub: server::sse::EventHub,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Test settings: no workers, generous limits.
fn config() -> ServerConfig {
    ServerConfig {
        run_workers: false,
        rate_limit_per_ip_per_minute: 100_000,
        rate_limit_per_session_per_minute: 100_000,
        ..ServerConfig::default()
    }
}

impl TestServer {
    async fn start(pool: &PgPool, config: ServerConfig) -> Self {
        Self::start_with(pool, config, engine()).await
    }

    async fn start_with(
        pool: &PgPool,
        config: ServerConfig,
        engine: amal_engine::decision::auto::DecisionEngine,
    ) -> Self {
        let mailer = Arc::new(MemoryMailer::default());
        let state = AppState::new(pool.clone(), engine, mailer.clone(), config);
        let hub = state.hub.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            http: reqwest::Client::new(),
            mailer,
            hub,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends JSON (or nothing) and returns the status and the JSON answer (`null` if none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.request(method, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Posts a message in `conv`.
    async fn say(&self, token: &str, conv: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/v1/conversations/{conv}/messages");
        self.call(Method::POST, &path, Some(token), Some(body))
            .await
    }

    /// GETs `path` with a session.
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// The newest sign-in link sent to `email`: links go out after the answer, so this waits
    /// for it (a while).
    async fn link_for(&self, email: &str) -> String {
        for _ in 0..100 {
            if let Some(link) = self.mailer.last_link(email) {
                return link;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no sign-in link was sent to {email}");
    }

    /// Signs in through a magic link (with consent when asked) and returns the session token.
    async fn sign_in(&self, email: &str, consent: bool) -> String {
        let (s, _) = self
            .call(
                Method::POST,
                "/v1/auth/magic-link",
                None,
                Some(json!({ "email": email })),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let link = self.link_for(email).await;
        let token = link.split("token=").nth(1).unwrap().to_string();
        let (s, session) = self
            .call(
                Method::POST,
                "/v1/auth/verify",
                None,
                Some(json!({ "token": token, "consent_data_storage": consent })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{session}");
        session["token"].as_str().unwrap().to_string()
    }

    async fn new_conversation(&self, token: &str) -> String {
        let (s, c) = self
            .call(
                Method::POST,
                "/v1/conversations",
                Some(token),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        c["id"].as_str().unwrap().to_string()
    }

    /// Opens the conversation's live stream; fails unless it answers 200.
    async fn open_events(&self, token: &str, conv: &str) -> reqwest::Result<reqwest::Response> {
        let response = self
            .request(
                Method::GET,
                &format!("/v1/conversations/{conv}/events"),
                Some(token),
            )
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        Ok(response)
    }

    async fn metrics(&self) -> String {
        self.request(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Reads a Server-Sent Events response into (event, data) pairs.
fn read_events(mut response: reqwest::Response) -> mpsc::UnboundedReceiver<(String, Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if !data.is_empty()
                    && tx
                        .send((event, serde_json::from_str(&data).unwrap()))
                        .is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

/// Waits for the first event matching `want`, failing after 10 s; returns it and everything
/// received before it.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<(String, Value)>,
    seen: &mut Vec<(String, Value)>,
    want: impl Fn(&str, &Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching event; got {seen:#?}"))
            .expect("stream open");
        seen.push(next.clone());
        if want(&next.0, &next.1) {
            return next.1;
        }
    }
}

/// A comment by a staff member on the ticket numbered `number`.
async fn comment_as(
    pool: &PgPool,
    by: &staff::Actor,
    number: &str,
    text: &str,
    visibility: Visibility,
) -> TestResult {
    let mut conn = pool.acquire().await?;
    tickets::comment(
        &mut conn,
        by,
        number,
        &CommentText::new(text)?,
        visibility,
        Utc::now(),
    )
    .await?;
    Ok(())
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, case: &str) {
    assert_eq!(status, expected, "{case}: {body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:amal:problem:")),
        "{case}: {body}"
    );
    assert_eq!(body["status"], expected.as_u16(), "{case}");
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn journey_sign_in_consent_converse_crisis_and_a_staff_reply_on_the_live_stream(
    pool: PgPool,
) -> TestResult {
    let engine = kb_engine(&pool).await;
    // Someone is online: the safety message's promise of a human holds.
    crate::fixtures::someone_on_shift(&pool).await;
    let srv = TestServer::start_with(&pool, config(), engine).await;

    // Sign in by magic link, without consent yet; the link is single use.
    let (s, _) = srv
        .call(
            Method::POST,
            "/v1/auth/magic-link",
            None,
            Some(json!({ "email": "Amina@Example.DZ" })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let link = srv.link_for("amina@example.dz").await;
    let link_token = link.split("token=").nth(1).unwrap();
    let stored: String = sqlx::query_scalar("SELECT token FROM magic_links")
        .fetch_one(&pool)
        .await?;
    assert_ne!(stored, link_token, "the link's token is stored hashed");
    let (s, session) = srv
        .call(
            Method::POST,
            "/v1/auth/verify",
            None,
            Some(json!({ "token": link_token })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["consent_data_storage"], false);
    let token = session["token"].as_str().unwrap().to_string();
    let (s, again) = srv
        .call(
            Method::POST,
            "/v1/auth/verify",
            None,
            Some(json!({ "token": link_token })),
        )
        .await;
    assert_problem(s, &again, StatusCode::BAD_REQUEST, "used link");

    // Nothing is stored before consent.
    let (s, p) = srv
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_problem(s, &p, StatusCode::FORBIDDEN, "no consent");
    assert_eq!(p["type"], "urn:amal:problem:consent-required");
    let (s, me) = srv
        .call(
            Method::POST,
            "/v1/me/consent",
            Some(&token),
            Some(json!({ "consent_data_storage": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["consent_data_storage"], true);
    assert_eq!(me["email"], "amina@example.dz");
    let (ts, ip): (Option<chrono::DateTime<Utc>>, Option<String>) = sqlx::query_as(
        "SELECT consent_timestamp, host(consent_ip_address) FROM users WHERE email = 'amina@example.dz'",
    )
    .fetch_one(&pool)
    .await?;
    assert!(ts.is_some());
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    // Preferences.
    let (s, prefs) = srv
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&token),
            Some(json!({ "theme": "dark", "language": "fr", "accessibility_mode": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["theme"], "dark");
    assert_eq!(prefs["language"], "fr-FR");
    assert_eq!(prefs["accessibility_mode"], true);
    assert_eq!(prefs["notifications_enabled"], true);

    // Converse, with the live stream open.
    let conv = srv.new_conversation(&token).await;
    let response = srv.open_events(&token, &conv).await?;
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let mut events = read_events(response);
    let mut seen = Vec::new();

    let (s, turn) = srv
        .say(&token, &conv, json!({ "content": "How can I sleep better? I have insomnia", "client_message_id": "m1" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{turn}");
    assert_eq!(turn["decision"], "rag", "{turn}");
    assert_eq!(turn["safety"], false);
    assert!(turn["ticket"].is_null());
    assert!(
        !turn["reply"]["citations"].as_array().unwrap().is_empty(),
        "{turn}"
    );
    assert!(
        turn["reply"].get("metadata").is_none(),
        "internals stay inside"
    );
    // A retry with the same key returns the stored turn.
    let (s, retry) = srv
        .say(&token, &conv, json!({ "content": "How can I sleep better? I have insomnia", "client_message_id": "m1" }))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(retry["replayed"], true);
    assert_eq!(retry["reply"]["id"], turn["reply"]["id"]);

    // Both, in either order: a turn posted as the stream opens may be committed before the
    // stream's first catch-up reads the messages, and its state events then come after them.
    wait_for(&mut events, &mut seen, |e, d| {
        e == "message" && d["id"] == turn["reply"]["id"]
    })
    .await;
    if !seen
        .iter()
        .any(|(e, d)| e == "state" && d["state"] == "processing")
    {
        wait_for(&mut events, &mut seen, |e, d| {
            e == "state" && d["state"] == "processing"
        })
        .await;
    }

    // A crisis: the safety message and an urgent ticket.
    let (s, crisis) = srv
        .say(
            &token,
            &conv,
            json!({ "content": "i really wanna die tonight" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{crisis}");
    assert_eq!(crisis["decision"], "support");
    assert_eq!(crisis["safety"], true);
    assert_eq!(crisis["ticket"]["priority"], "urgent");
    assert_eq!(crisis["ticket"]["category"], "crisis");
    let number = crisis["ticket"]["ticket_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(number.starts_with("TKT-"));
    assert_eq!(
        crisis["reply"]["content"].as_str().unwrap(),
        amal_engine::decision::crisis::safety_message(
            amal_engine::lang::normalize::Lang::En,
            &numbers()
        )
    );

    // Staff: an internal note and a public reply. Only the reply reaches the person.
    let supervisor = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let internal = "INTERNAL: history of overdoses, call the family doctor";
    comment_as(&pool, &supervisor, &number, internal, Visibility::Internal).await?;
    let public = "Hello, I am Samir from the team. I am here with you.";
    comment_as(&pool, &supervisor, &number, public, Visibility::Public).await?;
    let reply = wait_for(&mut events, &mut seen, |e, d| {
        e == "message" && d["role"] == "staff"
    })
    .await;
    assert_eq!(
        reply["content"],
        "Hello, I am Samir from the team. I am here with you."
    );
    let everything = serde_json::to_string(&seen)?;
    assert!(!everything.contains("INTERNAL"), "{everything}");
    assert!(!everything.contains("sup@amal.example"));

    // The history has the same, never the internal note or the staff member's identity.
    let (s, page) = srv
        .get(&format!("/v1/conversations/{conv}?limit=50"), &token)
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = page.to_string();
    assert!(text.contains("I am here with you"));
    assert!(!text.contains("INTERNAL") && !text.contains("sup@amal.example"));
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
    // Paging.
    let (_, first) = srv
        .get(&format!("/v1/conversations/{conv}?limit=2"), &token)
        .await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    let older = first["older"].as_str().unwrap();
    let (_, second) = srv
        .get(
            &format!("/v1/conversations/{conv}?limit=2&before={older}"),
            &token,
        )
        .await;
    assert_eq!(second["messages"].as_array().unwrap().len(), 2);

    // Listing and closing.
    let (_, list) = srv.get("/v1/conversations", &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, closed) = srv
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/close"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(closed["status"], "closed");
    let (s, p) = srv.say(&token, &conv, json!({ "content": "hello?" })).await;
    assert_problem(s, &p, StatusCode::CONFLICT, "closed conversation");

    let metrics = srv.metrics().await;
    assert!(
        metrics.contains("amal_turns_total{value=\"support\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("amal_turn_tickets_total{value=\"urgent\"} 1"));
    assert!(metrics.contains("amal_http_requests_total{method=\"POST\",route=\"/v1/conversations/{id}/messages\",status=\"201\"}"));

    // Consent withdrawn (the account kept): nothing is stored, but a message in crisis still
    // gets the safety message in the problem's detail.
    let stored_before: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    let (s, me) = srv
        .call(
            Method::POST,
            "/v1/me/consent",
            Some(&token),
            Some(json!({ "consent_data_storage": false })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["consent_data_storage"], false);
    let (s, p) = srv
        .say(
            &token,
            &conv,
            json!({ "content": "je veux mourir ce soir" }),
        )
        .await;
    assert_problem(s, &p, StatusCode::FORBIDDEN, "no consent, crisis");
    // Nothing stored, no ticket: even with someone online, the message promises nobody.
    let safety = amal_engine::decision::crisis::unstored_safety_message(
        amal_engine::lang::Lang::Fr,
        &numbers(),
    );
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.ends_with(&safety), "{p}");
    assert!(!detail.contains("rejoint"), "{p}");

    let (s, p) = srv
        .say(&token, &conv, json!({ "content": "bonjour" }))
        .await;
    assert_problem(s, &p, StatusCode::FORBIDDEN, "no consent");
    assert!(!p["detail"].as_str().unwrap().contains('\n'), "{p}");
    let (s, p) = srv
        .call(
            Method::POST,
            "/v1/conversations",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_problem(
        s,
        &p,
        StatusCode::FORBIDDEN,
        "no new conversation without consent",
    );
    let stored_after: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(
        stored_after, stored_before,
        "nothing new stored while withdrawn"
    );

    // Given again: the person writes again, and the trail has both changes.
    let (s, me) = srv
        .call(
            Method::POST,
            "/v1/me/consent",
            Some(&token),
            Some(json!({ "consent_data_storage": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    let again = srv.new_conversation(&token).await;
    let (s, reply) = srv
        .say(&token, &again, json!({ "content": "bonjour" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action::text FROM audit_logs WHERE action LIKE 'user.consent%' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        actions,
        ["user.consent", "user.consent_withdrawn", "user.consent"]
    );
    drop(events);
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn users_reach_only_their_own_conversations_and_staff_sessions_are_refused(
    pool: PgPool,
) -> TestResult {
    let srv = TestServer::start(&pool, config()).await;
    let amina = srv.sign_in("amina@example.dz", true).await;
    let karim = srv.sign_in("karim@example.dz", true).await;
    let conv = srv.new_conversation(&amina).await;
    let (s, _) = srv
        .say(&amina, &conv, json!({ "content": "bonjour, je dors mal" }))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    for (method, path, body) in [
        (Method::GET, format!("/v1/conversations/{conv}"), None),
        (
            Method::POST,
            format!("/v1/conversations/{conv}/messages"),
            Some(json!({ "content": "hello" })),
        ),
        (
            Method::POST,
            format!("/v1/conversations/{conv}/close"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/conversations/{conv}/events"),
            None,
        ),
    ] {
        let (s, p) = srv.call(method.clone(), &path, Some(&karim), body).await;
        assert_problem(s, &p, StatusCode::NOT_FOUND, &format!("{method} {path}"));
    }
    let (_, list) = srv.get("/v1/conversations", &karim).await;
    assert_eq!(list, json!([]));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(count, 2, "Karim's attempts stored nothing");

    // A staff session is not an end-user session, and staff addresses get no link.
    let mut conn = pool.acquire().await?;
    staff::add(
        &mut conn,
        None,
        "agent@amal.example",
        "Agent",
        StaffRole::Agent,
        &Password::new("a long enough password")?,
    )
    .await?;
    let signed = staff::sign_in(
        &mut conn,
        "agent@amal.example",
        "a long enough password",
        Utc::now(),
        &ClientInfo::default(),
    )
    .await?;
    let (s, p) = srv
        .call(Method::GET, "/v1/me", Some(&signed.token), None)
        .await;
    assert_problem(s, &p, StatusCode::UNAUTHORIZED, "staff token");
    let sent = srv.mailer.count();
    let (s, _) = srv
        .call(
            Method::POST,
            "/v1/auth/magic-link",
            None,
            Some(json!({ "email": "agent@amal.example" })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "the same answer as for anyone");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.mailer.count(), sent, "but no link");

    // Signing out ends the session.
    let (s, _) = srv
        .call(Method::POST, "/v1/auth/sign-out", Some(&karim), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, p) = srv.get("/v1/me", &karim).await;
    assert_problem(s, &p, StatusCode::UNAUTHORIZED, "signed out");
    srv.stop().await;
    Ok(())
}

/// A live stream outlives the request that opened it, not its session: once the person signs
/// out, the next delivery (here a staff public reply) is refused, `event: end` is sent and the
/// stream closes.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_live_stream_ends_with_its_session(pool: PgPool) -> TestResult {
    let srv = TestServer::start(&pool, config()).await;
    let token = srv.sign_in("nadia@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let response = srv.open_events(&token, &conv).await?;
    let mut events = read_events(response);
    let mut seen = Vec::new();
    let (s, crisis) = srv
        .say(
            &token,
            &conv,
            json!({ "content": "i really wanna die tonight" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{crisis}");
    wait_for(&mut events, &mut seen, |e, d| {
        e == "message" && d["id"] == crisis["reply"]["id"]
    })
    .await;

    let (s, _) = srv
        .call(Method::POST, "/v1/auth/sign-out", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let number = crisis["ticket"]["ticket_number"]
        .as_str()
        .unwrap()
        .to_string();
    let supervisor = staff_account(&pool, "sup@amal.example", "supervisor").await;
    let reply = "Hello, this is Samir from the team.";
    comment_as(&pool, &supervisor, &number, reply, Visibility::Public).await?;
    let end = wait_for(&mut events, &mut seen, |e, _| e == "end").await;
    assert_eq!(end["reason"], "session_ended");
    let after = tokio::time::timeout(Duration::from_secs(5), events.recv()).await?;
    assert!(
        after.is_none(),
        "the stream closes after its end: {after:?}"
    );
    let everything = serde_json::to_string(&seen)?;
    assert!(!everything.contains("Samir"), "{everything}");
    srv.stop().await;
    Ok(())
}

/// A bad request: name, method, path, content type, body, expected status.
type BadInput<'a> = (
    &'a str,
    Method,
    String,
    Option<&'a str>,
    Option<String>,
    u16,
);

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn bad_input_gets_a_problem_and_never_a_5xx(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            body_limit_bytes: 32 * 1024,
            ..config()
        },
    )
    .await;
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let messages = format!("/v1/conversations/{conv}/messages");
    let huge = format!("{{\"content\": \"{}\"}}", "a".repeat(40_000));
    let long = json!({ "content": "ب".repeat(10_001) }).to_string();
    let json_type = "application/json";
    let cases: Vec<BadInput> = vec![
        (
            "oversized body",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some(huge),
            413,
        ),
        (
            "bad JSON",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{\"content\": ".into()),
            400,
        ),
        (
            "not JSON at all",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("hello".into()),
            400,
        ),
        (
            "wrong type",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{\"content\": 42}".into()),
            422,
        ),
        (
            "array body",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("[1, 2]".into()),
            422,
        ),
        (
            "missing field",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{}".into()),
            422,
        ),
        (
            "unknown field",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{\"content\": \"hi\", \"role\": \"staff\"}".into()),
            422,
        ),
        (
            "no content type",
            Method::POST,
            messages.clone(),
            None,
            Some("{\"content\": \"hi\"}".into()),
            415,
        ),
        (
            "empty message",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{\"content\": \"   \"}".into()),
            422,
        ),
        (
            "message too long",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some(long),
            422,
        ),
        (
            "control character",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some("{\"content\": \"a\\u0007b\"}".into()),
            422,
        ),
        (
            "long client key",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some(json!({"content": "hi", "client_message_id": "k".repeat(200)}).to_string()),
            422,
        ),
        (
            "NUL in the client key",
            Method::POST,
            messages.clone(),
            Some(json_type),
            Some(json!({"content": "hi", "client_message_id": "a\u{0}b"}).to_string()),
            422,
        ),
        (
            "bad mode",
            Method::POST,
            "/v1/conversations".into(),
            Some(json_type),
            Some("{\"mode\": \"STAFF\"}".into()),
            422,
        ),
        (
            "bad language",
            Method::POST,
            "/v1/conversations".into(),
            Some(json_type),
            Some("{\"language\": \"de\"}".into()),
            422,
        ),
        (
            "bad theme",
            Method::PATCH,
            "/v1/me/preferences".into(),
            Some(json_type),
            Some("{\"theme\": \"pink\"}".into()),
            422,
        ),
        (
            "bad e-mail",
            Method::POST,
            "/v1/auth/magic-link".into(),
            Some(json_type),
            Some("{\"email\": \"not-an-address\"}".into()),
            422,
        ),
        (
            "unknown link",
            Method::POST,
            "/v1/auth/verify".into(),
            Some(json_type),
            Some("{\"token\": \"nope\"}".into()),
            400,
        ),
        (
            "anonymous switched off",
            Method::POST,
            "/v1/auth/anonymous".into(),
            Some(json_type),
            Some("{\"consent_data_storage\": true}".into()),
            403,
        ),
        (
            "malformed id",
            Method::GET,
            "/v1/conversations/not-a-uuid".into(),
            None,
            None,
            404,
        ),
        (
            "unknown conversation",
            Method::GET,
            format!("/v1/conversations/{}", Uuid::new_v4()),
            None,
            None,
            404,
        ),
        (
            "bad cursor",
            Method::GET,
            format!("/v1/conversations/{conv}?before=zzz"),
            None,
            None,
            400,
        ),
        (
            "cursor past the years a timestamp holds",
            Method::GET,
            format!(
                "/v1/conversations/{conv}?before=9223372036854775807.{}",
                Uuid::nil()
            ),
            None,
            None,
            400,
        ),
        (
            "cursor in the year 10000",
            Method::GET,
            format!(
                "/v1/conversations/{conv}?before=253402300800000000.{}",
                Uuid::nil()
            ),
            None,
            None,
            400,
        ),
        (
            "limit out of range",
            Method::GET,
            format!("/v1/conversations/{conv}?limit=0"),
            None,
            None,
            422,
        ),
        (
            "limit not a number",
            Method::GET,
            format!("/v1/conversations/{conv}?limit=ten"),
            None,
            None,
            400,
        ),
        (
            "bad Last-Event-ID",
            Method::GET,
            format!("/v1/conversations/{conv}/events"),
            None,
            None,
            400,
        ),
        (
            "unknown route",
            Method::GET,
            "/v1/nothing-here".into(),
            None,
            None,
            404,
        ),
        (
            "wrong method",
            Method::PUT,
            "/v1/conversations".into(),
            None,
            None,
            405,
        ),
    ];
    for (case, method, path, content_type, body, expected) in cases {
        let mut r = srv.request(method, &path, Some(&token));
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        if case == "bad Last-Event-ID" {
            r = r.header("last-event-id", "garbage");
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        let response = r.send().await?;
        let status = response.status();
        let ct = response.headers()["content-type"].to_str()?.to_string();
        let body: Value = serde_json::from_str(&response.text().await?).unwrap_or(Value::Null);
        assert!(status.as_u16() < 500, "{case}: {status} {body}");
        assert_eq!(ct, "application/problem+json", "{case}");
        assert_problem(status, &body, StatusCode::from_u16(expected)?, case);
    }
    // Without a session, or with a made-up one.
    for token in [None, Some("0".repeat(64))] {
        let (s, p) = srv
            .call(Method::GET, "/v1/conversations", token.as_deref(), None)
            .await;
        assert_problem(s, &p, StatusCode::UNAUTHORIZED, "no session");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(stored, 0, "no bad input was stored");
    // Messages with no words are common ("👍", "???"): each is an ordinary turn.
    for text in ["👍", "???", "...", ":)", "؟؟؟", "❤️"] {
        let (status, turn) = srv.say(&token, &conv, json!({ "content": text })).await;
        assert!(status.is_success(), "{text:?}: {status} {turn}");
        assert_ne!(turn["reason_code"], "rag_confident", "{text:?}: {turn}");
    }
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn rate_limits_per_ip_and_per_session_answer_429_with_retry_after(
    pool: PgPool,
) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            rate_limit_per_ip_per_minute: 1000,
            rate_limit_per_session_per_minute: 3,
            ..config()
        },
    )
    .await;
    let token = srv.sign_in("amina@example.dz", true).await;
    for _ in 0..3 {
        let (s, _) = srv.get("/v1/me", &token).await;
        assert_eq!(s, StatusCode::OK);
    }
    let response = srv
        .request(Method::GET, "/v1/me", Some(&token))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = response.json().await?;
    assert_eq!(body["type"], "urn:amal:problem:rate-limited");
    // Another session from the same address is not affected; monitoring never is.
    let other = srv.sign_in("karim@example.dz", true).await;
    let (s, _) = srv.get("/v1/me", &other).await;
    assert_eq!(s, StatusCode::OK);
    srv.stop().await;

    let srv = TestServer::start(
        &pool,
        ServerConfig {
            rate_limit_per_ip_per_minute: 2,
            ..config()
        },
    )
    .await;
    for _ in 0..2 {
        let (s, _) = srv.call(Method::GET, "/v1/me", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, p) = srv
        .call(
            Method::POST,
            "/v1/auth/magic-link",
            None,
            Some(json!({ "email": "x@example.dz" })),
        )
        .await;
    assert_problem(s, &p, StatusCode::TOO_MANY_REQUESTS, "per IP");
    for path in ["/healthz", "/metrics"] {
        let (s, _) = srv.call(Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{path} is never limited");
    }
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn export_then_forget_keeps_the_statistics(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            anonymous_sessions: true,
            ..config()
        },
    )
    .await;
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let (s, _) = srv
        .say(
            &token,
            &conv,
            json!({ "content": "I want to talk to a person about my drinking" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let response = srv
        .request(Method::GET, "/v1/me/export", Some(&token))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()?
            .contains("attachment")
    );
    let export: Value = response.json().await?;
    assert_eq!(export["profile"]["email"], "amina@example.dz");
    assert_eq!(export["consent_ip_address"], "127.0.0.1");
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
    let messages = export["conversations"][0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("drinking")
    );

    let (s, _) = srv.call(Method::DELETE, "/v1/me", Some(&token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, p) = srv.get("/v1/me", &token).await;
    assert_problem(s, &p, StatusCode::UNAUTHORIZED, "forgotten");

    let (email, name, deleted): (String, String, bool) = sqlx::query_as(
        "SELECT email::text, name, deleted_at IS NOT NULL FROM users WHERE staff_role IS NULL",
    )
    .fetch_one(&pool)
    .await?;
    assert!(email.ends_with("@deleted.invalid") && name.is_empty() && deleted);
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM messages WHERE content LIKE '%drinking%') \
              + (SELECT count(*) FROM user_sessions) + (SELECT count(*) FROM magic_links) \
              + (SELECT count(*) FROM support_tickets WHERE subject LIKE '%drinking%')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(leftovers, 0);
    let (messages, decisions, tickets): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE deleted_at IS NULL), \
                (SELECT count(*) FROM decision_logs), (SELECT count(*) FROM support_tickets)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        (messages, decisions, tickets),
        (2, 1, 1),
        "the rows stay for the statistics"
    );

    // Anonymous sessions, where configured, need consent too.
    let (s, p) = srv
        .call(
            Method::POST,
            "/v1/auth/anonymous",
            None,
            Some(json!({ "consent_data_storage": false })),
        )
        .await;
    assert_problem(s, &p, StatusCode::FORBIDDEN, "anonymous without consent");
    let (s, anon) = srv
        .call(
            Method::POST,
            "/v1/auth/anonymous",
            None,
            Some(json!({ "consent_data_storage": true })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let anon = anon["token"].as_str().unwrap();
    let (_, me) = srv.get("/v1/me", anon).await;
    assert_eq!(me["is_anonymous"], true);
    assert!(me["email"].is_null());
    srv.new_conversation(anon).await;
    srv.stop().await;
    Ok(())
}

fn fast_workers() -> ServerConfig {
    ServerConfig {
        run_workers: true,
        workers: WorkerConfig {
            sla_sweep_interval_seconds: 1,
            stats_refresh_interval_seconds: 1,
            archive_interval_seconds: 1,
            magic_link_cleanup_interval_seconds: 1,
            session_expiry_interval_seconds: 1,
            retention_interval_seconds: 1,
            shift_interval_seconds: 1,
            ..WorkerConfig::default()
        },
        ..config()
    }
}

/// The sum over both instances' `/metrics` of `amal_worker_runs_total` for `job`.
fn runs_in(metrics: &str, job: Job) -> u64 {
    let prefix = format!("amal_worker_runs_total{{value=\"{}\"}} ", job.as_str());
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or(0)
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn two_instances_share_the_workers_without_double_work(pool: PgPool) -> TestResult {
    // The claim itself: of sixteen concurrent claimants exactly one wins the interval.
    let mut claims = Vec::new();
    for i in 0..16 {
        let pool = pool.clone();
        claims.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            workers::claim(&mut conn, Job::Archive, 3600, &format!("claimant-{i}"))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for c in claims {
        won += u32::from(c.await?);
    }
    assert_eq!(won, 1);
    sqlx::query("DELETE FROM worker_runs")
        .execute(&pool)
        .await?;

    // An overdue ticket for the sweeper; an idle conversation for the archiver.
    let (_, conv) = end_user(&pool, "old@example.dz").await;
    sqlx::query("UPDATE conversations SET created_at = now() - interval '200 days' WHERE id = $1")
        .bind(conv)
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO support_tickets (user_id, subject, category, priority, created_at) \
         SELECT user_id, 'Old', 'resources', 'urgent', now() - interval '3 days' FROM conversations WHERE id = $1",
    )
    .bind(conv)
    .execute(&pool)
    .await?;

    let a = TestServer::start(&pool, fast_workers()).await;
    let b = TestServer::start(&pool, fast_workers()).await;
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    a.stop().await;
    b.stop().await;

    for job in Job::ALL {
        let (runs, finished): (i64, bool) = sqlx::query_as(
            "SELECT runs, last_finished_at IS NOT NULL FROM worker_runs WHERE job = $1",
        )
        .bind(job.as_str())
        .fetch_one(&pool)
        .await?;
        // One run per one-second interval across both instances: 3 or 4 in 3.3 s (two
        // instances each running on their own would make 6 to 8).
        assert!((2..=4).contains(&runs), "{}: {runs} runs", job.as_str());
        assert!(finished, "{}", job.as_str());
        let counted = runs_in(&ma, job) + runs_in(&mb, job);
        assert!(
            counted as i64 <= runs && counted as i64 >= runs - 1,
            "{}: {counted} counted by the instances, {runs} claimed",
            job.as_str()
        );
    }
    let (archived, breached): (bool, bool) = sqlx::query_as(
        "SELECT (SELECT status = 'archived' FROM conversations WHERE id = $1), \
                (SELECT first_response_breached AND resolution_breached FROM support_tickets)",
    )
    .bind(conv)
    .fetch_one(&pool)
    .await?;
    assert!(archived && breached);
    let breach_events: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_breach_events")
        .fetch_one(&pool)
        .await?;
    assert_eq!(breach_events, 2, "each breach recorded once");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn contract_serve_binary_health_openapi_metrics(pool: PgPool) -> TestResult {
    let data = tempfile::tempdir()?;
    let serve = ServeProcess::start(&pool, data.path(), &[], &[]).await;
    let base = serve.base.clone();
    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await?;
    assert_eq!(ready.status(), StatusCode::OK);

    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/v1/auth/magic-link",
        "/v1/auth/verify",
        "/v1/auth/anonymous",
        "/v1/auth/sign-out",
        "/v1/me",
        "/v1/me/consent",
        "/v1/me/preferences",
        "/v1/me/export",
        "/v1/conversations",
        "/v1/conversations/{id}",
        "/v1/conversations/{id}/messages",
        "/v1/conversations/{id}/close",
        "/v1/conversations/{id}/events",
        "/v1/safety",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert_eq!(paths.len(), 18, "{paths:?}");
    // Every documented path answers (none is a 404 from the router).
    for p in &paths {
        let url = format!("{base}{}", p.replace("{id}", &Uuid::nil().to_string()));
        let s = http.get(url).send().await?.status();
        assert!(s != StatusCode::NOT_FOUND || p.contains("{id}"), "{p}: {s}");
        assert!(s.as_u16() < 500, "{p}: {s}");
    }

    let response = http.get(format!("{base}/metrics")).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await?;
    assert!(
        text.contains("# TYPE amal_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("amal_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE amal_http_request_duration_seconds histogram"));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_database_outage_answers_503_with_retry_after(pool: PgPool) -> TestResult {
    let own = another_pool(
        &pool,
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(1)),
    )
    .await?;
    let srv = TestServer::start(&own, config()).await;
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    // The database goes away for this server (its pool closes; connections held elsewhere
    // are not waited for).
    let closing = own.clone();
    tokio::spawn(async move { closing.close().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (method, path, body) in [
        (Method::GET, "/v1/me".to_string(), None),
        (Method::GET, "/v1/conversations".to_string(), None),
        (
            Method::POST,
            "/v1/conversations".to_string(),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/conversations/{conv}/messages"),
            Some(json!({"content": "je n'arrive pas à dormir"})),
        ),
        (Method::GET, "/readyz".to_string(), None),
    ] {
        let mut r = srv.request(method.clone(), &path, Some(&token));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await?;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
    }
    let (status, _) = srv.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the process itself still answers");
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn metrics_have_bounded_labels_and_are_not_public(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            metrics_token: Some("scrape-secret".into()),
            ..config()
        },
    )
    .await;
    // Random methods and paths fold into one value each.
    for i in 0..50 {
        let method = Method::from_bytes(format!("M{i}{}", "X".repeat(200)).as_bytes())?;
        let response = srv
            .request(method, &format!("/random/{i}"), None)
            .send()
            .await?;
        assert!(response.status().as_u16() < 500);
    }
    let scrape = |token: Option<&'static str>| {
        let mut r = srv.request(Method::GET, "/metrics", None);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(scrape(None).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(scrape(Some("guess")).await?.status(), StatusCode::FORBIDDEN);
    let response = scrape(Some("scrape-secret")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await?;
    assert!(!text.contains("XXXX"), "a raw method became a label");
    assert!(!text.contains("/random/"), "a raw path became a label");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    srv.stop().await;
    Ok(())
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent and
/// whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn slow_and_idle_connections_are_cut_and_health_keeps_answering(pool: PgPool) -> TestResult {
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            header_timeout: Duration::from_millis(700),
            body_timeout: Duration::from_millis(700),
            max_connections: 10,
            ..config()
        },
    )
    .await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    // Half a request each, more connections than the bound.
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
        slow.push(s);
    }
    // The bound holds and health still answers.
    let started = std::time::Instant::now();
    let (status, _) = srv.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Every half-sent request is cut once its headers are late.
    for s in &mut slow {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed, "a connection sending half its headers stayed open");
    }
    // A body shorter than its Content-Length does not hold the connection either.
    let mut short = tokio::net::TcpStream::connect(&addr).await?;
    short
        .write_all(
            b"POST /v1/auth/anonymous HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"consent\":",
        )
        .await?;
    let (answer, closed) = read_until_closed(&mut short, Duration::from_secs(5)).await;
    assert!(
        closed || answer.starts_with("HTTP/1.1 4"),
        "a short body held the connection: {answer:?}"
    );
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    // A kept-alive connection that goes idle is closed.
    let mut idle = tokio::net::TcpStream::connect(&addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stayed open");
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn the_crisis_fallback_needs_no_consent_and_long_escaped_messages_fit(
    pool: PgPool,
) -> TestResult {
    let srv = TestServer::start(&pool, ServerConfig::default()).await;
    // Without a session or consent: the gate alone, nothing stored.
    let (status, view) = srv
        .call(
            Method::POST,
            "/v1/safety",
            None,
            Some(json!({"content": "je veux mourir ce soir"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["crisis"], true);
    assert!(
        view["reply"]
            .as_str()
            .unwrap()
            .contains(&numbers().crisis_line),
        "{view}"
    );
    assert_eq!(view["crisis_line"], numbers().crisis_line);
    // In each language, the text for what is not stored: nobody from the team will read it.
    for (lang, text) in [
        (Lang::Fr, "je veux mourir ce soir"),
        (Lang::En, "I want to kill myself tonight"),
        (Lang::Ar, "أريد أن أنتحر الليلة"),
    ] {
        let (status, view) = srv
            .call(
                Method::POST,
                "/v1/safety",
                None,
                Some(json!({ "content": text })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(
            view["reply"],
            amal_engine::decision::crisis::unstored_safety_message(lang, &numbers()).as_str(),
            "{lang}: {view}"
        );
    }
    let (status, view) = srv
        .call(
            Method::POST,
            "/v1/safety",
            None,
            Some(json!({"content": "bonjour"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["crisis"], false);
    assert!(view["reply"].is_null() && view["emergency_number"].is_string());
    let (status, _) = srv
        .call(
            Method::POST,
            "/v1/safety",
            None,
            Some(json!({"content": "  "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await?;
    assert_eq!(stored, 0);
    // 10,000 astral characters, each a \uXXXX\uXXXX surrogate pair: within the body limit.
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let escaped = format!("{{\"content\": \"{}\"}}", "\\ud83d\\ude0a".repeat(10_000));
    let response = srv
        .request(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&token),
        )
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await?;
    assert!(response.status().is_success(), "{}", response.status());
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn sign_in_links_are_limited_per_address_and_the_newest_used_revokes_the_rest(
    pool: PgPool,
) -> TestResult {
    let srv = TestServer::start(&pool, config()).await;
    let ask = |email: &'static str| {
        srv.call(
            Method::POST,
            "/v1/auth/magic-link",
            None,
            Some(json!({ "email": email })),
        )
    };
    let mut links = Vec::new();
    for _ in 0..amal_engine::users::MAGIC_LINKS_PER_ADDRESS_PER_HOUR {
        let (s, _) = ask("flood@example.dz").await;
        assert_eq!(s, StatusCode::ACCEPTED);
        // Each link arrives before the next is asked for.
        let before = links.len();
        for _ in 0..100 {
            let sent = srv.mailer.last_link("flood@example.dz");
            if sent.as_ref().is_some_and(|l| !links.contains(l)) {
                links.push(sent.unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(links.len(), before + 1, "a link was sent");
    }
    // One more is refused with Retry-After, for any address alike; another address is not
    // affected.
    let response = srv
        .request(Method::POST, "/v1/auth/magic-link", None)
        .json(&json!({ "email": "flood@example.dz" }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let (s, _) = ask("other@example.dz").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // Using the newest link makes the earlier ones useless.
    let token = |link: &str| link.split("token=").nth(1).unwrap().to_string();
    let (s, _) = srv
        .call(
            Method::POST,
            "/v1/auth/verify",
            None,
            Some(json!({ "token": token(links.last().unwrap()) })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for earlier in &links[..links.len() - 1] {
        let (s, p) = srv
            .call(
                Method::POST,
                "/v1/auth/verify",
                None,
                Some(json!({ "token": token(earlier) })),
            )
            .await;
        assert_problem(s, &p, StatusCode::BAD_REQUEST, "an earlier link");
    }
    srv.stop().await;
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn behind_a_trusted_proxy_each_client_has_its_own_rate_limit(pool: PgPool) -> TestResult {
    for trusted in [true, false] {
        let srv = TestServer::start(
            &pool,
            ServerConfig {
                rate_limit_per_ip_per_minute: 3,
                trusted_proxies: if trusted {
                    server::parse_proxies("127.0.0.1")?
                } else {
                    Vec::new()
                },
                ..config()
            },
        )
        .await;
        let mut limited = 0;
        for i in 1..=6 {
            let response = srv
                .request(Method::GET, "/v1/conversations", None)
                .header("x-forwarded-for", format!("203.0.113.{i}"))
                .send()
                .await?;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                limited += 1;
            }
        }
        if trusted {
            assert_eq!(limited, 0, "six clients behind the proxy, one request each");
        } else {
            assert!(
                limited > 0,
                "a client's own X-Forwarded-For must not buy it new buckets"
            );
        }
        srv.stop().await;
    }
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn live_streams_are_capped_per_session(pool: PgPool) -> TestResult {
    use amal_engine::server::sse::STREAMS_PER_SESSION;
    let srv = TestServer::start(&pool, config()).await;
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let events = format!("/v1/conversations/{conv}/events");
    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_SESSION {
        let r = srv
            .request(Method::GET, &events, Some(&token))
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let refused = srv
        .request(Method::GET, &events, Some(&token))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    // Another person's session is not affected.
    let other = srv.sign_in("karim@example.dz", true).await;
    let theirs = srv.new_conversation(&other).await;
    let r = srv
        .request(
            Method::GET,
            &format!("/v1/conversations/{theirs}/events"),
            Some(&other),
        )
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    // Closing a stream gives its place back.
    drop(open.pop());
    let mut reopened = false;
    for _ in 0..50 {
        let r = srv
            .request(Method::GET, &events, Some(&token))
            .send()
            .await?;
        if r.status() == StatusCode::OK {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "a closed stream's place was not given back");
    drop(open);
    srv.stop().await;
    Ok(())
}

/// A small deterministic generator (xorshift), so that a failing case can be replayed.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() % from.len() as u64) as usize]
    }
}

/// Every route of `/openapi.json`, with every method, malformed and odd bodies, odd headers and
/// path parameters: never a 5xx, never a hang.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn every_route_survives_hostile_requests(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            anonymous_sessions: true,
            ..config()
        },
    )
    .await;
    let token = srv.sign_in("amina@example.dz", true).await;
    let conv = srv.new_conversation(&token).await;
    let (_, doc) = srv.call(Method::GET, "/openapi.json", None, None).await;
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    assert!(paths.len() >= 18, "{paths:?}");
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let huge = format!("{{\"content\": \"{}\"}}", "x".repeat(200_000));
    let bodies: Vec<String> = vec![
        String::new(),
        "{".into(),
        "null".into(),
        "[]".into(),
        "\"text\"".into(),
        "{\"content\": 1}".into(),
        "{\"content\": null, \"client_message_id\": []}".into(),
        "{\"content\": \"\\u0000\"}".into(),
        "{\"content\": \"\\ud800\"}".into(),
        "{\"content\": \"\u{202e}\u{200f}؟؟\"}".into(),
        "{\"email\": \"a@b.c\u{0}\"}".into(),
        "{\"token\": \"x\", \"consent_data_storage\": \"yes\"}".into(),
        "{\"consent_data_storage\": true}".into(),
        "{\"mode\": \"AUTO\", \"language\": \"xx\"}".into(),
        "{\"theme\": 99999999999999999999999}".into(),
        "{\"content\": \"hi\", \"unknown\": 1}".into(),
        "{\"content\": \"hi\", \"client_message_id\": \"a\\u0000b\"}".into(),
        "{\"content\": \"👍👍👍\"}".into(),
        deep,
        huge,
        "\u{feff}{\"content\": \"bom\"}".into(),
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "application/json; charset=latin1",
        "multipart/form-data",
        "",
    ];
    let ids = [
        conv.clone(),
        Uuid::nil().to_string(),
        "not-a-uuid".into(),
        "%00".into(),
        "..%2F..%2Fetc".into(),
        "9".repeat(300),
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::from_bytes(b"BREW")?,
    ];
    let tokens = [Some(token.as_str()), None, Some("garbage"), Some("")];
    let mut cases = Cases(0x5eed_1234_abcd_ef01);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for i in 0..500 {
        let id = cases.pick(&ids[..]).clone();
        let path = cases.pick(&paths[..]).replace("{id}", &id);
        // Deleting the account would end the session the other cases use.
        let method = cases.pick(&methods[..]).clone();
        if path == "/v1/me" && method == Method::DELETE {
            continue;
        }
        let mut r = http.request(method.clone(), format!("{}{path}", srv.base));
        if let Some(t) = *cases.pick(&tokens[..]) {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let ct = *cases.pick(&content_types[..]);
        if !ct.is_empty() {
            r = r.header("content-type", ct);
        }
        if cases.next().is_multiple_of(4) {
            let cursors = [
                id.clone(),
                format!("9223372036854775807.{}", Uuid::nil()),
                format!("-9223372036854775808.{}", Uuid::nil()),
                "1.2.3".into(),
            ];
            r = r.header("last-event-id", cases.pick(&cursors[..]).as_str());
        }
        if cases.next().is_multiple_of(5) {
            r = r.header("x-forwarded-for", "garbage, 300.1.1.1");
        }
        let body = cases.pick(&bodies[..]).clone();
        let response = r.body(body.clone()).send().await;
        let response =
            response.unwrap_or_else(|e| panic!("case {i}: {method} {path} ({ct}): no answer: {e}"));
        let status = response.status();
        assert!(
            status.as_u16() < 500,
            "case {i}: {method} {path} ({ct}, body {:?}): {status}",
            body.chars().take(80).collect::<String>()
        );
    }
    srv.stop().await;
    Ok(())
}

#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn audited_actions_keep_the_clients_address_agent_and_outcome(pool: PgPool) -> TestResult {
    let srv = TestServer::start(&pool, config()).await;
    let token = srv.sign_in("nadia@example.dz", false).await;
    let (s, _) = srv
        .request(Method::POST, "/v1/me/consent", Some(&token))
        .header(reqwest::header::USER_AGENT, "AmalAndroid/2.1 (test)")
        .json(&json!({ "consent_data_storage": true }))
        .send()
        .await
        .map(|r| (r.status(), ()))?;
    assert_eq!(s, StatusCode::OK);
    let (ip, agent, status, channel): (
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT host(ip_address), user_agent, status_code, channel::text FROM audit_logs \
              WHERE action = 'user.consent'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(agent.as_deref(), Some("AmalAndroid/2.1 (test)"));
    assert_eq!(status, Some(200), "the outcome is the response's status");
    assert_eq!(channel.as_deref(), Some("server"));
    srv.stop().await;
    Ok(())
}

/// `serve` with a certificate speaks HTTPS only; a client that trusts the certificate gets its
/// answers, a plain-HTTP client gets none.
#[sqlx::test(migrator = "amal_engine::db::MIGRATOR")]
async fn https_with_a_certificate_and_key(pool: PgPool) -> TestResult {
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA (webpki refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // A key that is not the certificate's is refused with a clear error.
    let other_key = dir.path().join("other-key.pem");
    std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
        ])
        .arg(&other_key)
        .output()?;
    let mismatch = server::tls::TlsSettings::load(&cert, &other_key).unwrap_err();
    assert!(
        mismatch.to_string().contains("cannot be used together"),
        "{mismatch}"
    );
    let missing = server::tls::TlsSettings::load(&dir.path().join("none.pem"), &key).unwrap_err();
    assert!(missing.to_string().contains("none.pem"), "{missing}");

    let tls = server::tls::TlsSettings::load(&cert, &key)?;
    let state = AppState::new(
        pool.clone(),
        engine(),
        Arc::new(MemoryMailer::default()),
        ServerConfig {
            tls: Some(tls),
            ..config()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?)
        .build()?;
    let health = client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await?;
    assert_eq!(health.status(), StatusCode::OK);
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain?.status().is_success(),
        "plain HTTP is not served"
    );
    let _ = stop.send(());
    task.await??;
    Ok(())
}

/// Waits until the hub's listen connection has been established `n` times.
async fn wait_for_listener(srv: &TestServer, n: u64) {
    for _ in 0..200 {
        if srv.hub.connects() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the live-event listener did not connect ({n})");
}

/// Waits for `event: end` on a stream; returns how long it took.
async fn time_to_end(events: &mut mpsc::UnboundedReceiver<(String, Value)>) -> Duration {
    let started = tokio::time::Instant::now();
    let mut seen = Vec::new();
    wait_for(events, &mut seen, |e, _| e == "end").await;
    started.elapsed()
}

/// Waits until no stream has been woken for 300 ms (the notices in flight are handed out);
/// returns the hub's count of wake-ups then.
async fn settled_wakeups(srv: &TestServer) -> u64 {
    let mut last = srv.hub.wakeups();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = srv.hub.wakeups();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// A sign-out ends that session's streams within a couple of seconds, by notice (the sweep is
/// an hour away here), and wakes no other stream: not the person's other session, not another
/// person's.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_sign_out_ends_that_sessions_streams_at_once_and_wakes_no_other(
    pool: PgPool,
) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            live_sweep_interval: Duration::from_secs(3600),
            ..config()
        },
    )
    .await;
    wait_for_listener(&srv, 1).await;
    let phone = srv.sign_in("nadia@example.dz", true).await;
    let (_, me) = srv.get("/v1/me", &phone).await;
    let nadia: Uuid = me["id"].as_str().unwrap().parse()?;
    let laptop = amal_engine::sessions::open(
        &mut *pool.acquire().await?,
        nadia,
        chrono::Duration::hours(1),
        Utc::now(),
        &ClientInfo::default(),
    )
    .await?
    .token;
    let conv = srv.new_conversation(&phone).await;
    let other = srv.sign_in("karim@example.dz", true).await;
    let theirs = srv.new_conversation(&other).await;
    let mut on_phone = read_events(srv.open_events(&phone, &conv).await?);
    let mut on_laptop = read_events(srv.open_events(&laptop, &conv).await?);
    let mut karims: Vec<_> = Vec::new();
    for _ in 0..3 {
        karims.push(read_events(srv.open_events(&other, &theirs).await?));
    }
    assert_eq!(srv.hub.open_streams(), 5);
    let before = settled_wakeups(&srv).await;

    let (s, _) = srv
        .call(Method::POST, "/v1/auth/sign-out", Some(&phone), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let took = time_to_end(&mut on_phone).await;
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    assert_eq!(
        settled_wakeups(&srv).await - before,
        1,
        "only the signed-out session's stream is woken"
    );
    // The person's other session still streams, and so does the other person.
    let (s, turn) = srv
        .say(
            &laptop,
            &conv,
            json!({ "content": "How can I sleep better?" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{turn}");
    let mut seen = Vec::new();
    wait_for(&mut on_laptop, &mut seen, |e, d| {
        e == "message" && d["id"] == turn["reply"]["id"]
    })
    .await;
    let (s, turn) = srv
        .say(
            &other,
            &theirs,
            json!({ "content": "J'ai du mal à dormir" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{turn}");
    for stream in &mut karims {
        wait_for(stream, &mut seen, |e, d| {
            e == "message" && d["id"] == turn["reply"]["id"]
        })
        .await;
    }
    assert!(!seen.iter().any(|(e, _)| e == "end"), "{seen:#?}");
    srv.stop().await;
    Ok(())
}

/// `DELETE /v1/me` ends every stream of that person at once and wakes nobody else's: the hub
/// counts one wake-up per stream of the person, and none for the others.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn deleting_an_account_ends_its_streams_and_wakes_no_other(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            live_sweep_interval: Duration::from_secs(3600),
            ..config()
        },
    )
    .await;
    wait_for_listener(&srv, 1).await;
    let leaving = srv.sign_in("yasmine@example.dz", true).await;
    let mut hers = Vec::new();
    for _ in 0..2 {
        let conv = srv.new_conversation(&leaving).await;
        hers.push(read_events(srv.open_events(&leaving, &conv).await?));
    }
    let mut others = Vec::new();
    for who in ["amine@example.dz", "lina@example.dz", "omar@example.dz"] {
        let token = srv.sign_in(who, true).await;
        let conv = srv.new_conversation(&token).await;
        for _ in 0..STREAMS_PER_PERSON_HERE {
            others.push(read_events(srv.open_events(&token, &conv).await?));
        }
    }
    let before = settled_wakeups(&srv).await;
    let (s, _) = srv
        .call(Method::DELETE, "/v1/me", Some(&leaving), None)
        .await;
    assert!(s.is_success(), "{s}");
    for stream in &mut hers {
        let took = time_to_end(stream).await;
        assert!(took < Duration::from_secs(2), "ended after {took:?}");
    }
    assert_eq!(
        settled_wakeups(&srv).await - before,
        hers.len() as u64,
        "only the deleted person's streams are woken"
    );
    assert_eq!(srv.hub.open_streams(), others.len());
    for stream in &mut others {
        assert!(
            stream.try_recv().is_err(),
            "another person's stream heard it"
        );
    }
    srv.stop().await;
    Ok(())
}

const STREAMS_PER_PERSON_HERE: usize = 3;

/// When the listen connection is lost, notices sent meanwhile are gone: a sign-out during the
/// outage ends its stream as soon as the connection is back (the re-check on reconnect, not
/// the sweep, which is an hour away here), and live messages flow again.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn after_a_lost_listen_connection_streams_recheck_their_sessions(pool: PgPool) -> TestResult {
    let srv = TestServer::start(
        &pool,
        ServerConfig {
            live_sweep_interval: Duration::from_secs(3600),
            ..config()
        },
    )
    .await;
    wait_for_listener(&srv, 1).await;
    let leaving = srv.sign_in("nadia@example.dz", true).await;
    let conv = srv.new_conversation(&leaving).await;
    let mut ending = read_events(srv.open_events(&leaving, &conv).await?);
    let staying = srv.sign_in("karim@example.dz", true).await;
    let theirs = srv.new_conversation(&staying).await;
    let mut live = read_events(srv.open_events(&staying, &theirs).await?);

    let database = pool.connect_options().get_database().unwrap().to_string();
    // A database cannot close itself to connections: this is done from the maintenance one.
    let mut admin =
        sqlx::PgConnection::connect_with(&(*pool.connect_options()).clone().database("postgres"))
            .await?;
    let allow = |yes: bool| {
        sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {yes}"
        ))
    };
    // The outage: the listener's connection is cut and cannot come back; the server's pool
    // keeps its open connections.
    sqlx::query(allow(false)).execute(&mut admin).await?;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(cut, vec![true], "one listen connection");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = srv
        .call(Method::POST, "/v1/auth/sign-out", Some(&leaving), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let early = tokio::time::timeout(Duration::from_millis(1500), ending.recv()).await;
    assert!(
        early.is_err(),
        "the sign-out's notice cannot arrive while nobody listens: {early:?}"
    );
    assert_eq!(srv.hub.connects(), 1);

    sqlx::query(allow(true)).execute(&mut admin).await?;
    let took = time_to_end(&mut ending).await;
    assert!(
        took < Duration::from_secs(3),
        "ended {took:?} after the database came back"
    );
    assert_eq!(srv.hub.connects(), 2);
    let (s, turn) = srv
        .say(
            &staying,
            &theirs,
            json!({ "content": "How can I sleep better?" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{turn}");
    let mut seen = Vec::new();
    wait_for(&mut live, &mut seen, |e, d| {
        e == "message" && d["id"] == turn["reply"]["id"]
    })
    .await;
    assert!(!seen.iter().any(|(e, _)| e == "end"), "{seen:#?}");
    srv.stop().await;
    Ok(())
}
