//! Canned replies: short texts in Arabic, French or English that staff insert into a reply,
//! with placeholders filled in for the ticket at hand. Everyone on staff reads them;
//! supervisors and admins add, edit and remove them (audited as `canned.add`, `canned.edit`,
//! `canned.remove`). This module is the only writer of `canned_replies`.
//!
//! Placeholders: `{{name}}` is the person's name, or a neutral form in the reply's language
//! when it is unknown (the starter replies are written so that both read well: `Hello
//! {{name}},` gives `Hello there,`); `{{crisis_line}}` is the configured crisis line
//! ([`CrisisNumbers`]). Any other `{{...}}` is refused when the reply is saved, so a reply can
//! never reach a person with a raw placeholder in it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::decision::crisis::CrisisNumbers;
use crate::lang::Lang;
use crate::staff::{self, Actor, StaffError, StaffRole};

/// The person's name, or a neutral form when it is unknown.
pub const NAME: &str = "{{name}}";
/// The configured crisis line.
pub const CRISIS_LINE: &str = "{{crisis_line}}";
/// Longest title, in characters (the picker shows it on one line).
pub const TITLE_MAX_CHARS: usize = 80;
/// Longest body, in characters.
pub const BODY_MAX_CHARS: usize = 4_000;

/// Why a canned-reply operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CannedError {
    /// The title is empty or too long.
    #[error("invalid title: {0}")]
    InvalidTitle(String),
    /// The body is empty, too long, or has a placeholder that is not known.
    #[error("invalid text: {0}")]
    InvalidBody(String),
    /// Another reply in the language has this title.
    #[error("a {lang} canned reply titled `{title}` already exists")]
    Duplicate {
        /// The language.
        lang: &'static str,
        /// The title.
        title: String,
    },
    /// No canned reply has this id.
    #[error("no canned reply {0}")]
    NotFound(Uuid),
    /// No ticket has this number.
    #[error("no ticket {0}")]
    NoTicket(String),
    /// Not allowed, or no such staff member.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CannedReply {
    /// `canned_replies.id`.
    pub id: Uuid,
    /// Its language.
    pub lang: Lang,
    /// What the picker shows.
    pub title: String,
    /// The text, with placeholders.
    pub body: String,
    /// Who last changed it (`None`: seeded, or an account since deleted).
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: DateTime<Utc>,
}

/// A title: trimmed, 1 to [`TITLE_MAX_CHARS`] characters, one line.
fn check_title(raw: &str) -> Result<String, CannedError> {
    let title = raw.trim();
    let chars = title.chars().count();
    if chars == 0 {
        return Err(CannedError::InvalidTitle("it is empty".into()));
    }
    if chars > TITLE_MAX_CHARS {
        return Err(CannedError::InvalidTitle(format!(
            "it has {chars} characters; at most {TITLE_MAX_CHARS}"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(CannedError::InvalidTitle(
            "it must be one line without control characters".into(),
        ));
    }
    Ok(title.to_string())
}

/// A body: trimmed, 1 to [`BODY_MAX_CHARS`] characters, only known placeholders.
fn check_body(raw: &str) -> Result<String, CannedError> {
    let body = raw.trim();
    let chars = body.chars().count();
    if chars == 0 {
        return Err(CannedError::InvalidBody("it is empty".into()));
    }
    if chars > BODY_MAX_CHARS {
        return Err(CannedError::InvalidBody(format!(
            "it has {chars} characters; at most {BODY_MAX_CHARS}"
        )));
    }
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start..];
        let Some(end) = after.find("}}") else {
            return Err(CannedError::InvalidBody(
                "`{{` is not closed by `}}`".into(),
            ));
        };
        let placeholder = &after[..end + 2];
        if placeholder != NAME && placeholder != CRISIS_LINE {
            return Err(CannedError::InvalidBody(format!(
                "unknown placeholder `{placeholder}` (known: {NAME}, {CRISIS_LINE})"
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(body.to_string())
}

/// What `{{name}}` becomes when the person's name is unknown: a form that reads well after the
/// greeting the starter replies use.
pub fn neutral_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "بك",
        Lang::Fr => "à vous",
        Lang::En => "there",
    }
}

/// The text to insert: `body` with its placeholders filled for a person called `name`
/// (`None` or blank: the neutral form of `lang`).
pub fn fill(body: &str, lang: Lang, name: Option<&str>, numbers: &CrisisNumbers) -> String {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(neutral_name(lang));
    body.replace(NAME, name)
        .replace(CRISIS_LINE, &numbers.crisis_line)
}

type Row = (Uuid, String, String, String, Option<String>, DateTime<Utc>);

const SELECT: &str = "SELECT c.id, c.lang::text, c.title::text, c.body, u.email::text, \
                             c.updated_at \
                        FROM canned_replies c LEFT JOIN users u ON u.id = c.updated_by";

fn from_row(r: Row) -> CannedReply {
    CannedReply {
        id: r.0,
        lang: r.1.parse().unwrap_or(Lang::En),
        title: r.2,
        body: r.3,
        updated_by: r.4,
        updated_at: r.5,
    }
}

/// The canned replies, of one language or all, by language then title. Every staff member
/// may read them.
pub async fn list(
    conn: &mut PgConnection,
    lang: Option<Lang>,
) -> Result<Vec<CannedReply>, CannedError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE $1::text IS NULL OR c.lang = $1 \
          ORDER BY array_position(ARRAY['ar','fr','en'], c.lang::text), c.title"
    )))
    .bind(lang.map(Lang::code))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One canned reply.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<CannedReply, CannedError> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(from_row).ok_or(CannedError::NotFound(id))
}

