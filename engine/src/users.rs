//! End users: magic-link sign-in, anonymous sessions, consent, preferences, the export of
//! everything about a person and the right to be forgotten.
//!
//! Tokens (magic links and sessions) are 256-bit random values shown to the client once and
//! stored only as their SHA-256 ([`crate::staff::token_hash`]). A magic link is single use: the
//! one `UPDATE` that marks it used also checks that it is unused and unexpired, so two
//! concurrent verifications cannot both succeed. Staff accounts never get an end-user session
//! (they sign in through the console), and end-user sessions never authenticate staff.
//!
//! Nothing here logs an e-mail address or a message.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::conversations::{CONVERSATION_COLUMNS, Conversation, Message};
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::lang::Lang;
use crate::staff::{ClientInfo, SessionProblem, token_hash};

/// Default lifetime of a magic link.
pub const MAGIC_LINK_TTL_MINUTES: i64 = 15;
/// Default lifetime of an end-user session.
pub const SESSION_TTL_HOURS: i64 = 24 * 30;
/// Expired or revoked sessions are kept this long (for abuse investigations), then deleted.
pub const SESSION_RETENTION_DAYS: i64 = 7;
/// A session's activity time is written at most this often: a write per request would cost
/// more than the information is worth.
const ACTIVITY_RESOLUTION_SECONDS: i64 = 60;
/// What replaces a forgotten person's texts.
pub const REDACTED: &str = "[deleted]";

/// Why an end-user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The e-mail address is malformed.
    #[error("invalid e-mail address (rule: name@domain.tld, at most 255 characters)")]
    InvalidEmail,
    /// The magic link is unknown, used or expired (deliberately not saying which).
    #[error("the sign-in link is invalid, already used or expired; ask for a new one")]
    InvalidLink,
    /// The session token is unknown, expired or revoked.
    #[error("session {0}; sign in again")]
    Session(SessionProblem),
    /// The person has not consented to data storage yet.
    #[error("consent to data storage is required before anything is stored")]
    ConsentRequired,
    /// Anonymous sessions are switched off on this service.
    #[error("anonymous sessions are not available; sign in with an e-mail link")]
    AnonymousDisabled,
    /// No such conversation among the person's own.
    #[error("no conversation {0}")]
    ConversationNotFound(Uuid),
    /// A preference value out of range.
    #[error("invalid preference: {0}")]
    InvalidPreference(String),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A validated, lower-cased e-mail address (the shape `chk_email_address_format` accepts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks the address.
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let email = raw.trim().to_lowercase();
        let local_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
        };
        let valid = email.len() <= 255
            && match email.split_once('@') {
                Some((local, domain)) => {
                    let tld = domain.rsplit_once('.').map(|(_, t)| t).unwrap_or("");
                    local_ok(local)
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && domain
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
                        && tld.len() >= 2
                        && tld.chars().all(|c| c.is_ascii_alphabetic())
                }
                None => false,
            };
        if valid {
            Ok(Email(email))
        } else {
            Err(UserError::InvalidEmail)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Delivers sign-in links. The service has no mail server of its own; the default
/// [`OutboxMailer`] appends them to a file that the mail relay (or an operator) picks up.
pub trait Mailer: Send + Sync {
    /// Sends `link` to `to`.
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()>;
}

/// Appends one JSON line per link (`{"to", "link", "at"}`) to a file created with mode 0600,
/// since it holds live sign-in links.
#[derive(Debug)]
pub struct OutboxMailer {
    path: PathBuf,
    lock: Mutex<()>,
}

impl OutboxMailer {
    /// An outbox writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OutboxMailer {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// Where the links go.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Mailer for OutboxMailer {
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let line = json!({ "to": to.as_str(), "link": link, "at": Utc::now() }).to_string();
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        writeln!(file, "{line}")
    }
}

/// Keeps the links in memory: for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<(String, String)>>,
}

