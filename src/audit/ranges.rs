//! The audit's memory bound: the units split into ranges of unit ids, one replay of the log
//! per range. The replay state of a unit (its record, chain, holdings and involvement,
//! packed by [`super::replayed`]) is about 0.4 KB; a ledger with more units than [`Budget::units_per_pass`] is audited in
//! several passes, each holding the state of one range only. The first pass checks
//! everything else (bytes, signatures, hashes, the tree, parties); each later pass re-reads
//! only the events that name a unit of its range (or no unit at all) and takes them as
//! verified by their hashes ([`crate::core::verify::VerifiedHashes`]).

use crate::core::event::Body;
use crate::core::unit::UnitId;
use crate::store::{Store, StoreError};

/// How many units one pass may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub units_per_pass: u64,
}

impl Default for Budget {
    /// 500,000 units: about 0.2 GiB of the audit's replay state (~0.4 KB per unit measured
    /// at 1M events, 0.73 KB before it was packed), as much of the resolver's. Each pass beyond the first re-reads its own
    /// events and every event naming several ranges (lot registrations).
    fn default() -> Self {
        Self {
            units_per_pass: 500_000,
        }
    }
}

/// Ranges of unit ids: range `k` holds the ids above `bounds[k - 1]` and up to `bounds[k]`
/// (the first has no lower end, the last no upper end), so they cover every id, including
/// ids the store does not know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitRanges {
    bounds: Vec<UnitId>,
}

/// A set of ranges as bits (at most 64 ranges).
pub type Mask = u64;

/// Each event's ranges (its [`Mask`]), by log index, kept in as few bytes per event as the
/// number of ranges needs: 1 up to 8 ranges, 2 up to 16, 4 up to 32, else 8. At 10M events
/// in 10 ranges that is 20 MB, not the 80 MB of a `u64` each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Masks {
    /// The number of ranges.
    ranges: usize,
    /// Bytes per event (1, 2, 4 or 8).
    width: usize,
    /// The masks' low `width` bytes, little-endian, one after the other.
    bytes: Vec<u8>,
}

impl Masks {
    /// Empty, for `ranges`, with room for `events` masks (none for a single range: every
    /// event is in it, and its passes keep no masks).
    #[must_use]
    pub fn for_ranges(ranges: &UnitRanges, events: usize) -> Self {
        let events = if ranges.count() > 1 { events } else { 0 };
        let width = match ranges.count() {
            0..=8 => 1,
            9..=16 => 2,
            17..=32 => 4,
            _ => 8,
        };
        Self {
            ranges: ranges.count(),
            width,
            bytes: Vec::with_capacity(events.saturating_mul(width)),
        }
    }

    /// Appends the next event's mask. Its bits above the ranges' count are dropped (an
    /// event that names no unit has them all set, [`UnitRanges::mask`]).
    pub fn push(&mut self, m: Mask) {
        self.bytes.extend_from_slice(&m.to_le_bytes()[..self.width]);
    }

    /// Masks pushed so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len().checked_div(self.width).unwrap_or(0)
    }

    /// Whether no mask was pushed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the event at log index `i` names range `k` (false past the masks pushed, and
    /// for a range there is not).
    #[must_use]
    pub fn has(&self, i: u64, k: usize) -> bool {
        if k >= self.ranges {
            return false;
        }
        let (byte, bit) = (k / 8, k % 8);
        usize::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(self.width)?.checked_add(byte))
            .and_then(|at| self.bytes.get(at))
            .is_some_and(|b| b & (1 << bit) != 0)
    }
}

impl UnitRanges {
    /// At most 64 ranges (a [`Mask`] per event).
    pub const MAX: usize = 64;

    /// Ranges of at most about `budget.units_per_pass` of the store's units each. One range
    /// when the store counts no more units than that (its count only sizes the passes: a
    /// wrong one costs memory, never a check); else from one ordered scan of the unit
    /// records (their ids only are kept, 16 per pass's worth). Also returns how many units
    /// the store holds.
    pub fn of<S: Store>(store: &S, budget: Budget) -> Result<(Self, u64), StoreError> {
        let per = budget.units_per_pass.max(1);
        let counted = store.unit_count()?;
        if counted <= per {
            return Ok((Self::default(), counted));
        }
        let every = (per / 16).max(1);
        let (mut after, mut n, mut sample) = (None, 0u64, Vec::new());
        loop {
            let page = store.unit_chains(after.as_ref(), 10_000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.id.clone());
            for (r, _) in &page {
                if n % every == 0 {
                    sample.push(r.id.clone());
                }
                n += 1;
            }
        }
        let k = usize::try_from(n.div_ceil(per))
            .unwrap_or(usize::MAX)
            .clamp(1, Self::MAX);
        let mut bounds: Vec<UnitId> = (1..k)
            .filter_map(|j| sample.get(j * sample.len() / k).cloned())
            .collect();
        bounds.dedup();
        Ok((Self { bounds }, n))
    }

