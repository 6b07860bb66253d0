//! The audit's replay state of one range of units, packed: what the log implies for every
//! unit of the range (its record, its chain, who holds it, who is involved with it), kept
//! in as few bytes per unit as the comparison with the store allows.
//!
//! A [`MemState`] keeps each kind in its own map keyed by unit id: a record's hash table
//! (~190-byte buckets, up to half of them spare at a power of two), a second table for the
//! chains, and per-party ordered sets of unit ids for holdings and involvement. At 1M events
//! that came to ~0.73 KB per unit, the largest part of the audit's memory after sled's.
//! Here a unit is one slot of a dense vector (record and chain together), found through a
//! map from unit id to its slot number (24-byte buckets); parties are numbered, and a
//! holding or an involvement is a pair of numbers in a hash set (8 bytes). Only the
//! comparison orders the pairs, party by party, by unit id ([`Replayed::pairs`]).
//!
//! Parties, handles, keys, the operator and the stay counters are few: they stay in a
//! [`MemState`] ([`Replayed::parties`]), changed by [`MemState::apply_parties`].

use std::collections::{HashMap, HashSet};

use crate::core::ids::{Handle, LogIndex, PartyId, PublicKey};
use crate::core::state::UnitRecord;
use crate::core::state::{link_at, Delta, IndexOp, MemState, PartyRecord, StateApply, StateRead};
use crate::core::unit::UnitId;
use crate::store::PartyUnits;

type Fast = ahash::RandomState;

/// One unit's replay: its record (none if only an index named it) and its chain.
#[derive(Debug, Default)]
struct Slot {
    record: Option<UnitRecord>,
    chain: Vec<LogIndex>,
}

/// The replayed state of one range of units.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The operator, parties, handles, keys and stay counters (its unit fields stay empty).
    pub parties: MemState,
    /// Unit id → slot number. Keyed with a per-process random key (aHash), as std's
    /// default is, so ids chosen to collide cannot slow an audit down.
    at: HashMap<UnitId, u32, Fast>,
    slots: Vec<Slot>,
    /// Party id → number, and the ids by number.
    party_no: HashMap<PartyId, u32, Fast>,
    party_ids: Vec<PartyId>,
    /// (party number, slot number) of every holding, and of every involvement.
    holdings: HashSet<(u32, u32), Fast>,
    involved: HashSet<(u32, u32), Fast>,
}

/// A family of (party, unit) pairs, ordered for the comparison: each party's units in
/// unit-id order.
#[derive(Debug, Default)]
pub struct Pairs<'a> {
    by_party: HashMap<&'a PartyId, Vec<&'a UnitId>>,
}

impl<'a> Pairs<'a> {
    /// The parties with at least one pair.
    pub fn parties(&self) -> impl Iterator<Item = &'a PartyId> + '_ {
        self.by_party.keys().copied()
    }

    /// The units of party `p`, in unit-id order.
    #[must_use]
    pub fn of(&self, p: &PartyId) -> &[&'a UnitId] {
        self.by_party.get(p).map_or(&[], Vec::as_slice)
    }
}

impl Replayed {
    /// Room for about `units` units without growing.
    #[must_use]
    pub fn with_capacity(units: usize) -> Self {
        Self {
            at: HashMap::with_capacity_and_hasher(units, Fast::new()),
            slots: Vec::with_capacity(units),
            ..Self::default()
        }
    }

    /// Forgets everything, keeping the units' memory for the next range (about as large).
    pub fn clear(&mut self) {
        self.parties = MemState::default();
        self.at.clear();
        self.slots.clear();
        self.party_no.clear();
        self.party_ids.clear();
        self.holdings.clear();
        self.involved.clear();
    }

    /// Units with a record.
    #[must_use]
    pub fn unit_count(&self) -> usize {
        self.slots.iter().filter(|s| s.record.is_some()).count()
    }

    /// Units with a chain (of at least one link).
    #[must_use]
    pub fn chain_count(&self) -> usize {
        self.slots.iter().filter(|s| !s.chain.is_empty()).count()
    }

