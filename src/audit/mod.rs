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
pub mod ranges;
pub mod remote;
mod replayed;
mod tree;

use rayon::prelude::*;
use serde::Serialize;

use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{LedgerName, LogIndex};
use crate::core::rules::{self, Context};
use crate::core::state::{MemState, StateApply};
use crate::core::verify::{verify_stored, AgainError, StoredError, VerifiedEvent, VerifiedHashes};
use crate::store::{LogEntry, Store, StoreError};
pub use ranges::{Budget, Masks, UnitRanges};
use replayed::Replayed;

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

/// The entries that name range `k` (by the first pass's `masks`), each read again as the
/// event verified at its position ([`VerifiedHashes::again`]), on every core.
pub(crate) fn again_in_range(
    entries: Vec<LogEntry>,
    (masks, k): (&Masks, usize),
    hashes: &VerifiedHashes,
    name: &LedgerName,
) -> Vec<(LogEntry, Result<VerifiedEvent, AgainError>)> {
    entries
        .into_par_iter()
        .filter(|e| masks.has(e.index.get(), k))
        .map(|e| {
            let ev = hashes.again(e.index.get(), &e.event, name);
            (e, ev)
        })
        .collect()
}

/// What a chunked read hands on: the range `start..stop` asked for and what was read.
type Each<'a> = dyn FnMut(u64, u64, Result<Vec<LogEntry>, StoreError>) -> bool + 'a;

/// Reads the runs `plan(from, max)` names (the next `start..stop` at or after `from`, of at
/// most `max` entries, `max` sized by [`Chunks`]), handing `each` each run and what was read,
/// until `each` returns false, a read fails (handed on first) or `plan` names no more.
fn read_runs<S: Store>(
    store: &S,
    mut plan: impl FnMut(u64, u64) -> Option<(u64, u64)>,
    mut check: impl FnMut(u64, u64, Vec<LogEntry>) -> Result<Vec<LogEntry>, StoreError>,
    each: &mut Each<'_>,
) {
    let (mut from, mut chunks) = (0u64, Chunks::new());
    while let Some((start, stop)) = plan(from, chunks.len()) {
        let read = store
            .entries(LogIndex::new(start), LogIndex::new(stop))
            .and_then(|entries| check(start, stop, entries));
        if let Ok(entries) = &read {
            chunks.saw(entries.iter().map(|e| e.event.len()).sum());
        }
        let failed = read.is_err();
        if !each(start, stop, read) || failed {
            return;
        }
        from = stop;
    }
}

/// Reads the log's entries `0..end` in chunks sized by [`Chunks`], handing `each` the
/// requested range `start..stop` and what was read, until `each` returns false, a read
/// fails (handed on first) or the log is read. What was read is handed on as the store
/// returned it (the first pass checks it is exactly those indexes).
pub(crate) fn read_chunks<S: Store>(
    store: &S,
    end: u64,
    mut each: impl FnMut(u64, u64, Result<Vec<LogEntry>, StoreError>) -> bool,
) {
    read_runs(
        store,
        |from, max| (from < end).then(|| (from, (from + max).min(end))),
        |_, _, entries| Ok(entries),
        &mut each,
    );
}

/// Reads, of the log's entries `0..end`, those the first pass's `masks` mark as naming range
/// `k`: runs of them, each read through gaps shorter than [`GAP`] entries (the caller filters
/// those out again), in chunks sized by [`Chunks`]. A later pass so reads about its own
/// events, not the whole log. `each` as for [`read_chunks`]; a read that does not return
/// exactly the entries asked for is handed on as an error.
pub(crate) fn read_masked<S: Store>(
    store: &S,
    (masks, k): (&Masks, usize),
    end: u64,
    mut each: impl FnMut(u64, u64, Result<Vec<LogEntry>, StoreError>) -> bool,
) {
    read_runs(
        store,
        |from, max| next_run((masks, k), from, end, max),
        exactly,
        &mut each,
    );
}

