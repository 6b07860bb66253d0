//! `custody chain`, `unit` and `verify`.

use anyhow::{Context as _, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{emit, open_store, parse_unit, Cli, Format};
use crate::chain::{self, Chain};
use crate::core::event::Body;
use crate::core::state::StateRead as _;
use crate::store::{SledStore, Store};

#[derive(Args, Debug)]
pub struct ChainArgs {
    /// Unit: URN or MANUFACTURER/PRODUCT/SERIAL.
    pub unit: String,
}

#[derive(Args, Debug)]
pub struct UnitArgs {
    pub unit: String,
}

/// Party handles for display, from the store.
pub fn handles(store: &SledStore) -> Result<crate::core::state::MemState> {
    let mut s = crate::core::state::MemState::default();
    for p in store.parties()? {
        s.parties.insert(p.id.clone(), p);
    }
    Ok(s)
}

/// The ledger name recorded in a store.
pub fn ledger_name(store: &SledStore) -> Result<crate::core::ids::LedgerName> {
    Ok(store
        .meta()?
        .ok_or_else(|| anyhow::anyhow!("the data directory holds no initialized ledger"))?
        .name)
}

/// Reads from a server: the unit named as the user typed it, resolved there.
fn remote_unit(
    url: &str,
    unit: &str,
) -> Result<(crate::remote::Remote, crate::core::unit::UnitId)> {
    let r = crate::remote::Remote::connect(url)?;
    let c = crate::client::Client::new(&r, crate::ledger::system_clock());
    let u = super::parse_unit_via(&c, unit)?;
    Ok((r, u))
}

pub fn chain(cli: &Cli, a: &ChainArgs) -> Result<()> {
    if let Some(url) = &cli.server {
        let (r, u) = remote_unit(url, &a.unit)?;
        let v = r
            .get_json(&format!("/v1/units/{u}/chain"))?
            .ok_or_else(|| anyhow::anyhow!("unit {u} is not registered"))?;
        let c: Chain = serde_json::from_value(v)?;
        // The server says it verified; check it here too, trusting nothing.
        chain::check(crate::client::Access::ledger_name(&r), &c)?;
        let mut names = crate::core::state::MemState::default();
        for p in crate::client::Access::parties(&r)? {
            names.parties.insert(p.id.clone(), p);
        }
        if let Some(out) = graph(cli.format, &c, &names, None) {
            super::out(&out)?;
            return Ok(());
        }
        return emit(cli.format, &c, |c| render(c, &names));
    }
    let store = open_store(&cli.data)?;
    let unit = parse_unit(&store, &a.unit)?;
    let c = chain::read(&store, &ledger_name(&store)?, &unit)?;
    let names = handles(&store)?;
    if matches!(cli.format, Format::Dot | Format::Mermaid | Format::Svg) {
        // Restricted parties are marked when lists are imported.
        let r = super::resolve::resolve_one(&store, &unit).ok().flatten();
        if let Some(out) = graph(cli.format, &c, &names, r.as_ref()) {
            super::out(&out)?;
            return Ok(());
        }
    }
    emit(cli.format, &c, |c| render(c, &names))
}

/// The chain as a custody graph in a graph format; `None` for text and JSON.
fn graph(
    format: Format,
    c: &Chain,
    names: &crate::core::state::MemState,
    r: Option<&crate::resolve::Resolution>,
) -> Option<String> {
    let g = || crate::graph::Graph::of(c, names, r);
    match format {
        Format::Dot => Some(crate::graph::dot::render(&g())),
        Format::Mermaid => Some(crate::graph::mermaid::render(&g())),
        Format::Svg => Some(crate::graph::svg::render(&g())),
        Format::Text | Format::Json => None,
    }
}

pub fn render(c: &Chain, names: &crate::core::state::MemState) -> String {
    let n = |p: &crate::core::ids::PartyId| names.party_ref(p).to_string();
    let mut out = format!(
        "unit {}\nledger {} · {} events · every signature verified\n",
        c.unit.id,
        c.ledger,
        c.events.len()
    );
    for e in &c.events {
        let line = match &e.event.body {
            Body::Register(b) => format!(
                "registered by {}{}",
                n(&b.manufacturer),
                b.lot
                    .as_ref()
                    .map(|l| format!(", lot {l}"))
                    .unwrap_or_default()
            ),
            Body::Transfer(b) => format!(
                "transfer {} → {} (shipment {}, destination {})",
                n(&b.from),
                n(&b.to),
                b.shipment,
                b.destination_country
            ),
            Body::Accept(b) => {
                let eu = match &b.end_use {
                    Some(d) => format!(
                        "; end user {}, end use {}, destination {}{}",
                        d.end_user,
                        d.end_use,
                        d.destination_country,
                        if d.no_restricted_retransfer {
                            ", no re-transfer to restricted parties"
                        } else {
                            ""
                        }
                    ),
                    None => "; NO end-use declaration".into(),
                };
                format!("accepted by {}{eu}", n(&b.by))
            }
            Body::Reject(b) => format!("rejected by {}: {}", n(&b.by), b.reason),
            Body::Cancel(b) => format!("cancelled by {}: {}", n(&b.by), b.reason),
            Body::Observe(b) => format!(
                "observed by {} at {}{}",
                n(&b.observer),
                n(&b.seen_at),
                b.location
                    .as_ref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ),
            Body::Retire(b) => format!("retired by {}: {}", n(&b.by), b.reason.as_str()),
            other => other.kind().to_string(),
        };
        out.push_str(&format!(
            "  #{:<6} {}  {}\n          {}\n",
            e.index,
            e.event.body.at(),
            line,
            e.hash
        ));
    }
    let state = match (&c.unit.retired, &c.unit.pending) {
        (Some(r), _) => format!("retired ({})", r.as_str()),
        (None, Some(p)) => format!("pending transfer {} → {}", n(&p.from), n(&p.to)),
        (None, None) => "held".into(),
    };
    out.push_str(&format!("holder: {} · state: {state}", n(&c.unit.holder)));
    out
}

pub fn unit(cli: &Cli, a: &UnitArgs) -> Result<()> {
    let rec = if let Some(url) = &cli.server {
        let (r, u) = remote_unit(url, &a.unit)?;
        crate::client::Access::unit(&r, &u)?
            .ok_or_else(|| anyhow::anyhow!("unit {u} is not registered"))?
    } else {
        let store = open_store(&cli.data)?;
        let unit = parse_unit(&store, &a.unit)?;
        store
            .unit(&unit)?
            .ok_or_else(|| anyhow::anyhow!("unit {unit} is not registered"))?
    };
    emit(cli.format, &rec, |r| {
        format!(
            "{}\n  holder {}\n  head {} ({} events)\n  pending {}\n  retired {}",
            r.id,
            r.holder,
            r.head,
            r.length,
            r.pending
                .as_ref()
                .map_or("no".into(), |p| p.transfer.to_string()),
            r.retired.map_or("no", |x| x.as_str())
        )
    })
}

/// A progress bar on standard error for text output (hidden for JSON).
pub(crate) fn progress_bar(cli: &Cli, what: &str) -> ProgressBar {
    let bar = if cli.format == Format::Text {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_message(what.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos}/{len} [{bar:30}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Replay at most this many units at a time: a ledger with more units is replayed in
    /// several passes over the log, one per range of unit ids (about 0.4 KB of memory per
    /// unit in a pass; each extra pass re-reads the events of its units).
    #[arg(long, default_value_t = crate::audit::Budget::default().units_per_pass, value_parser = clap::value_parser!(u64).range(1..))]
    pub units_per_pass: u64,
}

pub fn verify(cli: &Cli, a: &VerifyArgs) -> Result<bool> {
    let store = super::open_store_for(&cli.data, crate::store::CacheFor::Scans)?;
    let bar = progress_bar(cli, "verifying events");
    let budget = crate::audit::Budget {
        units_per_pass: a.units_per_pass,
    };
    let report = crate::audit::verify_ledger_within(&store, budget, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    print_report(cli, &report)
}

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// With --server: the log's verifier key, pinned out of band (`NAME+KEYID+BASE64`), or
    /// a file holding it; `--log-key KEY` is accepted as an alias.
    #[arg(long)]
    pub verifier_key: Option<String>,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// `custody audit`: the data directory's whole ledger (as `verify`), or with --server a
/// remote one, replayed from its entries against its signed checkpoint.
pub fn audit(cli: &Cli, a: &AuditArgs) -> Result<bool> {
    let Some(server) = cli.server.as_deref() else {
        return verify(cli, &a.verify);
    };
    let vk = super::bundle::verifier_key_arg(cli, a.verifier_key.as_deref())?.context(
        "audit --server needs --verifier-key (or --log-key KEY): the log key must be pinned out of band",
    )?;
    let vkey = crate::core::checkpoint::VerifierKey::parse(&vk)
        .map_err(|e| anyhow::anyhow!("--verifier-key: {e}"))?;
    let bar = progress_bar(cli, "auditing events");
    let report = crate::audit::remote::audit_remote(server, &vkey, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    print_report(cli, &report)
}

fn print_report(cli: &Cli, report: &crate::audit::Report) -> Result<bool> {
    emit(cli.format, report, |r| {
        match &r.failure {
        None => format!("ledger {} verified: {} events, {} parties, {} units; every signature, chain link, rule and index checks out, and the log reproduces all {} signed checkpoints (up to tree size {})", r.ledger, r.events_checked, r.parties, r.units, r.checkpoints_checked, r.tree_size_verified),
        Some(f) => format!(
            "ledger {} FAILED verification after {} good events\n  check: {}\n  log index: {}\n  stored hash: {}\n  {}",
            r.ledger,
            r.events_checked,
            f.check,
            f.index.map_or("-".into(), |i| i.to_string()),
            f.hash.as_deref().unwrap_or("-"),
            f.detail
        ),
    }
    })?;
    Ok(report.ok)
}
