//! The synthetic but realistic ledger `custody bench` builds: an operator, a manufacturer,
//! distributors it sponsors, end users the distributors sponsor (some carrying the names of
//! the agencies of the embedded Entity List excerpt), units registered in lots of 1,000,
//! shipped to distributors in multi-unit transfers of 100 and accepted (built and appended
//! 100,000 units at a time), then each unit shipped alone to an end user and accepted with an
//! end-use declaration.

use rayon::prelude::*;
use sha2::Digest as _;

use crate::core::event::{
    Accept, Body, EndUse, Enroll, Genesis, Profile, Register, Role, Transfer, UnitLink,
};
use crate::core::ids::{EventHash, Handle, LedgerName};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Text, Timestamp};
use crate::core::verify::{self, SignedEvent, VerifiedEvent};
use crate::keys::KeyPair;

/// A key from a label (deterministic).
pub fn key(label: &str) -> KeyPair {
    let seed: [u8; 32] = sha2::Sha256::digest(label.as_bytes()).into();
    KeyPair::from_signing(ed25519_dalek::SigningKey::from_bytes(&seed))
        .expect("invariant: a SHA-256 seed is a valid Ed25519 secret key")
}

fn text(s: &str) -> Text {
    Text::parse(s).expect("invariant: bench texts are short and printable")
}

fn profile(name: &str, country: &str, role: Role) -> Profile {
    Profile {
        legal_name: text(name),
        aliases: vec![],
        country: CountryCode::parse(country).expect("invariant: a valid country code"),
        region: None,
        address: None,
        roles: vec![role],
        parent: None,
        owners: vec![],
        gs1_company_prefixes: vec![],
    }
}

/// Signs `body` with `keys` and verifies it (the client's work, not timed).
pub fn sign(ledger: &LedgerName, body: Body, keys: &[&KeyPair]) -> VerifiedEvent {
    let ks: Vec<_> = keys.iter().map(|k| &k.signing).collect();
    let env = verify::sign(ledger, body, &ks).expect("invariant: bench bodies sign");
    SignedEvent::from_envelope(env)
        .expect("invariant: bench events pass the shape rules")
        .verify(ledger)
        .expect("invariant: bench events verify under the keys that signed them")
}

pub struct Parties {
    pub op: KeyPair,
    pub maker: KeyPair,
    pub dists: Vec<KeyPair>,
    /// End users, and the distributor index that sponsored each.
    pub users: Vec<(KeyPair, usize)>,
}

/// Genesis and every enrollment, in the order they must be appended (distributors first).
pub fn parties(
    ledger: &LedgerName,
    n: usize,
    listed: &[String],
    at: Timestamp,
) -> (Parties, Vec<Vec<VerifiedEvent>>) {
    let dists_n = (n / 10).max(1);
    let users_n = n.saturating_sub(dists_n + 2).max(1);
    let p = Parties {
        op: key("bench operator"),
        maker: key("bench maker"),
        dists: (0..dists_n)
            .map(|i| key(&format!("bench distributor {i}")))
            .collect(),
        users: (0..users_n)
            .map(|i| (key(&format!("bench end user {i}")), i % dists_n))
            .collect(),
    };
    let h = |s: String| Handle::parse(&s).expect("invariant: bench handles are valid");
    let genesis = sign(
        ledger,
        Body::Genesis(Genesis {
            at,
            party: p.op.party_id(),
            handle: h("operator".into()),
            profile: profile("Bench Operator", "US", Role::Operator),
            keys: vec![p.op.public],
        }),
        &[&p.op],
    );
    let enroll = |k: &KeyPair, sponsor: &KeyPair, handle: String, pr: Profile| {
        sign(
            ledger,
            Body::Enroll(Enroll {
                at,
                party: k.party_id(),
                handle: h(handle),
                profile: pr,
                keys: vec![k.public],
                sponsor: sponsor.party_id(),
            }),
            &[k, sponsor],
        )
    };
    let maker = enroll(
        &p.maker,
        &p.op,
        "maker".into(),
        profile("Bench Instruments Inc.", "US", Role::Manufacturer),
    );
    let dists = p
        .dists
        .par_iter()
        .enumerate()
        .map(|(i, k)| {
            enroll(
                k,
                &p.maker,
                format!("dist-{i}"),
                profile(
                    &format!("Distributor {i} Trading Co., Ltd."),
                    "CN",
                    Role::Distributor,
                ),
            )
        })
        .collect();
    let users = p
        .users
        .par_iter()
        .enumerate()
        .map(|(i, (k, d))| {
            let name = listed
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("End User {i} Hospital"));
            enroll(
                k,
                &p.dists[*d],
                format!("user-{i}"),
                profile(&name, "CN", Role::EndUser),
            )
        })
        .collect();
    (p, vec![vec![genesis], vec![maker], dists, users])
}

pub fn registrations(
    ledger: &LedgerName,
    p: &Parties,
    units: &[UnitId],
    at: Timestamp,
) -> Vec<VerifiedEvent> {
    units
        .par_chunks(LOT)
        .map(|lot| {
            sign(
                ledger,
                Body::Register(Register {
                    at,
                    manufacturer: p.maker.party_id(),
                    units: lot.to_vec(),
                    lot: None,
                    product_name: None,
                }),
                &[&p.maker],
            )
        })
        .collect()
}

