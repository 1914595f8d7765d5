//! Every request runs with its audit context (client address, user agent); the audit rows it
//! wrote then get the response's status as their outcome.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::audit::{self, AuditContext};

/// The middleware: scope, run, then record the outcome on the rows the request wrote.
pub async fn middleware(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let context = AuditContext::request(Some(client.ip()), user_agent.as_deref());
    let (response, recorded) = audit::scope_request(context, next.run(request)).await;
    if !recorded.is_empty() {
        let status = response.status();
        let error = (status.is_client_error() || status.is_server_error())
            .then(|| status.canonical_reason().unwrap_or("error"));
        // After the response is built but before it is sent: an outcome lost to a database
        // error is logged, never turned into a failed response for an action that succeeded.
        let outcome = async {
            let mut conn = state.pool.acquire().await?;
            audit::record_outcome(&mut conn, &recorded, status.as_u16(), error).await
        };
        if let Err(e) = outcome.await {
            tracing::warn!(error = %e, "could not record the outcome of audited actions");
        }
    }
    response
}
