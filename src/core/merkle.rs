//! RFC 6962 / RFC 9162 Merkle tree math over the global log: leaf and node hashes, the
//! stored-node addressing, the append frontier, proof construction plans and proof
//! verification. Pure: proofs are built from node hashes the caller reads in one batch.
//!
//! Node `(level, index)` is the root of the complete subtree over leaves
//! `[index << level, (index + 1) << level)`. Appending leaf `n` completes the node
//! `(0, n)` and, for every level `l` where `n + 1` is a multiple of `2^l`, the node
//! `(l, (n + 1) / 2^l - 1)`: on average two nodes per leaf, at most `1 + log2 n`. Every
//! hash a proof needs is either one stored node or the fold of at most `log2 n` of them,
//! so proofs never walk the log.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::FieldError;
use super::values::Timestamp;

/// Longest proof accepted: a tree of `2^64` leaves has paths of 64 hashes.
pub const MAX_PROOF_LEN: usize = 64;

/// A Merkle tree hash (leaf, node or root). Standard base64 on the wire, as in checkpoints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TreeHash([u8; 32]);

impl TreeHash {
    #[must_use]
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::Invalid {
            kind: "tree hash",
            value: s.chars().take(80).collect(),
            rule: "32 bytes in standard base64 with padding",
        };
        let raw = B64.decode(s).map_err(|_| bad())?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| bad())?;
        // Only one spelling: re-encoding must give the input back.
        if B64.encode(arr) != s {
            return Err(bad());
        }
        Ok(Self(arr))
    }
    /// The root of the empty tree: SHA-256 of the empty string.
    #[must_use]
    pub fn empty() -> Self {
        Self(Sha256::digest([]).into())
    }
}

impl fmt::Display for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}
impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash({self})")
    }
}
impl TryFrom<String> for TreeHash {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<TreeHash> for String {
    fn from(h: TreeHash) -> String {
        h.to_string()
    }
}

/// `SHA-256(0x00 || leaf)`.
#[must_use]
pub fn leaf_hash(leaf: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    TreeHash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
#[must_use]
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    TreeHash(h.finalize().into())
}

/// Domain-separation prefix of a log leaf (FORMAT.md §8).
pub const LEAF_PREFIX: &[u8] = b"custody:v1:leaf\0";

/// The leaf bytes of a log entry: `"custody:v1:leaf\0" || integrated_at || "\0" || event`,
/// where `integrated_at` is the 20-character timestamp and `event` the JCS bytes of the
/// whole envelope, signatures included.
#[must_use]
pub fn leaf_bytes(integrated_at: Timestamp, event: &[u8]) -> Vec<u8> {
    let t = integrated_at.to_string();
    let mut v = Vec::with_capacity(LEAF_PREFIX.len() + t.len() + 1 + event.len());
    v.extend_from_slice(LEAF_PREFIX);
    v.extend_from_slice(t.as_bytes());
    v.push(0);
    v.extend_from_slice(event);
    v
}

/// The leaf hash of a log entry (without building the leaf bytes).
#[must_use]
pub fn entry_leaf_hash(integrated_at: Timestamp, event: &[u8]) -> TreeHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(LEAF_PREFIX);
    h.update(integrated_at.to_string().as_bytes());
    h.update([0u8]);
    h.update(event);
    TreeHash(h.finalize().into())
}

/// Address of a stored node: the complete subtree of `2^level` leaves starting at leaf
/// `index << level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    #[must_use]
    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }
    /// First leaf covered.
    #[must_use]
    pub const fn start(&self) -> u64 {
        self.index << self.level
    }
}

/// The complete subtrees that make up leaves `[lo, hi)`, left to right: at each step the
/// largest aligned power-of-two block that fits. For the ranges that occur in RFC 9162
/// proofs (and for `[0, n)`) block sizes strictly decrease, so folding them from the right
/// gives the range's Merkle tree hash (see [`fold`]).
#[must_use]
pub fn range_nodes(lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut i = lo;
    while i < hi {
        let mut level = if i == 0 { 63 } else { i.trailing_zeros() };
        while level > 0 && (1u64 << level) > hi - i {
            level -= 1;
        }
        out.push(NodeId {
            level: level as u8,
            index: i >> level,
        });
        i += 1u64 << level;
    }
    out
}

/// Merkle tree hash of a range from its [`range_nodes`] hashes (right fold).
#[must_use]
pub fn fold(hashes: &[TreeHash]) -> TreeHash {
    let mut it = hashes.iter().rev();
    let Some(last) = it.next() else {
        return TreeHash::empty();
    };
    it.fold(*last, |acc, h| node_hash(h, &acc))
}

