//! Delivery of what the service sends by e-mail: sign-in links, notices that the team
//! replied while the person was away (a link back to the page, never the reply's text), and
//! alerts to on-call staff when a ticket finds nobody who can take it (the ticket's number,
//! priority, category, language and wait, never what the person wrote).
//!
//! Without SMTP settings the [`OutboxMailer`] appends every mail to a file for the mail relay
//! (or an operator); with `AMAL_SMTP_URL` and `AMAL_MAIL_FROM` the [`SmtpMailer`] sends them
//! (lettre). Sign-in links go out at once with a few quick retries ([`deliver_magic_link`]);
//! reply notices and staff alerts are queued in `mail_deliveries` (this module owns it) and
//! delivered by [`run_notices`] with back-off. A delivery that fails for good stays as a dead letter.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::lang::Lang;
use crate::users::Email;

/// The SMTP server's URL: `smtp://host:25` (no TLS), `smtp://user:pass@host:587?tls=required`
/// (STARTTLS), `smtps://user:pass@host:465` (TLS).
pub const SMTP_URL_ENV: &str = "AMAL_SMTP_URL";
/// The sender's address (`Amal <noreply@example.dz>`), required with an SMTP server.
pub const MAIL_FROM_ENV: &str = "AMAL_MAIL_FROM";

/// Delivers what the service sends. The default [`OutboxMailer`] appends it to a file that the
/// mail relay (or an operator) picks up; [`SmtpMailer`] sends it.
pub trait Mailer: Send + Sync {
    /// Sends the sign-in `link` to `to`.
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()>;
    /// Tells `to`, in `lang`, that the team replied, with `link` back to the page (never the
    /// reply itself: an inbox is not a safe place for it).
    fn send_reply_notice(&self, to: &Email, lang: Lang, link: &str) -> std::io::Result<()>;
    /// Alerts an on-call staff member that a ticket found nobody ([`staff_alert_text`]).
    fn send_staff_alert(&self, to: &Email, text: &MailText) -> std::io::Result<()>;
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

impl OutboxMailer {
    fn append(&self, line: &serde_json::Value) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let line = line.to_string();
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

impl Mailer for OutboxMailer {
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()> {
        self.append(&json!({ "to": to.as_str(), "link": link, "at": Utc::now() }))
    }

    fn send_reply_notice(&self, to: &Email, lang: Lang, link: &str) -> std::io::Result<()> {
        self.append(&json!({
            "to": to.as_str(), "kind": "reply_notice", "language": lang_code(lang),
            "link": link, "at": Utc::now()
        }))
    }

    fn send_staff_alert(&self, to: &Email, text: &MailText) -> std::io::Result<()> {
        self.append(&json!({
            "to": to.as_str(), "kind": "staff_alert", "subject": text.subject,
            "body": text.body, "at": Utc::now()
        }))
    }
}

/// Keeps the links in memory: for tests and benchmarks only (feature `test-mailer`), never in
/// the product, where a link must leave the process.
#[cfg(feature = "test-mailer")]
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<(String, String)>>,
    notices: Mutex<Vec<(String, String)>>,
    alerts: Mutex<Vec<(String, MailText)>>,
}

#[cfg(feature = "test-mailer")]
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

    /// The reply notices sent: (to, link).
    pub fn notices(&self) -> Vec<(String, String)> {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The staff alerts sent: (to, text).
    pub fn alerts(&self) -> Vec<(String, MailText)> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(feature = "test-mailer")]
impl Mailer for MemoryMailer {
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.as_str().to_string(), link.to_string()));
        Ok(())
    }

    fn send_reply_notice(&self, to: &Email, _lang: Lang, link: &str) -> std::io::Result<()> {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.as_str().to_string(), link.to_string()));
        Ok(())
    }

    fn send_staff_alert(&self, to: &Email, text: &MailText) -> std::io::Result<()> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.as_str().to_string(), text.clone()));
        Ok(())
    }
}

fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "ar",
        Lang::Fr => "fr",
        Lang::En => "en",
    }
}

fn lang_of(code: &str) -> Lang {
    match code {
        "fr" => Lang::Fr,
        "en" => Lang::En,
        _ => Lang::Ar,
    }
}

