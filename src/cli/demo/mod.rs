//! `custody demo`: the seed scenario end to end ([`scenario`]), then what an auditor sees.
//! It builds the ledger in the data directory, imports an Entity List excerpt (the
//! 2019-10-09 Xinjiang rule) and OFAC's 2019 SDN list, resolves every unit, imports
//! OFAC's 2021 list and shows the verdicts it changes, prints the flagged units with their
//! evidence, proves one handoff is in the signed log, and re-verifies the whole ledger.
//!
//! Idempotent: a data directory that holds the demo ledger of an earlier run is replaced
//! (it says so); any other non-empty directory is refused, never touched.

mod scenario;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use serde::Serialize;

use super::{emit, Cli, Format};
use crate::audit;
use crate::chain;
use crate::client::Client;
use crate::core::ids::LedgerName;
use crate::core::unit::UnitId;
use crate::ledger::{system_clock, Ledger};
use crate::resolve::change::Changes;
use crate::resolve::{resolve_all, Resolution, Verdict};
use crate::screen::entry::SourceKind;
use crate::screen::import::Input;
use crate::screen::lists::{self, index_latest, SledLists, SnapshotRef};
use crate::store::{SledStore, Store as _};

#[derive(Args, Debug)]
pub struct DemoArgs {}

const NAME: &str = "custody.example.org/demo";

const ENTITY_LIST: &[u8] = include_bytes!("entity-list-2019-10-09.csv");
const OFAC_2019: [(&str, &[u8]); 4] = [
    (
        "sdn.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2019/sdn.csv"),
    ),
    (
        "alt.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2019/alt.csv"),
    ),
    (
        "add.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2019/add.csv"),
    ),
    (
        "sdn_comments.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2019/sdn_comments.csv"),
    ),
];
const OFAC_2021: [(&str, &[u8]); 4] = [
    (
        "sdn.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2021/sdn.csv"),
    ),
    (
        "alt.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2021/alt.csv"),
    ),
    (
        "add.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2021/add.csv"),
    ),
    (
        "sdn_comments.csv",
        include_bytes!("../../../tests/data/sanctions/ofac-sdn-2021/sdn_comments.csv"),
    ),
];

/// What sled and custody keep in a data directory: the only entries the demo will remove.
const OWN_FILES: [&str; 13] = [
    "db",
    "conf",
    "blobs",
    "log-key.pem",
    "log-entries",
    "log-ends",
    "log-nodes",
    "log-hashes",
    "log-hashes.undo",
    "log-hashes.undo.tmp",
    "log-hashes.new",
    // Written by builds before storage layout 3.
    "merkle-mirror.bin",
    "acknowledged",
];

/// Makes `dir` ready for a fresh demo ledger; says what it did.
fn prepare(dir: &Path) -> Result<&'static str> {
    let entries: Vec<String> = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("created"),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        Ok(rd) => rd
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?,
    };
    if entries.is_empty() {
        return Ok("created");
    }
    let ours = |n: &String| OWN_FILES.contains(&n.as_str()) || n.starts_with("snap.");
    let name = if entries.iter().all(ours) {
        SledStore::open(dir)?.meta()?.map(|m| m.name.to_string())
    } else {
        None
    };
    anyhow::ensure!(
        name.as_deref() == Some(NAME),
        "{} is not empty and does not hold a demo ledger: refusing to touch it; pass --data NEW_DIR",
        dir.display()
    );
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok("replaced the demo ledger of an earlier run (started fresh)")
}

fn inputs(files: &[(&str, &[u8])]) -> Vec<Input> {
    files
        .iter()
        .map(|(n, b)| Input {
            name: (*n).to_owned(),
            bytes: b.to_vec(),
        })
        .collect()
}

#[derive(Serialize)]
struct Stage {
    lists: Vec<SnapshotRef>,
    counts: BTreeMap<&'static str, u64>,
    verdicts: BTreeMap<UnitId, Verdict>,
}

