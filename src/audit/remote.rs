//! Auditing a ledger over HTTP (`custody audit --server URL`), trusting nothing the server
//! says but what its log key signed: the latest checkpoint is verified with the pinned key,
//! every entry up to its size is fetched, decoded, canonical-checked, hashed and
//! signature-checked (on every core), replayed through the chain and authorization rules
//! from genesis, and folded into a Merkle frontier whose root must be the checkpoint's.

use rayon::prelude::*;

use super::{check_entry, fail, replay, Failure, Report};
use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::ids::LogIndex;
use crate::core::merkle::{entry_leaf_hash, Frontier};
use crate::core::state::MemState;
use crate::monitor::{Http, MonitorError};
use crate::store::LogEntry;

/// Audits the log behind `server` up to its latest checkpoint. `progress(done, total)`.
pub fn audit_remote(
    server: &str,
    vkey: &VerifierKey,
    progress: impl Fn(u64, u64),
) -> Result<Report, MonitorError> {
    let http = Http::new(server);
    let note = http.get("/v1/checkpoint")?;
    let mut report = Report {
        ledger: vkey.name.to_string(),
        ok: false,
        events_checked: 0,
        events_in_log: 0,
        parties: 0,
        units: 0,
        checkpoints_checked: 0,
        tree_size_verified: 0,
        failure: None,
    };
    let cp = match SignedCheckpoint::parse(note.as_bytes()).and_then(|c| c.verify(vkey).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            report.failure = Some(fail(
                None,
                None,
                "checkpoint",
                format!("the served checkpoint does not verify under the pinned key: {e}"),
            ));
            return Ok(report);
        }
    };
    let total = cp.checkpoint.size;
    report.events_in_log = total;
    let mut state = MemState::default();
    let mut frontier = Frontier::default();
    let mut last_time = None;
    let mut start = 0;
    while start < total {
        let end = (start + 1000).min(total);
        let page = http.entries(start, end)?;
        if page.is_empty() {
            report.failure = Some(fail(
                Some(start),
                None,
                "gap",
                "the server serves no entry below its checkpoint size",
            ));
            return Ok(report);
        }
        let entries: Vec<LogEntry> = page
            .into_iter()
            .map(|w| LogEntry {
                index: LogIndex::new(w.index),
                integrated_at: w.integrated_at,
                hash: w.hash,
                event: w.event.into_bytes(),
            })
            .collect();
        let checked: Vec<Result<_, Failure>> = entries
            .par_iter()
            .map(|e| check_entry(&vkey.name, e))
            .collect();
        for (k, (e, r)) in entries.iter().zip(checked).enumerate() {
            let i = start + k as u64;
            if e.index.get() != i {
                report.failure = Some(fail(
                    Some(i),
                    None,
                    "gap",
                    format!("expected entry {i}, the server sent {}", e.index),
                ));
                return Ok(report);
            }
            let ev = match r {
                Ok(ev) => ev,
                Err(f) => {
                    report.failure = Some(f);
                    return Ok(report);
                }
            };
            if let Err(f) = replay(&mut state, &mut last_time, &ev, e, None) {
                report.failure = Some(f);
                return Ok(report);
            }
            frontier.push(entry_leaf_hash(e.integrated_at, &e.event));
            report.events_checked += 1;
        }
        start += entries.len() as u64;
        progress(start, total);
    }
    report.parties = state.parties.len() as u64;
    report.units = state.units.len() as u64;
    if frontier.root() != cp.checkpoint.root {
        report.failure = Some(fail(
            None,
            None,
            "tree",
            format!("the {total} entries served do not hash to the root of the signed checkpoint of that size"),
        ));
        return Ok(report);
    }
    report.checkpoints_checked = 1;
    report.tree_size_verified = total;
    report.ok = true;
    Ok(report)
}
