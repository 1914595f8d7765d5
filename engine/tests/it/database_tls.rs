//! TLS to the database: a private cluster started with `ssl = on` and a certificate signed by a
//! throw-away CA (openssl), reached with DATABASE_URL's `sslmode` as a remote server would be.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use amal_engine::config::{Config, DatabaseSource};
use amal_engine::db::{self, embedded::EmbeddedCluster};
use amal_engine::doctor::{self, CheckStatus};

use crate::fixtures::TestResult;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost, in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=amal test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// Whether this connection is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, db::DbError> {
    let pool = db::connect_url(url, 1).await?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(ssl)
}

#[tokio::test]
async fn database_url_tls_modes_work_and_doctor_reports_them() -> TestResult {
    let dir = tempfile::Builder::new().prefix("amal-tls-").tempdir()?;
    let cluster = EmbeddedCluster::new(dir.path().join("cluster"), None)?;
    let url = cluster.start()?;
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs)?;
    certificates(&certs);

    // The server reads its certificate and key from its data directory, owned by the user it
    // runs as (the service user when the tests run as root).
    let pgdata = dir.path().join("cluster/pgdata");
    let owner = std::fs::metadata(pgdata.join("PG_VERSION"))?;
    for name in ["server.crt", "server.key"] {
        let to = pgdata.join(name);
        std::fs::copy(certs.join(name), &to)?;
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid()))?;
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    let plain = db::connect_url(&url, 1).await?;
    sqlx::query("ALTER SYSTEM SET ssl = on")
        .execute(&plain)
        .await?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&plain)
        .await?;
    plain.close().await;
    // The reload is asynchronous: wait until new connections can negotiate TLS.
    let ca = certs.join("ca.crt");
    let verify_full = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let mut ready = false;
    for _ in 0..50 {
        if matches!(encrypted(&verify_full).await, Ok(true)) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server never accepted a verified TLS connection");

    // require: encrypted, certificate not checked.
    assert!(encrypted(&format!("{url}?sslmode=require")).await?);
    // verify-ca: the CA is checked, the name is not.
    assert!(
        encrypted(&format!(
            "{url}?sslmode=verify-ca&sslrootcert={}",
            ca.display()
        ))
        .await?
    );
    // Without sqlx's TLS, prefer falls back to plain text; with it, the connection is encrypted.
    assert!(encrypted(&format!("{url}?sslmode=prefer")).await?);
    // disable: plain text, as before.
    assert!(!encrypted(&format!("{url}?sslmode=disable")).await?);
    // verify-full against the public roots only: our private CA is unknown, so it is refused.
    let err = encrypted(&format!("{url}?sslmode=verify-full"))
        .await
        .expect_err("a certificate of an unknown CA is refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // doctor says the connection is encrypted, on an external URL as a deployment would have.
    let config = Config {
        database: DatabaseSource::External(verify_full.clone()),
        data_dir: dir.path().join("state"),
        pg_bin: None,
    };
    let report = doctor::run(&config).await;
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "database-tls")
        .expect("doctor reports the database connection's TLS");
    assert_eq!(check.status, CheckStatus::Ok, "{check:?}");
    assert!(check.detail.contains("uses TLS"), "{}", check.detail);

    let config = Config {
        database: DatabaseSource::External(format!("{url}?sslmode=disable")),
        ..config
    };
    let report = doctor::run(&config).await;
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "database-tls")
        .unwrap();
    assert!(check.detail.contains("not encrypted"), "{}", check.detail);

    cluster.destroy()?;
    Ok(())
}
