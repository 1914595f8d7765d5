//! End users: magic-link sign-in, anonymous sessions, consent, preferences, the export of
//! everything about a person and the right to be forgotten.
//!
//! Tokens (magic links and sessions) are 256-bit random values shown to the client once and
//! stored only as their SHA-256 ([`crate::sessions::token_hash`]). A magic link is single use: the
//! one `UPDATE` that marks it used also checks that it is unused and unexpired, so two
//! concurrent verifications cannot both succeed. Staff accounts never get an end-user session
//! (they sign in through the console), and end-user sessions never authenticate staff.
//!
//! Nothing here logs an e-mail address or a message.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::events::{self, ChangeKind, ChangeNotice};

use crate::lang::Lang;
use crate::sessions::{self, ClientInfo, SessionProblem, token_hash};

/// Default lifetime of a magic link.
pub const MAGIC_LINK_TTL_MINUTES: i64 = 15;
/// Default lifetime of an end-user session.
pub const SESSION_TTL_HOURS: i64 = 24 * 30;
/// Expired or revoked sessions are kept this long (for abuse investigations), then deleted.
pub const SESSION_RETENTION_DAYS: i64 = 7;
/// A session's activity time is written at most this often: a write per request would cost
/// more than the information is worth.
const ACTIVITY_RESOLUTION_SECONDS: i64 = 60;

/// Why an end-user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The e-mail address is malformed.
    #[error("invalid e-mail address (rule: name@domain.tld, at most 255 characters)")]
    InvalidEmail,
    /// Too many sign-in links were asked for this address lately.
    #[error("too many sign-in links for this address; try again in {retry_after_seconds} s")]
    TooManyLinks {
        /// When the next one may be asked for.
        retry_after_seconds: u64,
    },
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

/// Sign-in links one address may be sent in an hour: enough for a person retrying, too few to
/// flood an inbox.
pub const MAGIC_LINKS_PER_ADDRESS_PER_HOUR: i64 = 5;

