//! The log beside sled (storage layout 3): three append-only files in the data directory,
//! written at positions that follow from the log's length alone.
//!
//! | file          | holds                                                              |
//! |---------------|--------------------------------------------------------------------|
//! | `log-entries` | one record per entry (below): the log itself, synced at every commit |
//! | `log-ends`    | u64 per entry: the offset in `log-entries` just past its record     |
//! | `log-nodes`   | the Merkle nodes, leaf after leaf, 32 bytes each: leaf n's start at node number 2n − popcount(n) |
//!
//! A record of `log-entries` (integers big-endian):
//! `u32 JCS length ‖ u8 node count k+1 ‖ i64 integrated_at ‖ 32-byte hash ‖ (k+1) × 32-byte
//! nodes leaf n completes, levels 0..=k (k = trailing ones of n) ‖ JCS bytes`.
//!
//! `log-ends` and `log-nodes` are indexes derived from `log-entries`: a commit writes them
//! without waiting for the disk, and syncs them only every [`INDEX_SYNC_EVENTS`] events or
//! [`INDEX_SYNC_BYTES`] bytes of entries, recording in sled (`mindexed`) how many entries
//! they hold durably. Opening rebuilds them from `log-entries` past that point. So a commit
//! costs one `fdatasync` here, not three (measured: HTTP single events went from 3.8k to
//! 2.3k events/s when all three were synced at every commit; BENCHMARKS.md).
//!
//! Why files and not sled: sled reclaims a segment only when half of it is dead, so small
//! random-key index records written among the long-lived entries left a 1M-event directory
//! five times its live size, and every entry was written again as sled rewrote its leaves
//! (`cargo bench --bench sled_keys`, BENCHMARKS.md). Here an entry is written once.
//!
//! Durability order (see `SledStore::commit`): a group's records are written here and
//! `fdatasync`ed first; then sled's batch, which carries the new length (`mlen`), is applied
//! and flushed. Sled's length is therefore the truth: records past it belong to a group that
//! was never acknowledged, and are ignored and overwritten (never cut off: should sled itself
//! lose acknowledged events, which the watermark detects, their records survive here); a
//! `log-entries` shorter than it means the file system lost synced data, and the store
//! refuses to open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::tree_nodes::{completing_leaf, nodes_before, nodes_of_leaf};
use super::{Committed, LogEntry, StoreError};
use crate::core::ids::{EventHash, LogIndex};
use crate::core::merkle::{NodeId, TreeHash};
use crate::core::values::Timestamp;

/// The files' names in the data directory.
pub const FILES: [&str; 3] = ["log-entries", "log-ends", "log-nodes"];
const ENTRIES: &str = FILES[0];
const ENDS: &str = FILES[1];
const NODES: &str = FILES[2];

/// The derived indexes are synced at least every this many entries…
pub const INDEX_SYNC_EVENTS: u64 = 65_536;
/// …or this many bytes of entries, which bounds the rebuild at open.
pub const INDEX_SYNC_BYTES: u64 = 64 << 20;

/// Bytes of a record before its nodes.
const HEADER: usize = 4 + 1 + 8 + 32;

/// One record: header, the leaf's nodes, the JCS bytes.
fn encode_record(e: &LogEntry, nodes: &[u8], out: &mut Vec<u8>) {
    let n = u32::try_from(e.event.len())
        .expect("invariant: a commit group holds at most 256 KiB of event bytes");
    let k = u8::try_from(nodes.len() / 32).expect("invariant: a leaf completes at most 64 nodes");
    out.extend_from_slice(&n.to_be_bytes());
    out.push(k);
    out.extend_from_slice(&e.integrated_at.unix().to_be_bytes());
    out.extend_from_slice(e.hash.as_bytes());
    out.extend_from_slice(nodes);
    out.extend_from_slice(&e.event);
}