/// A mail's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailText {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The sign-in mail, in the three languages: the address alone does not tell the person's.
pub fn magic_link_text(link: &str) -> MailText {
    MailText {
        subject: "Amal: رابط الدخول / lien de connexion / sign-in link".into(),
        body: format!(
            "رابط دخولك إلى أمل، يصلح مرة واحدة ولمدة قصيرة:\n\
             Votre lien de connexion à Amal, valable une fois et peu de temps :\n\
             Your sign-in link to Amal, valid once and for a short time:\n\n\
             {link}\n\n\
             إن لم تطلبه فتجاهل هذه الرسالة.\n\
             Si vous ne l'avez pas demandé, ignorez ce message.\n\
             If you did not ask for it, ignore this e-mail.\n"
        ),
    }
}

/// The notice that the team replied, in the person's language: a link back, never the reply.
pub fn reply_notice_text(lang: Lang, link: &str) -> MailText {
    let (subject, intro, outro) = match lang {
        Lang::Ar => (
            "أمل: رد عليك فريق الدعم",
            "رد عليك شخص من فريق الدعم. اقرأ الرد على أمل:",
            "تصلك هذه الرسالة لأن الإشعارات بالبريد مفعلة؛ يمكنك إيقافها من الصفحة.",
        ),
        Lang::Fr => (
            "Amal : l'équipe vous a répondu",
            "Une personne de l'équipe d'aide vous a répondu. Lisez la réponse sur Amal :",
            "Vous recevez ce message car les notifications par e-mail sont activées ; vous pouvez les couper depuis la page.",
        ),
        Lang::En => (
            "Amal: the team has replied",
            "Someone from the support team has replied to you. Read the reply on Amal:",
            "You get this e-mail because e-mail notifications are on; you can turn them off on the page.",
        ),
    };
    MailText {
        subject: subject.into(),
        body: format!("{intro}\n\n{link}\n\n{outro}\n"),
    }
}

/// What an alert to on-call staff says of its ticket: the facts needed to act, never the
/// subject, the description, the person's messages or internal notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts {
    /// `TKT-YYYY-NNNNNN`.
    pub ticket_number: String,
    /// Priority code.
    pub priority: String,
    /// Category code.
    pub category: String,
    /// The conversation's language.
    pub language: Lang,
    /// Seconds since the ticket was opened.
    pub waited_seconds: i64,
    /// A crisis ticket (category crisis or priority urgent).
    pub crisis: bool,
}

/// A wait in whole minutes and hours: "under a minute", "12 min", "2 h 05 min".
fn waited_words(lang: Lang, seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    if minutes == 0 {
        return match lang {
            Lang::Ar => "أقل من دقيقة",
            Lang::Fr => "moins d'une minute",
            Lang::En => "under a minute",
        }
        .into();
    }
    let (h, m) = (minutes / 60, minutes % 60);
    let (hours, mins) = match lang {
        Lang::Ar => ("سا", "د"),
        Lang::Fr | Lang::En => ("h", "min"),
    };
    if h == 0 {
        format!("{m} {mins}")
    } else {
        format!("{h} {hours} {m:02} {mins}")
    }
}