#[derive(Serialize)]
struct Summary {
    ledger: String,
    data_dir: String,
    /// `created`, or that an earlier run's demo ledger was replaced.
    data_dir_was: &'static str,
    events: u64,
    refused: Vec<String>,
    /// The scenario's units, by the part they play.
    units: scenario::Units,
    /// Verdicts against the Entity List excerpt and OFAC's 2019 list.
    before: Stage,
    /// What importing OFAC's 2021 list changed.
    list_update: Changes,
    /// Verdicts against the Entity List excerpt and OFAC's 2021 list.
    after: Stage,
    /// Every unit that is not clear, with its evidence.
    flagged: Vec<Resolution>,
    /// SN0001's chain, every signature checked.
    chain: chain::Chain,
    /// The latest signed checkpoint (C2SP note) and the log's verifier key.
    checkpoint: String,
    verifier_key: String,
    /// Inclusion proof of the last event of SN0001's chain in that checkpoint, verified.
    proof: crate::core::proof::InclusionProof,
    verification: audit::Report,
}

fn resolve_stage(
    ledger: &Ledger<SledStore>,
    l: &SledLists,
    flagged: Option<&mut Vec<Resolution>>,
) -> Result<Stage> {
    let (ix, used) = index_latest(l)?;
    let o = super::resolve::default_options();
    let mut verdicts = BTreeMap::new();
    let mut keep = Vec::new();
    let want = flagged.is_some();
    let sum = resolve_all(ledger.store(), ledger.name(), &ix, &o, &|_, _, _| {}, |r| {
        verdicts.insert(r.unit.clone(), r.verdict);
        Ok(want && r.verdict != Verdict::Clear)
    })?;
    keep.extend(sum.resolutions);
    if let Some(f) = flagged {
        *f = keep;
    }
    Ok(Stage {
        lists: used,
        counts: sum.counts,
        verdicts,
    })
}

