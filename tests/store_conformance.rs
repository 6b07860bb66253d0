//! The storage conformance suite: the same scenario on the in-memory store and on sled
//! (on disk) must give identical answers to every read, and sled must give them again
//! after the process reopens it.

mod common;

use std::sync::Arc;

use common::*;
use custody::core::ids::{EventHash, LogIndex};
use custody::core::merkle::NodeId;
use custody::core::unit::UnitId;
use custody::store::{
    Committed, Group, LogEntry, MemoryStore, PartyUnits, SledStore, Store, StoreError,
};

/// Runs the scenario and returns the units it touched.
fn scenario<S: Store>(w: &World<S>) -> Vec<UnitId> {
    let c = w.client();
    let u = w.register(5);
    let t = c
        .transfer(&w.maker, &w.dist.party_id(), &u[..4], text("S1"), cn())
        .expect("t1");
    c.accept(&w.dist, &t.hash, &u[..3], None).expect("accept 3");
    w.tick(3 * 86_400);
    c.reject(&w.dist, &t.hash, &u[3..4], text("no"))
        .expect("reject 1");
    let t2 = c
        .transfer(&w.dist, &w.sub.party_id(), &u[..2], text("S2"), cn())
        .expect("t2");
    c.accept(&w.sub, &t2.hash, &[], None).expect("accept");
    c.observe(&w.svc, &w.user.party_id(), &u[..1], None, None)
        .expect("observe");
    c.retire(
        &w.maker,
        &u[4..5],
        custody::core::event::RetireReason::Lost,
        None,
    )
    .expect("retire");
    c.update(
        &w.sub,
        h("sub-renamed"),
        profile("Sub Ltd", "CN", &[custody::core::event::Role::Distributor]),
        None,
    )
    .expect("update");
    u
}

