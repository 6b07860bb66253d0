//! Wire types of events (FORMAT.md §2). These mirror `schemas/*.schema.json` field for
//! field; every struct refuses unknown fields, and `Option`/empty fields are omitted
//! when absent so that each event has exactly one normal form (FORMAT.md §3).

use serde::{Deserialize, Serialize};

use super::ids::{EventHash, Handle, PartyId, PublicKey};
use super::unit::UnitId;
use super::values::{CountryCode, Region, Text, Timestamp};

/// A party's role. `operator` is held only by the party enrolled in the genesis event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Operator,
    Manufacturer,
    Distributor,
    EndUser,
    Servicer,
}

impl Role {
    /// Roles only the operator may grant.
    #[must_use]
    pub const fn privileged(self) -> bool {
        matches!(self, Role::Operator | Role::Manufacturer)
    }
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Manufacturer => "manufacturer",
            Role::Distributor => "distributor",
            Role::EndUser => "end_user",
            Role::Servicer => "servicer",
        }
    }
}

/// A declared owner and its share in basis points (5000 = 50.00 %).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub name: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<PartyId>,
    pub share_bps: u32,
}

/// What a party says about itself. Screening (a later layer) reads names, country and
/// ownership from here.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub legal_name: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Text>,
    pub country: CountryCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Text>,
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<PartyId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner>,
    /// GS1 company prefixes (6-12 digits) under which this manufacturer registers SGTINs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gs1_company_prefixes: Vec<String>,
}

/// A unit an event touches and the hash of that unit's previous event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitLink {
    pub unit: UnitId,
    pub prev: EventHash,
}

/// The recipient's end-use declaration, carried by `accept`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndUse {
    /// Declared end user, as a name (and a party when it is enrolled).
    pub end_user: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user_party: Option<PartyId>,
    /// Declared end use, e.g. "clinical genetics research".
    pub end_use: Text,
    pub destination_country: CountryCode,
    /// The recipient commits not to re-transfer to restricted parties and to flow this
    /// obligation down to its own recipients.
    pub no_restricted_retransfer: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetireReason {
    Destroyed,
    Decommissioned,
    Lost,
    Stolen,
}

impl RetireReason {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RetireReason::Destroyed => "destroyed",
            RetireReason::Decommissioned => "decommissioned",
            RetireReason::Lost => "lost",
            RetireReason::Stolen => "stolen",
        }
    }
}

/// The signed content of an event; `type` selects the variant.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Genesis(Genesis),
    Enroll(Enroll),
    Update(Update),
    RotateKey(RotateKey),
    RevokeKey(RevokeKey),
    Register(Register),
    Transfer(Transfer),
    Accept(Accept),
    Reject(Reject),
    Cancel(Cancel),
    Observe(Observe),
    Retire(Retire),
}

/// Log index 0: creates the ledger's operator party. Signed by every listed key.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub at: Timestamp,
    pub party: PartyId,
    pub handle: Handle,
    pub profile: Profile,
    pub keys: Vec<PublicKey>,
}

/// Enrolls a party. Signed by every listed key (proof of possession) and by the sponsor.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enroll {
    pub at: Timestamp,
    pub party: PartyId,
    pub handle: Handle,
    pub profile: Profile,
    pub keys: Vec<PublicKey>,
    pub sponsor: PartyId,
}

/// Replaces a party's handle and profile. Signed by the party (and by the operator when
/// it adds a privileged role).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub at: Timestamp,
    pub party: PartyId,
    pub prev: EventHash,
    pub handle: Handle,
    pub profile: Profile,
}

/// Replaces one key by another. Signed by both.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    pub at: Timestamp,
    pub party: PartyId,
    pub prev: EventHash,
    pub old_key: PublicKey,
    pub new_key: PublicKey,
}

/// Revokes a key from `effective` on. Signed by a valid key of the party or by the operator.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    pub at: Timestamp,
    pub party: PartyId,
    pub prev: EventHash,
    pub key: PublicKey,
    pub effective: Timestamp,
    pub reason: Text,
}

/// Creates units (a whole lot at once). Signed by the manufacturer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub at: Timestamp,
    pub manufacturer: PartyId,
    pub units: Vec<UnitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<Text>,
}

/// Offers units to a recipient. Signed by the current holder.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub at: Timestamp,
    pub from: PartyId,
    pub to: PartyId,
    pub units: Vec<UnitLink>,
    pub shipment: Text,
    pub destination_country: CountryCode,
}