/// A record's header: the JCS length and the node count, checked against leaf `index`.
fn record_size(index: u64, header: &[u8]) -> Result<(u64, u64), StoreError> {
    let n = u32::from_be_bytes(header[..4].try_into().expect("invariant: 4 bytes"));
    let k = u64::from(header[4]);
    if k != nodes_of_leaf(index) {
        return Err(StoreError::Corrupt {
            location: format!("log entry {index}"),
            detail: format!(
                "the record carries {k} Merkle nodes, but leaf {index} completes {}",
                nodes_of_leaf(index)
            ),
        });
    }
    Ok((HEADER as u64 + 32 * k + u64::from(n), k))
}

fn decode_record(index: u64, v: &[u8]) -> Result<LogEntry, StoreError> {
    let corrupt = |d: String| StoreError::Corrupt {
        location: format!("log entry {index}"),
        detail: d,
    };
    let header = v
        .get(..HEADER)
        .ok_or_else(|| corrupt(format!("record shorter than its {HEADER}-byte header")))?;
    let (size, k) = record_size(index, header)?;
    if size != v.len() as u64 {
        return Err(corrupt(format!(
            "the record's header says {size} bytes, its end in log-ends {}",
            v.len()
        )));
    }
    let secs = i64::from_be_bytes(header[5..13].try_into().expect("invariant: 8 bytes"));
    let integrated_at = Timestamp::from_unix(secs).map_err(|e| corrupt(e.to_string()))?;
    let hash: [u8; 32] = header[13..45].try_into().expect("invariant: 32 bytes");
    Ok(LogEntry {
        index: LogIndex::new(index),
        integrated_at,
        hash: EventHash::from_bytes(hash),
        event: v[HEADER + 32 * k as usize..].to_vec(),
    })
}

fn be_u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("invariant: 8-byte chunk")))
        .collect()
}

pub struct LogFiles {
    entries: File,
    ends: File,
    nodes: File,
    dir: PathBuf,
    /// Entries and entry bytes appended since the derived indexes were last synced.
    unsynced: (AtomicU64, AtomicU64),
    /// When to sync them: entries, bytes.
    sync_every: (u64, u64),
}