/// `entries` if they are exactly the log's entries `start..stop`, in order; else an error.
fn exactly(start: u64, stop: u64, entries: Vec<LogEntry>) -> Result<Vec<LogEntry>, StoreError> {
    let whole = entries.len() as u64 == stop - start
        && entries
            .iter()
            .enumerate()
            .all(|(n, e)| e.index.get() == start + n as u64);
    if whole {
        Ok(entries)
    } else {
        Err(StoreError::Corrupt {
            location: format!("log entries {start}..{stop}"),
            detail: format!(
                "read again, the store returned {} entries, not those {} indexes",
                entries.len(),
                stop - start
            ),
        })
    }
}

/// The next run of entries a pass over range `k` reads, from `from` on and before `end`: it
/// starts at the first entry the masks mark, holds at most `max` entries, ends at a marked
/// entry, and reads through fewer than [`GAP`] unmarked entries in a row.
fn next_run((masks, k): (&Masks, usize), from: u64, end: u64, max: u64) -> Option<(u64, u64)> {
    let start = (from..end).find(|&i| masks.has(i, k))?;
    let limit = (start + max.max(1)).min(end);
    let mut last = start;
    for j in start + 1..limit {
        if j - last > GAP {
            break;
        }
        if masks.has(j, k) {
            last = j;
        }
    }
    Some((start, last + 1))
}

/// Unmarked entries a later pass reads through rather than starting a new read.
const GAP: u64 = 32;

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
    state: &mut impl StateApply,
    last_time: &mut Option<crate::core::values::Timestamp>,
    ev: &VerifiedEvent,
    e: &LogEntry,
    judged: Option<&dyn Fn(&crate::core::unit::UnitId) -> bool>,
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
    let delta = match judged {
        None => rules::apply(state, ev, ctx),
        Some(judged) => rules::apply_for_units(state, ev, ctx, judged),
    }
    .map_err(|err| fail(i, h, "rules", format!("rule {}: {err}", err.rule())))?;
    state.apply_delta(e.index, &delta);
    Ok(())
}

/// Verifies the whole ledger within the default memory [`Budget`]. `progress(done,
/// total)` is called after each chunk. A store that no longer holds every event it
/// acknowledged ([`Store::check_acknowledged`]) fails with check `acknowledged`, unless the
/// audit of what it holds finds a failure that names one of its events.
pub fn verify_ledger<S: Store>(
    store: &S,
    progress: impl Fn(u64, u64),
) -> Result<Report, StoreError> {
    verify_ledger_within(store, Budget::default(), progress)
}

/// [`verify_ledger`] holding the replay state of at most about `budget.units_per_pass`
/// units at a time ([`ranges`]).
pub fn verify_ledger_within<S: Store>(
    store: &S,
    budget: Budget,
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
    let mut report = verify_log(store, budget, progress)?;
    // A failure that names an event of what is held comes first; one that names none (an
    // index beside sled that still maps the lost entries, say) is a symptom of the loss.
    let names_an_event = report.failure.as_ref().is_some_and(|f| f.index.is_some());
    if lost.is_some() && !names_an_event {
        report.ok = false;
        report.failure = lost;
    }
    Ok(report)
}

