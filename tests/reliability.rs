//! Storage failures: a damaged or truncated sled directory must never be served as if it
//! were whole, and a full disk must give a clear refusal and a clean state. Both run the
//! real `custody` binary on sled.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use custody::core::unit::UnitId;
use custody::store::{SledStore, Store};
use serde_json::Value;

/// A ledger of genesis, five enrollments and `n` single-unit registrations, closed.
fn ledger(dir: &Path, n: usize) -> u64 {
    let w = World::new(SledStore::open(dir).expect("open"));
    for _ in 0..n {
        w.register(1);
    }
    let len = w.ledger.store().len().expect("len");
    drop(w);
    log_key().save(&dir.join("log-key.pem")).expect("log key");
    len
}

fn custody(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--data")
        .arg(dir)
        .args(["--format", "json"])
        .args(args)
        .env("CUSTODY_LOG", "error")
        .output()
        .expect("custody runs")
}

/// sled cuts a damaged log back to its last readable point without an error (measured on
/// the demo ledger: 26 events became 11 to 20). Whatever the damage, the outcome is one
/// of: the store refuses to open (sled's own corruption error or the acknowledgement
/// watermark), or everything acknowledged is there and the audit passes. Never a shorter
/// log served as if it were whole.
#[test]
fn a_damaged_sled_directory_is_never_served_short() {
    let mut refused_by_watermark = 0;
    for (what, damage) in [
        ("truncated to 20%", 20u64),
        ("truncated to 40%", 40),
        ("truncated to 60%", 60),
        ("truncated to 80%", 80),
        ("bytes flipped at 50%", 1050),
        ("emptied", 0),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let acknowledged = ledger(&dir, 40);
        let db = dir.join("db");
        let size = std::fs::metadata(&db).expect("db file").len();
        if damage > 1000 {
            let mut bytes = std::fs::read(&db).expect("read");
            let at = usize::try_from(size / 2).expect("size");
            for b in &mut bytes[at..at + 64] {
                *b ^= 0x5a;
            }
            std::fs::write(&db, bytes).expect("write");
        } else {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .expect("open");
            f.set_len(size * damage / 100).expect("truncate");
        }
        let audit = custody(&dir, &["verify"]);
        let serve = custody(&dir, &["serve", "--listen", "127.0.0.1:0"]);
        let text = |o: &std::process::Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        if audit.status.success() {
            let v: Value = serde_json::from_slice(&audit.stdout).expect("json");
            assert_eq!(v["ok"], true, "{what}: {v}");
            assert_eq!(
                v["events_checked"], acknowledged,
                "{what}: served short: {v}"
            );
            continue;
        }
        let (a, s) = (text(&audit), text(&serve));
        assert!(!serve.status.success(), "{what}: serve must refuse: {s}");
        let clear =
            |t: &str| t.contains("acknowledged events are missing") || t.contains("corrupt");
        assert!(clear(&a), "{what}: the audit must say what is wrong: {a}");
        assert!(clear(&s), "{what}: serve must say what is wrong: {s}");
        if a.contains("acknowledged events are missing") {
            refused_by_watermark += 1;
            let v: Value = serde_json::from_slice(&audit.stdout).expect("json");
            assert_eq!(v["failure"]["check"], "acknowledged", "{v}");
            assert_eq!(audit.status.code(), Some(3), "{a}");
        }
    }
    assert!(
        refused_by_watermark > 0,
        "no damage was caught by the watermark: the test no longer exercises it"
    );
}

