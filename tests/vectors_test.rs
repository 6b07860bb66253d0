//! Golden vectors for the wire format (FORMAT.md): fixed keys, fixed times, and for each
//! event the body, its JCS bytes, the signing input, the signed envelope and the event hash.
//! Regenerate with `CUSTODY_REGEN_VECTORS=1 cargo test --test vectors_test` (only when the
//! format changes on purpose; the diff is the format change).

use std::path::Path;

use custody::core::event::*;
use custody::core::ids::{EventHash, Handle, LedgerName, PartyId};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::core::verify::{self, SignedEvent};
use custody::keys::KeyPair;
use serde_json::{json, Value};

fn key(seed: u8) -> KeyPair {
    KeyPair::from_signing(ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).expect("key")
}

fn vectors() -> Value {
    let ledger = LedgerName::parse("vectors.example/ledger").expect("name");
    let op = key(1);
    let maker = key(2);
    let t = |s| Timestamp::parse(s).expect("time");
    let prof = |name: &str, roles: Vec<Role>, gs1: Vec<String>| Profile {
        legal_name: Text::parse(name).expect("t"),
        aliases: vec![Text::parse("Ürümqi \"Ü\" 乌鲁木齐").expect("t")],
        country: CountryCode::parse("US").expect("c"),
        region: None,
        address: None,
        roles,
        parent: None,
        owners: vec![],
        gs1_company_prefixes: gs1,
    };
    let genesis = Body::Genesis(Genesis {
        at: t("2024-01-01T00:00:00Z"),
        party: op.party_id(),
        handle: Handle::parse("operator").expect("h"),
        profile: prof("Vector Operator", vec![Role::Operator], vec![]),
        keys: vec![op.public],
    });
    let enroll = Body::Enroll(Enroll {
        at: t("2024-01-01T00:01:00Z"),
        party: maker.party_id(),
        handle: Handle::parse("maker").expect("h"),
        profile: prof(
            "Vector Maker",
            vec![Role::Manufacturer],
            vec!["0614141".into()],
        ),
        keys: vec![maker.public],
        sponsor: op.party_id(),
    });
    let unit = UnitId::parse("urn:epc:id:sgtin:0614141.812345.6789").expect("u");
    let register = Body::Register(Register {
        at: t("2024-01-02T00:00:00Z"),
        manufacturer: maker.party_id(),
        units: vec![unit.clone()],
        lot: None,
        product_name: None,
    });
    let mut out = Vec::new();
    let mut prev: Option<EventHash> = None;
    let mut push = |name: &str, body: Body, keys: &[&KeyPair]| -> EventHash {
        let input = verify::signing_input(&ledger, &body).expect("input");
        let env = verify::sign(
            &ledger,
            body.clone(),
            &keys.iter().map(|k| &k.signing).collect::<Vec<_>>(),
        )
        .expect("sign");
        let ev = SignedEvent::from_envelope(env.clone())
            .expect("shape")
            .verify(&ledger)
            .expect("verify");
        out.push(json!({
            "name": name,
            "ledger": ledger.as_str(),
            "body_jcs": String::from_utf8(input[b"custody:v1:sign\0".len() + ledger.as_str().len() + 1..].to_vec()).expect("utf-8"),
            "signing_input_hex": hex::encode(&input),
            "envelope_jcs": String::from_utf8(ev.canonical_bytes().to_vec()).expect("utf-8"),
            "event_hash": ev.hash().to_string(),
            "public_keys": keys.iter().map(|k| k.public.to_string()).collect::<Vec<_>>(),
        }));
        ev.hash()
    };
    push("genesis", genesis, &[&op]);
    push("enroll", enroll, &[&maker, &op]);
    let r = push("register", register, &[&maker]);
    prev.replace(r);
    let transfer = Body::Transfer(Transfer {
        at: t("2024-01-03T00:00:00Z"),
        from: maker.party_id(),
        to: PartyId::derive(&key(3).public),
        units: vec![UnitLink { unit, prev: r }],
        shipment: Text::parse("AWB 1 «quoted» \"q\" back\\slash").expect("t"),
        destination_country: CountryCode::parse("CN").expect("c"),
    });
    push("transfer", transfer, &[&maker]);
    json!({
        "description": "custody v1 golden vectors; keys are ed25519 seeds of 32 repeated bytes: operator 0x01, maker 0x02, recipient 0x03",
        "vectors": out
    })
}

