//! The hash index beside sled (storage layout 6): event hash → log index, in `log-hashes`,
//! an open-addressing table with linear probing, read and written by offset.
//!
//! Why not sled: 32-byte random keys were sled's costliest family. `cargo bench --bench
//! sled_keys -- 1000000 huxv uxv` ran at 16.7k against 26.2k events/s with and without
//! them, and peaked at 4.9 against 1.4 GiB resident (BENCHMARKS.md, tenth round).
//!
//! File (integers big-endian): a 64-byte header, `"CUSTHX01" ‖ u8 bits ‖ 7 zero bytes ‖ u64
//! count ‖ u64 mark ‖ 32-byte salt` (the table holds exactly the log's entries `0..mark`,
//! `count` of them), then 16-byte slots: `u64 tag ‖ u64 log index`, all
//! zero when empty. An event hash `h` has the tag `t` = the first 8 bytes of
//! `SHA-256(salt ‖ h)` (1 if they are 0) and the home slot `t >> (64 − bits)`; it sits in the
//! first slot at or after its home that was empty when it was inserted (probes never wrap:
//! the file grows past `2^bits` slots if a run reaches the end). The salt is random per
//! table, so no one submitting events can aim them at one run of slots. A tag is not the
//! hash: a lookup confirms every candidate against the hash the log entry itself carries.
//!
//! Durability. The table is derived from `log-entries`, like `log-ends`: entries committed
//! since the last flush wait in memory (the tail), and a flush (every [`FLUSH_EVENTS`], and
//! when the store closes) writes them into the table with the new mark and syncs it.
//! Opening adds entries `mark..len` to the tail again. A flush that a crash interrupted may
//! have left any subset of its slots and header on disk, and a later insert would not find
//! an earlier one's run: so before writing, a flush records the table's size, the slots it
//! will fill and the header before it in `log-hashes.undo` (synced, then renamed into
//! place), and removes it once the table is synced. Opening with that file present empties
//! those slots and puts the old header back (undoing a complete flush is harmless: its
//! entries return to the tail), unless the record names another size: the table grew after
//! that flush completed, and the record is dropped. Growing writes a new table
//! (`log-hashes.new`) from the old one in one sequential pass, syncs it, removes any undo
//! record and renames the new table over the old; a crash before the rename leaves the old.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::core::ids::EventHash;

/// The table's file name in the data directory.
pub const FILE: &str = "log-hashes";
const UNDO: &str = "log-hashes.undo";
const UNDO_TMP: &str = "log-hashes.undo.tmp";
const NEW: &str = "log-hashes.new";
const MAGIC: &[u8; 8] = b"CUSTHX01";
const UNDO_MAGIC: &[u8; 8] = b"CUSTHU01";
const HEADER: u64 = 64;
const SLOT: u64 = 16;
/// A new table's size: 2^16 slots (1 MiB).
const MIN_BITS: u32 = 16;
/// Slots read at a time while probing.
const WINDOW: u64 = 32;
/// Entries the tail holds before a flush writes them into the table, unless
/// `CUSTODY_HASH_FLUSH_EVENTS` sets another number (at least 1): fewer make the reopening
/// after a crash shorter and flush more often (the crash tests use a few dozen, so that
/// kills land inside flushes).
pub const FLUSH_EVENTS: usize = 65_536;

fn flush_events() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("CUSTODY_HASH_FLUSH_EVENTS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(FLUSH_EVENTS)
    })
}

/// One slot: tag (never 0) and log index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    tag: u64,
    index: u64,
}

fn slot_bytes(s: Slot) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&s.tag.to_be_bytes());
    b[8..].copy_from_slice(&s.index.to_be_bytes());
    b
}

fn slot_at(b: &[u8]) -> Option<Slot> {
    let tag = u64::from_be_bytes(b[..8].try_into().expect("invariant: a 16-byte slot"));
    let index = u64::from_be_bytes(b[8..16].try_into().expect("invariant: a 16-byte slot"));
    (tag != 0).then_some(Slot { tag, index })
}

/// The table's open state (the tail beside it).
struct Table {
    file: File,
    bits: u32,
    /// Entries in the file.
    count: u64,
    /// The file holds the log's entries `0..mark`.
    mark: u64,
    salt: [u8; 32],
}

