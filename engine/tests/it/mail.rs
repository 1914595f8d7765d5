//! E-mail over SMTP against a local SMTP server the test starts (a small sink speaking the
//! protocol's few commands): sign-in links, reply notices only to people who were away and
//! want them (a link, never the reply), retries with back-off, dead letters, nothing twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

use amal_engine::mail::{self, Mailer, SmtpMailer, SmtpSettings};
use amal_engine::staff;
use amal_engine::tickets::{self, CommentText, Visibility};
use amal_engine::users::Email;

use crate::fixtures::{
    TestResult, base64_decode, end_user, engine_command, own_database_url, staff_account, ticket_at,
};

/// A local SMTP server keeping what it receives; it refuses the first `refuse` transactions
/// with a temporary error (451), as a busy server does.
struct SmtpSink {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
    refuse: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    async fn start(refuse: u32) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(Mutex::new(refuse));
        let (r, f) = (received.clone(), refuse.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, f) = (r.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = session(stream, r, f).await;
                });
            }
        });
        SmtpSink {
            port,
            received,
            refuse,
            task,
        }
    }

    fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            url: format!("smtp://127.0.0.1:{}", self.port),
            from: "Amal <noreply@amal.example>".into(),
        }
    }

    fn mailer(&self) -> Arc<dyn Mailer> {
        Arc::new(SmtpMailer::new(&self.settings()).unwrap())
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn refuse(&self, n: u32) {
        *self.refuse.lock().unwrap() = n;
    }
}

/// A received mail with its body decoded (base64 or quoted-printable, as the client chose).
fn decoded(mail: &str) -> String {
    let Some((head, body)) = mail.split_once("\n\n") else {
        return mail.to_string();
    };
    let lower = head.to_ascii_lowercase();
    let body = if lower.contains("content-transfer-encoding: base64") {
        String::from_utf8(base64_decode(body)).unwrap()
    } else if lower.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    } else {
        body.to_string()
    };
    format!("{head}\n\n{body}")
}

