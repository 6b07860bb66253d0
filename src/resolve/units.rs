//! The replayed custody of every unit of one range, as `resolve --all` holds it: the states
//! in one dense vector, found through a map from unit id to position.
//!
//! Why not one `HashMap<UnitId, UnitState>`: a hash table keeps spare buckets (up to half
//! of them, at a power of two), and each bucket there held a whole replayed walk (~230
//! bytes); here a spare bucket costs 24 bytes and the states are packed. The map hashes
//! with a per-process random key (aHash), as the std default does, so unit ids chosen to
//! collide cannot slow a resolution down; it is several times cheaper than SipHash on
//! ids of ~50 bytes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::walk::Walk;
use crate::core::ids::LogIndex;
use crate::core::unit::UnitId;

/// Where a unit's chain broke, and why (rare: boxed, so an unbroken unit pays 8 bytes).
pub(super) type Break = Box<(LogIndex, String)>;

pub(super) struct UnitState {
    pub(super) walk: Walk<u32>,
    pub(super) broken: Option<Break>,
}

/// The replayed units of one range.
#[derive(Default)]
pub(super) struct Units {
    at: HashMap<UnitId, u32, ahash::RandomState>,
    states: Vec<UnitState>,
}

/// What [`Units::register`] found.
pub(super) enum Registered<'a> {
    /// The unit was new: its state was added.
    New,
    /// The unit already had a state (it is registered a second time).
    Again(&'a mut UnitState),
}

impl Units {
    /// Room for `n` units without growing.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            at: HashMap::with_capacity_and_hasher(n, ahash::RandomState::new()),
            states: Vec::with_capacity(n),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    /// Empties the map, keeping its memory for the next range (about as large).
    pub(super) fn clear(&mut self) {
        self.at.clear();
        self.states.clear();
    }

    pub(super) fn get(&self, u: &UnitId) -> Option<&UnitState> {
        let &k = self.at.get(u)?;
        self.states.get(k as usize)
    }

    pub(super) fn get_mut(&mut self, u: &UnitId) -> Option<&mut UnitState> {
        let &k = self.at.get(u)?;
        self.states.get_mut(k as usize)
    }

    /// Adds `u` with the walk `first` makes (called only for a new unit), or returns the
    /// state it already has. One lookup either way.
    pub(super) fn register(
        &mut self,
        u: &UnitId,
        first: impl FnOnce() -> Walk<u32>,
    ) -> Registered<'_> {
        match self.at.entry(u.clone()) {
            Entry::Occupied(o) => {
                let k = *o.get() as usize;
                Registered::Again(&mut self.states[k])
            }
            Entry::Vacant(v) => {
                let k =
                    u32::try_from(self.states.len()).expect("fewer than 2^32 units in one range");
                v.insert(k);
                self.states.push(UnitState {
                    walk: first(),
                    broken: None,
                });
                Registered::New
            }
        }
    }

    /// Every state, in the order the units were registered.
    pub(super) fn values(&self) -> impl Iterator<Item = &UnitState> {
        self.states.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> UnitId {
        UnitId::parse(s).expect("a valid unit id")
    }

    #[test]
    fn a_unit_registered_twice_keeps_its_first_state_and_clear_forgets_all() {
        let mut units = Units::with_capacity(2);
        let (a, b) = (
            id("urn:epc:id:sgtin:0614141.812345.1"),
            id("urn:epc:id:sgtin:0614141.812345.2"),
        );
        assert!(matches!(units.register(&a, Walk::default), Registered::New));
        assert!(matches!(units.register(&b, Walk::default), Registered::New));
        match units.register(&a, || unreachable!("a is known: no new walk is made")) {
            Registered::Again(s) => s.broken = Some(Box::new((LogIndex::new(7), "again".into()))),
            Registered::New => panic!("a was registered before"),
        }
        assert_eq!(units.len(), 2);
        let a_state = units.get(&a).expect("a is known");
        assert_eq!(
            a_state.broken.as_deref().map(|b| b.0),
            Some(LogIndex::new(7))
        );
        assert!(units.get(&b).expect("b is known").broken.is_none());
        assert_eq!(units.values().count(), 2);
        units.clear();
        assert!(units.get(&a).is_none() && units.get_mut(&b).is_none());
        assert_eq!(units.len(), 0);
    }
}
