//! `custody serve` over real HTTP on loopback, against sled in a temporary directory: every
//! endpoint, refusals as RFC 9457 problems (never a 500 for a client's mistake), racing
//! transfers, batches, and a restart in the middle.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::*;
use custody::core::checkpoint::{SignedCheckpoint, VerifierKey};
use custody::core::event::{Body, Transfer, UnitLink};
use custody::core::merkle::entry_leaf_hash;
use custody::core::proof::{ConsistencyProof, InclusionProof};
use custody::core::receipt::SignedReceipt;
use custody::core::unit::UnitId;
use custody::core::values::Timestamp;
use custody::core::verify;
use custody::keys::KeyPair;
use custody::ledger::{Clock, Ledger};
use custody::store::{SledStore, Store};
use serde_json::Value;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Opens the ledger in `dir` and serves it on 127.0.0.1:0.
    fn start(dir: &std::path::Path) -> Self {
        let store = SledStore::open(dir).expect("open");
        let clock = Arc::new(AtomicI64::new(T0 + 3600));
        let clk: Clock = Arc::new(move || Timestamp::clamped(clock.load(Ordering::SeqCst)));
        let ledger = Ledger::open(store, Arc::clone(&clk), log_key().signing).expect("ledger");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(l.local_addr().expect("addr")).expect("send");
                custody::server::serve(l, ledger, clk, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
            });
        });
        let addr = rx.recv().expect("server address");
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful stop: drains requests, closes the ledger.
    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

/// Status and JSON (or text) body of any response, error statuses included.
fn call(r: Result<ureq::Response, ureq::Error>) -> (u16, String, String) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let ct = resp.content_type().to_owned();
    (status, ct, resp.into_string().expect("body"))
}

fn get(s: &Server, path: &str) -> (u16, String, String) {
    call(ureq::get(&s.url(path)).call())
}

fn post(s: &Server, path: &str, body: &str) -> (u16, String, String) {
    call(
        ureq::post(&s.url(path))
            .set("Content-Type", "application/json")
            .send_string(body),
    )
}

/// Sends only the head of a POST announcing `len` body bytes and reads the answer.
fn raw_post(s: &Server, path: &str, len: usize) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .expect("status");
    let ct = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    // The body may be chunked; the JSON object is between the outer braces.
    let json_body = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| body[a..=b].to_owned()))
        .unwrap_or_default();
    (status, ct, json_body)
}

fn json(b: &str) -> Value {
    serde_json::from_str(b).expect("JSON body")
}

/// A ledger with the fixture's parties and three registered units, closed again.
fn seeded(dir: &std::path::Path) -> Vec<UnitId> {
    let w = World::new(SledStore::open(dir).expect("open"));
    w.register(3)
}

fn keys() -> (KeyPair, KeyPair, KeyPair) {
    (key("maker"), key("dist"), key("sub"))
}

/// A signed transfer of `unit` from the maker (its holder), as JSON.
fn transfer(s: &Server, unit: &UnitId, to: &KeyPair, shipment: &str, signer: &KeyPair) -> String {
    let (code, _, b) = get(s, &format!("/v1/units/{unit}"));
    assert_eq!(code, 200, "{b}");
    let rec = json(&b);
    let body = Body::Transfer(Transfer {
        at: Timestamp::clamped(T0 + 3000),
        from: key("maker").party_id(),
        to: to.party_id(),
        units: vec![UnitLink {
            unit: unit.clone(),
            prev: serde_json::from_value(rec["head"].clone()).expect("head"),
        }],
        shipment: text(shipment),
        destination_country: cn(),
    });
    let env = verify::sign(&ledger_name(), body, &[&signer.signing]).expect("sign");
    serde_json::to_string(&env).expect("json")
}

