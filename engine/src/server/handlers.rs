//! The HTTP handlers, each documented for the OpenAPI document by `#[utoipa::path]`.
//!
//! Handlers only translate: every rule lives in the domain modules ([`crate::users`],
//! [`crate::conversations`]). The crisis gate runs inside [`conversations::post_message`].

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::problem::{ApiJson, ApiPath, ApiQuery, Problem, ProblemBody};
use super::sse::{self, TurnState};
use crate::conversations::person::{self, PublicMessage};
use crate::conversations::{self, Conversation, Cursor, MessageContent};
use crate::db::person::Scope;
use crate::decision::auto::Mode;
use crate::lang::Lang;
use crate::privacy;
use crate::sessions::ClientInfo;
use crate::users::{
    self, Email, EndUser, Preferences, PreferencesUpdate, Profile, Theme, UserError,
};

/// Every API route (the OpenAPI document is built from this list).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_magic_link))
        .routes(routes!(verify_magic_link))
        .routes(routes!(anonymous_session))
        .routes(routes!(sign_out))
        .routes(routes!(me, delete_me))
        .routes(routes!(consent))
        .routes(routes!(get_preferences, update_preferences))
        .routes(routes!(export))
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(post_message))
        .routes(routes!(close_conversation))
        .routes(routes!(conversation_events))
        .routes(routes!(safety))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Declares the bearer security scheme.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The authenticated end user of a request (`Authorization: Bearer <session token>`).
pub struct Session(pub EndUser);

impl FromRequestParts<AppState> for Session {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = super::rate_limit::bearer(&parts.headers)
            .ok_or_else(|| Problem::unauthorized("sign in first (Authorization: Bearer)"))?;
        let mut conn = state.pool.acquire().await?;
        Ok(Session(
            users::authenticate(&mut conn, token, Utc::now()).await?,
        ))
    }
}

/// The authenticated owner of the conversation named by the path's `{id}`: another person's
/// conversation is a 404, as a missing one.
pub struct OwnConversation {
    /// The end user.
    pub user: EndUser,
    /// The conversation.
    pub id: Uuid,
}

impl FromRequestParts<AppState> for OwnConversation {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ApiPath(id) = ApiPath::<Uuid>::from_request_parts(parts, state).await?;
        let token = super::rate_limit::bearer(&parts.headers)
            .ok_or_else(|| Problem::unauthorized("sign in first (Authorization: Bearer)"))?;
        let mut conn = state.pool.acquire().await?;
        let user = users::authenticate_for(&mut conn, token, Some(id), Utc::now()).await?;
        Ok(OwnConversation { user, id })
    }
}

/// A transaction that acts for the signed-in person only: their rows are all its statements
/// can see or change (row-level security, [`crate::db::person`]). Authentication itself, and
/// the engine's answer within a turn, run in the engine's role.
async fn as_person(
    state: &AppState,
    user: &EndUser,
) -> Result<Transaction<'static, Postgres>, Problem> {
    Ok(Scope::Person(user.id).begin(&state.pool).await?)
}

