//! `custody init`, `keygen` and `party …`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{emit, emit_receipt, load_key, parse_handle, Cli};
use crate::client::Client;
use crate::core::event::{Owner, Profile, Role};
use crate::core::ids::{LedgerName, PublicKey};
use crate::core::state::PartyRecord;
use crate::core::values::{CountryCode, Region, Text, Timestamp};
use crate::keys::KeyPair;
use crate::ledger::{system_clock, Ledger};
use crate::store::SledStore;

#[derive(Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Unique human handle, e.g. pearl-river-trading.
    #[arg(long)]
    pub handle: String,
    #[arg(long)]
    pub legal_name: String,
    /// Other names (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long)]
    pub country: String,
    /// ISO 3166-2 subdivision, e.g. CN-XJ.
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub address: Option<String>,
    /// manufacturer, distributor, end_user or servicer (repeatable).
    #[arg(long = "role", value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// Declared parent organisation (handle or id).
    #[arg(long)]
    pub parent: Option<String>,
    /// Declared owner as NAME:PERCENT or NAME:PERCENT:PARTY (repeatable).
    #[arg(long = "owner")]
    pub owners: Vec<String>,
    /// GS1 company prefix for SGTIN units (repeatable).
    #[arg(long = "gs1-prefix")]
    pub gs1_prefixes: Vec<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_"))).map_err(|_| {
        format!("unknown role {s:?}: expected manufacturer, distributor, end_user or servicer")
    })
}

