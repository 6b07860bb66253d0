//! Reading one unit's custody chain with every signature and link checked: the event
//! bytes must hash to the stored hash, every signature must verify, each event must name
//! the previous one as `prev` for this unit, and the first must be the `register` that
//! created it.

use serde::Serialize;

use crate::core::event::{Body, Envelope};
use crate::core::ids::{EventHash, LedgerName, LogIndex};
use crate::core::state::UnitRecord;
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::core::verify::{SignedEvent, VerifiedEvent};
use crate::store::{Store, StoreError};
use crate::verified::VerifiedCache;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unit {0} is not registered")]
    UnknownUnit(UnitId),
    #[error("chain of unit {unit} is broken at log index {index}: {detail}")]
    Broken {
        unit: UnitId,
        index: LogIndex,
        detail: String,
    },
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ChainEvent {
    pub index: LogIndex,
    pub hash: EventHash,
    pub integrated_at: Timestamp,
    /// The signed event exactly as in the log.
    pub event: Envelope,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Chain {
    pub ledger: LedgerName,
    pub unit: UnitRecord,
    pub events: Vec<ChainEvent>,
    /// Always true in a returned chain: a failed check is an error instead.
    pub signatures_verified: bool,
}

/// Checks that `ev` continues the chain of `unit` after `prev` (`None`: it must register it).
pub(crate) fn link(
    unit: &UnitId,
    prev: Option<&EventHash>,
    index: LogIndex,
    ev: &VerifiedEvent,
) -> Result<(), ChainError> {
    let broken = |detail: String| ChainError::Broken {
        unit: unit.clone(),
        index,
        detail,
    };
    match (prev, ev.body()) {
        (None, Body::Register(r)) if r.units.contains(unit) => Ok(()),
        (None, _) => Err(broken(
            "first event is not the register event of this unit".into(),
        )),
        (Some(p), b) => match b.unit_links().iter().find(|l| &l.unit == unit) {
            Some(l) if &l.prev == p => Ok(()),
            Some(l) => Err(broken(format!("prev is {}, expected {p}", l.prev))),
            None => Err(broken("event does not name this unit".into())),
        },
    }
}

/// Re-checks a chain received from elsewhere (a server): every signature, every event
/// hash, every link, and that it ends at the unit's head. Trusts nothing the sender says.
pub fn check(ledger: &LedgerName, c: &Chain) -> Result<(), ChainError> {
    let unit = &c.unit.id;
    let mut prev: Option<EventHash> = None;
    for e in &c.events {
        let broken = |detail: String| ChainError::Broken {
            unit: unit.clone(),
            index: e.index,
            detail,
        };
        let ev = SignedEvent::from_envelope(e.event.clone())
            .map_err(|err| broken(err.to_string()))?
            .verify(ledger)
            .map_err(|err| broken(err.to_string()))?;
        if ev.hash() != e.hash {
            return Err(broken(
                "the claimed hash differs from the event hash".into(),
            ));
        }
        link(unit, prev.as_ref(), e.index, &ev)?;
        prev = Some(ev.hash());
    }
    if &c.ledger != ledger || prev != Some(c.unit.head) {
        return Err(ChainError::Broken {
            unit: unit.clone(),
            index: c.events.last().map_or(LogIndex::new(0), |e| e.index),
            detail: "the chain does not end at the unit's head, or is for another ledger".into(),
        });
    }
    Ok(())
}

pub fn read<S: Store>(store: &S, ledger: &LedgerName, unit: &UnitId) -> Result<Chain, ChainError> {
    read_cached(store, ledger, unit, &VerifiedCache::disabled())
}

/// [`read`], with events verified earlier for the same stored bytes taken from `cache`
/// (see [`crate::verified`]: every entry is still read and compared byte for byte).
pub fn read_cached<S: Store>(
    store: &S,
    ledger: &LedgerName,
    unit: &UnitId,
    cache: &VerifiedCache,
) -> Result<Chain, ChainError> {
    let rec = store
        .unit(unit)?
        .ok_or_else(|| ChainError::UnknownUnit(unit.clone()))?;
    let broken = |index: LogIndex, detail: String| ChainError::Broken {
        unit: unit.clone(),
        index,
        detail,
    };
    let mut events = Vec::new();
    let mut prev: Option<EventHash> = None;
    for index in store.chain(unit)? {
        let entry = store
            .entry(index)?
            .ok_or_else(|| broken(index, "log entry missing".into()))?;
        let ev = cache
            .verify(ledger, &entry)
            .map_err(|f| broken(index, f.detail))?;
        link(unit, prev.as_ref(), index, &ev)?;
        prev = Some(ev.hash());
        events.push(ChainEvent {
            index,
            hash: ev.hash(),
            integrated_at: entry.integrated_at,
            event: ev.envelope().clone(),
        });
    }
    if prev != Some(rec.head) {
        return Err(broken(
            LogIndex::new(store.len()?),
            "the chain index does not end at the unit's head".into(),
        ));
    }
    Ok(Chain {
        ledger: ledger.clone(),
        unit: rec,
        events,
        signatures_verified: true,
    })
}