fn counts(c: &BTreeMap<&'static str, u64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(cli: &Cli, _a: &DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let dir = cli.data.clone();
    let text = cli.format == Format::Text;
    let say = |s: &str| {
        if text {
            let _ = super::out(&format!("{s}\n"));
        }
    };
    let how = prepare(&dir)?;
    say(&format!(
        "custody demo: forensic DNA equipment from a US maker, every handoff signed and chained\ndata directory {}: {how}\n",
        dir.display()
    ));
    let store = SledStore::open(&dir)?;
    let name = LedgerName::parse(NAME)?;
    let log_key = super::load_or_create_log_key(&dir.join("log-key.pem"))?;
    Ledger::init(&store, &name, &log_key.public)?;
    let time = scenario::DemoClock::new();
    time.set("2019-06-01")?;
    let ledger = Ledger::open(store, time.clock(), log_key.signing)?;
    let c = Client::new(&ledger, time.clock());
    let mut units = scenario::build(&c, &time, &say)?;

    // The lists, in date order: the Entity List rule of 2019-10-09 and OFAC's 2019 list.
    let l = SledLists::open(ledger.store().db())?;
    let now = (system_clock())().to_string();
    let el = [("entity-list-2019-10-09.csv", ENTITY_LIST)];
    let imported =
        lists::import_into(&l, SourceKind::Csl, Some("entity-list"), &inputs(&el), &now)?;
    anyhow::ensure!(
        imported.problems.is_empty(),
        "the embedded Entity List excerpt has bad rows: {:?}",
        imported.problems
    );
    let ofac = lists::import_into(&l, SourceKind::OfacSdn, None, &inputs(&OFAC_2019), &now)?;
    say(&format!(
        "\nimported the Entity List excerpt (FR 2019-10-09, {} entries) and OFAC SDN as of 2019 ({} entries)",
        imported.entries, ofac.entries
    ));
    let before = resolve_stage(&ledger, &l, None)?;
    say(&format!(
        "resolved all {} units: {}",
        before.verdicts.len(),
        counts(&before.counts)
    ));

    // OFAC's 2021 list adds the XUAR Public Security Bureau (GLOMAG) and the XPCC.
    let v2 = lists::import_into(&l, SourceKind::OfacSdn, None, &inputs(&OFAC_2021), &now)?;
    let o = super::resolve::default_options();
    let list_update =
        super::resolve::changes_since(ledger.store(), &l, &name, &o, &v2.name, v2.version - 1)?;
    say(&format!(
        "\nimported OFAC SDN as of 2021 (v{}: {} added, {} removed, {} changed entries); verdicts: {}",
        v2.version,
        v2.diff.added.len(),
        v2.diff.removed.len(),
        v2.diff.changed.len(),
        super::resolve::render_changes(&list_update)
    ));
    let mut flagged = Vec::new();
    let after = resolve_stage(&ledger, &l, Some(&mut flagged))?;
    say(&format!(
        "\nresolved all {} units again: {}\n\nflagged units, with their evidence:",
        after.verdicts.len(),
        counts(&after.counts)
    ));
    say(&super::resolve::render_grouped(&flagged));

    let chain = chain::read(ledger.store(), ledger.name(), &units.korla_instrument)?;
    if text {
        let names = super::read::handles(ledger.store())?;
        super::out(&format!("\n{}\n\n", super::read::render(&chain, &names)))?;
    }
    let cp = ledger.checkpoint()?;
    let last = chain
        .events
        .last()
        .context("a registered unit has at least one event")?;
    let proof = crate::log::prove_inclusion(ledger.store(), last.index, cp.checkpoint.size)?;
    let entry = ledger
        .store()
        .entry(last.index)?
        .context("a chain event is in the log")?;
    anyhow::ensure!(
        proof.leaf_hash == crate::core::merkle::entry_leaf_hash(entry.integrated_at, &entry.event),
        "the proof's leaf is not the event's"
    );
    proof
        .verify_against(&cp.checkpoint)
        .context("the demo's inclusion proof does not verify")?;
    cp.verify(ledger.verifier_key())
        .context("the demo's checkpoint does not verify")?;
    say(&format!(
        "signed checkpoint of the global Merkle log (C2SP), verifier key {}:\n{}",
        ledger.verifier_key(),
        cp.to_note()
    ));
    say(&format!(
        "event {} (log index {}, SN0001's delivery to korla-psb) is in that tree: inclusion proof of {} hashes verified\n",
        last.hash,
        last.index,
        proof.hashes.len()
    ));
    let report = audit::verify_ledger(ledger.store(), |_, _| {})?;
    anyhow::ensure!(
        report.ok,
        "the demo ledger failed verification: {:?}",
        report.failure
    );
    let summary = Summary {
        ledger: name.to_string(),
        data_dir: dir.display().to_string(),
        data_dir_was: how,
        events: report.events_checked,
        refused: std::mem::take(&mut units.refused),
        before,
        list_update,
        after,
        flagged,
        chain,
        checkpoint: cp.to_note(),
        verifier_key: ledger.verifier_key().to_string(),
        proof,
        verification: report,
        units,
    };
    drop(c);
    drop(ledger);
    let data = if dir == Path::new(super::DEFAULT_DATA) {
        String::new()
    } else {
        format!(" --data {}", dir.display())
    };
    let secs = started.elapsed().as_secs_f64();
    emit(cli.format, &summary, |s| {
        format!(
            "verified the whole ledger from disk: {} events, every signature, chain link and rule OK, and the tree reproduces every checkpoint ({secs:.1} s)\n\n\
             next, on this ledger:\n  \
             custody{data} resolve --all --flagged          # every unit that is not clear\n  \
             custody{data} resolve helix-genomics/SEQ-3500/SN0001   # one unit, with evidence\n  \
             custody{data} verify                           # re-verify everything offline\n  \
             custody{data} serve                            # the HTTP API on 127.0.0.1:7433",
            s.events
        )
    })
}
