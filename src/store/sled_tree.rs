//! Merkle nodes in the sled store: one record per leaf (`t` ‖ u64 leaf index) holding the
//! nodes that leaf completed, levels 0 up, 32 bytes each; written in the same batch as the
//! events. sled is the durable truth.
//!
//! Proofs are served from an in-memory mirror of every node (64 bytes per event, in 128 KiB
//! chunks), built on the first proof request and extended after each commit. Measured reason
//! (BENCHMARKS.md): random sled reads on a million-record tree have a ~1 ms p99 here (sled
//! re-reads page fragments from its files), and a proof needs up to ~40 of them; from the
//! mirror a proof costs microseconds. The audit reads sled (`Store::stored_nodes`), never it.
//!
//! Building the mirror by scanning sled costs ~10 µs per leaf, so the store also keeps it as
//! a snapshot file (`merkle-mirror.bin`, written when the store closes): the next open loads
//! the snapshot (its SHA-256 must check out, else it is ignored) and scans sled only for
//! the leaves after it. The snapshot is a cache: proofs from it are checked by their
//! clients against signed checkpoints, and `custody verify` reads sled, never the snapshot.

use std::path::Path;
use std::sync::{PoisonError, RwLock};

use sha2::{Digest, Sha256};

use super::StoreError;
use crate::core::merkle::{NodeId, TreeHash};

/// Hashes per chunk of the mirror.
const CHUNK: usize = 4096;

/// The leaf whose append completed node `id`: the last leaf it covers.
pub fn completing_leaf(id: NodeId) -> Option<u64> {
    id.index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(id.level))?)?
        .checked_sub(1)
}

/// Packs the nodes of a group into one value per completing leaf (levels 0 up, in order).
pub fn pack(nodes: &[(NodeId, TreeHash)]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for (id, h) in nodes {
        let leaf = completing_leaf(*id)
            .ok_or_else(|| StoreError::BadGroup(format!("node {id:?} lies beyond 2^64 leaves")))?;
        match out.last_mut() {
            Some((l, v)) if *l == leaf && v.len() == usize::from(id.level) * 32 => {
                v.extend_from_slice(h.as_bytes());
            }
            _ if id.level == 0 => out.push((leaf, h.as_bytes().to_vec())),
            _ => {
                return Err(StoreError::BadGroup(format!(
                    "node {id:?} does not follow the lower nodes of leaf {leaf}"
                )))
            }
        }
    }
    Ok(out)
}

/// The hashes of one leaf record.
pub fn unpack(leaf: u64, v: &[u8]) -> Result<Vec<TreeHash>, StoreError> {
    if v.is_empty() || v.len() % 32 != 0 {
        return Err(StoreError::Corrupt {
            location: format!("tree nodes of leaf {leaf}"),
            detail: "not a whole number of 32-byte hashes".into(),
        });
    }
    Ok(v.chunks_exact(32)
        .map(|c| TreeHash::from_bytes(c.try_into().expect("invariant: 32-byte chunk")))
        .collect())
}

/// One level of the mirror: node `i` at `chunks[i / CHUNK][i % CHUNK]`.
#[derive(Default)]
struct Level {
    chunks: Vec<Vec<TreeHash>>,
    len: usize,
}

impl Level {
    fn push(&mut self, h: TreeHash) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("invariant: a chunk was pushed when the last one filled")
            .push(h);
        self.len += 1;
    }
    fn get(&self, i: u64) -> Option<TreeHash> {
        let i = usize::try_from(i).ok()?;
        (i < self.len).then(|| self.chunks[i / CHUNK][i % CHUNK])
    }
}

#[derive(Default)]
pub struct Mirror {
    levels: Vec<Level>,
}

const MAGIC: &[u8] = b"custody-merkle-mirror-v1\n";

impl Mirror {
    /// Leaves whose nodes the mirror holds.
    pub fn leaves(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len as u64)
    }

    /// Adds one leaf record (as stored); it must be the next leaf.
    pub fn add_record(&mut self, leaf: u64, v: &[u8]) -> Result<(), StoreError> {
        let hs = unpack(leaf, v)?;
        if self.add(leaf, &hs) {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                location: format!("tree nodes of leaf {leaf}"),
                detail: "the node records are not consecutive".into(),
            })
        }
    }

    /// Adds the nodes of one leaf; false if they are not the next ones expected.
    fn add(&mut self, leaf: u64, hashes: &[TreeHash]) -> bool {
        if leaf != self.leaves() || hashes.len() != leaf.trailing_ones() as usize + 1 {
            return false;
        }
        for (l, h) in hashes.iter().enumerate() {
            if self.levels.len() <= l {
                self.levels.push(Level::default());
            }
            if self.levels[l].len as u64 != leaf >> l {
                return false;
            }
            self.levels[l].push(*h);
        }
        true
    }

    fn get(&self, id: NodeId) -> Option<TreeHash> {
        self.levels.get(usize::from(id.level))?.get(id.index)
    }

    pub fn get_all(&self, ids: &[NodeId]) -> Vec<Option<TreeHash>> {
        ids.iter().map(|id| self.get(*id)).collect()
    }

    /// Snapshot bytes: magic, u64 leaves, every level's hashes in order, SHA-256 of it all.
    fn encode(&self) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&self.leaves().to_be_bytes());
        for l in &self.levels {
            for c in &l.chunks {
                for h in c {
                    v.extend_from_slice(h.as_bytes());
                }
            }
        }
        let d = Sha256::digest(&v);
        v.extend_from_slice(&d);
        v
    }

    /// Parses a snapshot; `None` if it is damaged or covers more than `max_leaves`.
    fn decode(b: &[u8], max_leaves: u64) -> Option<Self> {
        let (body, sum) = b.split_at_checked(b.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let (n, mut hashes) = rest.split_at_checked(8)?;
        let leaves = u64::from_be_bytes(n.try_into().ok()?);
        if leaves > max_leaves {
            return None;
        }
        let mut m = Self::default();
        let mut level = 0u32;
        while level < 64 && (leaves >> level) > 0 {
            let count = usize::try_from(leaves >> level).ok()?;
            let (this, next) = hashes.split_at_checked(count.checked_mul(32)?)?;
            let mut l = Level::default();
            for c in this.chunks_exact(32) {
                l.push(TreeHash::from_bytes(c.try_into().ok()?));
            }
            m.levels.push(l);
            hashes = next;
            level += 1;
        }
        hashes.is_empty().then_some(m)
    }
}