fn client_info(peer: SocketAddr, headers: &HeaderMap) -> ClientInfo {
    ClientInfo {
        ip: Some(peer.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

/// Accepts an absent field as `None` and `null` as `Some(None)`.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Sign-in

/// Ask for a sign-in link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MagicLinkRequest {
    /// Where to send the link.
    pub email: String,
}

/// The request was accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`: the answer does not say whether an account exists.
    pub status: String,
}

/// Sends a single-use sign-in link to an e-mail address.
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "auth", request_body = MagicLinkRequest,
    responses(
        (status = 202, description = "Link sent if the address can sign in", body = Accepted),
        (status = 422, description = "Malformed address", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn request_magic_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MagicLinkRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), Problem> {
    let email = Email::parse(&body.email)?;
    let mut conn = state.pool.acquire().await?;
    let token = users::request_magic_link(
        &mut conn,
        &email,
        state.config.magic_link_ttl_minutes,
        Utc::now(),
        &client_info(peer, &headers),
    )
    .await?;
    if let Some(token) = token {
        // Delivered after the answer: its time would tell which addresses can sign in.
        let link = format!("{}?token={token}", state.config.magic_link_url);
        tokio::spawn(crate::mail::deliver_magic_link(
            state.mailer.clone(),
            state.pool.clone(),
            email,
            link,
            &crate::mail::MAGIC_LINK_RETRIES,
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted".into(),
        }),
    ))
}

/// Use a sign-in link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token from the link.
    pub token: String,
    /// Consent to data storage, given at sign-in.
    #[serde(default)]
    pub consent_data_storage: bool,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The bearer token for `Authorization: Bearer`.
    pub token: String,
    /// The end user.
    pub user_id: Uuid,
    /// End of the session.
    pub expires_at: DateTime<Utc>,
    /// Whether consent to data storage is on record (required before anything is stored).
    pub consent_data_storage: bool,
}

impl From<users::NewSession> for SessionResponse {
    fn from(s: users::NewSession) -> Self {
        SessionResponse {
            token: s.token,
            user_id: s.user_id,
            expires_at: s.expires_at,
            consent_data_storage: s.consent_data_storage,
        }
    }
}

