//! Evidence bundles: exported from a ledger, verified offline, and every kind of tampering
//! caught with a precise error.

mod common;

use common::*;
use custody::bundle::export;
use custody::core::bundle::{verify, Bundle, BundleError};
use custody::core::checkpoint::VerifierKey;
use custody::core::event::{Body, EndUse};
use custody::core::unit::UnitId;
use custody::core::values::CountryCode;
use custody::store::MemoryStore;

fn vkey() -> VerifierKey {
    VerifierKey {
        name: ledger_name(),
        key: log_key().public,
    }
}

fn eu() -> EndUse {
    EndUse {
        end_user: text("Lab"),
        end_user_party: None,
        end_use: text("research"),
        destination_country: CountryCode::parse("CN").expect("cc"),
        no_restricted_retransfer: true,
    }
}

/// maker (after rotating its key) → dist → sub, lot of 3 units; returns the world, the
/// bundle of the first unit and that unit.
fn fixture() -> (World<MemoryStore>, Bundle, UnitId) {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let new_maker = key("maker-2");
    c.rotate_key(&w.maker, &new_maker).expect("rotate");
    w.tick(60);
    let units = w.units(3);
    c.register(&new_maker, units.clone(), None, None)
        .expect("register");
    let t = c
        .transfer(&new_maker, &w.dist.party_id(), &units, text("AWB 1"), cn())
        .expect("transfer");
    c.accept(&w.dist, &t.hash, &[], Some(eu())).expect("accept");
    let t = c
        .transfer(&w.dist, &w.sub.party_id(), &units[..1], text("S2"), cn())
        .expect("transfer");
    c.accept(&w.sub, &t.hash, &[], None).expect("accept");
    w.ledger.checkpoint().expect("checkpoint");
    let b = export(w.ledger.store(), &units[0]).expect("export");
    (w, b, units[0].clone())
}

#[test]
fn an_exported_bundle_verifies_offline() {
    let (w, b, u) = fixture();
    let v = verify(&b, &vkey()).expect("verifies");
    assert_eq!(v.unit, u);
    assert_eq!(
        v.chain.len(),
        5,
        "register, transfer, accept, transfer, accept"
    );
    assert_eq!(v.state.holder, w.sub.party_id());
    // It survives a JSON round trip (what a file holds).
    let text = serde_json::to_string(&b).expect("json");
    let back: Bundle = serde_json::from_str(&text).expect("parse");
    verify(&back, &vkey()).expect("verifies after a round trip");
}

fn position(b: &Bundle, kind: &str) -> usize {
    b.entries
        .iter()
        .position(|e| e.event.body.kind() == kind)
        .expect("an entry of that kind")
}

#[test]
fn an_altered_event_fails_its_signature() {
    let (_, mut b, _) = fixture();
    let p = position(&b, "transfer");
    if let Body::Transfer(t) = &mut b.entries[p].event.body {
        t.shipment = text("AWB 9");
    }
    let index = b.entries[p].index;
    match verify(&b, &vkey()) {
        Err(BundleError::Signature { index: i, .. }) => assert_eq!(i, index),
        other => panic!("expected a signature failure, got {other:?}"),
    }
}

#[test]
fn an_altered_signature_fails() {
    let (_, mut b, _) = fixture();
    let p = position(&b, "accept");
    let mut v = serde_json::to_value(&b.entries[p].event).expect("json");
    let sig = v["signatures"][0]["sig"].as_str().expect("sig").to_owned();
    let rest = sig.get(1..).expect("non-empty");
    let flipped = if sig.starts_with('A') {
        format!("B{rest}")
    } else {
        format!("A{rest}")
    };
    v["signatures"][0]["sig"] = flipped.into();
    b.entries[p].event = serde_json::from_value(v).expect("envelope");
    assert!(matches!(
        verify(&b, &vkey()),
        Err(BundleError::Signature { .. })
    ));
}

#[test]
fn an_altered_proof_fails() {
    let (_, mut b, _) = fixture();
    let p = position(&b, "register");
    let other = b.entries[0].proof[0];
    b.entries[p].proof[0] = other;
    let index = b.entries[p].index;
    match verify(&b, &vkey()) {
        Err(BundleError::Proof { index: i, .. }) => assert_eq!(i, index),
        other => panic!("expected a proof failure, got {other:?}"),
    }
}

#[test]
fn an_altered_checkpoint_or_the_wrong_key_fails() {
    let (_, mut b, _) = fixture();
    let mut lines: Vec<String> = b.checkpoint.lines().map(str::to_owned).collect();
    lines[1] = (lines[1].parse::<u64>().expect("size") + 1).to_string();
    b.checkpoint = lines.join("\n") + "\n";
    assert!(matches!(
        verify(&b, &vkey()),
        Err(BundleError::Checkpoint(_))
    ));
    let (_, b, _) = fixture();
    let wrong = VerifierKey {
        name: ledger_name(),
        key: key("someone else").public,
    };
    assert!(matches!(
        verify(&b, &wrong),
        Err(BundleError::Checkpoint(_))
    ));
}

#[test]
fn a_missing_rotation_event_is_caught() {
    let (_, mut b, _) = fixture();
    let p = position(&b, "rotate_key");
    b.entries.remove(p);
    match verify(&b, &vkey()) {
        Err(BundleError::Rule { source, .. }) => {
            // The new key is unknown without the rotation: the register lacks the maker's signature.
            let msg = source.to_string();
            assert!(msg.contains("missing signature by maker"), "{msg}");
        }
        other => panic!("expected a rule failure, got {other:?}"),
    }
}

#[test]
fn a_missing_or_reordered_chain_event_is_caught() {
    let (_, b, _) = fixture();
    let mut gap = b.clone();
    let p = gap
        .entries
        .iter()
        .position(|e| e.index == gap.chain[2])
        .expect("accept");
    gap.entries.remove(p);
    assert!(matches!(
        verify(&gap, &vkey()),
        Err(BundleError::Rule { .. } | BundleError::Chain(_))
    ));
    let mut swapped = b;
    swapped.entries.swap(1, 2);
    assert!(matches!(
        verify(&swapped, &vkey()),
        Err(BundleError::Order { .. })
    ));
}
