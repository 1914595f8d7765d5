//! Rate limits per client IP address and per session: token buckets that hold a minute's
//! allowance and refill continuously. A refused request gets 429 with `Retry-After`.
//!
//! The buckets live in the process: with several instances behind a load balancer each
//! instance enforces the limits on the requests it sees.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::problem::Problem;

/// Whose allowance a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    /// A hash of the bearer token: the limiter never keeps tokens.
    Session(u64),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The limiter: requests per minute per IP address and per session (0 switches a limit off).
#[derive(Debug)]
pub struct RateLimiter {
    per_ip_per_minute: u32,
    per_session_per_minute: u32,
    buckets: Mutex<HashMap<Key, Bucket>>,
    hasher: std::collections::hash_map::RandomState,
    calls: AtomicU64,
}

/// Buckets untouched this long are full again and can be dropped.
const IDLE: Duration = Duration::from_secs(120);

impl RateLimiter {
    /// A limiter with these allowances.
    pub fn new(per_ip_per_minute: u32, per_session_per_minute: u32) -> Self {
        RateLimiter {
            per_ip_per_minute,
            per_session_per_minute,
            buckets: Mutex::new(HashMap::new()),
            hasher: Default::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// Takes one token from `key`'s bucket or says how many seconds until one is there.
    fn take(&self, key: Key, per_minute: u32, now: Instant) -> Result<(), u64> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil() as u64)
        }
    }

    /// Checks a request from `ip` with `bearer` token (if any).
    pub fn check(&self, ip: IpAddr, bearer: Option<&str>) -> Result<(), u64> {
        let now = Instant::now();
        self.take(Key::Ip(ip), self.per_ip_per_minute, now)?;
        if let Some(token) = bearer {
            let key = Key::Session(self.hasher.hash_one(token));
            self.take(key, self.per_session_per_minute, now)?;
        }
        Ok(())
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Paths that monitoring polls; they are never limited.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// The middleware applying the limits.
pub async fn middleware(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !exempt(request.uri().path())
        && let Err(retry_after) = state.limiter.check(peer.ip(), bearer(request.headers()))
    {
        return Problem::rate_limited(retry_after).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_say_when() {
        let limiter = RateLimiter::new(3, 0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take(Key::Ip(ip), 3, t0).unwrap();
        }
        assert_eq!(limiter.take(Key::Ip(ip), 3, t0), Err(20));
        assert!(
            limiter
                .take(Key::Ip(ip), 3, t0 + Duration::from_secs(20))
                .is_ok()
        );
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(limiter.take(Key::Ip(other), 3, t0).is_ok());
    }
}
