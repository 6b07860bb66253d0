//! Bad input at the wire edge: every malformed or forged envelope gets its own error, and
//! any one-byte change to a signed event breaks it.

mod common;

use base64::Engine as _;
use common::*;
use custody::core::event::{Body, Transfer, UnitLink};
use custody::core::ids::LedgerName;
use custody::core::verify::{self, SignedEvent, MAX_EVENT_BYTES};
use custody::core::{DecodeError, SignatureError};
use custody::store::{MemoryStore, Store};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A valid signed transfer as canonical bytes, with its world.
fn valid() -> (World<MemoryStore>, Vec<u8>) {
    let w = World::new(MemoryStore::new());
    let u = w.register(2);
    let links = u
        .iter()
        .map(|x| UnitLink {
            unit: x.clone(),
            prev: w.ledger.store().unit(x).expect("read").expect("unit").head,
        })
        .collect();
    let body = Body::Transfer(Transfer {
        at: w.now(),
        from: w.maker.party_id(),
        to: w.dist.party_id(),
        units: links,
        shipment: text("AWB 1"),
        destination_country: cn(),
    });
    let env = verify::sign(w.ledger.name(), body, &[&w.maker.signing]).expect("sign");
    let ev = SignedEvent::from_envelope(env)
        .expect("shape")
        .verify(w.ledger.name())
        .expect("verifies");
    (w, ev.canonical_bytes().to_vec())
}

fn decode(v: &Value) -> Result<SignedEvent, DecodeError> {
    SignedEvent::decode(&serde_json::to_vec(v).expect("json"))
}

fn as_value(b: &[u8]) -> Value {
    serde_json::from_slice(b).expect("json")
}

#[test]
fn valid_event_decodes_and_verifies() {
    let (w, bytes) = valid();
    let ev = SignedEvent::decode(&bytes)
        .expect("decodes")
        .verify(w.ledger.name())
        .expect("verifies");
    assert_eq!(ev.canonical_bytes(), bytes.as_slice());
}

#[test]
fn malformed_json() {
    let (_, bytes) = valid();
    let e = SignedEvent::decode(&bytes[..bytes.len() - 3]).expect_err("truncated");
    assert!(matches!(e, DecodeError::Json { .. }), "{e}");
    let e = SignedEvent::decode(b"\xff\xfe{}").expect_err("not utf-8");
    assert!(matches!(e, DecodeError::Json { .. }), "{e}");
}

#[test]
fn unknown_fields_are_refused() {
    let (_, bytes) = valid();
    let mut v = as_value(&bytes);
    v["body"]["comment"] = json!("hi");
    assert!(decode(&v)
        .expect_err("unknown body field")
        .to_string()
        .contains("unknown field"));
    let mut v = as_value(&bytes);
    v["extra"] = json!(1);
    assert!(decode(&v)
        .expect_err("unknown envelope field")
        .to_string()
        .contains("unknown field"));
    let mut v = as_value(&bytes);
    v["body"]["type"] = json!("teleport");
    assert!(decode(&v)
        .expect_err("unknown type")
        .to_string()
        .contains("unknown variant"));
}

