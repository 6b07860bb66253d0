//! The index part of the audit: every record and index the store keeps must equal what
//! the replay of the log derives, and the store must hold nothing more. Each large index is
//! read whole by one ordered scan that checks every record and counts them (a sled point
//! read costs ~20 µs; a scan ~1 µs a record, and at 10M events the scans are bound by disk
//! reads, so none is read twice); the small record kinds are compared by point reads and
//! counted. The independent comparisons run in parallel.

use std::collections::BTreeSet;

use rayon::prelude::*;

use super::ranges::UnitRanges;
use super::replayed::Replayed;
use super::{fail, Failure};
use crate::core::ids::EventHash;
use crate::core::ids::PartyId;
use crate::core::state::{MemState, StateRead};
use crate::store::{Census, PartyUnits, Store, StoreError};

type Found = Result<Option<Failure>, StoreError>;

fn idx(detail: String) -> Found {
    Ok(Some(fail(None, None, "index", detail)))
}

type Check<'a> = (&'static str, Box<dyn Fn() -> Found + Sync + 'a>);

/// Runs independent checks in parallel; the first failure in their order.
fn first_failure(checks: &[Check<'_>]) -> Found {
    let found: Vec<Found> = checks
        .par_iter()
        .map(|(name, c)| {
            let t = std::time::Instant::now();
            let f = c();
            tracing::debug!(
                check = name,
                seconds = t.elapsed().as_secs_f64(),
                "index check"
            );
            f
        })
        .collect();
    for f in found {
        if let Some(f) = f? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// The checks of the units of range `k` (`state` holds that range's units): their records
/// with their chains, their holdings and their involvement.
fn range_checks<'a, S: Store>(
    store: &'a S,
    state: &'a Replayed,
    ranges: &'a UnitRanges,
    k: usize,
) -> [Check<'a>; 3] {
    [
        (
            "units and chains",
            Box::new(move || units(store, state, ranges, k)),
        ),
        (
            "holdings",
            Box::new(move || party_units(store, PartyUnits::Holdings, state, ranges, k)),
        ),
        (
            "involvement",
            Box::new(move || party_units(store, PartyUnits::Involved, state, ranges, k)),
        ),
    ]
}

/// Compares the units of range `k` with their replay; the first failure in the order
/// units and chains, holdings, involvement.
pub fn compare_range<S: Store>(
    store: &S,
    state: &Replayed,
    ranges: &UnitRanges,
    k: usize,
) -> Found {
    first_failure(&range_checks(store, state, ranges, k))
}

/// Compares the units of the last range (`last.0` holds them) and everything else with the
/// replay, all at once: `parties` holds the parties, handles, keys, operator and the stays
/// of every range; `units` is the number of units of every range. The first failure in the
/// order units and chains, holdings, involvement, hash index, parties, pair parties, stays,
/// counts.
pub fn compare_last<S: Store>(
    store: &S,
    last: (&Replayed, &UnitRanges, usize),
    parties: &MemState,
    hashes: &[EventHash],
    units: u64,
    (nodes, checkpoints): (u64, u64),
) -> Found {
    let (state, ranges, k) = last;
    let [a, b, c] = range_checks(store, state, ranges, k);
    first_failure(&[
        a,
        b,
        c,
        ("hash index", Box::new(|| hash_index(store, hashes))),
        ("parties", Box::new(|| parties_check(store, parties))),
        ("pair parties", Box::new(|| pair_parties(store, parties))),
        ("stays", Box::new(|| stays(store, parties))),
        (
            "counts",
            Box::new(|| {
                counts(
                    store,
                    parties,
                    (hashes.len() as u64, units),
                    nodes,
                    checkpoints,
                )
            }),
        ),
    ])
}

/// Page size of the ordered scans.
const SCAN: usize = 10_000;

/// The hash index maps exactly the log's hashes to their indexes, each reachable by a
/// lookup: the store compares its own structure with the verified hashes.
fn hash_index<S: Store>(store: &S, hashes: &[EventHash]) -> Found {
    Ok(store.check_hash_index(hashes)?.map(|f| {
        let index = f.index.map(|i| i.get());
        let hash = index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| hashes.get(i))
            .map(ToString::to_string);
        fail(index, hash, "hash_index", f.detail)
    }))
}

/// The operator, party records, handles and keys (few: point reads).
fn parties_check<S: Store>(store: &S, state: &MemState) -> Found {
    if store.operator()? != state.operator {
        return idx("the stored operator differs from the genesis event".into());
    }
    for (id, p) in &state.parties {
        if store.party(id)?.as_ref() != Some(p) {
            return idx(format!("party record {id} differs from the replay"));
        }
    }
    for (h, id) in &state.handles {
        if store.party_by_handle(h)?.as_ref() != Some(id) {
            return idx(format!("handle {h} does not point at {id}"));
        }
    }
    for (k, id) in &state.keys {
        if store.key_owner(k)?.as_ref() != Some(id) {
            return idx(format!("key {k} does not point at {id}"));
        }
    }
    Ok(None)
}

/// Every stored unit record of range `k` and its chain equal the replay's, and there are
/// as many.
fn units<S: Store>(store: &S, state: &Replayed, ranges: &UnitRanges, k: usize) -> Found {
    let (mut after, mut n) = (ranges.after(k).cloned(), 0usize);
    'pages: loop {
        let page = store.unit_chains(after.as_ref(), SCAN)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.id.clone());
        for (r, links) in &page {
            if !ranges.contains(k, &r.id) {
                break 'pages;
            }
            n += 1;
            if state.unit(&r.id) != Some(r) {
                return idx(format!("unit record {} differs from the replay", r.id));
            }
            if state.chain(&r.id) != Some(links.as_slice()) {
                return idx(format!(
                    "chain index of unit {} differs from the replay",
                    r.id
                ));
            }
        }
    }
    let units = state.unit_count();
    if n != units {
        return idx(format!(
            "the store holds {n} unit records, the log implies {units}"
        ));
    }
    let chains = state.chain_count();
    if n != chains {
        return idx(format!(
            "the store holds chains of {n} units, the log implies {chains}"
        ));
    }
    Ok(None)
}

