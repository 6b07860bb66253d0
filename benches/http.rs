//! Durable ingest over HTTP on loopback: `custody serve` runs as a separate process (the
//! release binary), clients in this process submit pre-signed single-unit transfers, one
//! per request with N concurrent clients, or in batches. The library's figure is measured
//! in the same run on the same kind of ledger, and the verify_strict ceiling too.
//!
//! `cargo bench --bench http` (env: BENCH_EVENTS, default 20000; BENCH_CLIENTS, default 32;
//! BENCH_BATCH, default 500; BENCH_RUNS, default 3; medians).

mod common;
use common::{env, key, median, parties, pct};

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody::client::Client;
use custody::core::event::{Body, Transfer, UnitLink};
use custody::core::ids::LedgerName;
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::core::verify::{self, SignedEvent, VerifiedEvent};
use custody::ledger::{Clock, Ledger};
use custody::store::{SledStore, Store};
use rayon::prelude::*;

/// A ledger in `dir` with `n` registered units, and the signed transfers of each, as JSON.
fn prepare(dir: &std::path::Path, n: usize) -> Vec<String> {
    let store = SledStore::open(dir).expect("open");
    let name = LedgerName::parse("bench.example/http").expect("name");
    let log = key(99);
    Ledger::init(&store, &name, &log.public).expect("init");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let clock: Clock = Arc::new(move || Timestamp::clamped(now));
    let ledger = Ledger::open(store, Arc::clone(&clock), log.signing).expect("ledger");
    let c = Client::new(&ledger, clock);
    let (maker, dist) = parties(&c);
    let m = maker.party_id();
    let units: Vec<UnitId> = (0..n)
        .map(|i| UnitId::custody(&m, "SEQ", &format!("S{i:08}")).expect("u"))
        .collect();
    for lot in units.chunks(100) {
        c.register(&maker, lot.to_vec(), None, None)
            .expect("register");
    }
    let at = Timestamp::clamped(now);
    units
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
            serde_json::to_string(&verify::sign(&name, body, &[&maker.signing]).expect("sign"))
                .expect("json")
        })
        .collect()
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // SIGTERM through `kill`, then wait: the server drains and closes the ledger.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path, port: u16) -> Serve {
    let child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--data")
        .arg(dir)
        .arg("--log-key")
        .arg(dir.join("bench-log-key.pem"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("custody serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ureq::get(&format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn main() {
    let n = env("BENCH_EVENTS", 20_000);
    let clients = env("BENCH_CLIENTS", 32);
    let batch = env("BENCH_BATCH", 500);
    let runs = env("BENCH_RUNS", 3);
    let (mut single, mut batched, mut library, mut p50s, mut p99s) =
        (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        // Library: the same events through Ledger::append_all (decode + verify on all cores).
        let dir = tempfile::tempdir().expect("dir");
        let events = prepare(dir.path(), n);
        {
            let store = SledStore::open(dir.path()).expect("open");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs() as i64;
            let clock: Clock = Arc::new(move || Timestamp::clamped(now + 60));
            let ledger = Ledger::open(store, clock, key(99).signing).expect("ledger");
            let t = Instant::now();
            let name = ledger.name().clone();
            let verified: Vec<VerifiedEvent> = events
                .par_iter()
                .map(|b| {
                    SignedEvent::decode(b.as_bytes())
                        .expect("decode")
                        .verify(&name)
                        .expect("verify")
                })
                .collect();
            let ok = ledger
                .append_all(verified)
                .into_iter()
                .filter(Result::is_ok)
                .count();
            library.push(ok as f64 / t.elapsed().as_secs_f64());
            assert_eq!(ok, n);
        }
        // HTTP, one event per request, `clients` concurrent clients.
        let dir = tempfile::tempdir().expect("dir");
        let events = prepare(dir.path(), n);
        std::fs::write(dir.path().join("bench-log-key.pem"), key_pem()).expect("key file");
        let port = free_port();
        let server = serve(dir.path(), port);
        let url = format!("http://127.0.0.1:{port}/v1/events");
        let t = Instant::now();
        let lat: Vec<f64> = std::thread::scope(|sc| {
            let chunks: Vec<&[String]> = events.chunks(n.div_ceil(clients)).collect();
            let hs: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let url = url.clone();
                    sc.spawn(move || {
                        let agent = ureq::AgentBuilder::new().build();
                        chunk
                            .iter()
                            .map(|e| {
                                let t = Instant::now();
                                let r = agent
                                    .post(&url)
                                    .set("Content-Type", "application/json")
                                    .send_string(e);
                                assert!(matches!(&r, Ok(x) if x.status() == 201), "{r:?}");
                                t.elapsed().as_secs_f64() * 1e3
                            })
                            .collect::<Vec<f64>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("client"))
                .collect()
        });
        single.push(n as f64 / t.elapsed().as_secs_f64());
        let mut lat = lat;
        p50s.push(pct(&mut lat, 50));
        p99s.push(pct(&mut lat, 99));
        drop(server);
        // HTTP, batches, 4 concurrent clients.
        let dir = tempfile::tempdir().expect("dir");
        let events = prepare(dir.path(), n);
        std::fs::write(dir.path().join("bench-log-key.pem"), key_pem()).expect("key file");
        let port = free_port();
        let server = serve(dir.path(), port);
        let url = format!("http://127.0.0.1:{port}/v1/events:batch");
        let bodies: Vec<String> = events
            .chunks(batch)
            .map(|c| format!("[{}]", c.join(",")))
            .collect();
        let t = Instant::now();
        std::thread::scope(|sc| {
            for part in bodies.chunks(bodies.len().div_ceil(4)) {
                let url = url.clone();
                sc.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    for b in part {
                        let r = agent
                            .post(&url)
                            .set("Content-Type", "application/json")
                            .send_string(b)
                            .expect("batch");
                        assert_eq!(r.status(), 200);
                    }
                });
            }
        });
        batched.push(n as f64 / t.elapsed().as_secs_f64());
        drop(server);
        eprintln!(
            "run {run}: library {:.0}/s, http single {:.0}/s, http batch {:.0}/s",
            library[run], single[run], batched[run]
        );
    }
    let (lib, one, bat) = (median(library), median(single), median(batched));
    println!("custody bench (http): {n} single-unit transfers, {runs} runs; medians; server = custody serve (release) as a separate process");
    println!("  library (decode + verify + append_all)  {lib:>8.0} ev/s");
    println!("  HTTP, 1 event/request, {clients} clients  {one:>8.0} ev/s  ({:.2} of library)  p50 {:.2} ms  p99 {:.2} ms", one / lib, median(p50s), median(p99s));
    println!(
        "  HTTP, batches of {batch}, 4 clients     {bat:>8.0} ev/s  ({:.2} of library)",
        bat / lib
    );
}

/// The bench log key (seed 99) as PKCS#8 PEM, for the server process.
fn key_pem() -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    key(99)
        .signing
        .to_pkcs8_pem(Default::default())
        .expect("pem")
        .to_string()
}