/// Takes custody of some or all units of a pending transfer. Signed by the recipient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    pub at: Timestamp,
    pub by: PartyId,
    pub transfer: EventHash,
    pub units: Vec<UnitLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_use: Option<EndUse>,
}

/// Refuses units of a pending transfer; they stay with the sender. Signed by the recipient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    pub at: Timestamp,
    pub by: PartyId,
    pub transfer: EventHash,
    pub units: Vec<UnitLink>,
    pub reason: Text,
}

/// Withdraws units of a pending transfer. Signed by the sender.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    pub at: Timestamp,
    pub by: PartyId,
    pub transfer: EventHash,
    pub units: Vec<UnitLink>,
    pub reason: Text,
}

/// Attests that units were seen at a party. Signed by a servicer or the units' manufacturer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observe {
    pub at: Timestamp,
    pub observer: PartyId,
    pub seen_at: PartyId,
    pub units: Vec<UnitLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Text>,
}

/// Ends units' lives. Signed by the holder, or by the manufacturer for `lost`/`stolen`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retire {
    pub at: Timestamp,
    pub by: PartyId,
    pub units: Vec<UnitLink>,
    pub reason: RetireReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Text>,
}

/// One signature: the signing public key and the 64-byte ed25519 signature, both
/// standard base64.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub key: PublicKey,
    pub sig: SigBytes,
}

/// 64 signature bytes, standard base64 with padding on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SigBytes(pub [u8; 64]);

impl std::fmt::Debug for SigBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigBytes({})", String::from(*self))
    }
}
impl TryFrom<String> for SigBytes {
    type Error = super::error::FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        use base64::Engine as _;
        let bad = || super::error::FieldError::Invalid {
            kind: "signature",
            value: s.chars().take(100).collect(),
            rule: "64 bytes in standard base64 with padding",
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&s)
            .map_err(|_| bad())?;
        Ok(Self(raw.try_into().map_err(|_| bad())?))
    }
}
impl From<SigBytes> for String {
    fn from(s: SigBytes) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s.0)
    }
}

/// A body with its signatures, as submitted and as stored in the log.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub body: Body,
    pub signatures: Vec<Signature>,
}

impl Body {
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Body::Genesis(_) => "genesis",
            Body::Enroll(_) => "enroll",
            Body::Update(_) => "update",
            Body::RotateKey(_) => "rotate_key",
            Body::RevokeKey(_) => "revoke_key",
            Body::Register(_) => "register",
            Body::Transfer(_) => "transfer",
            Body::Accept(_) => "accept",
            Body::Reject(_) => "reject",
            Body::Cancel(_) => "cancel",
            Body::Observe(_) => "observe",
            Body::Retire(_) => "retire",
        }
    }

    #[must_use]
    pub const fn at(&self) -> Timestamp {
        match self {
            Body::Genesis(b) => b.at,
            Body::Enroll(b) => b.at,
            Body::Update(b) => b.at,
            Body::RotateKey(b) => b.at,
            Body::RevokeKey(b) => b.at,
            Body::Register(b) => b.at,
            Body::Transfer(b) => b.at,
            Body::Accept(b) => b.at,
            Body::Reject(b) => b.at,
            Body::Cancel(b) => b.at,
            Body::Observe(b) => b.at,
            Body::Retire(b) => b.at,
        }
    }

    /// The unit links of events that extend unit chains (empty for party events and
    /// `register`, whose units have no previous event).
    #[must_use]
    pub fn unit_links(&self) -> &[UnitLink] {
        match self {
            Body::Transfer(b) => &b.units,
            Body::Accept(b) => &b.units,
            Body::Reject(b) => &b.units,
            Body::Cancel(b) => &b.units,
            Body::Observe(b) => &b.units,
            Body::Retire(b) => &b.units,
            _ => &[],
        }
    }

    /// Every unit this event touches, in the order the event lists them.
    #[must_use]
    pub fn units(&self) -> Vec<&UnitId> {
        match self {
            Body::Register(b) => b.units.iter().collect(),
            _ => self.unit_links().iter().map(|l| &l.unit).collect(),
        }
    }

    /// The party whose party chain this event starts or extends, if any.
    #[must_use]
    pub fn party_subject(&self) -> Option<&PartyId> {
        match self {
            Body::Genesis(b) => Some(&b.party),
            Body::Enroll(b) => Some(&b.party),
            Body::Update(b) => Some(&b.party),
            Body::RotateKey(b) => Some(&b.party),
            Body::RevokeKey(b) => Some(&b.party),
            _ => None,
        }
    }
}
