//! The pure core of custody: identifiers, wire types, canonical encoding, hashing,
//! signatures and the chain rules. Architecture invariant: nothing in this module does
//! I/O, reads a clock or can fail because of the environment.

pub mod authz;
pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod cosignature;
pub mod error;
pub mod event;
pub mod hashes;
pub mod ids;
pub mod merkle;
pub mod proof;
pub mod receipt;
pub mod report;
pub mod request;
pub mod rules;
pub mod shape;
pub mod state;
pub mod unit;
pub mod values;
pub mod verify;

pub use error::{DecodeError, FieldError, RuleError, SignatureError};
pub use event::{Body, Envelope};
pub use ids::{EventHash, Handle, LedgerName, LogIndex, PartyId, PublicKey};
pub use unit::UnitId;
pub use values::{CountryCode, Timestamp};
pub use verify::{SignedEvent, VerifiedEvent};
