//! The engine server (`amal-engine serve`): the HTTP API that the web and mobile chat clients
//! talk to, with its background workers.
//!
//! JSON over HTTP (axum). Errors are `application/problem+json` ([`problem`]); bad input is
//! always a 4xx. End users authenticate with a bearer session token from a magic link or an
//! anonymous session ([`crate::users`]); they only ever reach their own conversations, never
//! internal ticket comments or staff data. The OpenAPI document at `/openapi.json` is
//! generated from the handlers ([`handlers`]).

mod audit_context;
pub mod handlers;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod sse;
pub mod tls;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::decision::auto::DecisionEngine;
use crate::mail::Mailer;
use crate::workers::{self, WorkerConfig};
use handlers::BearerAuth;
use metrics::Metrics;
use problem::Problem;
use rate_limit::RateLimiter;
use sse::EventHub;

/// The server's settings (the CLI maps its flags and environment variables to these).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Whether clients may open anonymous sessions (no e-mail address).
    pub anonymous_sessions: bool,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Requests per minute per client IP address (0: unlimited).
    pub rate_limit_per_ip_per_minute: u32,
    /// Requests per minute per session (0: unlimited).
    pub rate_limit_per_session_per_minute: u32,
    /// Lifetime of a magic link.
    pub magic_link_ttl_minutes: i64,
    /// Lifetime of a session.
    pub session_ttl_hours: i64,
    /// The page of the chat client that receives sign-in links; the token is appended as
    /// `?token=...`.
    pub magic_link_url: String,
    /// Whether this instance runs the background workers.
    pub run_workers: bool,
    /// The workers' intervals.
    pub workers: WorkerConfig,
    /// Who may read `/metrics` (traffic volume and crisis counts are not public): `None`,
    /// clients on this machine only (loopback); `Some(token)`, clients sending it as a bearer
    /// token, from anywhere.
    pub metrics_token: Option<String>,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client: requests from them are
    /// rate-limited and audited by the address they forward; from anyone else the header is
    /// ignored (a client could write anything in it).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections served at once. Past it, a small reserve of connections is still served
    /// (one request each, a short header timeout), so that `/healthz` and `/readyz` keep
    /// answering; past the reserve, connections are closed at once.
    pub max_connections: usize,
    /// TLS: every connection starts with a handshake with this certificate and key; `None`,
    /// plain HTTP (behind a TLS-terminating reverse proxy).
    pub tls: Option<tls::TlsSettings>,
    /// How often the sessions of the live streams are re-checked and marked connected, all in
    /// one query (sign-outs and deletions end their streams at once, by notice).
    pub live_sweep_interval: Duration,
}

impl ServerConfig {
    /// The chat page's address, which reply notices link back to: the sign-in link's page
    /// (`.../sign-in`) without its last segment.
    pub fn page_url(&self) -> String {
        let url = self.magic_link_url.trim_end_matches('/');
        match url.strip_suffix("/sign-in") {
            Some(base) => format!("{base}/"),
            None => url
                .rsplit_once('/')
                .map_or(url.to_string(), |(base, _)| format!("{base}/")),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            anonymous_sessions: false,
            // A 10,000-character message sent JSON-escaped (`\uXXXX`, astral characters as
            // surrogate pairs) takes up to 12 bytes a character.
            body_limit_bytes: 128 * 1024,
            rate_limit_per_ip_per_minute: 600,
            rate_limit_per_session_per_minute: 120,
            magic_link_ttl_minutes: crate::users::MAGIC_LINK_TTL_MINUTES,
            session_ttl_hours: crate::users::SESSION_TTL_HOURS,
            magic_link_url: "http://127.0.0.1:8080/sign-in".into(),
            run_workers: true,
            workers: WorkerConfig::default(),
            metrics_token: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            trusted_proxies: Vec::new(),
            tls: None,
            live_sweep_interval: sse::LIVE_SWEEP,
        }
    }
}

