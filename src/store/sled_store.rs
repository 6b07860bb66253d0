//! The embedded store: one sled tree with prefixed keys, written only by `commit`, which
//! applies a whole group as one atomic `sled::Batch` and then calls `Db::flush`
//! (fsync) before returning. sled's own background flush is switched off so that nothing
//! reaches disk in an order we did not ask for.
//!
//! Key layout (all integers big-endian):
//! | prefix | key                            | value                                   |
//! |--------|--------------------------------|-----------------------------------------|
//! | `m`    | `layout`, `name`, `logkey`, `len`, `indexed`, `operator`, `units` | layout number, ledger name, log key, u64 event count, u64 events whose log-file indexes are durable, party id, u64 registered units (layout 5) |
//! | `p`    | party id                       | PartyRecord (JSON)                      |
//! | `n`    | handle                         | party id                                |
//! | `k`    | 32-byte public key             | party id                                |
//! | `u`    | unit id                        | u32 n, n × u64 chain log indexes, UnitRecord (binary, [`super::unit_codec`]) |
//! | `x`    | party id, unit id              | empty (the party holds the unit)        |
//! | `v`    | party id, unit id              | empty (the party is involved in the unit) |
//! | `s`    | party id, u32 days             | u64 completed stays of that many days (layout 5) |
//! | `q`    | u64 tree size                  | signed checkpoint (note text)           |
//!
//! The log entries and the Merkle nodes are not in sled but in append-only files beside it
//! (layout 3, [`super::log_files`]); `mlen` in sled says how much of them is committed. The
//! hash index is not in sled either (layout 6, [`super::hash_table`]: `log-hashes`, with its
//! own durable mark). A unit's chain lives in its record (since layout 2): a group writes
//! each unit it touches once. Unit records are binary since layout 4 (JSON before); layout 5
//! added the holder's custody time to them and the `s` counters. `mlayout` holds the layout
//! number; a layout-5 directory is upgraded at open, one of any other layout is refused.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::hash_table::HashTable;
use super::log_files::LogFiles;
use super::tree_nodes;
use super::unit_codec;
use super::upper_nodes::UpperNodes;
use super::watermark::{Mark, Watermark};
use super::{
    Census, Counts, Group, IndexFault, LedgerMeta, LogEntry, PartyUnits, Store, StoreError,
};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::ids::{EventHash, Handle, LedgerName, LogIndex, PartyId, PublicKey};
use crate::core::merkle::{NodeId, TreeHash};
use crate::core::state::{IndexOp, PartyRecord, UnitRecord};
use crate::core::unit::UnitId;

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    /// The log entries and Merkle nodes.
    files: LogFiles,
    /// Event hash → log index.
    hashes: HashTable,
    /// The tree's upper levels in memory, for proofs.
    upper: UpperNodes,
    /// `mlen` as committed: read at open, set by `commit` after sled's flush (the only
    /// writer of `mlen`; sled's lock keeps other processes out). Every read and proof asks
    /// for the length, and a sled read of it cost up to ~1 ms at the tail (strace of
    /// `cargo bench --bench log` at 2M leaves).
    len: AtomicU64,
    /// `munits` as committed: registered units.
    units: AtomicU64,
    /// The acknowledgement watermark ([`super::watermark`]) and the mark found at open.
    watermark: Watermark,
    acknowledged: Option<Mark>,
}

/// sled's cache capacity for serving and ingest when `CUSTODY_SLED_CACHE_MB` does not set
/// it: 256 MiB.
pub const DEFAULT_CACHE_MB: u64 = 256;

/// sled's cache capacity for one pass over every record ([`CacheFor::Scans`]) when
/// `CUSTODY_SLED_CACHE_MB` does not set it: 64 MiB.
pub const SCAN_CACHE_MB: u64 = 64;

/// What a store is opened for, which sizes sled's cache when `CUSTODY_SLED_CACHE_MB` does
/// not. sled sizes its cache by on-disk bytes and holds about twice that in memory over
/// long scans (BENCHMARKS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFor {
    /// A server, ingest, reads: the same records read again and again
    /// ([`DEFAULT_CACHE_MB`]).
    Serving,
    /// One pass over the whole ledger (`verify`, `audit`, `resolve --all`), each record
    /// read about once: a larger cache buys little time for its memory
    /// ([`SCAN_CACHE_MB`]). At 10M events the audit peaked at 1,965 MiB in 456 s with it,
    /// 2,441 MiB in 440 s with 256 MiB (BENCHMARKS.md, thirteenth round).
    Scans,
}

