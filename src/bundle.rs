//! Exporting a unit's evidence bundle (`core::bundle`, FORMAT.md §15) from a store: the
//! unit's chain, every event of every party involved (signers, named parties, and, through
//! their enrollments and profiles, sponsors, parents and owners, up to the operator's
//! genesis), and an inclusion proof of each against the latest checkpoint.

use std::collections::{BTreeSet, VecDeque};

use crate::core::bundle::{Bundle, Entry, FORMAT};
use crate::core::event::{Body, Envelope};
use crate::core::ids::{EventHash, LogIndex, PartyId};
use crate::core::state::Touches;
use crate::core::unit::UnitId;
use crate::log::{self, LogError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("unit {0} is not registered")]
    UnknownUnit(UnitId),
    #[error("no checkpoint covers the unit's last event (log index {index}) yet")]
    NotCovered { index: u64 },
    #[error("the log is inconsistent at {what}: {detail}")]
    Corrupt { what: String, detail: String },
}

fn corrupt(what: impl ToString, detail: impl ToString) -> ExportError {
    ExportError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn envelope<S: Store>(store: &S, i: u64) -> Result<Envelope, ExportError> {
    let e = store
        .entry(LogIndex::new(i))?
        .ok_or_else(|| corrupt(format!("log index {i}"), "entry missing"))?;
    serde_json::from_slice(&e.event).map_err(|err| corrupt(format!("log index {i}"), err))
}

/// The log indexes of a party's own chain (genesis or enroll, then updates, rotations and
/// revocations), read back from its head.
fn party_chain<S: Store>(store: &S, p: &PartyId) -> Result<Vec<u64>, ExportError> {
    let rec = store
        .party(p)?
        .ok_or_else(|| corrupt(format!("party {p}"), "named in the log but not enrolled"))?;
    let mut out = Vec::new();
    let mut h: EventHash = rec.head;
    for _ in 0..1_000_000 {
        let i = store
            .index_of(&h)?
            .ok_or_else(|| corrupt(format!("party {p}"), format!("event {h} not in the log")))?
            .get();
        out.push(i);
        h = match envelope(store, i)?.body {
            Body::Update(b) => b.prev,
            Body::RotateKey(b) => b.prev,
            Body::RevokeKey(b) => b.prev,
            _ => return Ok(out),
        };
    }
    Err(corrupt(format!("party {p}"), "party chain does not end"))
}

/// The bundle of `unit` against the latest checkpoint.
pub fn export<S: Store>(store: &S, unit: &UnitId) -> Result<Bundle, ExportError> {
    let meta = store
        .meta()?
        .ok_or_else(|| corrupt("ledger", "not initialized"))?;
    if store.unit(unit)?.is_none() {
        return Err(ExportError::UnknownUnit(unit.clone()));
    }
    let chain: Vec<u64> = store.chain(unit)?.into_iter().map(LogIndex::get).collect();
    let last = chain.last().copied().unwrap_or(0);
    let cp = store
        .latest_checkpoint()?
        .filter(|c| c.checkpoint.size > last)
        .ok_or(ExportError::NotCovered { index: last })?;
    let size = cp.checkpoint.size;
    // Every party whose events the rules read when replaying the chain, transitively.
    let mut wanted: BTreeSet<u64> = chain.iter().copied().collect();
    let mut seen: BTreeSet<PartyId> = BTreeSet::new();
    let mut queue: VecDeque<u64> = chain.iter().copied().collect();
    if let Some(op) = store.operator()? {
        seen.insert(op.clone());
        for i in party_chain(store, &op)? {
            if i < size && wanted.insert(i) {
                queue.push_back(i);
            }
        }
    }
    while let Some(i) = queue.pop_front() {
        let env = envelope(store, i)?;
        let t = Touches::of(&env);
        let mut parties = t.parties;
        for k in &t.keys {
            parties.extend(store.key_owner(k)?);
        }
        for p in parties {
            if !seen.insert(p.clone()) || store.party(&p)?.is_none() {
                continue;
            }
            for j in party_chain(store, &p)? {
                if j < size && wanted.insert(j) {
                    queue.push_back(j);
                }
            }
        }
    }
    let mut entries = Vec::with_capacity(wanted.len());
    for i in wanted {
        let e = store
            .entry(LogIndex::new(i))?
            .ok_or_else(|| corrupt(format!("log index {i}"), "entry missing"))?;
        let proof = log::prove_inclusion(store, LogIndex::new(i), size)?;
        entries.push(Entry {
            index: i,
            integrated_at: e.integrated_at,
            event: serde_json::from_slice(&e.event)
                .map_err(|err| corrupt(format!("log index {i}"), err))?,
            proof: proof.hashes,
        });
    }
    Ok(Bundle {
        format: FORMAT.to_owned(),
        ledger: meta.name,
        unit: unit.clone(),
        checkpoint: cp.to_note(),
        chain,
        entries,
        resolution: None,
    })
}
