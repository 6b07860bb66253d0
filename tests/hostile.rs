//! Every malformed or malicious request a client can send `custody serve` (a real process on
//! sled), table-driven: each gets its specific 4xx problem, and the ledger is unchanged
//! (the signed checkpoint and the log length are the same before and after each one).

mod common;

use std::io::{Read as _, Write as _};

use common::process::{serve, Served};
use common::*;
use custody::core::event::{
    Accept, Body, Enroll, Observe, Register, RetireReason, Transfer, UnitLink,
};
use custody::core::ids::{EventHash, LedgerName, PartyId};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::core::verify;
use custody::keys::KeyPair;
use custody::store::{SledStore, Store};
use serde_json::Value;

/// What the fixture holds: units in known states and the events that put them there.
struct Fixture {
    /// Held by the maker, nothing pending.
    free: UnitId,
    free_head: EventHash,
    /// Pending transfer maker → dist.
    pending: UnitId,
    transfer: EventHash,
    /// Retired by the maker.
    retired: UnitId,
    retired_head: EventHash,
}

fn fixture(dir: &std::path::Path) -> Fixture {
    let w = World::new(SledStore::open(dir).expect("open"));
    let c = w.client();
    let units = w.register(3);
    let reg = w
        .ledger
        .store()
        .unit(&units[0])
        .expect("read")
        .expect("unit")
        .head;
    w.tick(60);
    let t = c
        .transfer(
            &w.maker,
            &w.dist.party_id(),
            &[units[1].clone()],
            Text::parse("AWB 1").expect("t"),
            CountryCode::parse("CN").expect("c"),
        )
        .expect("transfer");
    let r = c
        .retire(&w.maker, &[units[2].clone()], RetireReason::Destroyed, None)
        .expect("retire");
    // The servicer's key is revoked.
    c.revoke_key(
        &w.svc,
        &w.svc.party_id(),
        w.svc.public,
        None,
        Text::parse("laptop stolen").expect("t"),
    )
    .expect("revoke");
    Fixture {
        free: units[0].clone(),
        free_head: reg,
        pending: units[1].clone(),
        transfer: t.hash,
        retired: units[2].clone(),
        retired_head: r.hash,
    }
}

fn now() -> Timestamp {
    custody::ledger::system_clock()()
}

fn signed(ledger: &LedgerName, body: Body, keys: &[&KeyPair]) -> String {
    let ks: Vec<_> = keys.iter().map(|k| &k.signing).collect();
    serde_json::to_string(&verify::sign(ledger, body, &ks).expect("sign")).expect("json")
}

fn link(unit: &UnitId, prev: EventHash) -> Vec<UnitLink> {
    vec![UnitLink {
        unit: unit.clone(),
        prev,
    }]
}

fn transfer_body(
    f: &Fixture,
    from: &KeyPair,
    to: &PartyId,
    unit: &UnitId,
    prev: EventHash,
    shipment: &str,
) -> Body {
    let _ = f;
    Body::Transfer(Transfer {
        at: now(),
        from: from.party_id(),
        to: to.clone(),
        units: link(unit, prev),
        shipment: Text::parse(shipment).expect("t"),
        destination_country: CountryCode::parse("CN").expect("c"),
    })
}

/// A raw HTTP/1.1 exchange: the status and the problem body (if any).
fn raw(s: &Served, request: &[u8]) -> (u16, Value) {
    let addr = s.url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    // The server may answer (413) and close before reading everything.
    let _ = c.write_all(request);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("status");
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn post_raw(s: &Served, path: &str, content_type: &str, body: &[u8], extra: &str) -> (u16, Value) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(s, &req)
}