/// Everything readable, as comparable text.
fn snapshot<S: Store>(s: &S, units: &[UnitId]) -> String {
    let mut out = format!("{:?}\n{:?}\n{:?}\n", s.meta(), s.len(), s.counts());
    let n = s.len().expect("len");
    out += &format!(
        "{:?}\n",
        s.entries(LogIndex::new(0), LogIndex::new(n))
            .expect("entries")
    );
    out += &format!(
        "{:?}\n",
        s.entries(LogIndex::new(3), LogIndex::new(5))
            .expect("range")
    );
    out += &format!(
        "{:?}\n",
        s.entries(LogIndex::new(n), LogIndex::new(n + 5))
            .expect("past end")
    );
    for i in 0..n {
        let e = s.entry(LogIndex::new(i)).expect("entry").expect("present");
        out += &format!("{:?}\n", s.index_of(&e.hash).expect("index_of"));
    }
    out += &format!("{:?}\n", s.index_of(&EventHash::from_bytes([1; 32])));
    out += &format!("{:?}\n{:?}\n", s.operator(), s.parties());
    out += &format!("{:?}\n", s.stays());
    for p in s.parties().expect("parties") {
        out += &format!(
            "{:?} {:?}\n",
            s.party_by_handle(&p.handle),
            s.holdings(&p.id, None, 100)
        );
        for k in &p.keys {
            out += &format!("{:?}\n", s.key_owner(&k.key));
        }
        let first = s.holdings(&p.id, None, 1).expect("holdings");
        out += &format!("{:?}\n", s.holdings(&p.id, first.first(), 100));
        let involved = s.involved(&p.id, None, 100).expect("involved");
        let first = s.involved(&p.id, None, 1).expect("involved");
        out += &format!(
            "{involved:?}\n{:?}\n",
            s.involved(&p.id, first.first(), 100)
        );
        // A bounded read is exactly the units after its lower bound and up to its upper one.
        for family in [PartyUnits::Holdings, PartyUnits::Involved] {
            let all = s
                .party_units(family, &p.id, (None, None), 100)
                .expect("party units");
            let edges: Vec<Option<&UnitId>> =
                std::iter::once(None).chain(all.iter().map(Some)).collect();
            for after in &edges {
                for until in &edges {
                    let got = s
                        .party_units(family, &p.id, (*after, *until), 100)
                        .expect("bounded party units");
                    let want: Vec<UnitId> = all
                        .iter()
                        .filter(|u| after.is_none_or(|a| *u > a) && until.is_none_or(|b| *u <= b))
                        .cloned()
                        .collect();
                    assert_eq!(
                        got, want,
                        "{family:?} of {} after {after:?} until {until:?}",
                        p.id
                    );
                    out += &format!("{got:?}\n");
                }
            }
        }
    }
    for u in units {
        out += &format!("{:?} {:?}\n", s.unit(u), s.chain(u));
    }
    let chains = s.unit_chains(None, 100).expect("chains");
    assert!(
        chains.windows(2).all(|w| w[0].0.id < w[1].0.id),
        "unit-id order"
    );
    for (r, links) in &chains {
        assert_eq!(
            &s.chain(&r.id).expect("chain"),
            links,
            "a scan agrees with chain()"
        );
        assert_eq!(
            s.unit(&r.id).expect("unit").as_ref(),
            Some(r),
            "and with unit()"
        );
    }
    out += &format!(
        "{chains:?}\n{:?}\n",
        s.unit_chains(chains.get(1).map(|c| &c.0.id), 2)
    );
    out += &format!("{:?} {:?}\n", s.census(), s.unit_count());
    // The parties with pairs: exactly those whose reads return units, once each, in order.
    let parties = s.parties().expect("parties");
    for family in [PartyUnits::Holdings, PartyUnits::Involved] {
        let want: Vec<_> = parties
            .iter()
            .filter(|p| {
                !s.party_units(family, &p.id, (None, None), 1)
                    .expect("party units")
                    .is_empty()
            })
            .map(|p| p.id.clone())
            .collect();
        let got = s.pair_parties(family).expect("pair parties");
        assert!(
            got.len() > 1,
            "{family:?}: the fixture has pairs under several parties"
        );
        assert_eq!(got, want, "{family:?}");
        out += &format!("{got:?}\n");
    }
    // The hash index: every log hash maps to its index, and the store's own check agrees
    // with the log's hashes and with nothing else.
    let hashes: Vec<EventHash> = s
        .entries(LogIndex::new(0), LogIndex::new(n))
        .expect("entries")
        .into_iter()
        .map(|e| e.hash)
        .collect();
    assert_eq!(hashes.len() as u64, n, "one entry per event");
    for (i, h) in hashes.iter().enumerate() {
        assert_eq!(
            s.index_of(h).expect("index_of"),
            Some(LogIndex::new(i as u64))
        );
    }
    assert_eq!(s.check_hash_index(&hashes).expect("check"), None);
    let mut swapped = hashes.clone();
    swapped.swap(1, 2);
    let f = s
        .check_hash_index(&swapped)
        .expect("check")
        .expect("two hashes swapped are found");
    assert!(f.detail.contains("log index"), "{f:?}");
    let f = s
        .check_hash_index(&hashes[..hashes.len() - 1])
        .expect("check")
        .expect("a log one shorter is found");
    assert!(f.detail.contains("beyond the log"), "{f:?}");
    out += &format!("{:?}\n", s.index_of(&EventHash::from_bytes([7; 32])));
    let all = s.units(None, 100).expect("units");
    out += &format!("{:?}\n{:?}\n", all, s.units(all.get(1).map(|u| &u.id), 2));
    let ids: Vec<NodeId> = (0..5u8)
        .flat_map(|level| (0..=n).map(move |index| NodeId { level, index }))
        .collect();
    out += &format!("{:?}\n", s.nodes(&ids));
    assert_eq!(
        s.nodes(&ids).expect("nodes"),
        s.stored_nodes(&ids).expect("stored nodes"),
        "the proof cache and durable storage agree"
    );
    let cps = s.checkpoints(0, 1000).expect("checkpoints");
    assert!(!cps.is_empty(), "every commit group carries a checkpoint");
    out += &format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n",
        cps,
        s.checkpoints(3, 2),
        s.latest_checkpoint(),
        s.checkpoint(n),
        s.checkpoint(n + 1)
    );
    out
}

