//! `custody chain`, `unit` and `verify`.

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{emit, open, parse_unit, Cli, Format};
use crate::chain::{self, Chain};
use crate::client::Client;
use crate::core::event::Body;
use crate::core::state::StateRead as _;
use crate::ledger::system_clock;
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

pub fn chain(cli: &Cli, a: &ChainArgs) -> Result<()> {
    let ledger = open(&cli.data)?;
    let client = Client::new(&ledger, system_clock());
    let unit = parse_unit(&client, &a.unit)?;
    let c = chain::read(ledger.store(), ledger.name(), &unit)?;
    let names = handles(ledger.store())?;
    emit(cli.format, &c, |c| render(c, &names))
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
    let ledger = open(&cli.data)?;
    let client = Client::new(&ledger, system_clock());
    let unit = parse_unit(&client, &a.unit)?;
    let rec = ledger
        .store()
        .unit(&unit)?
        .ok_or_else(|| anyhow::anyhow!("unit {unit} is not registered"))?;
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

pub fn verify(cli: &Cli) -> Result<bool> {
    let ledger = open(&cli.data)?;
    let total = ledger.store().len()?;
    let bar = if cli.format == Format::Text {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying {pos}/{len} events [{bar:30}] {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = crate::audit::verify_ledger(ledger.store(), |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    emit(cli.format, &report, |r| {
        match &r.failure {
        None => format!("ledger {} verified: {} events, {} parties, {} units; every signature, chain link, rule and index checks out", r.ledger, r.events_checked, r.parties, r.units),
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