/// Exchanges a sign-in link's token (single use, expiring) for a session.
#[utoipa::path(post, path = "/v1/auth/verify", tag = "auth", request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionResponse),
        (status = 400, description = "Invalid, used or expired link", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn verify_magic_link(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<axum::Json<SessionResponse>, Problem> {
    let mut conn = state.pool.acquire().await?;
    let session = users::verify_magic_link(
        &mut conn,
        body.token.trim(),
        body.consent_data_storage,
        state.config.session_ttl_hours,
        Utc::now(),
        &client_info(peer, &headers),
    )
    .await?;
    Ok(axum::Json(session.into()))
}

/// Open an anonymous session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnonymousRequest {
    /// Must be true: even an anonymous account is stored.
    pub consent_data_storage: bool,
}

/// Opens a session without an e-mail address, where the service allows it.
#[utoipa::path(post, path = "/v1/auth/anonymous", tag = "auth", request_body = AnonymousRequest,
    responses(
        (status = 201, description = "Signed in anonymously", body = SessionResponse),
        (status = 403, description = "Anonymous sessions are off, or no consent", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn anonymous_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AnonymousRequest>,
) -> Result<(StatusCode, axum::Json<SessionResponse>), Problem> {
    if !state.config.anonymous_sessions {
        return Err(UserError::AnonymousDisabled.into());
    }
    let mut conn = state.pool.acquire().await?;
    let session = users::anonymous_session(
        &mut conn,
        body.consent_data_storage,
        state.config.session_ttl_hours,
        Utc::now(),
        &client_info(peer, &headers),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(session.into())))
}

/// Ends the current session.
#[utoipa::path(post, path = "/v1/auth/sign-out", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out")))]
async fn sign_out(
    State(state): State<AppState>,
    Session(user): Session,
) -> Result<StatusCode, Problem> {
    let mut tx = as_person(&state, &user).await?;
    users::sign_out(&mut tx, user.session_id, Utc::now()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// The person

/// The signed-in person's account.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = Profile),
        (status = 401, description = "Not signed in", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn me(
    State(state): State<AppState>,
    Session(user): Session,
) -> Result<axum::Json<Profile>, Problem> {
    let mut tx = as_person(&state, &user).await?;
    let profile = users::profile(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(axum::Json(profile))
}

/// Give or withdraw consent to data storage.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// True gives consent (again); false withdraws it without deleting the account.
    pub consent_data_storage: bool,
}

/// Records consent to data storage with its time and the client's IP address, or withdraws
/// it: while withdrawn nothing new is stored, and a message in crisis still gets the safety
/// message.
#[utoipa::path(post, path = "/v1/me/consent", tag = "me", security(("bearer" = [])), request_body = ConsentRequest,
    responses(
        (status = 200, description = "Consent on record, or withdrawn", body = Profile),
    ))]
async fn consent(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Session(user): Session,
    ApiJson(body): ApiJson<ConsentRequest>,
) -> Result<axum::Json<Profile>, Problem> {
    let mut tx = as_person(&state, &user).await?;
    let profile = if body.consent_data_storage {
        users::give_consent(&mut tx, user.id, Some(peer.ip()), Utc::now()).await?
    } else {
        users::withdraw_consent(&mut tx, user.id, Utc::now()).await?
    };
    tx.commit().await?;
    Ok(axum::Json(profile))
}

/// The person's preferences.
#[utoipa::path(get, path = "/v1/me/preferences", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "Preferences", body = Preferences)))]
async fn get_preferences(
    State(state): State<AppState>,
    Session(user): Session,
) -> Result<axum::Json<Preferences>, Problem> {
    let mut tx = as_person(&state, &user).await?;
    let preferences = users::preferences(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(axum::Json(preferences))
}

/// A change of preferences: absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    /// system, light or dark.
    pub theme: Option<Theme>,
    /// ar, fr or en; null follows the account's locale.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<Lang>>,
    /// In-app notifications.
    pub notifications_enabled: Option<bool>,
    /// E-mail notifications.
    pub email_notifications: Option<bool>,
    /// Accessibility mode.
    pub accessibility_mode: Option<bool>,
}

/// Changes preferences (theme, language, notifications, accessibility).
#[utoipa::path(patch, path = "/v1/me/preferences", tag = "me", security(("bearer" = [])), request_body = PreferencesPatch,
    responses(
        (status = 200, description = "Preferences", body = Preferences),
        (status = 403, description = "No consent to data storage", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn update_preferences(
    State(state): State<AppState>,
    Session(user): Session,
    ApiJson(body): ApiJson<PreferencesPatch>,
) -> Result<axum::Json<Preferences>, Problem> {
    let update = PreferencesUpdate {
        theme: body.theme,
        language: body.language,
        notifications_enabled: body.notifications_enabled,
        email_notifications: body.email_notifications,
        accessibility_mode: body.accessibility_mode,
    };
    let mut tx = as_person(&state, &user).await?;
    let preferences = users::update_preferences(&mut tx, &user, &update).await?;
    tx.commit().await?;
    Ok(axum::Json(preferences))
}

/// Everything the service holds about the person, as one JSON document.
#[utoipa::path(get, path = "/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "The export (a download)", body = Object)))]
async fn export(
    State(state): State<AppState>,
    Session(user): Session,
) -> Result<Response, Problem> {
    let mut conn = state.pool.acquire().await?;
    let doc = privacy::export(&mut conn, user.id, Utc::now()).await?;
    let mut response = axum::Json(doc).into_response();
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"amal-export.json\""),
    );
    Ok(response)
}

/// Deletes the account (right to be forgotten): soft delete and anonymization that keeps
/// the statistics; every session ends.
#[utoipa::path(delete, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 204, description = "Forgotten")))]
async fn delete_me(
    State(state): State<AppState>,
    Session(user): Session,
) -> Result<StatusCode, Problem> {
    // In the engine's role: forgetting erases texts the person may not read themselves
    // (internal ticket comments, decision evidence) and the sign-in links of their address.
    let mut conn = state.pool.acquire().await?;
    privacy::forget(&mut conn, user.id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Conversations

/// Start a conversation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// AUTO (default), RAG or SUPPORT.
    pub mode: Option<Mode>,
    /// ar, fr or en; detected from the first message when absent.
    #[schema(value_type = Option<String>)]
    pub language: Option<Lang>,
}

/// Starts a conversation.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = NewConversation,
    responses(
        (status = 201, description = "Started", body = Conversation),
        (status = 403, description = "No consent to data storage", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn create_conversation(
    State(state): State<AppState>,
    Session(user): Session,
    ApiJson(body): ApiJson<NewConversation>,
) -> Result<(StatusCode, axum::Json<Conversation>), Problem> {
    user.require_consent()?;
    let mode = body.mode.unwrap_or(Mode::Auto);
    let mut tx = as_person(&state, &user).await?;
    let c = conversations::start_on(&mut tx, user.id, mode, body.language).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(c)))
}

/// Paging of the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (1 to 200, default 50).
    pub limit: Option<i64>,
}

fn page_size(limit: Option<i64>, default: i64) -> Result<i64, Problem> {
    let limit = limit.unwrap_or(default);
    if (1..=conversations::MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::validation(format!(
            "limit must be 1 to {}",
            conversations::MAX_PAGE
        )))
    }
}

/// The person's conversations, most recent first.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "Conversations", body = Vec<Conversation>)))]
async fn list_conversations(
    State(state): State<AppState>,
    Session(user): Session,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<axum::Json<Vec<Conversation>>, Problem> {
    let limit = page_size(q.limit, 50)?;
    let mut tx = as_person(&state, &user).await?;
    let list = person::conversations(&mut tx, user.id, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(list))
}

/// Paging of a conversation's messages.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `older` cursor of the previous page: messages before it.
    pub before: Option<String>,
    /// At most this many messages (1 to 200, default 50).
    pub limit: Option<i64>,
}

/// A conversation with a page of its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// The conversation.
    pub conversation: Conversation,
    /// Messages, oldest first.
    pub messages: Vec<PublicMessage>,
    /// Pass as `before` for older messages; null at the beginning.
    pub older: Option<String>,
}