/// Largest power of two strictly less than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A leaf range `[lo, hi)` whose Merkle tree hash is one element of a proof.
pub type Span = (u64, u64);

/// The spans of the RFC 9162 §2.1.3.1 inclusion proof of leaf `m` in a tree of `n` leaves,
/// bottom-up. Empty when `m >= n` (callers check bounds first).
#[must_use]
pub fn inclusion_spans(m: u64, n: u64) -> Vec<Span> {
    fn walk(m: u64, lo: u64, hi: u64, out: &mut Vec<Span>) {
        if hi - lo <= 1 {
            return;
        }
        let k = split(hi - lo);
        if m < lo + k {
            walk(m, lo, lo + k, out);
            out.push((lo + k, hi));
        } else {
            walk(m, lo + k, hi, out);
            out.push((lo, lo + k));
        }
    }
    let mut out = Vec::new();
    if m < n {
        walk(m, 0, n, &mut out);
    }
    out
}

/// The spans of the RFC 9162 §2.1.4.1 consistency proof from size `m` to size `n`.
/// Empty when `m == 0` or `m >= n`.
#[must_use]
pub fn consistency_spans(m: u64, n: u64) -> Vec<Span> {
    fn walk(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<Span>) {
        let size = hi - lo;
        if m == size {
            if !complete {
                out.push((lo, hi));
            }
            return;
        }
        let k = split(size);
        if m <= k {
            walk(m, lo, lo + k, complete, out);
            out.push((lo + k, hi));
        } else {
            walk(m - k, lo + k, hi, false, out);
            out.push((lo, lo + k));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < n {
        walk(m, 0, n, true, &mut out);
    }
    out
}

/// Which nodes to read for a list of spans, in one deduplicated, sorted batch.
#[must_use]
pub fn nodes_for(spans: &[Span]) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = spans
        .iter()
        .flat_map(|&(lo, hi)| range_nodes(lo, hi))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Folds each span from node hashes looked up in `read` (sorted `(id, hash)` pairs as
/// returned for [`nodes_for`]). `None` when a needed node is missing.
#[must_use]
pub fn assemble(spans: &[Span], read: &[(NodeId, TreeHash)]) -> Option<Vec<TreeHash>> {
    spans
        .iter()
        .map(|&(lo, hi)| {
            let hs = range_nodes(lo, hi)
                .into_iter()
                .map(|id| {
                    read.binary_search_by_key(&id, |(i, _)| *i)
                        .ok()
                        .map(|k| read[k].1)
                })
                .collect::<Option<Vec<_>>>()?;
            Some(fold(&hs))
        })
        .collect()
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("the proof does not reproduce the old root hash")]
    OldRootMismatch,
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is leaf `index` of the tree of `size` leaves
/// whose root is `root`.
pub fn verify_inclusion(
    leaf: &TreeHash,
    index: u64,
    size: u64,
    proof: &[TreeHash],
    root: &TreeHash,
) -> Result<(), ProofError> {
    if &root_from_inclusion(leaf, index, size, proof)? != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2 without the last comparison: the root of the tree of `size` leaves
/// in which `proof` places `leaf` at `index`. Errors when the proof's length does not fit
/// the sizes.
pub fn root_from_inclusion(
    leaf: &TreeHash,
    index: u64,
    size: u64,
    proof: &[TreeHash],
) -> Result<TreeHash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::WrongLength);
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// The Merkle tree hash of `leaves` and the RFC 9162 inclusion proof of every leaf, built
/// in memory (for small trees such as a batch of receipts, FORMAT.md §10). `leaves` must
/// not be empty.
#[must_use]
pub fn paths_in_memory(leaves: &[TreeHash]) -> (TreeHash, Vec<Vec<TreeHash>>) {
    assert!(!leaves.is_empty(), "invariant: a tree in memory has leaves");
    // levels[l][i] is node (l, i): the complete subtrees only.
    let mut levels = vec![leaves.to_vec()];
    while let Some(top) = levels.last().filter(|l| l.len() > 1) {
        let up = top
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
        levels.push(up);
    }
    let span = |(lo, hi): Span| {
        let hs: Vec<TreeHash> = range_nodes(lo, hi)
            .into_iter()
            .map(|id| {
                levels[usize::from(id.level)][usize::try_from(id.index)
                    .expect("invariant: nodes of an in-memory tree index a slice")]
            })
            .collect();
        fold(&hs)
    };
    let n = leaves.len() as u64;
    let root = span((0, n));
    let paths = (0..n)
        .map(|i| inclusion_spans(i, n).into_iter().map(span).collect())
        .collect();
    (root, paths)
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `new_size` leaves with root `new_root`
/// extends the tree of `old_size` leaves with root `old_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &TreeHash,
    new_root: &TreeHash,
    proof: &[TreeHash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty tree; its root is fixed.
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if *old_root == TreeHash::empty() {
            Ok(())
        } else {
            Err(ProofError::OldRootMismatch)
        };
    }
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<TreeHash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of the tree: the roots of the complete subtrees that make up
/// `[0, size)`, largest first. Appends are O(log n) in time and emit the nodes they
/// complete, which the store keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(NodeId, TreeHash)>,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from the hashes of
    /// `range_nodes(0, size)`, in that order. `None` if the count is wrong.
    #[must_use]
    pub fn from_nodes(size: u64, hashes: &[TreeHash]) -> Option<Self> {
        let ids = range_nodes(0, size);
        (ids.len() == hashes.len()).then(|| Self {
            size,
            nodes: ids.into_iter().zip(hashes.iter().copied()).collect(),
        })
    }

    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    #[must_use]
    pub fn root(&self) -> TreeHash {
        let hs: Vec<TreeHash> = self.nodes.iter().map(|(_, h)| *h).collect();
        fold(&hs)
    }

    /// The hashes of `range_nodes(0, size)`, in that order: what [`Frontier::from_nodes`]
    /// takes back (a monitor keeps them between runs).
    #[must_use]
    pub fn hashes(&self) -> Vec<TreeHash> {
        self.nodes.iter().map(|(_, h)| *h).collect()
    }

    /// Appends a leaf hash; returns every node it completes (the leaf first).
    pub fn push(&mut self, leaf: TreeHash) -> Vec<(NodeId, TreeHash)> {
        let mut made = vec![(NodeId::leaf(self.size), leaf)];
        let mut cur = (NodeId::leaf(self.size), leaf);
        while let Some(&(id, h)) = self.nodes.last() {
            if id.level != cur.0.level {
                break;
            }
            self.nodes.pop();
            cur = (
                NodeId {
                    level: id.level + 1,
                    index: id.index >> 1,
                },
                node_hash(&h, &cur.1),
            );
            made.push(cur);
        }
        self.nodes.push(cur);
        self.size += 1;
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<TreeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// RFC 6962 MTH straight from the definition.
    fn mth(l: &[TreeHash]) -> TreeHash {
        match l.len() {
            0 => TreeHash::empty(),
            1 => l[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&l[..k]), &mth(&l[k..]))
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(TreeHash::empty().as_bytes()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_root_matches_definition_and_emits_every_complete_node() {
        let l = leaves(37);
        let mut f = Frontier::default();
        let mut stored = std::collections::BTreeMap::new();
        for (i, h) in l.iter().enumerate() {
            for (id, nh) in f.push(*h) {
                assert!(stored.insert(id, nh).is_none(), "node {id:?} emitted twice");
            }
            assert_eq!(f.root(), mth(&l[..=i]));
        }
        for (id, h) in &stored {
            let lo = id.start() as usize;
            assert_eq!(*h, mth(&l[lo..lo + (1 << id.level)]));
        }
        let ids = range_nodes(0, 37);
        let hs: Vec<_> = ids.iter().map(|id| stored[id]).collect();
        assert_eq!(Frontier::from_nodes(37, &hs), Some(f));
    }

    #[test]
    fn paths_in_memory_match_the_definition_and_verify() {
        for n in 1..=70u64 {
            let l = leaves(n);
            let (root, paths) = paths_in_memory(&l);
            assert_eq!(root, mth(&l), "root of {n} leaves");
            assert_eq!(paths.len() as u64, n);
            for (i, p) in paths.iter().enumerate() {
                let i = i as u64;
                assert_eq!(p.len(), inclusion_spans(i, n).len());
                verify_inclusion(&l[i as usize], i, n, p, &root).expect("path verifies");
                assert_eq!(root_from_inclusion(&l[i as usize], i, n, p), Ok(root));
                if n > 1 {
                    let other = (i + 1) % n;
                    assert_eq!(
                        verify_inclusion(&l[other as usize], i, n, p, &root),
                        Err(ProofError::RootMismatch),
                        "leaf {other} does not verify at {i} of {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn tree_hash_has_one_spelling() {
        let h = leaf_hash(b"x");
        assert_eq!(TreeHash::parse(&h.to_string()), Ok(h));
        assert!(TreeHash::parse(h.to_string().trim_end_matches('=')).is_err());
    }
}