/// One SMTP conversation: greeting, EHLO, MAIL, RCPT, DATA (until a lone dot), QUIT.
async fn session(
    stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<String>>>,
    refuse: Arc<Mutex<u32>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut data: Option<String> = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(body) = data.as_mut() {
            if line == "." {
                received
                    .lock()
                    .unwrap()
                    .push(decoded(&std::mem::take(body)));
                data = None;
                write.write_all(b"250 2.0.0 queued\r\n").await?;
            } else {
                body.push_str(line.strip_prefix('.').unwrap_or(&line));
                body.push('\n');
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
            "MAIL" => {
                let mut n = refuse.lock().unwrap();
                if *n > 0 {
                    *n -= 1;
                    b"451 4.3.0 try again later\r\n"
                } else {
                    b"250 2.1.0 ok\r\n"
                }
            }
            "RCPT" => b"250 2.1.5 ok\r\n",
            "DATA" => {
                data = Some(String::new());
                b"354 end with .\r\n"
            }
            "RSET" | "NOOP" => b"250 ok\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

/// A ticket on the person's conversation and a public reply of staff on it.
async fn staff_reply(
    pool: &PgPool,
    user: Uuid,
    conv: Uuid,
    number: Option<&str>,
    text: &str,
) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let number = match number {
        Some(n) => n.to_string(),
        None => {
            ticket_at(&mut conn, user, Some(conv), "medium", Utc::now())
                .await
                .ticket_number
        }
    };
    let staff = match staff::actor_by_email(&mut conn, "samir@amal.example").await {
        Ok(a) => a,
        Err(_) => staff_account(pool, "samir@amal.example", "agent").await,
    };
    tickets::comment(
        &mut conn,
        &staff,
        &number,
        &CommentText::new(text).unwrap(),
        Visibility::Public,
        Utc::now(),
    )
    .await
    .unwrap();
    number
}

async fn status_of(pool: &PgPool, user: Uuid) -> Vec<(String, i32)> {
    sqlx::query_as(
        "SELECT status, attempts FROM mail_deliveries WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sign_in_link_goes_out_over_smtp_in_the_three_languages() {
    let sink = SmtpSink::start(0).await;
    let mailer = sink.mailer();
    let to = Email::parse("Amina@Example.dz").unwrap();
    let link = "http://127.0.0.1:8080/sign-in?token=abc123";
    tokio::task::spawn_blocking(move || mailer.send_magic_link(&to, link))
        .await
        .unwrap()
        .unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let mail = &got[0];
    assert!(mail.contains("To: amina@example.dz"), "{mail}");
    assert!(mail.contains("From: Amal <noreply@amal.example>"), "{mail}");
    assert!(
        mail.contains("http://127.0.0.1:8080/sign-in?token=abc123"),
        "{mail}"
    );
    for language in ["رابط دخولك", "Votre lien de connexion", "Your sign-in link"] {
        assert!(mail.contains(language), "{mail}");
    }
    // A bad sender is named, not sent with.
    let bad = SmtpSettings {
        from: "not an address".into(),
        ..sink.settings()
    };
    let err = SmtpMailer::new(&bad).unwrap_err();
    assert!(err.contains("AMAL_MAIL_FROM"), "{err}");
    // Credentials never appear in what is printed of the settings.
    let secret = SmtpSettings {
        url: "smtps://user:hunter2@mail.example:465".into(),
        from: "a@b.dz".into(),
    };
    assert_eq!(secret.server(), "smtps://mail.example:465");
    assert!(!format!("{secret:?}").contains("hunter2"));
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_sign_in_link_is_retried_then_left_as_a_dead_letter_without_the_link(
    pool: PgPool,
) -> TestResult {
    // Busy twice, then accepting: delivered on the third attempt, once.
    let sink = SmtpSink::start(2).await;
    let to = Email::parse("amina@example.dz")?;
    let quick = [
        Duration::from_millis(20),
        Duration::from_millis(20),
        Duration::from_millis(20),
    ];
    mail::deliver_magic_link(
        sink.mailer(),
        pool.clone(),
        to.clone(),
        "http://x/sign-in?token=first".into(),
        &quick,
    )
    .await;
    assert_eq!(sink.received().len(), 1);
    // Busy for longer than the retries last: a dead letter, which holds no link.
    sink.refuse(10);
    mail::deliver_magic_link(
        sink.mailer(),
        pool.clone(),
        to,
        "http://x/sign-in?token=second".into(),
        &quick,
    )
    .await;
    assert_eq!(sink.received().len(), 1);
    let (kind, recipient, status, attempts, error): (String, String, String, i32, String) =
        sqlx::query_as("SELECT kind, recipient, status, attempts, last_error FROM mail_deliveries")
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        (kind.as_str(), recipient.as_str(), status.as_str(), attempts),
        ("magic_link", "amina@example.dz", "dead", 4)
    );
    assert!(
        error.contains("451") || error.contains("try again"),
        "{error}"
    );
    let everything: String =
        sqlx::query_scalar("SELECT row_to_json(d)::text FROM mail_deliveries d")
            .fetch_one(&pool)
            .await?;
    assert!(!everything.contains("token"), "{everything}");
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_staff_reply_to_someone_away_sends_one_notice_with_a_link_and_never_the_text(
    pool: PgPool,
) -> TestResult {
    let sink = SmtpSink::start(0).await;
    let (user, conv) = end_user(&pool, "amina@example.dz").await;
    sqlx::query("INSERT INTO user_preferences (user_id, language_preference) VALUES ($1, 'fr-FR')")
        .bind(user)
        .execute(&pool)
        .await?;
    let secret = "Votre rendez-vous est demain à 10 h au centre de Bab El Oued";
    let number = staff_reply(&pool, user, conv, None, secret).await;

    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent, run.retried, run.dead), (1, 1, 0, 0));
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("http://amal.example/?lang=fr"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("To: amina@example.dz"));
    assert!(
        !got[0].contains("rendez-vous") && !got[0].contains("Bab El Oued"),
        "{}",
        got[0]
    );

    // Again, and another reply while still away: nothing more (one notice per absence).
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent), (0, 0));
    staff_reply(&pool, user, conv, Some(&number), "Encore un mot.").await;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent), (0, 0));
    assert_eq!(sink.received().len(), 1);

    // Connected (a live stream's session): the next reply is seen live, no e-mail.
    let session: Uuid = sqlx::query_scalar(
        "INSERT INTO user_sessions (user_id, refresh_token_hash, expires_at) \
         VALUES ($1, 'h', now() + interval '1 day') RETURNING id",
    )
    .bind(user)
    .fetch_one(&pool)
    .await?;
    let mut conn = pool.acquire().await?;
    amal_engine::sessions::mark_live(&mut conn, &[session], Utc::now()).await?;
    staff_reply(&pool, user, conv, Some(&number), "Je suis là.").await;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent), (0, 0));

    // Away again (the connection lapsed before the reply): a new absence, a new notice.
    sqlx::query("UPDATE mail_deliveries SET created_at = created_at - interval '1 hour'")
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE user_sessions SET live_until = now() - interval '1 minute' WHERE id = $1")
        .bind(session)
        .execute(&pool)
        .await?;
    staff_reply(&pool, user, conv, Some(&number), "Vous êtes là ?").await;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent), (1, 1));
    assert_eq!(sink.received().len(), 2);

    // E-mail notifications off: no notice; an anonymous person has no address to write to.
    sqlx::query("UPDATE user_preferences SET email_notifications = false WHERE user_id = $1")
        .bind(user)
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE user_sessions SET live_until = now() - interval '1 minute' WHERE id = $1")
        .bind(session)
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM mail_deliveries")
        .execute(&pool)
        .await?;
    staff_reply(&pool, user, conv, Some(&number), "Dernier mot.").await;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!(run.queued, 0);

    // Forgetting the person deletes what the mail module held about them.
    sqlx::query("UPDATE user_preferences SET email_notifications = true WHERE user_id = $1")
        .bind(user)
        .execute(&pool)
        .await?;
    staff_reply(&pool, user, conv, Some(&number), "Un autre.").await;
    assert_eq!(mail::queue_notices(&mut conn, Utc::now()).await?, 1);
    amal_engine::privacy::forget(&mut conn, user, Utc::now()).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_deliveries")
        .fetch_one(&pool)
        .await?;
    assert_eq!(left, 0);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn a_failing_notice_backs_off_then_becomes_a_dead_letter_and_a_stale_claim_is_not_resent(
    pool: PgPool,
) -> TestResult {
    let sink = SmtpSink::start(100).await;
    let (user, conv) = end_user(&pool, "yacine@example.dz").await;
    staff_reply(&pool, user, conv, None, "Bonjour").await;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.queued, run.sent, run.retried), (1, 0, 1));
    // Backed off: not due again at once.
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.sent, run.retried, run.dead), (0, 0, 0));
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM mail_deliveries",
    )
    .fetch_one(&pool)
    .await?;
    assert!((20.0..=31.0).contains(&wait), "first back-off {wait} s");
    for _ in 1..mail::NOTICE_ATTEMPTS {
        sqlx::query("UPDATE mail_deliveries SET next_attempt_at = now()")
            .execute(&pool)
            .await?;
        mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    }
    assert_eq!(
        status_of(&pool, user).await,
        [("dead".to_string(), mail::NOTICE_ATTEMPTS)]
    );
    assert!(sink.received().is_empty());
    assert_eq!(mail::notice_backoff(2), chrono::Duration::seconds(120));

    // A delivery claimed by an instance that died mid-send may have gone out: it is not sent
    // again but recorded dead.
    sink.refuse(0);
    sqlx::query(
        "UPDATE mail_deliveries SET status = 'sending', claimed_at = now() - interval '1 hour'",
    )
    .execute(&pool)
    .await?;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.sent, run.dead), (0, 1));
    assert!(sink.received().is_empty());
    let error: String = sqlx::query_scalar("SELECT last_error FROM mail_deliveries")
        .fetch_one(&pool)
        .await?;
    assert!(error.contains("never sent twice"), "{error}");
    let mut conn = pool.acquire().await?;
    assert_eq!(
        mail::dead_letters(&mut conn, Utc::now() - chrono::Duration::days(1)).await?,
        1
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn doctor_says_where_the_mail_goes_and_never_the_password(pool: PgPool) -> TestResult {
    let data = tempfile::tempdir()?;
    let doctor = |envs: &[(&str, &str)]| {
        let mut command = engine_command(data.path(), &["doctor"]);
        command
            .env("DATABASE_URL", own_database_url(&pool))
            .env_remove(mail::SMTP_URL_ENV)
            .env_remove(mail::MAIL_FROM_ENV)
            .envs(envs.iter().copied());
        let out = command.output().expect("run amal-engine doctor");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // Without SMTP settings: the outbox, said so.
    let text = doctor(&[]);
    assert!(text.contains("no SMTP settings"), "{text}");
    assert!(text.contains("magic-link-outbox.jsonl"), "{text}");
    // With them: the server, never the credentials.
    let text = doctor(&[
        (mail::SMTP_URL_ENV, "smtp://user:hunter2@127.0.0.1:2525"),
        (mail::MAIL_FROM_ENV, "Amal <noreply@amal.example>"),
    ]);
    assert!(
        text.contains("sent through smtp://127.0.0.1:2525"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    // A server without a sender is named as the problem.
    let text = doctor(&[(mail::SMTP_URL_ENV, "smtp://127.0.0.1:2525")]);
    assert!(text.contains(mail::MAIL_FROM_ENV), "{text}");
    Ok(())
}

/// On-call members with their language: `astreinte@` by account locale (fr), `oncall@` by
/// preference (en); `daytime@` is not on call.
async fn on_call_members(pool: &PgPool) -> (staff::Actor, staff::Actor) {
    let fr = staff_account(pool, "astreinte@amal.example", "supervisor").await;
    let en = staff_account(pool, "oncall@amal.example", "supervisor").await;
    staff_account(pool, "daytime@amal.example", "supervisor").await;
    sqlx::query("UPDATE users SET locale = 'fr-FR' WHERE id = $1")
        .bind(fr.id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO user_preferences (user_id, language_preference) VALUES ($1, 'en-US')")
        .bind(en.id)
        .execute(pool)
        .await
        .unwrap();
    for id in [fr.id, en.id] {
        sqlx::query(
            "INSERT INTO staff_profiles (user_id, languages, on_call) VALUES ($1, '{ar}', true)",
        )
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }
    (fr, en)
}

fn to_of(mail: &str) -> &str {
    mail.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .unwrap_or_default()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn on_call_staff_are_alerted_by_email_once_per_ticket_in_their_language_without_the_text(
    pool: PgPool,
) -> TestResult {
    use amal_engine::config::{RoutingMode, RoutingSettings};
    use amal_engine::conversations::MessageContent;
    use amal_engine::routing;

    let sink = SmtpSink::start(0).await;
    let (fr, _en) = on_call_members(&pool).await;
    let settings = RoutingSettings {
        mode: RoutingMode::Assign,
        ..RoutingSettings::default()
    };
    let mut engine = crate::fixtures::engine();
    engine.routing = settings;

    // A person in crisis at night: nobody online, the ticket finds nobody.
    let conv = crate::fixtures::new_conversation(&pool, "night@example.dz").await;
    let secret = "bghit nmout, rani wahdi f dar";
    let turn = amal_engine::turn::post_message(
        &pool,
        &engine,
        conv,
        None,
        &MessageContent::parse(secret)?,
    )
    .await?;
    assert!(turn.is_safety_reply());
    let crisis = turn.ticket.unwrap();
    let mut conn = pool.acquire().await?;
    tickets::comment(
        &mut conn,
        &fr,
        &crisis.ticket_number,
        &CommentText::new("Note interne : antécédents connus")?,
        Visibility::Internal,
        Utc::now(),
    )
    .await?;

    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.sent, run.dead, run.skipped), (2, 0, 0), "{run:?}");
    let got = sink.received();
    let fr_mail = got
        .iter()
        .find(|m| to_of(m) == "astreinte@amal.example")
        .unwrap();
    let en_mail = got
        .iter()
        .find(|m| to_of(m) == "oncall@amal.example")
        .unwrap();
    for (mail, facts) in [
        (
            fr_mail,
            [
                "Subject: Amal, astreinte : ticket de crise",
                "Priorité: urgent",
                "Catégorie: crisis",
                "Langue: arabe",
                "En attente depuis: moins d'une minute",
            ],
        ),
        (
            en_mail,
            [
                "Subject: Amal on call: crisis ticket",
                "Priority: urgent",
                "Category: crisis",
                "Language: Arabic",
                "Waiting for: under a minute",
            ],
        ),
    ] {
        assert!(mail.contains(&crisis.ticket_number), "{mail}");
        for f in facts {
            assert!(mail.contains(f), "{f:?} missing: {mail}");
        }
        // Nothing the person wrote (the crisis ticket's subject is their message), no note.
        for private in ["nmout", "wahdi", "antécédents", "Note interne"] {
            assert!(!mail.contains(private), "{private:?} leaked: {mail}");
        }
    }

    // Routed again and still nobody (an escalation, a hand-back): no second e-mail within the
    // interval, and no second banner while the first is unseen.
    let again = routing::route_now(&mut conn, &settings, crisis.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(
        (again.outcome, again.alerted),
        (routing::Outcome::Nobody, 0)
    );
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!(run.sent, 0);

    // A ticket opened two hours ago by staff, waiting: an alert (not a crisis) with its wait;
    // made urgent by a re-triage, it alerts again at once, as a crisis; taken before the alert
    // went out, that alert is not sent.
    let (user, conv2) = end_user(&pool, "waiting@example.dz").await;
    let opened = Utc::now() - chrono::Duration::minutes(125);
    let waiting = ticket_at(&mut conn, user, Some(conv2), "medium", opened).await;
    routing::route_now(&mut conn, &settings, waiting.id, None, Utc::now()).await?;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!(run.sent, 2);
    let got = sink.received();
    let en_mail = got[2..]
        .iter()
        .find(|m| to_of(m) == "oncall@amal.example")
        .unwrap();
    assert!(
        en_mail.contains("Subject: Amal on call: ticket")
            && en_mail.contains("Waiting for: 2 h 05 min"),
        "{en_mail}"
    );
    tickets::triage(
        &mut conn,
        &fr,
        &waiting.ticket_number,
        &tickets::Triage {
            priority: Some("urgent".into()),
            ..Default::default()
        },
        "suicidal thoughts mentioned on the phone",
        Utc::now(),
    )
    .await?;
    let r = routing::route_now(&mut conn, &settings, waiting.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.alerted, 2, "a crisis alerts again");
    tickets::take(&mut conn, &fr, &waiting.ticket_number, Utc::now()).await?;
    let run = mail::run_notices(&pool, sink.mailer(), "http://amal.example/", 10).await?;
    assert_eq!((run.sent, run.skipped), (0, 2), "{run:?}");
    assert_eq!(sink.received().len(), 4);

    // Alerts by e-mail switched off: the banner only.
    let quiet = RoutingSettings {
        alert_email: false,
        ..settings
    };
    let (user, conv3) = end_user(&pool, "quiet@example.dz").await;
    let third = ticket_at(&mut conn, user, Some(conv3), "high", Utc::now()).await;
    let r = routing::route_now(&mut conn, &quiet, third.id, None, Utc::now())
        .await?
        .unwrap();
    assert_eq!(r.alerted, 2);
    let mails: i64 =
        sqlx::query_scalar("SELECT count(*) FROM mail_deliveries WHERE ticket_id = $1")
            .bind(third.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(mails, 0);
    Ok(())
}
