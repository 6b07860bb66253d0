//! `custody demo`: the seed scenario on the example keys embedded in the binary. A US maker
//! ships sequencers and forensic kits to a Guangzhou distributor, which passes some on to
//! a sub-distributor in Urumqi, which delivers one to a public security bureau. A servicer
//! later sees a unit there. Along the way the ledger refuses a double transfer and an
//! accept by the wrong party. The demo ends by re-verifying the whole ledger from disk.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use super::{emit, Cli, Format};
use crate::audit;
use crate::chain;
use crate::client::Client;
use crate::core::event::{EndUse, Profile, RetireReason, Role};
use crate::core::ids::{Handle, LedgerName};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Region, Text};
use crate::keys::KeyPair;
use crate::ledger::{system_clock, Ledger};
use crate::store::{SledStore, Store as _};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo ledger in this (new) directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

const KEYS: [(&str, &str); 7] = [
    (
        "custody-operator",
        include_str!("../../keys-example/operator.pem"),
    ),
    (
        "helix-genomics",
        include_str!("../../keys-example/helix-genomics.pem"),
    ),
    (
        "pearl-river-trading",
        include_str!("../../keys-example/pearl-river-trading.pem"),
    ),
    (
        "tianshan-scientific",
        include_str!("../../keys-example/tianshan-scientific.pem"),
    ),
    (
        "urumqi-psb",
        include_str!("../../keys-example/urumqi-psb.pem"),
    ),
    (
        "shanghai-genome-institute",
        include_str!("../../keys-example/shanghai-genome-institute.pem"),
    ),
    (
        "helix-field-service",
        include_str!("../../keys-example/helix-field-service.pem"),
    ),
];

fn key(handle: &str) -> Result<KeyPair> {
    let pem = KEYS
        .iter()
        .find(|(h, _)| *h == handle)
        .context("demo key")?
        .1;
    let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| anyhow::anyhow!("embedded demo key {handle}: {e}"))?;
    Ok(KeyPair::from_signing(sk)?)
}

fn profile(
    name: &str,
    country: &str,
    region: Option<&str>,
    role: Role,
    aliases: &[&str],
) -> Result<Profile> {
    Ok(Profile {
        legal_name: Text::parse(name)?,
        aliases: aliases
            .iter()
            .map(|a| Text::parse(a))
            .collect::<Result<_, _>>()?,
        country: CountryCode::parse(country)?,
        region: region.map(Region::parse).transpose()?,
        address: None,
        roles: vec![role],
        parent: None,
        owners: vec![],
        gs1_company_prefixes: if role == Role::Manufacturer {
            vec!["0614141".into()]
        } else {
            vec![]
        },
    })
}

#[derive(serde::Serialize)]
struct Summary {
    ledger: String,
    data_dir: String,
    events: u64,
    refused: Vec<String>,
    chains: Vec<chain::Chain>,
    /// The latest signed checkpoint (C2SP note) and the log's verifier key.
    checkpoint: String,
    verifier_key: String,
    /// Inclusion proof of the last event of SN0001's chain in that checkpoint, verified.
    proof: crate::core::proof::InclusionProof,
    verification: audit::Report,
}

