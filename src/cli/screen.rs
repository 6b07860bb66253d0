//! `custody lists …` and `custody screen`: sanctions list snapshots in the data directory,
//! and screening names or ledger parties against them.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{emit, Cli};
use crate::screen::entry::{Date, SourceKind};
use crate::screen::hierarchy::{Finding, PartyScreening, Screener};
use crate::screen::lists::{self, ListStore, SledLists};
use crate::screen::matcher::{Candidate, Query, Thresholds};
use crate::store::{SledStore, Store as _};

/// Problem rows listed in text output (JSON lists all).
const SHOWN: usize = 10;

#[derive(Args, Debug)]
pub struct ListsArgs {
    #[command(subcommand)]
    pub cmd: Option<ListsCommand>,
}

#[derive(Subcommand, Debug)]
pub enum ListsCommand {
    /// Import a list file as a new version (OFAC: sdn.csv or its directory).
    Import(ImportArgs),
    /// Show every imported list (latest version).
    Show,
    /// What changed between two versions of a list (default: the last two).
    Diff(DiffArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// ofac-sdn, csl, opensanctions or denylist.
    #[arg(long)]
    pub source: SourceKind,
    /// The list's name in this ledger (default: the source).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// List name.
    pub name: String,
    #[arg(long)]
    pub from: Option<u32>,
    #[arg(long)]
    pub to: Option<u32>,
}

#[derive(Args, Debug)]
pub struct ScreenArgs {
    /// A name to screen (any script), or with --party a ledger party (handle or id).
    pub name: String,
    /// Screen a ledger party with its declared parent and owners.
    #[arg(long)]
    pub party: bool,
    /// ISO 3166-1 code or name of the country the name belongs to.
    #[arg(long)]
    pub country: Option<String>,
    /// Only listings in force on this date (YYYY-MM-DD) count.
    #[arg(long)]
    pub date: Option<String>,
    /// Match threshold (default 0.86).
    #[arg(long = "match")]
    pub matched: Option<f64>,
    /// Review threshold (default 0.70).
    #[arg(long)]
    pub review: Option<f64>,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

fn store(cli: &Cli) -> Result<(SledStore, SledLists)> {
    std::fs::create_dir_all(&cli.data)
        .with_context(|| format!("creating {}", cli.data.display()))?;
    let s =
        SledStore::open(&cli.data).with_context(|| format!("opening {}", cli.data.display()))?;
    let l = SledLists::open(s.db())?;
    Ok((s, l))
}

#[derive(Serialize)]
struct ImportOut {
    #[serde(flatten)]
    outcome: lists::Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict_changes: Option<crate::resolve::change::Changes>,
}

#[derive(Serialize)]
struct ListInfo {
    name: String,
    kind: SourceKind,
    version: u32,
    content_hash: String,
    imported_at: String,
    entries: usize,
    problems: usize,
}

pub fn run(cli: &Cli, cmd: &ListsCommand) -> Result<()> {
    let (ledger, l) = store(cli)?;
    match cmd {
        ListsCommand::Import(a) => {
            let files = lists::inputs(a.source, &a.file)?;
            let now = (crate::ledger::system_clock())().to_string();
            let o = lists::import_into(&l, a.source, a.name.as_deref(), &files, &now)?;
            // With a ledger here, say which verdicts the new version changes.
            let verdict_changes = match ledger.meta()? {
                Some(meta) if !o.unchanged => {
                    let opts = super::resolve::default_options();
                    Some(super::resolve::changes_since(
                        &ledger,
                        &l,
                        &meta.name,
                        &opts,
                        &o.name,
                        o.version - 1,
                    )?)
                }
                _ => None,
            };
            let out = ImportOut {
                outcome: o,
                verdict_changes,
            };
            emit(cli.format, &out, |x| {
                let o = &x.outcome;
                let mut s = if o.unchanged {
                    format!(
                        "{} v{} unchanged (same files, {} entries)",
                        o.name, o.version, o.entries
                    )
                } else {
                    format!(
                        "{} v{}: {} entries (content hash {})\n  vs v{}: {} added, {} removed, {} changed",
                        o.name,
                        o.version,
                        o.entries,
                        o.content_hash,
                        o.diff.from_version,
                        o.diff.added.len(),
                        o.diff.removed.len(),
                        o.diff.changed.len()
                    )
                };
                for p in o.problems.iter().take(SHOWN) {
                    s.push_str(&format!(
                        "\n  not imported: {} line {}: {}",
                        p.file, p.line, p.reason
                    ));
                }
                if o.problems.len() > SHOWN {
                    s.push_str(&format!(
                        "\n  … and {} more rows not imported (--format json lists them all)",
                        o.problems.len() - SHOWN
                    ));
                }
                if let Some(c) = &x.verdict_changes {
                    s.push_str("\nverdicts: ");
                    s.push_str(&super::resolve::render_changes(c));
                }
                s
            })
        }
        ListsCommand::Show => {
            let mut out = Vec::new();
            for (name, v) in l.names()? {
                if let Some(s) = l.get(&name, v)? {
                    out.push(ListInfo {
                        name,
                        kind: s.kind,
                        version: v,
                        content_hash: s.content_hash,
                        imported_at: s.imported_at,
                        entries: s.entries.len(),
                        problems: s.problems.len(),
                    });
                }
            }
            emit(cli.format, &out, |v| {
                if v.is_empty() {
                    return "no lists imported: custody lists import FILE --source ofac-sdn|csl|opensanctions|denylist".into();
                }
                v.iter()
                    .map(|i| {
                        format!(
                            "{:<16} {:<14} v{:<3} {:>6} entries  {} problems  imported {}  sha256 {}",
                            i.name,
                            i.kind.as_str(),
                            i.version,
                            i.entries,
                            i.problems,
                            i.imported_at,
                            &i.content_hash[..16]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        ListsCommand::Diff(a) => {
            let latest = l
                .latest(&a.name)?
                .ok_or_else(|| lists::ListError::Unknown(a.name.clone()))?;
            let to_v = a.to.unwrap_or(latest.version);
            let get = |v: u32| -> Result<crate::screen::entry::Snapshot> {
                Ok(l.get(&a.name, v)?.ok_or(lists::ListError::NoVersion {
                    name: a.name.clone(),
                    version: v,
                })?)
            };
            let to = get(to_v)?;
            let from = match a.from.or_else(|| to_v.checked_sub(1).filter(|v| *v > 0)) {
                Some(v) => Some(get(v)?),
                None => None,
            };
            let d = lists::diff(from.as_ref(), &to);
            emit(cli.format, &d, |d| {
                let mut s = format!(
                    "{} v{} → v{}: {} added, {} removed, {} changed",
                    a.name,
                    d.from_version,
                    d.to_version,
                    d.added.len(),
                    d.removed.len(),
                    d.changed.len()
                );
                for (id, n) in &d.added {
                    s.push_str(&format!("\n  + {id} {n}"));
                }
                for (id, n) in &d.removed {
                    s.push_str(&format!("\n  - {id} {n}"));
                }
                for c in &d.changed {
                    s.push_str(&format!(
                        "\n  ~ {} {} ({})",
                        c.id,
                        c.name,
                        c.fields.join(", ")
                    ));
                }
                s
            })
        }
    }
}

#[derive(Serialize)]
struct ScreenOut {
    query: String,
    country: Option<String>,
    date: Option<Date>,
    thresholds: Thresholds,
    /// Every snapshot screened against.
    lists: Vec<lists::SnapshotRef>,
    candidates: Vec<Candidate>,
}

fn render_candidate(c: &Candidate) -> String {
    let toks: Vec<String> = c
        .tokens
        .iter()
        .map(|t| {
            if t.query == t.name {
                t.query.clone()
            } else {
                format!("{}~{}({:.2})", t.query, t.name, t.similarity)
            }
        })
        .collect();
    format!(
        "{:?} {:.3}  {}:{} {}\n    matched name: {}\n    forms: \"{}\" vs \"{}\"\n    tokens: {}\n    rules: {}\n    {}; programs {}; listed {}{}",
        c.level,
        c.score,
        c.list,
        c.entry_id,
        c.entry_name,
        c.matched_name,
        c.query_form,
        c.name_form,
        toks.join(", "),
        c.rules.join("; "),
        c.source_list,
        c.programs.join(", "),
        c.listed_on.map_or("(date not given by the list)".into(), |d| d.to_string()),
        if c.in_force { "" } else { "; NOT in force on the date asked" }
    )
}

fn render_finding(f: &Finding) -> String {
    match f {
        Finding::Listed { candidate } => format!("listed: {}", render_candidate(candidate)),
        Finding::Subordinate { path, ancestor } => format!(
            "subordinate: {} → {}",
            path.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" → "),
            render_finding(ancestor)
        ),
        Finding::Owned { total_bps, owners } => format!(
            "owned {:.2}% by restricted parties: {}",
            f64::from(*total_bps) / 100.0,
            owners
                .iter()
                .map(|o| format!(
                    "{} {:.2}% ({})",
                    o.name,
                    f64::from(o.share_bps) / 100.0,
                    o.restricted_because.join(", ")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

pub fn screen(cli: &Cli, a: &ScreenArgs) -> Result<()> {
    let (s, l) = store(cli)?;
    let (ix, used) = lists::index_latest(&l)?;
    anyhow::ensure!(
        ix.entry_count() > 0,
        "no lists imported: custody lists import FILE --source ofac-sdn|csl|opensanctions|denylist"
    );
    let d = Thresholds::default();
    let th = Thresholds {
        matched: a.matched.unwrap_or(d.matched),
        review: a.review.unwrap_or(d.review),
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&th.matched) && (0.0..=th.matched).contains(&th.review),
        "thresholds: need 0 ≤ review ≤ match ≤ 1"
    );
    let date = a
        .date
        .as_deref()
        .map(Date::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if a.party {
        let id = crate::client::find_party(&s, &a.name)?;
        let mut sc = Screener::new(&ix, &s, th, date);
        let r: PartyScreening = sc.party(&id)?;
        return emit(cli.format, &r, |r| {
            let mut out = format!("{} ({}): {:?}", r.name, r.party, r.status);
            for f in &r.findings {
                out.push_str(&format!("\n  {}", render_finding(f)));
            }
            for c in &r.review {
                out.push_str(&format!("\n  for review: {}", render_candidate(c)));
            }
            for n in &r.notes {
                out.push_str(&format!("\n  note: {n}"));
            }
            out
        });
    }
    let q = Query {
        name: a.name.clone(),
        country: a.country.clone(),
        date,
    };
    let mut candidates = ix.screen(&q, th, a.limit);
    if date.is_some() {
        candidates.retain(|c| c.in_force);
    }
    let out = ScreenOut {
        query: a.name.clone(),
        country: a.country.clone(),
        date,
        thresholds: th,
        lists: used,
        candidates,
    };
    emit(cli.format, &out, |o| {
        if o.candidates.is_empty() {
            return format!(
                "{}: no candidate at or above {:.2}",
                o.query, o.thresholds.review
            );
        }
        o.candidates
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}. {}", i + 1, render_candidate(c)))
            .collect::<Vec<_>>()
            .join("\n")
    })
}