/// The alert to an on-call member, in their language: which ticket found nobody who can take
/// it (number, priority, category, language, how long it has waited) and what to do. Nothing
/// the person wrote: an inbox is not a safe place for it.
pub fn staff_alert_text(lang: Lang, facts: &AlertFacts) -> MailText {
    let language = |l: Lang| match (lang, l) {
        (Lang::Ar, Lang::Ar) => "العربية",
        (Lang::Ar, Lang::Fr) => "الفرنسية",
        (Lang::Ar, Lang::En) => "الإنجليزية",
        (Lang::Fr, Lang::Ar) => "arabe",
        (Lang::Fr, Lang::Fr) => "français",
        (Lang::Fr, Lang::En) => "anglais",
        (Lang::En, Lang::Ar) => "Arabic",
        (Lang::En, Lang::Fr) => "French",
        (Lang::En, Lang::En) => "English",
    };
    let n = &facts.ticket_number;
    let subject = match (lang, facts.crisis) {
        (Lang::Ar, true) => format!("أمل، المناوبة: تذكرة أزمة {n} لم تجد أحداً"),
        (Lang::Ar, false) => format!("أمل، المناوبة: التذكرة {n} لم تجد أحداً"),
        (Lang::Fr, true) => format!("Amal, astreinte : ticket de crise {n} sans personne"),
        (Lang::Fr, false) => format!("Amal, astreinte : ticket {n} sans personne"),
        (Lang::En, true) => format!("Amal on call: crisis ticket {n} found nobody"),
        (Lang::En, false) => format!("Amal on call: ticket {n} found nobody"),
    };
    let (intro, priority, category, language_label, waited, outro) = match lang {
        Lang::Ar => (
            format!("لا يوجد الآن أحد متصل يستطيع أن يتولى التذكرة {n}."),
            "الأولوية",
            "الفئة",
            "اللغة",
            "مدة الانتظار",
            "افتح لوحة أمل لتتولاها أو لتستدعي أحداً. تصلك هذه الرسالة لأنك في المناوبة؛ \
             لا يُرسل بالبريد شيء مما كتبه الشخص.",
        ),
        Lang::Fr => (
            format!("Personne en ligne ne peut prendre le ticket {n} en ce moment."),
            "Priorité",
            "Catégorie",
            "Langue",
            "En attente depuis",
            "Ouvrez la console Amal pour le prendre ou appeler quelqu'un. Vous recevez ce \
             message car vous êtes d'astreinte ; rien de ce que la personne a écrit n'est \
             envoyé par e-mail.",
        ),
        Lang::En => (
            format!("Nobody online can take ticket {n} right now."),
            "Priority",
            "Category",
            "Language",
            "Waiting for",
            "Open the Amal console to take it or to call someone in. You get this e-mail \
             because you are on call; nothing the person wrote is ever sent by e-mail.",
        ),
    };
    MailText {
        subject,
        body: format!(
            "{intro}\n\n{priority}: {}\n{category}: {}\n{language_label}: {}\n{waited}: {}\n\n{outro}\n",
            facts.priority,
            facts.category,
            language(facts.language),
            waited_words(lang, facts.waited_seconds),
        ),
    }
}

/// SMTP settings: the server's URL and the sender.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `smtp://`, `smtps://` URL (may hold credentials: never printed whole).
    pub url: String,
    /// The sender's address.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("server", &self.server())
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpSettings {
    /// The settings from `AMAL_SMTP_URL` and `AMAL_MAIL_FROM`: `None` without a URL; an error
    /// naming the problem when the URL has no sender.
    pub fn from_env() -> Result<Option<Self>, String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (get(SMTP_URL_ENV), get(MAIL_FROM_ENV)) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(format!(
                "{SMTP_URL_ENV} is set but {MAIL_FROM_ENV} (the sender) is not"
            )),
            (Some(url), Some(from)) => Ok(Some(SmtpSettings { url, from })),
        }
    }

    /// Scheme, host and port, without credentials (for logs and `doctor`).
    pub fn server(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("smtp", &self.url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.split(['/', '?']).next().unwrap_or(host);
        format!("{scheme}://{host}")
    }
}

/// Sends mail through an SMTP server (lettre; STARTTLS or TLS as the URL says).
pub struct SmtpMailer {
    transport: lettre::SmtpTransport,
    from: lettre::message::Mailbox,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .finish()
    }
}

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

impl SmtpMailer {
    /// A mailer for `settings`; an error names a bad URL or sender.
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let transport = lettre::SmtpTransport::from_url(&settings.url)
            .map_err(|e| format!("{SMTP_URL_ENV} ({}): {e}", settings.server()))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = settings
            .from
            .parse()
            .map_err(|e| format!("{MAIL_FROM_ENV} `{}`: {e}", settings.from))?;
        Ok(SmtpMailer {
            transport,
            from,
            server: settings.server(),
        })
    }

    /// Where the mail goes (no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    fn send(&self, to: &Email, text: MailText) -> std::io::Result<()> {
        use lettre::Transport;
        let to: lettre::message::Mailbox = to
            .as_str()
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(text.subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text.body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(format!("SMTP {}: {e}", self.server)))
    }
}

impl Mailer for SmtpMailer {
    fn send_magic_link(&self, to: &Email, link: &str) -> std::io::Result<()> {
        self.send(to, magic_link_text(link))
    }

    fn send_reply_notice(&self, to: &Email, lang: Lang, link: &str) -> std::io::Result<()> {
        self.send(to, reply_notice_text(lang, link))
    }

