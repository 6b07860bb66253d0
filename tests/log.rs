//! The global log through the ledger: checkpoints read and verified by an independent C2SP
//! implementation, signed receipts that name their first covering checkpoint, proofs
//! from the store, the checkpoint schedule, and refusal to sign beside a rewritten log.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use custody::core::checkpoint::{Checkpoint, VerifierKey};
use custody::core::ids::LogIndex;
use custody::core::merkle::{entry_leaf_hash, leaf_hash};
use custody::ledger::{system_clock, Ledger, LogPolicy, OpenError};
use custody::log;
use custody::store::{Group, MemoryStore, SledStore, Store, StoreError};

fn vkey() -> VerifierKey {
    VerifierKey {
        name: ledger_name(),
        key: log_key().public,
    }
}

/// A few more events after the fixture's six.
fn activity<S: Store>(w: &World<S>) {
    let c = w.client();
    let u = w.register(3);
    let t = c
        .transfer(&w.maker, &w.dist.party_id(), &u, text("S1"), cn())
        .expect("transfer");
    c.accept(&w.dist, &t.hash, &[], None).expect("accept");
    w.register(2);
}

#[test]
fn checkpoints_are_read_and_verified_by_an_independent_c2sp_implementation() {
    let w = World::new(MemoryStore::new());
    activity(&w);
    let cp = w.ledger.checkpoint().expect("checkpoint");
    let note = cp.to_note();

    let vk = vkey().to_string();
    assert_eq!(vk, w.ledger.verifier_key().to_string());
    let verifier = signed_note::StandardVerifier::new(&vk).expect("they parse our vkey");
    let parsed = signed_note::Note::from_bytes(note.as_bytes()).expect("they parse our note");
    let (good, unknown) = parsed
        .verify(&signed_note::VerifierList::new(vec![Box::new(verifier)]))
        .expect("they verify our signature");
    assert_eq!((good.len(), unknown.len()), (1, 0));
    let theirs = tlog_tiles::Checkpoint::from_bytes(parsed.text()).expect("they parse the body");
    assert_eq!(theirs.origin(), ledger_name().as_str());
    assert_eq!(theirs.size(), w.ledger.store().len().expect("len"));
    assert_eq!(&theirs.hash().0, cp.checkpoint.root.as_bytes());

    // One changed byte in the text and their verifier refuses it.
    let forged = note.replacen(&format!("\n{}\n", theirs.size()), "\n1\n", 1);
    let forged = signed_note::Note::from_bytes(forged.as_bytes()).expect("well-formed");
    let verifier = signed_note::StandardVerifier::new(&vk).expect("vkey");
    assert!(forged
        .verify(&signed_note::VerifierList::new(vec![Box::new(verifier)]))
        .is_err());
}

#[test]
fn receipts_are_signed_and_name_the_checkpoint_that_first_covers_them() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let u = w.units(2);
    let r = c.register(&w.maker, u, None, None).expect("register");
    r.signed
        .verify(&ledger_name(), &log_key().public)
        .expect("receipt verifies under the log key");
    let cref = r.signed.body.checkpoint.expect("policy 0: covered at once");
    assert_eq!(cref.size, r.index.get() + 1);
    let store = w.ledger.store();
    let cp = store
        .checkpoint(cref.size)
        .expect("read")
        .expect("the named checkpoint is stored");
    assert_eq!(cp.checkpoint.root, cref.root_hash);
    cp.verify(&vkey()).expect("checkpoint signature");

    // The inclusion proof binds the stored entry to that checkpoint.
    let e = store.entry(r.index).expect("read").expect("entry");
    let p = log::prove_inclusion(store, r.index, cref.size).expect("proof");
    assert_eq!(p.leaf_hash, entry_leaf_hash(e.integrated_at, &e.event));
    p.verify_against(&cp.checkpoint).expect("inclusion");
}

#[test]
fn an_identical_resubmission_gets_the_identical_signed_receipt() {
    let w = World::new(MemoryStore::new());
    let body = {
        let store = w.ledger.store();
        let e = store
            .entry(LogIndex::new(store.len().expect("len") - 1))
            .expect("read")
            .expect("last entry");
        custody::core::verify::SignedEvent::decode(&e.event).expect("decode")
    };
    let ev = body.verify(&ledger_name()).expect("verify");
    let first = log::first_covering(w.ledger.store(), LogIndex::new(5))
        .expect("read")
        .expect("covered");
    let r = w.ledger.append(ev).expect("duplicate is not an error");
    assert!(r.duplicate);
    assert_eq!(r.index, LogIndex::new(5));
    assert_eq!(
        r.signed.body.checkpoint.map(|c| c.size),
        Some(first.checkpoint.size)
    );
    r.signed
        .verify(&ledger_name(), &log_key().public)
        .expect("verifies");
}

