//! `custody bench`: one run that builds a synthetic ledger and measures everything against
//! this machine's limits (see `crate::bench`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{emit, Cli};
use crate::bench::{Config, Report};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Events in the built ledger (about).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Parties (a tenth distributors, the rest end users; the first carry the names of the
    /// Entity List excerpt's agencies).
    #[arg(long, default_value_t = 1_000)]
    pub parties: u64,
    /// Build in this directory and keep it (default: a temporary directory, removed).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn render(r: &Report) -> String {
    let c = &r.ceilings;
    let l =
        |x: &crate::bench::Latency| format!("p50 {:>9.1} µs   p99 {:>9.1} µs", x.p50_us, x.p99_us);
    format!(
        "custody bench: {} events, {} units, {} parties\n\
         ceilings ({} threads)\n\
         \x20 verify_strict          {:>10.0} /s one core   {:>10.0} /s all cores\n\
         \x20 verify_batch           {:>10.0} /s all cores\n\
         \x20 SHA-256                {:>10.0} MB/s\n\
         \x20 fdatasync              {:>10.0} /s (the data directory's disk)\n\
         \x20 sled, ledger writes    {:>10.0} single-unit events/s (group commits)\n\
         ingest (durable)\n\
         \x20 library                {:>10.0} ev/s  ({:.2} of verify_strict, all cores; {:.2} of sled)\n\
         \x20 HTTP, batches of 500   {:>10.0} ev/s  ({:.2}; {:.2} of sled)\n\
         \x20 HTTP, single events    {:>10.0} ev/s  {}\n\
         reads\n\
         \x20 chain read (cached)    {}\n\
         \x20 chain read (uncached)  {}\n\
         \x20 inclusion proof        {}\n\
         \x20 consistency proof      {}\n\
         \x20 dwell baseline         {:>10.2} ms\n\
         \x20 resolve one unit       {}\n\
         \x20 resolve --all          {:>10.2} s  (anchored to the latest checkpoint; {} signatures checked)\n\
         \x20 resolve --all, every signature {:>10.2} s\n\
         \x20 screening              {:>10.0} names/s\n\
         \x20 audit                  {:>10.0} ev/s  ({:.2} of verify_strict, all cores)\n\
         \x20 bundle export/verify   {:>10.1} ms / {:.1} ms\n\
         storage\n\
         \x20 disk                   {:>10} bytes  ({:.0} bytes/event)\n\
         \x20 peak RSS               {:>10.0} MiB",
        r.events,
        r.units,
        r.parties,
        c.cores,
        c.verify_strict_one_core,
        c.verify_strict_all_cores,
        c.verify_batch_all_cores,
        c.sha256_mb_per_s,
        c.fdatasync_per_s,
        c.sled_events_per_s,
        r.library_ingest_per_s,
        r.library_ingest_ratio,
        r.library_ingest_storage_ratio,
        r.http_batch_ingest_per_s,
        r.http_batch_ratio,
        r.http_batch_storage_ratio,
        r.http_single_ingest_per_s,
        l(&r.http_single_latency),
        l(&r.chain_read),
        l(&r.chain_read_uncached),
        l(&r.inclusion_proof),
        l(&r.consistency_proof),
        r.dwell_baseline_ms,
        l(&r.resolve_one),
        r.resolve_all_s,
        r.resolve_all_signatures_checked,
        r.resolve_all_verify_s,
        r.screening_names_per_s,
        r.audit_events_per_s,
        r.audit_ratio,
        r.bundle_export_ms,
        r.bundle_verify_ms,
        r.disk_bytes,
        r.disk_bytes_per_event,
        r.peak_rss_mb
    )
}

pub fn run(cli: &Cli, a: &BenchArgs) -> Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            anyhow::ensure!(
                !d.join("ledger").exists(),
                "{} already holds a bench ledger: pass a new --dir",
                d.display()
            );
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("custody-bench")
                .tempdir_in(std::env::temp_dir())
                .context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let bar = super::read::progress_bar(cli, "bench");
    let report = crate::bench::run(
        Config {
            events: a.events,
            parties: a.parties,
        },
        &dir,
        &|stage| {
            bar.set_message(stage.to_owned());
            tracing::info!(stage, "bench");
        },
    )?;
    bar.finish_and_clear();
    emit(cli.format, &report, |r| {
        let mut t = render(r);
        t.push_str(if r.phase_peaks_reset {
            "\nresident memory by phase (MiB: at its start / its peak)"
        } else {
            "\nresident memory by phase (MiB: at its start / the peak so far)"
        });
        for (stage, now, peak) in &r.rss_by_phase {
            t.push_str(&format!("\n  {now:>8.0} / {peak:>8.0}  {stage}"));
        }
        t
    })
}