#[test]
fn events_reads_proofs_and_metrics_over_http() {
    let dir = tempfile::tempdir().expect("dir");
    let units = seeded(dir.path());
    let s = Server::start(dir.path());
    let (maker, dist, _) = keys();
    assert_eq!(get(&s, "/healthz").0, 200);
    assert_eq!(get(&s, "/readyz").0, 200);

    let ev = transfer(&s, &units[0], &dist, "AWB 1", &maker);
    let (code, _, b) = post(&s, "/v1/events", &ev);
    assert_eq!(code, 201, "{b}");
    let first = json(&b);
    let receipt: SignedReceipt = serde_json::from_value(first["signed"].clone()).expect("receipt");
    receipt
        .verify(&ledger_name(), &log_key().public)
        .expect("signed by the log key");
    // Idempotent: the same receipt again, marked duplicate.
    let (code, _, b) = post(&s, "/v1/events", &ev);
    assert_eq!(code, 200);
    let again = json(&b);
    assert_eq!(again["signed"], first["signed"]);
    assert_eq!(again["duplicate"], true);

    let (_, _, b) = get(&s, &format!("/v1/units/{}", units[0]));
    assert_eq!(json(&b)["pending"]["to"], dist.party_id().to_string());
    let (_, _, b) = get(&s, &format!("/v1/units/{}/chain", units[0]));
    assert_eq!(json(&b)["events"].as_array().map(Vec::len), Some(2));
    // The evidence bundle from the live server verifies offline with the log's key (the
    // server signs a covering checkpoint on demand: its checkpoints are once a second).
    let (code, _, b) = get(&s, &format!("/v1/units/{}/bundle", units[0]));
    assert_eq!(code, 200, "{b}");
    let bundle: custody::core::bundle::Bundle = serde_json::from_str(&b).expect("bundle");
    let vkey = custody::core::checkpoint::VerifierKey {
        name: ledger_name(),
        key: log_key().public,
    };
    let v = custody::core::bundle::verify(&bundle, &vkey).expect("verifies offline");
    assert_eq!(v.chain.len(), 2);
    assert_eq!(v.state.pending.map(|p| p.to), Some(dist.party_id()));
    let (_, _, b) = get(&s, "/v1/parties");
    assert_eq!(json(&b).as_array().map(Vec::len), Some(6));
    let (code, _, b) = get(&s, "/v1/parties/dist");
    assert_eq!(
        (code, json(&b)["id"].clone()),
        (200, Value::String(dist.party_id().to_string()))
    );
    let (_, _, b) = get(&s, "/v1/parties/maker/units");
    assert_eq!(json(&b).as_array().map(Vec::len), Some(3));

    // The log: checkpoint, inclusion of the transfer, consistency, entries.
    let (code, ct, note) = get(&s, "/v1/checkpoint");
    assert_eq!((code, ct.as_str()), (200, "text/plain"));
    let cp = SignedCheckpoint::parse(note.as_bytes()).expect("note");
    cp.verify(&VerifierKey {
        name: ledger_name(),
        key: log_key().public,
    })
    .expect("checkpoint verifies");
    let hash = first["hash"].as_str().expect("hash");
    let (code, _, b) = get(&s, &format!("/v1/proofs/inclusion?hash={hash}"));
    assert_eq!(code, 200, "{b}");
    let p: InclusionProof = serde_json::from_value(json(&b)["proof"].clone()).expect("proof");
    p.verify_against(&cp.checkpoint).expect("inclusion");
    let (_, _, b) = get(
        &s,
        &format!("/v1/proofs/consistency?from=2&to={}", cp.checkpoint.size),
    );
    let c: ConsistencyProof = serde_json::from_str(&b).expect("proof");
    let (_, _, old) = get(&s, "/v1/checkpoint?size=2");
    let old = SignedCheckpoint::parse(old.as_bytes()).expect("old");
    c.verify_between(&old.checkpoint, &cp.checkpoint)
        .expect("consistent");
    let (_, _, b) = get(&s, &format!("/v1/log/entries?start={}", p.index));
    let e = &json(&b)[0];
    let at: Timestamp = serde_json::from_value(e["integrated_at"].clone()).expect("time");
    assert_eq!(
        entry_leaf_hash(at, e["event"].as_str().expect("bytes").as_bytes()),
        p.leaf_hash
    );

    let (_, _, m) = get(&s, "/metrics");
    assert!(m.contains("custody_events_appended_total 1"), "{m}");
    assert!(m.contains("custody_events_duplicate_total 1"), "{m}");
    s.stop();
}

