//! The engine server (`amal-engine serve`): the HTTP API that the web and mobile chat clients
//! talk to, with its background workers.
//!
//! JSON over HTTP (axum). Errors are `application/problem+json` ([`problem`]); bad input is
//! always a 4xx. End users authenticate with a bearer session token from a magic link or an
//! anonymous session ([`crate::users`]); they only ever reach their own conversations, never
//! internal ticket comments or staff data. The OpenAPI document at `/openapi.json` is
//! generated from the handlers ([`handlers`]).

pub mod handlers;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            anonymous_sessions: false,
            body_limit_bytes: 64 * 1024,
            rate_limit_per_ip_per_minute: 600,
            rate_limit_per_session_per_minute: 120,
            magic_link_ttl_minutes: crate::users::MAGIC_LINK_TTL_MINUTES,
            session_ttl_hours: crate::users::SESSION_TTL_HOURS,
            magic_link_url: "http://127.0.0.1:8080/sign-in".into(),
            run_workers: true,
            workers: WorkerConfig::default(),
            metrics_token: None,
        }
    }
}

/// What every handler shares.
pub struct Inner {
    /// The database.
    pub pool: PgPool,
    /// The AUTO decision (crisis gate first).
    pub engine: DecisionEngine,
    /// Delivers sign-in links.
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
        AppState(Arc::new(Inner {
            pool: pool.clone(),
            engine,
            mailer,
            config,
            metrics: Metrics::new(),
            limiter,
            hub: EventHub::new(),
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

/// The complete router: API, `/openapi.json`, problems for unknown routes and methods,
/// body limit, rate limits, metrics and panic containment.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    let body_limit = state.config.body_limit_bytes;
    api.route(
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
    // Inside the rate limiter: what it refuses is not counted, so a flood cannot inflate the
    // metrics (whose labels are bounded anyway).
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
            axum::response::IntoResponse::into_response(Problem::internal(&"a handler panicked"))
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
    }
    let app = router(state.clone());
    let stopper = state.clone();
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopper.shutdown.send(true);
    })
    .await;
    let _ = state.shutdown.send(true);
    for task in background {
        task.abort();
    }
    result
}
