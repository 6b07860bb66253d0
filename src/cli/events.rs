//! `custody register|transfer|accept|reject|cancel|observe|retire|submit`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{access, emit_receipt, load_key, parse_unit_via, Cli, UnitsArg};
use crate::client::Client;
use crate::core::event::{EndUse, RetireReason};
use crate::core::ids::EventHash;
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Text};
use crate::core::verify::SignedEvent;
use crate::ledger::system_clock;

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Product or model code (with --serial).
    #[arg(long)]
    pub product: Option<String>,
    /// Serial number (repeatable).
    #[arg(long = "serial")]
    pub serials: Vec<String>,
    /// File with one serial per line.
    #[arg(long)]
    pub serials_from: Option<PathBuf>,
    /// GS1 SGTIN URN, urn:epc:id:sgtin:… (repeatable).
    #[arg(long = "sgtin")]
    pub sgtins: Vec<String>,
    #[arg(long)]
    pub lot: Option<String>,
    #[arg(long)]
    pub product_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// Recipient (handle or id).
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub units: UnitsArg,
    /// Shipment reference (airway bill, invoice, …).
    #[arg(long)]
    pub shipment: String,
    /// Destination country, ISO 3166-1 alpha-2.
    #[arg(long)]
    pub destination: String,
}

#[derive(Args, Debug)]
pub struct AcceptArgs {
    /// Hash of the transfer event.
    #[arg(long)]
    pub transfer: String,
    /// Accept only these units (default: every unit still pending in the transfer).
    #[arg(long = "unit")]
    pub units: Vec<String>,
    /// Declared end user (name). Without it the accept carries no end-use declaration.
    #[arg(long)]
    pub end_user: Option<String>,
    /// Declared end user as an enrolled party (handle or id).
    #[arg(long)]
    pub end_user_party: Option<String>,
    /// Declared end use.
    #[arg(long, requires = "end_user")]
    pub end_use: Option<String>,
    /// Final destination country (defaults to the recipient's country).
    #[arg(long, requires = "end_user")]
    pub destination: Option<String>,
    /// Commit not to re-transfer to restricted parties, and to flow this down.
    #[arg(long, requires = "end_user")]
    pub no_restricted_retransfer: bool,
}

#[derive(Args, Debug)]
pub struct EndArgs {
    #[arg(long)]
    pub transfer: String,
    #[arg(long = "unit")]
    pub units: Vec<String>,
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct ObserveArgs {
    /// The party where the units were seen (handle or id).
    #[arg(long)]
    pub seen_at: String,
    #[command(flatten)]
    pub units: UnitsArg,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct RetireArgs {
    #[command(flatten)]
    pub units: UnitsArg,
    /// destroyed, decommissioned, lost or stolen.
    #[arg(long, value_parser = parse_reason)]
    pub reason: RetireReason,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// File holding one signed envelope (JSON), or "-" for stdin.
    pub file: PathBuf,
}

fn parse_reason(s: &str) -> Result<RetireReason, String> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
        format!("unknown reason {s:?}: expected destroyed, decommissioned, lost or stolen")
    })
}

fn opt_text(s: Option<&String>) -> Result<Option<Text>> {
    Ok(s.map(|x| Text::parse(x)).transpose()?)
}

fn units(client: &Client<'_>, v: &[String]) -> Result<Vec<UnitId>> {
    v.iter().map(|u| parse_unit_via(client, u)).collect()
}

pub fn register(cli: &Cli, a: &RegisterArgs) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let maker = client.owner(&key)?;
    let mut serials = a.serials.clone();
    if let Some(f) = &a.serials_from {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        serials.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    let mut ids = Vec::new();
    if !serials.is_empty() {
        let product = a.product.as_deref().context("--serial needs --product")?;
        for s in &serials {
            ids.push(UnitId::custody(&maker, product, s)?);
        }
    }
    for s in &a.sgtins {
        ids.push(UnitId::parse(s)?);
    }
    anyhow::ensure!(
        !ids.is_empty(),
        "nothing to register: pass --product with --serial/--serials-from, or --sgtin"
    );
    let r = client.register(
        &key,
        ids,
        opt_text(a.lot.as_ref())?,
        opt_text(a.product_name.as_ref())?,
    )?;
    emit_receipt(cli.format, "register", r)
}

pub fn transfer(cli: &Cli, a: &TransferArgs) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let to = client.party(&a.to)?;
    let u = units(&client, &a.units.units)?;
    let r = client.transfer(
        &key,
        &to,
        &u,
        Text::parse(&a.shipment)?,
        CountryCode::parse(&a.destination)?,
    )?;
    emit_receipt(cli.format, "transfer", r)
}

pub fn accept(cli: &Cli, a: &AcceptArgs) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let me = client.owner(&key)?;
    let end_use = match &a.end_user {
        None => None,
        Some(name) => {
            let country = match &a.destination {
                Some(c) => CountryCode::parse(c)?,
                None => {
                    ledger
                        .party(&me)?
                        .context("acting party vanished")?
                        .profile
                        .country
                }
            };
            Some(EndUse {
                end_user: Text::parse(name)?,
                end_user_party: a
                    .end_user_party
                    .as_deref()
                    .map(|p| client.party(p))
                    .transpose()?,
                end_use: Text::parse(a.end_use.as_deref().context("--end-user needs --end-use")?)?,
                destination_country: country,
                no_restricted_retransfer: a.no_restricted_retransfer,
            })
        }
    };
    let t = EventHash::parse(&a.transfer)?;
    let r = client.accept(&key, &t, &units(&client, &a.units)?, end_use)?;
    emit_receipt(cli.format, "accept", r)
}

pub fn end(cli: &Cli, a: &EndArgs, reject: bool) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let t = EventHash::parse(&a.transfer)?;
    let u = units(&client, &a.units)?;
    let reason = Text::parse(&a.reason)?;
    if reject {
        emit_receipt(cli.format, "reject", client.reject(&key, &t, &u, reason)?)
    } else {
        emit_receipt(cli.format, "cancel", client.cancel(&key, &t, &u, reason)?)
    }
}

pub fn observe(cli: &Cli, a: &ObserveArgs) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let seen = client.party(&a.seen_at)?;
    let u = units(&client, &a.units.units)?;
    let r = client.observe(
        &key,
        &seen,
        &u,
        opt_text(a.location.as_ref())?,
        opt_text(a.note.as_ref())?,
    )?;
    emit_receipt(cli.format, "observe", r)
}

pub fn retire(cli: &Cli, a: &RetireArgs) -> Result<()> {
    let ledger = access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    let key = load_key(cli.key.as_deref())?;
    let u = units(&client, &a.units.units)?;
    let r = client.retire(&key, &u, a.reason, opt_text(a.note.as_ref())?)?;
    emit_receipt(cli.format, "retire", r)
}

pub fn submit(cli: &Cli, a: &SubmitArgs) -> Result<()> {
    let mut bytes = Vec::new();
    if a.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    }
    let ledger = access(cli)?;
    let signed = SignedEvent::decode(&bytes)?;
    let kind = signed.envelope().body.kind();
    let ev = signed.verify(ledger.ledger_name())?;
    emit_receipt(cli.format, kind, ledger.append(ev)?)
}