#[test]
fn bad_requests_are_problems_with_their_rule_and_change_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let units = seeded(dir.path());
    let s = Server::start(dir.path());
    let (maker, dist, sub) = keys();
    let good = transfer(&s, &units[0], &dist, "AWB 1", &maker);
    let n0 = json(&get(&s, "/v1/log/entries?start=0").2)
        .as_array()
        .map_or(0, Vec::len);
    let expect = |r: (u16, String, String), status: u16, rule: &str| {
        assert_eq!(r.0, status, "{}", r.2);
        assert_eq!(r.1, "application/problem+json", "{}", r.2);
        let p = json(&r.2);
        assert_eq!(p["rule"], rule, "{p}");
        assert_eq!(p["type"], format!("urn:custody:problem:{rule}"));
        p
    };
    expect(
        call(
            ureq::post(&s.url("/v1/events"))
                .set("Content-Type", "text/plain")
                .send_string(&good),
        ),
        415,
        "unsupported_media_type",
    );
    expect(
        post(&s, "/v1/events", &good[..good.len() / 2]),
        400,
        "malformed_json",
    );
    expect(
        post(&s, "/v1/events", &good.replacen("{", "{\"extra\":1,", 1)),
        400,
        "malformed_json",
    );
    expect(post(&s, "/v1/events", "[1,2]"), 400, "malformed_json");
    // Signed by the wrong key for the claimed signer's event: not the holder.
    expect(
        post(&s, "/v1/events", &transfer(&s, &units[1], &dist, "x", &sub)),
        422,
        "missing_signature",
    );
    // Altered after signing.
    expect(
        post(&s, "/v1/events", &good.replace("AWB 1", "AWB 2")),
        422,
        "signature",
    );
    // Another ledger's event.
    let other = custody::core::ids::LedgerName::parse("other.example/ledger").expect("name");
    let body: custody::core::event::Envelope = serde_json::from_str(&good).expect("env");
    let foreign = verify::sign(&other, body.body, &[&maker.signing]).expect("sign");
    expect(
        post(
            &s,
            "/v1/events",
            &serde_json::to_string(&foreign).expect("json"),
        ),
        422,
        "signature",
    );
    // Too large: announced by Content-Length, refused before the body is read.
    expect(raw_post(&s, "/v1/events", 17 << 20), 413, "too_large");
    expect(
        call(ureq::delete(&s.url("/v1/events")).call()),
        405,
        "method_not_allowed",
    );
    let many = format!("[{}]", vec!["{}"; 1001].join(","));
    expect(post(&s, "/v1/events:batch", &many), 413, "batch_too_large");
    // Reads.
    expect(get(&s, "/v1/units/not-a-urn"), 400, "bad_unit");
    let nobody = UnitId::custody(&maker.party_id(), "SEQ", "NOPE").expect("unit");
    expect(get(&s, &format!("/v1/units/{nobody}")), 404, "not_found");
    expect(get(&s, "/v1/parties/nobody"), 404, "not_found");
    expect(
        get(&s, "/v1/proofs/inclusion?index=999"),
        400,
        "out_of_range",
    );
    expect(get(&s, "/v1/proofs/inclusion"), 400, "bad_query");
    expect(
        get(&s, "/v1/proofs/consistency?from=5&to=2"),
        400,
        "out_of_range",
    );
    expect(get(&s, "/v1/checkpoint?size=999"), 404, "not_found");
    expect(get(&s, "/nothing/here"), 404, "not_found");
    // Nothing was written by any of it.
    let n1 = json(&get(&s, "/v1/log/entries?start=0").2)
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(n0, n1);
    let (_, _, m) = get(&s, "/metrics");
    assert!(
        m.contains("custody_events_rejected_total{rule=\"signature\"} 2"),
        "{m}"
    );
    s.stop();
}