impl ProfileArgs {
    pub fn profile(
        &self,
        client: Option<&Client<'_>>,
        extra_role: Option<Role>,
    ) -> Result<Profile> {
        let mut roles = self.roles.clone();
        roles.extend(extra_role);
        roles.sort();
        roles.dedup();
        let party_ref = |s: &str| -> Result<_> {
            let c = client.context("parties can only be referenced in an existing ledger")?;
            Ok(c.party(s)?)
        };
        let owners = self
            .owners
            .iter()
            .map(|o| {
                let mut it = o.splitn(3, ':');
                let name = it.next().unwrap_or_default();
                let pct = it
                    .next()
                    .with_context(|| format!("--owner {o:?}: expected NAME:PERCENT[:PARTY]"))?;
                let pct: f64 = pct
                    .trim_end_matches('%')
                    .parse()
                    .with_context(|| format!("--owner {o:?}: bad percent"))?;
                anyhow::ensure!(
                    (0.0..=100.0).contains(&pct),
                    "--owner {o:?}: percent must be 0-100"
                );
                // Basis points: percent × 100, rounded to the nearest whole basis point.
                let share_bps = (pct * 100.0).round() as u32;
                Ok(Owner {
                    name: Text::parse(name)?,
                    party: it.next().map(party_ref).transpose()?,
                    share_bps,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Profile {
            legal_name: Text::parse(&self.legal_name)?,
            aliases: self
                .aliases
                .iter()
                .map(|a| Text::parse(a))
                .collect::<Result<_, _>>()?,
            country: CountryCode::parse(&self.country)?,
            region: self.region.as_deref().map(Region::parse).transpose()?,
            address: self.address.as_deref().map(Text::parse).transpose()?,
            roles,
            parent: self.parent.as_deref().map(party_ref).transpose()?,
            owners,
            gs1_company_prefixes: self.gs1_prefixes.clone(),
        })
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The ledger's name (origin), e.g. custody.example.org/ledger.
    #[arg(long)]
    pub name: String,
    /// Operator key file: used if it exists, generated there if not.
    #[arg(long)]
    pub operator_key: PathBuf,
    #[command(flatten)]
    pub profile: ProfileArgs,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret key (PKCS#8 PEM, mode 0600; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum PartyCommand {
    /// Enroll a party: signed by its own key (--key) and its sponsor's (--sponsor-key).
    Enroll {
        #[arg(long)]
        sponsor_key: PathBuf,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Replace the acting party's handle and profile.
    Update {
        /// Operator key, needed when adding the manufacturer role.
        #[arg(long)]
        operator_key: Option<PathBuf>,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Replace the acting key (--key) by a new one.
    RotateKey {
        #[arg(long)]
        new_key: PathBuf,
    },
    /// Revoke a key of a party, signed by the party or the operator (--key).
    RevokeKey {
        /// Party (handle or id) whose key is revoked.
        #[arg(long)]
        party: String,
        /// The public key to revoke (base64).
        #[arg(long)]
        revoked: String,
        /// Effective time (default: now); not earlier than now.
        #[arg(long)]
        effective: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Show one party.
    Show { party: String },
    /// List all parties.
    List,
}

pub fn init(cli: &Cli, a: &InitArgs) -> Result<()> {
    let name = LedgerName::parse(&a.name)?;
    let key = if a.operator_key.exists() {
        KeyPair::load(&a.operator_key)?
    } else {
        let k = KeyPair::generate()?;
        k.save(&a.operator_key)?;
        k
    };
    std::fs::create_dir_all(&cli.data)
        .with_context(|| format!("creating {}", cli.data.display()))?;
    let log_key = super::load_or_create_log_key(&super::log_key_path(cli))?;
    let store = SledStore::open(&cli.data)?;
    Ledger::init(&store, &name, &log_key.public)?;
    let ledger = Ledger::open(store, system_clock(), log_key.signing)?;
    let client = Client::new(&ledger, system_clock());
    let profile = a.profile.profile(None, Some(Role::Operator))?;
    let r = client.genesis(&key, parse_handle(&a.profile.handle)?, profile)?;
    emit_receipt(cli.format, "genesis", r)
}

#[derive(Serialize)]
struct KeyInfo {
    file: String,
    public_key: PublicKey,
    party_id: String,
}

pub fn keygen(cli: &Cli, a: &KeygenArgs) -> Result<()> {
    let k = KeyPair::generate()?;
    k.save(&a.out)?;
    let info = KeyInfo {
        file: a.out.display().to_string(),
        public_key: k.public,
        party_id: k.party_id().to_string(),
    };
    emit(cli.format, &info, |i| {
        format!(
            "wrote {} (mode 0600)\n  public key {}\n  party id if enrolled with it {}",
            i.file, i.public_key, i.party_id
        )
    })
}

pub fn run(cli: &Cli, cmd: &PartyCommand) -> Result<()> {
    let ledger = super::access(cli)?;
    let client = Client::new(ledger.as_ref(), system_clock());
    match cmd {
        PartyCommand::Enroll {
            sponsor_key,
            profile,
        } => {
            let new = load_key(cli.key.as_deref())?;
            let sponsor = KeyPair::load(sponsor_key)?;
            let p = profile.profile(Some(&client), None)?;
            let r = client.enroll(&new, &sponsor, parse_handle(&profile.handle)?, p)?;
            emit_receipt(cli.format, "enroll", r)
        }
        PartyCommand::Update {
            operator_key,
            profile,
        } => {
            let key = load_key(cli.key.as_deref())?;
            let op = operator_key.as_deref().map(KeyPair::load).transpose()?;
            let p = profile.profile(Some(&client), None)?;
            let r = client.update(&key, parse_handle(&profile.handle)?, p, op.as_ref())?;
            emit_receipt(cli.format, "update", r)
        }
        PartyCommand::RotateKey { new_key } => {
            let old = load_key(cli.key.as_deref())?;
            let new = KeyPair::load(new_key)?;
            emit_receipt(cli.format, "rotate_key", client.rotate_key(&old, &new)?)
        }
        PartyCommand::RevokeKey {
            party,
            revoked,
            effective,
            reason,
        } => {
            let signer = load_key(cli.key.as_deref())?;
            let party = client.party(party)?;
            let eff = effective.as_deref().map(Timestamp::parse).transpose()?;
            let r = client.revoke_key(
                &signer,
                &party,
                PublicKey::parse(revoked)?,
                eff,
                Text::parse(reason)?,
            )?;
            emit_receipt(cli.format, "revoke_key", r)
        }
        PartyCommand::Show { party } => {
            let id = client.party(party)?;
            let rec = ledger
                .party(&id)?
                .with_context(|| format!("party {id} vanished"))?;
            emit(cli.format, &rec, describe)
        }
        PartyCommand::List => {
            let all = ledger.parties()?;
            emit(cli.format, &all, |v| {
                v.iter()
                    .map(|p| {
                        format!(
                            "{:<32} {:<34} {}  {}",
                            p.handle, p.id, p.profile.country, p.profile.legal_name
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

fn describe(p: &PartyRecord) -> String {
    let roles: Vec<&str> = p.profile.roles.iter().map(|r| r.as_str()).collect();
    let mut s = format!(
        "{} ({})\n  legal name  {}\n  country     {}{}\n  roles       {}\n  enrolled at log index {}{}",
        p.handle,
        p.id,
        p.profile.legal_name,
        p.profile.country,
        p.profile.region.as_ref().map(|r| format!(" / {r}")).unwrap_or_default(),
        roles.join(", "),
        p.enrolled,
        p.sponsor.as_ref().map(|s| format!(", sponsored by {s}")).unwrap_or_default(),
    );
    for k in &p.keys {
        let state = match (k.rotated, k.revoked) {
            (_, Some(e)) => format!("revoked effective {e}"),
            (Some(r), None) => format!("rotated out {r}"),
            (None, None) => "active".into(),
        };
        s.push_str(&format!("\n  key {}  added {}  {state}", k.key, k.added));
    }
    s
}
