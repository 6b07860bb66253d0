//! What each key family of the sled layout costs: sled alone, given synthetic writes shaped
//! like the ledger's (BENCHMARKS.md, "What sled costs per key family"), committed in groups
//! of 256 KiB of entries, each one `sled::Batch` plus `Db::flush`, as the writer does.
//!
//! `cargo bench --bench sled_keys -- [EVENTS] [FAMILIES...]`
//! FAMILIES are strings of letters: `e` log entries (sequential keys; 680 bytes, one in 20 a
//! 15 KB lot registration when `B` is given), `h` hash index (random 32-byte keys), `t` Merkle
//! node records (sequential), `u` unit records (random unit ids, 442 bytes), `x` holdings and
//! `v` involvement (random party ‖ unit keys, empty values). Default: `e eB ehB etB euB exB
//! evB ehtuxvB`. Prints events/s, bytes written to disk per event (from /proc/self/io), the
//! sled directory's size per event, and the live key + value bytes per event.

use std::time::Instant;

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("write_bytes"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn run(n: u64, families: &str) -> Result<(), sled::Error> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .cache_capacity(256 << 20)
        .open()?;
    let tree = db.open_tree("custody")?;
    let has = |c: char| families.contains(c);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (w0, t0) = (written_bytes(), Instant::now());
    let mut i = 0u64;
    while i < n {
        let mut b = sled::Batch::default();
        let mut bytes = 0;
        while bytes < 256 * 1024 && i < n {
            let size = if has('B') && i % 20 == 0 { 15_000 } else { 680 };
            let idx = i.to_be_bytes();
            if has('e') {
                b.insert(key(b'e', &[&idx]), vec![1u8; size]);
            }
            bytes += size;
            let r = rnd();
            if has('h') {
                let mut h = [3u8; 32];
                h[..8].copy_from_slice(&r.to_be_bytes());
                b.insert(key(b'h', &[&h]), &idx);
            }
            if has('t') {
                b.insert(key(b't', &[&idx]), vec![2u8; 64]);
            }
            let unit = format!("urn:epc:id:sgtin:0614141.107346.{:020}", r % (n / 2).max(1));
            let party = |s: u64| format!("p{:031x}", s % 1000).into_bytes();
            if has('u') {
                b.insert(key(b'u', &[unit.as_bytes()]), vec![4u8; 442]);
            }
            if has('x') {
                b.remove(key(b'x', &[&party(r), unit.as_bytes()]));
                b.insert(key(b'x', &[&party(r >> 16), unit.as_bytes()]), &[][..]);
            }
            if has('v') {
                b.insert(key(b'v', &[&party(r >> 16), unit.as_bytes()]), &[][..]);
            }
            i += 1;
        }
        tree.apply_batch(b)?;
        db.flush()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let written = written_bytes().saturating_sub(w0);
    let mut live = 0u64;
    for kv in tree.iter() {
        let (k, v) = kv?;
        live += (k.len() + v.len()) as u64;
    }
    drop(tree);
    drop(db);
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "{families:<8} {:>9.0} ev/s  written {:>6.0} B/ev  on disk {:>6.0} B/ev  live {:>6.0} B/ev",
        n as f64 / secs,
        per(written),
        per(dir_bytes(dir.path())),
        per(live)
    );
    Ok(())
}

fn main() -> Result<(), sled::Error> {
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let families = if rest.is_empty() {
        vec!["e", "eB", "ehB", "etB", "euB", "exB", "evB", "ehtuxvB"]
    } else {
        rest
    };
    for f in families {
        run(n, f)?;
    }
    Ok(())
}
