//! `custody resolve`: verdicts for one unit or all of them, against the imported lists.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{emit, out, parse_unit, Cli, Format};
use crate::core::ids::LedgerName;
use crate::core::receipt::CheckpointRef;
use crate::core::report::SignedReport;
use crate::resolve::change::{changed, Changes};
use crate::resolve::{
    baseline, resolve, resolve_all_within, DwellRule, Options, Peers, Resolution, Signatures,
    Verdict,
};
use crate::screen::lists::{index_as_of, index_latest, ListStore as _, SledLists, SnapshotRef};
use crate::screen::matcher::Thresholds;
use crate::store::{SledStore, Store};

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
    /// A stay is flagged `long_dwell` beyond this many times the peers' median...
    #[arg(long, default_value_t = DwellRule::default().factor)]
    pub dwell_factor: u32,
    /// ...and beyond this many days.
    #[arg(long, default_value_t = DwellRule::default().min_days)]
    pub dwell_min_days: u32,
    /// With --all: replay the custody of at most this many units at a time; a ledger with
    /// more is replayed in several passes over the log, one per range of unit ids.
    #[arg(long, default_value_t = crate::audit::Budget::default().units_per_pass, value_parser = clap::value_parser!(u64).range(1..))]
    pub units_per_pass: u64,
    /// With --all: check every event's signatures again. Without it, the events below the
    /// latest signed checkpoint are taken on that checkpoint (their leaves must rebuild its
    /// root; the ledger checked their signatures when it admitted them), and only the
    /// events past it are signature-checked. `custody verify` always checks everything.
    #[arg(long, requires = "all")]
    pub verify_signatures: bool,
}

/// The options `resolve` uses without flags (also for the report at `lists import`).
pub(crate) fn default_options() -> Options {
    Options {
        thresholds: Thresholds::default(),
        stale_pending_days: 30,
        now: (crate::ledger::system_clock())(),
        dwell: DwellRule::default(),
        signatures: Signatures::Anchored,
    }
}

impl ResolveArgs {
    fn options(&self) -> Options {
        Options {
            thresholds: Thresholds::default(),
            stale_pending_days: self.stale_days,
            now: (crate::ledger::system_clock())(),
            dwell: DwellRule {
                factor: self.dwell_factor,
                min_days: self.dwell_min_days,
                ..DwellRule::default()
            },
            signatures: if self.verify_signatures {
                Signatures::Every
            } else {
                Signatures::Anchored
            },
        }
    }
}

/// The dwell baseline, from the store's completed-stay counters.
pub(crate) fn peers(store: &SledStore, rule: DwellRule) -> Result<Peers> {
    Ok(baseline(store, rule)?)
}

/// What a resolution was computed against, so the same inputs give the same report.
#[derive(Serialize)]
struct Basis {
    ledger: String,
    checkpoint: Option<CheckpointRef>,
    lists: Vec<SnapshotRef>,
    /// The dwell baseline the `long_dwell` flag was judged against.
    peers: Peers,
    /// The time stale transfers and dwell were judged at.
    as_of: crate::core::values::Timestamp,
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
    /// What the log's events were taken on.
    admission: crate::resolve::Admission,
    resolutions: Vec<Resolution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<SignedReport>,
}

#[derive(Serialize)]
struct Changed {
    #[serde(flatten)]
    basis: Basis,
    /// The list version compared with (the latest is the other side).
    since: SnapshotPin,
    #[serde(flatten)]
    changes: Changes,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<SignedReport>,
}

#[derive(Serialize)]
struct SnapshotPin {
    name: String,
    version: u32,
}