/// A conversation with its newest messages (or those before `before`).
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"), PageQuery),
    responses(
        (status = 200, description = "The conversation", body = ConversationPage),
        (status = 404, description = "No such conversation of yours", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn get_conversation(
    State(state): State<AppState>,
    Session(user): Session,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<ConversationPage>, Problem> {
    let limit = page_size(q.limit, 50)?;
    let before = q.before.as_deref().map(str::parse::<Cursor>).transpose()?;
    let mut tx = as_person(&state, &user).await?;
    let conversation = person::own_conversation(&mut tx, user.id, id).await?;
    let page = conversations::page(&mut tx, id, before, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(ConversationPage {
        conversation,
        messages: page.messages.iter().map(PublicMessage::from).collect(),
        older: page.older.map(|c| c.to_string()),
    }))
}

/// A message from the person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The text (1 to 10,000 characters after trimming).
    pub content: String,
    /// An idempotency key: a retry with the same key returns the stored turn.
    pub client_message_id: Option<String>,
}

/// The ticket a turn handed the conversation over to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    /// TKT-YYYY-NNNNNN: the reference to give when calling.
    pub ticket_number: String,
    /// Category code.
    pub category: String,
    /// low, medium, high or urgent.
    pub priority: String,
    /// Status code.
    pub status: String,
}

/// One turn: the person's message and the reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    /// The person's message as stored.
    pub user_message: PublicMessage,
    /// The assistant's reply: the answer with its citations, a clarifying question, the
    /// safety message or the hand-over notice.
    pub reply: PublicMessage,
    /// rag (answered from the knowledge base) or support (a person takes over).
    pub decision: String,
    /// Stable reason code of the decision.
    pub reason_code: Option<String>,
    /// True when the reply is the safety message of the crisis gate.
    pub safety: bool,
    /// The ticket, when a person takes over.
    pub ticket: Option<TicketView>,
    /// True when this is a retry answered from the stored turn.
    pub replayed: bool,
}

