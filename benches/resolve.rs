//! `resolve --all` at scale, and re-resolution after a one-entry list update.
//!
//! `cargo bench --bench resolve` (env: BENCH_UNITS, default 1,000,000; BENCH_PARTIES,
//! default 10,000; BENCH_RUNS, default 3; BENCH_DIR: build the ledger there and reuse it on
//! the next invocation with the same sizes, instead of a temporary directory).
//!
//! The ledger: a maker registers the units in lots of 5,000 and ships each lot to one of 100
//! distributors it authorized; each distributor ships batches of equal size to the end users
//! it enrolled (the rest of the parties), who accept with an end-use declaration. 50 end users
//! carry the names of listed Xinjiang public security bureaus. Lists: the Entity List excerpt
//! of the demo and OFAC SDN 2021 (real files). Timed, medians of BENCH_RUNS:
//! - the release `custody resolve --all --flagged --format json` as a child process, by
//!   default (anchored to the latest checkpoint) and with `--verify-signatures`;
//! - the library's stages (check and replay the log, anchored; screen every party; judge
//!   every unit);
//! - a list update adding one entry that names one end user: `custody lists import` (which
//!   reports the verdicts it changed) and the library's `changed`, with the units touched.
//!
//! Physical limits measured in the same run: ed25519 verify_strict on all cores, and a
//! sequential scan of the log's raw bytes from sled.

mod common;
use common::{env, key, median, profile};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use custody::client::Client;
use custody::core::event::{EndUse, Role};
use custody::core::ids::{Handle, LedgerName, LogIndex};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::keys::KeyPair;
use custody::ledger::{Clock, Ledger};
use custody::resolve::change::changed;
use custody::resolve::{resolve_all, DwellRule, Options};
use custody::screen::entry::SourceKind;
use custody::screen::import::Input;
use custody::screen::lists::{import_into, index_as_of, index_latest, SledLists};
use custody::screen::matcher::Thresholds;
use custody::store::{SledStore, Store};
use ed25519_dalek::{Signer as _, SigningKey};
use rayon::prelude::*;

const DISTRIBUTORS: usize = 100;
const LOT: usize = 5000;
const LISTED: [&str; 5] = [
    "Urumqi Municipal Public Security Bureau",
    "Kashgar Prefecture Public Security Bureau",
    "Hotan Prefecture Public Security Bureau",
    "Xinjiang Public Security Bureau",
    "Xinjiang Production and Construction Corps",
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_custody")
}

/// Runs the release CLI on `dir`; returns seconds, standard output and its peak RSS (KiB,
/// sampled from /proc every 10 ms).
fn cli(dir: &Path, args: &[&str]) -> (f64, String, u64) {
    let out_path = dir.with_extension("stdout");
    let out_file = std::fs::File::create(&out_path).expect("stdout file");
    let t = Instant::now();
    let mut child = Command::new(bin())
        .arg("--data")
        .arg(dir)
        .arg("--format")
        .arg("json")
        .args(args)
        .stdout(out_file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run custody");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let secs = t.elapsed().as_secs_f64();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{err}");
    let out = std::fs::read_to_string(&out_path).expect("read stdout");
    (secs, out, peak)
}

/// Decoding every event of the log (strict JSON into typed envelopes) on all cores, without
/// verifying: the parsing floor of a verified pass.
fn decode_floor(store: &SledStore, events: u64) -> f64 {
    let t = Instant::now();
    let mut i = 0;
    while i < events {
        let e = store
            .entries(LogIndex::new(i), LogIndex::new((i + 256).min(events)))
            .expect("entries");
        e.par_iter().for_each(|x| {
            custody::core::verify::SignedEvent::decode(&x.event).expect("decode");
        });
        i += 256;
    }
    t.elapsed().as_secs_f64()
}

fn verify_ceiling() -> f64 {
    let k = SigningKey::from_bytes(&[9; 32]);
    let msgs: Vec<Vec<u8>> = (0..40_000u32)
        .map(|i| format!("custody bench message {i} with some length to it").into_bytes())
        .collect();
    let sigs: Vec<_> = msgs.iter().map(|m| k.sign(m)).collect();
    let vk = k.verifying_key();
    let t = Instant::now();
    msgs.par_iter()
        .zip(sigs.par_iter())
        .for_each(|(m, s)| vk.verify_strict(m, s).expect("valid"));
    msgs.len() as f64 / t.elapsed().as_secs_f64()
}

