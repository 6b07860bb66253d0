//! The writer's view of one commit group: records changed by events accepted earlier in the
//! group (not yet in the store), layered over the store, and the loader that builds the
//! slice of state one event's rules read.

use std::collections::HashMap;

use crate::core::ids::{EventHash, Handle, LogIndex, PartyId, PublicKey};
use crate::core::state::{IndexOp, MemState, PartyRecord, Touches, UnitRecord};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::store::{Committed, Store, StoreError};

#[derive(Default)]
pub struct Overlay {
    operator: Option<PartyId>,
    parties: HashMap<PartyId, PartyRecord>,
    units: HashMap<UnitId, UnitRecord>,
    handles: HashMap<Handle, Option<PartyId>>,
    keys: HashMap<PublicKey, PartyId>,
    pub hashes: HashMap<EventHash, (LogIndex, Timestamp)>,
}

impl Overlay {
    pub fn apply(&mut self, c: &Committed) {
        self.hashes
            .insert(c.entry.hash, (c.entry.index, c.entry.integrated_at));
        if let Some(op) = &c.delta.operator {
            self.operator = Some(op.clone());
        }
        for p in &c.delta.parties {
            self.parties.insert(p.id.clone(), p.clone());
        }
        for u in &c.delta.units {
            self.units.insert(u.id.clone(), u.clone());
        }
        for op in &c.delta.index {
            match op {
                IndexOp::Handle { handle, party } => {
                    self.handles.insert(handle.clone(), party.clone());
                }
                IndexOp::Key { key, party } => {
                    self.keys.insert(*key, party.clone());
                }
                IndexOp::Holding { .. }
                | IndexOp::ChainLink { .. }
                | IndexOp::Involved { .. }
                | IndexOp::Stay { .. } => {}
            }
        }
    }

    /// Loads every record the rules may read for an event with these touches.
    pub fn load<S: Store>(
        &self,
        store: &S,
        known: &mut Known,
        t: &Touches,
    ) -> Result<MemState, StoreError> {
        let mut s = MemState {
            operator: match &self.operator {
                Some(op) => Some(op.clone()),
                None => known.operator(store)?,
            },
            ..MemState::default()
        };
        let mut parties: Vec<PartyId> = t.parties.clone();
        parties.extend(s.operator.iter().cloned());
        for k in &t.keys {
            let owner = match self.keys.get(k) {
                Some(p) => Some(p.clone()),
                None => known.key_owner(store, k)?,
            };
            if let Some(p) = owner {
                s.keys.insert(*k, p.clone());
                parties.push(p);
            }
        }
        for h in &t.handles {
            let owner = match self.handles.get(h) {
                Some(p) => p.clone(),
                None => store.party_by_handle(h)?,
            };
            if let Some(p) = owner {
                s.handles.insert(h.clone(), p.clone());
                parties.push(p);
            }
        }
        for u in &t.units {
            let rec = match self.units.get(u) {
                Some(r) => Some(r.clone()),
                None => store.unit(u)?,
            };
            if let Some(r) = rec {
                parties.push(r.holder.clone());
                if let Some(p) = &r.pending {
                    parties.extend([p.from.clone(), p.to.clone()]);
                }
                s.units.insert(u.clone(), r);
            }
        }
        parties.sort();
        parties.dedup();
        for p in parties {
            let rec = match self.parties.get(&p) {
                Some(r) => Some(r.clone()),
                None => known.party(store, &p)?,
            };
            if let Some(r) = rec {
                s.parties.insert(p, r);
            }
        }
        Ok(s)
    }
}

/// Committed party records, key owners and the operator, kept by the writer across groups:
/// every event reads its parties (records decoded from JSON, keys decompressed), and a
/// ledger has few parties and many events. Filled from the store on a miss and from each
/// committed group's changes, never from an uncommitted one, so it never runs ahead of the
/// store. Cleared when it holds [`Known::CAP`] parties.
#[derive(Default)]
pub struct Known {
    operator: Option<PartyId>,
    parties: HashMap<PartyId, PartyRecord>,
    keys: HashMap<PublicKey, PartyId>,
}

impl Known {
    pub const CAP: usize = 100_000;

    fn operator<S: Store>(&mut self, store: &S) -> Result<Option<PartyId>, StoreError> {
        if self.operator.is_none() {
            self.operator = store.operator()?;
        }
        Ok(self.operator.clone())
    }

    fn party<S: Store>(
        &mut self,
        store: &S,
        p: &PartyId,
    ) -> Result<Option<PartyRecord>, StoreError> {
        if let Some(r) = self.parties.get(p) {
            return Ok(Some(r.clone()));
        }
        let r = store.party(p)?;
        if let Some(r) = &r {
            self.room();
            self.parties.insert(p.clone(), r.clone());
        }
        Ok(r)
    }

    fn key_owner<S: Store>(
        &mut self,
        store: &S,
        k: &PublicKey,
    ) -> Result<Option<PartyId>, StoreError> {
        if let Some(p) = self.keys.get(k) {
            return Ok(Some(p.clone()));
        }
        // Only owners found are kept: an unknown key may be enrolled later.
        let p = store.key_owner(k)?;
        if let Some(p) = &p {
            self.room();
            self.keys.insert(*k, p.clone());
        }
        Ok(p)
    }

    fn room(&mut self) {
        if self.parties.len() + self.keys.len() >= Self::CAP {
            self.parties.clear();
            self.keys.clear();
        }
    }

    /// Takes in the changes of events the store has just committed.
    pub fn committed(&mut self, events: &[Committed]) {
        for c in events {
            if let Some(op) = &c.delta.operator {
                self.operator = Some(op.clone());
            }
            for p in &c.delta.parties {
                if self.parties.contains_key(&p.id) {
                    self.parties.insert(p.id.clone(), p.clone());
                }
            }
            for op in &c.delta.index {
                if let IndexOp::Key { key, party } = op {
                    if self.keys.contains_key(key) {
                        self.keys.insert(*key, party.clone());
                    }
                }
            }
        }
    }
}
