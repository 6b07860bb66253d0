//! Ledger state as the rules see it: party and unit records, the read interface the rules
//! need, the changes one event makes ([`Delta`]), and an in-memory state that applies them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::error::{KeyState, PartyRef};
use super::event::{Profile, RetireReason, Role};
use super::ids::{EventHash, Handle, LogIndex, PartyId, PublicKey};
use super::unit::UnitId;
use super::values::Timestamp;

/// One key of a party and its validity window.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key: PublicKey,
    /// `at` of the event that added it.
    pub added: Timestamp,
    /// `at` of the rotation that replaced it.
    pub rotated: Option<Timestamp>,
    /// Effective time of its revocation.
    pub revoked: Option<Timestamp>,
}

impl KeyRecord {
    /// Whether the key may sign an event claiming time `at`, integrated at `now`.
    pub fn valid_at(&self, at: Timestamp, now: Timestamp) -> Result<(), KeyState> {
        if at < self.added {
            return Err(KeyState::NotYetValid { from: self.added });
        }
        if let Some(r) = self.rotated {
            if at >= r {
                return Err(KeyState::Rotated { at: r });
            }
        }
        if let Some(e) = self.revoked {
            if at >= e || now >= e {
                return Err(KeyState::Revoked { effective: e });
            }
        }
        Ok(())
    }
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PartyRecord {
    pub id: PartyId,
    pub handle: Handle,
    pub profile: Profile,
    pub keys: Vec<KeyRecord>,
    /// Latest event of the party's own chain (enroll, update, rotate, revoke).
    pub head: EventHash,
    pub head_at: Timestamp,
    pub enrolled: LogIndex,
    pub sponsor: Option<PartyId>,
}

impl PartyRecord {
    #[must_use]
    pub fn has_role(&self, r: Role) -> bool {
        self.profile.roles.contains(&r)
    }
    #[must_use]
    pub fn key(&self, k: &PublicKey) -> Option<&KeyRecord> {
        self.keys.iter().find(|x| &x.key == k)
    }
    #[must_use]
    pub fn reference(&self) -> PartyRef {
        PartyRef {
            id: self.id.clone(),
            handle: Some(self.handle.clone()),
        }
    }
}

/// A transfer waiting for the recipient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub transfer: EventHash,
    pub from: PartyId,
    pub to: PartyId,
    pub since: Timestamp,
}

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct UnitRecord {
    pub id: UnitId,
    pub manufacturer: PartyId,
    pub holder: PartyId,
    pub head: EventHash,
    pub head_at: Timestamp,
    pub pending: Option<Pending>,
    pub retired: Option<RetireReason>,
    pub registered: LogIndex,
    /// Number of events in the unit's chain.
    pub length: u32,
    /// When the holder took custody: the time of the registration or of the acceptance
    /// that made it the holder. Its stay ends when it hands the unit on ([`IndexOp::Stay`]).
    pub held_since: Timestamp,
}

/// A secondary-index change that accompanies an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum IndexOp {
    /// Point a handle at a party, or free it.
    Handle {
        handle: Handle,
        party: Option<PartyId>,
    },
    /// Record which party owns a key.
    Key { key: PublicKey, party: PartyId },
    /// Add or remove a unit from a holder's holdings.
    Holding {
        party: PartyId,
        unit: UnitId,
        held: bool,
    },
    /// The event is position `seq` (from 0) of the unit's chain.
    ChainLink { unit: UnitId, seq: u32 },
    /// The party is, or was, part of the unit's custody in a way screening judges: its
    /// manufacturer, a recipient of a transfer, or a declared end user. Never removed:
    /// the resolver finds through it every unit a party's listing can change.
    Involved { party: PartyId, unit: UnitId },
    /// One more completed stay of `days` whole days by `party`: it held a unit, not as the
    /// unit's manufacturer, from taking custody until the transfer it handed the unit on
    /// with, and the unit has now been accepted. A counter per (party, days), so the dwell
    /// baseline is read from at most parties × distinct durations records, never by
    /// replaying the log; the resolver keeps the stays of parties that are not end users.
    Stay { party: PartyId, days: u32 },
}

