//! Merkle math against an independent implementation (cloudflare's `tlog_tiles`, a port of
//! Go's sumdb/tlog): same roots and same proofs for random sizes and indexes; our
//! verifiers accept the proofs and refuse any other leaf, index, size or flipped bit.

use std::collections::HashMap;

use custody::core::merkle::{
    self, assemble, consistency_spans, inclusion_spans, leaf_hash, nodes_for, Frontier, NodeId,
    TreeHash,
};
use proptest::prelude::*;
use tlog_tiles::{Error as TlogError, HashReader};

/// A tree built by our frontier, nodes kept as the store keeps them.
struct Tree {
    leaves: Vec<TreeHash>,
    nodes: HashMap<NodeId, TreeHash>,
    roots: Vec<TreeHash>,
}

fn build(n: u64) -> Tree {
    let mut f = Frontier::default();
    let mut nodes = HashMap::new();
    let mut leaves = Vec::new();
    let mut roots = vec![f.root()];
    for i in 0..n {
        let l = leaf_hash(format!("leaf {i}").as_bytes());
        leaves.push(l);
        nodes.extend(f.push(l));
        roots.push(f.root());
    }
    Tree {
        leaves,
        nodes,
        roots,
    }
}

impl Tree {
    fn spans(&self, spans: &[merkle::Span]) -> Vec<TreeHash> {
        let ids = nodes_for(spans);
        let read: Vec<_> = ids.iter().map(|id| (*id, self.nodes[id])).collect();
        assemble(spans, &read).expect("all nodes present")
    }
    fn inclusion(&self, m: u64, n: u64) -> Vec<TreeHash> {
        self.spans(&inclusion_spans(m, n))
    }
    fn consistency(&self, m: u64, n: u64) -> Vec<TreeHash> {
        self.spans(&consistency_spans(m, n))
    }
}

/// The independent implementation reads the same nodes through its own index scheme.
impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|&i| {
                let (level, index) = tlog_tiles::split_stored_hash_index(i);
                self.nodes
                    .get(&NodeId { level, index })
                    .map(|h| tlog_tiles::Hash(*h.as_bytes()))
                    .ok_or(TlogError::IndexesNotInTree)
            })
            .collect()
    }
}

fn theirs(h: &[tlog_tiles::Hash]) -> Vec<TreeHash> {
    h.iter().map(|h| TreeHash::from_bytes(h.0)).collect()
}

fn flip(h: &TreeHash, bit: usize) -> TreeHash {
    let mut b = *h.as_bytes();
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    TreeHash::from_bytes(b)
}