/// What every handler shares.
pub struct Inner {
    /// The database.
    pub pool: PgPool,
    /// The AUTO decision (crisis gate first).
    pub engine: DecisionEngine,
    /// Delivers sign-in links and reply notices.
    pub mailer: Arc<dyn Mailer>,
    /// Settings.
    pub config: ServerConfig,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Live events.
    pub hub: EventHub,
    /// Turns true when the server shuts down (ends live streams and workers).
    pub shutdown: watch::Sender<bool>,
    /// Bounds the turns running at once (see [`turn_concurrency`]).
    pub turns: tokio::sync::Semaphore,
}

/// How many turns may run at once on `pool`: a third of its connections. Turns are the
/// heaviest requests (retrieval, then the write transaction), and a turn's retrieval holds two
/// connections at once for its vector and text lists; bounded, a burst of turns queues here and
/// a third of the pool stays free for reads, streams and the workers.
pub fn turn_concurrency(pool: &PgPool) -> usize {
    (pool.options().get_max_connections() / 3).max(1) as usize
}

/// The shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The state for a server on `pool`.
    pub fn new(
        pool: PgPool,
        engine: DecisionEngine,
        mailer: Arc<dyn Mailer>,
        config: ServerConfig,
    ) -> Self {
        let limiter = RateLimiter::new(
            config.rate_limit_per_ip_per_minute,
            config.rate_limit_per_session_per_minute,
        );
        let hub = EventHub::new(config.live_sweep_interval);
        AppState(Arc::new(Inner {
            pool: pool.clone(),
            engine,
            mailer,
            config,
            metrics: Metrics::new(),
            limiter,
            hub,
            shutdown: watch::channel(false).0,
            turns: tokio::sync::Semaphore::new(turn_concurrency(&pool)),
        }))
    }
}

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Amal engine API",
        description = "Support chat for addiction and mental health: sign-in, consent, conversations with the assistant, live updates, preferences, export and deletion of one's data."
    ),
    paths(handlers::openapi_document),
    components(schemas(problem::ProblemBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The API routes and the OpenAPI document describing exactly them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(handlers::routes())
        .split_for_parts()
}

/// The complete router: API, `/openapi.json`, the chat page ([`web`]), problems for unknown
/// routes and methods,
/// body limit, rate limits, metrics and panic containment.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    let body_limit = state.config.body_limit_bytes;
    api.merge(web::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this resource does not support that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.body_timeout,
        ))
        // Inside the rate limiter: what it refuses is not counted, so a flood cannot inflate the
        // metrics (whose labels are bounded anyway).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_context::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::middleware,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(Problem::internal(
                    &"a handler panicked",
                ))
            },
        ))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` completes: the API, the live-event listener and
/// (when configured) the workers. Live streams end at shutdown so that it does not wait on
/// them.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut background = vec![
        state
            .hub
            .spawn_listener(state.pool.clone(), state.shutdown.subscribe()),
    ];
    if state.config.run_workers {
        let metrics_state = state.clone();
        background.extend(workers::spawn(
            state.pool.clone(),
            state.config.workers.clone(),
            workers::instance_name(),
            Arc::new(move |job, result| metrics_state.metrics.worker_run(job, result)),
            state.shutdown.subscribe(),
        ));
        background.push(workers::spawn_notices(
            state.pool.clone(),
            state.mailer.clone(),
            state.config.page_url(),
            Duration::from_secs(state.config.workers.mail_notice_interval_seconds.max(1)),
            workers::instance_name(),
            state.shutdown.subscribe(),
        ));
        background.push(workers::spawn_sentences(
            state.pool.clone(),
            state.engine.retriever().embedder().clone(),
            Duration::from_secs(state.config.workers.sentences_interval_seconds.max(1)),
            workers::instance_name(),
            state.shutdown.subscribe(),
        ));
    }
    let app = router(state.clone());
    let stopper = state.clone();
    // Live streams end as soon as shutdown starts, so that the wait for requests in flight
    // does not wait on them.
    let shutdown = async move {
        shutdown.await;
        let _ = stopper.shutdown.send(true);
    };
    let result = accept(listener, app, &state.config, shutdown).await;
    let _ = state.shutdown.send(true);
    for task in background {
        task.abort();
    }
    result
}

/// Connections past the bound that are still served, one request each: room for health
/// checks while the bound holds.
const RESERVE_CONNECTIONS: usize = 64;
/// The header timeout of a reserve connection.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`, each served with the header and idle timeouts, under
/// the connection bound; then waits (a while) for the requests in flight.
async fn accept(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tokio::sync::Semaphore;

    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let reserve = Arc::new(Semaphore::new(RESERVE_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = |header_timeout: Duration, keep_alive: bool| {
        let mut b = Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(keep_alive);
        b.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(header_timeout))
            .keep_alive_timeout(header_timeout);
        b
    };
    let proxies: Arc<[ipnet::IpNet]> = config.trusted_proxies.clone().into();
    let regular = builder(config.header_timeout, true);
    let reserved = builder(RESERVE_HEADER_TIMEOUT, false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: the server goes on once some close.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (permit, builder) = match connections.clone().try_acquire_owned() {
            Ok(p) => (p, &regular),
            Err(_) => match reserve.clone().try_acquire_owned() {
                Ok(p) => (p, &reserved),
                // Past the reserve too: closed at once rather than left to queue.
                Err(_) => continue,
            },
        };
        let app = app.clone();
        let proxies = proxies.clone();
        let service = tower::service_fn(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                // Handlers, the rate limiter and the audit trail see the client's address.
                let client = client_address(peer, request.headers(), &proxies);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(client));
                tower::ServiceExt::oneshot(app.clone(), request)
            },
        );
        if let Some(tls) = &config.tls {
            // The handshake runs in the connection's task, bounded like the headers, so that a
            // slow or silent client holds only its own connection.
            let acceptor = tls.acceptor().clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let handshake_timeout = config.header_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let connection = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        TowerToHyperService::new(service),
                    )
                    .into_owned();
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
            continue;
        }
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight at shutdown were cut off");
    }
    Ok(())
}

