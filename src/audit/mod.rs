//! Whole-ledger verification: re-derives everything from the raw log and compares it with
//! what the store's indexes say. Trusts nothing but the log bytes and the ledger name.
//!
//! For each entry, in order: the bytes decode, are canonical, every signature verifies
//! (in parallel), the stored hash is the event hash, the hash index points back at it,
//! ledger time never goes backwards, and the chain rules accept it against the replayed
//! state. Its leaf joins a recomputed Merkle tree whose nodes must equal the stored ones,
//! and every checkpoint ever issued must carry a valid log-key signature and the root of
//! the recomputed tree at its size ([`tree`]). Then every party, unit, chain, handle, key
//! and holding in the store must equal the replay, and the store must hold nothing more.

mod indexes;
pub mod remote;
mod tree;

use rayon::prelude::*;
use serde::Serialize;

use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{LedgerName, LogIndex};
use crate::core::rules::{self, Context};
use crate::core::state::MemState;
use crate::core::verify::{verify_stored, StoredError, VerifiedEvent};
use crate::store::{LogEntry, Store, StoreError};

/// Chunks of a parallel pass over the log (the audit, `resolve --all`): about
/// [`Chunks::BYTES`] of events each, so that a stretch of lot registrations (~80 KB each)
/// does not hold thousands of them at once. With 8,192 entries per chunk whatever their size,
/// the audit of a 1M-event bench ledger peaked at 1.1 GiB resident over its first lots, and
/// held ~0.6 GiB afterwards (BENCHMARKS.md, fifth round).
pub(crate) struct Chunks {
    len: u64,
}

impl Chunks {
    const BYTES: usize = 8 << 20;
    const MAX: u64 = 8192;

