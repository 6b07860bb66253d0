//! Evidence bundle export and offline verification for a 100-event chain.
//!
//! `cargo bench --bench bundle` (env: BENCH_HOPS, handoffs after the first shipment, default
//! 48, i.e. register, lot transfer and accept, 2×48 handoffs and a pending transfer: 100
//! chain events; BENCH_LOT, units in the register/first shipment,
//! default 1000; BENCH_RUNS, default 20 — medians). The unit is registered in a lot, shipped
//! with the lot, then passed back and forth between two distributors, one unit per event.
//! Physical limit in the same run: `verify_strict` of as many signatures on one core.

mod common;
use common::{env, key, median, parties, profile};

use std::sync::Arc;
use std::time::Instant;

use custody::client::Client;
use custody::core::bundle::verify;
use custody::core::checkpoint::VerifierKey;
use custody::core::event::Role;
use custody::core::ids::{Handle, LedgerName};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::ledger::{Clock, Ledger};
use custody::store::SledStore;
use ed25519_dalek::{Signer as _, SigningKey};

fn main() {
    let hops = env("BENCH_HOPS", 48);
    let lot = env("BENCH_LOT", 1000);
    let runs = env("BENCH_RUNS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let name = LedgerName::parse("bench.example/bundle").expect("name");
    let log = key(99);
    custody::ledger::Ledger::init(&store, &name, &log.public).expect("init");
    let t0 = 1_800_000_000;
    let now = Arc::new(std::sync::atomic::AtomicI64::new(t0));
    let n2 = Arc::clone(&now);
    let clock: Clock =
        Arc::new(move || Timestamp::clamped(n2.load(std::sync::atomic::Ordering::SeqCst)));
    let ledger = Ledger::open(store, Arc::clone(&clock), log.signing).expect("ledger");
    let c = Client::new(&ledger, clock);
    let (maker, dist) = parties(&c);
    let sub = key(4);
    c.enroll(
        &sub,
        &dist,
        Handle::parse("sub").expect("h"),
        profile("Sub", vec![Role::Distributor]),
    )
    .expect("enroll");
    let m = maker.party_id();
    let units: Vec<UnitId> = (0..lot)
        .map(|i| UnitId::custody(&m, "SEQ", &format!("S{i:06}")).expect("u"))
        .collect();
    let cn = CountryCode::parse("CN").expect("c");
    let tick = || {
        now.fetch_add(60, std::sync::atomic::Ordering::SeqCst);
    };
    c.register(&maker, units.clone(), None, None)
        .expect("register");
    tick();
    let t = c
        .transfer(
            &maker,
            &dist.party_id(),
            &units,
            Text::parse("S").expect("t"),
            cn,
        )
        .expect("transfer");
    tick();
    c.accept(&dist, &t.hash, &[], None).expect("accept");
    let u = std::slice::from_ref(&units[0]);
    let (mut from, mut to) = (&dist, &sub);
    for _ in 0..hops {
        tick();
        let t = c
            .transfer(from, &to.party_id(), u, Text::parse("S").expect("t"), cn)
            .expect("transfer");
        tick();
        c.accept(to, &t.hash, &[], None).expect("accept");
        std::mem::swap(&mut from, &mut to);
    }
    // A last transfer, left pending: 3 + 2×48 + 1 = 100 chain events by default.
    tick();
    c.transfer(from, &to.party_id(), u, Text::parse("S").expect("t"), cn)
        .expect("transfer");
    ledger.checkpoint().expect("checkpoint");
    let vkey = VerifierKey {
        name: name.clone(),
        key: log.public,
    };
    let mut export_t = vec![];
    let mut verify_t = vec![];
    let mut ceiling_t = vec![];
    let mut size = 0;
    let mut chain = 0;
    let mut entries = 0;
    let mut sigs = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let b = custody::bundle::export(ledger.store(), &units[0]).expect("export");
        export_t.push(t.elapsed().as_secs_f64() * 1e3);
        let json = serde_json::to_vec(&b).expect("json");
        size = json.len();
        let t = Instant::now();
        let parsed: custody::core::bundle::Bundle = serde_json::from_slice(&json).expect("parse");
        let v = verify(&parsed, &vkey).expect("verifies");
        verify_t.push(t.elapsed().as_secs_f64() * 1e3);
        chain = v.chain.len();
        entries = v.entries;
        sigs = parsed
            .entries
            .iter()
            .map(|e| e.event.signatures.len())
            .sum::<usize>();
        // The same number of verify_strict calls over short messages, one core.
        let k = SigningKey::from_bytes(&[7; 32]);
        let msg = b"custody bench bundle signature";
        let sig = k.sign(msg);
        let vk = k.verifying_key();
        let t = Instant::now();
        for _ in 0..sigs {
            vk.verify_strict(msg, &sig).expect("valid");
        }
        ceiling_t.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (e, v, c) = (median(export_t), median(verify_t), median(ceiling_t));
    println!("custody bench (bundle): chain of {chain} events (unit registered and first shipped in a lot of {lot}), {entries} entries, {sigs} signatures, {size} bytes; {runs} runs, medians");
    println!("  export from sled                 {e:>8.2} ms");
    println!("  parse + verify offline           {v:>8.2} ms  (target < 50 ms)");
    println!("  verify_strict × {sigs} (one core)   {c:>8.2} ms  -> signatures are {:.0}% of verification", 100.0 * c / v);
}