/// The client's address: the connection's peer, unless the peer is a trusted proxy; then the
/// right-most address of `X-Forwarded-For` that is not a trusted proxy itself (proxies append
/// what they saw, so everything left of it was written by the client and proves nothing).
pub fn client_address(
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> SocketAddr {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|net| net.contains(&ip));
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// Parses an address or a network (`127.0.0.1`, `10.0.0.0/8`, `::1`) of a trusted proxy.
pub fn parse_proxy(entry: &str) -> Result<ipnet::IpNet, String> {
    let e = entry.trim();
    e.parse::<ipnet::IpNet>()
        .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{e}` is not an IP address or network (e.g. 10.0.0.0/8)"))
}

/// Parses a comma-separated list of [`parse_proxy`] entries, naming the first bad one.
pub fn parse_proxies(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(parse_proxy)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_taken_from_trusted_proxies_only() {
        let proxies = parse_proxies("127.0.0.1, 10.0.0.0/8").unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.1.2.3".parse().unwrap(),
        );
        let from = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 4000);
        // Through two trusted proxies: the address the outer one saw.
        assert_eq!(
            client_address(from("127.0.0.1"), &headers, &proxies)
                .ip()
                .to_string(),
            "203.0.113.7"
        );
        // Straight from a client: its own header proves nothing.
        assert_eq!(
            client_address(from("198.51.100.1"), &headers, &proxies),
            from("198.51.100.1")
        );
        // A proxy without the header, or with garbage: the proxy.
        assert_eq!(
            client_address(from("127.0.0.1"), &Default::default(), &proxies),
            from("127.0.0.1")
        );
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(
            client_address(from("127.0.0.1"), &headers, &proxies),
            from("127.0.0.1")
        );
        assert!(
            parse_proxies("10.0.0.0/8, nonsense")
                .unwrap_err()
                .contains("nonsense")
        );
        assert_eq!(parse_proxies("::1").unwrap().len(), 1);
    }
}