    /// The chain of `u`, if it has one.
    #[must_use]
    pub fn chain(&self, u: &UnitId) -> Option<&[LogIndex]> {
        let s = self.slot(u)?;
        (!s.chain.is_empty()).then_some(s.chain.as_slice())
    }

    /// The pairs of `family`, each party's units in unit-id order.
    #[must_use]
    pub fn pairs(&self, family: PartyUnits) -> Pairs<'_> {
        let set = match family {
            PartyUnits::Holdings => &self.holdings,
            PartyUnits::Involved => &self.involved,
        };
        let mut ids: Vec<Option<&UnitId>> = vec![None; self.slots.len()];
        for (id, &k) in &self.at {
            ids[k as usize] = Some(id);
        }
        let mut by_party: HashMap<&PartyId, Vec<&UnitId>> = HashMap::new();
        for &(p, u) in set {
            let party = &self.party_ids[p as usize];
            let unit = ids[u as usize].expect("invariant: every slot number is in the map");
            by_party.entry(party).or_default().push(unit);
        }
        for units in by_party.values_mut() {
            units.sort_unstable();
        }
        Pairs { by_party }
    }

    fn slot(&self, u: &UnitId) -> Option<&Slot> {
        let &k = self.at.get(u)?;
        self.slots.get(k as usize)
    }

    /// The slot number of `u`, adding an empty slot for a unit not seen before.
    fn slot_no(&mut self, u: &UnitId) -> u32 {
        if let Some(&k) = self.at.get(u) {
            return k;
        }
        let k = u32::try_from(self.slots.len()).expect("fewer than 2^32 units in one range");
        self.at.insert(u.clone(), k);
        self.slots.push(Slot::default());
        k
    }

    fn party_no(&mut self, p: &PartyId) -> u32 {
        if let Some(&n) = self.party_no.get(p) {
            return n;
        }
        let n = u32::try_from(self.party_ids.len()).expect("fewer than 2^32 parties");
        self.party_no.insert(p.clone(), n);
        self.party_ids.push(p.clone());
        n
    }

    fn pair(&mut self, party: &PartyId, unit: &UnitId) -> (u32, u32) {
        (self.party_no(party), self.slot_no(unit))
    }
}

impl StateRead for Replayed {
    fn operator(&self) -> Option<&PartyId> {
        self.parties.operator()
    }
    fn party(&self, id: &PartyId) -> Option<&PartyRecord> {
        self.parties.party(id)
    }
    fn party_by_handle(&self, h: &Handle) -> Option<&PartyId> {
        self.parties.party_by_handle(h)
    }
    fn key_owner(&self, k: &PublicKey) -> Option<&PartyId> {
        self.parties.key_owner(k)
    }
    fn unit(&self, u: &UnitId) -> Option<&UnitRecord> {
        self.slot(u)?.record.as_ref()
    }
}

