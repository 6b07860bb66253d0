//! The seed scenario as ledger events, on the example keys embedded in the binary.
//!
//! Invented companies, real agencies. A US maker of genetic analyzers and forensic DNA
//! kits ships to its authorized distributor in Shanghai. The distributor sells to a
//! university hospital (clear), and also to a trading company in Urumqi that the maker
//! never authorized, which passes instruments and kits to the Korla city public security
//! bureau (declared parent: the Bayingolin prefecture bureau, under the XUAR bureau) in
//! June 2021, and kits to a company owned by the XPCC. One transfer to Korla is never
//! accepted; a service engineer finds the hospital's instrument in a police forensic lab;
//! the distributor sits on one instrument for two years. Along the way the ledger refuses
//! a double transfer and an accept by the wrong party.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use crate::client::{Client, ClientError};
use crate::core::event::{EndUse, Owner, Profile, Role};
use crate::core::ids::{EventHash, Handle, PartyId};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Region, Text, Timestamp};
use crate::keys::KeyPair;
use crate::ledger::{Clock, Receipt};

const KEYS: [(&str, &str); 10] = [
    (
        "custody-operator",
        include_str!("../../../keys-example/operator.pem"),
    ),
    (
        "helix-genomics",
        include_str!("../../../keys-example/helix-genomics.pem"),
    ),
    (
        "helix-field-service",
        include_str!("../../../keys-example/helix-field-service.pem"),
    ),
    (
        "huangpu-life-sciences",
        include_str!("../../../keys-example/huangpu-life-sciences.pem"),
    ),
    (
        "lakeside-university-hospital",
        include_str!("../../../keys-example/lakeside-university-hospital.pem"),
    ),
    (
        "tianshan-scientific",
        include_str!("../../../keys-example/tianshan-scientific.pem"),
    ),
    (
        "xuar-psb",
        include_str!("../../../keys-example/xuar-psb.pem"),
    ),
    (
        "bayingolin-psb",
        include_str!("../../../keys-example/bayingolin-psb.pem"),
    ),
    (
        "korla-psb",
        include_str!("../../../keys-example/korla-psb.pem"),
    ),
    (
        "bingtuan-forensic-supplies",
        include_str!("../../../keys-example/bingtuan-forensic-supplies.pem"),
    ),
];

fn key(handle: &str) -> Result<KeyPair> {
    let pem = KEYS
        .iter()
        .find(|(h, _)| *h == handle)
        .with_context(|| format!("no embedded demo key {handle}"))?
        .1;
    let sk = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| anyhow::anyhow!("embedded demo key {handle}: {e}"))?;
    Ok(KeyPair::from_signing(sk)?)
}

/// The demo's clock: the scenario happens in 2019–2021, whatever today is.
#[derive(Clone)]
pub struct DemoClock(Arc<AtomicI64>);

impl DemoClock {
    pub fn new() -> Self {
        Self(Arc::new(AtomicI64::new(0)))
    }
    pub fn clock(&self) -> Clock {
        let t = Arc::clone(&self.0);
        Arc::new(move || Timestamp::clamped(t.load(Ordering::SeqCst)))
    }
    /// Moves to `date` (YYYY-MM-DD, 09:00 UTC); never backwards.
    pub fn set(&self, date: &str) -> Result<()> {
        let t = Timestamp::parse(&format!("{date}T09:00:00Z"))?.unix();
        self.0.fetch_max(t, Ordering::SeqCst);
        Ok(())
    }
}

/// The units of the scenario, named for the verdicts they end with.
#[derive(serde::Serialize)]
pub struct Units {
    /// At the Korla PSB since June 2021: sanctioned_end.
    pub korla_instrument: UnitId,
    /// The hospital's instrument, observed in a police forensic lab: diverted.
    pub diverted_instrument: UnitId,
    /// Offered to the Korla PSB, never accepted: sanctioned_pending, gone dark.
    pub dark_instrument: UnitId,
    /// Held two years by the distributor before the hospital: review (long_dwell).
    pub slow_instrument: UnitId,
    /// At the hospital: clear.
    pub hospital_kits: Vec<UnitId>,
    /// At the Korla PSB: sanctioned_end.
    pub korla_kits: Vec<UnitId>,
    /// At the XPCC-owned company: review before OFAC's 2021 list, sanctioned_end after.
    pub xpcc_kits: Vec<UnitId>,
    #[serde(skip)]
    pub refused: Vec<String>,
}

