//! Users and the domains on their columns: e-mail addresses, locales, time zones, consent,
//! staff roles.

use sqlx::PgPool;

use super::{assert_violates, assert_violates_domain, staff, user};
use crate::fixtures::TestResult;

#[sqlx::test(migrations = "../migrations")]
async fn email_domain_rejects_invalid_addresses(pool: PgPool) -> TestResult {
    for bad in [
        "not-an-email",
        "a@b",
        "@example.dz",
        "amina@example",
        "amina example@x.dz",
    ] {
        assert_violates_domain(
            user(&pool, bad).await,
            "email_address",
            "chk_email_address_format",
        );
    }
    user(&pool, "first.last+tag@sub.example.dz").await?;
    assert_violates_domain(
        sqlx::query(
            "INSERT INTO magic_links (email, token, expires_at) VALUES ('nope', 't', now() + interval '1 hour')",
        )
        .execute(&pool)
        .await,
        "email_address",
        "chk_email_address_format",
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_email_is_unique(pool: PgPool) -> TestResult {
    user(&pool, "same@example.dz").await?;
    assert_violates(user(&pool, "same@example.dz").await, "users_email_key");
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn locale_domain_accepts_only_the_three_locales(pool: PgPool) -> TestResult {
    for (i, locale) in ["ar-DZ", "fr-FR", "en-US"].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO users (email, password_hash, name, locale) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("ok{i}@example.dz"))
        .bind(locale)
        .execute(&pool)
        .await?;
    }
    for (i, locale) in ["de-DE", "ar", "fr-fr", ""].into_iter().enumerate() {
        let result = sqlx::query(
            "INSERT INTO users (email, password_hash, name, locale) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("bad{i}@example.dz"))
        .bind(locale)
        .execute(&pool)
        .await;
        assert_violates_domain(result, "locale_code", "chk_locale_code_supported");
    }
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn timezone_domain_accepts_iana_names(pool: PgPool) -> TestResult {
    let good = [
        "Africa/Algiers",
        "America/Argentina/Buenos_Aires",
        "UTC",
        "Etc/GMT+1",
        "Europe/Paris",
    ];
    for (i, zone) in good.into_iter().enumerate() {
        let stored: String = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, timezone) VALUES ($1, 'x', 'n', $2) RETURNING timezone::text",
        )
        .bind(format!("tz{i}@example.dz"))
        .bind(zone)
        .fetch_one(&pool)
        .await?;
        assert_eq!(stored, zone);
    }
    for (i, zone) in [
        "Not a zone",
        "Africa/",
        "/Algiers",
        "Africa//Algiers",
        "A/B/C/D",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let result = sqlx::query(
            "INSERT INTO users (email, password_hash, name, timezone) VALUES ($1, 'x', 'n', $2)",
        )
        .bind(format!("badtz{i}@example.dz"))
        .bind(zone)
        .execute(&pool)
        .await;
        assert_violates_domain(result, "timezone_name", "chk_timezone_name_format");
    }
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_consent_requires_a_timestamp(pool: PgPool) -> TestResult {
    let result = sqlx::query(
        "INSERT INTO users (email, password_hash, name, consent_data_storage) VALUES ('c@example.dz', 'x', 'n', true)",
    )
    .execute(&pool)
    .await;
    assert_violates(result, "chk_users_consent");
    sqlx::query(
        "INSERT INTO users (email, password_hash, name, consent_data_storage, consent_timestamp)
         VALUES ('c@example.dz', 'x', 'n', true, now())",
    )
    .execute(&pool)
    .await?;
    // Withdrawing consent later must not require clearing the timestamp.
    sqlx::query("UPDATE users SET consent_data_storage = false WHERE email = 'c@example.dz'")
        .execute(&pool)
        .await?;
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn users_staff_role_is_checked(pool: PgPool) -> TestResult {
    for role in ["agent", "supervisor", "admin"] {
        staff(&pool, &format!("{role}@amal.dz"), role).await?;
    }
    assert_violates(
        staff(&pool, "root@amal.dz", "root").await,
        "chk_users_staff_role",
    );
    assert_violates(
        staff(&pool, "empty@amal.dz", "").await,
        "chk_users_staff_role",
    );
    Ok(())
}