#[test]
fn wrong_types_and_bad_encodings() {
    let (_, bytes) = valid();
    let cases: Vec<(&str, Value)> = vec![
        ("/body/units", json!("not a list")),
        ("/body/units/0/prev", json!("ABCDEF")),
        ("/body/destination_country", json!("XX")),
        ("/body/at", json!("2024-01-01T00:00:00.000Z")),
        ("/body/at", json!(1_700_000_000)),
        ("/signatures/0/sig", json!("!!!not base64")),
        (
            "/signatures/0/sig",
            json!(base64::engine::general_purpose::STANDARD.encode([0u8; 63])),
        ),
        (
            "/signatures/0/key",
            json!(base64::engine::general_purpose::STANDARD.encode([0u8; 32])),
        ),
        ("/body/units/0/unit", json!("SN0001")),
        ("/body/shipment", json!(1.5)),
    ];
    for (path, val) in cases {
        let mut v = as_value(&bytes);
        *v.pointer_mut(path).expect("path exists") = val.clone();
        let e = decode(&v).expect_err("refused");
        assert!(matches!(e, DecodeError::Json { .. }), "{path} = {val}: {e}");
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let (_, bytes) = valid();
    let s = String::from_utf8(bytes).expect("utf-8");
    let dup = s.replacen("\"shipment\":", "\"shipment\":\"other\",\"shipment\":", 1);
    let e = SignedEvent::decode(dup.as_bytes()).expect_err("duplicate key");
    assert!(e.to_string().contains("duplicate field"), "{e}");
}

#[test]
fn oversize_is_refused_before_parsing() {
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        SignedEvent::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn non_normal_form_is_refused() {
    let (w, _) = valid();
    let k = key("nf");
    let body = json!({"type":"register","at":"2023-11-14T22:13:20Z","manufacturer":w.maker.party_id().to_string(),"units":["urn:epc:id:sgtin:0614141.812345.1"],"lot":null});
    let env = json!({"body": body, "signatures":[{"key": k.public.to_string(), "sig": base64::engine::general_purpose::STANDARD.encode([0u8;64])}]});
    assert!(matches!(
        decode(&env),
        Err(DecodeError::NotNormalForm { .. })
    ));
}

#[test]
fn shape_rules() {
    let (w, bytes) = valid();
    let mut v = as_value(&bytes);
    let u0 = v["body"]["units"][0].clone();
    v["body"]["units"][1] = u0;
    assert!(
        matches!(decode(&v), Err(DecodeError::Shape { .. })),
        "duplicate unit"
    );
    let mut v = as_value(&bytes);
    v["body"]["units"] = json!([]);
    assert!(
        matches!(decode(&v), Err(DecodeError::Shape { .. })),
        "no units"
    );
    let mut v = as_value(&bytes);
    v["signatures"] = json!([]);
    assert!(
        matches!(decode(&v), Err(DecodeError::Shape { .. })),
        "no signatures"
    );
    // Two signatures out of key order.
    let mut v = as_value(&bytes);
    let mut s2 = v["signatures"][0].clone();
    s2["key"] = json!(w.dist.public.to_string());
    let s1 = v["signatures"][0].clone();
    let (a, b) = if w.maker.public.as_bytes() < w.dist.public.as_bytes() {
        (s2, s1)
    } else {
        (s1, s2)
    };
    v["signatures"] = json!([a, b]);
    assert!(
        matches!(decode(&v), Err(DecodeError::Shape { .. })),
        "unsorted signatures"
    );
}

#[test]
fn signatures_over_other_bytes_or_ledgers_fail() {
    let (w, bytes) = valid();
    let other = LedgerName::parse("another.example/ledger").expect("valid");
    let e = SignedEvent::decode(&bytes)
        .expect("decodes")
        .verify(&other)
        .expect_err("other ledger");
    assert!(matches!(e, SignatureError::Invalid { index: 0, .. }));
    let mut v = as_value(&bytes);
    v["body"]["shipment"] = json!("AWB 2");
    let e = decode(&v)
        .expect("decodes")
        .verify(w.ledger.name())
        .expect_err("changed body");
    assert!(matches!(e, SignatureError::Invalid { .. }));
}

#[test]
fn non_canonical_signature_scalar_is_refused() {
    // Adding the group order L to S gives a signature that non-strict verifiers accept
    // (malleability); verify_strict must not.
    let (w, bytes) = valid();
    let mut v = as_value(&bytes);
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut sig = b64
        .decode(v["signatures"][0]["sig"].as_str().expect("str"))
        .expect("b64");
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = (s & 0xff) as u8;
        carry = s >> 8;
    }
    v["signatures"][0]["sig"] = json!(b64.encode(&sig));
    let e = decode(&v)
        .expect("decodes")
        .verify(w.ledger.name())
        .expect_err("S >= L");
    assert!(matches!(e, SignatureError::Invalid { .. }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Changing any one byte of a signed event makes it fail to decode or to verify.
    #[test]
    fn any_byte_change_breaks_verification(pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let (w, bytes) = VALID.with(|v| v.clone());
        let mut b = bytes.clone();
        let i = pos.index(b.len());
        b[i] = b[i].wrapping_add(delta);
        let ok = SignedEvent::decode(&b).ok().and_then(|s| s.verify(&w).ok());
        prop_assert!(ok.is_none(), "byte {} changed and the event still verifies", i);
    }
}

thread_local! {
    static VALID: (LedgerName, Vec<u8>) = {
        let (w, b) = valid();
        (w.ledger.name().clone(), b)
    };
}