/// The stored vectors in `tests/vectors/NAME`, which must equal `now` (rewritten first when
/// `CUSTODY_REGEN_VECTORS` is set).
fn stored_or_regenerated(name: &str, now: &Value) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    if std::env::var_os("CUSTODY_REGEN_VECTORS").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(now).expect("json") + "\n",
        )
        .expect("write vectors");
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors file")).expect("json");
    assert_eq!(
        &stored, now,
        "{name}: the format changed; regenerate only if intended (see module docs)"
    );
    stored
}

#[test]
fn golden_vectors_reproduce() {
    let stored = stored_or_regenerated("events.json", &vectors());
    // Each stored envelope decodes and verifies on its own, and hashes as recorded.
    let ledger = LedgerName::parse("vectors.example/ledger").expect("name");
    for v in stored["vectors"].as_array().expect("list") {
        let env = v["envelope_jcs"].as_str().expect("str");
        let ev = SignedEvent::decode(env.as_bytes())
            .expect("decodes")
            .verify(&ledger)
            .expect("verifies");
        assert_eq!(
            ev.hash().to_string(),
            v["event_hash"].as_str().expect("str")
        );
        assert_eq!(ev.canonical_bytes(), env.as_bytes());
    }
}

/// Log vectors: the events above as leaves of the global log (integrated one minute
/// after their `at`), every root, every proof, a signed checkpoint and a signed receipt
/// under the log key (seed 0x09). Regenerated together with the event vectors.
fn log_vectors(events: &Value) -> Value {
    use custody::core::checkpoint::{Checkpoint, VerifierKey};
    use custody::core::merkle::{self, leaf_bytes, Frontier, NodeId, TreeHash};
    use custody::core::receipt::{self, CheckpointRef, ReceiptBody};
    use std::collections::HashMap;

    let ledger = LedgerName::parse("vectors.example/ledger").expect("name");
    let log = key(9);
    let mut f = Frontier::default();
    let mut nodes: HashMap<NodeId, TreeHash> = HashMap::new();
    let mut leaves = vec![];
    let mut roots = vec![];
    for (i, v) in events["vectors"]
        .as_array()
        .expect("list")
        .iter()
        .enumerate()
    {
        let env = v["envelope_jcs"].as_str().expect("str");
        let body: Value =
            serde_json::from_str(v["body_jcs"].as_str().expect("body")).expect("json");
        let at = Timestamp::parse(body["at"].as_str().expect("at"))
            .expect("t")
            .saturating_add(60);
        let bytes = leaf_bytes(at, env.as_bytes());
        let h = merkle::leaf_hash(&bytes);
        nodes.extend(f.push(h));
        leaves.push(json!({
            "index": i, "integrated_at": at, "leaf_bytes_hex": hex::encode(&bytes), "leaf_hash": h,
        }));
        roots.push(json!({"size": i + 1, "root_hash": f.root()}));
    }
    let n = f.size();
    let fold = |spans: Vec<merkle::Span>| {
        let ids = merkle::nodes_for(&spans);
        let read: Vec<_> = ids.iter().map(|id| (*id, nodes[id])).collect();
        merkle::assemble(&spans, &read).expect("nodes")
    };
    let mut inclusion = vec![];
    let mut consistency = vec![];
    for size in 1..=n {
        for i in 0..size {
            inclusion.push(json!({"index": i, "tree_size": size, "hashes": fold(merkle::inclusion_spans(i, size))}));
        }
        for old in 1..size {
            consistency.push(json!({"old_size": old, "new_size": size, "hashes": fold(merkle::consistency_spans(old, size))}));
        }
    }
    let cp = Checkpoint {
        origin: ledger.clone(),
        size: n,
        root: f.root(),
    }
    .sign(&log.signing);
    // Receipts: the first three events signed as one batch (an unbalanced tree), and the
    // last one alone (a batch of one).
    let receipt_body = |i: u64| ReceiptBody {
        ledger: ledger.clone(),
        index: custody::core::ids::LogIndex::new(i),
        event_hash: EventHash::parse(
            events["vectors"][i as usize]["event_hash"]
                .as_str()
                .expect("hash"),
        )
        .expect("hash"),
        integrated_at: serde_json::from_value(leaves[i as usize]["integrated_at"].clone())
            .expect("t"),
        checkpoint: Some(CheckpointRef {
            size: n,
            root_hash: f.root(),
        }),
        checkpoint_by: None,
    };
    let bodies: Vec<_> = (0..n.min(3)).map(receipt_body).collect();
    let leaf_inputs: Vec<_> = bodies
        .iter()
        .map(|b| hex::encode(receipt::leaf_input(b)))
        .collect();
    let receipt_leaves: Vec<_> = bodies.iter().map(receipt::leaf).collect();
    let (batch_root, _) = merkle::paths_in_memory(&receipt_leaves);
    let batch_input = receipt::batch_signing_input(bodies.len() as u64, &batch_root);
    let batch = receipt::sign_batch(bodies, &receipt_leaves, &log.signing);
    let single = receipt_body(n - 1);
    let single_input = receipt::leaf_input(&single);
    let signed = single.sign(&log.signing);
    json!({
        "description": "custody v1 log vectors (FORMAT.md §8-§11); log key: ed25519 seed of 32 bytes 0x09",
        "log_public_key": log.public,
        "verifier_key": VerifierKey { name: ledger, key: log.public }.to_string(),
        "leaves": leaves,
        "roots": roots,
        "inclusion_proofs": inclusion,
        "consistency_proofs": consistency,
        "checkpoint_note": cp.to_note(),
        "receipt_batch": {
            "leaf_inputs_hex": leaf_inputs,
            "leaf_hashes": receipt_leaves,
            "root": batch_root,
            "signing_input_hex": hex::encode(batch_input),
            "receipts": batch,
        },
        "receipt_leaf_input_hex": hex::encode(single_input),
        "receipt": signed,
    })
}

