//! Crash safety under load: `custody serve` runs as a real process on sled, concurrent
//! clients register and transfer units over HTTP, and the server is killed with SIGKILL at
//! a random moment, again and again. After every kill, with the ledger re-opened from disk:
//! every event acknowledged (201 and a receipt that verifies under the log key) before the
//! kill is in the log at its receipt's index, and the whole-ledger audit passes (no gap, no
//! event half-applied across the indexes, every checkpoint reproduced).
//!
//! CI runs a bounded number of cycles; the long run is
//! `CRASH_ITERATIONS=200 cargo test --release --test crash -- --nocapture`
//! (`CRASH_SEED` repeats a run).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use custody::client::{Client, ClientError};
use custody::core::ids::{EventHash, LogIndex};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text};
use custody::ledger::system_clock;
use custody::remote::Remote;
use custody::store::{SledStore, Store};

/// xorshift64*: deterministic from the seed, good enough for kill times.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// An acknowledged event: what its receipt promised.
#[derive(Clone, Copy)]
struct Acked {
    hash: EventHash,
    index: LogIndex,
}

/// One client: registers a fresh unit, then transfers it, until the server goes away.
/// Returns its acknowledged events.
fn client(url: &str, id: u64, serials: &AtomicU64, stop: &AtomicBool) -> Vec<Acked> {
    let mut acked = Vec::new();
    let Ok(remote) = Remote::connect(url) else {
        return acked;
    };
    let c = Client::new(&remote, system_clock());
    let (maker, dist) = (key("maker"), key("dist"));
    while !stop.load(Ordering::SeqCst) {
        let n = serials.fetch_add(1, Ordering::SeqCst);
        let unit =
            UnitId::custody(&maker.party_id(), "SEQ", &format!("C{id}-{n:06}")).expect("unit id");
        match c.register(&maker, vec![unit.clone()], None, None) {
            Ok(r) => acked.push(Acked {
                hash: r.hash,
                index: r.index,
            }),
            Err(e) => {
                assert_transport(&e);
                break;
            }
        }
        match c.transfer(
            &maker,
            &dist.party_id(),
            &[unit],
            Text::parse("AWB crash").expect("text"),
            CountryCode::parse("CN").expect("country"),
        ) {
            Ok(r) => acked.push(Acked {
                hash: r.hash,
                index: r.index,
            }),
            Err(e) => {
                assert_transport(&e);
                break;
            }
        }
    }
    acked
}

/// The only acceptable failure is the server going away (or refusing service while it
/// does); a rule refusal would be a bug in the test or the ledger.
fn assert_transport(e: &ClientError) {
    let ok = matches!(e, ClientError::Transport(_))
        || matches!(e, ClientError::Remote { status: 503, .. });
    assert!(ok, "unexpected refusal under crash load: {e}");
}

#[test]
fn no_acknowledged_event_is_lost_across_sigkills() {
    let iterations: u64 = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test: {iterations} cycles, CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    {
        let w = World::new(SledStore::open(&dir).expect("open"));
        drop(w);
    }
    log_key()
        .save(&dir.join("log-key.pem"))
        .expect("log key saved");
    let serials = AtomicU64::new(0);
    let all: Mutex<Vec<Acked>> = Mutex::default();
    let started = Instant::now();
    for cycle in 0..iterations {
        // The hash index flushes every 40 entries here (65,536 by default), so that kills
        // land inside its flushes and the undo at open is exercised.
        let served =
            common::process::serve_with_env(&dir, &[], &[("CUSTODY_HASH_FLUSH_EVENTS", "40")]);
        let url = served.url.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let window = Duration::from_millis(50 + rng.next() % 450);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|id| {
                    let (url, stop, serials) = (&url, &stop, &serials);
                    s.spawn(move || client(url, id, serials, stop))
                })
                .collect();
            std::thread::sleep(window);
            // SIGKILL: no shutdown path runs, nothing is flushed on the way out.
            drop(served);
            stop.store(true, Ordering::SeqCst);
            for h in handles {
                let acked = h.join().expect("client thread");
                all.lock().expect("lock").extend(acked);
            }
        });
        // Re-open from disk and check every promise made so far.
        let store = SledStore::open(&dir).expect("the ledger re-opens after SIGKILL");
        let acked = all.lock().expect("lock").clone();
        for a in &acked {
            assert_eq!(
                store.index_of(&a.hash).expect("read"),
                Some(a.index),
                "cycle {cycle}: acknowledged event {} (index {}) is lost",
                a.hash,
                a.index
            );
            let e = store.entry(a.index).expect("read").expect("entry present");
            assert_eq!(
                e.hash, a.hash,
                "cycle {cycle}: index {} holds another event",
                a.index
            );
        }
        let report = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit runs");
        assert!(
            report.ok,
            "cycle {cycle}: the audit fails after SIGKILL: {:?}",
            report.failure
        );
        eprintln!(
            "cycle {cycle}: killed after {} ms; {} events in the log, {} acknowledged so far, audit ok",
            window.as_millis(),
            store.len().expect("len"),
            acked.len()
        );
    }
    let acked = all.lock().expect("lock").len();
    eprintln!(
        "crash test done: {iterations} SIGKILL/restart cycles, {acked} acknowledged events, 0 lost, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked as u64 >= iterations,
        "the clients got too few acknowledgements ({acked}) to test anything"
    );
}
