//! The whole ledger in one pass: every event is read and checked once (on every core),
//! however many units it covers (below the latest checkpoint by the tree its leaves rebuild,
//! past it by its signatures: [`super::anchor`]); each unit's
//! chain links are checked and its custody replayed as the log goes by; every party is
//! screened once. Then each unit is judged. This is what makes `resolve --all` scale with
//! events and parties rather than with units times chain length.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::anchor::{Admission, Anchor, Signatures};
use super::peers::{DwellRule, Peers};
use super::screens::Screens;
use super::units::{Registered, Units};
use super::walk::{Directory, Walk};
use super::{Options, Resolution};
use crate::audit::{Budget, Masks, UnitRanges};
use crate::core::checkpoint::VerifierKey;
use crate::core::event::{Body, Role};
use crate::core::ids::{EventHash, LedgerName, LogIndex, PartyId};
use crate::core::merkle::{entry_leaf_hash, TreeHash};
use crate::core::unit::UnitId;
use crate::core::values::CountryCode;
use crate::core::verify::{LoggedEvent, LoggedHashes};
use crate::screen::hierarchy::PartyInfo;
use crate::screen::matcher::Index;
use crate::store::{LogEntry, Store, StoreError};

/// Parties interned as table positions.
#[derive(Default)]
pub struct PartyTable {
    pub(super) ids: Vec<PartyId>,
    pub(super) by_id: HashMap<PartyId, u32, ahash::RandomState>,
    pub(super) country: Vec<Option<CountryCode>>,
    pub(super) end_user: Vec<bool>,
    sponsor: Vec<Option<PartyId>>,
    pub(super) handle: Vec<Option<crate::core::ids::Handle>>,
}

impl PartyTable {
    fn intern(&mut self, id: &PartyId) -> u32 {
        if let Some(&k) = self.by_id.get(id) {
            return k;
        }
        let k = u32::try_from(self.ids.len()).expect("fewer than 2^32 parties");
        self.ids.push(id.clone());
        self.by_id.insert(id.clone(), k);
        self.country.push(None);
        self.end_user.push(false);
        self.sponsor.push(None);
        self.handle.push(None);
        k
    }

    /// Whether `p` is in `maker`'s sponsorship tree.
    pub(super) fn sponsored_by(&self, maker: u32, p: u32) -> bool {
        let sponsor = |q: &u32| -> Result<Option<u32>, std::convert::Infallible> {
            Ok(self.sponsor[*q as usize]
                .as_ref()
                .and_then(|s| self.by_id.get(s).copied()))
        };
        super::walk::in_sponsor_tree(&maker, &p, sponsor).unwrap_or(false)
    }
}

impl Directory for PartyTable {
    type Key = u32;
    fn key(&mut self, id: &PartyId) -> Result<u32, StoreError> {
        Ok(self.intern(id))
    }
    fn country(&mut self, p: &u32) -> Result<Option<CountryCode>, StoreError> {
        Ok(self.country[*p as usize])
    }
    fn is_end_user(&mut self, p: &u32) -> Result<bool, StoreError> {
        Ok(self.end_user[*p as usize])
    }
    fn authorized(&mut self, maker: &u32, p: &u32) -> Result<bool, StoreError> {
        Ok(self.sponsored_by(*maker, *p))
    }
}

/// Every unit's replayed custody (of one range of units), with what the replay needs to
/// judge it.
pub struct Replay {
    pub(super) table: PartyTable,
    info: HashMap<PartyId, PartyInfo>,
    pub(super) units: Units,
    /// Events that failed their checks, by stored hash: a unit whose next event names one
    /// as `prev` is broken at it.
    failed: HashMap<EventHash, (LogIndex, String)>,
    /// Event hash by log index (as stored, for an event that failed its checks), which
    /// later passes also read events again by; and the ranges each event names.
    pub(super) verified: LoggedHashes,
    masks: Masks,
    /// What the events were taken on.
    admission: Admission,
}

/// One entry of the log as the first pass checked it: the leaf hash when it is anchored,
/// and the event or why it failed.
type Checked = (LogEntry, Option<TreeHash>, Result<LoggedEvent, String>);

