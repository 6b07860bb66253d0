//! One unit's chain, verified exactly as `chain::read` verifies it (canonical bytes, event
//! hash, signatures, links, ending at the unit's head), with the verified events kept in a
//! cache shared by the units resolved in one batch. Units of a lot share their register,
//! transfer and accept events: each is decoded and verified once per batch instead of once
//! per unit, and no envelope is copied.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chain::{link, ChainError};
use crate::core::ids::{EventHash, LedgerName, LogIndex};
use crate::core::unit::UnitId;
use crate::core::verify::VerifiedEvent;
use crate::store::{Store, StoreError};
use crate::verified::VerifiedCache;

/// Verified events by log index; cleared when it holds `cap` of them. Misses go to the
/// shared [`VerifiedCache`] when there is one.
pub struct EventCache {
    map: HashMap<LogIndex, Arc<VerifiedEvent>>,
    cap: usize,
    shared: Option<Arc<VerifiedCache>>,
}

impl Default for EventCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventCache {
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap: cap.max(1),
            shared: None,
        }
    }

    /// A cache whose misses are served by `shared` (process-wide, across requests).
    #[must_use]
    pub fn backed_by(cap: usize, shared: Arc<VerifiedCache>) -> Self {
        Self {
            shared: Some(shared),
            ..Self::new(cap)
        }
    }

    fn get<S: Store>(
        &mut self,
        store: &S,
        ledger: &LedgerName,
        unit: &UnitId,
        index: LogIndex,
    ) -> Result<Result<Arc<VerifiedEvent>, ChainError>, StoreError> {
        if let Some(e) = self.map.get(&index) {
            return Ok(Ok(Arc::clone(e)));
        }
        let broken = |detail: String| ChainError::Broken {
            unit: unit.clone(),
            index,
            detail,
        };
        let Some(entry) = store.entry(index)? else {
            return Ok(Err(broken("log entry missing".into())));
        };
        let verified = match &self.shared {
            Some(shared) => shared.verify(ledger, &entry),
            None => crate::audit::check_entry(ledger, &entry).map(Arc::new),
        };
        let ev = match verified {
            Ok(ev) => ev,
            Err(f) => return Ok(Err(broken(f.detail))),
        };
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        self.map.insert(index, Arc::clone(&ev));
        Ok(Ok(ev))
    }
}

/// A verified chain: log index and event, oldest first.
pub type Verified = Vec<(LogIndex, Arc<VerifiedEvent>)>;

/// The unit's verified chain, oldest first, or why it is broken.
pub fn chain<S: Store>(
    store: &S,
    ledger: &LedgerName,
    unit: &UnitId,
    cache: &mut EventCache,
) -> Result<Result<Verified, ChainError>, StoreError> {
    let Some(rec) = store.unit(unit)? else {
        return Ok(Err(ChainError::UnknownUnit(unit.clone())));
    };
    let mut out = Vec::new();
    let mut prev: Option<EventHash> = None;
    for index in store.chain(unit)? {
        let ev = match cache.get(store, ledger, unit, index)? {
            Ok(ev) => ev,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = link(unit, prev.as_ref(), index, &ev) {
            return Ok(Err(e));
        }
        prev = Some(ev.hash());
        out.push((index, ev));
    }
    if prev != Some(rec.head) {
        return Ok(Err(ChainError::Broken {
            unit: unit.clone(),
            index: LogIndex::new(store.len()?),
            detail: "the chain index does not end at the unit's head".into(),
        }));
    }
    Ok(Ok(out))
}