/// A distinct invented two-word company name for end user `j`.
fn invented(j: usize) -> String {
    const SYL: [&str; 24] = [
        "ka", "lo", "mi", "ren", "sa", "tu", "vel", "zor", "bri", "den", "fa", "gol", "hu", "jin",
        "ko", "lar", "mon", "nev", "pa", "qui", "ros", "tal", "ul", "wex",
    ];
    let w = |mut x: usize| {
        let mut s = String::new();
        for _ in 0..3 {
            s.push_str(SYL[x % SYL.len()]);
            x /= SYL.len();
        }
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    format!("{} {} Medical Co", w(j), w(j.wrapping_mul(7919) + 13))
}

fn end_use() -> EndUse {
    EndUse {
        end_user: Text::parse("clinic").expect("t"),
        end_user_party: None,
        end_use: Text::parse("clinical genetics").expect("t"),
        destination_country: CountryCode::parse("CN").expect("c"),
        no_restricted_retransfer: true,
    }
}

fn build(dir: &Path, units_n: usize, parties_n: usize) {
    let store = SledStore::open(dir).expect("open");
    let name = LedgerName::parse("bench.example/resolve").expect("name");
    let log = key(99);
    Ledger::init(&store, &name, &log.public).expect("init");
    let clock: Clock = Arc::new(|| Timestamp::clamped(1_800_000_000));
    let ledger = Ledger::open(store, Arc::clone(&clock), log.signing).expect("ledger");
    let c = Client::new(&ledger, Arc::clone(&clock));
    let t = Instant::now();
    let h = |s: String| Handle::parse(&s).expect("h");
    let (op, maker) = (key(1), key(2));
    c.genesis(
        &op,
        h("op".into()),
        profile("Operator", vec![Role::Operator]),
    )
    .expect("genesis");
    c.enroll(
        &maker,
        &op,
        h("maker".into()),
        profile("Helix Bench Instruments", vec![Role::Manufacturer]),
    )
    .expect("enroll");
    let derive = |i: usize| {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1000).to_le_bytes());
        KeyPair::from_signing(SigningKey::from_bytes(&seed)).expect("key")
    };
    let dists: Vec<KeyPair> = (0..DISTRIBUTORS).map(derive).collect();
    for (i, d) in dists.iter().enumerate() {
        let mut p = profile(
            &format!("Bench Distribution {i} Co"),
            vec![Role::Distributor],
        );
        p.country = CountryCode::parse("CN").expect("c");
        c.enroll(d, &maker, h(format!("dist-{i}")), p)
            .expect("enroll dist");
    }
    let users_n = parties_n - 2 - DISTRIBUTORS;
    let users: Vec<KeyPair> = (0..users_n).map(|i| derive(DISTRIBUTORS + i)).collect();
    // End user j is enrolled (and supplied) by distributor j % DISTRIBUTORS.
    dists.par_iter().enumerate().for_each(|(d, dk)| {
        let c = Client::new(&ledger, Arc::clone(&clock));
        for j in (d..users_n).step_by(DISTRIBUTORS) {
            let name = if j % (users_n / 50).max(1) == 0 {
                format!("{} Branch {}", LISTED[j % LISTED.len()], j)
            } else {
                invented(j)
            };
            let mut p = profile(&name, vec![Role::EndUser]);
            p.country = CountryCode::parse("CN").expect("c");
            c.enroll(&users[j], dk, h(format!("user-{j}")), p)
                .expect("enroll user");
        }
    });
    eprintln!(
        "  {} parties enrolled in {:.1} s",
        parties_n,
        t.elapsed().as_secs_f64()
    );
    let m = maker.party_id();
    let units: Vec<UnitId> = (0..units_n)
        .map(|i| UnitId::custody(&m, "SEQ", &format!("S{i:08}")).expect("u"))
        .collect();
    let cn = CountryCode::parse("CN").expect("c");
    let lots: Vec<&[UnitId]> = units.chunks(LOT).collect();
    lots.par_iter().enumerate().for_each(|(i, lot)| {
        let c = Client::new(&ledger, Arc::clone(&clock));
        c.register(&maker, lot.to_vec(), None, None)
            .expect("register");
        let d = &dists[i % DISTRIBUTORS];
        let t = c
            .transfer(&maker, &d.party_id(), lot, Text::parse("S").expect("t"), cn)
            .expect("transfer");
        c.accept(d, &t.hash, &[], Some(end_use())).expect("accept");
    });
    eprintln!(
        "  {} units registered and shipped to distributors in {:.1} s",
        units_n,
        t.elapsed().as_secs_f64()
    );
    // Each distributor splits its units evenly over its end users.
    dists.par_iter().enumerate().for_each(|(d, dk)| {
        let c = Client::new(&ledger, Arc::clone(&clock));
        let mine: Vec<UnitId> = lots
            .iter()
            .enumerate()
            .filter(|(i, _)| i % DISTRIBUTORS == d)
            .flat_map(|(_, l)| l.iter().cloned())
            .collect();
        let buyers: Vec<usize> = (d..users_n).step_by(DISTRIBUTORS).collect();
        let per = mine.len().div_ceil(buyers.len().max(1)).max(1);
        for (batch, &j) in mine.chunks(per).zip(&buyers) {
            let t = c
                .transfer(
                    dk,
                    &users[j].party_id(),
                    batch,
                    Text::parse("S").expect("t"),
                    cn,
                )
                .expect("transfer");
            c.accept(&users[j], &t.hash, &[], Some(end_use()))
                .expect("accept");
        }
    });
    eprintln!(
        "  built: {} events in {:.1} s",
        ledger.store().len().expect("len"),
        t.elapsed().as_secs_f64()
    );
    let lists = SledLists::open(ledger.store().db()).expect("lists");
    let el = include_bytes!("../src/cli/demo/entity-list-2019-10-09.csv");
    let file = |n: &str| Input {
        name: n.into(),
        bytes: std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/sanctions/ofac-sdn-2021")
                .join(n),
        )
        .expect("read"),
    };
    import_into(
        &lists,
        SourceKind::Csl,
        Some("entity-list"),
        &[Input {
            name: "el.csv".into(),
            bytes: el.to_vec(),
        }],
        "2026-11-30T00:00:00Z",
    )
    .expect("import el");
    let ofac: Vec<Input> = ["sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv"]
        .iter()
        .map(|n| file(n))
        .collect();
    import_into(
        &lists,
        SourceKind::OfacSdn,
        None,
        &ofac,
        "2026-11-30T00:00:00Z",
    )
    .expect("import ofac");
}

