//! A replica: a local store that receives a ledger's verified log, entry for entry with the
//! primary's log indexes and integration times, and its signed checkpoints
//! (`custody monitor --mirror DIR`, served by `custody serve --read-only`).
//!
//! The replica trusts nothing but the log key pinned by its monitor. The monitor verifies
//! each entry (canonical bytes, signatures, hash); the replica then runs the chain rules
//! against its own state exactly as the primary's writer did, so an entry the rules
//! refuse is caught here too, and it rebuilds the Merkle tree: a checkpoint is stored only
//! when its root is the root of the entries it holds. Entries it already holds must come
//! back identical: a server that serves another history than before is caught.

use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::merkle::{entry_leaf_hash, Frontier};
use crate::core::rules::{self, Context};
use crate::core::state::Touches;
use crate::core::values::Timestamp;
use crate::core::verify::VerifiedEvent;
use crate::store::{Committed, Group, LedgerMeta, LogEntry, Store, StoreError};

use super::overlay::{Known, Overlay};

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the mirror holds ledger {found}, not {expected}")]
    OtherLedger { expected: String, found: String },
    /// The entry cannot follow the ones before it (order, time or a chain rule).
    #[error("entry {index}: {detail}")]
    Refused { index: u64, detail: String },
    /// The server now serves another entry than the one the mirror took before.
    #[error("entry {index} differs from the one the mirror received before: {detail}")]
    Differs { index: u64, detail: String },
    #[error("checkpoint of size {size}: {detail}")]
    Checkpoint { size: u64, detail: String },
}

pub struct Replica<S: Store> {
    store: S,
    frontier: Frontier,
    last_time: Option<Timestamp>,
}

impl<S: Store> Replica<S> {
    /// Opens (or initializes, when empty) a replica of the log `vkey` names.
    pub fn open(store: S, vkey: &VerifierKey) -> Result<Self, ReplicaError> {
        match store.meta()? {
            None => store.init(&LedgerMeta {
                name: vkey.name.clone(),
                log_key: vkey.key,
            })?,
            Some(m) if m.name == vkey.name && m.log_key == vkey.key => {}
            Some(m) => {
                return Err(ReplicaError::OtherLedger {
                    expected: format!("{} (key {})", vkey.name, vkey.key),
                    found: format!("{} (key {})", m.name, m.log_key),
                })
            }
        }
        let size = store.len()?;
        let frontier = crate::log::frontier(&store, size)?;
        let last_time = match size.checked_sub(1) {
            Some(i) => store
                .entry(crate::core::ids::LogIndex::new(i))?
                .map(|e| e.integrated_at),
            None => None,
        };
        Ok(Self {
            store,
            frontier,
            last_time,
        })
    }

    /// Entries held.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.frontier.size()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Takes consecutive verified entries: those it holds must be identical, the rest are
    /// judged by the chain rules and committed durably in one group.
    pub fn append(&mut self, entries: &[(LogEntry, VerifiedEvent)]) -> Result<(), ReplicaError> {
        let mut overlay = Overlay::default();
        let mut known = Known::default();
        let mut group = Group::default();
        let mut frontier = self.frontier.clone();
        let mut last_time = self.last_time;
        for (e, ev) in entries {
            let i = e.index.get();
            if i < frontier.size() {
                let held = self
                    .store
                    .entry(e.index)?
                    .ok_or_else(|| StoreError::Corrupt {
                        location: format!("mirror entry {i}"),
                        detail: "missing below the mirror's length".into(),
                    })?;
                if held.hash != e.hash || held.integrated_at != e.integrated_at {
                    return Err(ReplicaError::Differs {
                        index: i,
                        detail: format!(
                            "now {} integrated {}, before {} integrated {}",
                            e.hash, e.integrated_at, held.hash, held.integrated_at
                        ),
                    });
                }
                continue;
            }
            let refused = |detail: String| ReplicaError::Refused { index: i, detail };
            if i != frontier.size() {
                return Err(refused(format!("expected entry {}", frontier.size())));
            }
            if last_time.is_some_and(|t| e.integrated_at < t) {
                return Err(refused("integrated_at goes backwards".into()));
            }
            let state = overlay.load(&self.store, &mut known, &Touches::of(ev.envelope()))?;
            let ctx = Context {
                index: e.index,
                now: e.integrated_at,
            };
            let delta = rules::apply(&state, ev, ctx)
                .map_err(|err| refused(format!("rule {}: {err}", err.rule())))?;
            group
                .nodes
                .extend(frontier.push(entry_leaf_hash(e.integrated_at, &e.event)));
            let c = Committed {
                entry: e.clone(),
                delta,
            };
            overlay.apply(&c);
            group.events.push(c);
            last_time = Some(e.integrated_at);
        }
        if !group.events.is_empty() {
            self.store.commit(&group)?;
            self.frontier = frontier;
            self.last_time = last_time;
        }
        Ok(())
    }

    /// Stores a verified checkpoint of exactly the entries held.
    pub fn checkpoint(&mut self, cp: &SignedCheckpoint) -> Result<(), ReplicaError> {
        let size = cp.checkpoint.size;
        let bad = |detail: String| ReplicaError::Checkpoint { size, detail };
        if size != self.frontier.size() {
            return Err(bad(format!(
                "the mirror holds {} entries",
                self.frontier.size()
            )));
        }
        if cp.checkpoint.root != self.frontier.root() {
            return Err(bad(
                "its root is not the root of the mirrored entries".into()
            ));
        }
        if self.store.checkpoint(size)?.is_some() {
            return Ok(());
        }
        self.store.commit(&Group {
            checkpoint: Some(cp.clone()),
            ..Group::default()
        })?;
        Ok(())
    }
}