#[test]
fn leaf_and_node_hashes_match_the_other_implementation() {
    assert_eq!(
        leaf_hash(b"abc").as_bytes(),
        &tlog_tiles::record_hash(b"abc").0
    );
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_eq!(
        merkle::node_hash(&a, &b).as_bytes(),
        &tlog_tiles::node_hash(
            tlog_tiles::Hash(*a.as_bytes()),
            tlog_tiles::Hash(*b.as_bytes())
        )
        .0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn roots_and_inclusion_proofs_agree_and_verify(n in 1u64..700, m_seed: u64, bit in 0usize..256) {
        let t = build(n);
        let bigger = build(n + 1);
        let m = m_seed % n;
        let root = t.roots[n as usize];
        prop_assert_eq!(
            root.as_bytes(),
            &tlog_tiles::tree_hash(n, &t).expect("their root").0
        );
        let proof = t.inclusion(m, n);
        let their = tlog_tiles::prove_record(n, m, &t).expect("their proof");
        prop_assert_eq!(&proof, &theirs(&their));
        let leaf = t.leaves[m as usize];
        prop_assert!(merkle::verify_inclusion(&leaf, m, n, &proof, &root).is_ok());
        prop_assert!(tlog_tiles::check_record(&their, n, tlog_tiles::Hash(*root.as_bytes()), m, tlog_tiles::Hash(*leaf.as_bytes())).is_ok());

        // Any other leaf, index, size, root, or a flipped bit in any proof hash fails.
        prop_assert!(merkle::verify_inclusion(&flip(&leaf, bit), m, n, &proof, &root).is_err());
        prop_assert!(merkle::verify_inclusion(&leaf, m, n, &proof, &flip(&root, bit)).is_err());
        if n > 1 {
            let other = (m + 1 + m_seed % (n - 1)) % n;
            prop_assert!(merkle::verify_inclusion(&leaf, other, n, &proof, &root).is_err());
            prop_assert!(merkle::verify_inclusion(&t.leaves[other as usize], m, n, &proof, &root).is_err());
        }
        // Another size, with that size's real root.
        prop_assert!(merkle::verify_inclusion(&leaf, m, n + 1, &proof, &bigger.roots[n as usize + 1]).is_err());
        if n > 1 {
            prop_assert!(merkle::verify_inclusion(&leaf, m.min(n - 2), n - 1, &proof, &t.roots[n as usize - 1]).is_err());
        }
        prop_assert!(merkle::verify_inclusion(&leaf, n, n, &proof, &root).is_err());
        for k in 0..proof.len() {
            let mut bad = proof.clone();
            bad[k] = flip(&bad[k], bit);
            prop_assert!(merkle::verify_inclusion(&leaf, m, n, &bad, &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(merkle::verify_inclusion(&leaf, m, n, &longer, &root).is_err());
        if !proof.is_empty() {
            prop_assert!(merkle::verify_inclusion(&leaf, m, n, &proof[..proof.len() - 1], &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_agree_and_verify(n in 1u64..700, m_seed: u64, bit in 0usize..256) {
        let t = build(n);
        let bigger = build(n + 1);
        let m = 1 + m_seed % n; // 1..=n
        let (old, new) = (t.roots[m as usize], t.roots[n as usize]);
        let proof = t.consistency(m, n);
        let their = tlog_tiles::prove_tree(n, m, &t).expect("their proof");
        prop_assert_eq!(&proof, &theirs(&their));
        prop_assert!(merkle::verify_consistency(m, n, &old, &new, &proof).is_ok());
        prop_assert!(tlog_tiles::check_tree(&their, n, tlog_tiles::Hash(*new.as_bytes()), m, tlog_tiles::Hash(*old.as_bytes())).is_ok());

        prop_assert!(merkle::verify_consistency(m, n, &flip(&old, bit), &new, &proof).is_err());
        prop_assert!(merkle::verify_consistency(m, n, &old, &flip(&new, bit), &proof).is_err());
        if m < n {
            for k in 0..proof.len() {
                let mut bad = proof.clone();
                bad[k] = flip(&bad[k], bit);
                prop_assert!(merkle::verify_consistency(m, n, &old, &new, &bad).is_err());
            }
            // Other sizes, each with its real root.
            let r = |k: u64| t.roots[k as usize];
            prop_assert!(merkle::verify_consistency(m + 1, n, &r(m + 1), &new, &proof).is_err());
            prop_assert!(merkle::verify_consistency(m, n + 1, &old, &bigger.roots[n as usize + 1], &proof).is_err());
            if m > 1 {
                prop_assert!(merkle::verify_consistency(m - 1, n, &r(m - 1), &new, &proof).is_err());
            }
            prop_assert!(merkle::verify_consistency(m, n, &old, &new, &proof[1..]).is_err());
        }
        prop_assert!(merkle::verify_consistency(n, m.saturating_sub(1), &new, &old, &proof).is_err());
    }
}

#[test]
fn consistency_with_the_empty_tree_and_with_itself() {
    let t = build(5);
    let empty = TreeHash::empty();
    assert!(merkle::verify_consistency(0, 5, &empty, &t.roots[5], &[]).is_ok());
    assert!(merkle::verify_consistency(0, 5, &t.roots[1], &t.roots[5], &[]).is_err());
    assert!(merkle::verify_consistency(5, 5, &t.roots[5], &t.roots[5], &[]).is_ok());
    assert!(merkle::verify_consistency(5, 5, &t.roots[5], &t.roots[4], &[]).is_err());
}

#[test]
fn proofs_read_logarithmically_many_nodes() {
    // At about a million leaves a proof needs at most ~2·log2(n) stored nodes.
    let n = (1u64 << 20) + 12_345;
    for m in [0, 1, n / 2, n - 2, n - 1] {
        let ids = nodes_for(&inclusion_spans(m, n));
        assert!(
            ids.len() <= 42,
            "inclusion of {m} reads {} nodes",
            ids.len()
        );
    }
    for m in [1, 7, 1 << 19, n - 1] {
        let ids = nodes_for(&consistency_spans(m, n));
        assert!(
            ids.len() <= 84,
            "consistency from {m} reads {} nodes",
            ids.len()
        );
    }
}

/// The RFC 6962 reference tree used by the certificate-transparency test suites: eight
/// leaves and the root of every prefix.
#[test]
fn rfc6962_reference_roots() {
    let leaves = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut f = Frontier::default();
    for (l, r) in leaves.iter().zip(roots) {
        f.push(leaf_hash(&hex::decode(l).expect("hex")));
        assert_eq!(hex::encode(f.root().as_bytes()), r);
    }
}
