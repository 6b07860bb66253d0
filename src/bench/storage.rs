//! The storage ceiling: how many single-unit events per second the storage can make
//! durable when it is given exactly the writes the ledger makes for them, with no
//! decoding, verification, rules or hashing around it. `custody bench` reports ingest
//! also as a ratio to this, because (BENCHMARKS.md) the single writer spends most of its
//! time inside sled.
//!
//! Events alternate between a transfer and its acceptance, as the bulk of a ledger does.
//! Both append a log record (680 bytes, about the median stored entry, plus the two Merkle
//! nodes a leaf completes on average) to `log-entries`, its end offset and the nodes to the
//! two index files (layout 3, `store::log_files`), and write to sled the unit record under a
//! random unit id (`u`, 178 bytes: a few chain links and the binary record of layout 5). The
//! hash index is not in sled since layout 6 (`store::hash_table`): it costs a map insert per
//! event and a flush per 65,536, which this run of 60,000 does not reach. A transfer also adds an involvement (`v`); an
//! acceptance removes a holding and adds one (`x`), both keyed by party and unit. Events go
//! in groups of at most 256 KiB of entries: the records are written and `fdatasync`ed (the
//! index files are written, and synced only every 64k events as the store does), then one
//! `sled::Batch` with the new length is applied and `Db::flush`ed, as the writer commits
//! them.

use std::os::unix::fs::FileExt;
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
    let file = |name: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(name))
    };
    let (entries, ends, nodes) = (file("entries")?, file("ends")?, file("nodes")?);
    let (mut at_entries, mut at_ends, mut at_nodes) = (0u64, 0u64, 0u64);
    let mut rnd = Pick(0x9E37_79B9_7F4A_7C15);
    let entry = vec![0x5a_u8; 680];
    let unit_record = vec![0x7b_u8; 178];
    let party = |n: u64| format!("p{:031x}", n % 1000).into_bytes();
    let unit = |n: u64| format!("urn:epc:id:sgtin:0614141.107346.{:020}", n % UNITS).into_bytes();
    let t = Instant::now();
    let mut i = 0u64;
    while i < EVENTS {
        let mut batch = sled::Batch::default();
        let (mut data, mut offsets, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0usize;
        while bytes < crate::ledger::MAX_GROUP_BYTES && i < EVENTS {
            let (r, u) = (rnd.bits(), unit(rnd.bits()));
            data.extend_from_slice(&entry);
            data.extend_from_slice(&[0x11_u8; 64]);
            offsets.extend_from_slice(&(at_entries + data.len() as u64).to_be_bytes());
            hashes.extend_from_slice(&[0x11_u8; 64]);
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
        for (f, at, b, sync) in [
            (&entries, &mut at_entries, &data, true),
            (&ends, &mut at_ends, &offsets, false),
            (&nodes, &mut at_nodes, &hashes, false),
        ] {
            f.write_all_at(b, *at)?;
            if sync {
                f.sync_data()?;
            }
            *at += b.len() as u64;
        }
        batch.insert(b"mlen".as_slice(), &i.to_be_bytes());
        tree.apply_batch(batch).map_err(std::io::Error::other)?;
        db.flush().map_err(std::io::Error::other)?;
    }
    let rate = EVENTS as f64 / t.elapsed().as_secs_f64();
    drop(tree);
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
    Ok(rate)
}
