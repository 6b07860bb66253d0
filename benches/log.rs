//! The global Merkle log: what it adds to an append, and proof latency at scale, on sled on
//! disk, against the physical limits measured in the same run (SHA-256 compressions/s, ed25519
//! sign/s, fsync-bound commit rate).
//!
//! `cargo bench --bench log` (env: BENCH_LEAVES, default 1000000; BENCH_GROUP, events per
//! commit group in the append comparison, default 100; BENCH_RUNS, default 3; medians).

mod common;
use common::{env, median, pct};

use std::time::Instant;

use custody::core::checkpoint::Checkpoint;
use custody::core::ids::{EventHash, LedgerName, LogIndex};
use custody::core::merkle::{entry_leaf_hash, Frontier};
use custody::core::receipt::{self, CheckpointRef, ReceiptBody};
use custody::core::values::Timestamp;
use custody::log;
use custody::store::{Committed, Group, LedgerMeta, LogEntry, SledStore, Store};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// A 600-byte stand-in for a single-unit transfer envelope.
fn event_bytes(i: u64) -> Vec<u8> {
    let mut v = format!("{{\"event\":{i},\"pad\":\"").into_bytes();
    v.resize(598, b'x');
    v.extend_from_slice(b"\"}");
    v
}

fn entry(i: u64, at: Timestamp) -> Committed {
    let event = event_bytes(i);
    Committed {
        entry: LogEntry {
            index: LogIndex::new(i),
            integrated_at: at,
            hash: EventHash::from_bytes(Sha256::digest(&event).into()),
            event,
        },
        delta: Default::default(),
    }
}

fn open(dir: &std::path::Path, key: &SigningKey) -> SledStore {
    let store = SledStore::open(dir).expect("open");
    store
        .init(&LedgerMeta {
            name: LedgerName::parse("bench.example/log").expect("name"),
            log_key: custody::core::ids::PublicKey::from_bytes(key.verifying_key().to_bytes())
                .expect("key"),
        })
        .expect("init");
    store
}

/// Durable commits of `groups` groups of `g` events, with or without the writer's share of
/// the log (leaf hashing, Merkle nodes, one signed checkpoint per group). Events/s. Receipts
/// are signed by the callers' threads, off the writer, and are measured apart.
fn append(g: usize, groups: usize, with_log: bool, key: &SigningKey) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), key);
    let name = LedgerName::parse("bench.example/log").expect("name");
    let at = Timestamp::clamped(1_800_000_000);
    let mut f = Frontier::default();
    let mut i = 0u64;
    let t = Instant::now();
    for _ in 0..groups {
        let mut group = Group::default();
        for _ in 0..g {
            let c = entry(i, at);
            // The store needs every leaf's nodes (layout 3); `with_log` adds checkpoints.
            group
                .nodes
                .extend(f.push(entry_leaf_hash(at, &c.entry.event)));
            group.events.push(c);
            i += 1;
        }
        if with_log {
            let cp = Checkpoint {
                origin: name.clone(),
                size: f.size(),
                root: f.root(),
            }
            .sign(key);
            group.checkpoint = Some(cp);
        }
        store.commit(&group).expect("commit");
    }
    i as f64 / t.elapsed().as_secs_f64()
}

