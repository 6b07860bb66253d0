//! The `custody` binary end to end on sled in a temporary directory: every role's command,
//! JSON output checked against `schemas/custody.schema.json`, refusals that name the rule,
//! and `custody verify` catching tampering done directly in the sled files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "cli/mirror.rs"]
mod mirror;

struct Cli {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    keys: PathBuf,
}

fn schema_for(def: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/custody.schema.json"),
    )
    .expect("schema file");
    let mut doc: Value = serde_json::from_str(&text).expect("schema is JSON");
    doc["$ref"] = Value::String(format!("#/$defs/{def}"));
    jsonschema::validator_for(&doc).expect("schema compiles")
}

fn assert_schema(def: &str, v: &Value) {
    let validator = schema_for(def);
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "output does not match $defs/{def}: {errors:?}\n{v:#}"
    );
}

impl Cli {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example");
        Self {
            _tmp: tmp,
            data,
            keys,
        }
    }

    fn run(&self, key: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_custody"));
        c.arg("--data").arg(&self.data).arg("--format").arg("json");
        if let Some(k) = key {
            c.arg("--key").arg(self.keys.join(format!("{k}.pem")));
        }
        c.args(args)
            .env_remove("CUSTODY_KEY")
            .env_remove("CUSTODY_DATA");
        c.output().expect("binary runs")
    }

    fn ok(&self, key: Option<&str>, args: &[&str]) -> Value {
        let out = self.run(key, args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    fn refused(&self, key: Option<&str>, args: &[&str]) -> String {
        let out = self.run(key, args);
        assert!(!out.status.success(), "{args:?} should have been refused");
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error output");
        assert_schema("error_output", &v);
        v["error"].as_str().expect("message").to_owned()
    }

    fn key(&self, k: &str) -> String {
        self.keys.join(format!("{k}.pem")).display().to_string()
    }

    /// A ledger with a maker, two distributors, units moved through them.
    fn populated() -> (Self, String) {
        Self::populate(Self::new())
    }

    /// [`Cli::populated`] in an existing (empty or keyed) data directory.
    fn populate(cli: Self) -> (Self, String) {
        let r = cli.ok(
            None,
            &[
                "init",
                "--name",
                "cli.example/ledger",
                "--operator-key",
                &cli.key("operator"),
                "--handle",
                "custody-operator",
                "--legal-name",
                "Operator",
                "--country",
                "US",
            ],
        );
        assert_schema("accepted_output", &r);
        let op = cli.key("operator");
        cli.ok(
            Some("helix-genomics"),
            &[
                "party",
                "enroll",
                "--sponsor-key",
                &op,
                "--handle",
                "helix-genomics",
                "--legal-name",
                "Helix Genomics Inc.",
                "--country",
                "US",
                "--region",
                "US-CA",
                "--role",
                "manufacturer",
                "--gs1-prefix",
                "0614141",
            ],
        );
        let maker = cli.key("helix-genomics");
        cli.ok(
            Some("pearl-river-trading"),
            &[
                "party",
                "enroll",
                "--sponsor-key",
                &maker,
                "--handle",
                "pearl-river-trading",
                "--legal-name",
                "Pearl River Trading Co., Ltd.",
                "--country",
                "CN",
                "--role",
                "distributor",
                "--alias",
                "Zhujiang",
                "--owner",
                "Li Wei:60",
                "--parent",
                "helix-genomics",
            ],
        );
        cli.ok(
            Some("tianshan-scientific"),
            &[
                "party",
                "enroll",
                "--sponsor-key",
                &op,
                "--handle",
                "tianshan-scientific",
                "--legal-name",
                "Tianshan Scientific",
                "--country",
                "CN",
                "--region",
                "CN-XJ",
                "--role",
                "distributor",
            ],
        );
        cli.ok(
            Some("helix-genomics"),
            &[
                "register",
                "--product",
                "SEQ-3500",
                "--serial",
                "SN0001",
                "--serial",
                "SN0002",
                "--sgtin",
                "urn:epc:id:sgtin:0614141.812345.K1",
                "--lot",
                "L7",
            ],
        );
        let t = cli.ok(
            Some("helix-genomics"),
            &[
                "transfer",
                "--to",
                "pearl-river-trading",
                "--unit",
                "helix-genomics/SEQ-3500/SN0001",
                "--unit",
                "urn:epc:id:sgtin:0614141.812345.K1",
                "--shipment",
                "AWB 1",
                "--destination",
                "CN",
            ],
        );
        let th = t["receipt"]["hash"].as_str().expect("hash").to_owned();
        cli.ok(
            Some("pearl-river-trading"),
            &[
                "accept",
                "--transfer",
                &th,
                "--end-user",
                "Shanghai Genome Institute",
                "--end-use",
                "sequencing",
                "--no-restricted-retransfer",
            ],
        );
        (cli, th)
    }
}

#[test]
fn every_role_through_the_cli_with_schema_checked_output() {
    let (cli, th) = Cli::populated();
    // Refusals name the rule and the parties.
    let e = cli.refused(
        Some("helix-genomics"),
        &[
            "transfer",
            "--to",
            "tianshan-scientific",
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
            "--shipment",
            "X",
            "--destination",
            "CN",
        ],
    );
    assert!(
        e.contains("transfer refused")
            && e.contains("is not the holder")
            && e.contains("holder is pearl-river-trading"),
        "{e}"
    );
    let e = cli.refused(
        Some("tianshan-scientific"),
        &[
            "accept",
            "--transfer",
            &th,
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
        ],
    );
    assert!(e.contains("not pending"), "{e}");
    let e = cli.refused(
        Some("helix-genomics"),
        &[
            "transfer",
            "--to",
            "pearl-river-trading",
            "--unit",
            "helix-genomics/SEQ-3500/SN0002",
            "--shipment",
            "X",
            "--destination",
            "ZZ",
        ],
    );
    assert!(e.contains("country"), "{e}");
    let e = cli.refused(
        None,
        &[
            "transfer",
            "--to",
            "pearl-river-trading",
            "--unit",
            "helix-genomics/SEQ-3500/SN0002",
            "--shipment",
            "X",
            "--destination",
            "CN",
        ],
    );
    assert!(e.contains("--key"), "{e}");

    let t = cli.ok(
        Some("pearl-river-trading"),
        &[
            "transfer",
            "--to",
            "tianshan-scientific",
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
            "--shipment",
            "SF 1",
            "--destination",
            "CN",
        ],
    );
    let t2 = t["receipt"]["hash"].as_str().expect("hash").to_owned();
    cli.ok(
        Some("tianshan-scientific"),
        &["reject", "--transfer", &t2, "--reason", "not ordered"],
    );
    let t = cli.ok(
        Some("pearl-river-trading"),
        &[
            "transfer",
            "--to",
            "tianshan-scientific",
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
            "--shipment",
            "SF 2",
            "--destination",
            "CN",
        ],
    );
    let t3 = t["receipt"]["hash"].as_str().expect("hash").to_owned();
    cli.ok(
        Some("pearl-river-trading"),
        &["cancel", "--transfer", &t3, "--reason", "wrong address"],
    );
    cli.ok(
        Some("helix-genomics"),
        &[
            "observe",
            "--seen-at",
            "pearl-river-trading",
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
            "--location",
            "Guangzhou",
        ],
    );
    cli.ok(
        Some("helix-genomics"),
        &[
            "retire",
            "--unit",
            "helix-genomics/SEQ-3500/SN0002",
            "--reason",
            "destroyed",
        ],
    );

    let chain = cli.ok(None, &["chain", "helix-genomics/SEQ-3500/SN0001"]);
    assert_schema("chain_output", &chain);
    assert_eq!(chain["events"].as_array().expect("events").len(), 8);
    let unit = cli.ok(None, &["unit", "urn:epc:id:sgtin:0614141.812345.K1"]);
    assert_schema("unit_record", &unit);
    let parties = cli.ok(None, &["party", "list"]);
    assert_schema("party_list_output", &parties);
    let p = cli.ok(None, &["party", "show", "pearl-river-trading"]);
    assert_schema("party_record", &p);
    assert_eq!(p["profile"]["owners"][0]["share_bps"], 6000);
    let v = cli.ok(None, &["verify"]);
    assert_schema("verify_output", &v);
    assert_eq!(v["ok"], true);

    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("k.pem");
    let k = cli.ok(None, &["keygen", "--out", out.to_str().expect("utf-8")]);
    assert_schema("keygen_output", &k);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&out).expect("stat").permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(cli
        .refused(None, &["keygen", "--out", out.to_str().expect("utf-8")])
        .contains("refusing to overwrite"));
}