impl Table {
    fn tag(&self, h: &EventHash) -> u64 {
        tag_of(&self.salt, h)
    }
    fn home(&self, tag: u64) -> u64 {
        tag >> (64 - self.bits)
    }
}

fn tag_of(salt: &[u8; 32], h: &EventHash) -> u64 {
    let d = Sha256::new()
        .chain_update(salt)
        .chain_update(h.as_bytes())
        .finalize();
    u64::from_be_bytes(d[..8].try_into().expect("invariant: SHA-256 has 32 bytes")).max(1)
}

/// What a scan of the table found wrong, by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub index: Option<u64>,
    pub detail: String,
}

pub struct HashTable {
    dir: PathBuf,
    table: RwLock<Table>,
    tail: RwLock<HashMap<EventHash, u64>>,
    /// Tests: fail a flush after writing this many slots, as a crash would leave it.
    #[cfg(test)]
    crash_after: std::sync::atomic::AtomicUsize,
}

fn io_err(name: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{name}: {e}"))
}

fn corrupt(name: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        location: name.into(),
        detail: detail.into(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("data directory", e))
}

/// Reads slots `from..from + n` (empty past the end of the file).
fn read_slots(file: &File, from: u64, n: u64) -> Result<Vec<Option<Slot>>, StoreError> {
    let mut buf = vec![0u8; (n * SLOT) as usize];
    let mut got = 0usize;
    let at = HEADER + from * SLOT;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(FILE, e)),
        }
    }
    Ok(buf.chunks_exact(SLOT as usize).map(slot_at).collect())
}

/// Slots in the file (past its header).
fn slot_count(file: &File) -> Result<u64, StoreError> {
    Ok(file
        .metadata()
        .map_err(|e| io_err(FILE, e))?
        .len()
        .saturating_sub(HEADER)
        / SLOT)
}

/// The header's fields.
#[derive(Clone, Copy)]
struct Header {
    bits: u32,
    count: u64,
    mark: u64,
    salt: [u8; 32],
}

fn write_header(file: &File, h: &Header) -> Result<(), StoreError> {
    let mut b = [0u8; HEADER as usize];
    b[..8].copy_from_slice(MAGIC);
    b[8] = u8::try_from(h.bits).expect("invariant: bits < 64");
    b[16..24].copy_from_slice(&h.count.to_be_bytes());
    b[24..32].copy_from_slice(&h.mark.to_be_bytes());
    b[32..64].copy_from_slice(&h.salt);
    file.write_all_at(&b, 0).map_err(|e| io_err(FILE, e))
}

fn read_header(file: &File) -> Result<Header, StoreError> {
    let mut h = [0u8; HEADER as usize];
    file.read_exact_at(&mut h, 0)
        .map_err(|e| corrupt(FILE, format!("the header is unreadable: {e}")))?;
    if &h[..8] != MAGIC {
        return Err(corrupt(FILE, "the header does not start with CUSTHX01"));
    }
    let bits = u32::from(h[8]);
    if !(MIN_BITS..=48).contains(&bits) {
        return Err(corrupt(FILE, format!("the header says 2^{bits} slots")));
    }
    Ok(Header {
        bits,
        count: u64::from_be_bytes(h[16..24].try_into().expect("invariant: 8 bytes")),
        mark: u64::from_be_bytes(h[24..32].try_into().expect("invariant: 8 bytes")),
        salt: h[32..64].try_into().expect("invariant: 32 bytes"),
    })
}

/// Writes a table of 2^`bits` slots (more if a run passes the end) sequentially: entries
/// must be put in order of their home slot.
struct TableWriter<'a> {
    file: &'a File,
    w: BufWriter<&'a File>,
    bits: u32,
    next: u64,
    count: u64,
}

impl<'a> TableWriter<'a> {
    fn new(file: &'a File, bits: u32) -> Result<Self, StoreError> {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        w.write_all(&[0u8; HEADER as usize])
            .map_err(|e| io_err(NEW, e))?;
        Ok(Self {
            file,
            w,
            bits,
            next: 0,
            count: 0,
        })
    }

    fn pad(&mut self, slots: u64) -> Result<(), StoreError> {
        const ZEROS: [u8; 4096] = [0u8; 4096];
        let mut left = slots * SLOT;
        while left > 0 {
            let k = left.min(ZEROS.len() as u64);
            self.w
                .write_all(&ZEROS[..k as usize])
                .map_err(|e| io_err(NEW, e))?;
            left -= k;
        }
        Ok(())
    }