impl MemoryMailer {
    /// The latest link sent to `email`.
    pub fn last_link(&self, email: &str) -> Option<String> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.iter()
            .rev()
            .find(|(to, _)| to == email)
            .map(|(_, l)| l.clone())
    }

    /// How many links were sent.
    pub fn count(&self) -> usize {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Mailer for MemoryMailer {
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.as_str().to_string(), link.to_string()));
        Ok(())
    }
}

fn random_token() -> sqlx::Result<String> {
    let mut raw = [0u8; 32];
    // The kernel's generator does not fail once the system is up; if it ever did, no token
    // may be made from whatever the buffer holds.
    getrandom::fill(&mut raw)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(raw))
}

/// Opens a session row for `user_id` (end user or staff) and returns its bearer token, id and
/// expiry. The token is stored only as [`token_hash`].
pub(crate) async fn insert_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    ttl: Duration,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> sqlx::Result<(String, Uuid, DateTime<Utc>)> {
    let token = random_token()?;
    let expires_at = now + ttl;
    let session_id: Uuid = sqlx::query_scalar(
        "INSERT INTO user_sessions (user_id, refresh_token_hash, ip_address, user_agent, \
                                    created_at, last_activity_at, expires_at) \
         VALUES ($1, $2, $3::inet, $4, $5, $5, $6) RETURNING id",
    )
    .bind(user_id)
    .bind(token_hash(&token))
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(client.user_agent.as_deref())
    .bind(now)
    .bind(expires_at)
    .fetch_one(conn)
    .await?;
    Ok((token, session_id, expires_at))
}

/// Records a magic link for `email` and returns its token for delivery, or `None` when the
/// address belongs to a staff account (staff sign in through the console). Callers answer the
/// same either way, so the answer says nothing about which addresses have accounts.
pub async fn request_magic_link(
    conn: &mut PgConnection,
    email: &Email,
    ttl_minutes: i64,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<Option<String>, UserError> {
    let staff: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND staff_role IS NOT NULL)",
    )
    .bind(email.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if staff {
        return Ok(None);
    }
    let token = random_token()?;
    sqlx::query(
        "INSERT INTO magic_links (email, token, expires_at, ip_address, user_agent, created_at) \
         VALUES ($1, $2, $3, $4::inet, $5, $6)",
    )
    .bind(email.as_str())
    .bind(token_hash(&token))
    .bind(now + Duration::minutes(ttl_minutes))
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(client.user_agent.as_deref())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Some(token))
}

/// A new end-user session: the bearer token is shown once and stored as a hash.
#[derive(Debug, Clone, Serialize)]
pub struct NewSession {
    /// The bearer token (64 hex characters).
    pub token: String,
    /// `user_sessions.id`.
    pub session_id: Uuid,
    /// The end user.
    pub user_id: Uuid,
    /// End of the session's lifetime.
    pub expires_at: DateTime<Utc>,
    /// Whether the person has consented to data storage.
    pub consent_data_storage: bool,
}

async fn open_session(
    tx: &mut PgConnection,
    user_id: Uuid,
    consent: bool,
    ttl_hours: i64,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<NewSession, UserError> {
    let (token, session_id, expires_at) =
        insert_session(tx, user_id, Duration::hours(ttl_hours), now, client).await?;
    Ok(NewSession {
        token,
        session_id,
        user_id,
        expires_at,
        consent_data_storage: consent,
    })
}

async fn record_consent(
    tx: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
    ip: Option<IpAddr>,
) -> sqlx::Result<()> {
    // The first consent is the one on record; giving it again changes nothing.
    let changed = sqlx::query(
        "UPDATE users SET consent_data_storage = true, consent_timestamp = $2, \
                          consent_ip_address = $3::inet \
          WHERE id = $1 AND NOT consent_data_storage",
    )
    .bind(user_id)
    .bind(now)
    .bind(ip.map(|ip| ip.to_string()))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        audit::record(
            tx,
            &AuditEntry {
                actor: Some(user_id),
                action: "user.consent",
                resource_type: "user",
                resource_id: Some(user_id),
                details: json!({ "consent_data_storage": true, "at": now }),
            },
        )
        .await?;
    }
    Ok(())
}