/// Checks one entry: below `anchored`, decoded and hashed (its leaf hash computed for the
/// anchor); past it, signature-checked.
fn check(ledger: &LedgerName, anchored: u64, e: LogEntry) -> Checked {
    if e.index.get() >= anchored {
        let ev = crate::audit::check_entry(ledger, &e)
            .map(LoggedEvent::from)
            .map_err(|f| f.detail);
        return (e, None, ev);
    }
    let leaf = entry_leaf_hash(e.integrated_at, &e.event);
    let ev = match LoggedEvent::decode(&e.event, ledger) {
        Ok(ev) if ev.hash() != e.hash => Err(format!(
            "stored hash differs from the event hash {}",
            ev.hash()
        )),
        Ok(ev) => Ok(ev),
        Err(err) => Err(err.to_string()),
    };
    (e, Some(leaf), ev)
}

/// Reads, checks ([`Signatures`]) and replays the whole log, the units of range 0 of
/// `ranges` only. `progress(done, total)` after each chunk.
pub fn replay<S: Store>(
    store: &S,
    ledger: &LedgerName,
    (ranges, units_hint): (&UnitRanges, u64),
    how: Signatures,
    progress: &dyn Fn(u64, u64),
) -> Result<Replay, StoreError> {
    let meta = store.meta()?.ok_or_else(|| StoreError::Corrupt {
        location: "ledger name".into(),
        detail: "missing: this is not an initialized ledger".into(),
    })?;
    let vkey = VerifierKey {
        name: meta.name,
        key: meta.log_key,
    };
    // Before the log's length: a checkpoint is signed only over committed events.
    let mut anchor = Anchor::latest(store, &vkey, how)?;
    let anchored = anchor.as_ref().map_or(0, Anchor::size);
    let mut table = PartyTable::default();
    let mut info = HashMap::new();
    for r in store.parties()? {
        let k = table.intern(&r.id) as usize;
        table.country[k] = Some(r.profile.country);
        table.end_user[k] = r.has_role(Role::EndUser);
        table.sponsor[k].clone_from(&r.sponsor);
        table.handle[k] = Some(r.handle.clone());
        info.insert(r.id.clone(), PartyInfo::from(&r));
    }
    let total = store.len()?;
    let n = usize::try_from(total).unwrap_or(0);
    let mut rp = Replay {
        table,
        info,
        // Sized up front (never past the log's length: the hint is a stored counter).
        units: Units::with_capacity(usize::try_from(units_hint).unwrap_or(0).min(n)),
        failed: HashMap::new(),
        verified: LoggedHashes::with_capacity(n),
        masks: Masks::for_ranges(ranges, n),
        admission: Admission {
            events: total,
            ..Admission::default()
        },
    };
    let several = ranges.count() > 1;
    // A reader thread reads and checks chunks (on every core) while this thread replays
    // the previous one; the channel holds at most two chunks.
    let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<Checked>, StoreError>>(2);
    std::thread::scope(|scope| -> Result<(), StoreError> {
        scope.spawn(move || {
            crate::audit::read_chunks(store, total, |_, _, read| {
                let read = read.map(|entries| {
                    entries
                        .into_par_iter()
                        .map(|e| check(ledger, anchored, e))
                        .collect()
                });
                tx.send(read).is_ok()
            });
        });
        let mut done = 0;
        for chunk in rx {
            for (e, leaf, ev) in chunk? {
                match (leaf, anchor.as_mut()) {
                    (Some(leaf), Some(a)) => a.push(leaf),
                    _ => rp.admission.signatures_checked += 1,
                }
                // An event that fails its checks is skipped: the units it names then end
                // short of their recorded head, and are reported broken at it.
                match ev {
                    Ok(ev) => {
                        rp.verified.push(&ev);
                        if several {
                            rp.masks.push(ranges.mask(ev.body()));
                        }
                        rp.apply(e.index, ev.hash(), ev.body(), &|u| ranges.contains(0, u))?;
                    }
                    Err(why) => {
                        rp.verified.push_failed(e.hash);
                        if several {
                            rp.masks.push(0);
                        }
                        rp.failed.insert(e.hash, (e.index, why));
                    }
                }
                done += 1;
            }
            progress(done, total);
        }
        Ok(())
    })?;
    if let Some(a) = anchor {
        rp.admission.anchored_to = Some(a.finish()?);
    }
    Ok(rp)
}

/// The entries of `entries` that range `k` reads, each taken again if its bytes still hash
/// to what [`replay`] accepted at its position, on every core.
fn again_in_range(
    entries: Vec<LogEntry>,
    (masks, k): (&Masks, usize),
    hashes: &LoggedHashes,
    ledger: &LedgerName,
) -> Vec<(LogEntry, Result<LoggedEvent, String>)> {
    entries
        .into_par_iter()
        .filter(|e| masks.has(e.index.get(), k))
        .map(|e| {
            let ev = hashes
                .again(e.index.get(), &e.event, ledger)
                .map_err(|err| err.to_string());
            (e, ev)
        })
        .collect()
}

