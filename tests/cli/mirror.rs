//! `custody monitor --mirror` keeps a verified replica that `custody serve --read-only`
//! serves; `--peer` compares the log's views (split-view detection); a mirror catches a
//! server that serves another entry than before.

use super::*;

fn vk_of(cli: &Cli) -> String {
    cli.ok(None, &["checkpoint"])["verifier_key"]
        .as_str()
        .expect("verifier key")
        .to_owned()
}

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .expect("GET succeeds")
        .into_string()
        .expect("text")
}

#[test]
fn a_monitor_mirror_serves_read_only_and_peers_expose_a_split_view() {
    let (cli, _) = Cli::populated();
    let vk = vk_of(&cli);
    let mirror = Cli::new();
    let m = mirror.data.to_str().expect("utf-8").to_owned();
    let state = cli.data.with_extension("monitor.json");
    let st = state.to_str().expect("utf-8").to_owned();
    let primary = serve(&cli);
    let follow = |url: &str, extra: &[&str]| {
        let mut args = vec!["--server", url, "monitor", "--state", &st, "--log-key", &vk];
        args.extend_from_slice(extra);
        cli.run(None, &args)
    };
    let out = follow(&primary.1, &["--mirror", &m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let first: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("monitor_output", &first);
    let size = first["new_size"].as_u64().expect("size");

    // The mirror is a whole ledger: the full audit passes on it, with the same checkpoints.
    let audit = mirror.ok(None, &["verify"]);
    assert_eq!(audit["ok"], true, "{audit:#}");
    assert_eq!(audit["events_checked"], size);
    assert!(audit["checkpoints_checked"].as_u64().expect("n") >= 1);

    drop(primary);
    let read_only = serve_with(&mirror, &["--read-only"]);
    let primary = serve(&cli);
    for path in [
        "/v1/checkpoint",
        &format!("/v1/log/entries?start=0&end={size}"),
        "/v1/parties",
    ] {
        assert_eq!(
            get(&format!("{}{path}", read_only.1)),
            get(&format!("{}{path}", primary.1)),
            "the mirror serves {path} as the primary does"
        );
    }
    // Writes are refused before the body is read, and change nothing.
    let resp = ureq::post(&format!("{}/v1/events", read_only.1))
        .set("content-type", "application/json")
        .send_string("{}");
    match resp {
        Err(ureq::Error::Status(405, r)) => {
            let p: Value = serde_json::from_str(&r.into_string().expect("body")).expect("json");
            assert_eq!(p["rule"], "read_only", "{p:#}");
        }
        other => panic!("a write to a mirror must get 405 read_only: {other:?}"),
    }
    // An auditor can audit the mirror over HTTP as the ledger itself.
    let remote = cli.ok(None, &["--server", &read_only.1, "audit", "--log-key", &vk]);
    assert_eq!(remote["ok"], true, "{remote:#}");
    assert_eq!(remote["events_checked"], size);

    // A new event reaches the mirror; the peer (the mirror) shows a consistent view.
    cli.ok(
        Some("pearl-river-trading"),
        &[
            "--server",
            &primary.1,
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
    drop(read_only);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let next = loop {
        let out = follow(&primary.1, &["--mirror", &m]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        if v["new_size"] != v["old_size"] || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(next["entries_verified"], 1, "{next:#}");
    let read_only = serve_with(&mirror, &["--read-only"]);
    let out = follow(&primary.1, &["--peer", &read_only.1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_schema("monitor_output", &v);
    assert_eq!(v["peers"][0]["consistent"], true, "{v:#}");
    assert_eq!(v["peers"][0]["size"], size + 1, "{v:#}");

    // The operator shows someone else another history under the same name and key.
    let forged = forged(&cli, &["X1", "X2", "X3"]);
    let other = serve(&forged);
    let before = std::fs::read(&state).expect("state");
    let out = follow(&primary.1, &["--peer", &other.1]);
    let v = alerted(&out, "split_view");
    let files = v["alert"]["evidence"].as_array().expect("evidence");
    assert_eq!(files.len(), 2, "both signed views are kept");
    let notes: Vec<_> = files
        .iter()
        .map(|f| std::fs::read(f.as_str().expect("path")).expect("evidence file"))
        .collect();
    let cps: Vec<_> = notes
        .iter()
        .map(|n| custody::core::checkpoint::SignedCheckpoint::parse(n).expect("signed note"))
        .collect();
    assert_ne!(cps[0].checkpoint.root, cps[1].checkpoint.root);
    assert_eq!(
        std::fs::read(&state).expect("state"),
        before,
        "state untouched"
    );

    // The mirror itself catches a server that now serves other entries than it served:
    // a new state file over the same mirror, following the forged server.
    let state2 = cli.data.with_extension("monitor2.json");
    drop(read_only);
    let out = cli.run(
        None,
        &[
            "--server",
            &other.1,
            "monitor",
            "--state",
            state2.to_str().expect("utf-8"),
            "--verifier-key",
            &vk,
            "--mirror",
            &m,
        ],
    );
    let v = alerted(&out, "forked");
    assert!(
        v["alert"]["detail"]
            .as_str()
            .expect("detail")
            .contains("differs from the one served before"),
        "{v:#}"
    );
    let again = mirror.ok(None, &["verify"]);
    assert_eq!(
        again["ok"], true,
        "the mirror took nothing from the forged server"
    );
    assert_eq!(again["events_checked"], size + 1);
}
