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

pub mod remote;
mod tree;

use rayon::prelude::*;
use serde::Serialize;

use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{LedgerName, LogIndex};
use crate::core::rules::{self, Context};
use crate::core::state::{MemState, StateRead};
use crate::core::verify::{verify_stored, StoredError, VerifiedEvent};
use crate::store::{Counts, LogEntry, Store, StoreError};

/// Entries verified per parallel chunk.
const CHUNK: u64 = 8192;

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

/// Verifies the whole ledger. `progress(done, total)` is called after each chunk.
pub fn verify_ledger<S: Store>(
    store: &S,
    progress: impl Fn(u64, u64),
) -> Result<Report, StoreError> {
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
    let mut start = 0u64;
    while start < total {
        let end = (start + CHUNK).min(total);
        let entries = store.entries(LogIndex::new(start), LogIndex::new(end))?;
        for (k, e) in entries.iter().enumerate() {
            if e.index.get() != start + k as u64 {
                report.failure = Some(fail(
                    Some(start + k as u64),
                    None,
                    "gap",
                    "log entry is missing",
                ));
                return Ok(report);
            }
        }
        if entries.len() as u64 != end - start {
            let missing = start + entries.len() as u64;
            report.failure = Some(fail(Some(missing), None, "gap", "log entry is missing"));
            return Ok(report);
        }
        let checked: Vec<Result<VerifiedEvent, Failure>> = entries
            .par_iter()
            .map(|e| check_entry(&meta.name, e))
            .collect();
        let mut stored = tree::TreeCheck::stored_nodes(store, start, end)?.into_iter();
        for (e, r) in entries.iter().zip(checked) {
            let i = e.index.get();
            let h = Some(e.hash.to_string());
            let ev = match r {
                Ok(ev) => ev,
                Err(f) => {
                    report.failure = Some(f);
                    return Ok(report);
                }
            };
            if store.index_of(&e.hash)? != Some(e.index) {
                report.failure = Some(fail(
                    Some(i),
                    h,
                    "hash_index",
                    "the hash index does not point at this entry",
                ));
                return Ok(report);
            }
            if let Err(f) = replay(&mut state, &mut last_time, &ev, e) {
                report.failure = Some(f);
                return Ok(report);
            }
            let pushed = tree.push(store, e, &mut stored)?;
            report.checkpoints_checked = tree.checkpoints_checked;
            report.tree_size_verified = tree.last_good;
            if let Err(f) = pushed {
                report.failure = Some(f);
                return Ok(report);
            }
            report.events_checked += 1;
        }
        progress(end, total);
        start = end;
    }
    report.parties = state.parties.len() as u64;
    report.units = state.units.len() as u64;
    report.failure = tree.finish(store, total)?;
    if report.failure.is_some() {
        return Ok(report);
    }
    report.failure = compare(store, &state, total, tree.nodes, tree.checkpoints_checked)?;
    report.ok = report.failure.is_none();
    Ok(report)
}

/// Compares the store's records and indexes with the replayed state.
fn compare<S: Store>(
    store: &S,
    state: &MemState,
    total: u64,
    nodes: u64,
    checkpoints: u64,
) -> Result<Option<Failure>, StoreError> {
    let idx = |check: &'static str, detail: String| Ok(Some(fail(None, None, check, detail)));
    if store.operator()? != state.operator {
        return idx(
            "index",
            "the stored operator differs from the genesis event".into(),
        );
    }
    for (id, p) in &state.parties {
        if store.party(id)?.as_ref() != Some(p) {
            return idx(
                "index",
                format!("party record {id} differs from the replay"),
            );
        }
    }
    for (h, id) in &state.handles {
        if store.party_by_handle(h)?.as_ref() != Some(id) {
            return idx("index", format!("handle {h} does not point at {id}"));
        }
    }
    for (k, id) in &state.keys {
        if store.key_owner(k)?.as_ref() != Some(id) {
            return idx("index", format!("key {k} does not point at {id}"));
        }
    }
    for (u, rec) in &state.units {
        if store.unit(u)?.as_ref() != Some(rec) {
            return idx("index", format!("unit record {u} differs from the replay"));
        }
        if state.chains.get(u).map(Vec::as_slice).unwrap_or_default() != store.chain(u)?.as_slice()
        {
            return idx(
                "index",
                format!("chain index of unit {u} differs from the replay"),
            );
        }
    }
    for (p, held) in &state.holdings {
        let stored = store.holdings(p, None, usize::MAX)?;
        if !stored.iter().eq(held.iter()) {
            return idx(
                "index",
                format!("holdings of party {p} differ from the replay"),
            );
        }
    }
    for (p, units) in &state.involved {
        let stored = store.involved(p, None, usize::MAX)?;
        if !stored.iter().eq(units.iter()) {
            return idx(
                "index",
                format!("involvement index of party {p} differs from the replay"),
            );
        }
    }
    let expected = Counts {
        events: total,
        parties: state.parties.len() as u64,
        units: state.units.len() as u64,
        handles: state.handles.len() as u64,
        keys: state.keys.len() as u64,
        holdings: state.holdings.values().map(|s| s.len() as u64).sum(),
        involved: state.involved.values().map(|s| s.len() as u64).sum(),
        chain_links: state.chains.values().map(|c| c.len() as u64).sum(),
        hashes: total,
        nodes,
        checkpoints,
    };
    let found = store.counts()?;
    if found != expected {
        return idx(
            "index",
            format!("record counts differ: store has {found:?}, the log implies {expected:?}"),
        );
    }
    debug_assert!(state.operator().is_some() || total == 0);
    Ok(None)
}
