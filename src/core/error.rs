//! The core's error enums: one per stage (field, decode, signature, rule). Every variant
//! names the rule it enforces and the field or party it concerns.

use std::fmt;

use super::ids::{EventHash, Handle, PartyId, PublicKey};
use super::unit::UnitId;
use super::values::Timestamp;

/// A wire value that does not have the shape its type requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("invalid {kind} {value:?}: must be {rule}")]
    Invalid {
        kind: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// Why bytes are not a well-formed event envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event too large: {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("malformed event JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("event is not in normal form: {detail} (omit absent optional fields and empty lists; see FORMAT.md §3)")]
    NotNormalForm { detail: String },
    #[error("field {field}: {rule}")]
    Shape { field: String, rule: &'static str },
}

/// A signature that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signatures[{index}] by key {key} does not verify (verify_strict) over this event's signing input for ledger {ledger}")]
    Invalid {
        index: usize,
        key: PublicKey,
        ledger: String,
    },
    #[error("event cannot be canonicalized: {0}")]
    Canonical(String),
}

/// A party as errors show it: handle and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyRef {
    pub id: PartyId,
    pub handle: Option<Handle>,
}

impl fmt::Display for PartyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.handle {
            Some(h) => write!(f, "{h} ({})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// Why a key cannot sign at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    NotYetValid { from: Timestamp },
    Rotated { at: Timestamp },
    Revoked { effective: Timestamp },
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyState::NotYetValid { from } => write!(f, "not valid before {from}"),
            KeyState::Rotated { at } => write!(f, "rotated out at {at}"),
            KeyState::Revoked { effective } => write!(f, "revoked effective {effective}"),
        }
    }
}

/// A chain or authorization rule the event breaks, judged against ledger state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("genesis refused: a genesis event is only valid as log index 0")]
    GenesisNotFirst,
    #[error(
        "{kind} refused: the ledger has no genesis event yet; the first event must be genesis"
    )]
    NoGenesis { kind: &'static str },
    #[error("{kind} refused: party id {party} does not match its first key; expected {expected}")]
    PartyIdMismatch {
        kind: &'static str,
        party: PartyId,
        expected: PartyId,
    },
    #[error("enroll refused: party {party} is already enrolled")]
    PartyExists { party: PartyRef },
    #[error("{kind} refused: field {field} names party {party}, which is not enrolled")]
    UnknownParty {
        kind: &'static str,
        field: &'static str,
        party: PartyId,
    },
    #[error("{kind} refused: handle {handle} is already taken by {holder}")]
    HandleTaken {
        kind: &'static str,
        handle: Handle,
        holder: PartyRef,
    },
    #[error("{kind} refused: key {key} already belongs to {owner}")]
    KeyInUse {
        kind: &'static str,
        key: PublicKey,
        owner: PartyRef,
    },
    #[error("{kind} refused: missing signature by {party} ({role})")]
    MissingSignature {
        kind: &'static str,
        party: PartyRef,
        role: &'static str,
    },
    #[error("{kind} refused: signature by key {key} is not one this event requires")]
    UnexpectedSignature { kind: &'static str, key: PublicKey },
    #[error("{kind} refused: key {key} of {party} cannot sign at {at}: {state}")]
    KeyNotValid {
        kind: &'static str,
        key: PublicKey,
        party: PartyRef,
        at: Timestamp,
        state: KeyState,
    },
    #[error("{kind} refused: key {key} does not belong to {party}")]
    KeyNotOfParty {
        kind: &'static str,
        key: PublicKey,
        party: PartyRef,
    },
    #[error("enroll refused: sponsor {sponsor} may not sponsor this party: {reason}")]
    SponsorNotAllowed {
        sponsor: PartyRef,
        reason: &'static str,
    },
    #[error("{kind} refused: role {role} can only be granted by the operator")]
    PrivilegedRole {
        kind: &'static str,
        role: &'static str,
    },
    #[error("{kind} refused: field prev of party {party} is {found}, but the party's latest event is {expected}")]
    PartyChainBroken {
        kind: &'static str,
        party: PartyRef,
        expected: EventHash,
        found: EventHash,
    },
    #[error("register refused: unit {unit} is already registered")]
    UnitExists { unit: UnitId },
    #[error("{kind} refused: unit {unit} is not registered")]
    UnknownUnit { kind: &'static str, unit: UnitId },
    #[error("{kind} refused: unit {unit}: field prev is {found}, but the unit's latest event is {expected} (fork, replay or stale view)")]
    ChainBroken {
        kind: &'static str,
        unit: UnitId,
        expected: EventHash,
        found: EventHash,
    },
    #[error(
        "{kind} refused: signer {signer} is not the holder of unit {unit}; holder is {holder}"
    )]
    NotHolder {
        kind: &'static str,
        unit: UnitId,
        signer: PartyRef,
        holder: PartyRef,
    },
    #[error("{kind} refused: unit {unit} has a pending transfer {transfer}; accept, reject or cancel it first")]
    TransferPending {
        kind: &'static str,
        unit: UnitId,
        transfer: EventHash,
    },
    #[error("{kind} refused: unit {unit} is not pending in transfer {transfer}")]
    NotPending {
        kind: &'static str,
        unit: UnitId,
        transfer: EventHash,
    },
    #[error("{kind} refused: signer {signer} is not the {role} of the pending transfer of unit {unit}; that is {expected}")]
    WrongParty {
        kind: &'static str,
        unit: UnitId,
        role: &'static str,
        signer: PartyRef,
        expected: PartyRef,
    },
    #[error("{kind} refused: unit {unit} was retired ({reason})")]
    Retired {
        kind: &'static str,
        unit: UnitId,
        reason: &'static str,
    },
    #[error("register refused: {party} does not have the manufacturer role")]
    NotManufacturer { party: PartyRef },
    #[error(
        "register refused: unit {unit} does not belong to manufacturer {manufacturer}: {reason}"
    )]
    ForeignUnit {
        unit: UnitId,
        manufacturer: PartyRef,
        reason: &'static str,
    },
    #[error("transfer refused: sender and recipient are the same party {party}")]
    SelfTransfer { party: PartyRef },
    #[error("observe refused: {party} is neither a servicer nor the manufacturer of unit {unit}")]
    NotObserver { party: PartyRef, unit: UnitId },
    #[error("{kind} refused: field at {at} is more than {max_skew_secs} s ahead of the ledger clock {now}")]
    ClockAhead {
        kind: &'static str,
        at: Timestamp,
        now: Timestamp,
        max_skew_secs: i64,
    },
    #[error(
        "{kind} refused: field at {at} is earlier than the previous event {previous} of {subject}"
    )]
    TimeBeforePrevious {
        kind: &'static str,
        at: Timestamp,
        previous: Timestamp,
        subject: String,
    },
    #[error("revoke_key refused: field effective {effective} is before the ledger time {now}; revocations cannot be backdated")]
    RevocationBackdated {
        effective: Timestamp,
        now: Timestamp,
    },
    #[error("revoke_key refused: key {key} is already revoked effective {effective}")]
    AlreadyRevoked {
        key: PublicKey,
        effective: Timestamp,
    },
    #[error("{kind} refused: field {field}: {rule}")]
    Invalid {
        kind: &'static str,
        field: &'static str,
        rule: &'static str,
    },
}