/// Everything one accepted event changes besides the log itself.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Delta {
    pub parties: Vec<PartyRecord>,
    pub units: Vec<UnitRecord>,
    pub index: Vec<IndexOp>,
    /// Set by genesis: the operator party.
    pub operator: Option<PartyId>,
}

/// What the rules read. Implemented by [`MemState`]; storage layers load the records an
/// event touches into one before calling the rules.
pub trait StateRead {
    /// The operator party, once genesis is in the log.
    fn operator(&self) -> Option<&PartyId>;
    fn party(&self, id: &PartyId) -> Option<&PartyRecord>;
    fn party_by_handle(&self, h: &Handle) -> Option<&PartyId>;
    fn key_owner(&self, k: &PublicKey) -> Option<&PartyId>;
    fn unit(&self, u: &UnitId) -> Option<&UnitRecord>;

    fn party_ref(&self, id: &PartyId) -> PartyRef {
        PartyRef {
            id: id.clone(),
            handle: self.party(id).map(|p| p.handle.clone()),
        }
    }
}

/// Ledger state held in hash maps: a full replay for `verify`, the in-memory store, or the
/// slice of state one event needs.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    pub operator: Option<PartyId>,
    pub parties: HashMap<PartyId, PartyRecord>,
    pub handles: HashMap<Handle, PartyId>,
    pub keys: HashMap<PublicKey, PartyId>,
    pub units: HashMap<UnitId, UnitRecord>,
    pub holdings: HashMap<PartyId, std::collections::BTreeSet<UnitId>>,
    pub involved: HashMap<PartyId, std::collections::BTreeSet<UnitId>>,
    pub chains: HashMap<UnitId, Vec<LogIndex>>,
    /// Completed stays counted by (party, whole days) ([`IndexOp::Stay`]).
    pub stays: std::collections::BTreeMap<(PartyId, u32), u64>,
}

impl StateRead for MemState {
    fn operator(&self) -> Option<&PartyId> {
        self.operator.as_ref()
    }
    fn party(&self, id: &PartyId) -> Option<&PartyRecord> {
        self.parties.get(id)
    }
    fn party_by_handle(&self, h: &Handle) -> Option<&PartyId> {
        self.handles.get(h)
    }
    fn key_owner(&self, k: &PublicKey) -> Option<&PartyId> {
        self.keys.get(k)
    }
    fn unit(&self, u: &UnitId) -> Option<&UnitRecord> {
        self.units.get(u)
    }
}

/// A state the changes of accepted events are applied to, in log order: what a replay of
/// the log keeps ([`MemState`], or an audit's packed state of one range of units).
pub trait StateApply: StateRead {
    /// Applies the changes of the event at `index`.
    fn apply_delta(&mut self, index: LogIndex, delta: &Delta);
}

impl StateApply for MemState {
    fn apply_delta(&mut self, index: LogIndex, delta: &Delta) {
        self.apply(index, delta);
    }
}

impl MemState {
    /// Applies the changes of the event at `index`.
    pub fn apply(&mut self, index: LogIndex, delta: &Delta) {
        self.apply_parties(delta);
        for u in &delta.units {
            self.units.insert(u.id.clone(), u.clone());
        }
        for op in &delta.index {
            match op {
                IndexOp::Holding {
                    party,
                    unit,
                    held: true,
                } => {
                    self.holdings
                        .entry(party.clone())
                        .or_default()
                        .insert(unit.clone());
                }
                IndexOp::Holding {
                    party,
                    unit,
                    held: false,
                } => {
                    if let Some(s) = self.holdings.get_mut(party) {
                        s.remove(unit);
                    }
                }
                IndexOp::Involved { party, unit } => {
                    self.involved
                        .entry(party.clone())
                        .or_default()
                        .insert(unit.clone());
                }
                IndexOp::ChainLink { unit, seq } => {
                    let chain = self.chains.entry(unit.clone()).or_default();
                    link_at(chain, *seq, index);
                }
                IndexOp::Handle { .. } | IndexOp::Key { .. } | IndexOp::Stay { .. } => {}
            }
        }
    }