#[test]
fn submit_accepts_presigned_envelopes_and_is_idempotent() {
    let (cli, _) = Cli::populated();
    let chain = cli.ok(None, &["chain", "helix-genomics/SEQ-3500/SN0001"]);
    let last = &chain["events"][2]["event"];
    let f = cli._tmp.path().join("ev.json");
    std::fs::write(&f, serde_json::to_vec(last).expect("json")).expect("write");
    let r = cli.ok(None, &["submit", f.to_str().expect("utf-8")]);
    assert_eq!(r["receipt"]["duplicate"], true);
    assert_eq!(r["receipt"]["hash"], chain["events"][2]["hash"]);
}

#[test]
fn the_demo_reaches_the_seed_scenario_verdicts() {
    let cli = Cli::new();
    let v = cli.ok(None, &["demo"]);
    assert_schema("demo_output", &v);
    assert_eq!(v["verification"]["ok"], true);
    assert_eq!(v["data_dir_was"], "created");
    let units = &v["units"];
    let one = |stage: &str, role: &str| {
        let u = units[role].as_str().expect("unit");
        v[stage]["verdicts"][u]
            .as_str()
            .expect("verdict")
            .to_owned()
    };
    let all = |stage: &str, role: &str| -> Vec<String> {
        let list = units[role].as_array().expect("units");
        assert!(!list.is_empty());
        let got: std::collections::BTreeSet<String> = list
            .iter()
            .map(|u| {
                v[stage]["verdicts"][u.as_str().expect("unit")]
                    .as_str()
                    .expect("verdict")
                    .to_owned()
            })
            .collect();
        got.into_iter().collect()
    };
    for stage in ["before", "after"] {
        assert_eq!(one(stage, "korla_instrument"), "sanctioned_end");
        assert_eq!(one(stage, "diverted_instrument"), "diverted");
        assert_eq!(one(stage, "dark_instrument"), "sanctioned_pending");
        assert_eq!(one(stage, "slow_instrument"), "review");
        assert_eq!(all(stage, "hospital_kits"), ["clear"]);
        assert_eq!(all(stage, "korla_kits"), ["sanctioned_end"]);
    }
    // OFAC's 2021 list names the XPCC: its company's kits go from review to sanctioned_end,
    // and the import's report says so, naming the entry.
    assert_eq!(all("before", "xpcc_kits"), ["review"]);
    assert_eq!(all("after", "xpcc_kits"), ["sanctioned_end"]);
    let changes = v["list_update"]["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 5, "{:#}", v["list_update"]);
    let ev = &changes[0]["resolution"]["findings"][0]["screening"][0];
    assert_eq!(ev["basis"], "owned");
    assert_eq!(ev["total_bps"], 10_000);
    // The evidence for Korla: a subordinate of the listed Bayingolin prefecture bureau.
    let flagged = v["flagged"].as_array().expect("flagged");
    let korla = flagged
        .iter()
        .find(|r| r["unit"] == units["korla_instrument"])
        .expect("flagged");
    let f = &korla["findings"][0];
    assert_eq!(f["rule"], "restricted_holder");
    assert_eq!(f["screening"][0]["basis"], "subordinate");
    assert_eq!(
        f["screening"][0]["ancestor"]["candidate"]["list"],
        "entity-list"
    );
    let dark = flagged
        .iter()
        .find(|r| r["unit"] == units["dark_instrument"])
        .expect("flagged");
    let rules: Vec<&str> = dark["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"stale_pending"), "{rules:?}");
    assert_eq!(v["refused"].as_array().map(Vec::len), Some(2));
    // A second run on the same directory starts fresh and says so; it refuses a directory
    // that holds anything else.
    let again = cli.ok(None, &["demo"]);
    assert!(again["data_dir_was"]
        .as_str()
        .expect("str")
        .contains("replaced"));
    assert_eq!(again["after"]["verdicts"], v["after"]["verdicts"]);
    std::fs::write(cli.data.join("notes.txt"), "mine").expect("write");
    assert!(cli
        .refused(None, &["demo"])
        .contains("refusing to touch it"));
    assert!(cli.data.join("notes.txt").exists());
}

/// The operator's rewritten history: a ledger with the same name, log key and parties as
/// `cli`'s, then `serials` registered: a different tree signed by the same key.
fn forged(cli: &Cli, serials: &[&str]) -> Cli {
    let forged = Cli::new();
    std::fs::create_dir_all(&forged.data).expect("dir");
    std::fs::copy(
        cli.data.join("log-key.pem"),
        forged.data.join("log-key.pem"),
    )
    .expect("copy the log key");
    let (forged, _) = Cli::populate(forged);
    for serial in serials {
        forged.ok(
            Some("helix-genomics"),
            &["register", "--product", "SEQ-3500", "--serial", serial],
        );
    }
    forged
}

/// A monitor run that raised an alert of `kind`: exit 4, schema-valid JSON; its report.
fn alerted(out: &Output, kind: &str) -> Value {
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("monitor_output", &v);
    assert_eq!(v["alert"]["kind"], kind, "{v:#}");
    v
}

/// Opens the sled tree the way an attacker with file access would.
fn with_tree<T>(dir: &Path, f: impl FnOnce(&sled::Tree) -> T) -> T {
    // No background flusher (as `SledStore`): its thread would keep the directory locked for
    // a moment after this returns, and the next command could not open it.
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    let t = db.open_tree("custody").expect("tree");
    let out = f(&t);
    db.flush().expect("flush");
    out
}

/// The log records of a data directory as stored (layout 3, `log-entries`: each a u32 JCS
/// length, a u8 node count, time, hash, nodes, JCS), the way an attacker with file access
/// would read them.
fn read_log(dir: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(dir.join("log-entries")).expect("log-entries");
    let mut out = vec![];
    let mut at = 0;
    while at < data.len() {
        let n = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let k = data[at + 4] as usize;
        let end = at + 45 + 32 * k + n;
        out.push(data[at..end].to_vec());
        at = end;
    }
    out
}

/// Rewrites the log with `records`, and its index of record ends to match.
fn write_log(dir: &Path, records: &[Vec<u8>]) {
    let mut ends = vec![];
    let mut at = 0u64;
    for r in records {
        at += r.len() as u64;
        ends.extend_from_slice(&at.to_be_bytes());
    }
    std::fs::write(dir.join("log-entries"), records.concat()).expect("write");
    std::fs::write(dir.join("log-ends"), ends).expect("write");
}

/// The error `verify` gives when the store refuses to open (exit 1, JSON).
fn verify_refused(cli: &Cli) -> String {
    let out = cli.run(None, &["verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the store must refuse to open: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(v["ok"], false);
    v["error"].as_str().expect("error text").to_string()
}

fn verify_fails(cli: &Cli) -> Value {
    verify_fails_with(cli, &[])
}

fn verify_fails_with(cli: &Cli, args: &[&str]) -> Value {
    let out = cli.run(None, &[&["verify"], args].concat());
    assert_eq!(
        out.status.code(),
        Some(3),
        "verify must exit 3 on a tampered ledger: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_schema("verify_output", &v);
    assert_eq!(v["ok"], false);
    v["failure"].clone()
}

/// Changes one byte of event 5's shipment text directly in the log file, as an attacker
/// with file access would: its signature no longer verifies.
fn alter_shipment_of_entry_5(cli: &Cli) {
    let mut log = read_log(&cli.data);
    let v = &mut log[5];
    let pos = v
        .windows(5)
        .position(|w| w == b"AWB 1")
        .expect("shipment text")
        + 4;
    v[pos] = b'9';
    write_log(&cli.data, &log);
}

#[test]
fn verify_finds_an_altered_event() {
    let (cli, _) = Cli::populated();
    alter_shipment_of_entry_5(&cli);
    let f = verify_fails(&cli);
    assert_eq!(f["index"], 5);
    assert_eq!(f["check"], "signature");
}

/// `resolve --all` takes the events below the latest checkpoint on that checkpoint: with
/// an event altered in the log file, the leaves no longer rebuild the signed root, and it
/// refuses to report (the error alone). `--verify-signatures` checks every signature
/// instead, and reports the altered event's units broken.
#[test]
fn resolve_all_refuses_a_log_that_no_longer_rebuilds_its_checkpoint() {
    let (cli, _) = Cli::populated();
    let n = read_log(&cli.data).len() as u64;
    let anchored = cli.ok(None, &["resolve", "--all"]);
    assert_schema("resolve_all_output", &anchored);
    assert_eq!(
        anchored["admission"]["anchored_to"]["size"], n,
        "{anchored:#}"
    );
    assert_eq!(anchored["admission"]["signatures_checked"], 0);
    let every = cli.ok(None, &["resolve", "--all", "--verify-signatures"]);
    assert_schema("resolve_all_output", &every);
    assert_eq!(every["admission"]["signatures_checked"], n);
    assert!(every["admission"].get("anchored_to").is_none());
    assert_eq!(every["counts"], anchored["counts"]);
    assert!(anchored["counts"].get("broken").is_none(), "{anchored:#}");

    alter_shipment_of_entry_5(&cli);
    for args in [
        &["resolve", "--all"][..],
        &["resolve", "--all", "--flagged"],
    ] {
        let err = cli.refused(None, args);
        assert!(
            err.contains("no longer rebuild the root of the checkpoint"),
            "{args:?}: {err}"
        );
    }
    let every = cli.ok(None, &["resolve", "--all", "--verify-signatures"]);
    assert!(every["counts"]["broken"].as_u64() >= Some(1), "{every:#}");
}

#[test]
fn verify_finds_a_deleted_event() {
    let (cli, _) = Cli::populated();
    // Entry 4 cut out of the log file and the log's length in sled lowered to match: the
    // later records move down one index, and entry 5's record (which carries the two
    // Merkle nodes leaf 5 completes) now stands where leaf 4 completes one.
    let mut log = read_log(&cli.data);
    log.remove(4);
    write_log(&cli.data, &log);
    with_tree(&cli.data, |t| {
        t.insert(b"mlen", &(log.len() as u64).to_be_bytes())
            .expect("write");
    });
    let err = verify_refused(&cli);
    assert!(
        err.contains("log entry 4") && err.contains("leaf 4 completes 1"),
        "{err}"
    );
}

#[test]
fn verify_refuses_a_log_file_cut_short() {
    let (cli, _) = Cli::populated();
    let mut log = read_log(&cli.data);
    log.pop();
    write_log(&cli.data, &log);
    let err = verify_refused(&cli);
    assert!(
        err.contains("log-entries") && err.contains("synced log data was lost"),
        "{err}"
    );
}

#[test]
fn verify_finds_swapped_events() {
    let (cli, _) = Cli::populated();
    // Leaves 4 and 6 complete one node each, so the records fit each other's place.
    let mut log = read_log(&cli.data);
    log.swap(4, 6);
    write_log(&cli.data, &log);
    let f = verify_fails(&cli);
    assert_eq!(f["index"], 4, "{f}");
}

/// A sled unit record (layout 4): its chain's log indexes and the record's binary form
/// (`src/store/unit_codec.rs`: flags, manufacturer at 1..17, holder at 17..33, head, head
/// time, registration, chain length at 81..85, ...).
fn split_unit(v: &[u8]) -> (Vec<u64>, Vec<u8>) {
    let n = u32::from_be_bytes(v[..4].try_into().expect("4 bytes")) as usize;
    let chain = v[4..4 + 8 * n]
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect();
    (chain, v[4 + 8 * n..].to_vec())
}

fn join_unit(chain: &[u64], record: &[u8]) -> Vec<u8> {
    let mut v = (chain.len() as u32).to_be_bytes().to_vec();
    for i in chain {
        v.extend_from_slice(&i.to_be_bytes());
    }
    v.extend_from_slice(record);
    v
}

#[test]
fn verify_finds_a_doctored_index() {
    let (cli, _) = Cli::populated();
    // Move a unit to another holder in the index only, leaving the log alone.
    with_tree(&cli.data, |t| {
        let (k, v) = t.scan_prefix(b"u").next().expect("a unit").expect("read");
        let (chain, mut rec) = split_unit(&v);
        let maker = rec[1..17].to_vec();
        rec[17..33].copy_from_slice(&maker);
        rec[81..85].copy_from_slice(&99u32.to_be_bytes());
        t.insert(k, join_unit(&chain, &rec)).expect("write");
    });
    let f = verify_fails(&cli);
    assert_eq!(f["check"], "index");
    assert!(f["detail"]
        .as_str()
        .expect("detail")
        .contains("unit record"));
}

#[test]
fn verify_names_a_unit_record_it_cannot_read() {
    let (cli, _) = Cli::populated();
    let unit = with_tree(&cli.data, |t| {
        let (k, v) = t.scan_prefix(b"u").next().expect("a unit").expect("read");
        let (chain, mut rec) = split_unit(&v);
        rec[0] = 0x80; // an unknown flag
        t.insert(&k, join_unit(&chain, &rec)).expect("write");
        String::from_utf8(k[1..].to_vec()).expect("unit id")
    });
    let out = cli.run(None, &["verify"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        text.contains(&format!("unit {unit}")) && text.contains("unknown flags 0x80"),
        "{text}"
    );
}

/// The hash index (`log-hashes`, layout 6: a 64-byte header, then 16-byte slots of tag and
/// log index), doctored as someone with file access could: the audit names what is wrong.
#[test]
fn verify_finds_a_doctored_hash_index() {
    type Doctor = fn(&mut Vec<u8>, usize);
    let cases: [(&str, Doctor, &str); 3] = [
        (
            "a hash pointed at another entry",
            |b, at| {
                let i = u64::from_be_bytes(b[at + 8..at + 16].try_into().expect("8 bytes"));
                let other: u64 = if i == 0 { 1 } else { 0 };
                b[at + 8..at + 16].copy_from_slice(&other.to_be_bytes());
            },
            "a hash of another tag",
        ),
        (
            "a hash index entry deleted",
            |b, at| b[at..at + 16].fill(0),
            "its slots hold",
        ),
        (
            "a hash pointed past the log",
            |b, at| b[at + 8..at + 16].copy_from_slice(&u64::MAX.to_be_bytes()),
            "beyond the log",
        ),
    ];
    for (what, doctor, says) in cases {
        let (cli, _) = Cli::populated();
        let path = cli.data.join("log-hashes");
        let mut b = std::fs::read(&path).expect("the hash index");
        let at = (64..b.len())
            .step_by(16)
            // An entry that ends its probe run: emptying it leaves the others reachable.
            .find(|&at| b[at..at + 8] != [0u8; 8] && b.get(at + 16..at + 24) == Some(&[0u8; 8]))
            .expect("a closed store leaves its hash index in the file");
        doctor(&mut b, at);
        std::fs::write(&path, &b).expect("write");
        let f = verify_fails(&cli);
        assert_eq!(f["check"], "hash_index", "{what}: {f}");
        let detail = f["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{what}: {detail}");
    }
}

/// Each index the audit compares by ordered scans, doctored one way: the audit names the
/// check and what differs.
#[test]
fn verify_finds_doctored_scanned_indexes() {
    type Doctor = fn(&sled::Tree);
    let cases: [(&str, Doctor, &str, &str); 8] = [
        (
            "a chain link deleted",
            |t| {
                let (k, v) = t.scan_prefix(b"u").last().expect("a unit").expect("read");
                let (mut chain, rec) = split_unit(&v);
                chain.pop().expect("a link");
                t.insert(k, join_unit(&chain, &rec)).expect("write");
            },
            "index",
            "chain index of unit",
        ),
        (
            "a unit record deleted",
            |t| {
                let (k, _) = t.scan_prefix(b"u").next().expect("a unit").expect("read");
                t.remove(k).expect("delete");
            },
            "index",
            "unit records",
        ),
        (
            "a completed stay counted that never happened",
            |t| {
                let (p, _) = t.scan_prefix(b"p").next().expect("a party").expect("read");
                let mut k = b"s".to_vec();
                k.extend_from_slice(&p[1..]);
                k.extend_from_slice(&7u32.to_be_bytes());
                t.insert(k, &1u64.to_be_bytes()).expect("write");
            },
            "index",
            "completed stays of 7 days",
        ),
        (
            "a holding added",
            |t| {
                let (k, _) = t
                    .scan_prefix(b"x")
                    .next()
                    .expect("a holding")
                    .expect("read");
                let mut k = k.to_vec();
                k.extend_from_slice(b"0");
                t.insert(k, b"".as_slice()).expect("write");
            },
            "index",
            "holdings of party",
        ),
        (
            "an involvement deleted",
            |t| {
                let (k, _) = t.scan_prefix(b"v").last().expect("involved").expect("read");
                t.remove(k).expect("delete");
            },
            "index",
            "involvement index of party",
        ),
        (
            "a holding under a party id that is no party",
            |t| {
                let mut k = b"x".to_vec();
                k.extend_from_slice(&[b'f'; 32]);
                k.extend_from_slice(b"urn:epc:id:sgtin:0614141.107346.1");
                t.insert(k, b"".as_slice()).expect("write");
            },
            "index",
            "which the log does not enroll as a party",
        ),
        (
            "an involvement under a party id that is no party",
            |t| {
                let mut k = b"v".to_vec();
                k.extend_from_slice(&[b'0'; 32]);
                k.extend_from_slice(b"x");
                t.insert(k, b"".as_slice()).expect("write");
            },
            "index",
            "involvement index has units under 00000000",
        ),
        (
            "the unit count raised",
            |t| {
                let v = t.get(b"munits").expect("read").expect("a unit count");
                let n = u64::from_be_bytes(v.as_ref().try_into().expect("8 bytes"));
                t.insert(b"munits", &(n + 1).to_be_bytes()).expect("write");
            },
            "index",
            "record counts differ",
        ),
    ];
    for (what, doctor, check, says) in cases {
        let (cli, _) = Cli::populated();
        with_tree(&cli.data, doctor);
        let f = verify_fails(&cli);
        assert_eq!(f["check"], check, "{what}: {f}");
        let detail = f["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{what}: {detail}");
        // Replaying one unit per pass finds it too.
        let one = verify_fails_with(&cli, &["--units-per-pass", "1"]);
        assert_eq!(one["check"], check, "{what}, one unit per pass: {one}");
        let detail = one["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{what}, one unit per pass: {detail}");
    }
}

#[test]
fn commands_refuse_a_missing_ledger() {
    let cli = Cli::new();
    assert!(cli
        .refused(None, &["verify"])
        .contains("run `custody init` first"));
}

#[test]
fn verify_finds_an_altered_tree_node() {
    let (cli, _) = Cli::populated();
    // Level 1, index 1: the node over leaves 2 and 3, stored second among the three nodes
    // leaf 3 completes (levels 0, 1, 2) in its record, after the 45-byte header. (The
    // `log-nodes` index is rebuilt from the records past its last durable point, so the
    // record is what an attacker must change.)
    let mut log = read_log(&cli.data);
    assert_eq!(log[3][4], 3, "leaf 3 completes levels 0, 1 and 2");
    log[3][45 + 32] ^= 1;
    write_log(&cli.data, &log);
    let f = verify_fails(&cli);
    assert_eq!(
        (f["check"].clone(), f["index"].clone()),
        ("tree".into(), 3.into())
    );
    assert!(f["detail"]
        .as_str()
        .expect("detail")
        .contains("level 1 index 1"));
}

#[test]
fn verify_finds_a_rewritten_checkpoint() {
    let (cli, _) = Cli::populated();
    let cp = cli.ok(None, &["checkpoint"]);
    let size = cp["size"].as_u64().expect("size");
    let mut k = vec![b'q'];
    k.extend_from_slice(&size.to_be_bytes());
    with_tree(&cli.data, |t| {
        let note = String::from_utf8(t.get(&k).expect("read").expect("cp").to_vec()).expect("utf8");
        let root = cp["root_hash"].as_str().expect("root");
        let other = if root.starts_with('A') { "B" } else { "A" };
        let forged = note.replacen(root, &format!("{other}{}", &root[1..]), 1);
        t.insert(&k, forged.as_bytes()).expect("write");
    });
    let f = verify_fails(&cli);
    assert_eq!(f["check"], "checkpoint");
    assert!(f["detail"]
        .as_str()
        .expect("detail")
        .contains("does not verify"));
}

#[test]
fn checkpoint_and_proofs_from_the_cli_match_their_schemas_and_verify() {
    use custody::core::checkpoint::{SignedCheckpoint, VerifierKey};
    use custody::core::proof::{ConsistencyProof, InclusionProof};
    let (cli, _) = Cli::populated();
    let cp = cli.ok(None, &["checkpoint"]);
    assert_schema("checkpoint_output", &cp);
    let vkey = VerifierKey::parse(cp["verifier_key"].as_str().expect("vkey")).expect("vkey");
    let note = SignedCheckpoint::parse(cp["note"].as_str().expect("note").as_bytes())
        .expect("note parses");
    note.verify(&vkey).expect("signed by the log key");
    let size = note.checkpoint.size;

    // By log index and by event hash: the same proof.
    let by_index = cli.ok(None, &["prove", "3"]);
    assert_schema("inclusion_output", &by_index);
    let hash = by_index["event_hash"].as_str().expect("hash").to_owned();
    let by_hash = cli.ok(None, &["prove", &hash]);
    assert_eq!(by_index, by_hash);
    let p: InclusionProof = serde_json::from_value(by_index["proof"].clone()).expect("proof");
    p.verify_against(&note.checkpoint)
        .expect("inclusion verifies");

    let c = cli.ok(None, &["prove", "--consistency", "2", &size.to_string()]);
    assert_schema("consistency_output", &c);
    let old = SignedCheckpoint::parse(c["old_checkpoint"].as_str().expect("old").as_bytes())
        .expect("old note");
    let p: ConsistencyProof = serde_json::from_value(c["proof"].clone()).expect("proof");
    p.verify_between(&old.checkpoint, &note.checkpoint)
        .expect("consistent");

    // Clear refusals.
    assert!(cli
        .refused(None, &["prove", "999"])
        .contains("not in the log"));
    assert!(cli
        .refused(None, &["prove", "zz"])
        .contains("neither a log index nor an event hash"));
    assert!(cli
        .refused(None, &["prove", "--consistency", "5", "2"])
        .contains("larger than new size"));
    assert!(cli
        .refused(None, &["checkpoint", "--size", "999"])
        .contains("no checkpoint was issued at tree size 999"));
}

#[test]
fn lists_and_screening_through_the_cli() {
    let (cli, _) = Cli::populated();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sanctions");
    let first = cli.ok(
        None,
        &[
            "lists",
            "import",
            &data.join("ofac-sdn-2019").display().to_string(),
            "--source",
            "ofac-sdn",
        ],
    );
    assert_schema("lists_import_output", &first);
    assert_eq!(first["version"], 1);
    let second = cli.ok(
        None,
        &[
            "lists",
            "import",
            &data.join("ofac-sdn-2021/sdn.csv").display().to_string(),
            "--source",
            "ofac-sdn",
        ],
    );
    assert_schema("lists_import_output", &second);
    assert!(second["diff"]["added"]
        .as_array()
        .expect("added")
        .iter()
        .any(|a| a[0] == "29159"));
    let diff = cli.ok(None, &["lists", "diff", "ofac-sdn"]);
    assert_schema("list_diff", &diff);
    assert_eq!(diff["added"], second["diff"]["added"]);
    let shown = cli.ok(None, &["lists"]);
    assert_schema("lists_show_output", &shown);
    assert_eq!(shown[0]["version"], 2);

    let s = cli.ok(None, &["screen", "新疆公安厅", "--country", "CN"]);
    assert_schema("screen_output", &s);
    assert_eq!(s["candidates"][0]["entry_id"], "29159");
    assert_eq!(s["candidates"][0]["level"], "match");
    assert_eq!(s["lists"][0]["version"], 2);
    let none = cli.ok(None, &["screen", "Helix Genomics Inc", "--country", "US"]);
    assert_eq!(none["candidates"], Value::Array(vec![]));

    // A ledger party: clear, then a subordinate of a listed bureau through --parent.
    let p = cli.ok(None, &["screen", "--party", "pearl-river-trading"]);
    assert_schema("party_screening_output", &p);
    assert_eq!(p["status"], "clear");
    let op = cli.key("operator");
    cli.ok(
        Some("urumqi-psb"),
        &[
            "party",
            "enroll",
            "--sponsor-key",
            &op,
            "--handle",
            "xj-psd",
            "--legal-name",
            "Xinjiang Uyghur Autonomous Region Public Security Department",
            "--country",
            "CN",
            "--role",
            "end_user",
        ],
    );
    cli.ok(
        Some("shanghai-genome-institute"),
        &[
            "party",
            "enroll",
            "--sponsor-key",
            &op,
            "--handle",
            "korla-psb",
            "--legal-name",
            "Korla City Public Security Bureau",
            "--country",
            "CN",
            "--role",
            "end_user",
            "--parent",
            "xj-psd",
        ],
    );
    let k = cli.ok(None, &["screen", "--party", "korla-psb"]);
    assert_schema("party_screening_output", &k);
    assert_eq!(k["status"], "restricted");
    assert_eq!(k["findings"][0]["basis"], "subordinate");
    assert_eq!(
        k["findings"][0]["ancestor"]["candidate"]["entry_id"],
        "29159"
    );

    // Bad input: a clear message, nothing stored.
    assert!(cli
        .refused(
            None,
            &[
                "lists",
                "import",
                "/nonexistent/sdn.csv",
                "--source",
                "ofac-sdn"
            ]
        )
        .contains("reading /nonexistent/sdn.csv"));
    assert!(cli
        .refused(
            None,
            &[
                "lists",
                "import",
                &data.join("csl/csl-2019-sample.csv").display().to_string(),
                "--source",
                "csl",
                "--name",
                "Bad Name"
            ]
        )
        .contains("list name"));
    assert!(cli
        .refused(None, &["screen", "x", "--date", "2021-13-01"])
        .contains("not a date"));
    assert!(cli
        .refused(None, &["lists", "diff", "nope"])
        .contains("no list named"));
    assert_eq!(
        cli.ok(None, &["lists", "show"]).as_array().map(Vec::len),
        Some(1)
    );
}

/// `custody serve` as a child process; SIGTERM on drop.
struct Served(std::process::Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Starts `custody ARGS --listen 127.0.0.1:PORT` and waits until it accepts connections.
fn spawn_listening(args: &[&str]) -> Served {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} not listening"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Served(child, format!("http://127.0.0.1:{port}"))
}

/// `custody serve` on the CLI's data directory, with `extra` arguments, ready.
fn serve_with(cli: &Cli, extra: &[&str]) -> Served {
    let data = cli.data.to_str().expect("utf-8");
    let mut args = vec!["--data", data, "serve"];
    args.extend_from_slice(extra);
    let s = spawn_listening(&args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ureq::get(&format!("{}/readyz", s.1)).call().is_err() {
        assert!(std::time::Instant::now() < deadline, "server not ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s
}

fn serve(cli: &Cli) -> Served {
    serve_with(cli, &[])
}

#[test]
fn write_and_read_commands_through_a_server() {
    let (cli, _) = Cli::populated();
    let server = serve(&cli);
    let url = server.1.clone();
    let with = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["--server".to_owned(), url.clone()];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        v
    };
    let run = |key: Option<&str>, args: &[&str]| {
        let a = with(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        cli.ok(key, &refs)
    };
    let unit = "helix-genomics/SEQ-3500/SN0001";
    // Signed here with the party's key, submitted there.
    let t = run(
        Some("pearl-river-trading"),
        &[
            "transfer",
            "--to",
            "tianshan-scientific",
            "--unit",
            unit,
            "--shipment",
            "SF 9",
            "--destination",
            "CN",
        ],
    );
    assert_schema("accepted_output", &t);
    let u = run(None, &["unit", unit]);
    assert_schema("unit_record", &u);
    assert_eq!(u["pending"]["transfer"], t["receipt"]["hash"]);
    let c = run(None, &["chain", unit]);
    assert_schema("chain_output", &c);
    assert_eq!(c["events"].as_array().map(Vec::len), Some(4));
    let cp = run(None, &["checkpoint"]);
    assert_schema("checkpoint_output", &cp);
    let parties = run(None, &["party", "list"]);
    assert_eq!(parties.as_array().map(Vec::len), Some(4));
    // A refusal from the server keeps its rule name.
    let a = with(&[
        "transfer",
        "--to",
        "tianshan-scientific",
        "--unit",
        unit,
        "--shipment",
        "again",
        "--destination",
        "CN",
    ]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let e = cli.refused(Some("pearl-river-trading"), &refs);
    assert!(
        e.contains("rule not_holder") || e.contains("rule transfer_pending"),
        "{e}"
    );
    drop(server);
    // Everything submitted over HTTP is in the local ledger and verifies.
    let v = cli.ok(None, &["verify"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["events_in_log"], 8);
}

#[test]
fn resolve_one_unit_and_all_of_them() {
    let (cli, _) = Cli::populated();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sanctions");
    cli.ok(
        None,
        &[
            "lists",
            "import",
            &data.join("ofac-sdn-2021").display().to_string(),
            "--source",
            "ofac-sdn",
        ],
    );
    // Pearl River accepted with an end-use declaration and nobody is listed: clear.
    let one = cli.ok(None, &["resolve", "helix-genomics/SEQ-3500/SN0001"]);
    assert_schema("resolve_output", &one);
    assert_eq!(one["resolution"]["verdict"], "clear", "{one:#}");
    // Signed by the log key over the report's own JSON text, which says the same.
    let signed: custody::core::report::SignedReport =
        serde_json::from_value(one["signed"].clone()).expect("signed report");
    let cp = cli.ok(None, &["checkpoint"]);
    let vkey =
        custody::core::checkpoint::VerifierKey::parse(cp["verifier_key"].as_str().expect("vkey"))
            .expect("vkey");
    assert!(signed.verify(&vkey.key));
    let mut unsigned = one.clone();
    unsigned.as_object_mut().expect("object").remove("signed");
    assert_eq!(
        serde_json::from_str::<Value>(&signed.report).expect("json"),
        unsigned
    );
    assert_eq!(one["lists"][0]["name"], "ofac-sdn");
    assert!(one["checkpoint"]["size"].as_u64().is_some());
    // A subordinate of the listed Xinjiang bureau receives SN0002: sanctioned_pending.
    let op = cli.key("operator");
    cli.ok(
        Some("urumqi-psb"),
        &[
            "party",
            "enroll",
            "--sponsor-key",
            &op,
            "--handle",
            "xj-psd",
            "--legal-name",
            "Xinjiang Uyghur Autonomous Region Public Security Department",
            "--country",
            "CN",
            "--role",
            "end_user",
        ],
    );
    cli.ok(
        Some("helix-genomics"),
        &[
            "transfer",
            "--to",
            "xj-psd",
            "--unit",
            "helix-genomics/SEQ-3500/SN0002",
            "--shipment",
            "X",
            "--destination",
            "CN",
        ],
    );
    let all = cli.ok(None, &["resolve", "--all", "--flagged"]);
    assert_schema("resolve_all_output", &all);
    let flagged = all["resolutions"].as_array().expect("array");
    assert_eq!(flagged.len(), 1, "{all:#}");
    assert_eq!(flagged[0]["verdict"], "sanctioned_pending");
    assert_eq!(flagged[0]["findings"][0]["screening"][0]["basis"], "listed");
    assert_eq!(all["counts"]["sanctioned_pending"], 1);
    assert!(cli
        .refused(None, &["resolve", "helix-genomics/SEQ-3500/NOPE"])
        .contains("not registered"));
}

/// `resolve --all --format json` is written as units are judged, and signed in two passes
/// over its text: the signature verifies under the log key, `signed.report` is exactly the
/// rest of the output, and an edited text fails.
#[test]
fn the_streamed_whole_ledger_report_is_signed_over_its_own_text() {
    let (cli, _) = Cli::populated();
    let all = cli.ok(None, &["resolve", "--all"]);
    assert_schema("resolve_all_output", &all);
    let cp = cli.ok(None, &["checkpoint"]);
    let vkey =
        custody::core::checkpoint::VerifierKey::parse(cp["verifier_key"].as_str().expect("vkey"))
            .expect("vkey");
    let signed: custody::core::report::SignedReport =
        serde_json::from_value(all["signed"].clone()).expect("signed");
    assert!(signed.verify(&vkey.key), "the signature verifies");
    let mut rest = all.clone();
    rest.as_object_mut().expect("object").remove("signed");
    let text: Value = serde_json::from_str(&signed.report).expect("the report is JSON");
    assert_eq!(text, rest, "the signed text is the report around it");
    let units = all["resolutions"].as_array().expect("resolutions").len() as u64;
    assert_eq!(all["units"], units);
    assert!(units >= 2, "{all:#}");
    let mut edited = signed.clone();
    edited.report = edited.report.replacen("clear", "review", 1);
    assert!(!edited.verify(&vkey.key));
    // CSV is written as judged too: a header and one row per unit.
    let out = cli.run(
        None,
        &["resolve", "--all", "--format", "text", "--table", "csv"],
    );
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(csv.lines().count() as u64, units + 1, "{csv}");
    assert!(csv.starts_with("unit,verdict,rules\n"));
}

#[test]
fn a_verdict_changes_when_the_list_changes() {
    let (cli, _) = Cli::populated();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sanctions");
    let op = cli.key("operator");
    cli.ok(
        Some("urumqi-psb"),
        &[
            "party",
            "enroll",
            "--sponsor-key",
            &op,
            "--handle",
            "xj-psb",
            "--legal-name",
            "Xinjiang Public Security Bureau",
            "--country",
            "CN",
            "--role",
            "end_user",
        ],
    );
    cli.ok(
        Some("helix-genomics"),
        &[
            "transfer",
            "--to",
            "xj-psb",
            "--unit",
            "helix-genomics/SEQ-3500/SN0002",
            "--shipment",
            "X",
            "--destination",
            "CN",
        ],
    );
    // The 2019 list does not name the bureau; the 2021 list does.
    cli.ok(
        None,
        &[
            "lists",
            "import",
            &data.join("ofac-sdn-2019").display().to_string(),
            "--source",
            "ofac-sdn",
        ],
    );
    let v1 = cli.ok(None, &["resolve", "helix-genomics/SEQ-3500/SN0002"]);
    assert_eq!(v1["resolution"]["verdict"], "clear", "{v1:#}");
    // The import itself reports the verdict it changes.
    let imported = cli.ok(
        None,
        &[
            "lists",
            "import",
            &data.join("ofac-sdn-2021").display().to_string(),
            "--source",
            "ofac-sdn",
        ],
    );
    assert_schema("lists_import_output", &imported);
    let xj = cli.ok(None, &["party", "show", "xj-psb"]);
    let check = |report: &serde_json::Value| {
        let c = report["changes"].as_array().expect("changes");
        assert_eq!(c.len(), 1, "{report:#}");
        assert_eq!(
            (c[0]["before"].as_str(), c[0]["after"].as_str()),
            (Some("clear"), Some("sanctioned_pending"))
        );
        assert_eq!(c[0]["because_of"][0], xj["id"], "{report:#}");
        assert_eq!(
            c[0]["resolution"]["findings"][0]["screening"][0]["candidate"]["entry_id"],
            "29159"
        );
        // Only the bureau's screening changed, so only its unit was re-resolved.
        assert_eq!(report["units_touched"], 1, "{report:#}");
    };
    check(&imported["verdict_changes"]);
    let changed = cli.ok(None, &["resolve", "--all", "--changed-since", "ofac-sdn:1"]);
    assert_schema("resolve_changes_output", &changed);
    check(&changed);
    assert!(cli
        .refused(None, &["resolve", "--all", "--changed-since", "ofac-sdn"])
        .contains("expected NAME:VERSION"));
    assert!(cli
        .refused(None, &["resolve", "--all", "--changed-since", "ofac-sdn:7"])
        .contains("no version 7"));
}

/// With every signature checked, an altered event (which the default refuses: see
/// `resolve_all_refuses_a_log_that_no_longer_rebuilds_its_checkpoint`) breaks its units'
/// chains, in the whole-ledger and the one-unit paths alike.
#[test]
fn resolve_reports_an_altered_event_as_a_broken_chain_in_both_paths() {
    let (cli, _) = Cli::populated();
    alter_shipment_of_entry_5(&cli);
    let all = cli.ok(None, &["resolve", "--all", "--verify-signatures"]);
    assert_schema("resolve_all_output", &all);
    let broken: Vec<&Value> = all["resolutions"]
        .as_array()
        .expect("resolutions")
        .iter()
        .filter(|r| r["verdict"] == "broken")
        .collect();
    assert!(!broken.is_empty(), "{all:#}");
    for r in &broken {
        let f = &r["findings"][0];
        assert_eq!(
            (f["rule"].as_str(), f["index"].as_u64()),
            (Some("chain_verification"), Some(5))
        );
        // The one-unit path (chain read) says the same.
        let one = cli.ok(None, &["resolve", r["unit"].as_str().expect("unit")]);
        assert_eq!(one["resolution"], **r);
    }
    assert_eq!(all["counts"]["broken"], broken.len());
    // One unit per pass: the same report (but for the time it was made at, and so its
    // signature).
    let mut passes = cli.ok(
        None,
        &[
            "resolve",
            "--all",
            "--verify-signatures",
            "--units-per-pass",
            "1",
        ],
    );
    let mut all = all;
    for v in [&mut passes, &mut all] {
        let o = v.as_object_mut().expect("object");
        o.remove("signed");
        o.remove("as_of");
    }
    assert_eq!(passes, all);
}

#[test]
fn export_a_bundle_and_verify_it_offline() {
    let (cli, _) = Cli::populated();
    let vk = cli.ok(None, &["checkpoint"])["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned();
    let file = cli.data.with_extension("bundle.json");
    let f = file.to_str().expect("utf-8");
    cli.ok(
        None,
        &["export", "helix-genomics/SEQ-3500/SN0001", "--out", f],
    );
    let bundle: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_schema("bundle", &bundle);
    let v = cli.ok(None, &["verify-bundle", f, "--verifier-key", &vk]);
    assert_schema("verify_bundle_output", &v);
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["verified"]["chain"].as_array().map(Vec::len),
        bundle["chain"].as_array().map(Vec::len)
    );
    // The verifier key may also come from a file.
    let key_file = cli.data.with_extension("vkey");
    std::fs::write(&key_file, format!("{vk}\n")).expect("write");
    cli.ok(
        None,
        &[
            "verify-bundle",
            f,
            "--verifier-key",
            key_file.to_str().expect("utf-8"),
        ],
    );
    // Tampering: exit 3 and the precise failure.
    let mut bad = bundle.clone();
    let last = bad["entries"].as_array().expect("entries").len() - 1;
    bad["entries"][last]["integrated_at"] = "2001-01-01T00:00:00Z".into();
    std::fs::write(&file, serde_json::to_vec(&bad).expect("json")).expect("write");
    let out = cli.run(None, &["verify-bundle", f, "--verifier-key", &vk]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("verify_bundle_output", &v);
    let msg = v["failure"].as_str().expect("failure");
    assert!(msg.contains("inclusion proof does not verify"), "{msg}");
    // With the signed resolution report: verified with the same key, its verdict printed;
    // an edited report is caught.
    cli.ok(
        None,
        &[
            "export",
            "helix-genomics/SEQ-3500/SN0001",
            "--out",
            f,
            "--with-resolution",
        ],
    );
    let with: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_schema("bundle", &with);
    let v = cli.ok(None, &["verify-bundle", f, "--verifier-key", &vk]);
    assert_schema("verify_bundle_output", &v);
    assert!(v["verified"]["verdict"].is_string(), "{v:#}");
    let mut edited = with.clone();
    let text = edited["resolution"]["signed"]["report"]
        .as_str()
        .expect("text")
        .to_owned();
    let verdict = v["verified"]["verdict"].as_str().expect("verdict");
    edited["resolution"]["signed"]["report"] = text
        .replace(verdict, "clear")
        .replace("\"clear\"", "\"review\"")
        .into();
    std::fs::write(&file, serde_json::to_vec(&edited).expect("json")).expect("write");
    let out = cli.run(None, &["verify-bundle", f, "--verifier-key", &vk]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["failure"]
            .as_str()
            .expect("failure")
            .contains("resolution report"),
        "{v:#}"
    );
    // A mangled key is a usage error, not a verdict on the bundle (a valid key of another
    // log is refused by the checkpoint check: tests/bundle.rs).
    std::fs::write(&file, serde_json::to_vec(&bundle).expect("json")).expect("write");
    let other = vk.replace("cli.example/ledger", "other.example/ledger");
    let msg = cli.refused(None, &["verify-bundle", f, "--verifier-key", &other]);
    assert!(
        msg.contains("neither a verifier key nor a readable file"),
        "{msg}"
    );
}

#[test]
fn the_monitor_follows_the_log_and_catches_a_rewritten_history() {
    let (cli, _) = Cli::populated();
    let vk = cli.ok(None, &["checkpoint"])["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned();
    let unit = cli.ok(None, &["unit", "helix-genomics/SEQ-3500/SN0001"])["id"]
        .as_str()
        .expect("unit")
        .to_owned();
    let state = cli.data.with_extension("monitor.json");
    let st = state.to_str().expect("utf-8").to_owned();
    let monitor = |url: &str| {
        cli.run(
            None,
            &[
                "--server",
                url,
                "monitor",
                "--state",
                &st,
                "--verifier-key",
                &vk,
                "--watch-unit",
                &unit,
            ],
        )
    };
    let size;
    {
        let server = serve(&cli);
        let out = monitor(&server.1);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_schema("monitor_output", &first);
        assert_eq!(first["old_size"], 0);
        assert_eq!(first["entries_verified"], first["new_size"]);
        assert!(first.get("alert").is_none());
        // A new event for the watched unit, through the server.
        cli.ok(
            Some("pearl-river-trading"),
            &[
                "--server",
                &server.1,
                "transfer",
                "--to",
                "tianshan-scientific",
                "--unit",
                "helix-genomics/SEQ-3500/SN0001",
                "--shipment",
                "SF 10",
                "--destination",
                "CN",
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let next = loop {
            let out = monitor(&server.1);
            assert!(out.status.success());
            let v: Value = serde_json::from_slice(&out.stdout).expect("json");
            if v["new_size"] != v["old_size"] || std::time::Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_schema("monitor_output", &next);
        assert_eq!(next["entries_verified"], 1, "{next:#}");
        assert_eq!(next["touches"][0]["kind"], "transfer");
        assert_eq!(next["touches"][0]["units"][0], unit.as_str());
        size = next["new_size"].as_u64().expect("size");
    }
    // The operator rebuilds the ledger with another history under the same name and log key,
    // longer than what the monitor verified, and serves it.
    let forged = forged(&cli, &["X1", "X2"]);
    let server = serve(&forged);
    let before = std::fs::read(&state).expect("state");
    let out = monitor(&server.1);
    let v = alerted(&out, "forked");
    assert!(v["new_size"].as_u64().expect("size") > size);
    // Both signed checkpoints are kept as evidence; the verified state is untouched.
    let files = v["alert"]["evidence"].as_array().expect("evidence");
    assert_eq!(files.len(), 2);
    for f in files {
        let note = std::fs::read(f.as_str().expect("path")).expect("evidence file");
        custody::core::checkpoint::SignedCheckpoint::parse(&note).expect("a signed checkpoint");
    }
    assert_eq!(std::fs::read(&state).expect("state"), before);
    // A monitor that verified the longer log, then served the shorter one: it shrank.
    let state2 = cli.data.with_extension("monitor2.json");
    let st2 = state2.to_str().expect("utf-8").to_owned();
    let run2 = |url: &str| {
        cli.run(
            None,
            &[
                "--server",
                url,
                "monitor",
                "--state",
                &st2,
                "--verifier-key",
                &vk,
            ],
        )
    };
    assert!(run2(&server.1).status.success());
    drop(server);
    let shorter = serve(&cli);
    let out = run2(&shorter.1);
    assert_eq!(out.status.code(), Some(4));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["alert"]["kind"], "shrank", "{v:#}");
}

#[test]
fn witnesses_cosign_a_consistent_log_and_refuse_a_rewritten_one() {
    let (cli, _) = Cli::populated();
    let vk = cli.ok(None, &["checkpoint"])["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned();
    let wkey = cli.data.with_extension("witness.pem");
    let wk = wkey.to_str().expect("utf-8");
    cli.ok(None, &["keygen", "--out", wk]);
    let name = "witness.example/w1";
    let wvk = cli.ok(
        None,
        &[
            "witness",
            "--name",
            name,
            "--witness-key",
            wk,
            "--print-vkey",
        ],
    )["verifier_key"]
        .as_str()
        .expect("vkey")
        .to_owned();
    let state = cli.data.with_extension("witness-state.json");
    let witness = spawn_listening(&[
        "witness",
        "--name",
        name,
        "--witness-key",
        wk,
        "--log",
        &vk,
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    let url = witness.1.clone();
    let first = cli.ok(None, &["cosign", "--witness", &url]);
    assert_eq!(first["answers"][0]["cosigned"], true, "{first:#}");
    // The log grows; the witness checks the consistency proof from what it cosigned.
    let t = cli.ok(
        Some("pearl-river-trading"),
        &[
            "transfer",
            "--to",
            "tianshan-scientific",
            "--unit",
            "helix-genomics/SEQ-3500/SN0001",
            "--shipment",
            "SF 11",
            "--destination",
            "CN",
        ],
    );
    let second_transfer = t["receipt"]["hash"].as_str().expect("hash").to_owned();
    let second = cli.ok(None, &["cosign", "--witness", &url]);
    assert_eq!(second["answers"][0]["cosigned"], true, "{second:#}");
    assert!(second["size"].as_u64() > first["size"].as_u64());
    // A bundle carries the cosignature; a verifier can require it.
    let file = cli.data.with_extension("bundle.json");
    let f = file.to_str().expect("utf-8");
    cli.ok(
        None,
        &["export", "helix-genomics/SEQ-3500/SN0001", "--out", f],
    );
    let policy = cli.data.with_extension("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({"quorum": 1, "witnesses": [wvk]}).to_string(),
    )
    .expect("policy");
    let p = policy.to_str().expect("utf-8");
    let ok = cli.ok(
        None,
        &[
            "verify-bundle",
            f,
            "--verifier-key",
            &vk,
            "--witness-policy",
            p,
        ],
    );
    assert_schema("verify_bundle_output", &ok);
    assert_eq!(ok["witnesses"][0], name);
    // A policy naming a witness that did not cosign fails.
    let other_key = cli.data.with_extension("other.pem");
    let ok_path = other_key.to_str().expect("utf-8");
    cli.ok(None, &["keygen", "--out", ok_path]);
    let other = cli.ok(
        None,
        &[
            "witness",
            "--name",
            "witness.example/w2",
            "--witness-key",
            ok_path,
            "--print-vkey",
        ],
    )["verifier_key"]
        .as_str()
        .expect("vkey")
        .to_owned();
    std::fs::write(
        &policy,
        serde_json::json!({"quorum": 1, "witnesses": [other]}).to_string(),
    )
    .expect("policy");
    let out = cli.run(
        None,
        &[
            "verify-bundle",
            f,
            "--verifier-key",
            &vk,
            "--witness-policy",
            p,
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["failure"]
            .as_str()
            .expect("failure")
            .contains("0 of the required 1"),
        "{v:#}"
    );
    // A server asks the witness itself for each new checkpoint and serves the cosigned note.
    {
        let server = serve_with(&cli, &["--witness", &url, "--cosign-interval", "1"]);
        let surl = server.1.clone();
        cli.ok(
            Some("tianshan-scientific"),
            &[
                "--server",
                &surl,
                "accept",
                "--transfer",
                second_transfer.as_str(),
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let note = ureq::get(&format!("{surl}/v1/checkpoint"))
                .call()
                .expect("checkpoint")
                .into_string()
                .expect("text");
            let cp =
                custody::core::checkpoint::SignedCheckpoint::parse(note.as_bytes()).expect("note");
            let cosigned = cp.signatures.iter().any(|s| s.name == name);
            if cosigned && cp.checkpoint.size > second["size"].as_u64().expect("size") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server never served a cosigned checkpoint: {note}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    // The operator rewrites history under the same key: the witness refuses to cosign it.
    let forged = forged(&cli, &["X1", "X2", "X3"]);
    let out = forged.run(None, &["cosign", "--witness", &url]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("cosign_output", &v);
    assert_eq!(v["answers"][0]["cosigned"], false);
    let why = v["answers"][0]["error"].as_str().expect("error");
    assert!(why.contains("HTTP 422"), "{why}");
}

#[test]
fn audit_a_server_from_its_entries_and_signed_checkpoint() {
    let (cli, _) = Cli::populated();
    let vk = cli.ok(None, &["checkpoint"])["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned();
    // The local audit is `verify`.
    let local = cli.ok(None, &["audit"]);
    assert_schema("verify_output", &local);
    assert_eq!(local["ok"], true);
    {
        let server = serve(&cli);
        let r = cli.ok(
            None,
            &["--server", &server.1, "audit", "--verifier-key", &vk],
        );
        assert_schema("verify_output", &r);
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(r["events_checked"], r["events_in_log"]);
        assert!(cli
            .refused(None, &["--server", &server.1, "audit"])
            .contains("needs --verifier-key"));
    }
    // An event altered in the server's files: the remote audit names it.
    alter_shipment_of_entry_5(&cli);
    let server = serve(&cli);
    let out = cli.run(
        None,
        &["--server", &server.1, "audit", "--verifier-key", &vk],
    );
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("verify_output", &v);
    assert_eq!(
        (
            v["failure"]["index"].as_u64(),
            v["failure"]["check"].as_str()
        ),
        (Some(5), Some("signature")),
        "{v:#}"
    );
}

/// A reader that goes away (`custody … | head`) ends the output quietly: no panic.
#[test]
fn output_into_a_closed_pipe_is_not_a_crash() {
    let (cli, _) = Cli::populated();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--data")
        .arg(&cli.data)
        .args([
            "--format",
            "json",
            "chain",
            "helix-genomics/SEQ-3500/SN0001",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // The read end is closed before the command writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{err}");
}