impl RuleError {
    /// A stable, machine-readable name for the rule (used in JSON output and metrics).
    #[must_use]
    pub const fn rule(&self) -> &'static str {
        match self {
            RuleError::GenesisNotFirst => "genesis_not_first",
            RuleError::NoGenesis { .. } => "no_genesis",
            RuleError::PartyIdMismatch { .. } => "party_id_mismatch",
            RuleError::PartyExists { .. } => "party_exists",
            RuleError::UnknownParty { .. } => "unknown_party",
            RuleError::HandleTaken { .. } => "handle_taken",
            RuleError::KeyInUse { .. } => "key_in_use",
            RuleError::MissingSignature { .. } => "missing_signature",
            RuleError::UnexpectedSignature { .. } => "unexpected_signature",
            RuleError::KeyNotValid { .. } => "key_not_valid",
            RuleError::KeyNotOfParty { .. } => "key_not_of_party",
            RuleError::SponsorNotAllowed { .. } => "sponsor_not_allowed",
            RuleError::PrivilegedRole { .. } => "privileged_role",
            RuleError::PartyChainBroken { .. } => "party_chain_broken",
            RuleError::UnitExists { .. } => "unit_exists",
            RuleError::UnknownUnit { .. } => "unknown_unit",
            RuleError::ChainBroken { .. } => "chain_broken",
            RuleError::NotHolder { .. } => "not_holder",
            RuleError::TransferPending { .. } => "transfer_pending",
            RuleError::NotPending { .. } => "not_pending",
            RuleError::WrongParty { .. } => "wrong_party",
            RuleError::Retired { .. } => "retired",
            RuleError::NotManufacturer { .. } => "not_manufacturer",
            RuleError::ForeignUnit { .. } => "foreign_unit",
            RuleError::SelfTransfer { .. } => "self_transfer",
            RuleError::NotObserver { .. } => "not_observer",
            RuleError::ClockAhead { .. } => "clock_ahead",
            RuleError::TimeBeforePrevious { .. } => "time_before_previous",
            RuleError::RevocationBackdated { .. } => "revocation_backdated",
            RuleError::AlreadyRevoked { .. } => "already_revoked",
            RuleError::Invalid { .. } => "invalid",
        }
    }
}
