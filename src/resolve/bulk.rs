//! The whole ledger in one pass: every event is read, decoded, canonical-checked and
//! signature-checked once (on every core), however many units it covers; each unit's
//! chain links are checked and its custody replayed as the log goes by; every party is
//! screened once. Then each unit is judged. This is what makes `resolve --all` scale with
//! events and parties rather than with units times chain length.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::judge::{judge, Evidence};
use super::peers::{DwellRule, Peers};
use super::screens::Screens;
use super::walk::{Directory, Walk};
use super::{broken, Options, Resolution};
use crate::chain::{self, ChainError};
use crate::core::event::{Body, Role};
use crate::core::ids::{EventHash, LedgerName, LogIndex, PartyId};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Timestamp};
use crate::core::verify::VerifiedEvent;
use crate::screen::hierarchy::{PartyInfo, PartyScreening};
use crate::screen::matcher::Index;
use crate::store::{LogEntry, Store, StoreError};

/// Parties interned as table positions.
#[derive(Default)]
pub struct PartyTable {
    ids: Vec<PartyId>,
    by_id: HashMap<PartyId, u32>,
    country: Vec<Option<CountryCode>>,
    end_user: Vec<bool>,
    sponsor: Vec<Option<PartyId>>,
    handle: Vec<Option<crate::core::ids::Handle>>,
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
    fn sponsored_by(&self, maker: u32, p: u32) -> bool {
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

struct UnitState {
    walk: Walk<u32>,
    broken: Option<(LogIndex, String)>,
}

/// Every unit's replayed custody, with what the replay needs to judge it.
pub struct Replay {
    table: PartyTable,
    info: HashMap<PartyId, PartyInfo>,
    units: HashMap<UnitId, UnitState>,
    /// Event hash by log index.
    hashes: Vec<EventHash>,
    /// Events that failed their checks, by stored hash: a unit whose next event names one
    /// as `prev` is broken at it.
    failed: HashMap<EventHash, (LogIndex, String)>,
}

/// Reads, verifies and replays the whole log. `progress(done, total)` after each chunk.
pub fn replay<S: Store>(
    store: &S,
    ledger: &LedgerName,
    progress: &dyn Fn(u64, u64),
) -> Result<Replay, StoreError> {
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
    let mut rp = Replay {
        table,
        info,
        units: HashMap::new(),
        hashes: Vec::with_capacity(usize::try_from(total).unwrap_or(0)),
        failed: HashMap::new(),
    };
    // A reader thread reads and checks chunks (on every core) while this thread replays
    // the previous one; the channel holds at most two chunks.
    type Chunk = Vec<(LogEntry, Result<VerifiedEvent, String>)>;
    let (tx, rx) = crossbeam_channel::bounded::<Result<Chunk, StoreError>>(2);
    std::thread::scope(|scope| -> Result<(), StoreError> {
        scope.spawn(move || {
            let (mut start, mut chunks) = (0, crate::audit::Chunks::new());
            while start < total {
                let end = (start + chunks.len()).min(total);
                let entries = match store.entries(LogIndex::new(start), LogIndex::new(end)) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                chunks.saw(entries.iter().map(|e| e.event.len()).sum());
                let checked: Chunk = entries
                    .into_par_iter()
                    .map(|e| {
                        let ev = crate::audit::check_entry(ledger, &e).map_err(|f| f.detail);
                        (e, ev)
                    })
                    .collect();
                if tx.send(Ok(checked)).is_err() {
                    return;
                }
                start = end;
            }
        });
        let mut done = 0;
        for chunk in rx {
            for (e, ev) in chunk? {
                rp.hashes.push(e.hash);
                // An event that fails its checks is skipped: the units it names then end
                // short of their recorded head, and are reported broken at it.
                match ev {
                    Ok(ev) => rp.apply(e.index, ev.hash(), ev.body())?,
                    Err(why) => {
                        rp.failed.insert(e.hash, (e.index, why));
                    }
                }
                done += 1;
            }
            progress(done, total);
        }
        Ok(())
    })?;
    Ok(rp)
}

impl Replay {
    fn apply(&mut self, index: LogIndex, hash: EventHash, body: &Body) -> Result<(), StoreError> {
        if let Body::Register(r) = body {
            for u in &r.units {
                if let Some(s) = self.units.get_mut(u) {
                    s.broken
                        .get_or_insert((index, "registered a second time".into()));
                    continue;
                }
                let mut walk = Walk::default();
                walk.step(index, hash, body, &mut self.table)?;
                self.units
                    .insert(u.clone(), UnitState { walk, broken: None });
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
                    s.broken = self.failed.get(&l.prev).cloned();
                }
                h => {
                    let want = h.map_or_else(|| "none".to_owned(), |h| h.to_string());
                    s.broken = Some((index, format!("prev is {}, expected {want}", l.prev)));
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

/// What judging one unit reads: shared, read-only tables, plus a per-thread memo of dated
/// screenings.
struct Ctx<'a> {
    table: &'a PartyTable,
    hashes: &'a [EventHash],
    screens: &'a Screens<'a, HashMap<PartyId, PartyInfo>>,
    dated: HashMap<(u32, Timestamp), Option<bool>>,
}

impl Directory for Ctx<'_> {
    type Key = u32;
    fn key(&mut self, id: &PartyId) -> Result<u32, StoreError> {
        self.table
            .by_id
            .get(id)
            .copied()
            .ok_or_else(|| StoreError::Corrupt {
                location: format!("party {id}"),
                detail: "named by the log but not in the replay's party table".into(),
            })
    }
    fn country(&mut self, p: &u32) -> Result<Option<CountryCode>, StoreError> {
        Ok(self.table.country[*p as usize])
    }
    fn is_end_user(&mut self, p: &u32) -> Result<bool, StoreError> {
        Ok(self.table.end_user[*p as usize])
    }
    fn authorized(&mut self, maker: &u32, p: &u32) -> Result<bool, StoreError> {
        Ok(self.table.sponsored_by(*maker, *p))
    }
}

impl Evidence for Ctx<'_> {
    fn id(&self, p: &u32) -> PartyId {
        self.table.ids[*p as usize].clone()
    }
    fn label(&mut self, p: &u32) -> Result<String, StoreError> {
        let i = *p as usize;
        Ok(super::label(
            self.table.handle[i].as_ref(),
            &self.table.ids[i],
        ))
    }
    fn hash(&self, i: LogIndex) -> EventHash {
        *self
            .hashes
            .get(usize::try_from(i.get()).unwrap_or(usize::MAX))
            .expect("the walk names only events the replay read")
    }
    fn screen(&mut self, p: &u32) -> Result<Arc<PartyScreening>, StoreError> {
        self.screens.get(&self.table.ids[*p as usize])
    }
    fn restricted_at(&mut self, p: &u32, t: Timestamp) -> Result<Option<bool>, StoreError> {
        if let Some(&r) = self.dated.get(&(*p, t)) {
            return Ok(r);
        }
        let r = self
            .screens
            .restricted_on(&self.table.ids[*p as usize], t)?;
        self.dated.insert((*p, t), r);
        Ok(r)
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
}

/// Resolves every unit, in id order, keeping those for which `keep` says so.
pub fn resolve_all<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    o: &Options,
    progress: &dyn Fn(&str, u64, u64),
    mut keep: impl FnMut(&Resolution) -> Result<bool, StoreError>,
) -> Result<Summary, StoreError> {
    let started = std::time::Instant::now();
    let mut rp = replay(store, ledger, &|d, t| {
        progress("verify and replay the log", d, t)
    })?;
    let peers = rp.peers(o.dwell)?;
    let Replay {
        table,
        info,
        units,
        hashes,
        ..
    } = rp;
    let mut screens = Screens::new(index, &info, o.thresholds);
    tracing::info!(
        events = hashes.len(),
        units = units.len(),
        secs = started.elapsed().as_secs_f64(),
        "log verified and replayed"
    );
    progress("screen parties", 0, table.ids.len() as u64);
    screens.preload(&table.ids)?;
    tracing::info!(
        parties = table.ids.len(),
        secs = started.elapsed().as_secs_f64(),
        "parties screened"
    );
    let (table, screens) = (&table, &screens);
    let mut sum = Summary {
        peers: Some(peers),
        ..Summary::default()
    };
    let total = units.len() as u64;
    let mut after = None;
    loop {
        let page = store.units(after.as_ref(), 4096)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        // Units are judged on every core; counts and `keep` see them in id order.
        let judged: Vec<Result<Resolution, StoreError>> = page
            .par_iter()
            .map_init(
                || Ctx {
                    table,
                    hashes: &hashes,
                    screens,
                    dated: HashMap::new(),
                },
                |cx, rec| match units.get(&rec.id) {
                    None => Ok(broken(
                        &rec.id,
                        None,
                        format!("unit {} has no register event in the log", rec.id),
                    )),
                    Some(UnitState {
                        broken: Some((i, d)),
                        ..
                    }) => Ok(broken(
                        &rec.id,
                        Some(*i),
                        format!("chain of unit {} is broken at log index {i}: {d}", rec.id),
                    )),
                    Some(s) if s.walk.head != Some(rec.head) => {
                        Ok(match chain::read(store, ledger, &rec.id) {
                            Err(ChainError::Store(e)) => return Err(e),
                            Err(e @ ChainError::Broken { index, .. }) => {
                                broken(&rec.id, Some(index), e.to_string())
                            }
                            Err(e) => broken(&rec.id, None, e.to_string()),
                            Ok(_) => broken(
                                &rec.id,
                                None,
                                "the log replay does not end at the unit's recorded head".into(),
                            ),
                        })
                    }
                    Some(s) => judge(&rec.id, &s.walk, cx, o, &peers),
                },
            )
            .collect();
        for r in judged {
            let r = r?;
            sum.units += 1;
            *sum.counts.entry(r.verdict.as_str()).or_insert(0) += 1;
            if keep(&r)? {
                sum.resolutions.push(r);
            }
        }
        progress("judge units", sum.units, total);
    }
    tracing::info!(
        units = sum.units,
        secs = started.elapsed().as_secs_f64(),
        "units judged"
    );
    Ok(sum)
}
