//! Events read from a log again, and what entitles them to be used.
//!
//! A whole-ledger pass (the audit, `resolve --all`) reads the log once, records the hash of
//! every event it accepted, and re-reads the events of each later range of units: bytes
//! that hash to the recorded hash at their position are the event accepted there (the
//! event hash covers the ledger name and exactly those bytes, signatures included), so they
//! are not checked again.
//!
//! What "accepted" means is part of the type:
//! - [`VerifiedHashes`] records only events whose signatures this process verified
//!   ([`VerifiedEvent`]); what it gives back is a [`VerifiedEvent`], which can be appended.
//! - [`LoggedHashes`] records [`LoggedEvent`]s: events decoded from a log's bytes, their
//!   hash computed from those bytes, their signatures not checked here. They are worth
//!   what the log's bytes are worth, and cannot be appended. `resolve --all` takes them
//!   only for a log whose leaves rebuild the root of a checkpoint the log key signed
//!   (`resolve::anchor`), since a log admits only verified events.

use std::marker::PhantomData;

use super::error::DecodeError;
use super::event::{Body, Envelope};
use super::ids::{EventHash, LedgerName};
use super::verify::{envelope_of, event_hash, VerifiedEvent};

/// An event decoded from bytes a log holds, with its hash computed from those bytes. Its
/// signatures, its shape and its canonical form are not checked: see the module doc for
/// when that is enough.
#[derive(Clone, Debug)]
pub struct LoggedEvent {
    envelope: Envelope,
    hash: EventHash,
}

impl LoggedEvent {
    /// Decodes `bytes` (size limit, strict JSON) and hashes them for `ledger`.
    pub fn decode(bytes: &[u8], ledger: &LedgerName) -> Result<Self, DecodeError> {
        Ok(Self {
            envelope: envelope_of(bytes)?,
            hash: event_hash(ledger, bytes),
        })
    }
    #[must_use]
    pub fn hash(&self) -> EventHash {
        self.hash
    }
    #[must_use]
    pub fn body(&self) -> &Body {
        &self.envelope.body
    }
}

impl From<VerifiedEvent> for LoggedEvent {
    fn from(ev: VerifiedEvent) -> Self {
        let hash = ev.hash();
        Self {
            envelope: ev.into_envelope(),
            hash,
        }
    }
}

/// Marker: the hashes of events whose signatures were verified.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verified;
/// Marker: the hashes of events taken from a log's bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logged;

/// The hashes of the events of a log, in log order, as one pass accepted them (`K`), with
/// the positions of events that failed its checks.
#[derive(Clone, Debug)]
pub struct EventHashes<K> {
    hashes: Vec<EventHash>,
    /// Positions of events that failed (ascending): never accepted again.
    failed: Vec<u64>,
    kind: PhantomData<K>,
}

/// Hashes of events that passed `verify_stored`.
pub type VerifiedHashes = EventHashes<Verified>;
/// Hashes of [`LoggedEvent`]s.
pub type LoggedHashes = EventHashes<Logged>;

impl<K> Default for EventHashes<K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

/// Why bytes read again are not the event accepted at their position.
#[derive(Debug, thiserror::Error)]
pub enum AgainError {
    #[error("no event was accepted at log index {0} by the first pass")]
    Unknown(u64),
    #[error("the bytes at log index {index} changed since the first pass accepted them: their hash is {found}, the accepted event's {verified}")]
    Changed {
        index: u64,
        found: EventHash,
        /// The hash accepted there (verified, or logged: see the module doc).
        verified: EventHash,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl<K> EventHashes<K> {
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            hashes: Vec::with_capacity(n),
            failed: Vec::new(),
            kind: PhantomData,
        }
    }
    /// Records that the next event of the log, stored with hash `stored`, failed.
    pub fn push_failed(&mut self, stored: EventHash) {
        self.failed.push(self.hashes.len() as u64);
        self.hashes.push(stored);
    }
    /// The hashes recorded, in log order (a failed event's as stored).
    #[must_use]
    pub fn as_slice(&self) -> &[EventHash] {
        &self.hashes
    }
    /// The envelope in `bytes` read again at `index`, if they hash to the event accepted
    /// there.
    fn again_envelope(
        &self,
        index: u64,
        bytes: &[u8],
        ledger: &LedgerName,
    ) -> Result<(Envelope, EventHash), AgainError> {
        let accepted = *usize::try_from(index)
            .ok()
            .and_then(|i| self.hashes.get(i))
            .filter(|_| self.failed.binary_search(&index).is_err())
            .ok_or(AgainError::Unknown(index))?;
        let found = event_hash(ledger, bytes);
        if found != accepted {
            return Err(AgainError::Changed {
                index,
                found,
                verified: accepted,
            });
        }
        Ok((envelope_of(bytes)?, found))
    }
}

impl VerifiedHashes {
    /// Records the next event of the log.
    pub fn push(&mut self, ev: &VerifiedEvent) {
        self.hashes.push(ev.hash());
    }
    /// The event at log index `index` from its bytes read again.
    pub fn again(
        &self,
        index: u64,
        bytes: &[u8],
        ledger: &LedgerName,
    ) -> Result<VerifiedEvent, AgainError> {
        let (envelope, hash) = self.again_envelope(index, bytes, ledger)?;
        Ok(VerifiedEvent::readmitted(envelope, bytes.to_vec(), hash))
    }
}

impl LoggedHashes {
    /// Records the next event of the log.
    pub fn push(&mut self, ev: &LoggedEvent) {
        self.hashes.push(ev.hash);
    }
    /// The event at log index `index` from its bytes read again.
    pub fn again(
        &self,
        index: u64,
        bytes: &[u8],
        ledger: &LedgerName,
    ) -> Result<LoggedEvent, AgainError> {
        let (envelope, hash) = self.again_envelope(index, bytes, ledger)?;
        Ok(LoggedEvent { envelope, hash })
    }
}