pub fn run(cli: &Cli, a: &DemoArgs) -> Result<()> {
    let tmp;
    let dir = match &a.keep {
        Some(d) => {
            anyhow::ensure!(
                !d.exists(),
                "--keep {}: directory exists; pass a new one",
                d.display()
            );
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("ledger")
        }
    };
    let text = cli.format == Format::Text;
    let say = |s: &str| {
        if text {
            println!("{s}");
        }
    };
    let store = SledStore::open(&dir)?;
    let name = LedgerName::parse("custody.example.org/demo")?;
    let log_key = super::load_or_create_log_key(&dir.join("log-key.pem"))?;
    Ledger::init(&store, &name, &log_key.public)?;
    let ledger = Ledger::open(store, system_clock(), log_key.signing)?;
    let c = Client::new(&ledger, system_clock());
    let h = |s: &str| Handle::parse(s);

    say("custody demo: a forensic DNA sequencer's journey, every handoff signed and chained\n");
    let op = key("custody-operator")?;
    c.genesis(
        &op,
        h("custody-operator")?,
        profile("Custody Ledger Operator", "US", None, Role::Operator, &[])?,
    )?;
    let maker = key("helix-genomics")?;
    let pearl = key("pearl-river-trading")?;
    let tian = key("tianshan-scientific")?;
    let psb = key("urumqi-psb")?;
    let sgi = key("shanghai-genome-institute")?;
    let svc = key("helix-field-service")?;
    c.enroll(
        &maker,
        &op,
        h("helix-genomics")?,
        profile(
            "Helix Genomics Inc.",
            "US",
            Some("US-CA"),
            Role::Manufacturer,
            &[],
        )?,
    )?;
    c.enroll(
        &svc,
        &op,
        h("helix-field-service")?,
        profile("Helix Field Service LLC", "US", None, Role::Servicer, &[])?,
    )?;
    c.enroll(
        &pearl,
        &maker,
        h("pearl-river-trading")?,
        profile(
            "Pearl River Trading Co., Ltd.",
            "CN",
            Some("CN-GD"),
            Role::Distributor,
            &["Zhujiang Maoyi"],
        )?,
    )?;
    c.enroll(
        &tian,
        &pearl,
        h("tianshan-scientific")?,
        profile(
            "Tianshan Scientific Instruments Co., Ltd.",
            "CN",
            Some("CN-XJ"),
            Role::Distributor,
            &[],
        )?,
    )?;
    c.enroll(
        &psb,
        &tian,
        h("urumqi-psb")?,
        profile(
            "Urumqi Municipal Public Security Bureau",
            "CN",
            Some("CN-XJ"),
            Role::EndUser,
            &["Wulumuqi Shi Gong'an Ju", "乌鲁木齐市公安局"],
        )?,
    )?;
    c.enroll(
        &sgi,
        &pearl,
        h("shanghai-genome-institute")?,
        profile(
            "Shanghai Genome Institute",
            "CN",
            Some("CN-SH"),
            Role::EndUser,
            &[],
        )?,
    )?;
    say("enrolled 7 parties (operator, maker, servicer, two distributors, two end users), each with proof of key possession and a sponsor");

    let m = maker.party_id();
    let seqs: Vec<UnitId> = (1..=4)
        .map(|i| UnitId::custody(&m, "SEQ-3500", &format!("SN{i:04}")))
        .collect::<Result<_, _>>()?;
    let kits: Vec<UnitId> = (1..=20)
        .map(|i| UnitId::parse(&format!("urn:epc:id:sgtin:0614141.812345.K{i:03}")))
        .collect::<Result<_, _>>()?;
    c.register(
        &maker,
        seqs.clone(),
        Some(Text::parse("L2019-07")?),
        Some(Text::parse("Helix SEQ-3500 Genetic Analyzer")?),
    )?;
    c.register(
        &maker,
        kits.clone(),
        Some(Text::parse("K2019-11")?),
        Some(Text::parse("HID forensic identification kit")?),
    )?;
    say("registered 4 sequencers (maker serials) and a lot of 20 forensic kits (GS1 SGTIN)");

    let cn = CountryCode::parse("CN")?;
    let decl = |who: &str, use_: &str| -> Result<EndUse> {
        Ok(EndUse {
            end_user: Text::parse(who)?,
            end_user_party: None,
            end_use: Text::parse(use_)?,
            destination_country: cn,
            no_restricted_retransfer: true,
        })
    };
    let first: Vec<UnitId> = seqs[..3].iter().chain(&kits[..10]).cloned().collect();
    let t1 = c.transfer(
        &maker,
        &pearl.party_id(),
        &first,
        Text::parse("AWB 176-2019-0815")?,
        cn,
    )?;
    c.accept(
        &pearl,
        &t1.hash,
        &[],
        Some(decl(
            "Shanghai Genome Institute",
            "academic genome sequencing",
        )?),
    )?;
    say("helix-genomics → pearl-river-trading: 3 sequencers + 10 kits, accepted with an end-use declaration");

    let mut refused = Vec::new();
    let mut refuse =
        |what: &str, r: Result<crate::ledger::Receipt, crate::client::ClientError>| match r {
            Ok(_) => refused.push(format!("UNEXPECTED: {what} was accepted")),
            Err(e) => {
                if text {
                    println!("  refused as it should be: {e}");
                }
                refused.push(e.to_string());
            }
        };
    refuse(
        "double transfer",
        c.transfer(
            &maker,
            &sgi.party_id(),
            &seqs[..1],
            Text::parse("AWB dup")?,
            cn,
        ),
    );

    let t2 = c.transfer(
        &pearl,
        &tian.party_id(),
        &[seqs[0].clone(), kits[0].clone(), kits[1].clone()],
        Text::parse("SF-EXPRESS 88120")?,
        cn,
    )?;
    refuse(
        "accept by a party that is not the recipient",
        c.accept(&sgi, &t2.hash, &[], None),
    );
    c.accept(
        &tian,
        &t2.hash,
        &[],
        Some(decl("Xinjiang university hospitals", "clinical genetics")?),
    )?;
    say("pearl-river-trading → tianshan-scientific (Urumqi): 1 sequencer + 2 kits");

    let t3 = c.transfer(
        &tian,
        &psb.party_id(),
        &[seqs[0].clone(), kits[0].clone()],
        Text::parse("local delivery 2020-03")?,
        cn,
    )?;
    c.accept(&psb, &t3.hash, &[], None)?;
    say("tianshan-scientific → urumqi-psb: 1 sequencer + 1 kit, accepted WITHOUT an end-use declaration");

    c.observe(
        &svc,
        &psb.party_id(),
        &seqs[0..1],
        Some(Text::parse("Urumqi, forensic laboratory")?),
        Some(Text::parse("annual service visit")?),
    )?;
    say("helix-field-service observed sequencer SN0001 at urumqi-psb on a service visit");

    let t4 = c.transfer(
        &pearl,
        &sgi.party_id(),
        &[seqs[1].clone()],
        Text::parse("SF-EXPRESS 88121")?,
        cn,
    )?;
    c.accept(
        &sgi,
        &t4.hash,
        &[],
        Some(decl(
            "Shanghai Genome Institute",
            "academic genome sequencing",
        )?),
    )?;
    let t5 = c.transfer(
        &pearl,
        &tian.party_id(),
        &[seqs[2].clone()],
        Text::parse("SF-EXPRESS 88122")?,
        cn,
    )?;
    c.reject(&tian, &t5.hash, &[], Text::parse("not ordered")?)?;
    c.retire(
        &maker,
        &seqs[3..4],
        RetireReason::Destroyed,
        Some(Text::parse("demo unit scrapped")?),
    )?;
    say("also: a delivery to shanghai-genome-institute, a rejected shipment and a scrapped demo unit\n");

    let chains = vec![
        chain::read(ledger.store(), ledger.name(), &seqs[0])?,
        chain::read(ledger.store(), ledger.name(), &seqs[1])?,
    ];
    if text {
        let names = super::read::handles(ledger.store())?;
        for ch in &chains {
            println!("{}\n", super::read::render(ch, &names));
        }
    }
    // The global log: the last handoff of SN0001 is provably in the signed tree.
    let cp = ledger.checkpoint()?;
    let last = chains[0]
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
        "event {} (log index {}, SN0001's last handoff) is in that tree: inclusion proof of {} hashes verified\n",
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
        events: report.events_checked,
        refused,
        chains,
        checkpoint: cp.to_note(),
        verifier_key: ledger.verifier_key().to_string(),
        proof,
        verification: report,
    };
    emit(cli.format, &summary, |s| {
        format!(
            "verified the whole ledger from disk: {} events, every signature, chain link and rule OK, and the tree reproduces every checkpoint\n\
             SN0001 ends at urumqi-psb, a public security bureau in Xinjiang: the resolver (sanctions screening) flags such chains.\n\
             data directory: {}{}",
            s.events,
            s.data_dir,
            if a.keep.is_some() { "" } else { " (temporary, removed on exit; use --keep DIR to keep it)" }
        )
    })
}