#[test]
fn golden_log_vectors_reproduce() {
    use custody::core::checkpoint::{SignedCheckpoint, VerifierKey};
    use custody::core::merkle::{verify_consistency, verify_inclusion, TreeHash};
    use custody::core::receipt::SignedReceipt;

    let stored = stored_or_regenerated("log.json", &log_vectors(&vectors()));

    // Check the stored vectors with the verifiers, as another implementation would.
    let h = |v: &Value| TreeHash::parse(v.as_str().expect("str")).expect("tree hash");
    let hs = |v: &Value| {
        v.as_array()
            .expect("list")
            .iter()
            .map(h)
            .collect::<Vec<_>>()
    };
    let root =
        |size: &Value| h(&stored["roots"][size.as_u64().expect("n") as usize - 1]["root_hash"]);
    for p in stored["inclusion_proofs"].as_array().expect("list") {
        let i = p["index"].as_u64().expect("i");
        verify_inclusion(
            &h(&stored["leaves"][i as usize]["leaf_hash"]),
            i,
            p["tree_size"].as_u64().expect("n"),
            &hs(&p["hashes"]),
            &root(&p["tree_size"]),
        )
        .expect("inclusion vector verifies");
    }
    for p in stored["consistency_proofs"].as_array().expect("list") {
        verify_consistency(
            p["old_size"].as_u64().expect("m"),
            p["new_size"].as_u64().expect("n"),
            &root(&p["old_size"]),
            &root(&p["new_size"]),
            &hs(&p["hashes"]),
        )
        .expect("consistency vector verifies");
    }
    let vkey = VerifierKey::parse(stored["verifier_key"].as_str().expect("vkey")).expect("vkey");
    SignedCheckpoint::parse(stored["checkpoint_note"].as_str().expect("note").as_bytes())
        .expect("note")
        .verify(&vkey)
        .expect("checkpoint vector verifies");
    let r: SignedReceipt = serde_json::from_value(stored["receipt"].clone()).expect("receipt");
    r.verify(&vkey.name, &vkey.key)
        .expect("receipt vector verifies");
    let batch = &stored["receipt_batch"];
    let inputs = batch["leaf_inputs_hex"].as_array().expect("list");
    for (i, r) in batch["receipts"]
        .as_array()
        .expect("list")
        .iter()
        .enumerate()
    {
        let r: SignedReceipt = serde_json::from_value(r.clone()).expect("receipt");
        r.verify(&vkey.name, &vkey.key)
            .expect("batched receipt vector verifies");
        assert_eq!(r.batch.index, i as u64);
        assert_eq!(r.batch.size, inputs.len() as u64);
        let input = hex::decode(inputs[i].as_str().expect("hex")).expect("hex");
        assert_eq!(
            custody::core::merkle::leaf_hash(&input),
            h(&batch["leaf_hashes"][i]),
            "leaf hash = SHA-256(0x00 || leaf input)"
        );
        assert_eq!(input, custody::core::receipt::leaf_input(&r.body));
    }
}