/// Uses a magic link: marks it used (once), finds or creates the end user of its address and
/// opens a session. `consent` records consent to data storage at the same time.
pub async fn verify_magic_link(
    conn: &mut PgConnection,
    token: &str,
    consent: bool,
    session_ttl_hours: i64,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<NewSession, UserError> {
    let mut tx = conn.begin().await?;
    let email: Option<String> = sqlx::query_scalar(
        "UPDATE magic_links SET used = true, used_at = $2 \
          WHERE token = $1 AND NOT used AND expires_at > $2 RETURNING email::text",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let email = email.ok_or(UserError::InvalidLink)?;
    // The placeholder hash matches no password: end users sign in by link only.
    let (user_id, staff_role, deleted, consented): (Uuid, Option<String>, bool, bool) =
        sqlx::query_as(
            "INSERT INTO users (email, password_hash, name, is_verified, email_verified_at) \
             VALUES ($1, '!magic-link', '', true, $2) \
             ON CONFLICT (email) DO UPDATE SET is_verified = true, \
                 email_verified_at = coalesce(users.email_verified_at, $2) \
             RETURNING id, staff_role, deleted_at IS NOT NULL OR NOT is_active, consent_data_storage",
        )
        .bind(&email)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    if staff_role.is_some() || deleted {
        return Err(UserError::InvalidLink);
    }
    sqlx::query("UPDATE users SET last_login_at = $2, last_login_ip = $3::inet WHERE id = $1")
        .bind(user_id)
        .bind(now)
        .bind(client.ip.map(|ip| ip.to_string()))
        .execute(&mut *tx)
        .await?;
    if consent {
        record_consent(&mut tx, user_id, now, client.ip).await?;
    }
    let session = open_session(
        &mut tx,
        user_id,
        consented || consent,
        session_ttl_hours,
        now,
        client,
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// Opens an anonymous session: an end-user account with no e-mail address. Storing even that
/// account needs consent, so `consent` must be true.
pub async fn anonymous_session(
    conn: &mut PgConnection,
    consent: bool,
    session_ttl_hours: i64,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<NewSession, UserError> {
    if !consent {
        return Err(UserError::ConsentRequired);
    }
    let mut tx = conn.begin().await?;
    let placeholder = format!("anonymous-{}@anonymous.invalid", Uuid::new_v4().simple());
    let user_id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, name, is_anonymous) \
         VALUES ($1, '!anonymous', '', true) RETURNING id",
    )
    .bind(&placeholder)
    .fetch_one(&mut *tx)
    .await?;
    record_consent(&mut tx, user_id, now, client.ip).await?;
    let session = open_session(&mut tx, user_id, true, session_ttl_hours, now, client).await?;
    tx.commit().await?;
    Ok(session)
}

/// The end user a request acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndUser {
    /// `users.id`.
    pub id: Uuid,
    /// `user_sessions.id`.
    pub session_id: Uuid,
    /// Whether the person consented to data storage.
    pub consent: bool,
}

impl EndUser {
    /// Refuses unless the person consented to data storage.
    pub fn require_consent(&self) -> Result<(), UserError> {
        if self.consent {
            Ok(())
        } else {
            Err(UserError::ConsentRequired)
        }
    }
}

/// The account (`users u`) of a session that authenticates an end user: not staff, not
/// deleted, not disabled. One text for sign-in ([`authenticate_for`]) and the re-check of live
/// streams ([`session_is_live`]), so that their rules cannot drift apart.
macro_rules! end_user_account {
    () => {
        "u.staff_role IS NULL AND u.deleted_at IS NULL AND u.is_active"
    };
}

type AuthRow = (
    Uuid,
    Uuid,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    bool,
    bool,
);

/// The end user of a live session token. Staff, deleted and disabled accounts are refused.
pub async fn authenticate(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<EndUser, UserError> {
    authenticate_for(conn, token, None, now).await
}

/// [`authenticate`], and with `conversation_id` also [`own_conversation`]'s check, in one
/// query: the server's conversation routes pay one round trip for both.
pub async fn authenticate_for(
    conn: &mut PgConnection,
    token: &str,
    conversation_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<EndUser, UserError> {
    let row: Option<AuthRow> = sqlx::query_as(
        concat!(
            "SELECT s.id, s.user_id, s.expires_at, s.revoked_at, s.last_activity_at, u.consent_data_storage, \
                    $2::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations c WHERE c.id = $2 AND c.user_id = u.id) \
               FROM user_sessions s JOIN users u ON u.id = s.user_id \
              WHERE s.refresh_token_hash = $1 AND ",
            end_user_account!()
        ),
    )
    .bind(token_hash(token))
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (session_id, user_id, expires_at, revoked_at, last_activity, consent, owns) =
        row.ok_or(UserError::Session(SessionProblem::Unknown))?;
    if revoked_at.is_some() {
        return Err(UserError::Session(SessionProblem::Revoked));
    }
    if expires_at <= now {
        return Err(UserError::Session(SessionProblem::Expired));
    }
    if now - last_activity > Duration::seconds(ACTIVITY_RESOLUTION_SECONDS) {
        sqlx::query("UPDATE user_sessions SET last_activity_at = $2 WHERE id = $1")
            .bind(session_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    match conversation_id {
        Some(id) if !owns => Err(UserError::ConversationNotFound(id)),
        _ => Ok(EndUser {
            id: user_id,
            session_id,
            consent,
        }),
    }
}

/// Ends a session.
pub async fn sign_out(
    conn: &mut PgConnection,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    sqlx::query("UPDATE user_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a session still authenticates its person at `now` as an end user, by the rules of
/// sign-in: not revoked (signed out), not expired, and the account neither deleted, disabled nor
/// a staff account. What a live stream re-checks, since it outlives the request that
/// authenticated it.
pub async fn session_is_live(
    conn: &mut PgConnection,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, UserError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM user_sessions s JOIN users u ON u.id = s.user_id \
          WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND ",
        end_user_account!(),
        ")"
    ))
    .bind(session_id)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// What a person sees of their own account.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Profile {
    /// `users.id`.
    pub id: Uuid,
    /// The e-mail address; `None` for an anonymous account.
    pub email: Option<String>,
    /// ar-DZ, fr-FR or en-US.
    pub locale: String,
    /// Whether the person consented to data storage.
    pub consent_data_storage: bool,
    /// When they consented.
    pub consent_timestamp: Option<DateTime<Utc>>,
    /// An account without an e-mail address.
    pub is_anonymous: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
}

/// The person's profile.
pub async fn profile(conn: &mut PgConnection, user_id: Uuid) -> Result<Profile, UserError> {
    Ok(sqlx::query_as(
        "SELECT id, CASE WHEN is_anonymous THEN NULL ELSE email::text END AS email, \
                locale::text AS locale, consent_data_storage, consent_timestamp, is_anonymous, created_at \
           FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?)
}

/// Records consent to data storage (time and IP address) and returns the profile.
pub async fn give_consent(
    conn: &mut PgConnection,
    user_id: Uuid,
    ip: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<Profile, UserError> {
    let mut tx = conn.begin().await?;
    record_consent(&mut tx, user_id, now, ip).await?;
    let p = profile(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(p)
}

/// The interface theme.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the device.
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

impl Theme {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// A person's preferences.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Preferences {
    /// system, light or dark.
    pub theme: String,
    /// ar-DZ, fr-FR or en-US; `None` follows the account's locale.
    pub language: Option<String>,
    /// In-app notifications.
    pub notifications_enabled: bool,
    /// Notifications by e-mail.
    pub email_notifications: bool,
    /// Larger text, higher contrast, screen-reader hints.
    pub accessibility_mode: bool,
}

/// A change of preferences; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreferencesUpdate {
    /// New theme.
    pub theme: Option<Theme>,
    /// New language; `Some(None)` goes back to following the account's locale.
    pub language: Option<Option<Lang>>,
    /// In-app notifications.
    pub notifications_enabled: Option<bool>,
    /// E-mail notifications.
    pub email_notifications: Option<bool>,
    /// Accessibility mode.
    pub accessibility_mode: Option<bool>,
}

/// The person's preferences (the defaults until they change one; reading stores nothing).
pub async fn preferences(conn: &mut PgConnection, user_id: Uuid) -> Result<Preferences, UserError> {
    Ok(sqlx::query_as(
        "SELECT coalesce(p.theme, 'system') AS theme, p.language_preference::text AS language, \
                coalesce(p.notifications_enabled, true) AS notifications_enabled, \
                coalesce(p.email_notifications, true) AS email_notifications, \
                coalesce(p.accessibility_mode, false) AS accessibility_mode \
           FROM users u LEFT JOIN user_preferences p ON p.user_id = u.id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?)
}

/// Changes preferences. A chosen language also becomes the account's locale, which the
/// assistant falls back to before it has detected a conversation's language.
pub async fn update_preferences(
    conn: &mut PgConnection,
    user: &EndUser,
    update: &PreferencesUpdate,
) -> Result<Preferences, UserError> {
    user.require_consent()?;
    let mut tx = conn.begin().await?;
    let language = update.language.map(|l| l.map(|l| l.locale()));
    sqlx::query(
        "INSERT INTO user_preferences AS p (user_id, theme, language_preference, notifications_enabled, \
                                            email_notifications, accessibility_mode) \
         VALUES ($1, coalesce($2, 'system'), $4, coalesce($5, true), coalesce($6, true), coalesce($7, false)) \
         ON CONFLICT (user_id) DO UPDATE SET \
             theme = coalesce($2, p.theme), \
             language_preference = CASE WHEN $3 THEN $4 ELSE p.language_preference END, \
             notifications_enabled = coalesce($5, p.notifications_enabled), \
             email_notifications = coalesce($6, p.email_notifications), \
             accessibility_mode = coalesce($7, p.accessibility_mode)",
    )
    .bind(user.id)
    .bind(update.theme.map(Theme::as_str))
    .bind(language.is_some())
    .bind(language.flatten())
    .bind(update.notifications_enabled)
    .bind(update.email_notifications)
    .bind(update.accessibility_mode)
    .execute(&mut *tx)
    .await?;
    if let Some(Some(locale)) = language {
        sqlx::query("UPDATE users SET locale = $2 WHERE id = $1")
            .bind(user.id)
            .bind(locale)
            .execute(&mut *tx)
            .await?;
    }
    let p = preferences(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(p)
}

/// What an end user may see of a message: its text and, for the assistant's replies, the
/// cited sources and the ticket reference. Everything else in the metadata (decision
/// internals, the staff author) stays inside the service.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicMessage {
    /// `messages.id`.
    pub id: Uuid,
    /// user, assistant, system or staff (a support worker's reply).
    pub role: String,
    /// The text.
    pub content: String,
    /// The sources an answer is based on (title, source, document id).
    #[schema(value_type = Option<Vec<Object>>)]
    pub citations: Option<Value>,
    /// The support ticket's number when the reply hands over to a human.
    pub ticket_number: Option<String>,
    /// The client's idempotency key for the person's own messages.
    pub client_message_id: Option<String>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Resume position for the live stream and paging.
    pub cursor: String,
}

impl From<&Message> for PublicMessage {
    fn from(m: &Message) -> Self {
        let citations = m
            .metadata
            .get("citations")
            .filter(|c| !c.is_null())
            .map(|c| {
                Value::Array(
                    c.as_array()
                        .map(|a| {
                            a.iter()
                                .map(|c| {
                                    json!({
                                        "document_id": c.get("document_id"),
                                        "title": c.get("title"),
                                        "source": c.get("source"),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            });
        PublicMessage {
            id: m.id,
            role: m.role.clone(),
            content: m.content.clone(),
            citations,
            ticket_number: m
                .metadata
                .get("ticket_number")
                .and_then(Value::as_str)
                .map(str::to_string),
            client_message_id: m.client_message_id.clone(),
            created_at: m.created_at,
            cursor: crate::conversations::Cursor {
                created_at: m.created_at,
                id: m.id,
            }
            .to_string(),
        }
    }
}

/// Refuses unless `conversation_id` is one of the person's own conversations; another
/// person's conversation is reported as missing, so its existence is not revealed.
pub async fn own_conversation(
    conn: &mut PgConnection,
    user_id: Uuid,
    conversation_id: Uuid,
) -> Result<Conversation, UserError> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
    )))
    .bind(conversation_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?
    .ok_or(UserError::ConversationNotFound(conversation_id))
}

/// The person's conversations, most recently active first.
pub async fn conversations(
    conn: &mut PgConnection,
    user_id: Uuid,
    limit: i64,
) -> Result<Vec<Conversation>, UserError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 \
          ORDER BY coalesce(last_message_at, created_at) DESC, id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Messages of a conversation after `after` (all when `None`), oldest first: what the live
/// stream delivers. Only messages of the conversation itself, never ticket comments.
pub async fn messages_after(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    after: Option<crate::conversations::Cursor>,
    limit: i64,
) -> Result<Vec<PublicMessage>, UserError> {
    let rows: Vec<Message> = sqlx::query_as(
        "SELECT id, conversation_id, role, content, metadata, tokens_used, processing_time_ms, \
                client_message_id, created_at \
           FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL \
            AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
          ORDER BY created_at, id LIMIT $4",
    )
    .bind(conversation_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id).unwrap_or_default())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(PublicMessage::from).collect())
}

/// The position of a conversation's newest message, if any.
pub async fn latest_cursor(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> Result<Option<crate::conversations::Cursor>, UserError> {
    let row: Option<(DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT created_at, id FROM messages WHERE conversation_id = $1 \
          ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(created_at, id)| crate::conversations::Cursor { created_at, id }))
}

/// Everything the service holds about the person, as one JSON document: account, consent,
/// preferences, sessions, conversations with their messages, and the tickets about them
/// (without internal comments or the staff working them).
pub async fn export(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Value, UserError> {
    let mut tx = conn.begin().await?;
    // One snapshot for the whole document.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let profile = profile(&mut tx, user_id).await?;
    let prefs = preferences(&mut tx, user_id).await?;
    let sessions: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'created_at', created_at, 'last_activity_at', last_activity_at, \
                'expires_at', expires_at, 'revoked_at', revoked_at, 'ip_address', host(ip_address), \
                'user_agent', user_agent) \
           FROM user_sessions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let consent_ip: Option<String> =
        sqlx::query_scalar("SELECT host(consent_ip_address) FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    let mut conversations_out = Vec::new();
    for c in conversations(&mut tx, user_id, i64::MAX).await? {
        let messages = messages_after(&mut tx, c.id, None, i64::MAX).await?;
        conversations_out.push(json!({
            "id": c.id,
            "title": c.title,
            "mode": c.mode,
            "status": c.status,
            "language": c.language,
            "created_at": c.created_at,
            "last_message_at": c.last_message_at,
            "archived_at": c.archived_at,
            "messages": messages,
        }));
    }
    let tickets: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('ticket_number', ticket_number, 'conversation_id', conversation_id, \
                'subject', subject, 'category', category, 'priority', priority, 'status', status, \
                'created_at', created_at, 'first_response_at', first_response_at, \
                'resolved_at', resolved_at, 'closed_at', closed_at) \
           FROM support_tickets WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(json!({
        "exported_at": now,
        "profile": profile,
        "consent_ip_address": consent_ip,
        "preferences": prefs,
        "sessions": sessions,
        "conversations": conversations_out,
        "tickets": tickets,
    }))
}

/// What forgetting a person changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// Messages whose text was erased.
    pub messages: u64,
    /// Tickets whose texts were erased.
    pub tickets: u64,
    /// Sessions deleted.
    pub sessions: u64,
}

/// The right to be forgotten, in one transaction: the account is soft-deleted and anonymized
/// (placeholder address, no name, no IP addresses), sessions, magic links and preferences are
/// deleted, and every text about the person (messages, conversation titles, ticket subjects,
/// descriptions and comments, decision evidence) is erased. The rows themselves stay, with
/// their dates, categories, priorities and decisions, so the statistics keep their counts.
pub async fn forget(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<ForgetReport, UserError> {
    let mut tx = conn.begin().await?;
    let email: String = sqlx::query_scalar(
        "SELECT email::text FROM users WHERE id = $1 AND staff_role IS NULL AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(UserError::Session(SessionProblem::Revoked))?;
    sqlx::query("DELETE FROM magic_links WHERE email = $1")
        .bind(&email)
        .execute(&mut *tx)
        .await?;
    let sessions = sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM user_preferences WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let messages = sqlx::query(
        "UPDATE messages m SET content = $2, client_message_id = NULL, \
                metadata = m.metadata - 'citations' - 'author_name' \
           FROM conversations c WHERE c.id = m.conversation_id AND c.user_id = $1",
    )
    .bind(user_id)
    .bind(REDACTED)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE conversations SET title = NULL WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE decision_logs d SET evidence = jsonb_strip_nulls(jsonb_build_object( \
                'lang', d.evidence->'lang', 'category', d.evidence->'category', \
                'priority', d.evidence->'priority')) \
           FROM conversations c WHERE c.id = d.conversation_id AND c.user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let tickets = sqlx::query(
        "UPDATE support_tickets SET subject = $2, description = NULL, resolution_notes = NULL \
          WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(REDACTED)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM ticket_comment_edits e USING ticket_comments c, support_tickets t \
          WHERE e.comment_id = c.id AND c.ticket_id = t.id AND t.user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ticket_comments c SET content = $2 FROM support_tickets t \
          WHERE c.ticket_id = t.id AND t.user_id = $1",
    )
    .bind(user_id)
    .bind(REDACTED)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE users SET email = $2, name = '', password_hash = '!deleted', consent_ip_address = NULL, \
                last_login_ip = NULL, is_active = false, deleted_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(format!("deleted-{}@deleted.invalid", user_id.simple()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let report = ForgetReport {
        messages,
        tickets,
        sessions,
    };
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(user_id),
            action: "user.forget",
            resource_type: "user",
            resource_id: Some(user_id),
            details: json!(report),
        },
    )
    .await?;
    // Consoles showing the person's conversations or tickets re-read them.
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::ConversationChanged).with(ChangeKind::TicketChanged),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// Deletes magic links expired or used more than a week ago (`cleanup_expired_magic_links`).
pub async fn cleanup_magic_links(conn: &mut PgConnection) -> Result<i64, UserError> {
    let n: i32 = sqlx::query_scalar("SELECT cleanup_expired_magic_links()")
        .fetch_one(conn)
        .await?;
    Ok(n.into())
}

/// Deletes sessions (end users' and staff's) that expired or were revoked more than
/// `retention_days` ago.
pub async fn expire_sessions(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    retention_days: i64,
) -> Result<u64, UserError> {
    let cutoff = now - Duration::days(retention_days);
    Ok(
        sqlx::query("DELETE FROM user_sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(cutoff)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            Email::parse("  Amina@Example.DZ ").unwrap().as_str(),
            "amina@example.dz"
        );
        for bad in [
            "", "a", "a@b", "a@b.c", "@x.dz", "a b@x.dz", "a@x.d2", "a@.x.dz",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@x.dz", "a".repeat(260))).is_err());
    }
}