/// Records a magic link for `email` and returns its token for delivery, or `None` when the
/// address belongs to a staff account (staff sign in through the console). Callers answer the
/// same either way, so the answer says nothing about which addresses have accounts; a staff
/// address even costs the same work (its link is recorded as already used, so it can never
/// sign in). At most [`MAGIC_LINKS_PER_ADDRESS_PER_HOUR`] links an address, whoever asks.
pub async fn request_magic_link(
    conn: &mut PgConnection,
    email: &Email,
    ttl_minutes: i64,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<Option<String>, UserError> {
    let mut tx = conn.begin().await?;
    // Serializes the requests for one address, so that concurrent ones cannot all pass the
    // count below.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('magic_link:' || $1, 0))")
        .bind(email.as_str())
        .execute(&mut *tx)
        .await?;
    let (recent, oldest, staff): (i64, Option<DateTime<Utc>>, bool) = sqlx::query_as(
        "SELECT count(*), min(created_at), \
                EXISTS (SELECT 1 FROM users WHERE email = $1 AND staff_role IS NOT NULL) \
           FROM magic_links WHERE email = $1 AND created_at > $2",
    )
    .bind(email.as_str())
    .bind(now - Duration::hours(1))
    .fetch_one(&mut *tx)
    .await?;
    if recent >= MAGIC_LINKS_PER_ADDRESS_PER_HOUR {
        let free_at = oldest.unwrap_or(now) + Duration::hours(1);
        return Err(UserError::TooManyLinks {
            retry_after_seconds: (free_at - now).num_seconds().max(1) as u64,
        });
    }
    let token = sessions::random_token()?;
    sqlx::query(
        "INSERT INTO magic_links (email, token, expires_at, ip_address, user_agent, created_at, \
                                  used, used_at) \
         VALUES ($1, $2, $3, $4::inet, $5, $6, $7, CASE WHEN $7 THEN $6 END)",
    )
    .bind(email.as_str())
    .bind(token_hash(&token))
    .bind(now + Duration::minutes(ttl_minutes))
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(client.user_agent.as_deref())
    .bind(now)
    .bind(staff)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((!staff).then_some(token))
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
    let opened = sessions::open(tx, user_id, Duration::hours(ttl_hours), now, client).await?;
    Ok(NewSession {
        token: opened.token,
        session_id: opened.id,
        user_id,
        expires_at: opened.expires_at,
        consent_data_storage: consent,
    })
}

async fn record_consent(
    tx: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
    ip: Option<IpAddr>,
) -> sqlx::Result<()> {
    // Consent already on record is left as it is; consent given again after a withdrawal is a
    // new consent, with its own time, address and audit row.
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
    // The newest link used wins: the address's other links, sent earlier and not used, stop
    // working (a link left in an inbox is a way in).
    sqlx::query("UPDATE magic_links SET used = true, used_at = $2 WHERE email = $1 AND NOT used")
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
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
    sessions::check(revoked_at, expires_at, now).map_err(UserError::Session)?;
    if now - last_activity > Duration::seconds(ACTIVITY_RESOLUTION_SECONDS) {
        sessions::touch(conn, session_id, now).await?;
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

/// Ends a session, and announces it so that the session's live streams close at once (and
/// only they: the person's other sessions stay).
pub async fn sign_out(
    conn: &mut PgConnection,
    session_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    let mut tx = conn.begin().await?;
    sessions::revoke(&mut tx, session_id, now).await?;
    events::notify(
        &mut tx,
        &ChangeNotice::new(ChangeKind::SessionEnded).session(session_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Of `session_ids`, those that still authenticate their person at `now` as an end user, by
/// the rules of [`session_is_live`], in one query: how an instance re-checks the sessions of
/// all its live streams at once.
pub async fn live_sessions(
    conn: &mut PgConnection,
    session_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, UserError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT s.id FROM user_sessions s JOIN users u ON u.id = s.user_id \
          WHERE s.id = ANY($1) AND s.revoked_at IS NULL AND s.expires_at > $2 AND ",
        end_user_account!()
    ))
    .bind(session_ids)
    .bind(now)
    .fetch_all(conn)
    .await?)
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
    Ok(!live_sessions(conn, &[session_id], now).await?.is_empty())
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

/// Withdraws consent to data storage without deleting the account: from now on nothing new
/// is stored for the person (the turn refuses and still answers a crisis with the safety
/// message) until they give it again. What is already stored stays until they delete the
/// account or retention removes it.
pub async fn withdraw_consent(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Profile, UserError> {
    let mut tx = conn.begin().await?;
    let changed = sqlx::query(
        "UPDATE users SET consent_data_storage = false, consent_withdrawn_at = $2 \
          WHERE id = $1 AND consent_data_storage",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: Some(user_id),
                action: "user.consent_withdrawn",
                resource_type: "user",
                resource_id: Some(user_id),
                details: json!({ "consent_data_storage": false, "at": now }),
            },
        )
        .await?;
    }
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

/// Deletes magic links expired or used more than a week ago (`cleanup_expired_magic_links`).
pub async fn cleanup_magic_links(conn: &mut PgConnection) -> Result<i64, UserError> {
    let n: i32 = sqlx::query_scalar("SELECT cleanup_expired_magic_links()")
        .fetch_one(conn)
        .await?;
    Ok(n.into())
}

/// The address of a live end-user account, its row locked for a change that removes the
/// person (forgetting); `None` for staff, deleted or unknown accounts.
pub async fn lock_end_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT email::text FROM users WHERE id = $1 AND staff_role IS NULL AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// Deletes every magic link of an address.
pub async fn delete_magic_links(conn: &mut PgConnection, email: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM magic_links WHERE email = $1")
        .bind(email)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a person's preferences.
pub async fn delete_preferences(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM user_preferences WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The address from which a person consented, as their export shows it.
pub async fn consent_ip_address(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT host(consent_ip_address) FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

/// Soft-deletes and anonymizes an account: placeholder address, no name, no IP addresses, no
/// way to sign in. The row stays so that what refers to it keeps its counts.
pub async fn anonymize(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET email = $2, name = '', password_hash = '!deleted', consent_ip_address = NULL, \
                last_login_ip = NULL, is_active = false, deleted_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(format!("deleted-{}@deleted.invalid", user_id.simple()))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
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