/// Replays the units of range `k` afresh from the events that name them: each read again
/// and taken as verified only if its bytes still hash to what [`replay`] verified (an event
/// changed since is reported as failed, and its units broken at it).
fn replay_range<S: Store>(
    store: &S,
    ledger: &LedgerName,
    rp: &mut Replay,
    (ranges, k): (&UnitRanges, usize),
    progress: &dyn Fn(u64, u64),
) -> Result<(), StoreError> {
    // Emptied, its table kept for the next range (about as large).
    rp.units.clear();
    let total = rp.verified.as_slice().len() as u64;
    type Chunk = Vec<(LogEntry, Result<LoggedEvent, String>)>;
    let (tx, rx) = crossbeam_channel::bounded::<Result<(u64, Chunk), StoreError>>(2);
    // Taken out while the units are replayed (the reader thread reads them), put back after.
    let (verified, masks) = (
        std::mem::take(&mut rp.verified),
        std::mem::take(&mut rp.masks),
    );
    let (verified_ref, masks_ref) = (&verified, &masks);
    let done = std::thread::scope(|scope| -> Result<(), StoreError> {
        scope.spawn(move || {
            crate::audit::read_masked(store, (masks_ref, k), total, |_, end, read| {
                let read = read.map(|entries| {
                    let again = again_in_range(entries, (masks_ref, k), verified_ref, ledger);
                    (end, again)
                });
                tx.send(read).is_ok()
            });
        });
        for chunk in rx {
            let (end, chunk) = chunk?;
            for (e, ev) in chunk {
                match ev {
                    Ok(ev) => {
                        rp.apply(e.index, ev.hash(), ev.body(), &|u| ranges.contains(k, u))?;
                    }
                    Err(why) => {
                        rp.failed.insert(e.hash, (e.index, why));
                    }
                }
            }
            progress(end, total);
        }
        Ok(())
    });
    rp.verified = verified;
    rp.masks = masks;
    done
}

impl Replay {
    /// Applies a checked event to the units `judged` accepts (links to other units find no
    /// state and are passed over).
    fn apply(
        &mut self,
        index: LogIndex,
        hash: EventHash,
        body: &Body,
        judged: &dyn Fn(&UnitId) -> bool,
    ) -> Result<(), StoreError> {
        if let Body::Register(r) = body {
            // Every unit of a lot starts with the same walk: made once, at the first unit
            // of the range, and copied (its lists are empty, so a copy allocates nothing).
            let mut first: Option<Walk<u32>> = None;
            for u in r.units.iter().filter(|u| judged(u)) {
                let walk = match &mut first {
                    Some(w) => w,
                    None => {
                        let mut w = Walk::default();
                        w.step(index, hash, body, &mut self.table)?;
                        first.insert(w)
                    }
                };
                if let Registered::Again(s) = self.units.register(u, || walk.clone()) {
                    s.broken.get_or_insert_with(|| {
                        Box::new((index, "registered a second time".into()))
                    });
                }
            }
            return Ok(());
        }
        for l in body.unit_links() {
            let Some(s) = self.units.get_mut(&l.unit) else {
                continue;
            };
            if s.broken.is_some() {
                continue;
            }
            match s.walk.head {
                Some(h) if h == l.prev => s.walk.step(index, hash, body, &mut self.table)?,
                _ if self.failed.contains_key(&l.prev) => {
                    s.broken = self.failed.get(&l.prev).cloned().map(Box::new);
                }
                h => {
                    let want = h.map_or_else(|| "none".to_owned(), |h| h.to_string());
                    let why = format!("prev is {}, expected {want}", l.prev);
                    s.broken = Some(Box::new((index, why)));
                }
            }
        }
        Ok(())
    }

    /// The dwell baseline: every completed intermediary stay in the ledger.
    pub fn peers(&mut self, rule: DwellRule) -> Result<Peers, StoreError> {
        let mut days = Vec::new();
        for s in self.units.values() {
            s.walk.intermediary_days(&mut self.table, &mut days)?;
        }
        Ok(Peers::of(days, rule))
    }
}

