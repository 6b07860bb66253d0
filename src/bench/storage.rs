//! The storage ceiling: how many single-unit events per second sled itself can make
//! durable when it is given exactly the writes the ledger makes for them, with no
//! decoding, verification, rules or hashing around it. `custody bench` reports ingest
//! also as a ratio to this, because (BENCHMARKS.md) the single writer spends most of its
//! time inside sled.
//!
//! Events alternate between a transfer and its acceptance, as the bulk of a ledger does.
//! Both write the log entry under a sequential key (`e`, 680 bytes, about the median stored
//! entry), the hash index under a random key (`h`), the Merkle node record under a
//! sequential key (`t`) and the unit record under a random unit id (`u`, 450 bytes). A
//! transfer also adds an involvement (`v`); an acceptance removes a holding and adds one
//! (`x`), both keyed by party and unit. Events go in groups of at most 256 KiB of entries,
//! each one `sled::Batch` followed by `Db::flush`, as the writer commits them.

use std::path::Path;
use std::time::Instant;

use super::Pick;

/// Events written to measure the ceiling (into a new, empty sled directory).
const EVENTS: u64 = 60_000;
/// Distinct units the random keys are drawn from.
const UNITS: u64 = 30_000;

fn k(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![prefix];
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// Single-unit events per second made durable by sled in `dir` (created, then removed).
pub fn sled_events_per_s(dir: &Path) -> std::io::Result<f64> {
    let _ = std::fs::remove_dir_all(dir);
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .cache_capacity(256 << 20)
        .open()
        .map_err(std::io::Error::other)?;
    let tree = db.open_tree("custody").map_err(std::io::Error::other)?;
    let mut rnd = Pick(0x9E37_79B9_7F4A_7C15);
    let entry = vec![0x5a_u8; 680];
    let unit_record = vec![0x7b_u8; 450];
    let party = |n: u64| format!("p{:031x}", n % 1000).into_bytes();
    let unit = |n: u64| format!("urn:epc:id:sgtin:0614141.107346.{:020}", n % UNITS).into_bytes();
    let t = Instant::now();
    let mut i = 0u64;
    while i < EVENTS {
        let mut batch = sled::Batch::default();
        let mut bytes = 0usize;
        while bytes < crate::ledger::MAX_GROUP_BYTES && i < EVENTS {
            let idx = i.to_be_bytes();
            let (r, u) = (rnd.bits(), unit(rnd.bits()));
            batch.insert(k(b'e', &[&idx]), entry.as_slice());
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&r.to_be_bytes());
            batch.insert(k(b'h', &[&hash]), &idx);
            batch.insert(k(b't', &[&idx]), &[0x11_u8; 64][..]);
            batch.insert(k(b'u', &[&u]), unit_record.as_slice());
            if i % 2 == 0 {
                batch.insert(k(b'v', &[&party(r >> 16), &u]), &[][..]);
            } else {
                batch.remove(k(b'x', &[&party(r), &u]));
                batch.insert(k(b'x', &[&party(r >> 16), &u]), &[][..]);
            }
            bytes += entry.len();
            i += 1;
        }
        tree.apply_batch(batch).map_err(std::io::Error::other)?;
        db.flush().map_err(std::io::Error::other)?;
    }
    let rate = EVENTS as f64 / t.elapsed().as_secs_f64();
    drop(tree);
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
    Ok(rate)
}