    /// Applies what `delta` changes besides the units and their indexes (records, chains,
    /// holdings, involvement): the operator, party records, handles, keys and stay counters.
    pub fn apply_parties(&mut self, delta: &Delta) {
        if let Some(op) = &delta.operator {
            self.operator = Some(op.clone());
        }
        for p in &delta.parties {
            self.parties.insert(p.id.clone(), p.clone());
        }
        for op in &delta.index {
            match op {
                IndexOp::Handle {
                    handle,
                    party: Some(p),
                } => {
                    self.handles.insert(handle.clone(), p.clone());
                }
                IndexOp::Handle {
                    handle,
                    party: None,
                } => {
                    self.handles.remove(handle);
                }
                IndexOp::Key { key, party } => {
                    self.keys.insert(*key, party.clone());
                }
                IndexOp::Stay { party, days } => {
                    *self.stays.entry((party.clone(), *days)).or_insert(0) += 1;
                }
                IndexOp::Holding { .. } | IndexOp::Involved { .. } | IndexOp::ChainLink { .. } => {}
            }
        }
    }
}

/// Places the event at `index` at position `seq` of a unit's chain. Links arrive in order in
/// a full replay; a partial state (a loader's slice) may not hold the earlier links, so the
/// link is placed by position.
pub fn link_at(chain: &mut Vec<LogIndex>, seq: u32, index: LogIndex) {
    let at = seq as usize;
    if chain.len() > at {
        chain.truncate(at);
    }
    chain.push(index);
}

/// The records an event reads, so a store can load just those into a [`MemState`].
#[derive(Clone, Debug, Default)]
pub struct Touches {
    pub parties: Vec<PartyId>,
    pub units: Vec<UnitId>,
    pub handles: Vec<Handle>,
    pub keys: Vec<PublicKey>,
}

impl Touches {
    /// Everything `rules::apply` may read for this envelope, besides the operator and the
    /// owners of the keys listed here (which loaders resolve).
    #[must_use]
    pub fn of(env: &super::event::Envelope) -> Self {
        use super::event::Body;
        let mut t = Touches::default();
        t.keys.extend(env.signatures.iter().map(|s| s.key));
        let profile_refs = |t: &mut Touches, p: &Profile| {
            t.parties.extend(p.parent.iter().cloned());
            t.parties
                .extend(p.owners.iter().filter_map(|o| o.party.clone()));
        };
        match &env.body {
            Body::Genesis(b) => {
                t.parties.push(b.party.clone());
                t.handles.push(b.handle.clone());
                t.keys.extend(b.keys.iter().copied());
                profile_refs(&mut t, &b.profile);
            }
            Body::Enroll(b) => {
                t.parties.extend([b.party.clone(), b.sponsor.clone()]);
                t.handles.push(b.handle.clone());
                t.keys.extend(b.keys.iter().copied());
                profile_refs(&mut t, &b.profile);
            }
            Body::Update(b) => {
                t.parties.push(b.party.clone());
                t.handles.push(b.handle.clone());
                profile_refs(&mut t, &b.profile);
            }
            Body::RotateKey(b) => {
                t.parties.push(b.party.clone());
                t.keys.extend([b.old_key, b.new_key]);
            }
            Body::RevokeKey(b) => t.parties.push(b.party.clone()),
            Body::Register(b) => t.parties.push(b.manufacturer.clone()),
            Body::Transfer(b) => t.parties.extend([b.from.clone(), b.to.clone()]),
            Body::Accept(b) => {
                t.parties.push(b.by.clone());
                t.parties
                    .extend(b.end_use.iter().filter_map(|e| e.end_user_party.clone()));
            }
            Body::Reject(b) => t.parties.push(b.by.clone()),
            Body::Cancel(b) => t.parties.push(b.by.clone()),
            Body::Observe(b) => t.parties.extend([b.observer.clone(), b.seen_at.clone()]),
            Body::Retire(b) => t.parties.push(b.by.clone()),
        }
        t.units = env.body.units().into_iter().cloned().collect();
        t
    }
}
