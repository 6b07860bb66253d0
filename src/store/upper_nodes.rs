//! The upper levels of the Merkle tree (level [`LOWEST`] and up) in memory, for proofs.
//!
//! In `log-nodes` a leaf's nodes sit together, so the nodes of one level are spread over the
//! whole file: every upper node of a proof is on a page of its own. The lower levels of an
//! inclusion proof all lie inside one subtree of 2^`LOWEST` leaves, whose nodes are 4 KiB
//! of the file. With the upper levels here, a proof reads about two pages of `log-nodes`
//! instead of one per level (measured at 5M events: inclusion proof p99 0.94 ms reading the
//! file alone; BENCHMARKS.md). The cache holds 2n / 2^`LOWEST` nodes for n leaves: 10 MB at
//! 10M events.
//!
//! It is a cache of durable data: built from `log-nodes` on the first proof that needs it,
//! then extended by each commit's nodes, and dropped (to be built again) if a commit's nodes
//! do not follow on. The audit never reads it (`Store::stored_nodes`).

use std::sync::{PoisonError, RwLock};

use super::StoreError;
use crate::core::merkle::{NodeId, TreeHash};

/// The lowest level kept in memory.
pub const LOWEST: u8 = 6;

#[derive(Default)]
struct Levels {
    /// `levels[k]` holds level `LOWEST + k`, nodes `0..(leaves >> level)`.
    levels: Vec<Vec<TreeHash>>,
    leaves: u64,
}

impl Levels {
    fn get(&self, id: NodeId) -> Option<TreeHash> {
        let k = usize::from(id.level.checked_sub(LOWEST)?);
        let i = usize::try_from(id.index).ok()?;
        self.levels.get(k)?.get(i).copied()
    }

    /// Adds a commit's nodes; false if they do not follow on from what it holds.
    fn extend(&mut self, nodes: &[(NodeId, TreeHash)]) -> bool {
        for (id, h) in nodes {
            let Some(k) = id.level.checked_sub(LOWEST).map(usize::from) else {
                continue;
            };
            while self.levels.len() <= k {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[k];
            match (level.len() as u64).cmp(&id.index) {
                // Already read from the file when the cache was built.
                std::cmp::Ordering::Greater => {}
                std::cmp::Ordering::Equal => level.push(*h),
                std::cmp::Ordering::Less => return false,
            }
        }
        true
    }
}

#[derive(Default)]
pub struct UpperNodes {
    inner: RwLock<Option<Levels>>,
}

/// Every node at level `LOWEST` and up in a tree of `leaves` leaves, level by level.
fn all_upper(leaves: u64) -> Vec<NodeId> {
    (LOWEST..64)
        .take_while(|&level| leaves >> level > 0)
        .flat_map(|level| (0..leaves >> level).map(move |index| NodeId { level, index }))
        .collect()
}

impl UpperNodes {
    /// The nodes `ids` in a tree of `len` leaves: upper ones from memory (building it with
    /// `read` on first use), the rest, and any the cache does not hold yet, with `read`.
    pub fn nodes(
        &self,
        ids: &[NodeId],
        len: u64,
        read: impl Fn(&[NodeId], u64) -> Result<Vec<Option<TreeHash>>, StoreError>,
    ) -> Result<Vec<Option<TreeHash>>, StoreError> {
        if ids.iter().any(|id| id.level >= LOWEST) {
            self.ensure_built(len, &read)?;
        }
        let mut out: Vec<Option<TreeHash>> = {
            let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            ids.iter()
                .map(|&id| {
                    let built = g.as_ref()?;
                    // Only what the tree of `len` leaves holds.
                    let leaf = super::tree_nodes::completing_leaf(id)?;
                    (leaf < len.min(built.leaves))
                        .then(|| built.get(id))
                        .flatten()
                })
                .collect()
        };
        let missing: Vec<NodeId> = ids
            .iter()
            .zip(&out)
            .filter(|(_, h)| h.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !missing.is_empty() {
            let mut found = read(&missing, len)?.into_iter();
            for h in out.iter_mut().filter(|h| h.is_none()) {
                *h = found.next().flatten();
            }
        }
        Ok(out)
    }

    fn ensure_built(
        &self,
        len: u64,
        read: &impl Fn(&[NodeId], u64) -> Result<Vec<Option<TreeHash>>, StoreError>,
    ) -> Result<(), StoreError> {
        if self
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if g.is_some() {
            return Ok(());
        }
        let ids = all_upper(len);
        let hashes = read(&ids, len)?;
        let mut built = Levels {
            levels: Vec::new(),
            leaves: len,
        };
        let nodes: Vec<(NodeId, TreeHash)> = ids
            .into_iter()
            .zip(hashes)
            .map(|(id, h)| {
                h.map(|h| (id, h)).ok_or_else(|| StoreError::Corrupt {
                    location: format!("Merkle node level {} index {}", id.level, id.index),
                    detail: format!("missing from a tree of {len} leaves"),
                })
            })
            .collect::<Result<_, _>>()?;
        if built.extend(&nodes) {
            *g = Some(built);
        }
        Ok(())
    }

    /// After a durable commit that made the tree `leaves` leaves: adds the commit's nodes,
    /// or drops the cache if they do not follow on.
    pub fn committed(&self, nodes: &[(NodeId, TreeHash)], leaves: u64) {
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Some(built) = g.as_mut() else { return };
        if built.extend(nodes) {
            built.leaves = built.leaves.max(leaves);
        } else {
            *g = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::{leaf_hash, Frontier};
    use std::collections::HashMap;

    #[test]
    fn answers_like_the_file_before_and_after_commits() {
        let mut f = Frontier::default();
        let mut file: HashMap<NodeId, TreeHash> = HashMap::new();
        let mut groups = vec![];
        for g in 0..40u64 {
            let mut nodes = vec![];
            for i in 0..37u64 {
                nodes.extend(f.push(leaf_hash(&(g * 37 + i).to_be_bytes())));
            }
            groups.push((nodes, f.size()));
        }
        let read_count = std::cell::Cell::new(0usize);
        let cache = UpperNodes::default();
        let mut len = 0;
        for (nodes, size) in &groups {
            file.extend(nodes.iter().copied());
            len = *size;
            cache.committed(nodes, len);
            let ids: Vec<NodeId> = (0..=10u8)
                .flat_map(|level| (0..=(len >> level)).map(move |index| NodeId { level, index }))
                .collect();
            let want: Vec<Option<TreeHash>> = ids.iter().map(|id| file.get(id).copied()).collect();
            let read = |ids: &[NodeId], _len: u64| {
                read_count.set(read_count.get() + ids.len());
                Ok(ids.iter().map(|id| file.get(id).copied()).collect())
            };
            assert_eq!(cache.nodes(&ids, len, read).expect("nodes"), want, "{len}");
        }
        // Once built, upper nodes come from memory.
        let before = read_count.get();
        let upper = all_upper(len);
        assert!(!upper.is_empty());
        let read = |ids: &[NodeId], _len: u64| {
            read_count.set(read_count.get() + ids.len());
            Ok(ids.iter().map(|id| file.get(id).copied()).collect())
        };
        let got = cache.nodes(&upper, len, read).expect("nodes");
        assert_eq!(read_count.get(), before, "no file read for upper nodes");
        assert!(got.iter().all(Option::is_some));
        // Nodes that do not follow on drop the cache, which is then built again.
        cache.committed(
            &[(
                NodeId {
                    level: 7,
                    index: len,
                },
                leaf_hash(b"x"),
            )],
            len + 1,
        );
        assert!(cache.inner.read().expect("lock").is_none());
    }
}