/// Text for a change report (also printed by `lists import`).
pub(crate) fn render_changes(c: &Changes) -> String {
    let mut s = format!(
        "{} parties screened before and after: {} changed; {} units re-resolved, {} changed verdict",
        c.parties_screened,
        c.parties_changed.len(),
        c.units_touched,
        c.changes.len()
    );
    for p in &c.parties_changed {
        let note = if p.before == p.after {
            " (the evidence changed)"
        } else {
            ""
        };
        s.push_str(&format!(
            "\n  party {} ({}): {:?} → {:?}{note}",
            p.name, p.party, p.before, p.after
        ));
    }
    // Units that changed the same way for the same parties (a lot) are shown once.
    let mut i = 0;
    let ch = &c.changes;
    while i < ch.len() {
        let same = |a: &crate::resolve::change::Change, b: &crate::resolve::change::Change| {
            (a.before, a.after, &a.because_of) == (b.before, b.after, &b.because_of)
        };
        let j = i + ch[i..].iter().take_while(|x| same(x, &ch[i])).count();
        let units = if j - i == 1 {
            ch[i].unit.to_string()
        } else {
            format!("{} … {} ({} units)", ch[i].unit, ch[j - 1].unit, j - i)
        };
        let why: Vec<String> = ch[i].because_of.iter().map(ToString::to_string).collect();
        s.push_str(&format!(
            "\n  unit {units}: {} → {} because of {}",
            ch[i].before.as_str(),
            ch[i].after.as_str(),
            why.join(", ")
        ));
        if let Some(f) = ch[i].resolution.findings.first() {
            s.push_str(&format!("\n    {}: {}", f.rule, f.detail));
            for b in &f.screening {
                s.push_str(&format!("\n      evidence: {}", basis(b)));
            }
        }
        i = j;
    }
    s
}