#[test]
fn every_checkpoint_extends_the_previous_one() {
    let w = World::new(MemoryStore::new());
    activity(&w);
    let store = w.ledger.store();
    let cps = store.checkpoints(0, 1000).expect("checkpoints");
    assert!(cps.len() >= 10, "one per commit group");
    for pair in cps.windows(2) {
        let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
        assert!(a.size < b.size);
        log::prove_consistency(store, a.size, b.size)
            .expect("proof")
            .verify_between(a, b)
            .expect("consistent");
    }
    let (first, last) = (&cps[0].checkpoint, &cps[cps.len() - 1].checkpoint);
    log::prove_consistency(store, first.size, last.size)
        .expect("proof")
        .verify_between(first, last)
        .expect("consistent");
    // And every event is provably in the latest tree.
    for i in 0..last.size {
        let e = store.entry(LogIndex::new(i)).expect("read").expect("entry");
        let p = log::prove_inclusion(store, LogIndex::new(i), last.size).expect("proof");
        assert_eq!(p.leaf_hash, entry_leaf_hash(e.integrated_at, &e.event));
        p.verify_against(last).expect("inclusion");
    }
    assert!(matches!(
        log::prove_inclusion(store, LogIndex::new(last.size), last.size),
        Err(log::LogError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        log::prove_consistency(store, last.size, last.size + 1),
        Err(log::LogError::IndexOutOfRange { .. })
    ));
}

fn open_with(store: Arc<MemoryStore>, interval: Duration) -> Ledger<Arc<MemoryStore>> {
    Ledger::open_with(
        store,
        system_clock(),
        log_key().signing,
        LogPolicy {
            checkpoint_interval: interval,
        },
    )
    .expect("open")
}

#[test]
fn with_an_interval_receipts_promise_a_checkpoint_and_the_timer_keeps_the_promise() {
    let store = Arc::new(MemoryStore::new());
    drop(World::new(Arc::clone(&store)));
    let before = store
        .latest_checkpoint()
        .expect("read")
        .expect("some")
        .checkpoint
        .size;
    let ledger = open_with(Arc::clone(&store), Duration::from_millis(300));
    let c = custody::client::Client::new(&ledger, system_clock());
    let r = c
        .register(
            &key("maker"),
            vec![
                custody::core::unit::UnitId::custody(&key("maker").party_id(), "P", "1")
                    .expect("unit"),
            ],
            None,
            None,
        )
        .expect("register");
    assert_eq!(r.signed.body.checkpoint, None);
    let by = r.signed.body.checkpoint_by.expect("a promise");
    assert!(by > r.integrated_at);
    r.signed
        .verify(&ledger_name(), &log_key().public)
        .expect("signed");
    assert_eq!(
        store
            .latest_checkpoint()
            .expect("read")
            .expect("some")
            .checkpoint
            .size,
        before,
        "no checkpoint yet"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store
        .latest_checkpoint()
        .expect("read")
        .expect("some")
        .checkpoint
        .size
        == before
    {
        assert!(
            Instant::now() < deadline,
            "the promised checkpoint never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cp = store.latest_checkpoint().expect("read").expect("some");
    assert!(cp.checkpoint.size > r.index.get());
}

#[test]
fn on_demand_and_at_shutdown_checkpoints_cover_everything() {
    let store = Arc::new(MemoryStore::new());
    drop(World::new(Arc::clone(&store)));
    let hour = Duration::from_secs(3600);
    let maker = key("maker");
    let unit =
        |s: &str| custody::core::unit::UnitId::custody(&maker.party_id(), "P", s).expect("unit");
    {
        let ledger = open_with(Arc::clone(&store), hour);
        let c = custody::client::Client::new(&ledger, system_clock());
        let r = c
            .register(&maker, vec![unit("1")], None, None)
            .expect("register");
        assert!(r.signed.body.checkpoint.is_none());
        let cp = ledger.checkpoint().expect("on demand");
        assert_eq!(cp.checkpoint.size, r.index.get() + 1);
        // Nothing new: the same checkpoint again, not a second signature.
        assert_eq!(ledger.checkpoint().expect("again"), cp);
        c.register(&maker, vec![unit("2")], None, None)
            .expect("register");
    }
    let len = store.len().expect("len");
    let cp = store.latest_checkpoint().expect("read").expect("some");
    assert_eq!(
        cp.checkpoint.size, len,
        "dropping the ledger checkpoints the rest"
    );
}

#[test]
fn the_writer_refuses_to_sign_beside_a_rewritten_log() {
    let store = Arc::new(MemoryStore::new());
    drop(World::new(Arc::clone(&store)));
    let len = store.len().expect("len");
    // Someone with the log key's store (not the writer) records a checkpoint over a root
    // the stored tree does not have.
    let bogus = Checkpoint {
        origin: ledger_name(),
        size: len,
        root: leaf_hash(b"another history"),
    }
    .sign(&log_key().signing);
    store
        .commit(&Group {
            checkpoint: Some(bogus),
            ..Group::default()
        })
        .expect("raw write");
    match Ledger::open(Arc::clone(&store), system_clock(), log_key().signing) {
        Err(OpenError::Store(StoreError::Corrupt { detail, .. })) => {
            assert!(detail.contains("rewritten"), "{detail}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened beside a contradicting checkpoint"),
    }
}

#[test]
fn the_ledger_opens_only_with_its_own_log_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(World::new(SledStore::open(dir.path()).expect("open")));
    let store = SledStore::open(dir.path()).expect("reopen");
    match Ledger::open(store, system_clock(), key("not the log key").signing) {
        Err(OpenError::WrongLogKey { .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened with a foreign log key"),
    }
}

/// The same history on two sled ledgers, except that event 6 (a registration) says a
/// different lot number in the second: a self-consistent rewrite.
fn history(dir: &std::path::Path, lot: &str) -> u64 {
    let w = World::new(SledStore::open(dir).expect("open"));
    let u = w.units(2);
    w.client()
        .register(&w.maker, u, Some(text(lot)), None)
        .expect("register");
    activity(&w);
    w.ledger.store().len().expect("len")
}

#[test]
fn verify_names_the_first_event_that_no_longer_matches_a_signed_checkpoint() {
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let n = history(a.path(), "L-1");
    assert_eq!(history(b.path(), "L-1-REWRITTEN"), n);
    let rewritten = SledStore::open(b.path()).expect("open b");
    let alone = custody::audit::verify_ledger(&rewritten, |_, _| {}).expect("audit");
    assert!(
        alone.ok,
        "the rewrite is self-consistent: {:?}",
        alone.failure
    );

    // The operator kept the checkpoints it had signed (and that witnesses or clients
    // may hold) for the original history, next to the rewritten log.
    let original = SledStore::open(a.path()).expect("open a");
    for cp in original.checkpoints(0, 10_000).expect("checkpoints") {
        rewritten
            .commit(&Group {
                checkpoint: Some(cp),
                ..Group::default()
            })
            .expect("write");
    }
    drop((original, rewritten));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--data")
        .arg(b.path())
        .args(["--format", "json", "verify"])
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(3), "verify must fail");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["failure"]["check"], "checkpoint", "{report:#}");
    assert_eq!(report["failure"]["index"], 6, "{report:#}");
    assert_eq!(report["tree_size_verified"], 6, "{report:#}");
    assert_eq!(report["events_checked"], 6, "{report:#}");
}

#[test]
fn verify_finds_checkpoints_beyond_a_truncated_log_and_forged_checkpoint_signatures() {
    let dir = tempfile::tempdir().expect("dir");
    let n = history(dir.path(), "L");
    let store = SledStore::open(dir.path()).expect("open");
    // A checkpoint by some other key, at a size the log really has.
    let root = log::root_at(&store, n).expect("root");
    let forged = Checkpoint {
        origin: ledger_name(),
        size: n,
        root,
    }
    .sign(&key("impostor").signing);
    store
        .commit(&Group {
            checkpoint: Some(forged),
            ..Group::default()
        })
        .expect("write");
    let rep = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit");
    let f = rep.failure.expect("forged signature found");
    assert_eq!(f.check, "checkpoint");
    assert!(f.detail.contains(&format!("size {n}")), "{}", f.detail);

    // A genuine checkpoint claiming more events than the log now holds.
    let ahead = Checkpoint {
        origin: ledger_name(),
        size: n + 3,
        root,
    }
    .sign(&log_key().signing);
    store
        .commit(&Group {
            checkpoint: Some(
                Checkpoint {
                    origin: ledger_name(),
                    size: n,
                    root,
                }
                .sign(&log_key().signing),
            ),
            ..Group::default()
        })
        .expect("restore");
    store
        .commit(&Group {
            checkpoint: Some(ahead),
            ..Group::default()
        })
        .expect("write");
    let rep = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit");
    let f = rep.failure.expect("truncation found");
    assert_eq!((f.check, f.index), ("checkpoint", Some(n)));
    assert!(f.detail.contains("removed"), "{}", f.detail);
}

/// All proofs of a store, as comparable values.
fn all_proofs(store: &SledStore) -> Vec<String> {
    let n = store.len().expect("len");
    let mut out = vec![];
    for size in 1..=n {
        for i in 0..size {
            out.push(format!(
                "{:?}",
                log::prove_inclusion(store, LogIndex::new(i), size).expect("inclusion")
            ));
        }
        out.push(format!(
            "{:?}",
            log::prove_consistency(store, 1, size).expect("consistency")
        ));
    }
    out
}

#[test]
fn proofs_survive_reopen_an_unacknowledged_tail_and_lost_indexes() {
    let dir = tempfile::tempdir().expect("dir");
    let n = history(dir.path(), "L");
    let expected = {
        let s = SledStore::open(dir.path()).expect("open");
        all_proofs(&s)
    };
    assert_eq!(
        all_proofs(&SledStore::open(dir.path()).expect("open")),
        expected
    );
    // A commit that wrote the log files and died before sled's flush: bytes past sled's
    // length. The indexes are cut back at open, the records ignored; the log reads as
    // before.
    let mut sizes = vec![];
    for name in ["log-entries", "log-ends", "log-nodes"] {
        let p = dir.path().join(name);
        let size = std::fs::metadata(&p).expect("file").len();
        sizes.push(size);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        std::io::Write::write_all(&mut f, &[0xab; 100]).expect("write");
    }
    {
        let s = SledStore::open(dir.path()).expect("open");
        assert_eq!(s.len().expect("len"), n);
        assert_eq!(all_proofs(&s), expected);
        let rep = custody::audit::verify_ledger(&s, |_, _| {}).expect("audit");
        assert!(rep.ok, "{:?}", rep.failure);
    }
    for (name, size) in ["log-entries", "log-ends", "log-nodes"].iter().zip(&sizes) {
        let now = std::fs::metadata(dir.path().join(name))
            .expect("file")
            .len();
        if *name == "log-entries" {
            // Never cut: the tail is ignored, and overwritten by the next commit.
            assert_eq!(now, size + 100, "{name} keeps its tail");
            continue;
        }
        assert_eq!(now, *size, "{name} is cut back to what sled committed");
    }
    // The indexes (`log-ends`, `log-nodes`) past their last durable point lost or
    // scrambled, as a power loss can leave them: rebuilt from `log-entries` at open.
    std::fs::write(dir.path().join("log-ends"), b"").expect("empty");
    let nodes = dir.path().join("log-nodes");
    let scrambled: Vec<u8> = std::fs::read(&nodes)
        .expect("read")
        .iter()
        .map(|b| b ^ 0x5a)
        .collect();
    std::fs::write(&nodes, scrambled).expect("write");
    {
        let s = SledStore::open(dir.path()).expect("open");
        assert_eq!(all_proofs(&s), expected);
        let rep = custody::audit::verify_ledger(&s, |_, _| {}).expect("audit");
        assert!(rep.ok, "{:?}", rep.failure);
    }
    for (name, size) in ["log-ends", "log-nodes"].iter().zip(&sizes[1..]) {
        let now = std::fs::metadata(dir.path().join(name))
            .expect("file")
            .len();
        assert_eq!(now, *size, "{name} is rebuilt whole");
    }
    // The hash index lost: rebuilt from `log-entries` at open.
    std::fs::remove_file(dir.path().join("log-hashes")).expect("remove");
    {
        let s = SledStore::open(dir.path()).expect("open");
        let first = s.entry(LogIndex::new(0)).expect("read").expect("entry 0");
        assert_eq!(
            s.index_of(&first.hash).expect("index_of"),
            Some(LogIndex::new(0))
        );
        let rep = custody::audit::verify_ledger(&s, |_, _| {}).expect("audit");
        assert!(rep.ok, "{:?}", rep.failure);
    }
    assert!(dir.path().join("log-hashes").exists(), "rebuilt");
    // `log-entries` shorter than sled's length: synced data was lost, and the store says
    // so instead of opening.
    let p = dir.path().join("log-entries");
    let whole = std::fs::read(&p).expect("read");
    let short = usize::try_from(sizes[0] - 1).expect("size");
    std::fs::write(&p, &whole[..short]).expect("truncate");
    match SledStore::open(dir.path()) {
        Err(StoreError::Corrupt { location, detail }) => {
            assert!(location.ends_with("log-entries"), "{location}");
            assert!(detail.contains("lost"), "{detail}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened with log-entries cut short"),
    }
    std::fs::write(&p, &whole).expect("restore");
    assert_eq!(
        all_proofs(&SledStore::open(dir.path()).expect("open")),
        expected
    );
}

#[test]
fn an_empty_ledger_has_no_checkpoint_to_issue() {
    let store = MemoryStore::new();
    Ledger::init(&store, &ledger_name(), &log_key().public).expect("init");
    let ledger = Ledger::open(store, system_clock(), log_key().signing).expect("open");
    assert!(matches!(
        ledger.checkpoint(),
        Err(custody::ledger::AppendError::Empty)
    ));
}
