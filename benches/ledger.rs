//! Append throughput (durable, group commit, sled on disk) and per-unit chain read latency,
//! against raw ed25519 `verify_strict` measured in the same run.
//!
//! `cargo bench --bench ledger` (env: BENCH_UNITS, default 100000; BENCH_EVENTS, default 20000;
//! BENCH_LOT, units per register event, default 5000;
//! BENCH_RUNS, default 3 — medians are reported).

mod common;
use common::{env, key, median, parties};

use std::sync::Arc;
use std::time::Instant;

use custody::client::Client;
use custody::core::event::{Body, Transfer, UnitLink};
use custody::core::ids::LedgerName;
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::core::verify::{self, SignedEvent, VerifiedEvent};
use custody::ledger::{Clock, Ledger};
use custody::store::{SledStore, Store};
use ed25519_dalek::{Signer as _, SigningKey};
use rayon::prelude::*;

/// verify_strict per second on one thread and on all threads.
fn verify_ceiling() -> (f64, f64) {
    let k = SigningKey::from_bytes(&[9; 32]);
    let msgs: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| format!("custody bench message {i} with some length to it").into_bytes())
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| k.sign(m)).collect();
    let vk = k.verifying_key();
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        vk.verify_strict(m, s).expect("valid");
    }
    let one = msgs.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    msgs.par_iter()
        .zip(sigs.par_iter())
        .for_each(|(m, s)| vk.verify_strict(m, s).expect("valid"));
    let all = msgs.len() as f64 / t.elapsed().as_secs_f64();
    (one, all)
}

fn main() {
    let units_n = env("BENCH_UNITS", 100_000);
    let events_n = env("BENCH_EVENTS", 20_000);
    let runs = env("BENCH_RUNS", 3);
    let cores = rayon::current_num_threads();
    let mut ceil1 = vec![];
    let mut ceil_all = vec![];
    let mut ingest = vec![];
    let mut ingest_verify_incl = vec![];
    let mut p50s = vec![];
    let mut p99s = vec![];
    let mut bytes_per_event = vec![];
    for run in 0..runs {
        let (one, all) = verify_ceiling();
        ceil1.push(one);
        ceil_all.push(all);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open");
        let name = LedgerName::parse("bench.example/ledger").expect("name");
        let log = key(99);
        Ledger::init(&store, &name, &log.public).expect("init");
        let clock: Clock = Arc::new(|| Timestamp::clamped(1_800_000_000));
        let ledger = Ledger::open(store, Arc::clone(&clock), log.signing).expect("ledger");
        let c = Client::new(&ledger, clock);
        let (maker, dist) = parties(&c);
        let m = maker.party_id();
        let units: Vec<UnitId> = (0..units_n)
            .map(|i| UnitId::custody(&m, "SEQ", &format!("S{i:08}")).expect("u"))
            .collect();
        for lot in units.chunks(env("BENCH_LOT", 5000)) {
            c.register(&maker, lot.to_vec(), None, None)
                .expect("register");
        }
        // Pre-build signed single-unit transfers (signing is the client's cost, not the ledger's).
        let at = Timestamp::clamped(1_800_000_000);
        let envs: Vec<Vec<u8>> = units[..events_n.min(units_n)]
            .par_iter()
            .map(|u| {
                let head = ledger.store().unit(u).expect("read").expect("unit").head;
                let body = Body::Transfer(Transfer {
                    at,
                    from: m.clone(),
                    to: dist.party_id(),
                    units: vec![UnitLink {
                        unit: u.clone(),
                        prev: head,
                    }],
                    shipment: Text::parse("S").expect("t"),
                    destination_country: CountryCode::parse("CN").expect("c"),
                });
                let env = verify::sign(&name, body, &[&maker.signing]).expect("sign");
                serde_json::to_vec(&env).expect("json")
            })
            .collect();
        let before = ledger.store().len().expect("len");
        let size_before = dir_size(dir.path());
        let t = Instant::now();
        // The ledger's whole job for wire bytes: decode, verify (all cores), judge, commit durably.
        let verified: Vec<VerifiedEvent> = envs
            .par_iter()
            .map(|b| {
                SignedEvent::decode(b)
                    .expect("decode")
                    .verify(&name)
                    .expect("verify")
            })
            .collect();
        let t_verify = t.elapsed().as_secs_f64();
        let results = ledger.append_all(verified);
        let secs = t.elapsed().as_secs_f64();
        assert!(results.iter().all(Result::is_ok), "all transfers accepted");
        let n = (ledger.store().len().expect("len") - before) as f64;
        ingest_verify_incl.push(n / secs);
        ingest.push(n / (secs - t_verify));
        bytes_per_event.push((dir_size(dir.path()).saturating_sub(size_before)) as f64 / n);
        // Chain reads of random units (verifying every signature of the chain).
        let mut lat = vec![];
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ run as u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = &units[(x % units.len() as u64) as usize];
            let t = Instant::now();
            let ch = custody::chain::read(ledger.store(), &name, u).expect("chain");
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(!ch.events.is_empty());
        }
        lat.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        p50s.push(lat[lat.len() / 2]);
        p99s.push(lat[lat.len() * 99 / 100]);
        eprintln!(
            "run {run}: {:.0} ev/s end to end, chain p99 {:.0} µs",
            n / secs,
            lat[lat.len() * 99 / 100]
        );
    }
    let (c1, ca) = (median(ceil1), median(ceil_all));
    let (ing, ingv) = (median(ingest), median(ingest_verify_incl));
    println!("custody bench (ledger): {units_n} units, {events_n} single-unit transfers, {runs} runs, {cores} threads; medians");
    println!("  verify_strict ceiling      {c1:>10.0} /s one core   {ca:>10.0} /s all cores");
    println!("  durable ingest, end to end {ingv:>10.0} ev/s  ({:.2} of all-core verify ceiling)  [decode + verify on all cores + judge + group commit + fsync]", ingv / ca);
    println!("  durable ingest, writer     {ing:>10.0} ev/s  (events already verified: judge + group commit + fsync)");
    println!(
        "  chain read (verified)      p50 {:>7.0} µs   p99 {:>7.0} µs",
        median(p50s),
        median(p99s)
    );
    println!(
        "  disk growth per transfer   {:>10.0} bytes (sled, includes its log overhead)",
        median(bytes_per_event)
    );
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let md = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            total += if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            };
        }
    }
    total
}