/// The earlier of two failures (by log index; a failure about no event comes last).
fn earlier(a: Option<Failure>, b: Option<Failure>) -> Option<Failure> {
    match (a, b) {
        (Some(a), Some(b)) if b.index.unwrap_or(u64::MAX) < a.index.unwrap_or(u64::MAX) => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

/// The audit of what the store holds: the first pass checks everything about every event
/// and replays the units of the first range; each later pass replays the units of its
/// range from the events that name them; each range's unit indexes are compared after its
/// pass, the rest after the last.
fn verify_log<S: Store>(
    store: &S,
    budget: Budget,
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
    let (ranges, counted) = UnitRanges::of(store, budget)?;
    let passes = ranges.count() as u64;
    if passes > 1 {
        tracing::info!(passes, "the units are replayed in ranges, one pass each");
    }
    let began = std::time::Instant::now();
    let mut tree = tree::TreeCheck::new(VerifierKey {
        name: meta.name.clone(),
        key: meta.log_key,
    });
    let mut state = Replayed::with_capacity(range_capacity(counted, ranges.count()));
    let mut hashes = VerifiedHashes::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut masks = Masks::for_ranges(&ranges, usize::try_from(total).unwrap_or(0));
    let first = first_pass(
        store,
        &meta.name,
        total,
        &ranges,
        (&mut tree, &mut hashes, &mut masks, &mut state),
        &|done| progress(done, total * passes),
    )?;
    report.events_checked = first.as_ref().and_then(|f| f.index).unwrap_or(total);
    report.checkpoints_checked = tree.checkpoints_checked;
    report.tree_size_verified = tree.last_good;
    tracing::info!(
        seconds = began.elapsed().as_secs_f64(),
        events = total,
        "log replayed and tree compared"
    );
    let mut failure = first;
    if failure.is_none() {
        failure = tree.finish(store, total)?;
        report.checkpoints_checked = tree.checkpoints_checked;
        report.tree_size_verified = tree.last_good;
    }
    let mut stays = std::collections::BTreeMap::new();
    // The party records, handles and keys every pass replays alike.
    let mut parties = MemState::default();
    for k in 0..ranges.count() {
        if k > 0 {
            state.clear();
            let limit = failure.as_ref().and_then(|f| f.index).unwrap_or(total);
            let f = later_pass(
                store,
                &meta.name,
                limit,
                (&ranges, k),
                (&hashes, &masks),
                &mut state,
                &|done| progress(k as u64 * total + done, total * passes),
            )?;
            if let Some(i) = f.as_ref().and_then(|f| f.index) {
                report.events_checked = report.events_checked.min(i);
            }
            failure = earlier(failure, f);
        }
        if failure.as_ref().is_some_and(|f| f.index.is_some()) {
            continue;
        }
        report.units += state.unit_count() as u64;
        // The last range is compared together with the rest, below.
        if failure.is_none() && k + 1 < ranges.count() {
            let began = std::time::Instant::now();
            failure = indexes::compare_range(store, &state, &ranges, k)?;
            tracing::info!(
                range = k,
                units = state.unit_count(),
                seconds = began.elapsed().as_secs_f64(),
                "unit indexes compared with the replay"
            );
        }
        for (key, n) in std::mem::take(&mut state.parties.stays) {
            *stays.entry(key).or_insert(0) += n;
        }
        if k == 0 {
            parties = std::mem::take(&mut state.parties);
        }
    }
    if failure.as_ref().is_some_and(|f| f.index.is_some()) {
        // An event failed: the replay did not reach the end of the log.
        report.units = 0;
        report.failure = failure;
        return Ok(report);
    }
    report.parties = parties.parties.len() as u64;
    if failure.is_some() {
        report.failure = failure;
        return Ok(report);
    }
    parties.stays = stays;
    let began = std::time::Instant::now();
    report.failure = indexes::compare_last(
        store,
        (&state, &ranges, ranges.count() - 1),
        &parties,
        hashes.as_slice(),
        report.units,
        (tree.nodes, tree.checkpoints_checked),
    )?;
    tracing::info!(
        seconds = began.elapsed().as_secs_f64(),
        "indexes compared with the replay"
    );
    report.ok = report.failure.is_none();
    Ok(report)
}

/// Slots to reserve for one range's units: the store's count shared among the ranges, plus
/// an eighth (ranges are cut from a sample, so they differ a little), so that the slots
/// and their map do not double near the end of a pass. At most [`MAX_RESERVED`]: the count
/// is the store's, not trusted (a wrong one costs memory, never a check), and a range
/// larger than that grows as it needs.
fn range_capacity(units: u64, ranges: usize) -> usize {
    let per = units.div_ceil(ranges.max(1) as u64);
    usize::try_from(per.saturating_add(per / 8))
        .unwrap_or(usize::MAX)
        .min(MAX_RESERVED)
}

/// The most unit slots reserved ahead of a pass: 4,194,304 (about eight default budgets).
const MAX_RESERVED: usize = 1 << 22;

/// What the first pass fills: the recomputed tree, the verified hashes, each event's
/// ranges (with more than one range), and the replay state of range 0.
type FirstPass<'a> = (
    &'a mut tree::TreeCheck,
    &'a mut VerifiedHashes,
    &'a mut Masks,
    &'a mut Replayed,
);

/// Reads, checks and replays every event: a reader thread reads each chunk, checks its
/// events on every core and reads the Merkle nodes it completes, while this thread replays
/// the previous chunk; the channel holds at most two chunks. Dropping the receiver on a
/// failure stops the reader.
fn first_pass<S: Store>(
    store: &S,
    name: &LedgerName,
    total: u64,
    ranges: &UnitRanges,
    (tree, hashes, masks, state): FirstPass<'_>,
    progress: &dyn Fn(u64),
) -> Result<Option<Failure>, StoreError> {
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
    let one_range = ranges.count() == 1;
    let in_range0 = |u: &crate::core::unit::UnitId| ranges.contains(0, u);
    let mut last_time = None;
    let (tx, rx) = crossbeam_channel::bounded::<Result<Chunk, StoreError>>(2);
    std::thread::scope(|scope| -> Result<Option<Failure>, StoreError> {
        scope.spawn(move || {
            read_chunks(store, total, |start, end, read| {
                let read = read.and_then(|entries| {
                    let checked = entries.par_iter().map(|e| check_entry(name, e)).collect();
                    let stored = tree::TreeCheck::stored_nodes(store, start, end)?;
                    Ok((start, end, entries, checked, stored))
                });
                tx.send(read).is_ok()
            });
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
                hashes.push(&ev);
                let judged: Option<&dyn Fn(&crate::core::unit::UnitId) -> bool> =
                    if one_range { None } else { Some(&in_range0) };
                if !one_range {
                    masks.push(ranges.mask(ev.body()));
                }
                if let Err(f) = replay(state, &mut last_time, &ev, e, judged) {
                    return Ok(Some(f));
                }
                if let Err(f) = tree.push(store, e, &mut stored)? {
                    return Ok(Some(f));
                }
            }
            progress(end);
        }
        Ok(None)
    })
}

/// Replays the units of range `k` from the events before `limit` that name one of them or
/// no unit: each read again, and taken as verified only if its bytes still hash to what
/// the first pass verified.
fn later_pass<S: Store>(
    store: &S,
    name: &LedgerName,
    limit: u64,
    (ranges, k): (&UnitRanges, usize),
    (hashes, masks): (&VerifiedHashes, &Masks),
    state: &mut Replayed,
    progress: &dyn Fn(u64),
) -> Result<Option<Failure>, StoreError> {
    type Chunk = Vec<(LogEntry, Result<VerifiedEvent, Failure>)>;
    let in_range = |u: &crate::core::unit::UnitId| ranges.contains(k, u);
    let mut last_time = None;
    let (tx, rx) = crossbeam_channel::bounded::<Result<(u64, Chunk), StoreError>>(2);
    std::thread::scope(|scope| -> Result<Option<Failure>, StoreError> {
        scope.spawn(move || {
            read_masked(store, (masks, k), limit, |_, end, read| {
                let read = read.map(|entries| {
                    let again = again_in_range(entries, (masks, k), hashes, name)
                        .into_iter()
                        .map(|(e, ev)| {
                            let (i, h) = (Some(e.index.get()), Some(e.hash.to_string()));
                            let ev = ev.map_err(|err| fail(i, h, "reread", err));
                            (e, ev)
                        })
                        .collect();
                    (end, again)
                });
                tx.send(read).is_ok()
            });
        });
        for chunk in rx {
            let (end, chunk) = chunk?;
            for (e, r) in chunk {
                let ev = match r {
                    Ok(ev) => ev,
                    Err(f) => return Ok(Some(f)),
                };
                // Time was checked over the whole log by the first pass; this pass sees
                // a part of it.
                last_time = None;
                if let Err(f) = replay(state, &mut last_time, &ev, &e, Some(&in_range)) {
                    return Ok(Some(f));
                }
            }
            progress(end);
        }
        Ok(None)
    })
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
    use super::{exactly, next_run, Chunks, GAP};
    use crate::core::ids::{EventHash, LogIndex};
    use crate::core::values::Timestamp;
    use crate::store::{LogEntry, StoreError};

    #[test]
    fn a_run_read_again_must_be_exactly_the_indexes_asked_for() {
        let at = |i: u64| LogEntry {
            index: LogIndex::new(i),
            integrated_at: Timestamp::clamped(0),
            hash: EventHash::from_bytes([0; 32]),
            event: vec![],
        };
        let ok = |v: Vec<u64>| exactly(10, 13, v.into_iter().map(at).collect());
        assert_eq!(ok(vec![10, 11, 12]).map(|v| v.len()).ok(), Some(3));
        for bad in [
            vec![10, 11],
            vec![10, 12, 13],
            vec![11, 12, 13],
            vec![10, 11, 12, 13],
        ] {
            assert!(
                matches!(ok(bad.clone()), Err(StoreError::Corrupt { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_later_pass_reads_every_marked_entry_and_skips_long_unmarked_runs() {
        // Range 1 marked at 3, 5 (gap 1), 100 (gap 94), 140..=200 and 500; range 0 elsewhere.
        let end = 600u64;
        let marked = |i: u64| [3, 5, 100, 500].contains(&i) || (140..=200).contains(&i);
        let maker = crate::core::ids::PartyId::parse(&format!("{:032x}", 7)).expect("party id");
        let middle = crate::core::unit::UnitId::custody(&maker, "SEQ", "S5").expect("unit id");
        let two = super::UnitRanges::split_at(vec![middle]);
        let mut masks = super::Masks::for_ranges(&two, 0);
        for i in 0..end {
            masks.push(if marked(i) { 0b11 } else { 0b01 });
        }
        for max in [1, 7, 64, 8192] {
            let (mut from, mut read) = (0, Vec::new());
            while let Some((start, stop)) = next_run((&masks, 1), from, end, max) {
                assert!(start >= from && stop > start && stop - start <= max);
                assert!(
                    marked(start) && marked(stop - 1),
                    "runs start and end marked"
                );
                read.extend(start..stop);
                from = stop;
            }
            assert!(
                (0..end).filter(|&i| marked(i)).all(|i| read.contains(&i)),
                "max {max}"
            );
            // Read through the gap of 1 (when the run may be that long), never the long gaps.
            assert!(!read
                .iter()
                .any(|i| (6..100).contains(i) || (201..500).contains(i)));
            assert!(
                read.len() as u64 <= 3 + 61 + 2 + GAP,
                "max {max}: {}",
                read.len()
            );
        }
        // Range 0 is every entry: one run per `max` entries.
        assert_eq!(next_run((&masks, 0), 10, end, 64), Some((10, 74)));
        assert_eq!(next_run((&masks, 1), 501, end, 64), None);
    }

    #[test]
    fn a_range_reserves_its_share_and_never_what_a_bad_count_claims() {
        assert_eq!(super::range_capacity(1_000_000, 2), 562_500);
        assert_eq!(super::range_capacity(0, 1), 0);
        assert_eq!(super::range_capacity(u64::MAX, 1), super::MAX_RESERVED);
        assert_eq!(super::range_capacity(u64::MAX, 0), super::MAX_RESERVED);
    }

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