/// The change report between list `name` at version `since` and the latest lists.
pub(crate) fn changes_since(
    store: &SledStore,
    lists: &SledLists,
    name: &LedgerName,
    o: &Options,
    list: &str,
    since: u32,
) -> Result<Changes> {
    let (new, _) = index_latest(lists)?;
    let (old, _) = index_as_of(lists, Some((list, since)))?;
    let peers = peers(store, o.dwell)?;
    Ok(changed(store, name, &old, &new, o, &peers)?)
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

/// One line of screening evidence: why a party is restricted.
pub(crate) fn basis(f: &crate::screen::hierarchy::Finding) -> String {
    use crate::screen::hierarchy::Finding;
    match f {
        Finding::Listed { candidate: c } => format!(
            "listed on {} as \"{}\" (entry {}, score {:.3}, {}{})",
            c.list,
            c.entry_name,
            c.entry_id,
            c.score,
            c.listed_on.map_or_else(
                || "listing date not given".to_owned(),
                |d| format!("listed {d}")
            ),
            if c.programs.is_empty() {
                String::new()
            } else {
                format!(", programs {}", c.programs.join(", "))
            }
        ),
        Finding::Subordinate { path, ancestor } => format!(
            "declared subordinate of {}, which is {}",
            path.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" → "),
            basis(ancestor)
        ),
        Finding::Owned { total_bps, owners } => format!(
            "{}% owned by restricted owners: {}",
            total_bps / 100,
            owners
                .iter()
                .map(|o| format!(
                    "{} ({}%, {})",
                    o.name,
                    o.share_bps / 100,
                    o.restricted_because.join(", ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Resolutions as text, consecutive units with the same findings (a lot that travelled
/// together) shown once.
pub(crate) fn render_grouped(rs: &[Resolution]) -> String {
    let mut out: Vec<String> = Vec::new();
    let key = |r: &Resolution| serde_json::to_string(&r.findings).unwrap_or_default();
    let mut i = 0;
    while i < rs.len() {
        let k = key(&rs[i]);
        let j = i + rs[i..].iter().take_while(|r| key(r) == k).count();
        let text = render(&rs[i]);
        out.push(if j - i == 1 {
            text
        } else {
            let rest = text.split_once(": ").map_or("", |(_, r)| r);
            format!(
                "{} … {} ({} units): {rest}",
                rs[i].unit,
                rs[j - 1].unit,
                j - i
            )
        });
        i = j;
    }
    out.join("\n")
}

pub(crate) fn render(r: &Resolution) -> String {
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
        for b in &f.screening {
            s.push_str(&format!("\n      evidence: {}", basis(b)));
        }
        for c in &f.candidates {
            s.push_str(&format!(
                "\n      candidate: {}:{} \"{}\" score {:.3}",
                c.list, c.entry_id, c.entry_name, c.score
            ));
        }
    }
    s
}

/// The resolution of one unit with default options against the imported lists; `None`
/// when no list is imported.
pub(crate) fn resolve_one(
    store: &SledStore,
    unit: &crate::core::unit::UnitId,
) -> Result<Option<crate::resolve::Resolution>> {
    let lists = SledLists::open(store.db())?;
    if lists.names()?.is_empty() {
        return Ok(None);
    }
    let name = super::read::ledger_name(store)?;
    let (ix, _) = index_latest(&lists)?;
    let o = default_options();
    let peers = peers(store, o.dwell)?;
    Ok(Some(resolve(
        store,
        &name,
        &ix,
        unit,
        &o,
        &peers,
        &Arc::default(),
    )?))
}

pub fn run(cli: &Cli, a: &ResolveArgs) -> Result<()> {
    let started = std::time::Instant::now();
    // A whole-ledger resolution reads every record about once: a small cache.
    let cache = if a.all {
        crate::store::CacheFor::Scans
    } else {
        crate::store::CacheFor::Serving
    };
    let store = super::open_store_for(&cli.data, cache)?;
    let name = super::read::ledger_name(&store)?;
    let lists = SledLists::open(store.db())?;
    let (ix, used) = index_latest(&lists)?;
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        "store opened, list index built"
    );
    let o = a.options();
    let mut basis = Basis {
        ledger: name.to_string(),
        checkpoint: store.latest_checkpoint()?.map(|c| CheckpointRef::of(&c)),
        lists: used,
        peers: Peers::of(vec![], o.dwell),
        as_of: o.now,
    };
    if let Some(u) = &a.unit {
        let unit = parse_unit(&store, u)?;
        anyhow::ensure!(
            store.unit(&unit)?.is_some(),
            "unit {unit} is not registered"
        );
        basis.peers = peers(&store, o.dwell)?;
        let r = resolve(&store, &name, &ix, &unit, &o, &basis.peers, &Arc::default())?;
        let mut one = One {
            basis,
            resolution: r,
            signed: None,
        };
        one.signed = sign(cli, &one)?;
        return emit(cli.format, &one, |x| render(&x.resolution));
    }
    if let Some(spec) = &a.changed_since {
        let (n, v) = spec
            .rsplit_once(':')
            .and_then(|(n, v)| v.parse::<u32>().ok().map(|v| (n, v)))
            .ok_or_else(|| anyhow::anyhow!("--changed-since {spec:?}: expected NAME:VERSION"))?;
        anyhow::ensure!(
            lists.latest(n)?.is_some(),
            "--changed-since {spec:?}: no list named {n:?} is imported"
        );
        basis.peers = peers(&store, o.dwell)?;
        let changes = changes_since(&store, &lists, &name, &o, n, v)?;
        let mut out = Changed {
            basis,
            since: SnapshotPin {
                name: n.to_owned(),
                version: v,
            },
            changes,
            signed: None,
        };
        out.signed = sign(cli, &out)?;
        return emit(cli.format, &out, |x| render_changes(&x.changes));
    }
    if let (Some(k), Some(meta)) = (log_key(cli), store.meta()?) {
        // The anchor is the ledger's latest checkpoint under the log key the store names;
        // the operator's own key must be that key.
        anyhow::ensure!(
            k.public == meta.log_key,
            "the log key {} ({}) is not this ledger's log key ({})",
            super::log_key_path(cli).display(),
            k.public,
            meta.log_key
        );
    }
    let bar = super::read::progress_bar(cli, "resolving");
    let progress = |stage: &str, done, total| {
        bar.set_message(stage.to_owned());
        bar.set_length(total);
        bar.set_position(done);
    };
    let wanted = |r: &Resolution| !a.flagged || r.verdict != Verdict::Clear;
    let budget = crate::audit::Budget {
        units_per_pass: a.units_per_pass,
    };
    match (cli.format, a.table) {
        (Format::Json, _) => {
            // Written as judged: memory does not grow with the units reported.
            #[derive(Serialize)]
            struct Head<'a> {
                ledger: &'a str,
                checkpoint: &'a Option<CheckpointRef>,
                lists: &'a [SnapshotRef],
                as_of: crate::core::values::Timestamp,
            }
            let key = log_key(cli);
            let head = Head {
                ledger: &basis.ledger,
                checkpoint: &basis.checkpoint,
                lists: &basis.lists,
                as_of: basis.as_of,
            };
            // Started at the first unit judged, so that a ledger refused before judging
            // (a log that no longer rebuilds its checkpoint) gets only the error.
            let start = || super::resolve_stream::ReportStream::start(&head, key.is_some());
            let mut stream = None;
            let mut failed = None;
            let sum = resolve_all_within(&store, &name, &ix, &o, budget, &progress, |r| {
                if failed.is_none() && stream.is_none() {
                    match start() {
                        Ok(s) => stream = Some(s),
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(s) = stream.as_mut().filter(|_| failed.is_none() && wanted(r)) {
                    failed = s.resolution(r).err();
                }
                Ok(false)
            })?;
            bar.finish_and_clear();
            if let Some(e) = failed {
                return Err(e);
            }
            let stream = match stream {
                Some(s) => s,
                None => start()?,
            };
            let peers = sum.peers.unwrap_or(basis.peers);
            stream.finish(
                sum.units,
                &sum.counts,
                &peers,
                &sum.admission,
                key.as_ref().map(|k| &k.signing),
            )
        }
        (Format::Text, Table::Csv) => {
            out("unit,verdict,rules\n")?;
            let mut failed = None;
            resolve_all_within(&store, &name, &ix, &o, budget, &progress, |r| {
                if failed.is_none() && wanted(r) {
                    let rules: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
                    failed = out(&format!(
                        "{},{},{}\n",
                        r.unit,
                        r.verdict.as_str(),
                        rules.join(";")
                    ))
                    .err();
                }
                Ok(false)
            })?;
            bar.finish_and_clear();
            failed.map_or(Ok(()), Err)
        }
        _ => {
            let sum =
                resolve_all_within(&store, &name, &ix, &o, budget, &progress, |r| Ok(wanted(r)))?;
            bar.finish_and_clear();
            if let Some(p) = sum.peers {
                basis.peers = p;
            }
            let mut all = All {
                basis,
                units: sum.units,
                counts: sum.counts,
                admission: sum.admission,
                resolutions: sum.resolutions,
                signed: None,
            };
            all.signed = sign(cli, &all)?;
            emit(cli.format, &all, |x| {
                let mut s = format!(
                    "{} units resolved: {}",
                    x.units,
                    x.counts
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if !x.resolutions.is_empty() {
                    s.push('\n');
                    s.push_str(&render_grouped(&x.resolutions));
                }
                s
            })
        }
    }
}

/// The signed resolution report of one unit (as `custody resolve UNIT --format json`) and
/// the list entries its findings rely on, for an evidence bundle. Needs the log key.
pub(crate) fn bundle_resolution(
    cli: &Cli,
    store: &SledStore,
    unit: &crate::core::unit::UnitId,
) -> Result<crate::core::bundle::Resolution> {
    let name = super::read::ledger_name(store)?;
    let lists = SledLists::open(store.db())?;
    let (ix, used) = index_latest(&lists)?;
    let o = default_options();
    let peers = peers(store, o.dwell)?;
    let r = resolve(store, &name, &ix, unit, &o, &peers, &Arc::default())?;
    let mut keys = std::collections::BTreeSet::new();
    fn walk(
        f: &crate::screen::hierarchy::Finding,
        keys: &mut std::collections::BTreeSet<(String, String)>,
    ) {
        use crate::screen::hierarchy::Finding;
        match f {
            Finding::Listed { candidate } => {
                keys.insert((candidate.list.clone(), candidate.entry_id.clone()));
            }
            Finding::Subordinate { ancestor, .. } => walk(ancestor, keys),
            Finding::Owned { .. } => {}
        }
    }
    for f in &r.findings {
        for s in &f.screening {
            walk(s, &mut keys);
        }
        for c in &f.candidates {
            keys.insert((c.list.clone(), c.entry_id.clone()));
        }
    }
    let mut list_entries = Vec::new();
    for (list, id) in keys {
        if let Some(snap) = lists.latest(&list)? {
            if let Some(e) = snap.entries.iter().find(|e| e.id == id) {
                list_entries.push(serde_json::json!({"list": list, "version": snap.version, "content_hash": snap.content_hash, "entry": e}));
            }
        }
    }
    let one = One {
        basis: Basis {
            ledger: name.to_string(),
            checkpoint: store.latest_checkpoint()?.map(|c| CheckpointRef::of(&c)),
            lists: used,
            peers,
            as_of: o.now,
        },
        resolution: r,
        signed: None,
    };
    let signed = sign(cli, &one)?.ok_or_else(|| {
        anyhow::anyhow!("--with-resolution signs the report with the log key, which is not in this data directory (pass --log-key FILE)")
    })?;
    Ok(crate::core::bundle::Resolution {
        signed,
        list_entries,
    })
}
