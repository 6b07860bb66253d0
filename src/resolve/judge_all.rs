//! Judging the units of one range after `bulk`'s replay, in id order: a thread reads the
//! next page of unit records and judges its units on every core while the caller's thread
//! hands the page before to `keep` (which may write each resolution out), so neither waits
//! for the other.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::bulk::{PartyTable, Replay, Summary};
use super::judge::{judge, Evidence};
use super::peers::Peers;
use super::screens::Screens;
use super::units::UnitState;
use super::walk::Directory;
use super::{broken, Options, Resolution};
use crate::audit::UnitRanges;
use crate::chain::{self, ChainError};
use crate::core::ids::{EventHash, LedgerName, LogIndex, PartyId};
use crate::core::state::UnitRecord;
use crate::core::values::{CountryCode, Timestamp};
use crate::screen::hierarchy::{PartyInfo, PartyScreening};
use crate::store::{Store, StoreError};

/// Unit records read, and judged, at a time.
const PAGE: usize = 4096;

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

/// Judges the units of range `k` (whose custody `rp` holds), in id order: counts them in
/// `sum`, and keeps in it those `keep` says to.
#[allow(clippy::too_many_arguments)]
pub(super) fn judge_range<S: Store>(
    store: &S,
    ledger: &LedgerName,
    rp: &Replay,
    screens: &Screens<'_, HashMap<PartyId, PartyInfo>>,
    o: &Options,
    (ranges, k): (&UnitRanges, usize),
    sum: &mut Summary,
    keep: &mut impl FnMut(&Resolution) -> Result<bool, StoreError>,
    progress: &dyn Fn(u64),
) -> Result<(), StoreError> {
    let peers = sum.peers.unwrap_or(Peers::of(Vec::new(), o.dwell));
    let judge_page = |page: &[UnitRecord]| -> Result<Vec<Resolution>, StoreError> {
        page.par_iter()
            .map_init(
                || Ctx {
                    table: &rp.table,
                    hashes: rp.verified.as_slice(),
                    screens,
                    dated: HashMap::new(),
                },
                |cx, rec| judge_one(store, ledger, rp, cx, o, &peers, rec),
            )
            .collect()
    };
    // At most two judged pages wait for `keep`.
    let (tx, rx) = crossbeam_channel::bounded::<Result<Vec<Resolution>, StoreError>>(2);
    std::thread::scope(|scope| -> Result<(), StoreError> {
        scope.spawn(move || {
            let mut after = ranges.after(k).cloned();
            loop {
                let page = store.units(after.as_ref(), PAGE).and_then(|mut page| {
                    let Some(last) = page.last() else {
                        return Ok(None);
                    };
                    after = Some(last.id.clone());
                    let before = page.len();
                    page.retain(|r| ranges.contains(k, &r.id));
                    Ok(Some((judge_page(&page)?, page.len() < before)))
                });
                let ended = match page {
                    Ok(None) => break,
                    Ok(Some((judged, ended))) => tx.send(Ok(judged)).is_err() || ended,
                    Err(e) => {
                        // Handed on, and the last: the caller stops at it.
                        let _ = tx.send(Err(e));
                        true
                    }
                };
                if ended {
                    break;
                }
            }
        });
        // Returning drops `rx`: the reader's next send fails and it stops.
        for page in rx {
            for r in page? {
                sum.units += 1;
                *sum.counts.entry(r.verdict.as_str()).or_insert(0) += 1;
                if keep(&r)? {
                    sum.resolutions.push(r);
                }
            }
            progress(sum.units);
        }
        Ok(())
    })
}

/// One unit's resolution from its replayed custody.
fn judge_one<S: Store>(
    store: &S,
    ledger: &LedgerName,
    rp: &Replay,
    cx: &mut Ctx<'_>,
    o: &Options,
    peers: &Peers,
    rec: &UnitRecord,
) -> Result<Resolution, StoreError> {
    match rp.units.get(&rec.id) {
        None => Ok(broken(
            &rec.id,
            None,
            format!("unit {} has no register event in the log", rec.id),
        )),
        Some(UnitState {
            broken: Some(b), ..
        }) => {
            let (i, d) = &**b;
            Ok(broken(
                &rec.id,
                Some(*i),
                format!("chain of unit {} is broken at log index {i}: {d}", rec.id),
            ))
        }
        Some(s) if s.walk.head != Some(rec.head) => Ok(match chain::read(store, ledger, &rec.id) {
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
        }),
        Some(s) => judge(&rec.id, &s.walk, cx, o, peers),
    }
}