    pub(crate) fn new() -> Self {
        Self { len: 256 }
    }
    /// Entries in the next chunk.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
    /// Adapts to a chunk whose events held `bytes`.
    pub(crate) fn saw(&mut self, bytes: usize) {
        if bytes > Self::BYTES {
            self.len = (self.len / 2).max(1);
        } else if bytes < Self::BYTES / 4 {
            self.len = (self.len * 2).min(Self::MAX);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Log index of the first bad event, when the failure is about one.
    pub index: Option<u64>,
    pub hash: Option<String>,
    /// Which check failed (stable name).
    pub check: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ledger: String,
    pub ok: bool,
    pub events_checked: u64,
    pub events_in_log: u64,
    pub parties: u64,
    pub units: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints_checked: u64,
    /// The largest checkpoint the log reproduces.
    pub tree_size_verified: u64,
    pub failure: Option<Failure>,
}

pub(crate) fn fail(
    index: Option<u64>,
    hash: Option<String>,
    check: &'static str,
    detail: impl ToString,
) -> Failure {
    Failure {
        index,
        hash,
        check,
        detail: detail.to_string(),
    }
}

/// Decodes, canonical-checks and signature-checks one stored entry.
pub(crate) fn check_entry(name: &LedgerName, e: &LogEntry) -> Result<VerifiedEvent, Failure> {
    let i = Some(e.index.get());
    let stored_hash = Some(e.hash.to_string());
    let ev = verify_stored(&e.event, name).map_err(|err| {
        let check = match &err {
            StoredError::Decode(_) => "decode",
            StoredError::Signature(_) => "signature",
            StoredError::NotCanonical => "canonical",
        };
        fail(i, stored_hash.clone(), check, err)
    })?;
    if ev.hash() != e.hash {
        return Err(fail(
            i,
            stored_hash,
            "hash",
            format!("stored hash differs from the event hash {}", ev.hash()),
        ));
    }
    Ok(ev)
}

/// Replays one checked event: ledger time never goes backwards, and the rules accept it
/// against the state left by every earlier event, which it then changes.
pub(crate) fn replay(
    state: &mut MemState,
    last_time: &mut Option<crate::core::values::Timestamp>,
    ev: &VerifiedEvent,
    e: &LogEntry,
) -> Result<(), Failure> {
    let (i, h) = (Some(e.index.get()), Some(e.hash.to_string()));
    if last_time.is_some_and(|t| e.integrated_at < t) {
        return Err(fail(i, h, "time", "integrated_at goes backwards"));
    }
    *last_time = Some(e.integrated_at);
    let ctx = Context {
        index: e.index,
        now: e.integrated_at,
    };
    let delta = rules::apply(state, ev, ctx)
        .map_err(|err| fail(i, h, "rules", format!("rule {}: {err}", err.rule())))?;
    state.apply(e.index, &delta);
    Ok(())
}

/// Verifies the whole ledger. `progress(done, total)` is called after each chunk. A store
/// that no longer holds every event it acknowledged ([`Store::check_acknowledged`]) fails
/// with check `acknowledged`, unless the audit of what it holds finds an earlier failure.
pub fn verify_ledger<S: Store>(
    store: &S,
    progress: impl Fn(u64, u64),
) -> Result<Report, StoreError> {
    let lost = match store.check_acknowledged() {
        Err(e @ StoreError::Lost { .. }) => Some(fail(None, None, "acknowledged", e)),
        other => {
            other?;
            None
        }
    };
    if lost.is_some() && store.meta()?.is_none() {
        return Ok(Report {
            ledger: String::new(),
            ok: false,
            events_checked: 0,
            events_in_log: store.len()?,
            parties: 0,
            units: 0,
            checkpoints_checked: 0,
            tree_size_verified: 0,
            failure: lost,
        });
    }
    let mut report = verify_log(store, progress)?;
    if report.failure.is_none() && lost.is_some() {
        report.ok = false;
        report.failure = lost;
    }
    Ok(report)
}

/// The audit of what the store holds.
fn verify_log<S: Store>(store: &S, progress: impl Fn(u64, u64)) -> Result<Report, StoreError> {
    let meta = store.meta()?.ok_or_else(|| StoreError::Corrupt {
        location: "ledger name".into(),
        detail: "missing: this is not an initialized ledger".into(),
    })?;
    let total = store.len()?;
    let mut report = Report {
        ledger: meta.name.to_string(),
        ok: false,
        events_checked: 0,
        events_in_log: total,
        parties: 0,
        units: 0,
        checkpoints_checked: 0,
        tree_size_verified: 0,
        failure: None,
    };
    let mut tree = tree::TreeCheck::new(VerifierKey {
        name: meta.name.clone(),
        key: meta.log_key,
    });
    let mut state = MemState::default();
    let mut last_time = None;
    let mut hashes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let began = std::time::Instant::now();
    // A reader thread reads each chunk, checks its events on every core and reads the
    // Merkle nodes it completes, while this thread replays the previous chunk; the channel
    // holds at most two chunks. Dropping the receiver on a failure stops the reader.
    type Chunk = (
        u64,
        u64,
        Vec<LogEntry>,
        Vec<Result<VerifiedEvent, Failure>>,
        Vec<(
            crate::core::merkle::NodeId,
            Option<crate::core::merkle::TreeHash>,
        )>,
    );
    let (tx, rx) = crossbeam_channel::bounded::<Result<Chunk, StoreError>>(2);
    let name = &meta.name;
    let outcome = std::thread::scope(|scope| -> Result<Option<Failure>, StoreError> {
        scope.spawn(move || {
            let (mut start, mut chunks) = (0u64, Chunks::new());
            while start < total {
                let end = (start + chunks.len()).min(total);
                let read = store
                    .entries(LogIndex::new(start), LogIndex::new(end))
                    .and_then(|entries| {
                        chunks.saw(entries.iter().map(|e| e.event.len()).sum());
                        let checked = entries.par_iter().map(|e| check_entry(name, e)).collect();
                        let stored = tree::TreeCheck::stored_nodes(store, start, end)?;
                        Ok((start, end, entries, checked, stored))
                    });
                if tx.send(read).is_err() {
                    return;
                }
                start = end;
            }
        });
        for chunk in rx {
            let (start, end, entries, checked, stored) = chunk?;
            if let Some(f) = gap(start, end, &entries) {
                return Ok(Some(f));
            }
            let mut stored = stored.into_iter();
            for (e, r) in entries.iter().zip(checked) {
                let ev = match r {
                    Ok(ev) => ev,
                    Err(f) => return Ok(Some(f)),
                };
                hashes.push(e.hash);
                if let Err(f) = replay(&mut state, &mut last_time, &ev, e) {
                    return Ok(Some(f));
                }
                let pushed = tree.push(store, e, &mut stored)?;
                report.checkpoints_checked = tree.checkpoints_checked;
                report.tree_size_verified = tree.last_good;
                if let Err(f) = pushed {
                    return Ok(Some(f));
                }
                report.events_checked += 1;
            }
            progress(end, total);
        }
        Ok(None)
    })?;
    if outcome.is_some() {
        report.failure = outcome;
        return Ok(report);
    }
    tracing::info!(
        seconds = began.elapsed().as_secs_f64(),
        events = total,
        "log replayed and tree compared"
    );
    report.parties = state.parties.len() as u64;
    report.units = state.units.len() as u64;
    let began = std::time::Instant::now();
    report.failure = tree.finish(store, total)?;
    if report.failure.is_some() {
        return Ok(report);
    }
    report.failure =
        indexes::compare(store, &state, &hashes, tree.nodes, tree.checkpoints_checked)?;
    tracing::info!(
        seconds = began.elapsed().as_secs_f64(),
        "indexes compared with the replay"
    );
    report.ok = report.failure.is_none();
    Ok(report)
}

/// The entries read for `start..end` are exactly those indexes, in order.
fn gap(start: u64, end: u64, entries: &[LogEntry]) -> Option<Failure> {
    let missing = entries
        .iter()
        .enumerate()
        .find(|(k, e)| e.index.get() != start + *k as u64)
        .map(|(k, _)| start + k as u64)
        .or_else(|| (entries.len() as u64 != end - start).then(|| start + entries.len() as u64));
    missing.map(|i| fail(Some(i), None, "gap", "log entry is missing"))
}

#[cfg(test)]
mod tests {
    use super::Chunks;

    #[test]
    fn chunks_shrink_over_large_events_and_grow_back_within_bounds() {
        let mut c = Chunks::new();
        assert_eq!(c.len(), 256);
        // Lot registrations of ~80 KB: 256 of them are 20 MB, over the 8 MiB aim.
        for _ in 0..20 {
            let n = c.len() as usize;
            c.saw(n * 80_000);
        }
        assert!((64..=128).contains(&c.len()), "{}", c.len());
        for _ in 0..20 {
            c.saw(usize::MAX);
        }
        assert_eq!(c.len(), 1, "never empty");
        // Single-unit events of ~700 B: grows until a chunk holds 2 to 8 MiB.
        for _ in 0..30 {
            let n = c.len() as usize;
            c.saw(n * 700);
        }
        assert_eq!(c.len(), 4096);
        // Tiny events: up to the cap, and no further.
        for _ in 0..30 {
            c.saw(1);
        }
        assert_eq!(c.len(), 8192);
    }
}