/// A full disk (simulated with a file-size limit: writes beyond it fail with EFBIG, as
/// ENOSPC would) stops the ledger with 503s; nothing acknowledged is lost and the ledger
/// is whole after a restart without the limit.
#[test]
fn a_full_disk_refuses_cleanly_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ledger(&dir, 1);
    // The files sled holds open may grow by this much before writes fail.
    let biggest = walk(&dir).into_iter().max().unwrap_or(0);
    let limit_blocks = (biggest + (8 << 20)) / 512;
    let port = common::process::free_port();
    let script = format!(
        "ulimit -f {limit_blocks} && trap '' XFSZ && exec \"$0\" --data \"$1\" serve --checkpoint-interval 0 --listen 127.0.0.1:{port}"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_custody"))
        .arg(&dir)
        .env("CUSTODY_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ureq::get(&format!("{url}/readyz")).call().is_err() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let remote = custody::remote::Remote::connect(&url).expect("connect");
    let c = custody::client::Client::new(&remote, custody::ledger::system_clock());
    let maker = key("maker");
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..200_000 {
        // Lots of 500 units with long serials fill the disk quickly.
        let units: Vec<UnitId> = (0..500)
            .map(|k| {
                UnitId::custody(
                    &maker.party_id(),
                    "SEQ",
                    &format!("FULL-{i:06}-{k:04}-{}", "x".repeat(40)),
                )
                .expect("unit")
            })
            .collect();
        match c.register(&maker, units, None, None) {
            Ok(r) => acked.push((r.hash, r.index)),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    match &refusal {
        custody::client::ClientError::Remote { status, rule, .. } => {
            assert_eq!((*status, rule.as_str()), (503, "unavailable"), "{refusal}");
        }
        other => panic!("a full disk must give 503 unavailable, got {other}"),
    }
    // It stays refused (no half-written state is used), and says so.
    let again = c.register(
        &maker,
        vec![UnitId::custody(&maker.party_id(), "SEQ", "AFTER-FULL").expect("u")],
        None,
        None,
    );
    assert!(
        again.is_err(),
        "the ledger must stop after a storage failure"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !acked.is_empty(),
        "some events were acknowledged before the disk filled (refusal: {refusal})"
    );
    let store = SledStore::open(&dir).expect("re-opens without the limit");
    for (hash, index) in &acked {
        assert_eq!(
            store.index_of(hash).expect("read"),
            Some(*index),
            "lost {hash}"
        );
    }
    let report = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit");
    assert!(report.ok, "{:?}", report.failure);
}

/// Sizes of the files under `dir`.
fn walk(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if let Ok(m) = p.metadata() {
            out.push(m.len());
        }
    }
    out
}

/// A data directory this user cannot write (files owned by another user, no capabilities:
/// `unshare --user` drops root's): opening it fails with a message that says so, and the
/// directory is left exactly as it was.
#[test]
fn a_read_only_data_directory_is_refused_clearly_and_left_untouched() {
    use std::os::unix::fs::PermissionsExt as _;
    let can_drop_root = Command::new("unshare")
        .args(["--user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !(can_drop_root && is_root) {
        eprintln!(
            "SKIPPED: needs root and `unshare --user` to make a directory read-only to the server"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let len = ledger(&dir, 3);
    let before = walk(&dir);
    let set = |uid: u32, mode: u32| {
        for p in tree(&dir) {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).expect("chown");
            let m = if p.is_dir() { mode | 0o111 } else { mode };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
    };
    set(4321, 0o644);
    for args in [vec!["verify"], vec!["serve", "--listen", "127.0.0.1:0"]] {
        let out = Command::new("unshare")
            .arg("--user")
            .arg(env!("CARGO_BIN_EXE_custody"))
            .arg("--data")
            .arg(&dir)
            .args(&args)
            .env("CUSTODY_LOG", "error")
            .output()
            .expect("runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?} must refuse: {text}");
        assert!(
            text.contains("permission denied") && text.contains("must be writable"),
            "{args:?}: {text}"
        );
    }
    set(0, 0o644);
    assert_eq!(walk(&dir), before, "nothing was written");
    let store = SledStore::open(&dir).expect("opens again");
    assert_eq!(store.len().expect("len"), len);
    let report = custody::audit::verify_ledger(&store, |_, _| {}).expect("audit");
    assert!(report.ok, "{:?}", report.failure);
}

/// Every path under `dir`, itself included.
fn tree(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push(p);
        }
    }
    out
}