/// sled's cache capacity in bytes: `CUSTODY_SLED_CACHE_MB` (MiB, at least 1), or the
/// default for `what`.
fn cache_bytes(what: CacheFor) -> u64 {
    let default = match what {
        CacheFor::Serving => DEFAULT_CACHE_MB,
        CacheFor::Scans => SCAN_CACHE_MB,
    };
    let mb = std::env::var("CUSTODY_SLED_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&mb| mb >= 1)
        .unwrap_or(default);
    mb.saturating_mul(1 << 20)
}

/// Opens sled without its background flusher (commits flush explicitly). Another process
/// holding the directory is waited for up to 3 s: a process that just closed it (or a
/// library user that just dropped its `Db`) can take a moment to release sled's file lock.
fn open_db(dir: &Path, cache: CacheFor) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let r = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(cache_bytes(cache))
            .open();
        // sled reports a held lock as `Other` with the OS error in the text.
        let locked = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().contains("could not acquire lock")
        };
        match r {
            Err(sled::Error::Io(e)) if locked(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(sled::Error::Io(e)) if locked(&e) => {
                return Err(StoreError::Io(format!(
                "{}: another process holds this data directory (a running `custody serve`?): {e}",
                dir.display()
            )))
            }
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(StoreError::Io(format!(
                    "{}: permission denied ({e}): the data directory and its files must be writable by this user; sled writes even to open them, so a read-only directory cannot be opened",
                    dir.display()
                )))
            }
            r => return r.map_err(io),
        }
    }
}

fn io(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            location: format!("sled file offset {at:?}"),
            detail: "sled reports corruption".into(),
        },
        other => StoreError::Io(other.to_string()),
    }
}

fn corrupt(location: impl Into<String>, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        location: location.into(),
        detail: detail.to_string(),
    }
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The key prefix of a (party, unit) family, and its name in errors.
const fn family_key(family: PartyUnits) -> (u8, &'static str) {
    match family {
        PartyUnits::Holdings => (b'x', "holdings"),
        PartyUnits::Involved => (b'v', "involvement"),
    }
}

/// Length of a party id's text (32 hex digits), which starts the holdings and involvement
/// keys.
const PARTY_ID_LEN: usize = 32;

/// The storage layout this code reads and writes (see the module table).
const LAYOUT: u64 = 6;

/// The layout before this one, which kept the hash index in sled (`h`: 32-byte event hash
/// → u64 log index). Opening one builds `log-hashes` from the log, removes the `h` keys and
/// records layout 6.
const HASHES_IN_SLED: u64 = 5;

fn unit_key(u: &UnitId) -> Vec<u8> {
    key(b'u', &[u.as_str().as_bytes()])
}

/// A `u` value: the chain's length, its log indexes, then the record's binary form.
fn encode_unit(record: &[u8], chain: &[u64]) -> Vec<u8> {
    let n = u32::try_from(chain.len()).expect("invariant: a chain is shorter than 2^32 events");
    let mut v = Vec::with_capacity(4 + 8 * chain.len() + record.len());
    v.extend_from_slice(&n.to_be_bytes());
    for i in chain {
        v.extend_from_slice(&i.to_be_bytes());
    }
    v.extend_from_slice(record);
    v
}

/// The record of unit `u` from a `u` value.
fn unit_record(u: &UnitId, v: &[u8], location: &str) -> Result<UnitRecord, StoreError> {
    unit_codec::decode(u, decode_unit(v, location)?.1).map_err(|e| corrupt(location, e))
}

/// An `s` key: the party id, then the days.
fn stay_key(p: &PartyId, days: u32) -> Vec<u8> {
    key(b's', &[p.as_str().as_bytes(), &days.to_be_bytes()])
}

/// The party and days of an `s` key.
fn stay_of(k: &[u8]) -> Result<(PartyId, u32), StoreError> {
    let bad = |d: &dyn ToString| corrupt(format!("stay counter {}", hex::encode(k)), d.to_string());
    let body = k.get(1..).unwrap_or_default();
    let (p, d) = body
        .split_last_chunk::<4>()
        .ok_or_else(|| bad(&"key shorter than its day count"))?;
    let p = std::str::from_utf8(p).map_err(|e| bad(&e))?;
    Ok((
        PartyId::parse(p).map_err(|e| bad(&e))?,
        u32::from_be_bytes(*d),
    ))
}

/// The chain and the record's binary form of a `u` value.
fn decode_unit<'a>(v: &'a [u8], location: &str) -> Result<(Vec<u64>, &'a [u8]), StoreError> {
    let short = || corrupt(location, "unit record shorter than its chain header");
    let n: [u8; 4] = v
        .get(..4)
        .ok_or_else(short)?
        .try_into()
        .map_err(|_| short())?;
    let n = u32::from_be_bytes(n) as usize;
    let end = n
        .checked_mul(8)
        .and_then(|b| b.checked_add(4))
        .ok_or_else(short)?;
    let links = v.get(4..end).ok_or_else(short)?;
    let chain = links
        .chunks_exact(8)
        .map(|c| u64_of(c, location))
        .collect::<Result<_, _>>()?;
    Ok((chain, &v[end..]))
}