/// A POST with a chunked body (no Content-Length).
fn chunked(body: &str) -> Vec<u8> {
    let mut req = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in body.as_bytes().chunks(1 << 16) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

fn post(s: &Served, path: &str, body: &str) -> (u16, Value) {
    post_raw(s, path, "application/json", body.as_bytes(), "")
}

fn get(s: &Served, path: &str) -> (u16, Value) {
    raw(
        s,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The ledger's state as a client sees it: the signed checkpoint and the log length.
fn state(s: &Served) -> String {
    let cp = ureq::get(&format!("{}/v1/checkpoint", s.url))
        .call()
        .expect("checkpoint")
        .into_string()
        .expect("text");
    let ledger: Value = ureq::get(&format!("{}/v1/ledger", s.url))
        .call()
        .expect("ledger")
        .into_json()
        .expect("json");
    format!("{cp}\n{}", ledger["size"])
}

fn operator_post(
    s: &Served,
    path: &str,
    body: &str,
    key: &KeyPair,
    created: i64,
    nonce: &str,
) -> (u16, Value) {
    let auth = custody::core::request::authorization(
        &ledger_name(),
        &key.signing,
        &custody::core::request::RequestParts {
            method: "POST",
            path_and_query: path,
            created,
            nonce,
            body: body.as_bytes(),
        },
    );
    post_raw(
        s,
        path,
        "application/json",
        body.as_bytes(),
        &format!("Authorization: {auth}\r\n"),
    )
}

#[test]
fn every_hostile_request_gets_its_4xx_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let f = fixture(&dir);
    log_key().save(&dir.join("log-key.pem")).expect("log key");
    let s = serve(&dir, &[]);
    let name = ledger_name();
    let (op, maker, dist, sub, user, svc) = (
        key("op"),
        key("maker"),
        key("dist"),
        key("sub"),
        key("user"),
        key("svc"),
    );
    let good = signed(
        &name,
        transfer_body(&f, &maker, &dist.party_id(), &f.free, f.free_head, "AWB 9"),
        &[&maker],
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let many_units: Vec<UnitId> = (0..20_000)
        .map(|i| UnitId::custody(&maker.party_id(), "SEQ", &format!("H{i}")).expect("u"))
        .collect();
    let huge_array = signed(
        &name,
        Body::Register(Register {
            at: now(),
            manufacturer: maker.party_id(),
            units: many_units,
            lot: None,
            product_name: None,
        }),
        &[&maker],
    );
    let mut invalid_utf8 = good.clone().into_bytes();
    let pos = good.find("AWB 9").expect("shipment");
    invalid_utf8[pos] = 0xff;
    // The only numbers in events are ownership shares.
    let owned = key("owned company");
    let mut owned_profile = profile(
        "Owned Company",
        "CN",
        &[custody::core::event::Role::Distributor],
    );
    owned_profile.owners = vec![custody::core::event::Owner {
        name: Text::parse("Maker Inc").expect("t"),
        party: Some(maker.party_id()),
        share_bps: 5000,
    }];
    let with_share = signed(
        &name,
        Body::Enroll(Enroll {
            at: now(),
            party: owned.party_id(),
            handle: h("owned-company"),
            profile: owned_profile,
            keys: vec![owned.public],
            sponsor: maker.party_id(),
        }),
        &[&owned, &maker],
    );
    assert!(with_share.contains("\"share_bps\":5000"), "{with_share}");
    let non_canonical_number = with_share.replacen("\"share_bps\":5000", "\"share_bps\":5000.0", 1);
    let exponent = with_share.replacen("\"share_bps\":5000", "\"share_bps\":5e3", 1);
    let leading_zero = with_share.replacen("\"share_bps\":5000", "\"share_bps\":05000", 1);
    // An event accepted before the table: replaying it, in any JSON spelling, is idempotent
    // (the original receipt, `duplicate: true`) and adds nothing.
    let accepted = signed(
        &name,
        Body::Register(Register {
            at: now(),
            manufacturer: maker.party_id(),
            units: vec![UnitId::custody(&maker.party_id(), "SEQ", "REPLAYED").expect("u")],
            lot: Some(Text::parse("L9").expect("t")),
            product_name: None,
        }),
        &[&maker],
    );
    let (st, first) = post(&s, "/v1/events", &accepted);
    assert_eq!(st, 201, "{first}");
    let escaped = accepted.replacen("\"L9\"", "\"L\\u0039\"", 1);
    assert_ne!(escaped, accepted);
    let shape_units: Vec<UnitId> = (0..6000)
        .map(|i| UnitId::custody(&maker.party_id(), "S", &format!("{i}")).expect("u"))
        .collect();
    let too_many_units = signed(
        &name,
        Body::Register(Register {
            at: now(),
            manufacturer: maker.party_id(),
            units: shape_units,
            lot: None,
            product_name: None,
        }),
        &[&maker],
    );
    let duplicate_key = good.replacen("\"shipment\":", "\"shipment\":\"AWB 8\",\"shipment\":", 1);
    let wrong_key = signed(
        &name,
        transfer_body(&f, &maker, &dist.party_id(), &f.free, f.free_head, "AWB 9"),
        &[&dist],
    );
    let other_ledger = signed(
        &LedgerName::parse("other.example/ledger").expect("name"),
        transfer_body(&f, &maker, &dist.party_id(), &f.free, f.free_head, "AWB 9"),
        &[&maker],
    );
    let revoked = signed(
        &name,
        Body::Observe(Observe {
            at: now(),
            observer: svc.party_id(),
            seen_at: maker.party_id(),
            units: link(&f.free, f.free_head),
            location: None,
            note: None,
        }),
        &[&svc],
    );
    // A second transfer of the unit already pending to dist: a fork of its chain.
    let fork = signed(
        &name,
        transfer_body(
            &f,
            &maker,
            &sub.party_id(),
            &f.pending,
            f.free_head,
            "AWB F",
        ),
        &[&maker],
    );
    let pending_head = {
        let store_view: Value = ureq::get(&format!("{}/v1/units/{}", s.url, f.pending))
            .call()
            .expect("unit")
            .into_json()
            .expect("json");
        serde_json::from_value::<EventHash>(store_view["head"].clone()).expect("head")
    };
    let fork = if pending_head == f.free_head {
        fork
    } else {
        signed(
            &name,
            transfer_body(
                &f,
                &maker,
                &sub.party_id(),
                &f.pending,
                pending_head,
                "AWB F",
            ),
            &[&maker],
        )
    };
    let wrong_accept = signed(
        &name,
        Body::Accept(Accept {
            at: now(),
            by: sub.party_id(),
            transfer: f.transfer,
            units: link(&f.pending, f.transfer),
            end_use: None,
        }),
        &[&sub],
    );
    let retired = signed(
        &name,
        transfer_body(
            &f,
            &maker,
            &dist.party_id(),
            &f.retired,
            f.retired_head,
            "AWB R",
        ),
        &[&maker],
    );
    let newcomer = key("front company");
    let unsponsored = signed(
        &name,
        Body::Enroll(Enroll {
            at: now(),
            party: newcomer.party_id(),
            handle: h("front-company"),
            profile: profile(
                "Front Company",
                "CN",
                &[custody::core::event::Role::Distributor],
            ),
            keys: vec![newcomer.public],
            sponsor: newcomer.party_id(),
        }),
        &[&newcomer],
    );
    let by_user = signed(
        &name,
        Body::Enroll(Enroll {
            at: now(),
            party: newcomer.party_id(),
            handle: h("front-company"),
            profile: profile(
                "Front Company",
                "CN",
                &[custody::core::event::Role::Distributor],
            ),
            keys: vec![newcomer.public],
            sponsor: user.party_id(),
        }),
        &[&newcomer, &user],
    );
    let list = r#"{"source":"denylist","files":[{"name":"deny.csv","content_base64":"bmFtZQpGcm9udCBDb21wYW55Cg=="}]}"#;

    // A genuine operator request, to be replayed below.
    let created = now().unix();
    let (ok, body) = operator_post(&s, "/v1/lists", list, &op, created, "nonce-genuine-0001");
    assert!(
        ok == 200 || ok == 201,
        "the operator's own import: {ok} {body}"
    );

    type Case<'a> = (&'a str, Box<dyn Fn() -> (u16, Value) + 'a>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong content type",
            Box::new(|| post_raw(&s, "/v1/events", "text/plain", good.as_bytes(), "")),
            415,
            "unsupported_media_type",
        ),
        (
            "truncated JSON",
            Box::new(|| post(&s, "/v1/events", &good[..good.len() / 2])),
            400,
            "malformed_json",
        ),
        (
            "empty body",
            Box::new(|| post(&s, "/v1/events", "")),
            400,
            "malformed_json",
        ),
        (
            "not an object",
            Box::new(|| post(&s, "/v1/events", "[1,2]")),
            400,
            "malformed_json",
        ),
        (
            "unknown field",
            Box::new(|| post(&s, "/v1/events", &good.replacen('{', "{\"extra\":1,", 1))),
            400,
            "malformed_json",
        ),
        (
            "huge body (announced)",
            Box::new(|| {
                raw(&s, format!("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", 17 << 20).as_bytes())
            }),
            413,
            "too_large",
        ),
        (
            "huge body (chunked, sent)",
            Box::new(|| raw(&s, &chunked(&"x".repeat(20 << 20)))),
            413,
            "too_large",
        ),
        (
            "deep nesting",
            Box::new(|| post(&s, "/v1/events", &deep)),
            400,
            "malformed_json",
        ),
        (
            "huge array of units (over the event size limit)",
            Box::new(|| post(&s, "/v1/events", &huge_array)),
            413,
            "too_large",
        ),
        (
            "too many units in one event",
            Box::new(|| post(&s, "/v1/events", &too_many_units)),
            422,
            "shape",
        ),
        (
            "batch of 1001",
            Box::new(|| {
                post(
                    &s,
                    "/v1/events:batch",
                    &format!("[{}]", vec![good.as_str(); 1001].join(",")),
                )
            }),
            413,
            "batch_too_large",
        ),
        (
            "invalid UTF-8",
            Box::new(|| post_raw(&s, "/v1/events", "application/json", &invalid_utf8, "")),
            400,
            "malformed_json",
        ),
        (
            "non-canonical number (1.0)",
            Box::new(|| post(&s, "/v1/events", &non_canonical_number)),
            400,
            "malformed_json",
        ),
        (
            "exponent number",
            Box::new(|| post(&s, "/v1/events", &exponent)),
            400,
            "malformed_json",
        ),
        (
            "leading zero",
            Box::new(|| post(&s, "/v1/events", &leading_zero)),
            400,
            "malformed_json",
        ),
        (
            "replay of an accepted event",
            Box::new(|| post(&s, "/v1/events", &accepted)),
            200,
            "duplicate",
        ),
        (
            "replay in another JSON spelling",
            Box::new(|| post(&s, "/v1/events", &escaped)),
            200,
            "duplicate",
        ),
        (
            "duplicate key",
            Box::new(|| post(&s, "/v1/events", &duplicate_key)),
            400,
            "malformed_json",
        ),
        (
            "signature by the wrong key",
            Box::new(|| post(&s, "/v1/events", &wrong_key)),
            422,
            "missing_signature",
        ),
        (
            "signature altered",
            Box::new(|| post(&s, "/v1/events", &good.replace("AWB 9", "AWB 0"))),
            422,
            "signature",
        ),
        (
            "signed for another ledger",
            Box::new(|| post(&s, "/v1/events", &other_ledger)),
            422,
            "signature",
        ),
        (
            "signed with a revoked key",
            Box::new(|| post(&s, "/v1/events", &revoked)),
            422,
            "key_not_valid",
        ),
        (
            "fork of a chain",
            Box::new(|| post(&s, "/v1/events", &fork)),
            409,
            "transfer_pending",
        ),
        (
            "accept by the wrong party",
            Box::new(|| post(&s, "/v1/events", &wrong_accept)),
            422,
            "wrong_party",
        ),
        (
            "transfer of a retired unit",
            Box::new(|| post(&s, "/v1/events", &retired)),
            422,
            "retired",
        ),
        (
            "enrollment sponsored by itself",
            Box::new(|| post(&s, "/v1/events", &unsponsored)),
            422,
            "unknown_party",
        ),
        (
            "enrollment sponsored by an end user",
            Box::new(|| post(&s, "/v1/events", &by_user)),
            422,
            "sponsor_not_allowed",
        ),
        (
            "list import without a signature",
            Box::new(|| post(&s, "/v1/lists", list)),
            401,
            "operator_signature",
        ),
        (
            "replayed operator request",
            Box::new(|| operator_post(&s, "/v1/lists", list, &op, created, "nonce-genuine-0001")),
            401,
            "operator_signature",
        ),
        (
            "list import signed by a non-operator",
            Box::new(|| {
                operator_post(
                    &s,
                    "/v1/lists",
                    list,
                    &maker,
                    now().unix(),
                    "nonce-other-0002",
                )
            }),
            401,
            "operator_signature",
        ),
        (
            "bad unit",
            Box::new(|| get(&s, "/v1/units/not-a-urn")),
            400,
            "bad_unit",
        ),
        (
            "bad hash",
            Box::new(|| get(&s, "/v1/events/xyz")),
            400,
            "bad_hash",
        ),
        (
            "bad query",
            Box::new(|| get(&s, "/v1/proofs/inclusion")),
            400,
            "bad_query",
        ),
        (
            "index out of range",
            Box::new(|| get(&s, "/v1/proofs/inclusion?index=99999")),
            400,
            "out_of_range",
        ),
        (
            "sizes out of order",
            Box::new(|| get(&s, "/v1/proofs/consistency?from=5&to=2")),
            400,
            "out_of_range",
        ),
        (
            "entries out of range",
            Box::new(|| get(&s, "/v1/log/entries?start=5&end=2")),
            400,
            "out_of_range",
        ),
        (
            "chain of a bad unit",
            Box::new(|| get(&s, "/v1/units/not-a-urn/chain")),
            400,
            "bad_unit",
        ),
        (
            "bundle of a bad unit",
            Box::new(|| get(&s, "/v1/units/not-a-urn/bundle")),
            400,
            "bad_unit",
        ),
        (
            "resolution of a bad unit",
            Box::new(|| get(&s, "/v1/units/not-a-urn/resolution")),
            400,
            "bad_unit",
        ),
        (
            "resolutions with a bad filter",
            Box::new(|| get(&s, "/v1/resolutions?verdict=nonsense")),
            400,
            "bad_query",
        ),
        (
            "holdings after a bad unit",
            Box::new(|| {
                get(
                    &s,
                    &format!("/v1/parties/{}/units?after=bad", maker.party_id()),
                )
            }),
            400,
            "bad_unit",
        ),
        (
            "checkpoint of a bad size",
            Box::new(|| get(&s, "/v1/checkpoint?size=abc")),
            400,
            "bad_query",
        ),
        (
            "batch: malformed JSON",
            Box::new(|| post(&s, "/v1/events:batch", "[{")),
            400,
            "malformed_json",
        ),
        (
            "screen: malformed JSON",
            Box::new(|| post(&s, "/v1/screen", "{\"name\":")),
            400,
            "malformed_json",
        ),
        (
            "unknown endpoint",
            Box::new(|| get(&s, "/v2/anything")),
            404,
            "not_found",
        ),
        (
            "wrong method",
            Box::new(|| {
                raw(
                    &s,
                    b"DELETE /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            }),
            405,
            "method_not_allowed",
        ),
    ];
    let mut failures = Vec::new();
    for (what, send, status, rule) in &cases {
        let before = state(&s);
        let (got, problem) = send();
        let after = state(&s);
        let as_expected = if *rule == "duplicate" {
            problem["duplicate"] == true && problem["hash"] == first["hash"]
        } else {
            problem["rule"] == *rule
        };
        if got != *status || !as_expected {
            failures.push(format!(
                "{what}: expected {status} {rule}, got {got} {problem}"
            ));
        }
        if before != after {
            failures.push(format!("{what}: the ledger changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