/// Every unit's resolution, with counts by verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub units: u64,
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    /// The dwell baseline the resolutions were judged against.
    pub peers: Option<Peers>,
    /// The resolutions `keep` accepted.
    pub resolutions: Vec<Resolution>,
    /// What the log's events were taken on.
    pub admission: Admission,
}

/// Resolves every unit, in id order, keeping those for which `keep` says so, within the
/// default memory [`Budget`].
pub fn resolve_all<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    o: &Options,
    progress: &dyn Fn(&str, u64, u64),
    keep: impl FnMut(&Resolution) -> Result<bool, StoreError>,
) -> Result<Summary, StoreError> {
    resolve_all_within(store, ledger, index, o, Budget::default(), progress, keep)
}

/// [`resolve_all`] holding the replayed custody of at most about `budget.units_per_pass`
/// units at a time: the units are split into ranges of ids ([`UnitRanges`]), the first
/// pass verifies every event and replays the first range, each later pass replays its range
/// from the events that name it, and each range is judged after its pass. With several
/// ranges the dwell baseline is read from the store's completed-stay counters (which
/// `custody verify` compares with the log), as for one unit; with one, it is the replay's.
pub fn resolve_all_within<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    o: &Options,
    budget: Budget,
    progress: &dyn Fn(&str, u64, u64),
    mut keep: impl FnMut(&Resolution) -> Result<bool, StoreError>,
) -> Result<Summary, StoreError> {
    let started = std::time::Instant::now();
    let (ranges, counted) = UnitRanges::of(store, budget)?;
    let per_range = counted
        .div_ceil(ranges.count() as u64)
        .min(budget.units_per_pass);
    let mut rp = replay(
        store,
        ledger,
        (&ranges, per_range),
        o.signatures,
        &|d, t| progress("check and replay the log", d, t),
    )?;
    let peers = if ranges.count() == 1 {
        rp.peers(o.dwell)?
    } else {
        super::peers::baseline(store, o.dwell)?
    };
    tracing::info!(
        events = rp.verified.as_slice().len(),
        signatures_checked = rp.admission.signatures_checked,
        anchored = rp.admission.anchored_to.as_ref().map_or(0, |c| c.size),
        units = rp.units.len(),
        passes = ranges.count(),
        secs = started.elapsed().as_secs_f64(),
        "log verified and replayed"
    );
    // The party facts screening reads, apart from the state later passes replace.
    let info = std::mem::take(&mut rp.info);
    let mut screens = Screens::new(index, &info, o.thresholds);
    progress("screen parties", 0, rp.table.ids.len() as u64);
    screens.preload(&rp.table.ids)?;
    let screens = screens;
    tracing::info!(
        parties = rp.table.ids.len(),
        secs = started.elapsed().as_secs_f64(),
        "parties screened"
    );
    let mut sum = Summary {
        peers: Some(peers),
        admission: rp.admission.clone(),
        ..Summary::default()
    };
    let total = store.unit_count()?;
    for k in 0..ranges.count() {
        if k > 0 {
            replay_range(store, ledger, &mut rp, (&ranges, k), &|d, t| {
                progress("replay the next range of units", d, t)
            })?;
        }
        super::judge_all::judge_range(
            store,
            ledger,
            &rp,
            &screens,
            o,
            (&ranges, k),
            &mut sum,
            &mut keep,
            &|d| progress("judge units", d, total),
        )?;
    }
    tracing::info!(
        units = sum.units,
        secs = started.elapsed().as_secs_f64(),
        "units judged"
    );
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::values::Timestamp;
    use crate::core::verify::event_hash;

    /// The genesis event of the golden vectors (`tests/vectors/events.json`).
    const GENESIS: &str = r#"{"body":{"at":"2024-01-01T00:00:00Z","handle":"operator","keys":["iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="],"party":"93c1487f8a5c38360b8d31f820586997","profile":{"aliases":["Ürümqi \"Ü\" 乌鲁木齐"],"country":"US","legal_name":"Vector Operator","roles":["operator"]},"type":"genesis"},"signatures":[{"key":"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=","sig":"pV3YQPKq9Six0zrzMHDNhvBpS9jqtnyJzX1QUs5dAkPbx4WMX32DOfscPsto4i8rx2Jl1xbUtrWRPwz3cKlxCQ=="}]}"#;

    fn entry(index: u64, bytes: &str, ledger: &LedgerName) -> LogEntry {
        LogEntry {
            index: LogIndex::new(index),
            integrated_at: Timestamp::clamped(1_704_067_200),
            hash: event_hash(ledger, bytes.as_bytes()),
            event: bytes.as_bytes().to_vec(),
        }
    }

    /// A lot's units all start from the one walk its register event makes (only those of
    /// the range judged); a unit registered again is broken at the second registration.
    #[test]
    fn a_lot_starts_every_unit_alike_and_a_second_registration_breaks_one() {
        use crate::core::event::Register;
        let unit = |s: &str| UnitId::parse(s).expect("a valid unit id");
        let lot: Vec<UnitId> = ["6789", "6790", "6791"]
            .iter()
            .map(|s| unit(&format!("urn:epc:id:sgtin:0614141.812345.{s}")))
            .collect();
        let maker = PartyId::parse("ef33ae230499afe02be89116e2c1fc41").expect("a party id");
        let register = |units: Vec<UnitId>, day: i64| {
            Body::Register(Register {
                at: Timestamp::clamped(1_704_153_600 + day * 86_400),
                manufacturer: maker.clone(),
                units,
                lot: None,
                product_name: None,
            })
        };
        let mut rp = Replay {
            table: PartyTable::default(),
            info: HashMap::new(),
            units: Units::with_capacity(4),
            failed: HashMap::new(),
            verified: LoggedHashes::default(),
            masks: Masks::default(),
            admission: Admission::default(),
        };
        let (first, again) = (
            EventHash::from_bytes([1; 32]),
            EventHash::from_bytes([2; 32]),
        );
        let judged = |u: &UnitId| u != &lot[2];
        rp.apply(LogIndex::new(5), first, &register(lot.clone(), 0), &judged)
            .expect("applied");
        assert_eq!(rp.units.len(), 2, "the unit outside the range has no state");
        assert!(rp.units.get(&lot[2]).is_none());
        let k = rp.table.by_id[&maker];
        for u in &lot[..2] {
            let s = rp.units.get(u).expect("registered");
            assert_eq!((s.walk.head, s.walk.maker), (Some(first), Some(k)));
            let holder = s.walk.holder.as_ref().expect("the maker holds it");
            assert_eq!((holder.party, holder.index), (k, LogIndex::new(5)));
            assert!(s.broken.is_none());
        }
        rp.apply(
            LogIndex::new(9),
            again,
            &register(vec![lot[0].clone()], 1),
            &judged,
        )
        .expect("applied");
        let s = rp.units.get(&lot[0]).expect("still known");
        let b = s
            .broken
            .as_deref()
            .expect("broken by the second registration");
        assert_eq!(
            (b.0, b.1.as_str()),
            (LogIndex::new(9), "registered a second time")
        );
        assert_eq!(
            s.walk.head,
            Some(first),
            "the second registration is not applied"
        );
        assert!(rp.units.get(&lot[1]).expect("known").broken.is_none());
    }

    /// Below the anchor an entry is decoded and hashed (its signature is the checkpoint's
    /// business, through the leaf hash it yields); at and past it, its signature is checked.
    #[test]
    fn entries_past_the_anchor_are_signature_checked_and_those_below_give_their_leaf() {
        let ledger = LedgerName::parse("vectors.example/ledger").expect("name");
        let forged = GENESIS.replace("pV3YQ", "pV3YR");
        assert_ne!(forged, GENESIS);
        for (bytes, valid) in [(GENESIS, true), (forged.as_str(), false)] {
            let below = entry(2, bytes, &ledger);
            let (e, leaf, ev) = check(&ledger, 3, below.clone());
            assert_eq!(leaf, Some(entry_leaf_hash(e.integrated_at, &e.event)));
            assert_eq!(ev.expect("decoded").hash(), below.hash);
            let (_, leaf, ev) = check(&ledger, 2, below);
            assert_eq!(leaf, None, "at the anchor's size: past it");
            match (ev, valid) {
                (Ok(ev), true) => assert_eq!(ev.hash(), event_hash(&ledger, bytes.as_bytes())),
                (Err(why), false) => assert!(why.contains("signature"), "{why}"),
                (ev, _) => panic!("valid {valid}: {ev:?}"),
            }
        }
        // A stored hash that is not the bytes' is a failed entry on either side.
        let mut wrong = entry(1, GENESIS, &ledger);
        wrong.hash = event_hash(&ledger, b"other");
        for anchored in [0, 5] {
            let (_, _, ev) = check(&ledger, anchored, wrong.clone());
            assert!(ev.expect_err("refused").contains("stored hash"));
        }
    }
}
