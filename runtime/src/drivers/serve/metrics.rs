//! Prometheus metrics for `/metrics`: requests by protocol and status, a latency histogram,
//! rows scored, batches, and the rows waiting for an instance. Counts only: no value of a
//! request, no caller's name.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    /// (protocol, status code) -> requests answered.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// Rows that entered the sandbox.
    pub rows_scored: AtomicU64,
    /// Rows of requests answered with outputs.
    pub rows_answered: AtomicU64,
    /// Calls to the model's `score`.
    pub batches: AtomicU64,
    /// Instances replaced after a trap or a broken limit.
    pub instances_replaced: AtomicU64,
    /// Values outside the manifest's column domains scored under `out-of-domain = "count"`.
    pub values_out_of_domain: AtomicU64,
    /// Rows queued for an instance now.
    pub queue_rows: AtomicU64,
}

impl Metrics {
    /// One inference request answered with `status` after `latency`.
    pub fn request(&self, protocol: &'static str, status: u16, latency: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((protocol, status))
            .or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Requests answered so far with a status of 400 or more.
    pub fn errors(&self) -> u64 {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|((_, status), _)| *status >= 400)
            .map(|(_, count)| count)
            .sum()
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, model: &str) -> String {
        let mut out = String::new();
        let model = model.replace(['\\', '"', '\n'], "_");
        let _ = writeln!(
            out,
            "# HELP cordon_requests_total Inference requests answered, by protocol and HTTP status.\n# TYPE cordon_requests_total counter"
        );
        for ((protocol, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "cordon_requests_total{{model=\"{model}\",protocol=\"{protocol}\",status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cordon_request_errors_total Inference requests answered with a status of 400 or more.\n# TYPE cordon_request_errors_total counter\ncordon_request_errors_total{{model=\"{model}\"}} {}",
            self.errors()
        );
        let _ = writeln!(
            out,
            "# HELP cordon_request_duration_seconds Time from a request's arrival to its answer.\n# TYPE cordon_request_duration_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "cordon_request_duration_seconds_bucket{{model=\"{model}\",le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cordon_request_duration_seconds_bucket{{model=\"{model}\",le=\"+Inf\"}} {count}\ncordon_request_duration_seconds_sum{{model=\"{model}\"}} {}\ncordon_request_duration_seconds_count{{model=\"{model}\"}} {count}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let counters = [
            (
                "cordon_rows_scored_total",
                "Rows that entered the sandbox.",
                &self.rows_scored,
            ),
            (
                "cordon_rows_answered_total",
                "Rows of requests answered with outputs.",
                &self.rows_answered,
            ),
            (
                "cordon_batches_total",
                "Calls to the model's score, one per batch.",
                &self.batches,
            ),
            (
                "cordon_instances_replaced_total",
                "Sandbox instances replaced after a trap or a broken limit.",
                &self.instances_replaced,
            ),
            (
                "cordon_values_out_of_domain_total",
                "Values outside the manifest's column domains, scored under out-of-domain = \"count\".",
                &self.values_out_of_domain,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{model=\"{model}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cordon_queue_rows Rows waiting for a sandbox instance.\n# TYPE cordon_queue_rows gauge\ncordon_queue_rows{{model=\"{model}\"}} {}",
            self.queue_rows.load(Ordering::Relaxed)
        );
        out
    }
}