fn profile(
    name: &str,
    aliases: &[&str],
    region: &str,
    role: Role,
    parent: Option<PartyId>,
    owners: Vec<Owner>,
) -> Result<Profile> {
    Ok(Profile {
        legal_name: Text::parse(name)?,
        aliases: aliases
            .iter()
            .map(|a| Text::parse(a))
            .collect::<Result<_, _>>()?,
        country: CountryCode::parse(&region[..2])?,
        region: Some(Region::parse(region)?),
        address: None,
        roles: vec![role],
        parent,
        owners,
        gs1_company_prefixes: if role == Role::Manufacturer {
            vec!["0614141".into()]
        } else {
            vec![]
        },
    })
}

fn end_use(who: &str, what: &str) -> Result<EndUse> {
    Ok(EndUse {
        end_user: Text::parse(who)?,
        end_user_party: None,
        end_use: Text::parse(what)?,
        destination_country: CountryCode::parse("CN")?,
        no_restricted_retransfer: true,
    })
}

/// Handoffs at given dates, within China.
struct Ship<'a, 'l> {
    c: &'a Client<'l>,
    time: &'a DemoClock,
}

impl Ship<'_, '_> {
    /// `from` ships `units` to `to` on `sent`; the transfer's hash.
    fn send(
        &self,
        from: &KeyPair,
        to: &KeyPair,
        units: &[UnitId],
        shipment: &str,
        sent: &str,
    ) -> Result<EventHash> {
        self.time.set(sent)?;
        let cn = CountryCode::parse("CN")?;
        Ok(self
            .c
            .transfer(from, &to.party_id(), units, Text::parse(shipment)?, cn)?
            .hash)
    }

    /// `to` accepts on `received`, declaring (end user, end use), or nothing.
    fn receive(
        &self,
        to: &KeyPair,
        t: &EventHash,
        received: &str,
        decl: Option<(&str, &str)>,
    ) -> Result<()> {
        self.time.set(received)?;
        let eu = decl.map(|(who, what)| end_use(who, what)).transpose()?;
        self.c.accept(to, t, &[], eu)?;
        Ok(())
    }

    fn handoff(
        &self,
        from: &KeyPair,
        to: &KeyPair,
        units: &[UnitId],
        shipment: &str,
        (sent, received): (&str, &str),
        decl: Option<(&str, &str)>,
    ) -> Result<()> {
        let t = self.send(from, to, units, shipment, sent)?;
        self.receive(to, &t, received, decl)
    }
}