    fn send_staff_alert(&self, to: &Email, text: &MailText) -> std::io::Result<()> {
        self.send(to, text.clone())
    }
}

/// The waits between the attempts of a sign-in link: quick, since the link expires in minutes.
pub const MAGIC_LINK_RETRIES: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Records a delivery that failed for good (a dead letter). Nothing of the mail's content is
/// kept: for a sign-in link, only that it did not reach `to`.
pub async fn record_dead_letter(
    conn: &mut PgConnection,
    kind: &str,
    to: &Email,
    attempts: i32,
    error: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_deliveries (kind, recipient, dedupe_key, status, attempts, last_error, \
                next_attempt_at, created_at) \
         VALUES ($1, $2, $1 || ':' || gen_random_uuid(), 'dead', $3, $4, $5, $5)",
    )
    .bind(kind)
    .bind(to.as_str())
    .bind(attempts)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sends a sign-in link, retrying after each of `retries`; when every attempt failed, records
/// a dead letter (without the link). Runs after the HTTP answer, so its time tells nothing.
pub async fn deliver_magic_link(
    mailer: Arc<dyn Mailer>,
    pool: PgPool,
    to: Email,
    link: String,
    retries: &[Duration],
) {
    let mut last_error = String::new();
    let attempts = retries.len() + 1;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(retries[attempt - 1]).await;
        }
        let (m, t, l) = (mailer.clone(), to.clone(), link.clone());
        match tokio::task::spawn_blocking(move || m.send_magic_link(&t, &l)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => last_error = e.to_string(),
            Err(e) => last_error = e.to_string(),
        }
        tracing::warn!(
            attempt = attempt + 1,
            "delivering a sign-in link failed: {last_error}"
        );
    }
    tracing::error!("a sign-in link could not be delivered: {last_error}");
    let recorded = match pool.acquire().await {
        Ok(mut conn) => {
            record_dead_letter(
                &mut conn,
                "magic_link",
                &to,
                i32::try_from(attempts).unwrap_or(i32::MAX),
                &last_error,
                Utc::now(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::error!("recording the dead letter failed: {e}");
    }
}

/// Attempts of a reply notice before it becomes a dead letter.
pub const NOTICE_ATTEMPTS: i32 = 5;
/// A delivery claimed this long ago and never finished (its instance died mid-send) is not
/// retried, since it may have gone out: it becomes a dead letter instead, so that nothing is
/// sent twice.
pub const STALE_CLAIM_MINUTES: i64 = 10;

/// The wait before attempt `attempts + 1` of a notice: 30 s, 2 min, 8 min, 32 min.
pub fn notice_backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    chrono::Duration::seconds(30 * 4_i64.pow(exponent))
}

/// What one run of [`run_notices`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeRun {
    /// Notices queued for staff replies the person has not seen live.
    pub queued: u64,
    /// Delivered.
    pub sent: u64,
    /// Failed, to be retried later.
    pub retried: u64,
    /// Failed for good (dead letters), stale claims included.
    pub dead: u64,
    /// Staff alerts not sent: their ticket was taken or closed first.
    pub skipped: u64,
}