/// A (party, unit) index equals the replay's sets for the units of range `k`: for every
/// party the store or the replay knows, its units of that range read by one bounded range
/// read, pair by pair. Pairs under party ids that are not parties are caught by
/// [`pair_parties`], so each pair is read once however many ranges there are.
fn party_units<S: Store>(
    store: &S,
    family: PartyUnits,
    state: &Replayed,
    ranges: &UnitRanges,
    k: usize,
) -> Found {
    let what = match family {
        PartyUnits::Holdings => "holdings",
        PartyUnits::Involved => "involvement index",
    };
    let mut parties: BTreeSet<PartyId> = store.parties()?.into_iter().map(|r| r.id).collect();
    let replayed = state.pairs(family);
    parties.extend(replayed.parties().cloned());
    for p in &parties {
        let mut want = replayed.of(p).iter().copied();
        let mut after = ranges.after(k).cloned();
        'pages: loop {
            // Read up to the range's last id: the pages hold the range's units only.
            let page = store.party_units(family, p, (after.as_ref(), ranges.until(k)), SCAN)?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            for u in &page {
                // Past the range (a store that read beyond its bound): the next range's.
                if !ranges.contains(k, u) {
                    break 'pages;
                }
                match want.next() {
                    Some(w) if w == u => {}
                    Some(w) => {
                        return idx(format!(
                            "{what} of party {p} differ from the replay: the store has unit {u} where the log implies unit {w}"
                        ))
                    }
                    None => {
                        return idx(format!(
                            "{what} of party {p} differ from the replay: the store has unit {u}, the log implies no more"
                        ))
                    }
                }
            }
            if page.len() < SCAN {
                break;
            }
        }
        if let Some(w) = want.next() {
            return idx(format!(
                "{what} of party {p} differ from the replay: unit {w} is missing from the store"
            ));
        }
    }
    Ok(None)
}

/// Every party with holdings or involvement in the store is a party of the replay. The
/// per-range reads compare the pairs of every party the store or the replay knows, so the
/// only pairs they cannot see are those under a party id that is no party; this finds them
/// with a seek per party, where counting every pair took full scans (56 s at 10M events).
fn pair_parties<S: Store>(store: &S, state: &MemState) -> Found {
    for (family, what) in [
        (PartyUnits::Holdings, "holdings"),
        (PartyUnits::Involved, "involvement index"),
    ] {
        if let Some(p) = store
            .pair_parties(family)?
            .into_iter()
            .find(|p| !state.parties.contains_key(p))
        {
            return idx(format!(
                "the {what} has units under {p}, which the log does not enroll as a party"
            ));
        }
    }
    Ok(None)
}

/// The completed-stay counters (the dwell baseline's source) are exactly the replay's.
fn stays<S: Store>(store: &S, state: &MemState) -> Found {
    let stored = store.stays()?;
    for (p, d, n) in &stored {
        let want = state.stays.get(&(p.clone(), *d)).copied().unwrap_or(0);
        if *n != want {
            return idx(format!(
                "the store counts {n} completed stays of {d} days by party {p}, the log implies {want}"
            ));
        }
    }
    if stored.len() != state.stays.len() {
        return idx(format!(
            "the store holds {} stay counters, the log implies {}",
            stored.len(),
            state.stays.len()
        ));
    }
    Ok(None)
}

/// The store holds nothing more than the replay implies: the record kinds no ordered scan
/// reads whole are counted (the scans count the others).
fn counts<S: Store>(
    store: &S,
    state: &MemState,
    (total, units): (u64, u64),
    nodes: u64,
    checkpoints: u64,
) -> Found {
    let expected = Census {
        events: total,
        units,
        parties: state.parties.len() as u64,
        handles: state.handles.len() as u64,
        keys: state.keys.len() as u64,
        stays: state.stays.len() as u64,
        nodes,
        checkpoints,
    };
    let found = store.census()?;
    if found != expected {
        return idx(format!(
            "record counts differ: store has {found:?}, the log implies {expected:?}"
        ));
    }
    Ok(None)
}
