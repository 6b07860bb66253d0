//! The log beside sled (storage layout 3): three append-only files in the data directory,
//! written at positions that follow from the log's length alone.
//!
//! | file          | holds                                                              |
//! |---------------|--------------------------------------------------------------------|
//! | `log-entries` | entry after entry: i64 integrated_at, 32-byte hash, JCS bytes      |
//! | `log-ends`    | u64 per entry: the offset in `log-entries` just past it            |
//! | `log-nodes`   | the Merkle nodes, leaf after leaf: the nodes leaf n completes, levels 0..=k (k = trailing ones of n), 32 bytes each |
//!
//! Leaf n's nodes start at node number 2n − popcount(n) (the nodes of all complete
//! subtrees of a tree of n leaves), so no index is needed for them.
//!
//! Why: sled reclaims a segment only when half of it is dead, so small random-key index
//! records written among the long-lived entries left a 1M-event directory five times its
//! live size, and every entry was written again as sled rewrote its leaves
//! (`cargo bench --bench sled_keys`, BENCHMARKS.md). Here an entry is written once.
//!
//! Durability order (see `SledStore::commit`): a group's bytes are written here and
//! `fdatasync`ed first; then sled's batch, which carries the new length, is applied and
//! flushed. Sled's length is therefore the truth: bytes past it belong to a group that was
//! never acknowledged, and are cut off at the next open; files shorter than it mean the
//! file system lost synced data, and the store refuses to open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Committed, LogEntry, StoreError};
use crate::core::ids::{EventHash, LogIndex};
use crate::core::merkle::{NodeId, TreeHash};
use crate::core::values::Timestamp;

/// The files' names in the data directory.
pub const FILES: [&str; 3] = ["log-entries", "log-ends", "log-nodes"];

/// The leaf whose append completed node `id`: the last leaf it covers.
pub fn completing_leaf(id: NodeId) -> Option<u64> {
    id.index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(id.level))?)?
        .checked_sub(1)
}

/// Nodes completed by leaves `0..n`: where leaf n's nodes start in `log-nodes`.
fn nodes_before(n: u64) -> u64 {
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

fn encode_entry(e: &LogEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&e.integrated_at.unix().to_be_bytes());
    out.extend_from_slice(e.hash.as_bytes());
    out.extend_from_slice(&e.event);
}

fn decode_entry(index: u64, v: &[u8]) -> Result<LogEntry, StoreError> {
    let loc = format!("log entry {index}");
    let corrupt = |d: &str| StoreError::Corrupt {
        location: loc.clone(),
        detail: d.into(),
    };
    let (Some(secs), Some(hash)) = (v.get(..8), v.get(8..40)) else {
        return Err(corrupt("entry shorter than its 40-byte header"));
    };
    let secs = i64::from_be_bytes(secs.try_into().map_err(|_| corrupt("bad time"))?);
    let integrated_at = Timestamp::from_unix(secs).map_err(|e| corrupt(&e.to_string()))?;
    Ok(LogEntry {
        index: LogIndex::new(index),
        integrated_at,
        hash: EventHash::from_bytes(hash.try_into().map_err(|_| corrupt("bad hash"))?),
        event: v[40..].to_vec(),
    })
}

pub struct LogFiles {
    entries: File,
    ends: File,
    nodes: File,
    dir: PathBuf,
}

