//! What a load test saw: counts, errors by kind, latency quantiles.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{LoadArgs, Shared};

/// Counters the users share.
#[derive(Default)]
pub(super) struct Tally {
    pub connected: AtomicU64,
    pub submit_ok: AtomicU64,
    pub submit_failed: AtomicU64,
    pub refused_503: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub(super) fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().entry(kind.into()).or_default() += 1;
    }

    /// A user's submission failed, for the reason `kind`.
    pub(super) fn failed(&self, kind: impl Into<String>) {
        self.submit_failed.fetch_add(1, Ordering::Relaxed);
        self.error(kind);
    }

    pub(super) fn summary(&self) -> String {
        format!(
            "{} connected, {} ok, {} failed",
            self.connected.load(Ordering::Relaxed),
            self.submit_ok.load(Ordering::Relaxed),
            self.submit_failed.load(Ordering::Relaxed)
        )
    }
}

/// Latencies of one kind of request, in milliseconds.
#[derive(Default)]
pub(super) struct Latencies(Mutex<Vec<f64>>);

impl Latencies {
    pub(super) fn record(&self, took: Duration) {
        self.0.lock().push(took.as_secs_f64() * 1e3);
    }

    fn summary(&self) -> Quantiles {
        let mut all = self.0.lock().clone();
        all.sort_by(f64::total_cmp);
        let q = |p: f64| -> f64 {
            if all.is_empty() {
                return 0.0;
            }
            all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1]
        };
        Quantiles {
            count: all.len(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max: all.last().copied().unwrap_or(0.0),
        }
    }
}

struct Quantiles {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

pub(super) struct Report {
    mode: String,
    users: u32,
    seconds: f64,
    connected: u64,
    submit_ok: u64,
    submit_failed: u64,
    refused_503: u64,
    errors: BTreeMap<String, u64>,
    probes: Vec<(&'static str, Quantiles)>,
}

impl Report {
    pub(super) fn new(args: &LoadArgs, shared: &Shared, took: Duration) -> Report {
        let t = &shared.tally;
        let mut probes = vec![
            ("page", shared.page.summary()),
            ("live_sum", shared.live_sum.summary()),
            ("api_sum", shared.api_sum.summary()),
            ("submit", shared.submit.summary()),
        ];
        if args.viewers > 0 {
            probes.push(("board_reach", shared.board_reach.summary()));
        }
        Report {
            mode: format!("{:?}", args.mode).to_lowercase(),
            users: args.users,
            seconds: took.as_secs_f64(),
            connected: t.connected.load(Ordering::Relaxed),
            submit_ok: t.submit_ok.load(Ordering::Relaxed),
            submit_failed: t.submit_failed.load(Ordering::Relaxed),
            refused_503: t.refused_503.load(Ordering::Relaxed),
            errors: t.errors.lock().clone(),
            probes,
        }
    }

    pub(super) fn to_json(&self) -> Value {
        let mut out = json!({
            "mode": self.mode,
            "users": self.users,
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "users_connected": self.connected,
            "submit_ok": self.submit_ok,
            "submit_failed": self.submit_failed,
            "http_503": self.refused_503,
            "errors": self.errors,
        });
        for (name, q) in &self.probes {
            let round = |v: f64| (v * 100.0).round() / 100.0;
            out[format!("{name}_count")] = json!(q.count);
            out[format!("{name}_p50_ms")] = json!(round(q.p50));
            out[format!("{name}_p90_ms")] = json!(round(q.p90));
            out[format!("{name}_p99_ms")] = json!(round(q.p99));
            out[format!("{name}_max_ms")] = json!(round(q.max));
        }
        out
    }

    pub(super) fn to_text(&self) -> String {
        let mut text = format!(
            "owl load: {} users ({} mode) over {:.0} s\n  users connected  {}\n  submissions      {} ok, {} failed\n  503 answers      {}\n",
            self.users,
            self.mode,
            self.seconds,
            self.connected,
            self.submit_ok,
            self.submit_failed,
            self.refused_503
        );
        if !self.errors.is_empty() {
            text.push_str("  errors\n");
            for (kind, n) in &self.errors {
                text.push_str(&format!("    {n:>6}  {kind}\n"));
            }
        }
        text.push_str(&format!(
            "\n  {:<12} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            "latency ms", "count", "p50", "p90", "p99", "max"
        ));
        for (name, q) in &self.probes {
            text.push_str(&format!(
                "  {name:<12} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                q.count, q.p50, q.p90, q.p99, q.max
            ));
        }
        text
    }
}
