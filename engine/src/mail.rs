//! Delivery of what the service sends by e-mail (sign-in links).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use serde_json::json;

use crate::users::Email;

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

/// Keeps the links in memory: for tests and benchmarks only (feature `test-mailer`), never in
/// the product, where a link must leave the process.
#[cfg(feature = "test-mailer")]
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<(String, String)>>,
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
}