impl LogFiles {
    /// Opens (creating if needed) the files for a log that sled says holds `len` entries, of
    /// which the first `indexed` have durable indexes: cuts off what a commit that was never
    /// acknowledged left past `len`, and rebuilds the indexes of entries `indexed..len`.
    pub fn open(dir: &Path, len: u64, indexed: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, len, indexed, (INDEX_SYNC_EVENTS, INDEX_SYNC_BYTES))
    }

    fn open_with(
        dir: &Path,
        len: u64,
        indexed: u64,
        sync_every: (u64, u64),
    ) -> Result<Self, StoreError> {
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
            entries: open(ENTRIES)?,
            ends: open(ENDS)?,
            nodes: open(NODES)?,
            dir: dir.to_path_buf(),
            unsynced: (AtomicU64::new(0), AtomicU64::new(0)),
            sync_every,
        };
        // The new files' directory entries must be durable before anything is acknowledged.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        if indexed > len {
            return Err(files.corrupt(
                ENDS,
                format!("sled says {indexed} entries are indexed, but the log holds {len}"),
            ));
        }
        files.require(&files.ends, ENDS, 8 * indexed, len)?;
        files.require(&files.nodes, NODES, 32 * nodes_before(indexed), len)?;
        files.rebuild(indexed, len)?;
        Ok(files)
    }

    /// Rebuilds the indexes of entries `from..len` by reading their records, cuts them to
    /// the log's length and syncs them. `log-entries` itself is never cut: records past the
    /// log's end are ignored and overwritten by the next commit, and if sled lost
    /// acknowledged events (the watermark says so at open), they are still there.
    fn rebuild(&self, from: u64, len: u64) -> Result<(), StoreError> {
        let begin = self.start_of(from, from)?;
        let mut at = begin;
        let size = self.size(&self.entries, ENTRIES)?;
        let (mut ends, mut nodes) = (Vec::new(), Vec::new());
        for i in from..len {
            let lost = |at: u64| {
                self.corrupt(
                    ENTRIES,
                    format!(
                        "the file holds {size} bytes and ends inside entry {i} (at {at}), but sled's index holds {len} entries: synced log data was lost"
                    ),
                )
            };
            if at + HEADER as u64 > size {
                return Err(lost(at));
            }
            let header = self.read(&self.entries, ENTRIES, at, HEADER as u64)?;
            let (record, k) = record_size(i, &header)?;
            if at + record > size {
                return Err(lost(at));
            }
            nodes.extend(self.read(&self.entries, ENTRIES, at + HEADER as u64, 32 * k)?);
            at += record;
            ends.extend_from_slice(&at.to_be_bytes());
        }
        // Rebuilt, synced below, but not yet recorded as indexed in sled: the next commit
        // that brings the count over a bound records it.
        self.unsynced.0.store(len - from, Ordering::Relaxed);
        self.unsynced.1.store(at - begin, Ordering::Relaxed);
        if from < len {
            tracing::info!(
                entries = len - from,
                "rebuilt the log's indexes past their last durable point"
            );
        }
        if size > at {
            tracing::info!(
                bytes = size - at,
                "log-entries holds bytes past the log's end (a commit that never returned, or events sled lost); ignored, and overwritten by the next commit"
            );
        }
        for (f, name, pos, bytes, total) in [
            (&self.ends, ENDS, 8 * from, &ends, 8 * len),
            (
                &self.nodes,
                NODES,
                32 * nodes_before(from),
                &nodes,
                32 * nodes_before(len),
            ),
        ] {
            f.write_all_at(bytes, pos)
                .and_then(|()| f.set_len(total))
                .and_then(|()| f.sync_all())
                .map_err(|e| self.io(name, e))?;
        }
        Ok(())
    }

    /// Refuses a file shorter than `want` bytes: its durable part was lost.
    fn require(&self, f: &File, name: &str, want: u64, len: u64) -> Result<(), StoreError> {
        let have = self.size(f, name)?;
        if have < want {
            return Err(self.corrupt(
                name,
                format!(
                    "the file holds {have} bytes, but the {len} events in sled's index need {want}: synced log data was lost"
                ),
            ));
        }
        Ok(())
    }

    fn corrupt(&self, name: &str, detail: String) -> StoreError {
        StoreError::Corrupt {
            location: self.dir.join(name).display().to_string(),
            detail,
        }
    }

    fn io(&self, name: &str, e: std::io::Error) -> StoreError {
        StoreError::Io(format!("{}: {e}", self.dir.join(name).display()))
    }

    fn size(&self, f: &File, name: &str) -> Result<u64, StoreError> {
        f.metadata().map(|m| m.len()).map_err(|e| self.io(name, e))
    }

    fn read(&self, f: &File, name: &str, at: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let n = usize::try_from(len).map_err(|_| {
            self.corrupt(
                name,
                format!("a read of {len} bytes does not fit in memory"),
            )
        })?;
        let mut buf = vec![0; n];
        f.read_exact_at(&mut buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.corrupt(name, format!("bytes {at}..{} are missing", at + len))
            } else {
                self.io(name, e)
            }
        })?;
        Ok(buf)
    }

    /// Where entry `i` of a log holding `len` starts: the end of entry `i − 1`.
    fn start_of(&self, i: u64, len: u64) -> Result<u64, StoreError> {
        match i.checked_sub(1) {
            Some(p) if p < len => Ok(be_u64s(&self.read(&self.ends, ENDS, 8 * p, 8)?)[0]),
            _ => Ok(0),
        }
    }

    /// Entries `start..end` of a log holding `len` (fewer if it is shorter), in order.
    pub fn entries(&self, start: u64, end: u64, len: u64) -> Result<Vec<LogEntry>, StoreError> {
        let end = end.min(len);
        if start >= end {
            return Ok(Vec::new());
        }
        // One read of the ends: entry `start − 1`'s (where `start` begins) and `start..end`.
        let first = start.saturating_sub(1);
        let mut ends = be_u64s(&self.read(&self.ends, ENDS, 8 * first, 8 * (end - first))?);
        let from = if start == 0 { 0 } else { ends.remove(0) };
        let to = *ends
            .last()
            .expect("invariant: start < end, so one end was read");
        let bytes = to.checked_sub(from).ok_or_else(|| {
            self.corrupt(
                ENDS,
                format!("entry {start} starts past entry {}'s end", end - 1),
            )
        })?;
        let data = self.read(&self.entries, ENTRIES, from, bytes)?;
        let mut out = Vec::with_capacity(ends.len());
        let mut at = from;
        for (k, e) in ends.into_iter().enumerate() {
            let i = start + k as u64;
            let slice = e
                .checked_sub(at)
                .and_then(|n| data.get((at - from) as usize..(at - from + n) as usize))
                .ok_or_else(|| {
                    self.corrupt(
                        ENDS,
                        format!("the end of entry {i} ({e}) precedes its start ({at})"),
                    )
                })?;
            out.push(decode_record(i, slice)?);
            at = e;
        }
        Ok(out)
    }

    /// The hash entry `i` of a log holding `len` carries (`None` past the end): its record's
    /// header alone.
    pub fn hash_at(&self, i: u64, len: u64) -> Result<Option<EventHash>, StoreError> {
        if i >= len {
            return Ok(None);
        }
        let at = self.start_of(i, len)?;
        let h = self.read(&self.entries, ENTRIES, at, HEADER as u64)?;
        let hash: [u8; 32] = h[13..45].try_into().expect("invariant: read the header");
        Ok(Some(EventHash::from_bytes(hash)))
    }

    /// The hashes of nodes `ids` in a tree of `len` leaves (`None` where it has none).
    pub fn nodes(&self, ids: &[NodeId], len: u64) -> Result<Vec<Option<TreeHash>>, StoreError> {
        ids.iter()
            .map(|&id| {
                let Some(leaf) = completing_leaf(id).filter(|&l| l < len) else {
                    return Ok(None);
                };
                let at = 32 * (nodes_before(leaf) + u64::from(id.level));
                let b = self.read(&self.nodes, NODES, at, 32)?;
                Ok(Some(TreeHash::from_bytes(
                    b.try_into().expect("invariant: read 32 bytes"),
                )))
            })
            .collect()
    }

    /// Appends a group to a log of `len` entries: `events` must be entries `len..`, `nodes`
    /// what `tree_nodes::pack_nodes` made of theirs. `log-entries` is synced; the indexes
    /// are synced too when due, and then the new length is returned, for sled's `mindexed`.
    pub fn append(
        &self,
        len: u64,
        events: &[Committed],
        nodes: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        let start = self.start_of(len, len)?;
        let mut data = Vec::with_capacity(
            events
                .iter()
                .map(|c| HEADER + c.entry.event.len())
                .sum::<usize>()
                + nodes.len(),
        );
        let mut ends = Vec::with_capacity(8 * events.len());
        let mut rest = nodes;
        for (k, c) in events.iter().enumerate() {
            let n = 32 * nodes_of_leaf(len + k as u64) as usize;
            let (mine, later) = rest.split_at_checked(n).ok_or_else(|| {
                StoreError::BadGroup(format!(
                    "the group lacks the Merkle nodes of leaf {}",
                    len + k as u64
                ))
            })?;
            encode_record(&c.entry, mine, &mut data);
            ends.extend_from_slice(&(start + data.len() as u64).to_be_bytes());
            rest = later;
        }
        if events.is_empty() {
            return Ok(None);
        }
        self.entries
            .write_all_at(&data, start)
            .and_then(|()| self.entries.sync_data())
            .map_err(|e| self.io(ENTRIES, e))?;
        self.ends
            .write_all_at(&ends, 8 * len)
            .map_err(|e| self.io(ENDS, e))?;
        self.nodes
            .write_all_at(nodes, 32 * nodes_before(len))
            .map_err(|e| self.io(NODES, e))?;
        let n = self
            .unsynced
            .0
            .fetch_add(events.len() as u64, Ordering::Relaxed)
            + events.len() as u64;
        let b = self
            .unsynced
            .1
            .fetch_add(data.len() as u64, Ordering::Relaxed)
            + data.len() as u64;
        if n < self.sync_every.0 && b < self.sync_every.1 {
            return Ok(None);
        }
        self.ends.sync_data().map_err(|e| self.io(ENDS, e))?;
        self.nodes.sync_data().map_err(|e| self.io(NODES, e))?;
        self.unsynced.0.store(0, Ordering::Relaxed);
        self.unsynced.1.store(0, Ordering::Relaxed);
        Ok(Some(len + events.len() as u64))
    }

    /// Entries and leaves whose nodes the index files hold, from the files' sizes (not from
    /// sled's length): for the audit's cross-check.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let events = self.size(&self.ends, ENDS)? / 8;
        let node_count = self.size(&self.nodes, NODES)? / 32;
        // The largest n whose nodes all fit: nodes_before is increasing.
        let (mut lo, mut hi) = (0u64, node_count);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if nodes_before(mid) <= node_count {
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
    use crate::store::tree_nodes::pack_nodes;

    /// Appends `n` entries in groups of 3 from `f`'s size; returns what each append said.
    fn append(files: &LogFiles, f: &mut Frontier, n: u64, tag: &str) -> Vec<Option<u64>> {
        let mut said = vec![];
        let end = f.size() + n;
        while f.size() < end {
            let len = f.size();
            let (mut events, mut nodes) = (vec![], vec![]);
            while f.size() < end && events.len() < 3 {
                let i = f.size();
                let event = format!("{{\"n\":{i},\"t\":\"{tag}\"}}").into_bytes();
                nodes.extend(f.push(leaf_hash(&event)));
                events.push(Committed {
                    entry: LogEntry {
                        index: LogIndex::new(i),
                        integrated_at: Timestamp::clamped(1_700_000_000 + i as i64),
                        hash: EventHash::from_bytes([i as u8; 32]),
                        event,
                    },
                    delta: Default::default(),
                });
            }
            let packed = pack_nodes(len, events.len() as u64, &nodes).expect("pack");
            said.push(files.append(len, &events, &packed).expect("append"));
        }
        said
    }

    fn all_nodes(f: &Frontier) -> Vec<NodeId> {
        (0..=f.size().ilog2() as u8)
            .flat_map(|level| (0..f.size() >> level).map(move |index| NodeId { level, index }))
            .collect()
    }

    #[test]
    fn indexes_are_synced_when_due_and_rebuilt_past_their_durable_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = LogFiles::open_with(dir.path(), 0, 0, (10, u64::MAX)).expect("open");
        let mut f = Frontier::default();
        let said = append(&files, &mut f, 25, "a");
        let synced: Vec<u64> = said.iter().flatten().copied().collect();
        assert_eq!(synced, vec![12, 24], "synced after 10 or more entries");
        let entries = files.entries(0, 25, 25).expect("entries");
        let ids = all_nodes(&f);
        let nodes = files.nodes(&ids, 25).expect("nodes");
        assert!(nodes.iter().all(Option::is_some));
        drop(files);

        // A power loss took the indexes' tail past entry 24: log-ends lost its last entry,
        // log-nodes its last nodes, and what remains of them past the point is garbage.
        let ends = dir.path().join(ENDS);
        let mut e = std::fs::read(&ends).expect("read");
        e.truncate(8 * 24 + 3);
        std::fs::write(&ends, e).expect("write");
        let nodes_file = dir.path().join(NODES);
        let mut n = std::fs::read(&nodes_file).expect("read");
        let durable = 32 * nodes_before(24) as usize;
        n.truncate(durable + 7);
        n[durable..].fill(0xee);
        std::fs::write(&nodes_file, n).expect("write");
        let files = LogFiles::open(dir.path(), 25, 24).expect("reopen rebuilds");
        assert_eq!(files.entries(0, 25, 25).expect("entries"), entries);
        assert_eq!(files.nodes(&ids, 25).expect("nodes"), nodes);
        assert_eq!(files.counts().expect("counts"), (25, 25));
        drop(files);

        // The durable part itself cut short: refused.
        let e = std::fs::read(&ends).expect("read");
        std::fs::write(&ends, &e[..8 * 24 - 1]).expect("write");
        match LogFiles::open(dir.path(), 25, 24) {
            Err(StoreError::Corrupt { location, detail }) => {
                assert!(location.ends_with(ENDS), "{location}");
                assert!(detail.contains("lost"), "{detail}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("opened without its durable index"),
        }
        std::fs::write(&ends, &e).expect("restore");
        assert!(LogFiles::open(dir.path(), 25, 26).is_err(), "indexed > len");
    }

    #[test]
    fn a_record_with_the_wrong_node_count_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = LogFiles::open(dir.path(), 0, 0).expect("open");
        append(&files, &mut Frontier::default(), 4, "a");
        drop(files);
        // Entry 1's record: leaf 1 completes two nodes; say one.
        let path = dir.path().join(ENTRIES);
        let mut b = std::fs::read(&path).expect("read");
        let first = HEADER + 32 + usize::from(b[3]);
        assert_eq!(b[first + 4], 2);
        b[first + 4] = 1;
        std::fs::write(&path, b).expect("write");
        match LogFiles::open(dir.path(), 4, 0) {
            Err(StoreError::Corrupt { location, detail }) => {
                assert_eq!(location, "log entry 1");
                assert!(detail.contains("leaf 1 completes 2"), "{detail}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("opened with a damaged record"),
        }
    }

    #[test]
    fn an_unacknowledged_tail_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = LogFiles::open(dir.path(), 0, 0).expect("open");
        let mut f = Frontier::default();
        append(&files, &mut f, 7, "a");
        let entries = files.entries(0, 7, 7).expect("entries");
        let sizes: Vec<u64> = FILES
            .iter()
            .map(|n| std::fs::metadata(dir.path().join(n)).expect("file").len())
            .collect();
        append(&files, &mut f, 3, "a");
        drop(files);
        // sled never recorded entries 7..10: the indexes are cut back, the records kept.
        let files = LogFiles::open(dir.path(), 7, 0).expect("reopen");
        let now = |n: &str| std::fs::metadata(dir.path().join(n)).expect("file").len();
        assert_eq!((now(ENDS), now(NODES)), (sizes[1], sizes[2]));
        assert!(now(ENTRIES) > sizes[0], "log-entries is never cut");
        assert_eq!(files.entries(0, 10, 7).expect("entries"), entries);
        assert_eq!(files.counts().expect("counts"), (7, 7));
        // The next commit writes over them (other events, other sizes), and reads see only
        // what it wrote.
        let mut alt = Frontier::default();
        for e in &entries {
            alt.push(leaf_hash(&e.event));
        }
        append(&files, &mut alt, 2, "the next commit");
        let read = files.entries(0, 9, 9).expect("entries");
        assert_eq!(&read[..7], &entries[..]);
        assert_eq!(read[8].event, br#"{"n":8,"t":"the next commit"}"#.to_vec());
        drop(files);
        let files = LogFiles::open(dir.path(), 9, 0).expect("reopen");
        assert_eq!(files.entries(0, 9, 9).expect("entries"), read);
    }
}