    fn put(&mut self, s: Slot) -> Result<(), StoreError> {
        let at = (s.tag >> (64 - self.bits)).max(self.next);
        self.pad(at - self.next)?;
        self.w
            .write_all(&slot_bytes(s))
            .map_err(|e| io_err(NEW, e))?;
        self.next = at + 1;
        self.count += 1;
        Ok(())
    }

    /// Pads to 2^bits slots, writes the header and syncs; returns the entry count.
    fn finish(mut self, mark: u64, salt: &[u8; 32]) -> Result<u64, StoreError> {
        self.pad((1u64 << self.bits).saturating_sub(self.next))?;
        self.w.flush().map_err(|e| io_err(NEW, e))?;
        drop(self.w);
        let h = Header {
            bits: self.bits,
            count: self.count,
            mark,
            salt: *salt,
        };
        write_header(self.file, &h)?;
        self.file.sync_all().map_err(|e| io_err(NEW, e))?;
        Ok(self.count)
    }
}

fn create(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(NEW, e))
}

/// The undo record of a flush: the table's size, the header before it and the slots it
/// fills.
struct Undo {
    bits: u32,
    count: u64,
    mark: u64,
    slots: Vec<u64>,
}

impl Undo {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + 8 * self.slots.len() + 32);
        v.extend_from_slice(UNDO_MAGIC);
        v.extend_from_slice(&u64::from(self.bits).to_be_bytes());
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.mark.to_be_bytes());
        v.extend_from_slice(&(self.slots.len() as u64).to_be_bytes());
        for s in &self.slots {
            v.extend_from_slice(&s.to_be_bytes());
        }
        let sum = Sha256::digest(&v);
        v.extend_from_slice(&sum);
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let (body, sum) = v.split_at_checked(v.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != sum || body.get(..8)? != UNDO_MAGIC {
            return None;
        }
        let u = |k: usize| -> Option<u64> {
            Some(u64::from_be_bytes(body.get(k..k + 8)?.try_into().ok()?))
        };
        let n = usize::try_from(u(32)?).ok()?;
        if body.len() != 40 + 8 * n {
            return None;
        }
        let slots = (0..n).map(|k| u(40 + 8 * k)).collect::<Option<Vec<_>>>()?;
        Some(Self {
            bits: u32::try_from(u(8)?).ok()?,
            count: u(16)?,
            mark: u(24)?,
            slots,
        })
    }
}

/// Empties the slots of a flush that a crash interrupted, and puts its header back.
fn undo_interrupted_flush(dir: &Path, file: &File) -> Result<(), StoreError> {
    let path = dir.join(UNDO);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(UNDO, e)),
    };
    // Only a synced, complete record is ever renamed into place.
    let u = Undo::decode(&bytes).ok_or_else(|| corrupt(UNDO, "the undo record is malformed"))?;
    let h = read_header(file)?;
    if u.bits != h.bits {
        // A record left from before the table grew (its removal lost in a power cut): the
        // grown table was written whole and synced after that flush completed.
        std::fs::remove_file(&path).map_err(|e| io_err(UNDO, e))?;
        return sync_dir(dir);
    }
    for s in &u.slots {
        file.write_all_at(&[0u8; SLOT as usize], HEADER + s * SLOT)
            .map_err(|e| io_err(FILE, e))?;
    }
    let back = Header {
        count: u.count,
        mark: u.mark,
        ..h
    };
    write_header(file, &back)?;
    file.sync_all().map_err(|e| io_err(FILE, e))?;
    std::fs::remove_file(&path).map_err(|e| io_err(UNDO, e))?;
    sync_dir(dir)?;
    tracing::info!(
        slots = u.slots.len(),
        mark = u.mark,
        "hash index: undid a flush that was interrupted"
    );
    Ok(())
}