fn checkpoint_of(v: &[u8], location: &str) -> Result<SignedCheckpoint, StoreError> {
    SignedCheckpoint::parse(v).map_err(|e| corrupt(location, e))
}

fn u64_of(v: &[u8], location: &str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = v
        .try_into()
        .map_err(|_| corrupt(location, "expected an 8-byte integer"))?;
    Ok(u64::from_be_bytes(arr))
}

fn json<T: DeserializeOwned>(v: &[u8], location: &str) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| corrupt(location, e))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v)
        .expect("invariant: records serialize (no maps with non-string keys, no floats)")
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, its cache sized for serving.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_for(dir, CacheFor::Serving)
    }

    /// Opens (creating if needed) the store in `dir`, its cache sized for `what`.
    pub fn open_for(dir: &Path, what: CacheFor) -> Result<Self, StoreError> {
        let db = open_db(dir, what)?;
        let tree = db.open_tree("custody").map_err(io)?;
        // An initialized ledger must carry this layout (ledgers before layout 2 carry none).
        if tree.get(b"mname").map_err(io)?.is_some() {
            let found = match tree.get(b"mlayout").map_err(io)? {
                None => 1,
                Some(v) => u64_of(&v, "storage layout")?,
            };
            if found != LAYOUT && found != HASHES_IN_SLED {
                return Err(StoreError::Layout {
                    found,
                    expected: LAYOUT,
                });
            }
        }
        let len = match tree.get(b"mlen").map_err(io)? {
            None => 0,
            Some(v) => u64_of(&v, "event count")?,
        };
        let units = match tree.get(b"munits").map_err(io)? {
            None => 0,
            Some(v) => u64_of(&v, "unit count")?,
        };
        let indexed = match tree.get(b"mindexed").map_err(io)? {
            None => 0,
            Some(v) => u64_of(&v, "indexed event count")?,
        };
        let files = LogFiles::open(dir, len, indexed)?;
        let hashes = HashTable::open(dir, len, |a, b| {
            Ok(files
                .entries(a, b, len)?
                .into_iter()
                .map(|e| e.hash)
                .collect())
        })?;
        let (watermark, acknowledged) = Watermark::open(dir)?;
        let store = Self {
            db,
            tree,
            files,
            hashes,
            upper: UpperNodes::default(),
            len: AtomicU64::new(len),
            units: AtomicU64::new(units),
            watermark,
            acknowledged,
        };
        if store.get(b"mlayout")?.as_deref() == Some(&HASHES_IN_SLED.to_be_bytes()[..]) {
            store.upgrade_from_hashes_in_sled()?;
        }
        if store.acknowledged.is_none() {
            // A store written before the watermark existed (or a new one): start it here.
            if let Some(m) = store.current_mark()? {
                store.watermark.record(&m)?;
            }
        }
        Ok(store)
    }

    /// Layout 5 → 6: the table was built from the log at open; sled's `h` keys go, a batch
    /// at a time (an interrupted upgrade resumes at the next open, the layout still 5).
    fn upgrade_from_hashes_in_sled(&self) -> Result<(), StoreError> {
        tracing::info!("upgrading storage layout 5 to 6: the hash index moves out of sled");
        loop {
            let keys: Vec<sled::IVec> = self
                .tree
                .scan_prefix([b'h'])
                .keys()
                .take(100_000)
                .collect::<Result<_, _>>()
                .map_err(io)?;
            if keys.is_empty() {
                break;
            }
            let mut b = sled::Batch::default();
            for k in keys {
                b.remove(k);
            }
            self.tree.apply_batch(b).map_err(io)?;
            self.db.flush().map_err(io)?;
        }
        self.tree
            .insert(b"mlayout", &LAYOUT.to_be_bytes())
            .map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// The log's length and last hash as stored now.
    fn current_mark(&self) -> Result<Option<Mark>, StoreError> {
        let len = self.len()?;
        let Some(i) = len.checked_sub(1) else {
            return Ok(None);
        };
        let last = self.entry(LogIndex::new(i))?.ok_or_else(|| {
            corrupt(
                "log",
                format!("entry {i} is missing below the length {len}"),
            )
        })?;
        Ok(Some(Mark {
            len,
            last: last.hash,
        }))
    }

    /// The sled database, for other trees kept beside the ledger (list snapshots).
    #[must_use]
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    fn get(&self, k: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        self.tree.get(k).map_err(io)
    }

    fn count_prefix(&self, p: u8) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.tree.scan_prefix([p]).keys() {
            r.map_err(io)?;
            n += 1;
        }
        Ok(n)
    }

    /// The group's pending write of unit `u`, loaded on first touch with the record and
    /// chain the store holds now.
    fn touch<'t>(
        &self,
        touched: &'t mut std::collections::BTreeMap<UnitId, (Option<Vec<u8>>, Vec<u64>)>,
        u: &UnitId,
    ) -> Result<&'t mut (Option<Vec<u8>>, Vec<u64>), StoreError> {
        if !touched.contains_key(u) {
            let now = match self.get(&unit_key(u))? {
                None => (None, Vec::new()),
                Some(v) => {
                    let (chain, record) = decode_unit(&v, &format!("unit {u}"))?;
                    (Some(record.to_vec()), chain)
                }
            };
            touched.insert(u.clone(), now);
        }
        Ok(touched
            .get_mut(u)
            .expect("invariant: inserted just above when missing"))
    }

    /// Where a scan of unit records after `after` starts.
    fn units_from(&self, after: Option<&UnitId>) -> Vec<u8> {
        match after {
            Some(a) => {
                let mut s = unit_key(a);
                s.push(0);
                s
            }
            None => vec![b'u'],
        }
    }

    /// Chain links in all unit records (each record's chain header, not its JSON).
    fn count_chain_links(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.tree.scan_prefix([b'u']) {
            let (k, v) = r.map_err(io)?;
            let (chain, _) =
                decode_unit(&v, &format!("unit {}", String::from_utf8_lossy(&k[1..])))?;
            n += chain.len() as u64;
        }
        Ok(n)
    }

    fn party_id_at(&self, k: &[u8], location: &str) -> Result<Option<PartyId>, StoreError> {
        match self.get(k)? {
            None => Ok(None),
            Some(v) => {
                let s = std::str::from_utf8(&v).map_err(|e| corrupt(location, e))?;
                PartyId::parse(s)
                    .map(Some)
                    .map_err(|e| corrupt(location, e))
            }
        }
    }
}