fn main() {
    let units_n = env("BENCH_UNITS", 1_000_000);
    let parties_n = env("BENCH_PARTIES", 10_000);
    let runs = env("BENCH_RUNS", 3);
    let tmp;
    let dir: PathBuf = match std::env::var("BENCH_DIR") {
        Ok(d) => PathBuf::from(d).join(format!("resolve-{units_n}-{parties_n}")),
        Err(_) => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().join("ledger")
        }
    };
    if !dir.join("built").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "building a ledger of {units_n} units and {parties_n} parties in {}",
            dir.display()
        );
        build(&dir, units_n, parties_n);
        std::fs::write(dir.join("built"), "").expect("mark");
    }
    // The deny-list update of each run: one entry naming one end user of distributor 0
    // (which has lots) whose name is not a listed one, a different one each run.
    let users_n = parties_n - 2 - DISTRIBUTORS;
    let victims: Vec<usize> = (users_n * 4 / 10 / DISTRIBUTORS * DISTRIBUTORS..users_n)
        .step_by(DISTRIBUTORS)
        .filter(|j| j % (users_n / 50).max(1) != 0)
        .collect();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut cli_all = vec![];
    let mut cli_every = vec![];
    let mut stages: Vec<[f64; 3]> = vec![];
    let mut ceil = vec![];
    let mut scan = vec![];
    let mut decode = vec![];
    let mut cli_import = vec![];
    let mut lib_changed = vec![];
    let mut touched = 0;
    let mut changed_n = 0;
    let mut flagged = 0;
    let mut events = 0;
    let mut rss = 0;
    for run in 0..runs {
        ceil.push(verify_ceiling());
        let (secs, out, peak) = cli(&dir, &["resolve", "--all", "--flagged"]);
        cli_all.push(secs);
        let (secs, every, _) = cli(
            &dir,
            &["resolve", "--all", "--flagged", "--verify-signatures"],
        );
        cli_every.push(secs);
        let counts = |text: &str| {
            let v: serde_json::Value = serde_json::from_str(text).expect("json");
            v["counts"].clone()
        };
        assert_eq!(
            counts(&out),
            counts(&every),
            "anchored and signature-checked agree"
        );
        rss = rss.max(peak);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["units"].as_u64(), Some(units_n as u64));
        flagged = v["resolutions"].as_array().map_or(0, Vec::len);
        // The library's stages, and a raw scan of the log for the I/O floor.
        let store = SledStore::open(&dir).expect("open");
        let name = store.meta().expect("meta").expect("a ledger").name;
        events = store.len().expect("len");
        let t = Instant::now();
        let mut bytes = 0usize;
        let mut i = 0;
        while i < events {
            let e = store
                .entries(LogIndex::new(i), LogIndex::new((i + 4096).min(events)))
                .expect("entries");
            bytes += e.iter().map(|x| x.event.len()).sum::<usize>();
            i += 4096;
        }
        scan.push(t.elapsed().as_secs_f64());
        decode.push(decode_floor(&store, events));
        let lists = SledLists::open(store.db()).expect("lists");
        let (ix, _) = index_latest(&lists).expect("index");
        let o = Options {
            thresholds: Thresholds::default(),
            stale_pending_days: 30,
            now: Timestamp::clamped(1_800_000_000),
            dwell: DwellRule::default(),
            signatures: custody::resolve::Signatures::Anchored,
        };
        let marks = std::sync::Mutex::new(vec![]);
        let t = Instant::now();
        let sum = resolve_all(
            &store,
            &name,
            &ix,
            &o,
            &|stage, _, _| {
                let mut m = marks.lock().expect("lock");
                if m.last().is_none_or(|(s, _): &(String, f64)| s != stage) {
                    m.push((stage.to_owned(), t.elapsed().as_secs_f64()));
                }
            },
            |r| Ok(r.verdict != custody::resolve::Verdict::Clear),
        )
        .expect("resolve_all");
        let total = t.elapsed().as_secs_f64();
        let m = marks.into_inner().expect("lock");
        let at = |s: &str| m.iter().find(|(n, _)| n == s).map_or(0.0, |x| x.1);
        stages.push([
            at("screen parties"),
            at("judge units") - at("screen parties"),
            total - at("judge units"),
        ]);
        assert_eq!(sum.resolutions.len(), flagged);
        drop(lists);
        drop(store);
        // One entry added: the import reports the changed verdicts.
        let deny = dir.with_extension(format!("deny-{run}.json"));
        let victim = invented(victims[(stamp as usize + run) % victims.len()]);
        std::fs::write(
            &deny,
            format!(r#"[{{"id": "B1", "name": "{victim}", "country": "CN", "listed_on": "2026-01-01"}}]"#),
        )
        .expect("deny");
        let (secs, out, _) = cli(
            &dir,
            &[
                "lists",
                "import",
                deny.to_str().expect("utf-8"),
                "--source",
                "denylist",
                "--name",
                &format!("bench-deny-{stamp}-{run}"),
            ],
        );
        cli_import.push(secs);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        touched = v["verdict_changes"]["units_touched"].as_u64().unwrap_or(0);
        changed_n = v["verdict_changes"]["changes"]
            .as_array()
            .map_or(0, Vec::len);
        // The same comparison through the library, timed alone.
        let store = SledStore::open(&dir).expect("open");
        let lists = SledLists::open(store.db()).expect("lists");
        let list = format!("bench-deny-{stamp}-{run}");
        let (old, _) = index_as_of(&lists, Some((&list, 0))).expect("old");
        let (new, _) = index_latest(&lists).expect("new");
        let peers = custody::resolve::Peers::of(vec![], DwellRule::default());
        let t = Instant::now();
        let c = changed(&store, &name, &old, &new, &o, &peers).expect("changed");
        lib_changed.push(t.elapsed().as_secs_f64());
        assert_eq!(c.units_touched, touched);
        eprintln!(
            "run {run}: resolve --all {:.2} s; import + changes {secs:.2} s; {} log bytes",
            cli_all[run], bytes
        );
        drop(lists);
        drop(store);
    }
    let st = |k: usize| median(stages.iter().map(|s| s[k]).collect());
    let all = median(cli_all.clone());
    let ca = median(ceil);
    let dec = median(decode);
    println!("custody bench (resolve): {units_n} units, {parties_n} parties, {events} events, {runs} runs; medians");
    println!("  verify_strict ceiling, all cores        {ca:>10.0} /s  -> {:.2} s for every event of the log", events as f64 / ca);
    println!(
        "  raw scan of the log from sled           {:>10.2} s",
        median(scan)
    );
    println!("  decode every event, all cores (floor)   {dec:>10.2} s");
    println!("  custody resolve --all --flagged (CLI)   {all:>10.2} s  ({flagged} units flagged; anchored to the latest checkpoint; target < 10 s)");
    println!(
        "    the same, --verify-signatures         {:>10.2} s",
        median(cli_every)
    );
    println!(
        "    peak RSS of that process              {:>10} MiB",
        rss / 1024
    );
    println!(
        "    library: check + replay the log       {:>10.2} s  (decode floor / this = {:.2})",
        st(0),
        dec / st(0)
    );
    println!(
        "    library: screen every party           {:>10.2} s",
        st(1)
    );
    println!(
        "    library: judge every unit             {:>10.2} s",
        st(2)
    );
    println!(
        "  list update adding one entry: lists import + verdict report (CLI) {:>6.2} s",
        median(cli_import)
    );
    println!("    library `changed`                     {:>10.2} s  ({touched} units touched of {units_n}; {changed_n} verdicts changed)", median(lib_changed));
}
