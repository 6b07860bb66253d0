//! The acknowledgement watermark: a small file beside sled's files that records, after
//! every durable commit and before any receipt is sent, how many events the log holds and
//! the hash of the last one.
//!
//! sled recovers from a torn or damaged log by silently cutting it back to the last point
//! it can read (measured: truncating or flipping bytes in its `db` file left a demo ledger
//! of 46 events with 13 or 14, and sled reported nothing but a warning). Acknowledged
//! events would then be gone without a trace. With the watermark, opening a store whose log
//! is shorter than what was acknowledged, or whose event at the watermark differs, fails
//! with [`StoreError::Lost`]: the ledger refuses to serve and the audit names the loss.
//!
//! Format: two 64-byte slots, written alternately (`pwrite` + `fdatasync`), so a torn write
//! leaves the other slot intact. A slot is `"CUSTODYW"` ‖ u64 sequence ‖ u64 event count ‖
//! 32-byte last event hash ‖ the first 8 bytes of SHA-256 over the preceding 56 bytes (all
//! integers big-endian). The valid slot with the higher sequence number is the watermark.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::StoreError;
use crate::core::ids::EventHash;

const MAGIC: &[u8; 8] = b"CUSTODYW";
const SLOT: usize = 64;

/// What was acknowledged: the log held `len` events, the last with hash `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub len: u64,
    pub last: EventHash,
}

pub struct Watermark {
    path: PathBuf,
    file: Mutex<(File, u64)>,
}

fn encode(seq: u64, m: &Mark) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..8].copy_from_slice(MAGIC);
    s[8..16].copy_from_slice(&seq.to_be_bytes());
    s[16..24].copy_from_slice(&m.len.to_be_bytes());
    s[24..56].copy_from_slice(m.last.as_bytes());
    let sum = Sha256::digest(&s[..56]);
    s[56..].copy_from_slice(&sum[..8]);
    s
}

fn decode(s: &[u8]) -> Option<(u64, Mark)> {
    if s.len() != SLOT || &s[..8] != MAGIC || Sha256::digest(&s[..56])[..8] != s[56..] {
        return None;
    }
    let seq = u64::from_be_bytes(s[8..16].try_into().ok()?);
    let len = u64::from_be_bytes(s[16..24].try_into().ok()?);
    let last = EventHash::from_bytes(s[24..56].try_into().ok()?);
    Some((seq, Mark { len, last }))
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("acknowledgement watermark {}: {e}", path.display()))
}

impl Watermark {
    /// Opens (creating if needed) the watermark file in `dir`; returns it and the mark it
    /// holds (`None` for a new file, or one whose slots are both unreadable).
    pub fn open(dir: &Path) -> Result<(Self, Option<Mark>), StoreError> {
        let path = dir.join("acknowledged");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io(&path, e))?;
        let best = bytes
            .chunks(SLOT)
            .take(2)
            .filter_map(decode)
            .max_by_key(|(seq, _)| *seq);
        let seq = best.map_or(0, |(s, _)| s);
        Ok((
            Self {
                path,
                file: Mutex::new((file, seq)),
            },
            best.map(|(_, m)| m),
        ))
    }

    /// Durably records `m` (in the slot the previous write did not use).
    pub fn record(&self, m: &Mark) -> Result<(), StoreError> {
        let mut g = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = g.1 + 1;
        let slot = encode(seq, m);
        let f = &mut g.0;
        f.seek(SeekFrom::Start((seq % 2) * SLOT as u64))
            .and_then(|_| f.write_all(&slot))
            .and_then(|()| f.sync_data())
            .map_err(|e| io(&self.path, e))?;
        g.1 = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_intact_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        let (w, m) = Watermark::open(dir.path()).expect("open");
        assert_eq!(m, None);
        let a = Mark {
            len: 5,
            last: EventHash::from_bytes([5; 32]),
        };
        let b = Mark {
            len: 9,
            last: EventHash::from_bytes([9; 32]),
        };
        w.record(&a).expect("a");
        w.record(&b).expect("b");
        drop(w);
        assert_eq!(Watermark::open(dir.path()).expect("open").1, Some(b));
        // Tear the newest slot (sequence 2 is in slot 0): the older one is the mark.
        let path = dir.path().join("acknowledged");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(Watermark::open(dir.path()).expect("open").1, Some(a));
    }
}