impl Store for SledStore {
    fn init(&self, meta: &LedgerMeta) -> Result<(), StoreError> {
        if let Some(m) = self.meta()? {
            return Err(StoreError::AlreadyInitialized(m.name.to_string()));
        }
        let mut b = sled::Batch::default();
        b.insert(b"mlayout".as_slice(), &LAYOUT.to_be_bytes());
        b.insert(b"mname".as_slice(), meta.name.as_str().as_bytes());
        b.insert(b"mlogkey".as_slice(), meta.log_key.as_bytes().as_slice());
        self.tree.apply_batch(b).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    fn meta(&self) -> Result<Option<LedgerMeta>, StoreError> {
        match self.get(b"mname")? {
            None => Ok(None),
            Some(v) => {
                let s = std::str::from_utf8(&v).map_err(|e| corrupt("ledger name", e))?;
                let k = self
                    .get(b"mlogkey")?
                    .ok_or_else(|| corrupt("log key", "missing"))?;
                let k: [u8; 32] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("log key", "expected 32 bytes"))?;
                Ok(Some(LedgerMeta {
                    name: LedgerName::parse(s).map_err(|e| corrupt("ledger name", e))?,
                    log_key: PublicKey::from_bytes(k).map_err(|e| corrupt("log key", e))?,
                }))
            }
        }
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn entry(&self, i: LogIndex) -> Result<Option<LogEntry>, StoreError> {
        let next = i.get().saturating_add(1);
        Ok(self.files.entries(i.get(), next, self.len()?)?.pop())
    }

    fn entries(&self, start: LogIndex, end: LogIndex) -> Result<Vec<LogEntry>, StoreError> {
        self.files.entries(start.get(), end.get(), self.len()?)
    }

    fn index_of(&self, h: &EventHash) -> Result<Option<LogIndex>, StoreError> {
        let len = self.len()?;
        let found = self.hashes.find(h, len, |i| {
            Ok(self.files.hash_at(i, len)?.as_ref() == Some(h))
        })?;
        Ok(found.map(LogIndex::new))
    }

    fn operator(&self) -> Result<Option<PartyId>, StoreError> {
        self.party_id_at(b"moperator", "operator")
    }

    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, StoreError> {
        self.get(&key(b'p', &[id.as_str().as_bytes()]))?
            .map(|v| json(&v, &format!("party {id}")))
            .transpose()
    }

    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, StoreError> {
        self.party_id_at(&key(b'n', &[h.as_str().as_bytes()]), &format!("handle {h}"))
    }

    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, StoreError> {
        self.party_id_at(&key(b'k', &[k.as_bytes()]), &format!("key {k}"))
    }

    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, StoreError> {
        let loc = format!("unit {u}");
        self.get(&unit_key(u))?
            .map(|v| unit_record(u, &v, &loc))
            .transpose()
    }

    fn chain(&self, u: &UnitId) -> Result<Vec<LogIndex>, StoreError> {
        let Some(v) = self.get(&unit_key(u))? else {
            return Ok(Vec::new());
        };
        let (chain, _) = decode_unit(&v, &format!("chain of {u}"))?;
        Ok(chain.into_iter().map(LogIndex::new).collect())
    }

    fn party_units(
        &self,
        family: PartyUnits,
        p: &PartyId,
        (after, until): (Option<&UnitId>, Option<&UnitId>),
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError> {
        let (prefix, what) = family_key(family);
        let head = key(prefix, &[p.as_str().as_bytes()]);
        let start = match after {
            Some(a) => {
                let mut s = key(prefix, &[p.as_str().as_bytes(), a.as_str().as_bytes()]);
                s.push(0);
                s
            }
            None => head.clone(),
        };
        // A key is the party's id then a unit id: up to unit `until` is up to its key.
        let end = until.map(|b| key(prefix, &[p.as_str().as_bytes(), b.as_str().as_bytes()]));
        let mut out = Vec::new();
        for r in self.tree.range(start..) {
            let (k, _) = r.map_err(io)?;
            if !k.starts_with(&head)
                || out.len() >= limit
                || end.as_ref().is_some_and(|e| &*k > e.as_slice())
            {
                break;
            }
            let s = std::str::from_utf8(&k[head.len()..]).map_err(|e| corrupt(what, e))?;
            out.push(UnitId::parse(s).map_err(|e| corrupt(what, e))?);
        }
        Ok(out)
    }

    fn pair_parties(&self, family: PartyUnits) -> Result<Vec<PartyId>, StoreError> {
        let (prefix, what) = family_key(family);
        let mut out = Vec::new();
        let mut from = vec![prefix];
        // A key is the prefix, the party's 32 hex digits, then a unit id (UTF-8, never
        // 0xFF): after one party's first key, skip past all of its keys.
        while let Some(r) = self.tree.range(from..).next() {
            let (k, _) = r.map_err(io)?;
            if k.first() != Some(&prefix) {
                break;
            }
            let id = k
                .get(1..=PARTY_ID_LEN)
                .ok_or_else(|| corrupt(what, "a key shorter than a party id"))?;
            let text = std::str::from_utf8(id).map_err(|e| corrupt(what, e))?;
            out.push(PartyId::parse(text).map_err(|e| corrupt(what, e))?);
            from = key(prefix, &[id, &[0xFF]]);
        }
        Ok(out)
    }

    fn parties(&self) -> Result<Vec<PartyRecord>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix(b"p") {
            let (k, v) = r.map_err(io)?;
            out.push(json(
                &v,
                &format!("party {}", String::from_utf8_lossy(&k[1..])),
            )?);
        }
        Ok(out)
    }

    fn unit_chains(
        &self,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<(UnitRecord, Vec<LogIndex>)>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.range(self.units_from(after)..) {
            let (k, v) = r.map_err(io)?;
            if k.first() != Some(&b'u') || out.len() >= limit {
                break;
            }
            let s = std::str::from_utf8(&k[1..]).map_err(|e| corrupt("unit key", e))?;
            let u = UnitId::parse(s).map_err(|e| corrupt("unit key", e))?;
            let location = format!("unit {u}");
            let (chain, record) = decode_unit(&v, &location)?;
            let record = unit_codec::decode(&u, record).map_err(|e| corrupt(location, e))?;
            out.push((record, chain.into_iter().map(LogIndex::new).collect()));
        }
        Ok(out)
    }

    fn check_hash_index(&self, hashes: &[EventHash]) -> Result<Option<IndexFault>, StoreError> {
        Ok(self.hashes.check(hashes)?.map(|f| IndexFault {
            index: f.index.map(LogIndex::new),
            detail: f.detail,
        }))
    }

    fn units(&self, after: Option<&UnitId>, limit: usize) -> Result<Vec<UnitRecord>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.range(self.units_from(after)..) {
            let (k, v) = r.map_err(io)?;
            if k.first() != Some(&b'u') || out.len() >= limit {
                break;
            }
            let s = std::str::from_utf8(&k[1..]).map_err(|e| corrupt("unit key", e))?;
            let u = UnitId::parse(s).map_err(|e| corrupt("unit key", e))?;
            out.push(unit_record(&u, &v, &format!("unit {u}"))?);
        }
        Ok(out)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let (events, nodes) = self.files.counts()?;
        Ok(Counts {
            events,
            parties: self.count_prefix(b'p')?,
            units: self.count_prefix(b'u')?,
            handles: self.count_prefix(b'n')?,
            keys: self.count_prefix(b'k')?,
            holdings: self.count_prefix(b'x')?,
            involved: self.count_prefix(b'v')?,
            chain_links: self.count_chain_links()?,
            stays: self.count_prefix(b's')?,
            hashes: self.hashes.count(),
            nodes,
            checkpoints: self.count_prefix(b'q')?,
        })
    }