/// Writes the scenario into the ledger behind `c`; `say` narrates.
pub fn build(c: &Client<'_>, time: &DemoClock, say: &dyn Fn(&str)) -> Result<Units> {
    let h = Handle::parse;
    let op = key("custody-operator")?;
    let maker = key("helix-genomics")?;
    let svc = key("helix-field-service")?;
    let dist = key("huangpu-life-sciences")?;
    let hospital = key("lakeside-university-hospital")?;
    let trader = key("tianshan-scientific")?;
    let xuar = key("xuar-psb")?;
    let bayingolin = key("bayingolin-psb")?;
    let korla = key("korla-psb")?;
    let bingtuan = key("bingtuan-forensic-supplies")?;

    time.set("2019-06-03")?;
    let p = |n: &str, a: &[&str], r: &str, role, parent| profile(n, a, r, role, parent, vec![]);
    c.genesis(
        &op,
        h("custody-operator")?,
        p(
            "Custody Ledger Operator",
            &[],
            "US-NY",
            Role::Operator,
            None,
        )?,
    )?;
    c.enroll(
        &maker,
        &op,
        h("helix-genomics")?,
        p(
            "Helix Genomics Inc.",
            &[],
            "US-CA",
            Role::Manufacturer,
            None,
        )?,
    )?;
    c.enroll(
        &svc,
        &maker,
        h("helix-field-service")?,
        p(
            "Helix Field Service LLC",
            &[],
            "US-CA",
            Role::Servicer,
            None,
        )?,
    )?;
    c.enroll(
        &dist,
        &maker,
        h("huangpu-life-sciences")?,
        p(
            "Huangpu Life Science Instruments Co., Ltd.",
            &["黄浦生命科学仪器有限公司"],
            "CN-SH",
            Role::Distributor,
            None,
        )?,
    )?;
    c.enroll(
        &hospital,
        &dist,
        h("lakeside-university-hospital")?,
        p(
            "Shanghai Lakeside University Hospital",
            &[],
            "CN-SH",
            Role::EndUser,
            None,
        )?,
    )?;
    // Enrolled by the operator: outside the maker's sponsorship tree (never authorized).
    c.enroll(
        &trader,
        &op,
        h("tianshan-scientific")?,
        p(
            "Tianshan Scientific Trading Co., Ltd.",
            &["天山科学贸易有限公司"],
            "CN-XJ",
            Role::Distributor,
            None,
        )?,
    )?;
    c.enroll(
        &xuar,
        &op,
        h("xuar-psb")?,
        p(
            "Xinjiang Uyghur Autonomous Region Public Security Department",
            &["新疆维吾尔自治区公安厅"],
            "CN-XJ",
            Role::EndUser,
            None,
        )?,
    )?;
    c.enroll(
        &bayingolin,
        &op,
        h("bayingolin-psb")?,
        p(
            "Bayingolin Mongolian Autonomous Prefecture Public Security Bureau",
            &["巴音郭楞蒙古自治州公安局"],
            "CN-XJ",
            Role::EndUser,
            Some(xuar.party_id()),
        )?,
    )?;
    c.enroll(
        &korla,
        &op,
        h("korla-psb")?,
        p(
            "Korla City Public Security Bureau",
            &["Kuerle Shi Gong'an Ju", "库尔勒市公安局"],
            "CN-XJ",
            Role::EndUser,
            Some(bayingolin.party_id()),
        )?,
    )?;
    let xpcc = Owner {
        name: Text::parse("Xinjiang Production and Construction Corps")?,
        party: None,
        share_bps: 10_000,
    };
    c.enroll(
        &bingtuan,
        &trader,
        h("bingtuan-forensic-supplies")?,
        profile(
            "Shihezi Bingtuan Forensic Supplies Co., Ltd.",
            &[],
            "CN-XJ",
            Role::EndUser,
            None,
            vec![xpcc],
        )?,
    )?;
    say("2019-06  enrolled 10 parties, each with proof of key possession and a sponsor:\n          helix-genomics (US maker) authorizes huangpu-life-sciences (Shanghai distributor);\n          tianshan-scientific (Urumqi trading company) is enrolled by the operator, NOT by the maker;\n          korla-psb declares parent bayingolin-psb, which declares parent xuar-psb;\n          bingtuan-forensic-supplies declares itself 100% owned by the XPCC");

    time.set("2019-07-15")?;
    let m = maker.party_id();
    let seq = |s: &str| UnitId::custody(&m, "SEQ-3500", s);
    let (sn1, sn2, sn3, sn4) = (
        seq("SN0001")?,
        seq("SN0002")?,
        seq("SN0003")?,
        seq("SN0004")?,
    );
    let instruments = vec![sn1.clone(), sn2.clone(), sn3.clone(), sn4.clone()];
    let kits: Vec<UnitId> = (1..=40)
        .map(|i| UnitId::parse(&format!("urn:epc:id:sgtin:0614141.812345.K{i:03}")))
        .collect::<Result<_, _>>()?;
    c.register(
        &maker,
        instruments.clone(),
        Some(Text::parse("L2019-07")?),
        Some(Text::parse("Helix SEQ-3500 Genetic Analyzer")?),
    )?;
    c.register(
        &maker,
        kits.clone(),
        Some(Text::parse("K2019-07")?),
        Some(Text::parse("Helix HID-24 forensic STR identification kit")?),
    )?;
    say("2019-07  registered 4 genetic analyzers (maker serials SN0001-SN0004) and a lot of 40 forensic DNA kits (GS1 SGTIN)");

    let ship = Ship { c, time };
    let all: Vec<UnitId> = instruments.iter().chain(&kits).cloned().collect();
    let decl = Some((
        "research and clinical laboratories in China",
        "resale to research and clinical customers",
    ));
    ship.handoff(
        &maker,
        &dist,
        &all,
        "AWB 176-2019-0801",
        ("2019-08-01", "2019-08-05"),
        decl,
    )?;
    say("2019-08  helix-genomics → huangpu-life-sciences: all 44 units, accepted with an end-use declaration");

    let mut refused = Vec::new();
    let mut refuse = |what: &str, r: Result<Receipt, ClientError>| match r {
        Ok(_) => refused.push(format!("UNEXPECTED: {what} was accepted")),
        Err(e) => {
            say(&format!("          refused as it should be ({what}): {e}"));
            refused.push(e.to_string());
        }
    };
    let cn = CountryCode::parse("CN")?;
    let dup = c.transfer(
        &maker,
        &hospital.party_id(),
        &instruments[..1],
        Text::parse("AWB dup")?,
        cn,
    );
    refuse("a double transfer", dup);

    let hospital_kits = kits[..25].to_vec();
    let to_hospital: Vec<UnitId> = std::iter::once(sn2.clone())
        .chain(hospital_kits.iter().cloned())
        .collect();
    let t = ship.send(&dist, &hospital, &to_hospital, "SF 8812-0920", "2019-09-20")?;
    refuse(
        "an accept by a party that is not the recipient",
        c.accept(&trader, &t, &[], None),
    );
    let decl = Some((
        "Shanghai Lakeside University Hospital",
        "clinical genetics and paternity testing",
    ));
    ship.receive(&hospital, &t, "2019-09-23", decl)?;
    say("2019-09  huangpu-life-sciences → lakeside-university-hospital: SN0002 + 25 kits, accepted with an end-use declaration");

    let korla_kits = kits[25..35].to_vec();
    let xpcc_kits = kits[35..].to_vec();
    let to_trader: Vec<UnitId> = [sn1.clone(), sn3.clone()]
        .into_iter()
        .chain(korla_kits.iter().cloned())
        .chain(xpcc_kits.iter().cloned())
        .collect();
    let decl = Some(("Xinjiang University", "academic population genetics"));
    ship.handoff(
        &dist,
        &trader,
        &to_trader,
        "SF 8812-1120",
        ("2019-11-20", "2019-11-24"),
        decl,
    )?;
    say("2019-11  huangpu-life-sciences → tianshan-scientific (Urumqi, not authorized by the maker): SN0001, SN0003 + 15 kits,\n          declared for 'academic population genetics'");

    let to_korla: Vec<UnitId> = std::iter::once(sn1.clone())
        .chain(korla_kits.iter().cloned())
        .collect();
    ship.handoff(
        &trader,
        &korla,
        &to_korla,
        "local delivery KRL-0608",
        ("2021-06-08", "2021-06-10"),
        None,
    )?;
    say("2021-06  tianshan-scientific → korla-psb: SN0001 + 10 kits, accepted WITHOUT an end-use declaration");

    let decl = Some((
        "Shihezi Bingtuan Forensic Supplies Co., Ltd.",
        "resale to forensic laboratories",
    ));
    ship.handoff(
        &trader,
        &bingtuan,
        &xpcc_kits,
        "local delivery SHZ-0615",
        ("2021-06-15", "2021-06-18"),
        decl,
    )?;
    say("2021-06  tianshan-scientific → bingtuan-forensic-supplies (owned by the XPCC): 5 kits");

    ship.send(
        &trader,
        &korla,
        std::slice::from_ref(&sn3),
        "local delivery KRL-0701",
        "2021-07-01",
    )?;
    say("2021-07  tianshan-scientific → korla-psb: SN0003, never accepted: the unit goes dark");

    time.set("2021-09-14")?;
    c.observe(
        &svc,
        &korla.party_id(),
        std::slice::from_ref(&sn2),
        Some(Text::parse("Korla, police forensic DNA laboratory")?),
        Some(Text::parse(
            "service visit; the ledger places this unit at the hospital in Shanghai",
        )?),
    )?;
    say("2021-09  helix-field-service finds SN0002 (the hospital's) inside a police forensic laboratory in Korla");

    let decl = Some(("Shanghai Lakeside University Hospital", "clinical genetics"));
    ship.handoff(
        &dist,
        &hospital,
        std::slice::from_ref(&sn4),
        "SF 8812-1001",
        ("2021-10-01", "2021-10-05"),
        decl,
    )?;
    say("2021-10  huangpu-life-sciences → lakeside-university-hospital: SN0004, after holding it for two years");

    Ok(Units {
        korla_instrument: sn1,
        diverted_instrument: sn2,
        dark_instrument: sn3,
        slow_instrument: sn4,
        hospital_kits,
        korla_kits,
        xpcc_kits,
        refused,
    })
}
