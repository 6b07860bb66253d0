//! In-memory store for unit tests and as a reference for the conformance suite. Not
//! durable: never the thing a feature is verified on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{
    Census, Counts, Group, IndexFault, LedgerMeta, LogEntry, PartyUnits, Store, StoreError,
};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::ids::{EventHash, Handle, LogIndex, PartyId, PublicKey};
use crate::core::merkle::{NodeId, TreeHash};
use crate::core::state::{MemState, PartyRecord, StateRead, UnitRecord};
use crate::core::unit::UnitId;

#[derive(Default)]
struct Inner {
    meta: Option<LedgerMeta>,
    entries: Vec<LogEntry>,
    hashes: HashMap<EventHash, LogIndex>,
    state: MemState,
    nodes: HashMap<NodeId, TreeHash>,
    checkpoints: BTreeMap<u64, SignedCheckpoint>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied commit: commit only
        // mutates after every check, so the data behind a poisoned lock is still whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn init(&self, meta: &LedgerMeta) -> Result<(), StoreError> {
        let mut g = self.lock();
        if let Some(m) = &g.meta {
            return Err(StoreError::AlreadyInitialized(m.name.to_string()));
        }
        g.meta = Some(meta.clone());
        Ok(())
    }
    fn meta(&self) -> Result<Option<LedgerMeta>, StoreError> {
        Ok(self.lock().meta.clone())
    }
    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.lock().entries.len() as u64)
    }
    fn entry(&self, i: LogIndex) -> Result<Option<LogEntry>, StoreError> {
        Ok(usize::try_from(i.get())
            .ok()
            .and_then(|i| self.lock().entries.get(i).cloned()))
    }
    fn entries(&self, start: LogIndex, end: LogIndex) -> Result<Vec<LogEntry>, StoreError> {
        let g = self.lock();
        let len = g.entries.len();
        let s = usize::try_from(start.get()).unwrap_or(len).min(len);
        let e = usize::try_from(end.get()).unwrap_or(len).min(len);
        Ok(g.entries
            .get(s..e.max(s))
            .map(<[LogEntry]>::to_vec)
            .unwrap_or_default())
    }
    fn index_of(&self, h: &EventHash) -> Result<Option<LogIndex>, StoreError> {
        Ok(self.lock().hashes.get(h).copied())
    }
    fn operator(&self) -> Result<Option<PartyId>, StoreError> {
        Ok(self.lock().state.operator.clone())
    }
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, StoreError> {
        Ok(self.lock().state.party(id).cloned())
    }
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, StoreError> {
        Ok(self.lock().state.party_by_handle(h).cloned())
    }
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, StoreError> {
        Ok(self.lock().state.key_owner(k).cloned())
    }
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, StoreError> {
        Ok(self.lock().state.unit(u).cloned())
    }
    fn chain(&self, u: &UnitId) -> Result<Vec<LogIndex>, StoreError> {
        Ok(self.lock().state.chains.get(u).cloned().unwrap_or_default())
    }
    fn party_units(
        &self,
        family: PartyUnits,
        p: &PartyId,
        bounds: (Option<&UnitId>, Option<&UnitId>),
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError> {
        let g = self.lock();
        let set = match family {
            PartyUnits::Holdings => g.state.holdings.get(p),
            PartyUnits::Involved => g.state.involved.get(p),
        };
        Ok(page(set, bounds, limit))
    }
    fn pair_parties(&self, family: PartyUnits) -> Result<Vec<PartyId>, StoreError> {
        let g = self.lock();
        let map = match family {
            PartyUnits::Holdings => &g.state.holdings,
            PartyUnits::Involved => &g.state.involved,
        };
        let mut v: Vec<PartyId> = map
            .iter()
            .filter(|(_, units)| !units.is_empty())
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        Ok(v)
    }
    fn parties(&self) -> Result<Vec<PartyRecord>, StoreError> {
        let mut v: Vec<PartyRecord> = self.lock().state.parties.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
    fn unit_chains(
        &self,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<(UnitRecord, Vec<LogIndex>)>, StoreError> {
        let g = self.lock();
        let mut v: Vec<(UnitRecord, Vec<LogIndex>)> = g
            .state
            .units
            .iter()
            .filter(|(u, _)| after.is_none_or(|a| *u > a))
            .map(|(u, r)| {
                let chain = g.state.chains.get(u).cloned().unwrap_or_default();
                (r.clone(), chain)
            })
            .collect();
        v.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        v.truncate(limit);
        Ok(v)
    }
    fn check_hash_index(&self, hashes: &[EventHash]) -> Result<Option<IndexFault>, StoreError> {
        let g = self.lock();
        for (h, i) in &g.hashes {
            let at = usize::try_from(i.get()).ok().and_then(|k| hashes.get(k));
            if at != Some(h) {
                return Ok(Some(IndexFault {
                    index: at.map(|_| *i),
                    detail: match at {
                        Some(real) => {
                            format!("the hash index maps {h} to log index {i}, which holds {real}")
                        }
                        None => format!("the hash index maps {h} to log index {i}, beyond the log"),
                    },
                }));
            }
        }
        // Each stored pair is (hashes[i], i), and hashes differ, so pairs are distinct
        // log indexes: as many as the log's entries means all of them.
        if g.hashes.len() != hashes.len() {
            return Ok(Some(IndexFault {
                index: None,
                detail: format!(
                    "the hash index holds {} entries for {} events in the log",
                    g.hashes.len(),
                    hashes.len()
                ),
            }));
        }
        Ok(None)
    }
    fn units(&self, after: Option<&UnitId>, limit: usize) -> Result<Vec<UnitRecord>, StoreError> {
        let g = self.lock();
        let mut v: Vec<&UnitRecord> = g
            .state
            .units
            .values()
            .filter(|u| after.is_none_or(|a| &u.id > a))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v.into_iter().take(limit).cloned().collect())
    }
    fn counts(&self) -> Result<Counts, StoreError> {
        let g = self.lock();
        Ok(Counts {
            events: g.entries.len() as u64,
            parties: g.state.parties.len() as u64,
            units: g.state.units.len() as u64,
            handles: g.state.handles.len() as u64,
            keys: g.state.keys.len() as u64,
            holdings: g.state.holdings.values().map(|s| s.len() as u64).sum(),
            involved: g.state.involved.values().map(|s| s.len() as u64).sum(),
            chain_links: g.state.chains.values().map(|c| c.len() as u64).sum(),
            stays: g.state.stays.len() as u64,
            hashes: g.hashes.len() as u64,
            nodes: g.nodes.keys().filter(|id| id.level == 0).count() as u64,
            checkpoints: g.checkpoints.len() as u64,
        })
    }
    fn census(&self) -> Result<Census, StoreError> {
        let c = self.counts()?;
        Ok(Census {
            events: c.events,
            units: c.units,
            parties: c.parties,
            handles: c.handles,
            keys: c.keys,
            stays: c.stays,
            nodes: c.nodes,
            checkpoints: c.checkpoints,
        })
    }
    fn unit_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().state.units.len() as u64)
    }
    fn stays(&self) -> Result<Vec<(PartyId, u32, u64)>, StoreError> {
        let g = self.lock();
        Ok(g.state
            .stays
            .iter()
            .map(|((p, d), n)| (p.clone(), *d, *n))
            .collect())
    }
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        let g = self.lock();
        Ok(ids.iter().map(|id| g.nodes.get(id).copied()).collect())
    }
    fn checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(&size).cloned())
    }
    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.values().next_back().cloned())
    }
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<SignedCheckpoint>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .range(from..)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }
    fn commit(&self, group: &Group) -> Result<(), StoreError> {
        let batch = &group.events;
        let mut g = self.lock();
        let len = g.entries.len() as u64;
        for (k, c) in batch.iter().enumerate() {
            if c.entry.index.get() != len + k as u64 {
                return Err(StoreError::OutOfOrder {
                    len,
                    start: c.entry.index.get(),
                });
            }
        }
        super::tree_nodes::pack_nodes(len, batch.len() as u64, &group.nodes)?;
        for c in batch {
            g.hashes.insert(c.entry.hash, c.entry.index);
            g.state.apply(c.entry.index, &c.delta);
            g.entries.push(c.entry.clone());
        }
        g.nodes.extend(group.nodes.iter().copied());
        if let Some(cp) = &group.checkpoint {
            g.checkpoints.insert(cp.checkpoint.size, cp.clone());
        }
        Ok(())
    }
}

/// Units of one party's set after `after`, at most `limit`.
fn page(
    set: Option<&std::collections::BTreeSet<UnitId>>,
    (after, until): (Option<&UnitId>, Option<&UnitId>),
    limit: usize,
) -> Vec<UnitId> {
    set.map(|s| {
        s.iter()
            .filter(|u| after.is_none_or(|a| *u > a))
            .take_while(|u| until.is_none_or(|b| *u <= b))
            .take(limit)
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}