    /// Ranges split at `bounds` (sorted, distinct), for tests.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn split_at(bounds: Vec<UnitId>) -> Self {
        Self { bounds }
    }

    /// The number of ranges (at least one).
    #[must_use]
    pub fn count(&self) -> usize {
        self.bounds.len() + 1
    }

    /// The range holding `u`.
    #[must_use]
    pub fn of_unit(&self, u: &UnitId) -> usize {
        self.bounds.partition_point(|b| b < u)
    }

    /// Whether range `k` holds `u`.
    #[must_use]
    pub fn contains(&self, k: usize, u: &UnitId) -> bool {
        self.of_unit(u) == k
    }

    /// The id range `k` starts after (`None`: from the first id).
    #[must_use]
    pub fn after(&self, k: usize) -> Option<&UnitId> {
        k.checked_sub(1).and_then(|j| self.bounds.get(j))
    }

    /// The last id range `k` holds (`None`: to the last id).
    #[must_use]
    pub fn until(&self, k: usize) -> Option<&UnitId> {
        self.bounds.get(k)
    }

    /// The ranges a pass must replay `body` in: those of the units it names, or every range
    /// for an event that names none (parties, genesis), which every pass replays.
    #[must_use]
    pub fn mask(&self, body: &Body) -> Mask {
        let units = body.units();
        if units.is_empty() || self.bounds.is_empty() {
            return Mask::MAX;
        }
        units.iter().fold(0, |m, u| m | 1 << self.of_unit(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::PartyId;

    fn unit(n: u32) -> UnitId {
        let maker = PartyId::parse(&format!("{:032x}", 7)).expect("party id");
        UnitId::custody(&maker, "SEQ", &format!("S{n:05}")).expect("unit id")
    }

    #[test]
    fn ranges_cover_every_id_once() {
        let r = UnitRanges::split_at(vec![unit(100), unit(200)]);
        assert_eq!(r.count(), 3);
        for (n, k) in [(0, 0), (100, 0), (101, 1), (200, 1), (201, 2), (99_999, 2)] {
            assert_eq!(r.of_unit(&unit(n)), k, "unit {n}");
            assert!(r.contains(k, &unit(n)));
            assert_eq!((0..3).filter(|&j| r.contains(j, &unit(n))).count(), 1);
        }
        assert_eq!(r.after(0), None);
        assert_eq!(r.after(1), Some(&unit(100)));
        assert_eq!(r.after(2), Some(&unit(200)));
        assert_eq!(r.until(0), Some(&unit(100)));
        assert_eq!(r.until(1), Some(&unit(200)));
        assert_eq!(r.until(2), None);
        let one = UnitRanges::default();
        assert_eq!(
            (
                one.count(),
                one.of_unit(&unit(5)),
                one.after(0),
                one.until(0)
            ),
            (1, 0, None, None)
        );
    }

    #[test]
    fn masks_take_the_bytes_their_ranges_need() {
        for (count, width) in [
            (1, 1),
            (8, 1),
            (9, 2),
            (16, 2),
            (17, 4),
            (32, 4),
            (33, 8),
            (64, 8),
        ] {
            let r = UnitRanges::split_at((1..count).map(unit).collect());
            assert_eq!(r.count(), count as usize);
            let mut m = Masks::for_ranges(&r, 10);
            for _ in 0..10 {
                m.push(Mask::MAX);
            }
            assert_eq!((m.len(), m.bytes.len()), (10, 10 * width), "{count} ranges");
        }
    }

    proptest::proptest! {
        /// Read back at any index, a kept mask says exactly what the pushed one said of every
        /// range there is, and nothing past the masks pushed or of ranges there are not.
        #[test]
        fn masks_read_back_as_pushed(
            count in 1u32..=64,
            raw in proptest::collection::vec((proptest::bool::ANY, proptest::num::u64::ANY), 0..200),
        ) {
            let r = UnitRanges::split_at((1..count).map(unit).collect());
            let all = if count == 64 { Mask::MAX } else { (1u64 << count) - 1 };
            // Events that name units name ranges there are; the others name every bit.
            let pushed: Vec<Mask> = raw.iter().map(|&(none, m)| if none { Mask::MAX } else { m & all }).collect();
            let mut masks = Masks::for_ranges(&r, pushed.len());
            for &m in &pushed {
                masks.push(m);
            }
            proptest::prop_assert_eq!(masks.len(), pushed.len());
            for (i, &m) in pushed.iter().enumerate() {
                for k in 0..64usize {
                    let want = k < count as usize && m & (1 << k) != 0;
                    proptest::prop_assert_eq!(masks.has(i as u64, k), want, "event {} range {}", i, k);
                }
            }
            proptest::prop_assert!(!masks.has(pushed.len() as u64, 0));
            proptest::prop_assert!(!masks.has(u64::MAX, 0));
        }
    }
}