#[test]
fn memory_and_sled_agree_and_sled_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mem = World::new(MemoryStore::new());
    let units = scenario(&mem);
    let expected = snapshot(mem.ledger.store(), &units);

    let sled_units;
    let got = {
        let w = World::new(SledStore::open(dir.path()).expect("open"));
        sled_units = scenario(&w);
        snapshot(w.ledger.store(), &sled_units)
    };
    assert_eq!(units, sled_units);
    assert_eq!(got, expected, "sled and memory stores disagree");
    let reopened = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(
        snapshot(&reopened, &units),
        expected,
        "sled lost or changed data across reopen"
    );
    let rep = custody::audit::verify_ledger(&reopened, |_, _| {}).expect("audit");
    assert!(rep.ok, "{:?}", rep.failure);
}

fn out_of_order<S: Store>(s: S) {
    let w = World::new(s);
    let n = w.ledger.store().len().expect("len");
    let bogus = Committed {
        entry: LogEntry {
            index: LogIndex::new(n + 1),
            integrated_at: w.now(),
            hash: EventHash::from_bytes([3; 32]),
            event: vec![],
        },
        delta: Default::default(),
    };
    assert!(matches!(
        w.ledger.store().commit(&Group {
            events: vec![bogus],
            ..Group::default()
        }),
        Err(StoreError::OutOfOrder { .. })
    ));
    assert_eq!(w.ledger.store().len().expect("len"), n);
}

#[test]
fn commits_must_extend_the_log_in_order() {
    out_of_order(Arc::new(MemoryStore::new()));
    let dir = tempfile::tempdir().expect("tempdir");
    out_of_order(Arc::new(SledStore::open(dir.path()).expect("open")));
}

/// A group must carry exactly the Merkle nodes its events complete: the nodes are stored at
/// positions that follow from the leaf index, so a gap or a stray node would misplace
/// every later one.
fn nodes_must_match<S: Store>(s: S) {
    let w = World::new(s);
    let store = w.ledger.store();
    let n = store.len().expect("len");
    let before = store.counts().expect("counts");
    let event = Committed {
        entry: LogEntry {
            index: LogIndex::new(n),
            integrated_at: w.now(),
            hash: EventHash::from_bytes([4; 32]),
            event: b"{}".to_vec(),
        },
        delta: Default::default(),
    };
    let leaf = |level, index| {
        (
            NodeId { level, index },
            custody::core::merkle::leaf_hash(b"x"),
        )
    };
    for (what, nodes) in [
        ("no nodes", vec![]),
        ("another leaf's node", vec![leaf(0, n + 1)]),
        ("a node too many", vec![leaf(0, n), leaf(0, n + 1)]),
    ] {
        match store.commit(&Group {
            events: vec![event.clone()],
            nodes,
            ..Group::default()
        }) {
            Err(StoreError::BadGroup(d)) => assert!(d.contains("Merkle node"), "{what}: {d}"),
            other => panic!("{what}: expected BadGroup, got {other:?}"),
        }
        assert_eq!(store.len().expect("len"), n, "{what}");
        assert_eq!(store.counts().expect("counts"), before, "{what}");
    }
}

#[test]
fn a_group_must_carry_exactly_the_nodes_its_events_complete() {
    nodes_must_match(Arc::new(MemoryStore::new()));
    let dir = tempfile::tempdir().expect("tempdir");
    nodes_must_match(Arc::new(SledStore::open(dir.path()).expect("open")));
}

#[test]
fn init_refuses_a_second_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::new(SledStore::open(dir.path()).expect("open"));
    let other = custody::core::ids::LedgerName::parse("other/ledger").expect("valid");
    let k = log_key().public;
    assert!(custody::ledger::Ledger::init(w.ledger.store(), &other, &k).is_err());
    assert!(
        custody::ledger::Ledger::init(w.ledger.store(), &ledger_name(), &k).is_err(),
        "not empty any more"
    );
}
