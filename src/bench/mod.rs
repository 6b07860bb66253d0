//! `custody bench`: builds a synthetic ledger ([`world`]) in a directory and measures, in
//! one run and against this machine's ceilings ([`ceilings`]): durable ingest through the
//! library and over HTTP (batches and single events, with latency), chain reads, proofs and
//! one-unit resolutions (p50/p99), `resolve --all`, screening, the whole-ledger audit,
//! bundle export and verification, disk bytes per event and peak memory. `resolve --all`,
//! screening, the audit and the bundles run on the store opened again as `custody verify`
//! and `custody resolve --all` open it, sled's cache sized for scans
//! ([`crate::store::CacheFor::Scans`]).

pub mod ceilings;
pub mod phases;
pub mod storage;
pub mod world;

use serde::Serialize;

pub use phases::run;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{what}: {detail}")]
    Step { what: &'static str, detail: String },
}

pub(crate) fn step(what: &'static str) -> impl Fn(String) -> BenchError {
    move |detail| BenchError::Step { what, detail }
}

/// A small deterministic generator (a 64-bit LCG) for the bench's sample picks and keys.
pub(crate) struct Pick(pub(crate) u64);

impl Pick {
    fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// A pick in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        (self.step() >> 33) % n.max(1)
    }

    /// 64 well-mixed bits: the SplitMix64 finalizer over the next state.
    pub(crate) fn bits(&mut self) -> u64 {
        let mut z = self.step();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Events in the built ledger (about).
    pub events: u64,
    /// Parties: a tenth distributors, the rest end users.
    pub parties: u64,
}

/// Median and 99th percentile, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub samples: usize,
}

impl Latency {
    #[must_use]
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let at = |p: usize| {
            v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            p50_us: at(50),
            p99_us: at(99),
            samples: v.len(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub events: u64,
    pub units: u64,
    pub parties: u64,
    pub ceilings: ceilings::Ceilings,
    /// Building the whole ledger through `Ledger::append_all` (decode + verify on all cores +
    /// rules + group commit + fsync): events/s, and as a ratio to `verify_strict` on all cores.
    pub library_ingest_per_s: f64,
    pub library_ingest_ratio: f64,
    /// Library ingest as a ratio to the storage ceiling (`ceilings.sled_events_per_s`).
    pub library_ingest_storage_ratio: f64,
    pub http_batch_ingest_per_s: f64,
    pub http_batch_ratio: f64,
    pub http_batch_storage_ratio: f64,
    pub http_single_ingest_per_s: f64,
    pub http_single_latency: Latency,
    /// Chain reads through one shared [`crate::verified::VerifiedCache`], as the server
    /// reads them; and with nothing cached (every event decoded and verified).
    pub chain_read: Latency,
    pub chain_read_uncached: Latency,
    pub inclusion_proof: Latency,
    pub consistency_proof: Latency,
    pub resolve_one: Latency,
    /// Reading the dwell baseline that one-unit resolutions are judged against (from the
    /// completed-stay counters), in milliseconds.
    pub dwell_baseline_ms: f64,
    /// `resolve --all`, events below the latest checkpoint anchored to it (the default),
    /// in seconds; the signatures it checked (the events past the checkpoint).
    pub resolve_all_s: f64,
    pub resolve_all_signatures_checked: u64,
    /// `resolve --all --verify-signatures`: every event's signatures checked, in seconds.
    pub resolve_all_verify_s: f64,
    pub screening_names_per_s: f64,
    pub audit_events_per_s: f64,
    pub audit_ratio: f64,
    pub bundle_export_ms: f64,
    pub bundle_verify_ms: f64,
    pub disk_bytes: u64,
    pub disk_bytes_per_event: f64,
    pub peak_rss_mb: f64,
    /// Each phase with the resident memory (MiB) at its start and its own peak (which phase
    /// holds the memory): the kernel's peak is reset at each phase's start
    /// (`phase_peaks_reset`); where it cannot be, the peak is the process's so far.
    pub rss_by_phase: Vec<(String, f64, f64)>,
    pub phase_peaks_reset: bool,
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident memory of this process (VmHWM), in MiB.
#[must_use]
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resets this process's peak resident memory (VmHWM) to what it holds now, so that
/// [`peak_rss_mb`] reads the peak since (Linux `/proc/self/clear_refs`, value 5). False where
/// the kernel refuses it.
#[must_use]
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory of this process now (VmRSS), in MiB.
#[must_use]
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// Bytes under `dir`.
#[must_use]
pub fn disk_usage(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            n += if p.is_dir() {
                disk_usage(&p)
            } else {
                p.metadata().map_or(0, |m| m.len())
            };
        }
    }
    n
}