/// Receipts signed per second on one core (the callers' share of the log): alone (a
/// batch of one each) and in batches of `batch` (one signature per batch, FORMAT.md §10).
fn receipts(key: &SigningKey, batch: usize) -> f64 {
    let name = LedgerName::parse("bench.example/log").expect("name");
    let root = custody::core::merkle::leaf_hash(b"r");
    let n = 20_000u64;
    let t = Instant::now();
    let mut bodies = Vec::with_capacity(batch);
    for i in 0..n {
        bodies.push(ReceiptBody {
            ledger: name.clone(),
            index: LogIndex::new(i),
            event_hash: EventHash::from_bytes([7; 32]),
            integrated_at: Timestamp::clamped(1_800_000_000),
            checkpoint: Some(CheckpointRef {
                size: i + 1,
                root_hash: root,
            }),
            checkpoint_by: None,
        });
        if bodies.len() == batch || i + 1 == n {
            let leaves: Vec<_> = bodies.iter().map(receipt::leaf).collect();
            let _ = receipt::sign_batch(std::mem::take(&mut bodies), &leaves, key);
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

type Lat = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Latencies (µs) of 5000 inclusion proofs, consistency proofs and old roots at random
/// indexes and sizes, each proof verified.
fn proofs(
    store: &SledStore,
    leaves: u64,
    root: &custody::core::merkle::TreeHash,
    rnd: &mut impl FnMut(u64) -> u64,
) -> Lat {
    let mut incl = vec![];
    let mut cons = vec![];
    let mut root_lat = vec![];
    for _ in 0..5000 {
        let m = rnd(leaves);
        let t = Instant::now();
        let p = log::prove_inclusion(store, LogIndex::new(m), leaves).expect("proof");
        incl.push(t.elapsed().as_secs_f64() * 1e6);
        p.verify(root).expect("inclusion verifies");
        let old = 1 + rnd(leaves - 1);
        let t = Instant::now();
        let c = log::prove_consistency(store, old, leaves).expect("proof");
        cons.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let old_root = log::root_at(store, old).expect("old root");
        root_lat.push(t.elapsed().as_secs_f64() * 1e6);
        c.verify(&old_root, root).expect("consistency verifies");
    }
    (incl, cons, root_lat)
}

fn main() {
    let leaves = env("BENCH_LEAVES", 1_000_000) as u64;
    let g = env("BENCH_GROUP", 100);
    let runs = env("BENCH_RUNS", 3);
    let key = SigningKey::from_bytes(&[7; 32]);

    // Physical limits on this machine, this run.
    let mut sha = vec![];
    let mut sign = vec![];
    let mut fsync = vec![];
    let mut with = vec![];
    let mut without = vec![];
    let mut rcpt = vec![];
    let mut rcpt_batch = vec![];
    let mut with1 = vec![];
    let mut without1 = vec![];
    for _ in 0..runs {
        let block = [0u8; 64];
        let t = Instant::now();
        let mut h = [0u8; 32];
        for _ in 0..1_000_000 {
            let mut s = Sha256::new();
            s.update(block);
            s.update(h);
            h = s.finalize().into();
        }
        sha.push(1e6 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for k in 0..20_000u32 {
            let _ = ed25519_dalek::Signer::sign(&key, &k.to_be_bytes());
        }
        sign.push(20_000.0 / t.elapsed().as_secs_f64());
        // Empty durable commits: the fsync-bound ceiling of sled here.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path(), &key);
        let mut f = Frontier::default();
        let t = Instant::now();
        for i in 0..300u64 {
            let at = Timestamp::clamped(1_800_000_000);
            let c = entry(i, at);
            store
                .commit(&Group {
                    nodes: f.push(entry_leaf_hash(at, &c.entry.event)),
                    events: vec![c],
                    ..Group::default()
                })
                .expect("commit");
        }
        fsync.push(300.0 / t.elapsed().as_secs_f64());
        rcpt.push(receipts(&key, 1));
        rcpt_batch.push(receipts(&key, custody::ledger::SIGN_CHUNK));
        with.push(append(g, 200, true, &key));
        without.push(append(g, 200, false, &key));
        with1.push(append(1, 300, true, &key));
        without1.push(append(1, 300, false, &key));
    }

    // Proofs at scale: a sled store holding `leaves` entries and their Merkle nodes.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), &key);
    let at = Timestamp::clamped(1_800_000_000);
    let mut f = Frontier::default();
    let t = Instant::now();
    let bar = indicatif::ProgressBar::new(leaves);
    let mut i = 0u64;
    while i < leaves {
        let mut group = Group::default();
        while i < leaves && group.events.len() < 10_000 {
            let c = entry(i, at);
            group
                .nodes
                .extend(f.push(entry_leaf_hash(at, &c.entry.event)));
            group.events.push(c);
            i += 1;
        }
        if i == leaves || i % 100_000 == 0 {
            group.checkpoint = Some(
                Checkpoint {
                    origin: LedgerName::parse("bench.example/log").expect("name"),
                    size: f.size(),
                    root: f.root(),
                }
                .sign(&key),
            );
        }
        store.commit(&group).expect("commit");
        bar.set_position(i);
    }
    bar.finish_and_clear();
    let build = t.elapsed().as_secs_f64();
    let root = f.root();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    // A fresh open: proofs read the node file directly (layout 3), nothing to build first.
    let first_proof = |store: &SledStore| {
        let t = Instant::now();
        let p = log::prove_inclusion(store, LogIndex::new(leaves / 3), leaves).expect("proof");
        let secs = t.elapsed().as_secs_f64();
        p.verify(&root).expect("verifies");
        secs
    };
    drop(store);
    let store = SledStore::open(dir.path()).expect("reopen");
    let first = first_proof(&store);
    // Two passes over the same random indexes and sizes.
    let mut again = rnd;
    let (mut incl0, mut cons0, _) = proofs(&store, leaves, &root, &mut rnd);
    let (mut incl, mut cons, mut root_lat) = proofs(&store, leaves, &root, &mut again);
    // The machine's own tail: the same number of 10 µs pure-CPU tasks (SHA-256 chains).
    let mut floor = vec![];
    for k in 0..5000u32 {
        let t = Instant::now();
        let mut h: [u8; 32] = [k as u8; 32];
        for _ in 0..140 {
            h = Sha256::digest(h).into();
        }
        std::hint::black_box(h);
        floor.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let counts = store.counts().expect("counts");

    let (sha, sign, fsync) = (median(sha), median(sign), median(fsync));
    let (w, wo, w1, wo1) = (
        median(with),
        median(without),
        median(with1),
        median(without1),
    );
    println!("custody bench (log): {runs} runs, medians; {leaves} leaves for proofs");
    println!("  SHA-256 (one 64-byte block)  {sha:>10.0} /s one core");
    println!("  ed25519 sign                 {sign:>10.0} /s one core");
    println!("  durable sled commit (1 event){fsync:>10.0} /s  (fsync-bound ceiling)");
    let rcpt = median(rcpt);
    let rcpt_batch = median(rcpt_batch);
    println!(
        "  append, groups of {g:<4}       {w:>10.0} ev/s with the log  {wo:>10.0} without  (writer's log share costs {:.1}%)",
        100.0 * (1.0 - w / wo)
    );
    println!(
        "  receipt signing, alone       {rcpt:>10.0} /s one core ({:.2} of ed25519 sign; on callers' threads)",
        rcpt / sign
    );
    println!(
        "  receipt signing, {:>4} a batch {rcpt_batch:>10.0} /s one core ({:.1}x alone)",
        custody::ledger::SIGN_CHUNK,
        rcpt_batch / rcpt
    );
    println!(
        "  append, groups of 1          {w1:>10.0} ev/s with the log  {wo1:>10.0} without  (writer's log share costs {:.1}%; {:.2} of the commit ceiling)",
        100.0 * (1.0 - w1 / wo1),
        w1 / fsync
    );
    println!(
        "  build {leaves} leaves        {:.1} s ({:.0} ev/s); {} nodes ({:.2} per leaf), {} checkpoints",
        build,
        leaves as f64 / build,
        counts.nodes,
        counts.nodes as f64 / leaves as f64,
        counts.checkpoints
    );
    println!(
        "  first proof after open        {:.2} ms (read from the node file)",
        first * 1e3
    );
    println!(
        "  inclusion proof at {leaves}   p50 {:>6.0} µs  p99 {:>6.0} µs  (first pass: p50 {:>6.0} µs  p99 {:>6.0} µs)",
        pct(&mut incl, 50),
        pct(&mut incl, 99),
        pct(&mut incl0, 50),
        pct(&mut incl0, 99)
    );
    println!(
        "  consistency proof            p50 {:>6.0} µs  p99 {:>6.0} µs  (first pass: p50 {:>6.0} µs  p99 {:>6.0} µs)",
        pct(&mut cons, 50),
        pct(&mut cons, 99),
        pct(&mut cons0, 50),
        pct(&mut cons0, 99)
    );
    println!(
        "  noise floor (10 µs CPU task) p50 {:>6.0} µs  p99 {:>6.0} µs  max {:>6.0} µs",
        pct(&mut floor, 50),
        pct(&mut floor, 99),
        pct(&mut floor, 100)
    );
    println!(
        "  root at an old size          p50 {:>6.0} µs  p99 {:>6.0} µs",
        pct(&mut root_lat, 50),
        pct(&mut root_lat, 99)
    );
}