fn duplicate(err: sqlx::Error, lang: Lang, title: &str) -> CannedError {
    if violated_constraint(&err) == Some("uq_canned_replies_lang_title") {
        CannedError::Duplicate {
            lang: lang.code(),
            title: title.to_string(),
        }
    } else {
        err.into()
    }
}

async fn audited(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    id: Uuid,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    audit::record(
        conn,
        &AuditEntry {
            actor: Some(actor.id),
            action,
            resource_type: "canned_reply",
            resource_id: Some(id),
            details,
        },
    )
    .await
    .map(drop)
}

/// Adds a canned reply (supervisors and admins; audited as `canned.add`).
pub async fn add(
    conn: &mut PgConnection,
    actor: &Actor,
    lang: Lang,
    title: &str,
    body: &str,
) -> Result<CannedReply, CannedError> {
    staff::require(actor, StaffRole::Supervisor, "writing canned replies")?;
    let title = check_title(title)?;
    let body = check_body(body)?;
    let mut tx = conn.begin().await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO canned_replies (lang, title, body, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(lang.code())
    .bind(&title)
    .bind(&body)
    .bind(actor.id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| duplicate(e, lang, &title))?;
    audited(
        &mut tx,
        actor,
        "canned.add",
        id,
        json!({ "lang": lang.code(), "title": title }),
    )
    .await?;
    let reply = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(reply)
}

/// What an edit changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CannedChange {
    /// A new title.
    pub title: Option<String>,
    /// A new text.
    pub body: Option<String>,
    /// A new language.
    pub lang: Option<Lang>,
}

