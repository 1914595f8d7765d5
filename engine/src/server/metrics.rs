//! Prometheus metrics: requests and latencies per route, turns, decisions, tickets, SLA
//! breaches and worker runs, served in the text exposition format at `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::AppState;
use crate::workers::Job;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
    reason_code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OneLabel {
    value: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    turns: Family<OneLabel, Counter>,
    turn_latency: Histogram,
    decisions: Family<DecisionLabels, Counter>,
    tickets: Family<OneLabel, Counter>,
    sla_breaches: Family<OneLabel, Counter>,
    worker_runs: Family<OneLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("amal");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let turns = Family::<OneLabel, Counter>::default();
        let turn_latency = latency_histogram();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let tickets = Family::<OneLabel, Counter>::default();
        let sla_breaches = Family::<OneLabel, Counter>::default();
        let worker_runs = Family::<OneLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "turns",
            "Turns answered through the API, by decision (value: rag, support, replayed)",
            turns.clone(),
        );
        registry.register(
            "turn_duration_seconds",
            "Time to answer a turn (decision, reply and ticket), end to end inside the server",
            turn_latency.clone(),
        );
        registry.register(
            "decisions",
            "Decisions made on messages, by decision and reason code",
            decisions.clone(),
        );
        registry.register(
            "turn_tickets",
            "Turns that opened or joined a support ticket, by ticket priority (value)",
            tickets.clone(),
        );
        registry.register(
            "sla_breaches",
            "SLA breaches recorded by the sweeper, by target (value)",
            sla_breaches.clone(),
        );
        registry.register(
            "worker_runs",
            "Background job runs by this instance, by job (value)",
            worker_runs.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            turns,
            turn_latency,
            decisions,
            tickets,
            sla_breaches,
            worker_runs,
        }
    }

    /// Counts an answered turn.
    pub fn turn(&self, turn: &crate::turn::Turn, seconds: f64) {
        let d = &turn.decision;
        let outcome = if turn.replayed {
            "replayed"
        } else {
            d.decision.as_str()
        };
        self.turns
            .get_or_create(&OneLabel {
                value: outcome.into(),
            })
            .inc();
        if turn.replayed {
            return;
        }
        self.turn_latency.observe(seconds);
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: d.decision.clone(),
                reason_code: d.reason_code.clone().unwrap_or_default(),
            })
            .inc();
        if let Some(t) = &turn.ticket {
            self.tickets
                .get_or_create(&OneLabel {
                    value: t.priority.clone(),
                })
                .inc();
        }
    }

    /// Counts a worker run and, for the sweeper, the breaches it recorded.
    pub fn worker_run(&self, job: Job, result: &Value) {
        self.worker_runs
            .get_or_create(&OneLabel {
                value: job.as_str().into(),
            })
            .inc();
        if job == Job::SlaSweep {
            for (target, key) in [
                ("first_response", "first_response_breaches"),
                ("resolution", "resolution_breaches"),
            ] {
                let n = result.get(key).and_then(Value::as_u64).unwrap_or(0);
                self.sla_breaches
                    .get_or_create(&OneLabel {
                        value: target.into(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The metrics in the classic Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
    }
}

/// OpenMetrics text to the classic Prometheus text format, which every scraper and parser
/// reads: counter families are named after their `_total` samples, and there is no `# EOF`.
/// (The two formats differ in nothing else for counters and histograms.)
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The middleware counting requests and timing them by route template (never the raw path,
/// whose ids would make one series per conversation).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A request method as a label: the methods HTTP defines, else `other` (a client may send any
/// token as a method, and every distinct label would be a series of its own).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_fold_into_one_label() {
        let odd = axum::http::Method::from_bytes(b"XYZZY").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
    }

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.worker_run(
            Job::SlaSweep,
            &serde_json::json!({ "first_response_breaches": 2 }),
        );
        let text = m.encode();
        assert!(
            text.contains("# TYPE amal_worker_runs_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP amal_worker_runs_total "), "{text}");
        assert!(text.contains("amal_worker_runs_total{value=\"sla_sweep\"} 1\n"));
        assert!(text.contains("amal_sla_breaches_total{value=\"first_response\"} 2\n"));
        assert!(text.contains("# TYPE amal_turn_duration_seconds histogram\n"));
        assert!(!text.contains("# EOF"));
        assert!(m.encode_openmetrics().ends_with("# EOF\n"));
    }
}