/// The bench's units, by index: made again from the index when needed rather than held (at
/// 10M events the ids alone would take ~0.5 GB).
pub struct Units {
    maker: crate::core::ids::PartyId,
}

impl Units {
    #[must_use]
    pub fn new(p: &Parties) -> Self {
        Self {
            maker: p.maker.party_id(),
        }
    }

    /// Unit `i`'s id.
    #[must_use]
    pub fn id(&self, i: usize) -> UnitId {
        UnitId::custody(&self.maker, "SEQ", &format!("B{i:09}"))
            .expect("invariant: a party id, SEQ and a nine-digit serial make a valid unit id")
    }

    /// The ids of units `r`.
    #[must_use]
    pub fn ids(&self, r: std::ops::Range<usize>) -> Vec<UnitId> {
        r.into_par_iter().map(|i| self.id(i)).collect()
    }
}

/// Units per shipment from the maker to a distributor; its group number (counted over the
/// whole ledger) picks the distributor ([`Parties::distributor_of`]).
pub const GROUP: usize = 100;

/// Units per lot registration.
pub const LOT: usize = 1000;

impl Parties {
    /// The distributor that shipment group `g` goes to.
    #[must_use]
    pub fn distributor_of(&self, g: usize) -> usize {
        g % self.dists.len()
    }
}

/// Maker → distributor in transfers of [`GROUP`] units, each accepted. `units` start at group
/// `first_group` and their lot registrations are `registered` (one per [`LOT`] units, from the
/// same start, which is a lot's first unit). Returns the events (all transfers, then all
/// accepts) and, per group, the accept that is its units' head afterwards.
pub fn to_distributors(
    ledger: &LedgerName,
    p: &Parties,
    first_group: usize,
    units: &[UnitId],
    registered: &[EventHash],
    at: Timestamp,
) -> (Vec<VerifiedEvent>, Vec<VerifiedEvent>, Vec<EventHash>) {
    let groups: Vec<(usize, &[UnitId])> = units.chunks(GROUP).enumerate().collect();
    let made: Vec<(VerifiedEvent, VerifiedEvent)> = groups
        .par_iter()
        .map(|(k, us)| {
            let g = first_group + k;
            let d = p.distributor_of(g);
            let links: Vec<UnitLink> = us
                .iter()
                .enumerate()
                .map(|(j, u)| UnitLink {
                    unit: u.clone(),
                    prev: registered[(k * GROUP + j) / LOT],
                })
                .collect();
            let t = sign(
                ledger,
                Body::Transfer(Transfer {
                    at,
                    from: p.maker.party_id(),
                    to: p.dists[d].party_id(),
                    units: links,
                    shipment: text(&format!("AWB {g}")),
                    destination_country: CountryCode::parse("CN").expect("invariant: CN"),
                }),
                &[&p.maker],
            );
            let a = sign(
                ledger,
                Body::Accept(Accept {
                    at,
                    by: p.dists[d].party_id(),
                    transfer: t.hash(),
                    units: us
                        .iter()
                        .map(|u| UnitLink {
                            unit: u.clone(),
                            prev: t.hash(),
                        })
                        .collect(),
                    end_use: None,
                }),
                &[&p.dists[d]],
            );
            (t, a)
        })
        .collect();
    let heads = made.iter().map(|(_, a)| a.hash()).collect();
    let (ts, accs) = made.into_iter().unzip();
    (ts, accs, heads)
}

/// Distributor → end user, one unit per transfer, accepted with an end-use declaration:
/// `(transfer, accept)` per unit.
pub fn to_end_users(
    ledger: &LedgerName,
    p: &Parties,
    units: &[(UnitId, EventHash, usize)],
    at: Timestamp,
) -> Vec<(VerifiedEvent, VerifiedEvent)> {
    // The end users each distributor sponsored.
    let mut of: Vec<Vec<usize>> = vec![vec![]; p.dists.len()];
    for (i, (_, d)) in p.users.iter().enumerate() {
        of[*d].push(i);
    }
    units
        .par_iter()
        .enumerate()
        .map(|(i, (u, head, d))| {
            let mine = &of[*d];
            let user = if mine.is_empty() {
                0
            } else {
                mine[i % mine.len()]
            };
            let (uk, _) = &p.users[user];
            let t = sign(
                ledger,
                Body::Transfer(Transfer {
                    at,
                    from: p.dists[*d].party_id(),
                    to: uk.party_id(),
                    units: vec![UnitLink {
                        unit: u.clone(),
                        prev: *head,
                    }],
                    shipment: text(&format!("SF {i}")),
                    destination_country: CountryCode::parse("CN").expect("invariant: CN"),
                }),
                &[&p.dists[*d]],
            );
            let a = sign(
                ledger,
                Body::Accept(Accept {
                    at,
                    by: uk.party_id(),
                    transfer: t.hash(),
                    units: vec![UnitLink {
                        unit: u.clone(),
                        prev: t.hash(),
                    }],
                    end_use: Some(EndUse {
                        end_user: text("the hospital's genomics laboratory"),
                        end_user_party: Some(uk.party_id()),
                        end_use: text("clinical sequencing"),
                        destination_country: CountryCode::parse("CN").expect("invariant: CN"),
                        no_restricted_retransfer: true,
                    }),
                }),
                &[uk],
            );
            (t, a)
        })
        .collect()
}