/// Posts a message and returns the turn. The crisis gate runs first, always.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    request_body = PostMessage,
    responses(
        (status = 201, description = "The turn", body = TurnView),
        (status = 200, description = "A retry: the stored turn", body = TurnView),
        (status = 404, description = "No such conversation of yours", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Closed conversation, or key reused for other content (never for a message in crisis: it reopens the conversation, or is posted as a message of its own)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Content breaks a rule", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn post_message(
    State(state): State<AppState>,
    OwnConversation { user, id }: OwnConversation,
    ApiJson(body): ApiJson<PostMessage>,
) -> Result<(StatusCode, axum::Json<TurnView>), Problem> {
    if let Err(e) = user.require_consent() {
        // Nothing is stored without consent, but a person in crisis still gets the safety
        // message with the crisis numbers, in the language they wrote in.
        let mut problem = Problem::from(e);
        if let Some(safety) = state.engine.safety_reply(&body.content).await {
            problem.detail = format!("{}\n\n{safety}", problem.detail);
        }
        return Err(problem);
    }
    let content = MessageContent::parse(&body.content)?;
    let started = Instant::now();
    let turn_state = |s: &'static str| TurnState {
        conversation_id: id,
        state: s,
        client_message_id: body.client_message_id.clone(),
    };
    let _slot = state
        .turns
        .acquire()
        .await
        .map_err(|e| Problem::internal(&e))?;
    state.hub.publish_state(turn_state("processing"));
    let turn = crate::turn::post_message_in(
        &state.pool,
        &state.engine,
        Scope::Person(user.id),
        id,
        body.client_message_id.as_deref(),
        &content,
    )
    .await;
    let turn = match turn {
        Ok(t) => t,
        Err(e) => {
            state.hub.publish_state(turn_state("failed"));
            return Err(e.into());
        }
    };
    state.hub.publish_state(turn_state("answered"));
    state.metrics.turn(&turn, started.elapsed().as_secs_f64());
    let status = if turn.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let safety = turn.is_safety_reply();
    let reason_code = turn.decision.reason_code.clone();
    Ok((
        status,
        axum::Json(TurnView {
            user_message: PublicMessage::from(&turn.user_message),
            reply: PublicMessage::from(&turn.reply),
            decision: turn.decision.decision.clone(),
            safety,
            reason_code,
            ticket: turn.ticket.map(|t| TicketView {
                ticket_number: t.ticket_number,
                category: t.category,
                priority: t.priority,
                status: t.status,
            }),
            replayed: turn.replayed,
        }),
    ))
}

/// Closes a conversation.
#[utoipa::path(post, path = "/v1/conversations/{id}/close", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Closed", body = Conversation),
        (status = 404, description = "No such conversation of yours", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn close_conversation(
    State(state): State<AppState>,
    OwnConversation { id, user }: OwnConversation,
) -> Result<axum::Json<Conversation>, Problem> {
    let mut tx = as_person(&state, &user).await?;
    let conversation = conversations::close(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(conversation))
}

/// Live updates of a conversation (Server-Sent Events): `event: message` for every new
/// message (the person's, the assistant's, staff public replies; the id is a cursor for
/// `Last-Event-ID`), `event: state` for processing states, `event: conversation` for status
/// changes, and `event: end` (then the stream closes) when the session ends: signed out,
/// expired, account deleted, disabled or made a staff account.
#[utoipa::path(get, path = "/v1/conversations/{id}/events", tag = "conversations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this message")),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such conversation of yours", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The session holds as many live streams as it may", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The instance holds as many live streams as it can", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn conversation_events(
    State(state): State<AppState>,
    OwnConversation { id, user }: OwnConversation,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<Cursor>)
        .transpose()?;
    // Without a resume point the stream starts after the newest message, read before the
    // response goes out: a message the client posts once connected is then always sent.
    let after = match after {
        Some(cursor) => Some(cursor),
        None => {
            let mut tx = as_person(&state, &user).await?;
            let latest = person::latest_cursor(&mut tx, id).await?;
            tx.commit().await?;
            latest
        }
    };
    let slot = state
        .hub
        .claim(&user, id)
        .map_err(|refusal| match refusal {
            sse::StreamRefusal::Session => Problem {
                retry_after_seconds: Some(15),
                ..Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-streams",
                    format!(
                        "this session has {} live streams open already; close one first",
                        sse::STREAMS_PER_SESSION
                    ),
                )
            },
            sse::StreamRefusal::Overall => Problem {
                retry_after_seconds: Some(15),
                ..Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too-many-streams",
                    "the service holds as many live streams as it can; try again shortly",
                )
            },
        })?;
    Ok(sse::stream(&state, slot, after).into_response())
}