    fn census(&self) -> Result<Census, StoreError> {
        let (events, nodes) = self.files.counts()?;
        Ok(Census {
            events,
            units: self.unit_count()?,
            parties: self.count_prefix(b'p')?,
            handles: self.count_prefix(b'n')?,
            keys: self.count_prefix(b'k')?,
            stays: self.count_prefix(b's')?,
            nodes,
            checkpoints: self.count_prefix(b'q')?,
        })
    }

    fn unit_count(&self) -> Result<u64, StoreError> {
        Ok(self.units.load(Ordering::Acquire))
    }

    fn stays(&self) -> Result<Vec<(PartyId, u32, u64)>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.scan_prefix([b's']) {
            let (k, v) = r.map_err(io)?;
            let (p, days) = stay_of(&k)?;
            out.push((p, days, u64_of(&v, "stay counter")?));
        }
        Ok(out)
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        self.upper
            .nodes(ids, self.len()?, |ids, len| self.files.nodes(ids, len))
    }

    fn stored_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        self.files.nodes(ids, self.len()?)
    }

    fn checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.get(&key(b'q', &[&size.to_be_bytes()]))?
            .map(|v| checkpoint_of(&v, &format!("checkpoint at size {size}")))
            .transpose()
    }

    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        match self.tree.scan_prefix(b"q").next_back() {
            None => Ok(None),
            Some(r) => {
                let (k, v) = r.map_err(io)?;
                let size = u64_of(&k[1..], "checkpoint key")?;
                checkpoint_of(&v, &format!("checkpoint at size {size}")).map(Some)
            }
        }
    }

    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<SignedCheckpoint>, StoreError> {
        let mut out = Vec::new();
        for r in self.tree.range(key(b'q', &[&from.to_be_bytes()])..) {
            let (k, v) = r.map_err(io)?;
            if k.first() != Some(&b'q') || out.len() >= limit {
                break;
            }
            let size = u64_of(&k[1..], "checkpoint key")?;
            out.push(checkpoint_of(&v, &format!("checkpoint at size {size}"))?);
        }
        Ok(out)
    }

    fn commit(&self, group: &Group) -> Result<(), StoreError> {
        let batch = &group.events;
        let len = self.len()?;
        for (k, c) in batch.iter().enumerate() {
            if c.entry.index.get() != len + k as u64 {
                return Err(StoreError::OutOfOrder {
                    len,
                    start: c.entry.index.get(),
                });
            }
        }
        let nodes = tree_nodes::pack_nodes(len, batch.len() as u64, &group.nodes)?;
        let mut b = sled::Batch::default();
        // Each unit the group touches: its latest record (binary) and its chain, written once.
        let mut touched: std::collections::BTreeMap<UnitId, (Option<Vec<u8>>, Vec<u64>)> =
            std::collections::BTreeMap::new();
        // Stays the group completes, added to the stored counters once per key.
        let mut stays: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
        for c in batch {
            let e = &c.entry;
            if let Some(op) = &c.delta.operator {
                b.insert(b"moperator".as_slice(), op.as_str().as_bytes());
            }
            for p in &c.delta.parties {
                b.insert(key(b'p', &[p.id.as_str().as_bytes()]), to_json(p));
            }
            for u in &c.delta.units {
                let mut record = Vec::with_capacity(160);
                unit_codec::encode_into(u, &mut record);
                self.touch(&mut touched, &u.id)?.0 = Some(record);
            }
            for op in &c.delta.index {
                match op {
                    IndexOp::Handle {
                        handle,
                        party: Some(p),
                    } => {
                        b.insert(
                            key(b'n', &[handle.as_str().as_bytes()]),
                            p.as_str().as_bytes(),
                        );
                    }
                    IndexOp::Handle {
                        handle,
                        party: None,
                    } => b.remove(key(b'n', &[handle.as_str().as_bytes()])),
                    IndexOp::Key { key: k, party } => {
                        b.insert(key(b'k', &[k.as_bytes()]), party.as_str().as_bytes())
                    }
                    IndexOp::Holding { party, unit, held } => {
                        let k = key(b'x', &[party.as_str().as_bytes(), unit.as_str().as_bytes()]);
                        if *held {
                            b.insert(k, b"".as_slice());
                        } else {
                            b.remove(k);
                        }
                    }
                    IndexOp::ChainLink { unit, seq } => {
                        let chain = &mut self.touch(&mut touched, unit)?.1;
                        if chain.len() != *seq as usize {
                            return Err(StoreError::BadGroup(format!(
                                "event {} links unit {unit} at position {seq}, but its chain has {} events",
                                e.index,
                                chain.len()
                            )));
                        }
                        chain.push(e.index.get());
                    }
                    IndexOp::Involved { party, unit } => b.insert(
                        key(b'v', &[party.as_str().as_bytes(), unit.as_str().as_bytes()]),
                        b"".as_slice(),
                    ),
                    IndexOp::Stay { party, days } => {
                        *stays.entry(stay_key(party, *days)).or_insert(0) += 1;
                    }
                }
            }
        }
        for (u, (record, chain)) in &touched {
            let record = record.as_deref().ok_or_else(|| {
                StoreError::BadGroup(format!("unit {u} has chain links but no record"))
            })?;
            b.insert(unit_key(u), encode_unit(record, chain));
        }
        // Units registered by this group: their chains start in it.
        let new_units = touched
            .values()
            .filter(|(_, chain)| chain.first().is_some_and(|&i| i >= len))
            .count() as u64;
        let units = self.units.load(Ordering::Acquire) + new_units;
        if new_units > 0 {
            b.insert(b"munits".as_slice(), &units.to_be_bytes());
        }
        for (k, add) in stays {
            let was = match self.get(&k)? {
                None => 0,
                Some(v) => u64_of(&v, "stay counter")?,
            };
            b.insert(k, &(was + add).to_be_bytes());
        }
        if let Some(last) = batch.last() {
            b.insert(
                b"mlen".as_slice(),
                &(last.entry.index.get() + 1).to_be_bytes(),
            );
        }
        if let Some(cp) = &group.checkpoint {
            b.insert(
                key(b'q', &[&cp.checkpoint.size.to_be_bytes()]),
                cp.to_note().into_bytes(),
            );
        }
        // The log files first, synced: sled's new length must never point past them.
        if let Some(indexed) = self.files.append(len, batch, &nodes)? {
            b.insert(b"mindexed".as_slice(), &indexed.to_be_bytes());
        }
        self.tree.apply_batch(b).map_err(io)?;
        self.db.flush().map_err(io)?;
        self.len.store(len + batch.len() as u64, Ordering::Release);
        self.units.store(units, Ordering::Release);
        self.upper.committed(&group.nodes, len + batch.len() as u64);
        if let Some(last) = batch.last() {
            // After sled's flush, before any receipt: the watermark never runs ahead of
            // what sled made durable.
            self.watermark.record(&Mark {
                len: last.entry.index.get() + 1,
                last: last.entry.hash,
            })?;
        }
        // Only committed entries enter the hash index.
        self.hashes
            .add(batch.iter().map(|c| (c.entry.hash, c.entry.index.get())));
        self.hashes.flush_if_due(len + batch.len() as u64, false)?;
        Ok(())
    }

    fn check_acknowledged(&self) -> Result<(), StoreError> {
        let Some(m) = self.acknowledged.filter(|m| m.len > 0) else {
            return Ok(());
        };
        let len = self.len()?;
        if len < m.len {
            return Err(StoreError::Lost {
                detail: format!(
                    "the log holds {len} events, but {} were acknowledged (the last, at index {}, has hash {})",
                    m.len,
                    m.len - 1,
                    m.last
                ),
            });
        }
        let at = self.entry(LogIndex::new(m.len - 1))?;
        match at {
            Some(e) if e.hash == m.last => Ok(()),
            Some(e) => Err(StoreError::Lost {
                detail: format!(
                    "log index {} holds event {}, but event {} was acknowledged there",
                    m.len - 1,
                    e.hash,
                    m.last
                ),
            }),
            None => Err(StoreError::Lost {
                detail: format!("log index {} is missing", m.len - 1),
            }),
        }
    }
}