#[test]
fn racing_transfers_of_one_unit_give_one_201_and_conflicts() {
    let dir = tempfile::tempdir().expect("dir");
    let units = seeded(dir.path());
    let s = Server::start(dir.path());
    let (maker, dist, sub) = keys();
    let bodies: Vec<String> = (0..16)
        .map(|i| {
            transfer(
                &s,
                &units[0],
                if i % 2 == 0 { &dist } else { &sub },
                &format!("race {i}"),
                &maker,
            )
        })
        .collect();
    let url = s.url("/v1/events");
    let start = Arc::new(std::sync::Barrier::new(bodies.len()));
    let results: Vec<(u16, String, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = bodies
            .iter()
            .map(|b| {
                let (url, start) = (url.clone(), Arc::clone(&start));
                sc.spawn(move || {
                    start.wait();
                    call(
                        ureq::post(&url)
                            .set("Content-Type", "application/json")
                            .send_string(b),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    let created = results.iter().filter(|r| r.0 == 201).count();
    assert_eq!(created, 1, "{results:?}");
    for r in results.iter().filter(|r| r.0 != 201) {
        assert_eq!(r.0, 409, "{}", r.2);
        let p = json(&r.2);
        assert!(p["conflicts_with"].is_string(), "{p}");
    }
    let chain = json(&get(&s, &format!("/v1/units/{}/chain", units[0])).2);
    assert_eq!(
        chain["events"].as_array().map(Vec::len),
        Some(2),
        "the chain stays linear"
    );
    s.stop();
}

#[test]
fn batches_and_a_restart_in_the_middle() {
    let dir = tempfile::tempdir().expect("dir");
    let units = seeded(dir.path());
    let (maker, dist, sub) = keys();
    let s = Server::start(dir.path());
    let batch = format!(
        "[{},{},{}]",
        transfer(&s, &units[0], &dist, "B0", &maker),
        transfer(&s, &units[1], &dist, "B1", &sub),
        transfer(&s, &units[2], &dist, "B2", &maker)
    );
    let (code, _, b) = post(&s, "/v1/events:batch", &batch);
    assert_eq!(code, 200, "{b}");
    let items = json(&b);
    let statuses: Vec<u64> = items
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, vec![201, 422, 201]);
    assert_eq!(items[1]["problem"]["rule"], "missing_signature");
    // The two accepted events' receipts are one batch of two (FORMAT.md §10): one
    // signature, a path each, and each verifies on its own.
    let batch_receipts: Vec<SignedReceipt> = [&items[0], &items[2]]
        .iter()
        .map(|i| serde_json::from_value(i["receipt"]["signed"].clone()).expect("receipt"))
        .collect();
    for (k, r) in batch_receipts.iter().enumerate() {
        r.verify(&ledger_name(), &log_key().public)
            .expect("a batched receipt verifies alone");
        assert_eq!(
            (r.batch.size, r.batch.index, r.batch.path.len()),
            (2, k as u64, 1)
        );
    }
    assert_eq!(batch_receipts[0].signature, batch_receipts[1].signature);
    let size_before = SignedCheckpoint::parse(get(&s, "/v1/checkpoint").2.as_bytes())
        .expect("cp")
        .checkpoint
        .size;
    s.stop();

    // The stopped server closed the ledger: everything is on disk and checkpointed.
    let s = Server::start(dir.path());
    let u0 = json(&get(&s, &format!("/v1/units/{}", units[0])).2);
    assert_eq!(u0["pending"]["to"], dist.party_id().to_string());
    let cp = SignedCheckpoint::parse(get(&s, "/v1/checkpoint").2.as_bytes()).expect("cp");
    assert!(cp.checkpoint.size >= size_before);
    let store_len = json(&get(&s, "/v1/log/entries?start=0").2)
        .as_array()
        .map_or(0, Vec::len) as u64;
    assert_eq!(
        cp.checkpoint.size, store_len,
        "the checkpoint covers every event"
    );
    // The same batch again: the accepted ones are duplicates with their receipts.
    let (_, _, b) = post(&s, "/v1/events:batch", &batch);
    let again = json(&b);
    assert_eq!(again[0]["status"], 200);
    assert_eq!(again[0]["receipt"]["signed"], items[0]["receipt"]["signed"]);
    s.stop();
    let store = SledStore::open(dir.path()).expect("open");
    let rep = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit");
    assert!(rep.ok, "{:?}", rep.failure);
    assert_eq!(store.len().expect("len"), store_len);
}

/// Compiles the schema at `pointer` (e.g. `#/components/schemas/receipt`) of `doc`.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
    if let Some(r) = schema.get("$ref") {
        root["$ref"] = r.clone();
    } else {
        root["allOf"] = Value::Array(vec![schema.clone()]);
    }
    jsonschema::validator_for(&root).expect("schema compiles")
}

#[test]
fn the_openapi_document_matches_the_schemas_and_the_server() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("openapi.json")).expect("openapi"))
            .expect("json");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("custody.schema.json")).expect("schema"),
    )
    .expect("json");
    // Components are exactly the JSON Schemas of custody.schema.json.
    let defs = serde_json::to_string(&schema["$defs"])
        .expect("json")
        .replace("\"#/$defs/", "\"#/components/schemas/");
    assert_eq!(
        doc["components"]["schemas"],
        serde_json::from_str::<Value>(&defs).expect("json")
    );
    assert_eq!(doc["openapi"], "3.1.0");
    // The validator is not vacuous.
    let receipt = validator(
        &doc,
        &serde_json::json!({"$ref": "#/components/schemas/receipt"}),
    );
    assert!(!receipt.is_valid(&serde_json::json!({})));

    let dir = tempfile::tempdir().expect("dir");
    let units = seeded(dir.path());
    let s = Server::start(dir.path());
    let (maker, dist, sub) = keys();
    let ev = transfer(&s, &units[0], &dist, "OA", &maker);
    let hash = {
        let (code, _, b) = post(&s, "/v1/events", &ev);
        assert_eq!(code, 201);
        json(&b)["hash"].as_str().expect("hash").to_owned()
    };
    let u = units[1].to_string();
    // (documented path, method, concrete request, body) for every operation and several errors.
    let cases: Vec<(&str, &str, String, Option<String>)> = vec![
        ("/v1/events", "post", "/v1/events".into(), Some(ev.clone())),
        (
            "/v1/events",
            "post",
            "/v1/events".into(),
            Some(transfer(&s, &units[1], &dist, "y", &maker)),
        ),
        (
            "/v1/events",
            "post",
            "/v1/events".into(),
            Some(transfer(&s, &units[2], &dist, "z", &sub)),
        ),
        ("/v1/events", "post", "/v1/events".into(), Some("{".into())),
        (
            "/v1/events",
            "post",
            "/v1/events".into(),
            Some(transfer(&s, &units[1], &sub, "again", &maker)),
        ),
        (
            "/v1/events:batch",
            "post",
            "/v1/events:batch".into(),
            Some(format!("[{ev}, {{}}]")),
        ),
        (
            "/v1/events:batch",
            "post",
            "/v1/events:batch".into(),
            Some("{}".into()),
        ),
        ("/v1/units/{unit}", "get", format!("/v1/units/{u}"), None),
        ("/v1/units/{unit}", "get", "/v1/units/zzz".into(), None),
        (
            "/v1/units/{unit}/chain",
            "get",
            format!("/v1/units/{u}/chain"),
            None,
        ),
        ("/v1/parties", "get", "/v1/parties".into(), None),
        (
            "/v1/parties/{party}",
            "get",
            "/v1/parties/maker".into(),
            None,
        ),
        (
            "/v1/parties/{party}",
            "get",
            "/v1/parties/nobody".into(),
            None,
        ),
        (
            "/v1/parties/{party}/units",
            "get",
            "/v1/parties/maker/units?limit=2".into(),
            None,
        ),
        ("/v1/checkpoint", "get", "/v1/checkpoint".into(), None),
        (
            "/v1/checkpoint",
            "get",
            "/v1/checkpoint?size=99999".into(),
            None,
        ),
        (
            "/v1/proofs/inclusion",
            "get",
            format!("/v1/proofs/inclusion?hash={hash}"),
            None,
        ),
        (
            "/v1/proofs/inclusion",
            "get",
            "/v1/proofs/inclusion?index=0&size=3".into(),
            None,
        ),
        (
            "/v1/proofs/inclusion",
            "get",
            "/v1/proofs/inclusion?index=99999".into(),
            None,
        ),
        (
            "/v1/proofs/consistency",
            "get",
            "/v1/proofs/consistency?from=2&to=5".into(),
            None,
        ),
        (
            "/v1/proofs/consistency",
            "get",
            "/v1/proofs/consistency?from=5&to=2".into(),
            None,
        ),
        (
            "/v1/log/entries",
            "get",
            "/v1/log/entries?start=0&end=3".into(),
            None,
        ),
        ("/v1/openapi.json", "get", "/v1/openapi.json".into(), None),
        ("/v1/ledger", "get", "/v1/ledger".into(), None),
        (
            "/v1/units/{unit}/resolution",
            "get",
            format!("/v1/units/{u}/resolution"),
            None,
        ),
        (
            "/v1/units/{unit}/bundle",
            "get",
            format!("/v1/units/{u}/bundle"),
            None,
        ),
        (
            "/v1/units/{unit}/bundle",
            "get",
            "/v1/units/zzz/bundle".into(),
            None,
        ),
        (
            "/v1/units/{unit}/resolution",
            "get",
            "/v1/units/zzz/resolution".into(),
            None,
        ),
        (
            "/v1/resolutions",
            "get",
            "/v1/resolutions?verdict=clear".into(),
            None,
        ),
        ("/v1/resolutions", "get", "/v1/resolutions".into(), None),
        (
            "/v1/resolutions",
            "get",
            "/v1/resolutions?verdict=sunny".into(),
            None,
        ),
        (
            "/v1/events/{hash}",
            "get",
            format!("/v1/events/{hash}"),
            None,
        ),
        (
            "/v1/events/{hash}",
            "get",
            format!("/v1/events/{}", "0".repeat(64)),
            None,
        ),
        ("/v1/events/{hash}", "get", "/v1/events/xyz".into(), None),
        (
            "/v1/screen",
            "post",
            "/v1/screen".into(),
            Some(r#"{"name": "Xinjiang PSB"}"#.into()),
        ),
        (
            "/v1/screen",
            "post",
            "/v1/screen".into(),
            Some(r#"{"party": "dist"}"#.into()),
        ),
        (
            "/v1/screen",
            "post",
            "/v1/screen".into(),
            Some(r#"{"party": "nobody"}"#.into()),
        ),
        (
            "/v1/lists",
            "post",
            "/v1/lists".into(),
            Some(r#"{"source": "csl", "files": []}"#.into()),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (path, method, url, body) in &cases {
        let (status, ct, text) = match body {
            Some(b) => post(&s, url, b),
            None => get(&s, url),
        };
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {url} answered {status}, which {path} does not document: {text}"
        );
        let media = documented["content"][ct.as_str()].clone();
        assert!(
            media.is_object(),
            "{method} {url}: content type {ct} is not documented for {status}"
        );
        let instance: Value = if ct == "text/plain" {
            Value::String(text.clone())
        } else {
            json(&text)
        };
        let v = validator(&doc, &media["schema"]);
        let errors: Vec<String> = v
            .iter_errors(&instance)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {url} ({status}): {errors:?}\n{text}"
        );
        seen.insert((path.to_string(), method.to_string()));
    }
    // Every documented operation was exercised.
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("ops").keys() {
            assert!(
                seen.contains(&(path.clone(), method.clone())),
                "{method} {path} is documented but untested"
            );
        }
    }
    s.stop();
}

fn signed_post(
    s: &Server,
    path: &str,
    body: &str,
    key: &KeyPair,
    created: i64,
    nonce: &str,
) -> (u16, String, String) {
    signed_post_to(s, path, path, body, key, created, nonce)
}

/// Signs for `signed_path` but sends to `path`.
fn signed_post_to(
    s: &Server,
    signed_path: &str,
    path: &str,
    body: &str,
    key: &KeyPair,
    created: i64,
    nonce: &str,
) -> (u16, String, String) {
    let auth = custody::core::request::authorization(
        &ledger_name(),
        &key.signing,
        &custody::core::request::RequestParts {
            method: "POST",
            path_and_query: signed_path,
            created,
            nonce,
            body: body.as_bytes(),
        },
    );
    call(
        ureq::post(&s.url(path))
            .set("Content-Type", "application/json")
            .set("Authorization", &auth)
            .send_string(body),
    )
}

#[test]
fn operator_signed_list_import_and_screening_over_http() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("dir");
    seeded(dir.path());
    let s = Server::start(dir.path());
    let now = T0 + 3600;
    let b64 = |p: &str| {
        base64::engine::general_purpose::STANDARD.encode(
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/data/sanctions/ofac-sdn-2021")
                    .join(p),
            )
            .expect("read"),
        )
    };
    let body = serde_json::json!({
        "source": "ofac-sdn",
        "files": [{"name": "sdn.csv", "content_base64": b64("sdn.csv")}, {"name": "alt.csv", "content_base64": b64("alt.csv")}]
    })
    .to_string();
    let problem = |r: (u16, String, String), status: u16, rule: &str| {
        assert_eq!(
            (r.0, r.1.as_str()),
            (status, "application/problem+json"),
            "{}",
            r.2
        );
        assert_eq!(json(&r.2)["rule"], rule, "{}", r.2);
    };
    // Unsigned, signed by a non-operator, stale, or tampered: refused.
    problem(post(&s, "/v1/lists", &body), 401, "operator_signature");
    problem(
        signed_post(
            &s,
            "/v1/lists",
            &body,
            &key("maker"),
            now,
            "nonce-maker-000001",
        ),
        401,
        "operator_signature",
    );
    problem(
        signed_post(
            &s,
            "/v1/lists",
            &body,
            &key("op"),
            now - 4000,
            "nonce-stale-000001",
        ),
        401,
        "operator_signature",
    );
    problem(
        signed_post_to(
            &s,
            "/v1/lists",
            "/v1/lists?x=1",
            &body,
            &key("op"),
            now,
            "nonce-query-000001",
        ),
        401,
        "operator_signature",
    );
    problem(
        signed_post(
            &s,
            "/v1/lists",
            &body,
            &key("op"),
            now + 4000,
            "nonce-future-00001",
        ),
        401,
        "operator_signature",
    );
    // Screening before any list is imported finds nothing.
    let (code, _, b) = post(
        &s,
        "/v1/screen",
        r#"{"name": "Xinjiang PSB", "country": "CN"}"#,
    );
    assert_eq!(code, 200, "{b}");
    assert_eq!(json(&b)["candidates"], Value::Array(vec![]));
    // The operator's signed request imports; its replay is refused.
    let (code, _, b) = signed_post(
        &s,
        "/v1/lists",
        &body,
        &key("op"),
        now,
        "nonce-good-0000001",
    );
    assert_eq!(code, 201, "{b}");
    let o = json(&b);
    assert_eq!(
        (o["name"].as_str(), o["version"].as_u64()),
        (Some("ofac-sdn"), Some(1))
    );
    problem(
        signed_post(
            &s,
            "/v1/lists",
            &body,
            &key("op"),
            now,
            "nonce-good-0000001",
        ),
        401,
        "operator_signature",
    );
    // Now screening sees the list, by name and by ledger party.
    let (_, _, b) = post(
        &s,
        "/v1/screen",
        r#"{"name": "新疆公安厅", "country": "CN"}"#,
    );
    assert_eq!(json(&b)["candidates"][0]["entry_id"], "29159", "{b}");
    // Resolutions are signed by the log key.
    let (_, _, b) = get(&s, "/v1/resolutions");
    let r = json(&b);
    let signed: custody::core::report::SignedReport =
        serde_json::from_value(r["signed"].clone()).expect("signed");
    assert!(signed.verify(&log_key().public));
    let (code, _, b) = post(&s, "/v1/screen", r#"{"party": "dist"}"#);
    assert_eq!(
        (code, json(&b)["status"].clone()),
        (200, Value::String("clear".into())),
        "{b}"
    );
    problem(
        post(&s, "/v1/screen", r#"{"name": "x", "party": "dist"}"#),
        400,
        "bad_query",
    );
    problem(
        post(&s, "/v1/screen", r#"{"name": "x", "date": "2021-02-30"}"#),
        400,
        "bad_date",
    );
    problem(
        post(&s, "/v1/screen", r#"{"nom": "x"}"#),
        400,
        "malformed_json",
    );
    s.stop();
}
