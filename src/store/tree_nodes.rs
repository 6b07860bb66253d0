//! Where Merkle nodes live in the log files (storage layout 3), and the check that a commit
//! group carries exactly the nodes its leaves complete. Pure arithmetic, no I/O.

use super::StoreError;
use crate::core::merkle::{NodeId, TreeHash};

/// The leaf whose append completed node `id`: the last leaf it covers.
pub fn completing_leaf(id: NodeId) -> Option<u64> {
    id.index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(id.level))?)?
        .checked_sub(1)
}

/// Nodes completed by leaves `0..n`: where leaf n's nodes start in `log-nodes`.
pub fn nodes_before(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

/// Checks that a group's nodes are exactly those its events complete, leaf by leaf from
/// level 0 (what `Frontier::push` returns for each appended leaf), and packs them in file
/// order.
pub fn pack_nodes(
    first_leaf: u64,
    leaves: u64,
    nodes: &[(NodeId, TreeHash)],
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(nodes.len() * 32);
    let mut want = (first_leaf, 0u8);
    let end = first_leaf + leaves;
    for (id, h) in nodes {
        let leaf = completing_leaf(*id);
        let (l, level) = want;
        let next = if Some(l) == leaf && id.level == level {
            Some(l)
        } else if Some(l + 1) == leaf && id.level == 0 && u32::from(level) > l.trailing_ones() {
            Some(l + 1)
        } else {
            None
        };
        match next {
            Some(l) if l < end => {
                out.extend_from_slice(h.as_bytes());
                want = (l, id.level + 1);
            }
            _ => {
                return Err(StoreError::BadGroup(format!(
                    "Merkle node (level {}, index {}) is not the next node the group's leaves {first_leaf}..{end} complete",
                    id.level, id.index
                )))
            }
        }
    }
    if leaves > 0 && out.len() as u64 != 32 * (nodes_before(end) - nodes_before(first_leaf)) {
        return Err(StoreError::BadGroup(format!(
            "the group holds {} Merkle nodes; its leaves {first_leaf}..{end} complete {}",
            nodes.len(),
            nodes_before(end) - nodes_before(first_leaf)
        )));
    }
    Ok(out)
}

/// Nodes leaf `n` completes: levels 0 up to its trailing ones.
pub fn nodes_of_leaf(n: u64) -> u64 {
    u64::from(n.trailing_ones()) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::{leaf_hash, Frontier};

    fn nodes_of(n: u64) -> Vec<Vec<(NodeId, TreeHash)>> {
        let mut f = Frontier::default();
        (0..n)
            .map(|i| f.push(leaf_hash(&i.to_be_bytes())))
            .collect()
    }

    #[test]
    fn leaf_n_starts_after_the_nodes_of_the_leaves_before_it() {
        let per_leaf = nodes_of(300);
        let mut count = 0u64;
        for (n, made) in per_leaf.iter().enumerate() {
            assert_eq!(nodes_before(n as u64), count, "leaf {n}");
            assert_eq!(nodes_of_leaf(n as u64), made.len() as u64, "leaf {n}");
            for (id, _) in made {
                assert_eq!(completing_leaf(*id), Some(n as u64));
            }
            count += made.len() as u64;
        }
    }

    #[test]
    fn a_group_must_carry_exactly_the_nodes_its_leaves_complete() {
        let per_leaf = nodes_of(40);
        let group: Vec<_> = per_leaf[10..20].iter().flatten().copied().collect();
        let packed = pack_nodes(10, 10, &group).expect("the group's own nodes");
        assert_eq!(packed.len(), 32 * group.len());
        assert!(pack_nodes(10, 9, &group).is_err(), "a leaf too many");
        assert!(
            pack_nodes(10, 11, &group).is_err(),
            "a leaf's nodes missing"
        );
        assert!(pack_nodes(11, 10, &group).is_err(), "shifted by one leaf");
        let mut dropped = group.clone();
        dropped.remove(3);
        assert!(pack_nodes(10, 10, &dropped).is_err(), "a node missing");
        let mut swapped = group.clone();
        swapped.swap(1, 2);
        assert!(pack_nodes(10, 10, &swapped).is_err(), "out of order");
        assert!(pack_nodes(10, 0, &[]).is_ok(), "no events, no nodes");
        assert!(
            pack_nodes(0, 1, &[]).is_err(),
            "an event without its leaf node"
        );
    }
}
