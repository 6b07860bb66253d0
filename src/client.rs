//! Building, signing and submitting events for a party that holds its own key: the
//! library behind every write command of the CLI, the demo and the benchmarks. It reads
//! current heads through [`Access`] (a local ledger, or a server over HTTP in
//! `crate::remote`), so callers name units and parties, not hashes, and private keys never
//! leave the caller.

use ed25519_dalek::SigningKey;

use crate::core::event::{
    Accept, Body, Cancel, EndUse, Enroll, Genesis, Observe, Profile, Register, Reject, Retire,
    RetireReason, RevokeKey, RotateKey, Transfer, UnitLink, Update,
};
use crate::core::ids::{EventHash, Handle, LedgerName, PartyId, PublicKey};
use crate::core::state::{PartyRecord, UnitRecord};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Text, Timestamp};
use crate::core::verify::{self, SignedEvent, VerifiedEvent};
use crate::core::{DecodeError, SignatureError};
use crate::keys::KeyPair;
use crate::ledger::{AppendError, Clock, Ledger, Receipt};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key {0} does not belong to any enrolled party")]
    UnknownKey(PublicKey),
    #[error("no party with handle or id {0:?}")]
    UnknownParty(String),
    #[error("unit {0} is not registered")]
    UnknownUnit(UnitId),
    #[error("event {0} is not a transfer in this ledger")]
    NotATransfer(EventHash),
    #[error("no unit of transfer {0} is still pending")]
    NothingPending(EventHash),
    /// The server refused the request (RFC 9457 problem).
    #[error("the server refused it ({status}, rule {rule}): {detail}")]
    Remote {
        status: u16,
        rule: String,
        detail: String,
    },
    #[error("talking to the server: {0}")]
    Transport(String),
}

impl ClientError {
    /// The stable rule name of a refusal, whether local or from a server.
    #[must_use]
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::Append(AppendError::Rule(r)) => Some(r.rule()),
            Self::Remote { rule, .. } => Some(rule),
            _ => None,
        }
    }
}

/// What a client needs of a ledger: the records it builds events from, and append.
pub trait Access {
    fn ledger_name(&self) -> &LedgerName;
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, ClientError>;
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, ClientError>;
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, ClientError>;
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, ClientError>;
    fn parties(&self) -> Result<Vec<PartyRecord>, ClientError>;
    /// The canonical bytes of a logged event.
    fn event(&self, h: &EventHash) -> Result<Option<Vec<u8>>, ClientError>;
    fn append(&self, ev: VerifiedEvent) -> Result<Receipt, ClientError>;
}

impl<S: Store> Access for Ledger<S> {
    fn ledger_name(&self) -> &LedgerName {
        self.name()
    }
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, ClientError> {
        Ok(self.store().unit(u)?)
    }
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, ClientError> {
        Ok(self.store().party(id)?)
    }
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, ClientError> {
        Ok(self.store().party_by_handle(h)?)
    }
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, ClientError> {
        Ok(self.store().key_owner(k)?)
    }
    fn parties(&self) -> Result<Vec<PartyRecord>, ClientError> {
        Ok(self.store().parties()?)
    }
    fn event(&self, h: &EventHash) -> Result<Option<Vec<u8>>, ClientError> {
        let store = self.store();
        Ok(match store.index_of(h)? {
            Some(i) => store.entry(i)?.map(|e| e.event),
            None => None,
        })
    }
    fn append(&self, ev: VerifiedEvent) -> Result<Receipt, ClientError> {
        Ok(Ledger::append(self, ev)?)
    }
}

pub struct Client<'l> {
    ledger: &'l dyn Access,
    clock: Clock,
}