/// A message checked by the crisis gate alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyCheck {
    /// The text (1 to 10,000 characters after trimming).
    pub content: String,
}

/// What the crisis gate says of a message, stored nowhere.
#[derive(Debug, Serialize, ToSchema)]
pub struct SafetyView {
    /// True when the gate fired: `reply` is then the safety message.
    pub crisis: bool,
    /// The safety message in the language the person wrote in, with the crisis line and the
    /// emergency number; `None` when the gate did not fire.
    pub reply: Option<String>,
    /// The crisis line.
    pub crisis_line: String,
    /// The emergency number.
    pub emergency_number: String,
}

/// The crisis fallback: the crisis gate on a message, with no session, no consent and nothing
/// stored, for a person who has not signed in or consented yet (a client calls it whenever
/// storing is refused). The safety message when the gate fires; the numbers always.
#[utoipa::path(post, path = "/v1/safety", tag = "conversations",
    request_body = SafetyCheck,
    responses(
        (status = 200, description = "The gate's answer", body = SafetyView),
        (status = 422, description = "Content breaks a rule", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn safety(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SafetyCheck>,
) -> Result<axum::Json<SafetyView>, Problem> {
    let content = MessageContent::parse(&body.content)?;
    let reply = state.engine.safety_reply(content.as_str()).await;
    let numbers = state.engine.numbers();
    Ok(axum::Json(SafetyView {
        crisis: reply.is_some(),
        reply,
        crisis_line: numbers.crisis_line.clone(),
        emergency_number: numbers.emergency_number.clone(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Operations

/// Liveness: 200 once the server is up (it starts serving only after migrating).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Object)))]
async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the database answers within two seconds, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "The database does not answer", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Value>, Problem> {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(std::time::Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Ok(axum::Json(json!({ "status": "ready" }))),
        _ => Err(Problem {
            retry_after_seconds: Some(5),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer",
            )
        }),
    }
}

/// Prometheus metrics: the classic text format (0.0.4), or OpenMetrics when the scraper's
/// `Accept` asks for it. Only for clients on this machine, or with the configured metrics token.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain", body = String),
        (status = 403, description = "Not from this machine and without the metrics token", body = ProblemBody, content_type = "application/problem+json"),
    ))]
async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !metrics_allowed(state.config.metrics_token.as_deref(), peer, &headers) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are for this machine, or for clients with the metrics token",
        )
        .into_response();
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode_openmetrics(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode(),
        )
            .into_response()
    }
}

/// With a token configured, the request must carry it as a bearer token (compared in constant
/// time); without one, it must come from this machine.
fn metrics_allowed(token: Option<&str>, peer: SocketAddr, headers: &HeaderMap) -> bool {
    match token {
        Some(expected) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use sha2::{Digest, Sha256};
                // Equal-length digests compared without an early exit.
                let (a, b) = (Sha256::digest(given.trim()), Sha256::digest(expected));
                a.iter()
                    .zip(b.iter())
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                    == 0
            }),
        None => peer.ip().is_loopback(),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
// Only documents the route: `server::router` serves the built document itself.
pub async fn openapi_document() -> StatusCode {
    StatusCode::NOT_FOUND
}