impl Drop for SledStore {
    /// Writes the hash index's tail into its table, so that the next open need not read
    /// those entries again (a crash only costs that reading).
    fn drop(&mut self) {
        let len = self.len.load(Ordering::Acquire);
        if let Err(e) = self.hashes.flush_if_due(len, true) {
            tracing::warn!(error = %e, "could not flush the hash index on close; the next open rebuilds its tail");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SledStore, LAYOUT};
    use crate::bench::world::key;
    use crate::core::ids::{EventHash, LedgerName, LogIndex};
    use crate::core::state::{Delta, IndexOp, UnitRecord};
    use crate::core::unit::UnitId;
    use crate::core::values::Timestamp;
    use crate::store::{Committed, Group, LedgerMeta, LogEntry, Store, StoreError};

    fn init(dir: &std::path::Path) -> SledStore {
        let s = SledStore::open(dir).expect("open");
        s.init(&LedgerMeta {
            name: LedgerName::parse("test.example/ledger").expect("valid"),
            log_key: key("log").public,
        })
        .expect("init");
        s
    }

    /// sled itself on `dir`, once the store's handle is gone (sled releases its file lock
    /// shortly after the last handle drops).
    fn raw_sled(dir: &std::path::Path) -> sled::Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            match sled::open(dir) {
                Ok(db) => break db,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => panic!("raw sled: {e}"),
            }
        }
    }

    #[test]
    fn a_directory_of_another_storage_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(init(dir.path()));
        for (stored, found) in [(None, 1), (Some(LAYOUT + 1), LAYOUT + 1)] {
            {
                let db = raw_sled(dir.path());
                let t = db.open_tree("custody").expect("tree");
                match stored {
                    None => t.remove(b"mlayout").map(|_| ()),
                    Some(l) => t.insert(b"mlayout", &l.to_be_bytes()).map(|_| ()),
                }
                .expect("write");
                db.flush().expect("flush");
            }
            match SledStore::open(dir.path()) {
                Err(StoreError::Layout { found: f, expected }) => {
                    assert_eq!((f, expected), (found, LAYOUT));
                }
                Err(e) => panic!("expected a layout refusal, got {e}"),
                Ok(_) => panic!("layout {found} was opened"),
            }
        }
    }

    /// A layout-5 directory (this layout with the hash index as sled's `h` keys and no
    /// `log-hashes`) opens as layout 6: the table is built from the log, the keys are gone.
    #[test]
    fn a_layout_5_directory_is_upgraded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hashes: Vec<EventHash> = (0..3u8)
            .map(|k| EventHash::from_bytes([k + 1; 32]))
            .collect();
        {
            let s = init(dir.path());
            let mut frontier = crate::core::merkle::Frontier::default();
            for (k, h) in hashes.iter().enumerate() {
                s.commit(&Group {
                    events: vec![Committed {
                        entry: LogEntry {
                            index: LogIndex::new(k as u64),
                            integrated_at: Timestamp::clamped(1_700_000_000),
                            hash: *h,
                            event: b"{}".to_vec(),
                        },
                        delta: Delta::default(),
                    }],
                    nodes: frontier.push(crate::core::merkle::leaf_hash(h.as_bytes())),
                    checkpoint: None,
                })
                .expect("commit");
            }
        }
        {
            let db = raw_sled(dir.path());
            let t = db.open_tree("custody").expect("tree");
            for (k, h) in hashes.iter().enumerate() {
                let mut key = vec![b'h'];
                key.extend_from_slice(h.as_bytes());
                t.insert(key, &(k as u64).to_be_bytes()).expect("write");
            }
            t.insert(b"mlayout", &5u64.to_be_bytes()).expect("write");
            db.flush().expect("flush");
        }
        std::fs::remove_file(dir.path().join("log-hashes")).expect("remove");
        let s = SledStore::open(dir.path()).expect("layout 5 opens");
        for (k, h) in hashes.iter().enumerate() {
            assert_eq!(
                s.index_of(h).expect("index_of"),
                Some(LogIndex::new(k as u64))
            );
        }
        assert_eq!(s.check_hash_index(&hashes).expect("check"), None);
        assert_eq!(s.tree.scan_prefix(b"h").count(), 0, "the h keys are gone");
        assert_eq!(
            s.get(b"mlayout").expect("read").as_deref(),
            Some(&LAYOUT.to_be_bytes()[..])
        );
    }

    #[test]
    fn a_chain_link_out_of_sequence_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = init(dir.path());
        let maker = key("maker").party_id();
        let unit = UnitId::custody(&maker, "SEQ", "X1").expect("valid");
        let at = Timestamp::clamped(1_700_000_000);
        let hash = EventHash::from_bytes([1; 32]);
        let group = |seq: u32| Group {
            events: vec![Committed {
                entry: LogEntry {
                    index: LogIndex::new(0),
                    integrated_at: at,
                    hash,
                    event: b"{}".to_vec(),
                },
                delta: Delta {
                    units: vec![UnitRecord {
                        id: unit.clone(),
                        manufacturer: maker.clone(),
                        holder: maker.clone(),
                        head: hash,
                        head_at: at,
                        pending: None,
                        retired: None,
                        registered: LogIndex::new(0),
                        length: 1,
                        held_since: at,
                    }],
                    index: vec![IndexOp::ChainLink {
                        unit: unit.clone(),
                        seq,
                    }],
                    ..Delta::default()
                },
            }],
            nodes: crate::core::merkle::Frontier::default()
                .push(crate::core::merkle::leaf_hash(b"{}")),
            ..Group::default()
        };
        let e = s.commit(&group(1)).expect_err("a first link at position 1");
        assert!(
            matches!(&e, StoreError::BadGroup(d) if d.contains("position 1")),
            "{e}"
        );
        assert_eq!(s.len().expect("len"), 0);
        assert!(s.unit(&unit).expect("read").is_none());
        s.commit(&group(0)).expect("the first link at position 0");
        assert_eq!(s.chain(&unit).expect("chain"), vec![LogIndex::new(0)]);
        assert_eq!(s.unit(&unit).expect("read").map(|u| u.length), Some(1));
    }
}
