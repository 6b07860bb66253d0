//! `custody resolve`: verdicts for one unit or all of them, against the imported lists.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{emit, open_store, parse_unit, Cli, Format};
use crate::core::receipt::CheckpointRef;
use crate::core::report::SignedReport;
use crate::resolve::{resolve, resolve_all, Options, Resolution, Verdict};
use crate::screen::lists::{index_as_of, index_latest, SledLists, SnapshotRef};
use crate::screen::matcher::Thresholds;
use crate::store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Table {
    Text,
    Csv,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The unit (URN or MANUFACTURER/PRODUCT/SERIAL); omit with --all.
    #[arg(required_unless_present = "all")]
    pub unit: Option<String>,
    /// Resolve every unit.
    #[arg(long, conflicts_with = "unit")]
    pub all: bool,
    /// With --all: only units that are not clear.
    #[arg(long, requires = "all")]
    pub flagged: bool,
    /// With --all and text output: a CSV table instead of text.
    #[arg(long, value_enum, default_value_t = Table::Text)]
    pub table: Table,
    /// With --all: only units whose verdict differs from what it was with list NAME at
    /// VERSION (e.g. `ofac-sdn:1` after importing version 2), with both verdicts.
    #[arg(long, value_name = "NAME:VERSION", requires = "all")]
    pub changed_since: Option<String>,
    /// Days after which a pending transfer is a red flag.
    #[arg(long, default_value_t = 30)]
    pub stale_days: i64,
}

/// What a resolution was computed against, so the same inputs give the same report.
#[derive(Serialize)]
struct Basis {
    ledger: String,
    checkpoint: Option<CheckpointRef>,
    lists: Vec<SnapshotRef>,
}

#[derive(Serialize)]
struct One {
    #[serde(flatten)]
    basis: Basis,
    resolution: Resolution,
    /// This object without `signed`, as JSON text, signed by the log key (FORMAT.md §14).
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<SignedReport>,
}

#[derive(Serialize)]
struct All {
    #[serde(flatten)]
    basis: Basis,
    units: u64,
    counts: std::collections::BTreeMap<&'static str, u64>,
    /// With --changed-since: the units whose verdict changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<Change>,
    resolutions: Vec<Resolution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<SignedReport>,
}

#[derive(Serialize)]
struct Change {
    unit: crate::core::unit::UnitId,
    before: Verdict,
    after: Verdict,
}

/// The log key, when this machine has it (the operator's): reports are signed with it.
fn log_key(cli: &Cli) -> Option<crate::keys::KeyPair> {
    crate::keys::KeyPair::load(&super::log_key_path(cli)).ok()
}

fn sign<T: Serialize>(cli: &Cli, v: &T) -> Result<Option<SignedReport>> {
    match log_key(cli) {
        None => Ok(None),
        Some(k) => Ok(Some(SignedReport::sign(
            &k.signing,
            serde_json::to_string(v)?,
        ))),
    }
}

fn render(r: &Resolution) -> String {
    let mut s = format!("{}: {}", r.unit, r.verdict.as_str());
    for f in &r.findings {
        s.push_str(&format!(
            "\n  [{}] {}: {}{}",
            f.verdict.as_str(),
            f.rule,
            f.detail,
            f.index
                .map_or_else(String::new, |i| format!(" (log index {i})"))
        ));
        if let Some(then) = f.restricted_at_the_time {
            s.push_str(if then {
                " — already restricted when it took custody"
            } else {
                " — restricted only later"
            });
        }
    }
    s
}

pub fn run(cli: &Cli, a: &ResolveArgs) -> Result<()> {
    let store = open_store(&cli.data)?;
    let name = super::read::ledger_name(&store)?;
    let lists = SledLists::open(store.db())?;
    let (ix, used) = index_latest(&lists)?;
    let basis = Basis {
        ledger: name.to_string(),
        checkpoint: store.latest_checkpoint()?.map(|c| CheckpointRef::of(&c)),
        lists: used,
    };
    let o = Options {
        thresholds: Thresholds::default(),
        stale_pending_days: a.stale_days,
        now: (crate::ledger::system_clock())(),
    };
    if let Some(u) = &a.unit {
        let unit = parse_unit(&store, u)?;
        anyhow::ensure!(
            store.unit(&unit)?.is_some(),
            "unit {unit} is not registered"
        );
        let r = resolve(&store, &name, &ix, &unit, &o)?;
        let mut one = One {
            basis,
            resolution: r,
            signed: None,
        };
        one.signed = sign(cli, &one)?;
        return emit(cli.format, &one, |x| render(&x.resolution));
    }
    let before = match &a.changed_since {
        None => None,
        Some(spec) => {
            let (n, v) = spec
                .rsplit_once(':')
                .and_then(|(n, v)| v.parse::<u32>().ok().map(|v| (n, v)))
                .ok_or_else(|| {
                    anyhow::anyhow!("--changed-since {spec:?}: expected NAME:VERSION")
                })?;
            Some(index_as_of(&lists, Some((n, v)))?.0)
        }
    };
    let mut changes = Vec::new();
    let sum = resolve_all(&store, &name, &ix, &o, |r| match &before {
        Some(old) => {
            let was = resolve(&store, &name, old, &r.unit, &o)?.verdict;
            if was != r.verdict {
                changes.push(Change {
                    unit: r.unit.clone(),
                    before: was,
                    after: r.verdict,
                });
            }
            Ok(was != r.verdict)
        }
        None => Ok(!a.flagged || r.verdict != Verdict::Clear),
    })?;
    let mut all = All {
        basis,
        units: sum.units,
        counts: sum.counts,
        changes,
        resolutions: sum.resolutions,
        signed: None,
    };
    all.signed = sign(cli, &all)?;
    match (cli.format, a.table) {
        (Format::Text, Table::Csv) => {
            println!("unit,verdict,rules");
            for r in &all.resolutions {
                let rules: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
                println!("{},{},{}", r.unit, r.verdict.as_str(), rules.join(";"));
            }
            Ok(())
        }
        _ => emit(cli.format, &all, |x| {
            let mut s = format!(
                "{} units resolved: {}",
                x.units,
                x.counts
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for c in &x.changes {
                s.push_str(&format!(
                    "\nchanged: {} {} → {}",
                    c.unit,
                    c.before.as_str(),
                    c.after.as_str()
                ));
            }
            for r in &x.resolutions {
                s.push('\n');
                s.push_str(&render(r));
            }
            s
        }),
    }
}