/// Loads a snapshot file if it is intact and not ahead of the log.
pub fn load_snapshot(path: &Path, max_leaves: u64) -> Option<Mirror> {
    let b = std::fs::read(path).ok()?;
    let m = Mirror::decode(&b, max_leaves);
    if m.is_none() {
        tracing::warn!(path = %path.display(), "ignoring a damaged or stale Merkle mirror snapshot");
    }
    m
}

/// The mirror, absent until the first proof-sized read.
#[derive(Default)]
pub struct NodeMirror {
    inner: RwLock<Option<Mirror>>,
}

impl NodeMirror {
    /// Answers from the mirror, building it with `build` if needed.
    pub fn read(
        &self,
        ids: &[NodeId],
        build: impl FnOnce() -> Result<Mirror, StoreError>,
    ) -> Result<Vec<Option<TreeHash>>, StoreError> {
        {
            let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(m) = g.as_ref() {
                return Ok(m.get_all(ids));
            }
        }
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if g.is_none() {
            *g = Some(build()?);
        }
        let m = g.as_ref().expect("invariant: the mirror was just built");
        Ok(m.get_all(ids))
    }

    /// After a durable commit: extends a built mirror (or drops it if the records do not
    /// follow on, to be rebuilt from sled on the next read).
    pub fn committed(&self, records: &[(u64, Vec<u8>)]) {
        let mut g = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Some(m) = g.as_mut() else { return };
        for (leaf, v) in records {
            if m.add_record(*leaf, v).is_err() {
                *g = None;
                return;
            }
        }
    }

    /// Writes the snapshot (temporary file, then rename) if the mirror was built and holds
    /// more than `on_disk` leaves.
    pub fn save(&self, path: &Path, on_disk: u64) -> std::io::Result<()> {
        let g = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let Some(m) = g.as_ref() else { return Ok(()) };
        if m.leaves() <= on_disk {
            return Ok(());
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, m.encode())?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::{leaf_hash, Frontier};

    fn mirror(n: u64) -> (Mirror, Vec<(NodeId, TreeHash)>) {
        let mut f = Frontier::default();
        let mut all = vec![];
        let mut m = Mirror::default();
        for i in 0..n {
            let made = f.push(leaf_hash(&i.to_be_bytes()));
            for (leaf, v) in pack(&made).expect("pack") {
                m.add_record(leaf, &v).expect("next record");
            }
            all.extend(made);
        }
        (m, all)
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let (m, all) = mirror(1000);
        let b = m.encode();
        let back = Mirror::decode(&b, 1000).expect("decodes");
        let ids: Vec<NodeId> = all.iter().map(|(id, _)| *id).collect();
        let want: Vec<Option<TreeHash>> = all.iter().map(|(_, h)| Some(*h)).collect();
        assert_eq!(back.get_all(&ids), want);
        assert!(Mirror::decode(&b, 999).is_none(), "ahead of the log");
        for at in [0, 30, b.len() / 2, b.len() - 1] {
            let mut bad = b.clone();
            bad[at] ^= 1;
            assert!(Mirror::decode(&bad, 1000).is_none(), "flip at {at}");
        }
        assert!(Mirror::decode(&b[..b.len() - 1], 1000).is_none());
    }

    #[test]
    fn records_must_come_in_order() {
        let (mut m, _) = mirror(10);
        let (_, later) = mirror(12);
        let of_11: Vec<_> = later
            .into_iter()
            .filter(|(id, _)| completing_leaf(*id) == Some(11))
            .collect();
        let rec = pack(&of_11).expect("pack");
        assert_eq!(rec.len(), 1);
        assert!(m.add_record(11, &rec[0].1).is_err(), "leaf 10 is missing");
        assert!(pack(&[(NodeId { level: 1, index: 0 }, leaf_hash(b"x"))]).is_err());
    }
}