/// Edits a canned reply (supervisors and admins; audited as `canned.edit` with the title and
/// language before and after, and whether the text changed).
pub async fn edit(
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    change: &CannedChange,
) -> Result<CannedReply, CannedError> {
    staff::require(actor, StaffRole::Supervisor, "writing canned replies")?;
    let title = change.title.as_deref().map(check_title).transpose()?;
    let body = change.body.as_deref().map(check_body).transpose()?;
    let mut tx = conn.begin().await?;
    let before: Option<(String, String, String)> = sqlx::query_as(
        "SELECT lang::text, title::text, body FROM canned_replies WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (old_lang, old_title, old_body) = before.ok_or(CannedError::NotFound(id))?;
    let lang = change
        .lang
        .unwrap_or_else(|| old_lang.parse().unwrap_or(Lang::En));
    let title = title.unwrap_or(old_title.clone());
    let body = body.unwrap_or(old_body.clone());
    if lang.code() == old_lang && title == old_title && body == old_body {
        let reply = get(&mut tx, id).await?;
        tx.commit().await?;
        return Ok(reply);
    }
    sqlx::query(
        "UPDATE canned_replies SET lang = $2, title = $3, body = $4, updated_by = $5, \
                updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(lang.code())
    .bind(&title)
    .bind(&body)
    .bind(actor.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| duplicate(e, lang, &title))?;
    audited(
        &mut tx,
        actor,
        "canned.edit",
        id,
        json!({
            "lang": { "from": old_lang, "to": lang.code() },
            "title": { "from": old_title, "to": title },
            "text_changed": body != old_body,
        }),
    )
    .await?;
    let reply = get(&mut tx, id).await?;
    tx.commit().await?;
    Ok(reply)
}

/// Removes a canned reply (supervisors and admins; audited as `canned.remove` with its
/// language, title and text, so that it can be written again).
pub async fn remove(conn: &mut PgConnection, actor: &Actor, id: Uuid) -> Result<(), CannedError> {
    staff::require(actor, StaffRole::Supervisor, "writing canned replies")?;
    let mut tx = conn.begin().await?;
    let gone: Option<(String, String, String)> = sqlx::query_as(
        "DELETE FROM canned_replies WHERE id = $1 RETURNING lang::text, title::text, body",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (lang, title, body) = gone.ok_or(CannedError::NotFound(id))?;
    audited(
        &mut tx,
        actor,
        "canned.remove",
        id,
        json!({ "lang": lang, "title": title, "body": body }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Reply `id` filled in for ticket `number`: the person's name (users' `name`; the neutral
/// form when there is none) and the crisis line of `numbers`.
pub async fn fill_for_ticket(
    conn: &mut PgConnection,
    id: Uuid,
    number: &str,
    numbers: &CrisisNumbers,
) -> Result<String, CannedError> {
    let reply = get(conn, id).await?;
    let person: Option<Option<String>> = sqlx::query_scalar(
        "SELECT u.name FROM support_tickets t JOIN users u ON u.id = t.user_id \
          WHERE t.ticket_number = upper(btrim($1))",
    )
    .bind(number)
    .fetch_optional(conn)
    .await?;
    let name = person.ok_or_else(|| CannedError::NoTicket(number.to_string()))?;
    Ok(fill(&reply.body, reply.lang, name.as_deref(), numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> CrisisNumbers {
        CrisisNumbers {
            crisis_line: "3033".into(),
            emergency_number: "14".into(),
        }
    }

    #[test]
    fn placeholders_are_filled_and_a_missing_name_is_neutral() {
        let body = "Hello {{name}}, call {{crisis_line}} now.";
        assert_eq!(
            fill(body, Lang::En, Some("Samir"), &numbers()),
            "Hello Samir, call 3033 now."
        );
        assert_eq!(
            fill(body, Lang::En, Some("  "), &numbers()),
            "Hello there, call 3033 now."
        );
        assert_eq!(
            fill("مرحبا {{name}}", Lang::Ar, None, &numbers()),
            "مرحبا بك"
        );
        assert_eq!(
            fill("Bonjour {{name}},", Lang::Fr, None, &numbers()),
            "Bonjour à vous,"
        );
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused_by_name() {
        let e = check_body("Hi {{first_name}}").unwrap_err().to_string();
        assert!(e.contains("{{first_name}}"), "{e}");
        assert!(check_body("Hi {{name").is_err());
        assert!(check_body("   ").is_err());
        assert!(check_body(&"x".repeat(BODY_MAX_CHARS + 1)).is_err());
        assert_eq!(
            check_body(" {{name}} {{crisis_line}} ").unwrap(),
            "{{name}} {{crisis_line}}"
        );
        assert!(check_title(&"t".repeat(TITLE_MAX_CHARS + 1)).is_err());
        assert!(check_title("two\nlines").is_err());
    }
}
