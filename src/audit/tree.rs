//! The global log part of the audit: recompute every leaf hash from the log, rebuild the
//! Merkle tree, compare every node the store keeps, and check every checkpoint ever issued:
//! its signature under the ledger's log key, and its root against the recomputed tree at
//! its size. A log rewritten after a checkpoint was signed (even one whose chains and
//! indexes were rebuilt to be self-consistent) no longer reproduces that checkpoint.

use super::{fail, Failure};
use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::merkle::{entry_leaf_hash, Frontier, NodeId, TreeHash};
use crate::store::{LogEntry, Store, StoreError};

/// Checkpoints read per page.
const PAGE: usize = 1024;

pub struct TreeCheck {
    vkey: VerifierKey,
    frontier: Frontier,
    /// Checkpoints not yet reached, ascending by size, and where the next page starts.
    pending: std::collections::VecDeque<SignedCheckpoint>,
    next_page: u64,
    /// The largest checkpoint size whose root the log reproduced.
    pub last_good: u64,
    pub checkpoints_checked: u64,
    /// Leaves whose nodes were compared (the store's node record count).
    pub nodes: u64,
}

/// The nodes completed by appending leaf `i`.
fn completed_by(i: u64) -> impl Iterator<Item = NodeId> {
    (0..=i.trailing_ones()).map(move |l| NodeId {
        level: l as u8,
        index: i >> l,
    })
}

impl TreeCheck {
    pub fn new(vkey: VerifierKey) -> Self {
        Self {
            vkey,
            frontier: Frontier::default(),
            pending: std::collections::VecDeque::new(),
            next_page: 1,
            last_good: 0,
            checkpoints_checked: 0,
            nodes: 0,
        }
    }

    /// The stored nodes that leaves `start..end` complete, in the order `push` meets them.
    pub fn stored_nodes<S: Store>(
        store: &S,
        start: u64,
        end: u64,
    ) -> Result<Vec<(NodeId, Option<TreeHash>)>, StoreError> {
        let ids: Vec<NodeId> = (start..end).flat_map(completed_by).collect();
        let got = store.stored_nodes(&ids)?;
        Ok(ids.into_iter().zip(got).collect())
    }

    fn next_checkpoint<S: Store>(
        &mut self,
        store: &S,
    ) -> Result<Option<&SignedCheckpoint>, StoreError> {
        if self.pending.is_empty() && self.next_page != u64::MAX {
            let page = store.checkpoints(self.next_page, PAGE)?;
            self.next_page = match page.last() {
                Some(c) if page.len() == PAGE => c.checkpoint.size + 1,
                _ => u64::MAX,
            };
            self.pending.extend(page);
        }
        Ok(self.pending.front())
    }

    /// Appends the leaf of `e`, compares the nodes it completes with `stored` (which
    /// holds at least them, in order), then checks any checkpoint issued at the new size.
    pub fn push<S: Store>(
        &mut self,
        store: &S,
        e: &LogEntry,
        stored: &mut impl Iterator<Item = (NodeId, Option<TreeHash>)>,
    ) -> Result<Result<(), Failure>, StoreError> {
        let i = e.index.get();
        let leaf = entry_leaf_hash(e.integrated_at, &e.event);
        self.nodes += 1;
        for (id, h) in self.frontier.push(leaf) {
            let found = stored
                .next()
                .filter(|(sid, _)| *sid == id)
                .and_then(|(_, h)| h);
            if found != Some(h) {
                let what = if id.level == 0 {
                    "the stored leaf hash is not the hash of this entry: the entry or the tree \
                     was altered after it was logged"
                        .to_owned()
                } else {
                    format!(
                        "stored tree node level {} index {} (leaves {}..{}) is {}",
                        id.level,
                        id.index,
                        id.start(),
                        id.start() + (1 << id.level),
                        if found.is_some() { "wrong" } else { "missing" }
                    )
                };
                return Ok(Err(fail(Some(i), Some(e.hash.to_string()), "tree", what)));
            }
        }
        let size = self.frontier.size();
        while let Some(cp) = self.next_checkpoint(store)? {
            if cp.checkpoint.size > size {
                break;
            }
            let cp = self
                .pending
                .pop_front()
                .expect("invariant: next_checkpoint just returned the front");
            if let Err(f) = self.judge(&cp, size) {
                return Ok(Err(f));
            }
        }
        Ok(Ok(()))
    }

    fn judge(&mut self, cp: &SignedCheckpoint, size: u64) -> Result<(), Failure> {
        let c = &cp.checkpoint;
        self.checkpoints_checked += 1;
        if let Err(e) = cp.verify(&self.vkey) {
            return Err(fail(
                None,
                None,
                "checkpoint",
                format!("checkpoint at size {}: {e}", c.size),
            ));
        }
        debug_assert_eq!(c.size, size, "checkpoints are judged at their own size");
        if c.root != self.frontier.root() {
            let (lo, hi) = (self.last_good, c.size);
            let detail = if hi - lo == 1 {
                format!(
                    "the log no longer reproduces the signed checkpoint at size {hi}: event {lo} \
                     differs from the event that was logged there"
                )
            } else {
                format!(
                    "the log no longer reproduces the signed checkpoint at size {hi} (root {}), \
                     but still reproduces the one at size {lo}: the first rewritten event is \
                     in {lo}..{hi}",
                    c.root
                )
            };
            return Err(fail(Some(lo), None, "checkpoint", detail));
        }
        self.last_good = c.size;
        Ok(())
    }

    /// After the whole log: no checkpoint may claim more events than it holds.
    pub fn finish<S: Store>(
        &mut self,
        store: &S,
        total: u64,
    ) -> Result<Option<Failure>, StoreError> {
        if let Some(cp) = self.next_checkpoint(store)? {
            let size = cp.checkpoint.size;
            return Ok(Some(fail(
                Some(total),
                None,
                "checkpoint",
                format!(
                    "a checkpoint was signed at size {size} but the log holds {total} events: \
                     events were removed from the end of the log"
                ),
            )));
        }
        Ok(None)
    }
}