/// Queues a notice for each conversation with a staff reply (of the last day) that its person
/// did not see live (no session of theirs was connected when it was committed), when the
/// person has an e-mail address and e-mail notifications on: one notice per conversation and
/// absence (none if one was queued since the person was last connected). The dedupe key
/// (the reply's id) keeps a notice from being queued twice, whoever runs this.
pub async fn queue_notices(conn: &mut PgConnection, now: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO mail_deliveries (kind, recipient, dedupe_key, user_id, conversation_id, language) \
         SELECT DISTINCT ON (c.id) 'reply_notice', u.email::text, 'reply_notice:' || m.id, u.id, c.id, \
                left(coalesce(p.language_preference, u.locale)::text, 2) \
           FROM messages m \
           JOIN conversations c ON c.id = m.conversation_id \
           JOIN users u ON u.id = c.user_id \
           LEFT JOIN user_preferences p ON p.user_id = u.id \
          WHERE m.role = 'staff' AND m.created_at > $1 - interval '1 day' AND m.created_at <= $1 \
            AND NOT u.is_anonymous AND u.deleted_at IS NULL AND u.is_active AND u.staff_role IS NULL \
            AND coalesce(p.email_notifications, true) \
            AND NOT EXISTS (SELECT 1 FROM user_sessions s \
                             WHERE s.user_id = u.id AND s.live_until >= m.created_at) \
            AND NOT EXISTS (SELECT 1 FROM mail_deliveries d \
                             WHERE d.conversation_id = c.id AND d.kind = 'reply_notice' \
                               AND d.created_at > coalesce((SELECT max(s.live_until) FROM user_sessions s \
                                                             WHERE s.user_id = u.id), '-infinity')) \
          ORDER BY c.id, m.created_at DESC \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A ticket alerts an on-call member by e-mail at most once in this many minutes (a ticket that
/// becomes a crisis alerts again at once).
pub const ALERT_MAIL_INTERVAL_MINUTES: i32 = 30;

/// Queues an e-mail alert about `ticket_id` to every active on-call staff member, in their
/// language (their preference, else their account's locale, else Arabic), inside the caller's
/// transaction (the routing decision's, so that an alert goes out only for a decision that was
/// committed). At most one per ticket and member every [`ALERT_MAIL_INTERVAL_MINUTES`], except
/// that a crisis alert follows an earlier non-crisis one at once; concurrent decisions about one
/// ticket share a dedupe key (ticket, member, crisis, interval). Returns how many were queued.
pub async fn queue_staff_alerts(
    tx: &mut PgConnection,
    ticket_id: Uuid,
    crisis: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO mail_deliveries (kind, recipient, dedupe_key, user_id, ticket_id, language, \
                                     next_attempt_at, created_at) \
         SELECT 'staff_alert', u.email::text, \
                'staff_alert:' || CASE WHEN $2 THEN 'crisis' ELSE 'other' END || ':' || $1 || ':' \
                    || u.id || ':' || floor(extract(epoch FROM $3) / ($4 * 60))::bigint, \
                u.id, $1, \
                CASE left(coalesce(pr.language_preference, u.locale)::text, 2) \
                     WHEN 'fr' THEN 'fr' WHEN 'en' THEN 'en' ELSE 'ar' END, \
                $3, $3 \
           FROM users u JOIN staff_profiles p ON p.user_id = u.id AND p.on_call \
           LEFT JOIN user_preferences pr ON pr.user_id = u.id \
          WHERE u.staff_role IS NOT NULL AND u.is_active AND u.deleted_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM mail_deliveries d \
                             WHERE d.kind = 'staff_alert' AND d.ticket_id = $1 AND d.user_id = u.id \
                               AND d.created_at > $3 - make_interval(mins => $4) \
                               AND (d.dedupe_key LIKE 'staff_alert:crisis:%' OR NOT $2)) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(ticket_id)
    .bind(crisis)
    .bind(now)
    .bind(ALERT_MAIL_INTERVAL_MINUTES)
    .execute(tx)
    .await?
    .rows_affected())
}

/// The facts of a staff alert's ticket at `now`, or `None` when the alert has no reason to go
/// out any more (the ticket was taken, or is no longer open).
async fn alert_facts(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<AlertFacts>> {
    let row: Option<AlertRow> = sqlx::query_as(
        "SELECT t.ticket_number, t.priority::text AS priority, t.category::text AS category, \
                coalesce(t.language::text, c.language::text) AS language, t.created_at, \
                (t.category = 'crisis' OR t.priority = 'urgent') AS crisis \
           FROM support_tickets t LEFT JOIN conversations c ON c.id = t.conversation_id \
          WHERE t.id = $1 AND t.assigned_to IS NULL \
            AND t.status IN ('open', 'in_progress', 'pending')",
    )
    .bind(ticket_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| AlertFacts {
        ticket_number: r.ticket_number,
        priority: r.priority,
        category: r.category,
        language: lang_of(r.language.as_deref().unwrap_or("ar")),
        waited_seconds: (now - r.created_at).num_seconds(),
        crisis: r.crisis,
    }))
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    ticket_number: String,
    priority: String,
    category: String,
    language: Option<String>,
    created_at: DateTime<Utc>,
    crisis: bool,
}