impl StateApply for Replayed {
    /// As [`MemState::apply`], op for op.
    fn apply_delta(&mut self, index: LogIndex, delta: &Delta) {
        self.parties.apply_parties(delta);
        for u in &delta.units {
            let k = self.slot_no(&u.id) as usize;
            self.slots[k].record = Some(u.clone());
        }
        for op in &delta.index {
            match op {
                IndexOp::Holding {
                    party,
                    unit,
                    held: true,
                } => {
                    let pair = self.pair(party, unit);
                    self.holdings.insert(pair);
                }
                IndexOp::Holding {
                    party,
                    unit,
                    held: false,
                } => {
                    if let (Some(&p), Some(&u)) = (self.party_no.get(party), self.at.get(unit)) {
                        self.holdings.remove(&(p, u));
                    }
                }
                IndexOp::Involved { party, unit } => {
                    let pair = self.pair(party, unit);
                    self.involved.insert(pair);
                }
                IndexOp::ChainLink { unit, seq } => {
                    let k = self.slot_no(unit) as usize;
                    link_at(&mut self.slots[k].chain, *seq, index);
                }
                IndexOp::Handle { .. } | IndexOp::Key { .. } | IndexOp::Stay { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::EventHash;
    use crate::core::values::Timestamp;
    use proptest::prelude::*;

    fn party(n: u8) -> PartyId {
        PartyId::parse(&format!("{n:032x}")).expect("32 hex digits")
    }

    fn unit(n: u8) -> UnitId {
        UnitId::custody(&party(0), "SEQ", &format!("S{n}")).expect("unit id")
    }

    /// One change: a unit record (unit, holder, step) or an index op, over 4 parties and 6
    /// units.
    #[derive(Clone, Debug)]
    enum Change {
        Record(u8, u8),
        Hold(u8, u8, bool),
        Involve(u8, u8),
        Link(u8, u32),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u8..6, 0u8..4).prop_map(|(u, p)| Change::Record(u, p)),
            (0u8..4, 0u8..6, any::<bool>()).prop_map(|(p, u, h)| Change::Hold(p, u, h)),
            (0u8..4, 0u8..6).prop_map(|(p, u)| Change::Involve(p, u)),
            (0u8..6, 0u32..4).prop_map(|(u, s)| Change::Link(u, s)),
        ]
    }

    fn delta(step: u64, changes: &[Change]) -> Delta {
        let mut d = Delta::default();
        for c in changes {
            match *c {
                Change::Record(u, p) => d.units.push(UnitRecord {
                    id: unit(u),
                    manufacturer: party(0),
                    holder: party(p),
                    head: EventHash::from_bytes([step as u8; 32]),
                    head_at: Timestamp::clamped(1_700_000_000 + step as i64),
                    pending: None,
                    retired: None,
                    registered: LogIndex::new(step),
                    length: step as u32,
                    held_since: Timestamp::clamped(1_700_000_000),
                }),
                Change::Hold(p, u, held) => d.index.push(IndexOp::Holding {
                    party: party(p),
                    unit: unit(u),
                    held,
                }),
                Change::Involve(p, u) => d.index.push(IndexOp::Involved {
                    party: party(p),
                    unit: unit(u),
                }),
                Change::Link(u, seq) => d.index.push(IndexOp::ChainLink { unit: unit(u), seq }),
            }
        }
        d
    }

    proptest! {
        /// The packed state is what a `MemState` keeps for the same changes: records,
        /// chains, counts and both families of pairs, party by party in unit-id order.
        #[test]
        fn packed_state_equals_the_plain_replay(
            events in proptest::collection::vec(proptest::collection::vec(change(), 0..5), 0..40),
        ) {
            let (mut plain, mut packed) = (MemState::default(), Replayed::with_capacity(2));
            for (i, changes) in events.iter().enumerate() {
                let d = delta(i as u64, changes);
                plain.apply(LogIndex::new(i as u64), &d);
                packed.apply_delta(LogIndex::new(i as u64), &d);
            }
            for u in (0..6).map(unit) {
                prop_assert_eq!(plain.unit(&u), packed.unit(&u));
                prop_assert_eq!(plain.chains.get(&u).map(Vec::as_slice), packed.chain(&u));
            }
            prop_assert_eq!(plain.units.len(), packed.unit_count());
            prop_assert_eq!(plain.chains.len(), packed.chain_count());
            for (family, sets) in [
                (PartyUnits::Holdings, &plain.holdings),
                (PartyUnits::Involved, &plain.involved),
            ] {
                let pairs = packed.pairs(family);
                for p in (0..4).map(party) {
                    let want: Vec<&UnitId> = sets.get(&p).into_iter().flatten().collect();
                    prop_assert_eq!(want, pairs.of(&p).to_vec());
                }
                prop_assert!(pairs.parties().all(|p| !pairs.of(p).is_empty()));
            }
            packed.clear();
            prop_assert_eq!(packed.unit_count(), 0);
            prop_assert!(packed.pairs(PartyUnits::Involved).parties().next().is_none());
        }
    }
}
