//! Signature requirements: which parties must have signed an event, with keys valid at
//! the event's time, and that no other key signed (FORMAT.md §6.1).

use std::collections::BTreeSet;

use super::error::RuleError;
use super::ids::PublicKey;
use super::state::PartyRecord;
use super::values::Timestamp;

/// Tracks the signatures of one event while its rules run.
pub struct Signatures<'a> {
    kind: &'static str,
    present: Vec<&'a PublicKey>,
    used: BTreeSet<PublicKey>,
    at: Timestamp,
    now: Timestamp,
}

impl<'a> Signatures<'a> {
    pub fn new(
        kind: &'static str,
        present: Vec<&'a PublicKey>,
        at: Timestamp,
        now: Timestamp,
    ) -> Self {
        Self {
            kind,
            present,
            used: BTreeSet::new(),
            at,
            now,
        }
    }

    /// Whether any key of `party` signed.
    #[must_use]
    pub fn has(&self, party: &PartyRecord) -> bool {
        self.present.iter().any(|k| party.key(k).is_some())
    }

    /// Requires at least one signature by `party`; every signature by one of its keys must
    /// be by a key valid at the event's time.
    pub fn require(&mut self, party: &PartyRecord, role: &'static str) -> Result<(), RuleError> {
        let mut found = false;
        for k in &self.present {
            if let Some(rec) = party.key(k) {
                rec.valid_at(self.at, self.now)
                    .map_err(|state| RuleError::KeyNotValid {
                        kind: self.kind,
                        key: **k,
                        party: party.reference(),
                        at: self.at,
                        state,
                    })?;
                self.used.insert(**k);
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err(RuleError::MissingSignature {
                kind: self.kind,
                party: party.reference(),
                role,
            })
        }
    }

    /// Requires a signature by one specific key (proof of possession; rotation).
    pub fn require_key(
        &mut self,
        key: &PublicKey,
        who: &PartyRecordOrNew<'_>,
    ) -> Result<(), RuleError> {
        if self.present.contains(&key) {
            self.used.insert(*key);
            Ok(())
        } else {
            Err(RuleError::MissingSignature {
                kind: self.kind,
                party: who.reference(),
                role: "holder of the listed key (proof of possession)",
            })
        }
    }

    /// Fails if a signature was not required by any rule.
    pub fn finish(self) -> Result<(), RuleError> {
        match self.present.iter().find(|k| !self.used.contains(**k)) {
            Some(k) => Err(RuleError::UnexpectedSignature {
                kind: self.kind,
                key: **k,
            }),
            None => Ok(()),
        }
    }
}

/// A party that may not be enrolled yet, for error messages.
pub struct PartyRecordOrNew<'a> {
    pub id: &'a super::ids::PartyId,
    pub handle: &'a super::ids::Handle,
}

impl PartyRecordOrNew<'_> {
    fn reference(&self) -> super::error::PartyRef {
        super::error::PartyRef {
            id: self.id.clone(),
            handle: Some(self.handle.clone()),
        }
    }
}
