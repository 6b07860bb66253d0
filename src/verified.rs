//! A process-wide cache of verified log events, shared by chain reads and one-unit
//! resolutions (server requests, the dashboard, `custody bench`).
//!
//! Why: a unit's chain starts with its lot's `register` event, which for a 1,000-unit lot
//! is ~80 KB of canonical JSON; decoding and verifying it again for every chain read was
//! most of a read's 1.5 ms. Every unit of the lot shares it, and most share their first
//! shipments too.
//!
//! What a hit still checks: the entry is read from the store on every request, and the
//! cached event is used only if the stored bytes are byte-identical to the bytes verified
//! earlier and the stored hash is the same. So a cached answer is exactly the answer a
//! fresh verification would give: only the signature and decoding work is skipped, for
//! bytes this process has already verified. Comparing 80 KB takes microseconds.
//!
//! Eviction: two generations. New events go to the young one; when it holds half the
//! budget (counted in canonical bytes) it becomes the old one and the previous old one is
//! dropped. A hit in the old generation moves the event back to the young one. Memory
//! stays within about twice the budget's decoded size, whatever the ledger's size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::audit::{check_entry, Failure};
use crate::core::ids::{LedgerName, LogIndex};
use crate::core::verify::VerifiedEvent;
use crate::store::LogEntry;

/// The default budget: 64 MiB of canonical event bytes (decoded, about 2.5 times that in
/// memory: ~170 MiB at most).
pub const DEFAULT_BUDGET: usize = 64 << 20;

#[derive(Default)]
struct Generations {
    young: HashMap<LogIndex, Arc<VerifiedEvent>>,
    young_bytes: usize,
    old: HashMap<LogIndex, Arc<VerifiedEvent>>,
}

pub struct VerifiedCache {
    inner: Mutex<Generations>,
    budget: usize,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

impl VerifiedCache {
    /// A cache holding about `budget` bytes of canonical events (0: caches nothing).
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Generations::default()),
            budget,
        }
    }

    /// A cache that keeps nothing: every call verifies.
    #[must_use]
    pub fn disabled() -> Self {
        Self::new(0)
    }

    /// Events held now (both generations).
    #[must_use]
    pub fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.young.len() + g.old.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry's event, verified (canonical bytes, signatures, stored hash) now or
    /// earlier for these very bytes; the audit's failure if it does not verify.
    pub fn verify(
        &self,
        ledger: &LedgerName,
        entry: &LogEntry,
    ) -> Result<Arc<VerifiedEvent>, Failure> {
        if self.budget == 0 {
            return check_entry(ledger, entry).map(Arc::new);
        }
        if let Some(ev) = self.hit(entry) {
            return Ok(ev);
        }
        let ev = Arc::new(check_entry(ledger, entry)?);
        self.insert(entry.index, &ev);
        Ok(ev)
    }

    fn hit(&self, entry: &LogEntry) -> Option<Arc<VerifiedEvent>> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let same = |ev: &Arc<VerifiedEvent>| {
            ev.hash() == entry.hash && ev.canonical_bytes() == entry.event.as_slice()
        };
        if let Some(ev) = g.young.get(&entry.index) {
            return same(ev).then(|| Arc::clone(ev));
        }
        let ev = g.old.remove(&entry.index)?;
        if !same(&ev) {
            return None;
        }
        g.young_bytes += ev.canonical_bytes().len();
        g.young.insert(entry.index, Arc::clone(&ev));
        Some(ev)
    }

    fn insert(&self, index: LogIndex, ev: &Arc<VerifiedEvent>) {
        let size = ev.canonical_bytes().len();
        if size > self.budget / 2 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if g.young_bytes + size > self.budget / 2 {
            g.old = std::mem::take(&mut g.young);
            g.young_bytes = 0;
        }
        g.young_bytes += size;
        g.young.insert(index, Arc::clone(ev));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::VerifiedCache;
    use crate::bench::world::{key, sign};
    use crate::core::event::{Body, Register};
    use crate::core::ids::{EventHash, LedgerName, LogIndex};
    use crate::core::unit::UnitId;
    use crate::core::values::Timestamp;
    use crate::store::LogEntry;

    fn ledger() -> LedgerName {
        LedgerName::parse("test.example/ledger").expect("valid name")
    }

    /// A stored entry holding a registration of `n` units with serials starting `tag`.
    fn entry(index: u64, tag: &str, n: usize) -> LogEntry {
        let maker = key("maker");
        let units = (0..n)
            .map(|i| UnitId::custody(&maker.party_id(), "SEQ", &format!("{tag}{i:04}")))
            .collect::<Result<Vec<_>, _>>()
            .expect("valid unit ids");
        let ev = sign(
            &ledger(),
            Body::Register(Register {
                at: Timestamp::clamped(1_700_000_000),
                manufacturer: maker.party_id(),
                units,
                lot: None,
                product_name: None,
            }),
            &[&maker],
        );
        LogEntry {
            index: LogIndex::new(index),
            integrated_at: Timestamp::clamped(1_700_000_000),
            hash: ev.hash(),
            event: ev.canonical_bytes().to_vec(),
        }
    }

    #[test]
    fn a_hit_returns_the_event_verified_for_the_same_bytes() {
        let c = VerifiedCache::new(1 << 20);
        let e = entry(3, "A", 10);
        let first = c.verify(&ledger(), &e).expect("verifies");
        let again = c.verify(&ledger(), &e).expect("verifies");
        assert!(Arc::ptr_eq(&first, &again), "the second read is a hit");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn other_bytes_at_a_cached_index_are_verified_afresh() {
        let c = VerifiedCache::new(1 << 20);
        let e = entry(3, "A", 10);
        c.verify(&ledger(), &e).expect("verifies");
        // Another valid event now stored at the same index: its own event, not the cached.
        let other = entry(3, "B", 10);
        let got = c.verify(&ledger(), &other).expect("verifies");
        assert_eq!(got.hash(), other.hash);
        // A cached index whose bytes were altered: refused, as a fresh verification would.
        let mut altered = e.clone();
        let at = altered.event.len() / 2;
        altered.event[at] ^= 0x01;
        assert!(c.verify(&ledger(), &altered).is_err());
        // The right bytes under a doctored stored hash: refused too.
        let mut doctored = e;
        doctored.hash = EventHash::from_bytes([7; 32]);
        let f = c.verify(&ledger(), &doctored).expect_err("hash differs");
        assert_eq!(f.check, "hash");
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let one = entry(0, "A", 5).event.len();
        // Room for about four events per generation.
        let c = VerifiedCache::new(one * 8 + one / 2);
        for i in 0..40 {
            c.verify(&ledger(), &entry(i, "A", 5)).expect("verifies");
        }
        assert!(c.len() <= 9, "holds {} events", c.len());
        assert!(c.len() >= 4);
        // A disabled cache keeps nothing but still verifies.
        let d = VerifiedCache::disabled();
        d.verify(&ledger(), &entry(0, "A", 5)).expect("verifies");
        assert!(d.is_empty());
    }
}
