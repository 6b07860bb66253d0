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
use crate::core::verify::SignedEvent;
use crate::store::{Store, StoreError};

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

#[derive(Debug, Clone, Serialize)]
pub struct ChainEvent {
    pub index: LogIndex,
    pub hash: EventHash,
    pub integrated_at: Timestamp,
    /// The signed event exactly as in the log.
    pub event: Envelope,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub ledger: LedgerName,
    pub unit: UnitRecord,
    pub events: Vec<ChainEvent>,
    /// Always true in a returned chain: a failed check is an error instead.
    pub signatures_verified: bool,
}

pub fn read<S: Store>(store: &S, ledger: &LedgerName, unit: &UnitId) -> Result<Chain, ChainError> {
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
        let ev = SignedEvent::decode(&entry.event)
            .map_err(|e| broken(index, e.to_string()))?
            .verify(ledger)
            .map_err(|e| broken(index, e.to_string()))?;
        if ev.hash() != entry.hash {
            return Err(broken(
                index,
                "stored hash differs from the event hash".into(),
            ));
        }
        let body = ev.body();
        match (&prev, body) {
            (None, Body::Register(r)) if r.units.contains(unit) => {}
            (None, _) => {
                return Err(broken(
                    index,
                    "first event is not the register event of this unit".into(),
                ))
            }
            (Some(p), b) => match b.unit_links().iter().find(|l| &l.unit == unit) {
                Some(l) if &l.prev == p => {}
                Some(l) => return Err(broken(index, format!("prev is {}, expected {p}", l.prev))),
                None => return Err(broken(index, "event does not name this unit".into())),
            },
        }
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