impl<'l> Client<'l> {
    pub fn new(ledger: &'l dyn Access, clock: Clock) -> Self {
        Self { ledger, clock }
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Signs `body` with `keys`, checks shape and signatures as the ledger will, appends.
    pub fn submit(&self, body: Body, keys: &[&SigningKey]) -> Result<Receipt, ClientError> {
        let name = self.ledger.ledger_name();
        let env = verify::sign(name, body, keys)?;
        let ev = SignedEvent::from_envelope(env)?.verify(name)?;
        self.ledger.append(ev)
    }

    /// The party a key belongs to.
    pub fn owner(&self, key: &KeyPair) -> Result<PartyId, ClientError> {
        self.ledger
            .key_owner(&key.public)?
            .ok_or(ClientError::UnknownKey(key.public))
    }

    /// The ledger this client talks to.
    #[must_use]
    pub fn access(&self) -> &dyn Access {
        self.ledger
    }

    /// A party named by handle or id.
    pub fn party(&self, name: &str) -> Result<PartyId, ClientError> {
        if let Ok(h) = Handle::parse(name) {
            if let Some(id) = self.ledger.party_by_handle(&h)? {
                return Ok(id);
            }
        }
        match PartyId::parse(name) {
            Ok(id) if self.ledger.party(&id)?.is_some() => Ok(id),
            _ => Err(ClientError::UnknownParty(name.to_owned())),
        }
    }

    fn links(&self, units: &[UnitId]) -> Result<Vec<UnitLink>, ClientError> {
        units
            .iter()
            .map(|u| {
                let rec = self
                    .ledger
                    .unit(u)?
                    .ok_or_else(|| ClientError::UnknownUnit(u.clone()))?;
                Ok(UnitLink {
                    unit: u.clone(),
                    prev: rec.head,
                })
            })
            .collect()
    }

    /// Units of `transfer` still pending in it (all of them unless `only` narrows it).
    fn pending_links(
        &self,
        transfer: &EventHash,
        only: &[UnitId],
    ) -> Result<Vec<UnitLink>, ClientError> {
        let units: Vec<UnitId> = if only.is_empty() {
            let bytes = self
                .ledger
                .event(transfer)?
                .ok_or(ClientError::NotATransfer(*transfer))?;
            match SignedEvent::decode(&bytes)?.envelope().body {
                Body::Transfer(ref t) => t.units.iter().map(|l| l.unit.clone()).collect(),
                _ => return Err(ClientError::NotATransfer(*transfer)),
            }
        } else {
            only.to_vec()
        };
        let mut out = Vec::new();
        for u in units {
            let rec = self
                .ledger
                .unit(&u)?
                .ok_or_else(|| ClientError::UnknownUnit(u.clone()))?;
            if only.is_empty() && rec.pending.as_ref().is_none_or(|p| &p.transfer != transfer) {
                continue;
            }
            out.push(UnitLink {
                unit: u,
                prev: rec.head,
            });
        }
        if out.is_empty() {
            return Err(ClientError::NothingPending(*transfer));
        }
        Ok(out)
    }

    pub fn genesis(
        &self,
        key: &KeyPair,
        handle: Handle,
        profile: Profile,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Genesis(Genesis {
            at: self.now(),
            party: key.party_id(),
            handle,
            profile,
            keys: vec![key.public],
        });
        self.submit(body, &[&key.signing])
    }

    pub fn enroll(
        &self,
        new: &KeyPair,
        sponsor: &KeyPair,
        handle: Handle,
        profile: Profile,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Enroll(Enroll {
            at: self.now(),
            party: new.party_id(),
            handle,
            profile,
            keys: vec![new.public],
            sponsor: self.owner(sponsor)?,
        });
        self.submit(body, &[&new.signing, &sponsor.signing])
    }

    pub fn update(
        &self,
        key: &KeyPair,
        handle: Handle,
        profile: Profile,
        cosigner: Option<&KeyPair>,
    ) -> Result<Receipt, ClientError> {
        let party = self.owner(key)?;
        let prev = self.party_head(&party)?;
        let body = Body::Update(Update {
            at: self.now(),
            party,
            prev,
            handle,
            profile,
        });
        let mut keys = vec![&key.signing];
        keys.extend(cosigner.map(|c| &c.signing));
        self.submit(body, &keys)
    }

    fn party_head(&self, p: &PartyId) -> Result<EventHash, ClientError> {
        Ok(self
            .ledger
            .party(p)?
            .ok_or_else(|| ClientError::UnknownParty(p.to_string()))?
            .head)
    }

    pub fn rotate_key(&self, old: &KeyPair, new: &KeyPair) -> Result<Receipt, ClientError> {
        let party = self.owner(old)?;
        let prev = self.party_head(&party)?;
        let body = Body::RotateKey(RotateKey {
            at: self.now(),
            party,
            prev,
            old_key: old.public,
            new_key: new.public,
        });
        self.submit(body, &[&old.signing, &new.signing])
    }

    pub fn revoke_key(
        &self,
        signer: &KeyPair,
        party: &PartyId,
        key: PublicKey,
        effective: Option<Timestamp>,
        reason: Text,
    ) -> Result<Receipt, ClientError> {
        let prev = self.party_head(party)?;
        let at = self.now();
        let body = Body::RevokeKey(RevokeKey {
            at,
            party: party.clone(),
            prev,
            key,
            effective: effective.unwrap_or(at),
            reason,
        });
        self.submit(body, &[&signer.signing])
    }

    pub fn register(
        &self,
        key: &KeyPair,
        units: Vec<UnitId>,
        lot: Option<Text>,
        product_name: Option<Text>,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Register(Register {
            at: self.now(),
            manufacturer: self.owner(key)?,
            units,
            lot,
            product_name,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn transfer(
        &self,
        key: &KeyPair,
        to: &PartyId,
        units: &[UnitId],
        shipment: Text,
        destination_country: CountryCode,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Transfer(Transfer {
            at: self.now(),
            from: self.owner(key)?,
            to: to.clone(),
            units: self.links(units)?,
            shipment,
            destination_country,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn accept(
        &self,
        key: &KeyPair,
        transfer: &EventHash,
        only: &[UnitId],
        end_use: Option<EndUse>,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Accept(Accept {
            at: self.now(),
            by: self.owner(key)?,
            transfer: *transfer,
            units: self.pending_links(transfer, only)?,
            end_use,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn reject(
        &self,
        key: &KeyPair,
        transfer: &EventHash,
        only: &[UnitId],
        reason: Text,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Reject(Reject {
            at: self.now(),
            by: self.owner(key)?,
            transfer: *transfer,
            units: self.pending_links(transfer, only)?,
            reason,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn cancel(
        &self,
        key: &KeyPair,
        transfer: &EventHash,
        only: &[UnitId],
        reason: Text,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Cancel(Cancel {
            at: self.now(),
            by: self.owner(key)?,
            transfer: *transfer,
            units: self.pending_links(transfer, only)?,
            reason,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn observe(
        &self,
        key: &KeyPair,
        seen_at: &PartyId,
        units: &[UnitId],
        location: Option<Text>,
        note: Option<Text>,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Observe(Observe {
            at: self.now(),
            observer: self.owner(key)?,
            seen_at: seen_at.clone(),
            units: self.links(units)?,
            location,
            note,
        });
        self.submit(body, &[&key.signing])
    }

    pub fn retire(
        &self,
        key: &KeyPair,
        units: &[UnitId],
        reason: RetireReason,
        note: Option<Text>,
    ) -> Result<Receipt, ClientError> {
        let body = Body::Retire(Retire {
            at: self.now(),
            by: self.owner(key)?,
            units: self.links(units)?,
            reason,
            note,
        });
        self.submit(body, &[&key.signing])
    }
}

/// Resolves a party handle or id against a store.
pub fn find_party(store: &impl Store, name: &str) -> Result<PartyId, ClientError> {
    if let Ok(h) = Handle::parse(name) {
        if let Some(id) = store.party_by_handle(&h)? {
            return Ok(id);
        }
    }
    match PartyId::parse(name) {
        Ok(id) if store.party(&id)?.is_some() => Ok(id),
        _ => Err(ClientError::UnknownParty(name.to_owned())),
    }
}
