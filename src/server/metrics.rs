//! Prometheus metrics, rendered by hand in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the append latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Metrics {
    appended: AtomicU64,
    duplicates: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    /// Microseconds, summed.
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn appended(&self, duplicate: bool) {
        if duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            self.appended.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rejected(&self, rule: &str) {
        let mut m = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(rule.to_owned()).or_default() += 1;
    }

    pub fn latency(&self, secs: f64) {
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// The exposition text, with the log size and latest checkpoint size given.
    pub fn render(&self, log_size: u64, checkpoint_size: u64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP custody_events_appended_total Events accepted into the log."
        );
        let _ = writeln!(s, "# TYPE custody_events_appended_total counter");
        let _ = writeln!(
            s,
            "custody_events_appended_total {}",
            self.appended.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP custody_events_duplicate_total Identical resubmissions answered with the original receipt.");
        let _ = writeln!(s, "# TYPE custody_events_duplicate_total counter");
        let _ = writeln!(
            s,
            "custody_events_duplicate_total {}",
            self.duplicates.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP custody_events_rejected_total Events refused, by rule."
        );
        let _ = writeln!(s, "# TYPE custody_events_rejected_total counter");
        for (rule, n) in self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(s, "custody_events_rejected_total{{rule=\"{rule}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP custody_append_seconds Time from request to durable receipt."
        );
        let _ = writeln!(s, "# TYPE custody_append_seconds histogram");
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "custody_append_seconds_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "custody_append_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "custody_append_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "custody_append_seconds_count {count}");
        let _ = writeln!(s, "# HELP custody_log_size Events in the log.");
        let _ = writeln!(s, "# TYPE custody_log_size gauge");
        let _ = writeln!(s, "custody_log_size {log_size}");
        let _ = writeln!(
            s,
            "# HELP custody_checkpoint_size Tree size of the latest signed checkpoint."
        );
        let _ = writeln!(s, "# TYPE custody_checkpoint_size gauge");
        let _ = writeln!(s, "custody_checkpoint_size {checkpoint_size}");
        s
    }
}