/// Queues, then delivers the due notices and staff alerts through `mailer` (at most `batch`,
/// alerts first), each notice linking to `page_url` in the person's language; an alert whose
/// ticket was taken or closed meanwhile is skipped. Each delivery is claimed in its own statement (one
/// worker sends it), then marked sent, retried later with back-off, or dead after
/// [`NOTICE_ATTEMPTS`].
pub async fn run_notices(
    pool: &PgPool,
    mailer: Arc<dyn Mailer>,
    page_url: &str,
    batch: usize,
) -> sqlx::Result<NoticeRun> {
    let mut run = NoticeRun::default();
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    run.queued = queue_notices(&mut conn, now).await?;
    run.dead += sqlx::query(
        "UPDATE mail_deliveries SET status = 'dead', \
                last_error = 'interrupted while sending: not retried, so that it is never sent twice' \
          WHERE status = 'sending' AND claimed_at < $1 - make_interval(mins => $2)",
    )
    .bind(now)
    .bind(i32::try_from(STALE_CLAIM_MINUTES).unwrap_or(10))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    for _ in 0..batch {
        let now = Utc::now();
        // Staff alerts first: a ticket waiting for someone outranks a notice.
        let claimed: Option<(Uuid, String, String, String, Option<Uuid>, i32)> = sqlx::query_as(
            "UPDATE mail_deliveries SET status = 'sending', claimed_at = $1, attempts = attempts + 1 \
              WHERE id = (SELECT id FROM mail_deliveries \
                           WHERE status = 'pending' AND kind IN ('reply_notice', 'staff_alert') \
                             AND next_attempt_at <= $1 \
                           ORDER BY kind = 'staff_alert' DESC, next_attempt_at \
                           LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, recipient, language, ticket_id, attempts",
        )
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((id, kind, recipient, language, ticket_id, attempts)) = claimed else {
            break;
        };
        let lang = lang_of(&language);
        let alert = match (kind.as_str(), ticket_id) {
            ("staff_alert", Some(t)) => match alert_facts(&mut conn, t, now).await? {
                Some(facts) => Some(staff_alert_text(lang, &facts)),
                None => {
                    sqlx::query(
                        "UPDATE mail_deliveries SET status = 'skipped', \
                                last_error = 'the ticket was taken or closed before the alert went out' \
                          WHERE id = $1",
                    )
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                    run.skipped += 1;
                    continue;
                }
            },
            _ => None,
        };
        let link = format!("{page_url}?lang={}", lang_code(lang));
        let outcome = match Email::parse(&recipient) {
            Ok(to) => {
                let m = mailer.clone();
                tokio::task::spawn_blocking(move || match &alert {
                    Some(text) => m.send_staff_alert(&to, text),
                    None => m.send_reply_notice(&to, lang, &link),
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            }
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                e.to_string(),
            )),
        };
        let finished = Utc::now();
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE mail_deliveries SET status = 'sent', sent_at = $2, last_error = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(finished)
                .execute(&mut *conn)
                .await?;
                run.sent += 1;
            }
            Err(e) => {
                let dead =
                    attempts >= NOTICE_ATTEMPTS || e.kind() == std::io::ErrorKind::InvalidInput;
                sqlx::query(
                    "UPDATE mail_deliveries SET status = CASE WHEN $2 THEN 'dead' ELSE 'pending' END, \
                            next_attempt_at = $3, last_error = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(dead)
                .bind(finished + notice_backoff(attempts))
                .bind(e.to_string())
                .execute(&mut *conn)
                .await?;
                if dead {
                    tracing::error!(kind = kind.as_str(), "a mail could not be delivered: {e}");
                    run.dead += 1;
                } else {
                    tracing::warn!(
                        attempts,
                        kind = kind.as_str(),
                        "a mail failed, retried later: {e}"
                    );
                    run.retried += 1;
                }
            }
        }
    }
    Ok(run)
}

/// Deletes what the mail module holds about a person (right to be forgotten): their queued
/// notices and dead letters, by account and by address.
pub async fn forget(conn: &mut PgConnection, user_id: Uuid, email: &str) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM mail_deliveries WHERE user_id = $1 OR recipient = $2")
            .bind(user_id)
            .bind(email)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Dead letters recorded since `since` (for `doctor`).
pub async fn dead_letters(conn: &mut PgConnection, since: DateTime<Utc>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM mail_deliveries WHERE status = 'dead' AND created_at >= $1",
    )
    .bind(since)
    .fetch_one(conn)
    .await
}