impl LogFiles {
    /// Opens (creating if needed) the files for a log that sled says holds `len` entries,
    /// cutting off what a commit that was never acknowledged left past them.
    pub fn open(dir: &Path, len: u64) -> Result<Self, StoreError> {
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
                .map_err(|e| StoreError::Io(format!("{}: {e}", dir.join(name).display())))
        };
        let files = Self {
            entries: open(FILES[0])?,
            ends: open(FILES[1])?,
            nodes: open(FILES[2])?,
            dir: dir.to_path_buf(),
        };
        // The new files' directory entries must be durable before anything is acknowledged.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        files.fit(&files.ends, FILES[1], 8 * len, len)?;
        files.fit(&files.nodes, FILES[2], 32 * nodes_before(len), len)?;
        let data_end = match len.checked_sub(1) {
            None => 0,
            Some(last) => files.end_of(last, len)?,
        };
        files.fit(&files.entries, FILES[0], data_end, len)?;
        Ok(files)
    }

    /// Cuts `f` back to `want` bytes, or refuses a file shorter than that.
    fn fit(&self, f: &File, name: &str, want: u64, len: u64) -> Result<(), StoreError> {
        let have = self.size(f, name)?;
        if have < want {
            return Err(StoreError::Corrupt {
                location: self.dir.join(name).display().to_string(),
                detail: format!(
                    "the file holds {have} bytes, but the {len} events in sled's index need {want}: synced log data was lost"
                ),
            });
        }
        if have > want {
            tracing::info!(
                file = name,
                bytes = have - want,
                "cutting off the tail of a commit that was never acknowledged"
            );
            f.set_len(want)
                .and_then(|()| f.sync_all())
                .map_err(|e| self.io(name, e))?;
        }
        Ok(())
    }

    fn io(&self, name: &str, e: std::io::Error) -> StoreError {
        StoreError::Io(format!("{}: {e}", self.dir.join(name).display()))
    }

    fn size(&self, f: &File, name: &str) -> Result<u64, StoreError> {
        f.metadata().map(|m| m.len()).map_err(|e| self.io(name, e))
    }

    fn read(&self, f: &File, name: &str, at: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let n = usize::try_from(len).map_err(|_| StoreError::Corrupt {
            location: self.dir.join(name).display().to_string(),
            detail: format!("a read of {len} bytes does not fit in memory"),
        })?;
        let mut buf = vec![0; n];
        f.read_exact_at(&mut buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt {
                    location: self.dir.join(name).display().to_string(),
                    detail: format!("bytes {at}..{} are missing", at + len),
                }
            } else {
                self.io(name, e)
            }
        })?;
        Ok(buf)
    }

    /// The ends of entries `start..end`.
    fn ends(&self, start: u64, end: u64) -> Result<Vec<u64>, StoreError> {
        let b = self.read(&self.ends, FILES[1], 8 * start, 8 * (end - start))?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("invariant: 8-byte chunk")))
            .collect())
    }

    fn end_of(&self, i: u64, len: u64) -> Result<u64, StoreError> {
        if i >= len {
            return Ok(0);
        }
        Ok(self.ends(i, i + 1)?[0])
    }

    /// Entries `start..end` of a log holding `len` (fewer if it is shorter), in order.
    pub fn entries(&self, start: u64, end: u64, len: u64) -> Result<Vec<LogEntry>, StoreError> {
        let end = end.min(len);
        if start >= end {
            return Ok(Vec::new());
        }
        let from = match start.checked_sub(1) {
            None => 0,
            Some(p) => self.end_of(p, len)?,
        };
        let ends = self.ends(start, end)?;
        let to = *ends
            .last()
            .expect("invariant: start < end, so one end was read");
        let bad = |d: String| StoreError::Corrupt {
            location: self.dir.join(FILES[1]).display().to_string(),
            detail: d,
        };
        let data = self.read(
            &self.entries,
            FILES[0],
            from,
            to.checked_sub(from)
                .ok_or_else(|| bad(format!("entry {start} starts past entry {}'s end", end - 1)))?,
        )?;
        let mut out = Vec::with_capacity(ends.len());
        let mut at = from;
        for (k, e) in ends.into_iter().enumerate() {
            let i = start + k as u64;
            let slice = e
                .checked_sub(at)
                .and_then(|n| data.get((at - from) as usize..(at - from + n) as usize))
                .ok_or_else(|| {
                    bad(format!(
                        "the end of entry {i} ({e}) precedes its start ({at})"
                    ))
                })?;
            out.push(decode_entry(i, slice)?);
            at = e;
        }
        Ok(out)
    }

    /// The hashes of nodes `ids` in a tree of `len` leaves (`None` where it has none).
    pub fn nodes(&self, ids: &[NodeId], len: u64) -> Result<Vec<Option<TreeHash>>, StoreError> {
        ids.iter()
            .map(|&id| {
                let Some(leaf) = completing_leaf(id).filter(|&l| l < len) else {
                    return Ok(None);
                };
                let at = 32 * (nodes_before(leaf) + u64::from(id.level));
                let b = self.read(&self.nodes, FILES[2], at, 32)?;
                Ok(Some(TreeHash::from_bytes(
                    b.try_into().expect("invariant: read 32 bytes"),
                )))
            })
            .collect()
    }

    /// Appends a group to a log of `len` entries and syncs it: `events` must be entries
    /// `len..`, `nodes` what [`pack_nodes`] made of theirs.
    pub fn append(&self, len: u64, events: &[Committed], nodes: &[u8]) -> Result<(), StoreError> {
        let start = match len.checked_sub(1) {
            None => 0,
            Some(last) => self.end_of(last, len)?,
        };
        let mut data = Vec::with_capacity(events.iter().map(|c| 40 + c.entry.event.len()).sum());
        let mut ends = Vec::with_capacity(8 * events.len());
        for c in events {
            encode_entry(&c.entry, &mut data);
            ends.extend_from_slice(&(start + data.len() as u64).to_be_bytes());
        }
        for (f, name, at, bytes) in [
            (&self.entries, FILES[0], start, data.as_slice()),
            (&self.ends, FILES[1], 8 * len, ends.as_slice()),
            (&self.nodes, FILES[2], 32 * nodes_before(len), nodes),
        ] {
            if !bytes.is_empty() {
                f.write_all_at(bytes, at)
                    .and_then(|()| f.sync_data())
                    .map_err(|e| self.io(name, e))?;
            }
        }
        Ok(())
    }

    /// Entries and leaves whose nodes the files hold, counted from the files' sizes (not
    /// from sled's length): for the audit's cross-check.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let events = self.size(&self.ends, FILES[1])? / 8;
        let node_bytes = self.size(&self.nodes, FILES[2])? / 32;
        // The largest n whose nodes all fit: nodes_before is increasing.
        let (mut lo, mut hi) = (0u64, node_bytes);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if nodes_before(mid) <= node_bytes {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok((events, lo))
    }
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

    #[test]
    fn counts_follow_the_file_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = LogFiles::open(dir.path(), 0).expect("open");
        let per_leaf = nodes_of(37);
        let all: Vec<_> = per_leaf.iter().flatten().copied().collect();
        files
            .nodes
            .write_all_at(&pack_nodes(0, 37, &all).expect("pack"), 0)
            .expect("write");
        assert_eq!(files.counts().expect("counts"), (0, 37));
        let ids: Vec<NodeId> = all.iter().map(|(id, _)| *id).collect();
        let want: Vec<_> = all.iter().map(|(_, h)| Some(*h)).collect();
        assert_eq!(files.nodes(&ids, 37).expect("read"), want);
        assert_eq!(files.nodes(&ids[..1], 0).expect("read"), vec![None]);
    }
}