impl HashTable {
    /// Opens (creating if needed) the table in `dir` for a log of `len` entries;
    /// `hashes(from, to)` reads the log's hashes `from..to`. A missing table is built from
    /// the whole log (a flush every [`FLUSH_EVENTS`] entries).
    pub fn open(
        dir: &Path,
        len: u64,
        hashes: impl Fn(u64, u64) -> Result<Vec<EventHash>, StoreError>,
    ) -> Result<Self, StoreError> {
        let path = dir.join(FILE);
        match std::fs::remove_file(dir.join(NEW)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(NEW, e)),
            _ => {}
        }
        if !path.exists() {
            // An undo record belongs to the table that is gone.
            match std::fs::remove_file(dir.join(UNDO)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(UNDO, e)),
                _ => {}
            }
            let mut salt = [0u8; 32];
            OsRng.fill_bytes(&mut salt);
            let f = create(&dir.join(NEW))?;
            TableWriter::new(&f, MIN_BITS)?.finish(0, &salt)?;
            std::fs::rename(dir.join(NEW), &path).map_err(|e| io_err(FILE, e))?;
            sync_dir(dir)?;
            if len > 0 {
                tracing::info!(events = len, "building the hash index from the log");
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(FILE, e))?;
        undo_interrupted_flush(dir, &file)?;
        let h = read_header(&file)?;
        let t = Self {
            dir: dir.to_path_buf(),
            table: RwLock::new(Table {
                file,
                bits: h.bits,
                count: h.count,
                mark: h.mark,
                salt: h.salt,
            }),
            tail: RwLock::new(HashMap::new()),
            #[cfg(test)]
            crash_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
        };
        // The entries past the mark go to the tail, flushed as it fills.
        let step = flush_events() as u64;
        let mut at = h.mark.min(len);
        while at < len {
            let to = (at + step).min(len);
            t.add(hashes(at, to)?.into_iter().zip(at..to));
            t.flush_if_due(to, false)?;
            at = to;
        }
        Ok(t)
    }

    /// Adds committed entries to the tail.
    pub fn add(&self, entries: impl IntoIterator<Item = (EventHash, u64)>) {
        self.tail
            .write()
            .expect("invariant: no panic while holding the lock")
            .extend(entries);
    }

    /// Entries in the tail.
    pub fn pending(&self) -> usize {
        self.tail
            .read()
            .expect("invariant: no panic while holding the lock")
            .len()
    }

    /// Entries in all.
    pub fn count(&self) -> u64 {
        // The tail's lock before the table's, as a flush takes them.
        let pending = self.pending() as u64;
        let t = self
            .table
            .read()
            .expect("invariant: no panic while holding the lock");
        t.count + pending
    }

    /// The log index of `h` in a log of `len` entries: the tail's, or the first slot whose
    /// tag matches and whose entry `confirm` says carries `h`.
    pub fn find(
        &self,
        h: &EventHash,
        len: u64,
        confirm: impl Fn(u64) -> Result<bool, StoreError>,
    ) -> Result<Option<u64>, StoreError> {
        let in_tail = self
            .tail
            .read()
            .expect("invariant: no panic while holding the lock")
            .get(h)
            .copied();
        if let Some(i) = in_tail {
            return Ok((i < len).then_some(i));
        }
        let t = self
            .table
            .read()
            .expect("invariant: no panic while holding the lock");
        let tag = t.tag(h);
        let mut at = t.home(tag);
        loop {
            for s in read_slots(&t.file, at, WINDOW)? {
                match s {
                    None => return Ok(None),
                    Some(s) if s.tag == tag && s.index < len && confirm(s.index)? => {
                        return Ok(Some(s.index))
                    }
                    Some(_) => {}
                }
            }
            at += WINDOW;
        }
    }

    /// Writes the tail into the table and syncs it, when it holds [`FLUSH_EVENTS`] (or
    /// `CUSTODY_HASH_FLUSH_EVENTS`) or
    /// `force`; `mark` is the log's length, which every tail entry is below and every entry
    /// below is in the table or the tail. Returns whether it flushed.
    pub fn flush_if_due(&self, mark: u64, force: bool) -> Result<bool, StoreError> {
        let mut tail = self
            .tail
            .write()
            .expect("invariant: no panic while holding the lock");
        if tail.is_empty() || (tail.len() < flush_events() && !force) {
            return Ok(false);
        }
        let mut t = self
            .table
            .write()
            .expect("invariant: no panic while holding the lock");
        let total = t.count + tail.len() as u64;
        let mut bits = t.bits;
        while total > (1u64 << bits) / 2 {
            bits += 1;
        }
        let started = std::time::Instant::now();
        let grown = bits != t.bits;
        if grown {
            self.grow(&mut t, &tail, bits, mark)?;
        } else {
            self.insert_in_place(&mut t, &tail, mark)?;
        }
        tracing::debug!(
            entries = tail.len(),
            grown,
            bits,
            seconds = started.elapsed().as_secs_f64(),
            "hash index flushed"
        );
        tail.clear();
        Ok(true)
    }

    fn insert_in_place(
        &self,
        t: &mut Table,
        tail: &HashMap<EventHash, u64>,
        mark: u64,
    ) -> Result<(), StoreError> {
        let mut new: Vec<Slot> = tail
            .iter()
            .map(|(h, &index)| Slot {
                tag: t.tag(h),
                index,
            })
            .collect();
        new.sort_unstable_by_key(|s| s.tag);
        // In order of home, each goes to the first free slot past its home and past the
        // previous one's place: the slots between were full, or filled by this flush.
        let mut places = Vec::with_capacity(new.len());
        let mut last: Option<u64> = None;
        for s in &new {
            let mut at = t.home(s.tag).max(last.map_or(0, |l| l + 1));
            'probe: loop {
                for (k, slot) in read_slots(&t.file, at, WINDOW)?.into_iter().enumerate() {
                    if slot.is_none() {
                        at += k as u64;
                        break 'probe;
                    }
                }
                at += WINDOW;
            }
            places.push(at);
            last = Some(at);
        }
        let undo = Undo {
            bits: t.bits,
            count: t.count,
            mark: t.mark,
            slots: places.clone(),
        };
        let tmp = self.dir.join(UNDO_TMP);
        std::fs::write(&tmp, undo.encode())
            .and_then(|()| File::open(&tmp)?.sync_all())
            .map_err(|e| io_err(UNDO, e))?;
        std::fs::rename(&tmp, self.dir.join(UNDO)).map_err(|e| io_err(UNDO, e))?;
        sync_dir(&self.dir)?;
        for (k, (s, at)) in new.iter().zip(&places).enumerate() {
            #[cfg(test)]
            if k == self.crash_after.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(StoreError::Io("simulated crash".into()));
            }
            let _ = k;
            t.file
                .write_all_at(&slot_bytes(*s), HEADER + at * SLOT)
                .map_err(|e| io_err(FILE, e))?;
        }
        t.count += new.len() as u64;
        t.mark = mark;
        let h = Header {
            bits: t.bits,
            count: t.count,
            mark,
            salt: t.salt,
        };
        write_header(&t.file, &h)?;
        t.file.sync_data().map_err(|e| io_err(FILE, e))?;
        // Not synced: should the removal be lost, opening undoes this complete flush,
        // which only returns its entries to the tail.
        std::fs::remove_file(self.dir.join(UNDO)).map_err(|e| io_err(UNDO, e))
    }

    /// Rewrites the table at 2^`bits` slots with the tail in it, in one sequential pass:
    /// the old table's runs, each sorted by new home (every entry's home lies within its
    /// run, so runs come in order of home), merged with the sorted tail.
    fn grow(
        &self,
        t: &mut Table,
        tail: &HashMap<EventHash, u64>,
        bits: u32,
        mark: u64,
    ) -> Result<(), StoreError> {
        let shift = 64 - bits;
        let mut new: Vec<Slot> = tail
            .iter()
            .map(|(h, &index)| Slot {
                tag: t.tag(h),
                index,
            })
            .collect();
        new.sort_unstable_by_key(|s| s.tag);
        let mut new = new.into_iter().peekable();
        let slots = slot_count(&t.file)?;
        let path = self.dir.join(NEW);
        let file = create(&path)?;
        let mut w = TableWriter::new(&file, bits)?;
        let mut run: Vec<Slot> = Vec::new();
        let mut put_run = |run: &mut Vec<Slot>, w: &mut TableWriter| -> Result<(), StoreError> {
            run.sort_unstable_by_key(|s| s.tag >> shift);
            for s in run.drain(..) {
                while let Some(n) = new.next_if(|n| n.tag >> shift <= s.tag >> shift) {
                    w.put(n)?;
                }
                w.put(s)?;
            }
            Ok(())
        };
        let mut at = 0u64;
        while at < slots {
            let k = (1u64 << 16).min(slots - at);
            for s in read_slots(&t.file, at, k)? {
                match s {
                    Some(s) => run.push(s),
                    None => put_run(&mut run, &mut w)?,
                }
            }
            at += k;
        }
        put_run(&mut run, &mut w)?;
        for n in new {
            w.put(n)?;
        }
        let count = w.finish(mark, &t.salt)?;
        // No undo record may outlive the table it was written for.
        match std::fs::remove_file(self.dir.join(UNDO)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(UNDO, e)),
            _ => {}
        }
        sync_dir(&self.dir)?;
        std::fs::rename(&path, self.dir.join(FILE)).map_err(|e| io_err(FILE, e))?;
        sync_dir(&self.dir)?;
        t.file = file;
        t.bits = bits;
        t.count = count;
        t.mark = mark;
        Ok(())
    }

    /// Checks the table against the log's hashes (`hashes[i]` is entry i's): every entry
    /// in its probe run, each log index exactly once with its hash's tag, as many entries
    /// as the log holds. Returns the first fault.
    pub fn check(&self, hashes: &[EventHash]) -> Result<Option<Fault>, StoreError> {
        let tail = self
            .tail
            .read()
            .expect("invariant: no panic while holding the lock");
        let t = self
            .table
            .read()
            .expect("invariant: no panic while holding the lock");
        let n = hashes.len() as u64;
        let mut seen = vec![false; hashes.len()];
        let slots = slot_count(&t.file)?;
        let (mut at, mut empty_before, mut found) = (0u64, None::<u64>, 0u64);
        let fault = |index: Option<u64>, detail: String| Ok(Some(Fault { index, detail }));
        while at < slots {
            let k = (1u64 << 16).min(slots - at);
            for (j, s) in read_slots(&t.file, at, k)?.into_iter().enumerate() {
                let pos = at + j as u64;
                let Some(s) = s else {
                    empty_before = Some(pos);
                    continue;
                };
                let home = t.home(s.tag);
                if home > pos || empty_before.is_some_and(|e| e >= home) {
                    return fault(Some(s.index), format!("slot {pos} holds log index {} outside its probe run (home slot {home}): a lookup cannot reach it", s.index));
                }
                let Some(h) = usize::try_from(s.index).ok().and_then(|i| hashes.get(i)) else {
                    return fault(
                        None,
                        format!(
                            "slot {pos} maps a hash to log index {}, beyond the log of {n}",
                            s.index
                        ),
                    );
                };
                if t.tag(h) != s.tag {
                    return fault(Some(s.index), format!("slot {pos} maps a hash to log index {}, which holds {h}, a hash of another tag", s.index));
                }
                let i = s.index as usize;
                if std::mem::replace(&mut seen[i], true) {
                    return fault(
                        Some(s.index),
                        format!("log index {} is in the hash index twice", s.index),
                    );
                }
                found += 1;
            }
            at += k;
        }
        if found != t.count {
            return fault(
                None,
                format!(
                    "the hash table's header counts {} entries, its slots hold {found}",
                    t.count
                ),
            );
        }
        for (h, &i) in tail.iter() {
            match usize::try_from(i).ok().and_then(|k| hashes.get(k)) {
                Some(real) if real == h => {}
                Some(real) => {
                    return fault(
                        Some(i),
                        format!("the hash index maps {h} to log index {i}, which holds {real}"),
                    )
                }
                None => {
                    return fault(
                        None,
                        format!("the hash index maps {h} to log index {i}, beyond the log"),
                    )
                }
            }
            if std::mem::replace(&mut seen[i as usize], true) {
                return fault(Some(i), format!("log index {i} is in the hash index twice"));
            }
            found += 1;
        }
        if found != n {
            let missing = seen.iter().position(|s| !s).map(|i| i as u64);
            return fault(
                missing,
                format!(
                    "the hash index holds {found} entries for {n} events in the log{}",
                    missing.map_or(String::new(), |i| format!(" (log index {i} is missing)"))
                ),
            );
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash(k: u64) -> EventHash {
        EventHash::from_bytes(Sha256::digest(k.to_be_bytes()).into())
    }

    fn log(n: u64) -> Vec<EventHash> {
        (0..n).map(hash).collect()
    }

    fn open(dir: &Path, log: &[EventHash]) -> HashTable {
        let len = log.len() as u64;
        HashTable::open(dir, len, |a, b| Ok(log[a as usize..b as usize].to_vec())).expect("open")
    }

    fn find(t: &HashTable, log: &[EventHash], h: &EventHash) -> Option<u64> {
        let len = log.len() as u64;
        t.find(h, len, |i| Ok(log.get(i as usize) == Some(h)))
            .expect("find")
    }

    fn all_found(t: &HashTable, log: &[EventHash]) {
        for (i, h) in log.iter().enumerate() {
            assert_eq!(find(t, log, h), Some(i as u64), "entry {i}");
        }
        assert_eq!(find(t, log, &hash(u64::MAX)), None, "absent");
        assert_eq!(t.check(log).expect("check"), None);
        assert_eq!(t.count(), log.len() as u64);
    }

    /// Commits `from..to` of `log` as the store does: add, then flush when due.
    fn commit(t: &HashTable, log: &[EventHash], from: u64, to: u64) {
        t.add((from..to).map(|i| (log[i as usize], i)));
        t.flush_if_due(to, false).expect("flush");
    }

    /// Commits `from..to` and flushes whatever the tail holds.
    fn commit_and_flush(t: &HashTable, log: &[EventHash], from: u64, to: u64) {
        commit(t, log, from, to);
        t.flush_if_due(to, true).expect("flush");
    }

    #[test]
    fn grows_and_finds_every_entry_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(300_000);
        let t = open(dir.path(), &[]);
        for c in (0..300_000u64).step_by(5_000) {
            commit(&t, &log, c, c + 5_000);
        }
        assert!(t.pending() < FLUSH_EVENTS, "flushed as the tail filled");
        let bits = t.table.read().expect("lock").bits;
        assert!(
            bits >= 20,
            "grew from 2^16 to hold 300k at half load: 2^{bits}"
        );
        all_found(&t, &log);
        t.flush_if_due(300_000, true).expect("close");
        drop(t);
        let t = open(dir.path(), &log);
        assert_eq!(t.pending(), 0, "a clean close leaves no tail");
        all_found(&t, &log);
    }

    #[test]
    fn a_missing_table_is_built_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(150_000);
        let t = open(dir.path(), &log);
        assert!(t.pending() < FLUSH_EVENTS);
        all_found(&t, &log);
    }

    #[test]
    fn a_crash_inside_a_flush_is_undone_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 60_000;
        let log = log(n);
        let t = open(dir.path(), &[]);
        commit_and_flush(&t, &log, 0, 40_000);
        let (mark, bits) = {
            let g = t.table.read().expect("lock");
            (g.mark, g.bits)
        };
        assert_eq!((mark, bits), (40_000, 17));
        t.crash_after
            .store(1_000, std::sync::atomic::Ordering::Relaxed);
        commit(&t, &log, 40_000, n);
        assert!(t.flush_if_due(n, true).is_err(), "the simulated crash");
        assert_eq!(
            t.table.read().expect("lock").bits,
            17,
            "in place, not grown"
        );
        drop(t);
        let undo =
            Undo::decode(&std::fs::read(dir.path().join(UNDO)).expect("the undo record survives"))
                .expect("a whole record");
        assert_eq!(
            (undo.mark, undo.count, undo.slots.len()),
            (40_000, 40_000, 20_000)
        );
        // The flush's first slot never reached the disk, its next 999 did: as a power cut
        // can leave pages.
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join(FILE))
            .expect("open");
        f.write_all_at(&[0u8; 16], HEADER + undo.slots[0] * SLOT)
            .expect("write");
        drop(f);
        let t = open(dir.path(), &log);
        assert!(!dir.path().join(UNDO).exists());
        assert_eq!(t.table.read().expect("lock").mark, mark, "the old header");
        all_found(&t, &log);
    }

    #[test]
    fn an_undone_complete_flush_only_returns_its_entries_to_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 1_010;
        let log = log(n);
        let t = open(dir.path(), &[]);
        commit_and_flush(&t, &log, 0, 10);
        // The undo record of the next flush stays, as if its removal was lost.
        commit_and_flush(&t, &log, 10, n);
        drop(t);
        let undo = Undo {
            bits: MIN_BITS,
            count: 10,
            mark: 10,
            slots: Vec::new(),
        };
        std::fs::write(dir.path().join(UNDO), undo.encode()).expect("write");
        let t = open(dir.path(), &log);
        assert_eq!(t.pending(), 1_000, "entries 10.. are in the tail again");
        // The slots were not emptied (the record lists none) and the count went back:
        // the check sees more slots than the header counts.
        assert!(t.check(&log).expect("check").is_some());
    }

    /// An undo record of a table since grown (its removal lost) is not applied to the new
    /// table, whose slots it does not describe.
    #[test]
    fn an_undo_record_of_a_smaller_table_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(100_000);
        let t = open(dir.path(), &[]);
        commit_and_flush(&t, &log, 0, 100_000);
        assert!(t.table.read().expect("lock").bits > MIN_BITS, "grown");
        drop(t);
        let stale = Undo {
            bits: MIN_BITS,
            count: 0,
            mark: 0,
            slots: (0..1_000).collect(),
        };
        std::fs::write(dir.path().join(UNDO), stale.encode()).expect("write");
        let t = open(dir.path(), &log);
        assert!(!dir.path().join(UNDO).exists(), "removed");
        assert_eq!(t.pending(), 0, "nothing undone");
        all_found(&t, &log);
    }

    #[test]
    fn check_names_doctored_slots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(1_000);
        let t = open(dir.path(), &[]);
        commit_and_flush(&t, &log, 0, 1_000);
        drop(t);
        let path = dir.path().join(FILE);
        let clean = std::fs::read(&path).expect("read");
        let occupied: Vec<usize> = (0..(clean.len() - HEADER as usize) / 16)
            .filter(|k| clean[HEADER as usize + 16 * k..][..8] != [0u8; 8])
            .collect();
        let at = |k: usize| HEADER as usize + 16 * k;
        type Doctor = Box<dyn Fn(&mut Vec<u8>)>;
        let first = occupied[0];
        let cases: Vec<(Doctor, &str)> = vec![
            (
                Box::new(move |b: &mut Vec<u8>| {
                    let i =
                        u64::from_be_bytes(b[at(first) + 8..at(first) + 16].try_into().expect("8"));
                    b[at(first) + 8..at(first) + 16]
                        .copy_from_slice(&((i + 1) % 1_000).to_be_bytes());
                }),
                "a hash of another tag",
            ),
            (
                Box::new(move |b: &mut Vec<u8>| b[at(first)..at(first) + 16].fill(0)),
                "header counts",
            ),
            (
                Box::new(move |b: &mut Vec<u8>| {
                    b[at(first) + 8..at(first) + 16].copy_from_slice(&5_000u64.to_be_bytes());
                }),
                "beyond the log",
            ),
            (
                Box::new(move |b: &mut Vec<u8>| {
                    // Moved to the slot before its home (the table's first slot is before
                    // every home but 0's).
                    let (k, home) = occupied
                        .iter()
                        .map(|&k| {
                            let tag =
                                u64::from_be_bytes(b[at(k)..at(k) + 8].try_into().expect("8"));
                            (k, tag >> (64 - MIN_BITS))
                        })
                        .find(|&(_, home)| home > 0 && b[at(home as usize - 1)..][..8] == [0u8; 8])
                        .expect("an entry with a free slot before its home");
                    let slot = b[at(k)..at(k) + 16].to_vec();
                    b[at(k)..at(k) + 16].fill(0);
                    let to = at(home as usize - 1);
                    b[to..to + 16].copy_from_slice(&slot);
                }),
                "outside its probe run",
            ),
        ];
        for (doctor, want) in cases {
            let mut b = clean.clone();
            doctor(&mut b);
            std::fs::write(&path, &b).expect("write");
            let t = open(dir.path(), &log);
            let f = t.check(&log).expect("check").expect("a fault");
            assert!(f.detail.contains(want), "{want}: {f:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Commits of random sizes, flushes forced at random, reopenings: every committed
        /// entry is found, nothing else, and the check passes.
        #[test]
        fn behaves_as_a_map(steps in proptest::collection::vec((1u64..40_000, any::<bool>(), any::<bool>()), 1..8)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let total: u64 = steps.iter().map(|s| s.0).sum();
            let log = log(total);
            let mut t = open(dir.path(), &[]);
            let mut len = 0u64;
            for (n, force, reopen) in steps {
                commit(&t, &log, len, len + n);
                len += n;
                if force {
                    t.flush_if_due(len, true).expect("flush");
                }
                if reopen {
                    drop(t);
                    t = open(dir.path(), &log[..len as usize]);
                }
            }
            let log = &log[..len as usize];
            for (i, h) in log.iter().enumerate().step_by(97) {
                prop_assert_eq!(find(&t, log, h), Some(i as u64));
            }
            prop_assert_eq!(find(&t, log, &hash(u64::MAX)), None);
            prop_assert_eq!(t.check(log).expect("check"), None);
        }
    }
}
