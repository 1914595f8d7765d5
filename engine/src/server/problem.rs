//! Errors as `application/problem+json` (RFC 9457) with a stable `type` per kind of problem,
//! and the request extractors whose rejections become problems: bad input is always a 4xx.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::conversations::{ContentError, ConversationError};
use crate::users::UserError;

/// The `type` URIs of problems start with this.
pub const TYPE_PREFIX: &str = "urn:amal:problem:";

/// A problem answer.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable kind, e.g. `rate-limited` (the `type` is [`TYPE_PREFIX`] + kind).
    pub kind: &'static str,
    /// What happened, for people; never contains another person's data.
    pub detail: String,
    /// Seconds to wait, for 429 and 503.
    pub retry_after_seconds: Option<u64>,
}

/// The JSON body of a problem, as documented in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// `urn:amal:problem:<kind>`: stable, for programs.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
}

impl Problem {
    /// A problem of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            kind,
            detail: detail.into(),
            retry_after_seconds: None,
        }
    }

    /// 400 `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 422 `validation`: well-formed but breaking a rule.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 429 `rate-limited` with `Retry-After`.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Problem {
            retry_after_seconds: Some(retry_after_seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests; retry after {retry_after_seconds} s"),
            )
        }
    }

    /// 500 `internal`: the details go to the log, never to the client.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!("request failed: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service could not complete the request; try again",
        )
    }

    /// A database error: 503 `unavailable` with `Retry-After` when the database cannot be
    /// reached or refuses connections for now (that is the truth, and a client should retry),
    /// else 500.
    pub fn database(e: &sqlx::Error) -> Self {
        if database_unavailable(e) {
            tracing::warn!("database unavailable: {e}");
            Problem {
                retry_after_seconds: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service's database is not reachable right now; try again shortly",
                )
            }
        } else {
            Self::internal(e)
        }
    }

    fn title(&self) -> String {
        self.status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_uri: format!("{TYPE_PREFIX}{}", self.kind),
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<UserError> for Problem {
    fn from(e: UserError) -> Self {
        match e {
            UserError::InvalidEmail | UserError::InvalidPreference(_) => {
                Problem::validation(e.to_string())
            }
            UserError::TooManyLinks {
                retry_after_seconds,
            } => Problem::rate_limited(retry_after_seconds),
            UserError::InvalidLink => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-link", e.to_string())
            }
            UserError::Session(_) => Problem::unauthorized(e.to_string()),
            UserError::ConsentRequired => {
                Problem::new(StatusCode::FORBIDDEN, "consent-required", e.to_string())
            }
            UserError::AnonymousDisabled => {
                Problem::new(StatusCode::FORBIDDEN, "anonymous-disabled", e.to_string())
            }
            UserError::ConversationNotFound(_) => Problem::not_found(e.to_string()),
            UserError::Sql(e) => Problem::database(&e),
        }
    }
}

impl From<crate::turn::TurnError> for Problem {
    fn from(e: crate::turn::TurnError) -> Self {
        match e {
            crate::turn::TurnError::Conversation(e) => e.into(),
            crate::turn::TurnError::Ticket(crate::tickets::TicketError::Sql(e)) => {
                Problem::database(&e)
            }
            crate::turn::TurnError::Ticket(e) => Problem::internal(&e),
        }
    }
}

impl From<ContentError> for Problem {
    fn from(e: ContentError) -> Self {
        ConversationError::from(e).into()
    }
}

impl From<ConversationError> for Problem {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::Content(ContentError::TooLong { .. }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "message-too-long",
                e.to_string(),
            ),
            ConversationError::Content(_)
            | ConversationError::InvalidClientMessageId
            | ConversationError::Invalid(_) => Problem::validation(e.to_string()),
            ConversationError::BadCursor(_) => Problem::bad_request(e.to_string()),
            ConversationError::NotFound(_) | ConversationError::UnknownUser(_) => {
                Problem::not_found(e.to_string())
            }
            ConversationError::NotActive { .. } => Problem::new(
                StatusCode::CONFLICT,
                "conversation-not-active",
                e.to_string(),
            ),
            ConversationError::IdempotencyConflict(_) => {
                Problem::new(StatusCode::CONFLICT, "idempotency-conflict", e.to_string())
            }
            ConversationError::Staff(_) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            ConversationError::Sql(e) => Problem::database(&e),
        }
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Problem::database(&e)
    }
}

/// Whether a database error means the database cannot be reached or does not take work now:
/// the pool waited in vain or is closed, the connection broke, or the server answered with a
/// connection exception (SQLSTATE class 08), a shutdown or start-up in progress (57P01 to
/// 57P03), too many connections or too few resources (class 53), or a read-only standby
/// during a failover (25006).
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("53")
                || matches!(&*c, "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// A JSON body whose rejections are problems: malformed JSON 400, wrong types, missing or
/// unknown fields 422, wrong content type 415, oversized 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", detail)
        }
        JsonRejection::JsonSyntaxError(_) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid-json", detail)
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than the service accepts",
        ),
        other => Problem::new(other.status(), "bad-request", detail),
    }
}

/// Path parameters whose rejection is a 404 (a malformed id names nothing).
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| Problem::not_found(e.body_text()))
    }
}

/// A query string whose rejection is a 400.
#[derive(Debug, Clone, Copy)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| Problem::bad_request(e.body_text()))
    }
}
