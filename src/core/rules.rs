//! Chain and authorization rules (FORMAT.md §6): given the state before an event, either
//! the [`Delta`] the event makes or the first rule it breaks. Pure: the caller supplies the
//! state and the ledger clock.

use super::authz::{PartyRecordOrNew, Signatures};
use super::error::RuleError;
use super::event::{Body, Profile, Role, UnitLink};
use super::ids::{EventHash, LogIndex, PartyId, PublicKey};
use super::state::{Delta, IndexOp, KeyRecord, PartyRecord, Pending, StateRead, UnitRecord};
use super::unit::UnitId;
use super::unit::UnitKind;
use super::values::Timestamp;
use super::verify::VerifiedEvent;

/// How far an event's `at` may be ahead of the ledger clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Where the event lands: its log index and the ledger's clock when it is integrated.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub index: LogIndex,
    pub now: Timestamp,
}

/// Judges `ev` against `state`. On success the returned delta, applied together with the
/// event, is the whole effect of the event.
pub fn apply(state: &impl StateRead, ev: &VerifiedEvent, ctx: Context) -> Result<Delta, RuleError> {
    judge(state, ev, ctx, None)
}

/// [`apply`] as far as the units `judged` accepts are concerned: registrations of other
/// units and links to them are neither judged nor applied (a pass of an audit that replays
/// the log once per range of units). Every other rule applies in full.
pub fn apply_for_units(
    state: &impl StateRead,
    ev: &VerifiedEvent,
    ctx: Context,
    judged: &dyn Fn(&UnitId) -> bool,
) -> Result<Delta, RuleError> {
    judge(state, ev, ctx, Some(judged))
}

/// [`apply`] as far as one unit is concerned: the links of other units in the event are not
/// judged (their earlier history may not be in `state`). Every other rule applies in full:
/// signatures, authorization, and the chain rules for `unit`. What an offline verifier of
/// one unit's evidence bundle replays.
pub fn apply_for_unit(
    state: &impl StateRead,
    ev: &VerifiedEvent,
    ctx: Context,
    unit: &UnitId,
) -> Result<Delta, RuleError> {
    judge(state, ev, ctx, Some(&|u: &UnitId| u == unit))
}

fn judge(
    state: &impl StateRead,
    ev: &VerifiedEvent,
    ctx: Context,
    only: Option<&dyn Fn(&UnitId) -> bool>,
) -> Result<Delta, RuleError> {
    let body = ev.body();
    let kind = body.kind();
    let at = body.at();
    if at > ctx.now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(RuleError::ClockAhead {
            kind,
            at,
            now: ctx.now,
            max_skew_secs: MAX_CLOCK_SKEW_SECS,
        });
    }
    let mut sigs = Signatures::new(kind, ev.signers().collect(), at, ctx.now);
    let r = Rules {
        state,
        kind,
        at,
        hash: ev.hash(),
        ctx,
        only,
    };
    let operator = match (state.operator(), body) {
        (None, Body::Genesis(_)) if ctx.index == LogIndex::new(0) => None,
        (_, Body::Genesis(_)) => return Err(RuleError::GenesisNotFirst),
        (None, _) => return Err(RuleError::NoGenesis { kind }),
        (Some(op), _) => Some(r.party(op, "operator")?),
    };
    let delta = match body {
        Body::Genesis(b) => {
            r.check_new_party(&b.party, &b.handle, &b.keys, &b.profile, &mut sigs)?;
            if !b.profile.roles.contains(&Role::Operator) {
                return Err(RuleError::Invalid {
                    kind,
                    field: "profile.roles",
                    rule: "genesis must give its party the operator role",
                });
            }
            let mut d = r.new_party(&b.party, &b.handle, &b.profile, &b.keys, None);
            d.operator = Some(b.party.clone());
            d
        }
        Body::Enroll(b) => {
            let operator = operator.expect("invariant: non-genesis events have an operator");
            r.check_new_party(&b.party, &b.handle, &b.keys, &b.profile, &mut sigs)?;
            let sponsor = r.party(&b.sponsor, "sponsor")?;
            sigs.require(sponsor, "sponsor")?;
            let by_operator = sponsor.id == operator.id;
            if let Some(role) = b.profile.roles.iter().find(|x| x.privileged()) {
                if *role == Role::Operator || !by_operator {
                    return Err(RuleError::PrivilegedRole {
                        kind,
                        role: role.as_str(),
                    });
                }
            }
            if !by_operator
                && !sponsor.has_role(Role::Manufacturer)
                && !sponsor.has_role(Role::Distributor)
            {
                return Err(RuleError::SponsorNotAllowed {
                    sponsor: sponsor.reference(),
                    reason: "only the operator, manufacturers and distributors sponsor enrollments",
                });
            }
            r.new_party(
                &b.party,
                &b.handle,
                &b.profile,
                &b.keys,
                Some(b.sponsor.clone()),
            )
        }
        Body::Update(b) => {
            let operator = operator.expect("invariant: non-genesis events have an operator");
            let p = r.party_event(&b.party, &b.prev)?;
            sigs.require(p, "the party itself")?;
            r.check_profile_refs(&b.profile)?;
            let is_operator = p.id == operator.id;
            if is_operator != b.profile.roles.contains(&Role::Operator) {
                return Err(RuleError::PrivilegedRole {
                    kind,
                    role: "operator",
                });
            }
            if b.profile
                .roles
                .iter()
                .any(|x| x.privileged() && !p.has_role(*x))
            {
                sigs.require(operator, "operator, to grant the manufacturer role")?;
            }
            let mut d = Delta::default();
            if b.handle != p.handle {
                if let Some(holder) = r.state.party_by_handle(&b.handle) {
                    return Err(RuleError::HandleTaken {
                        kind,
                        handle: b.handle.clone(),
                        holder: r.state.party_ref(holder),
                    });
                }
                d.index.push(IndexOp::Handle {
                    handle: p.handle.clone(),
                    party: None,
                });
                d.index.push(IndexOp::Handle {
                    handle: b.handle.clone(),
                    party: Some(p.id.clone()),
                });
            }
            let mut np = r.advance_party(p);
            np.handle = b.handle.clone();
            np.profile = b.profile.clone();
            d.parties.push(np);
            d
        }
        Body::RotateKey(b) => {
            let p = r.party_event(&b.party, &b.prev)?;
            r.own_key(p, &b.old_key)?;
            sigs.require(p, "the party, with the old key")?;
            r.unused_key(&b.new_key)?;
            let who = PartyRecordOrNew {
                id: &p.id,
                handle: &p.handle,
            };
            sigs.require_key(&b.old_key, &who)?;
            sigs.require_key(&b.new_key, &who)?;
            let mut np = r.advance_party(p);
            for k in &mut np.keys {
                if k.key == b.old_key {
                    k.rotated = Some(at);
                }
            }
            np.keys.push(KeyRecord {
                key: b.new_key,
                added: at,
                rotated: None,
                revoked: None,
            });
            Delta {
                parties: vec![np],
                index: vec![IndexOp::Key {
                    key: b.new_key,
                    party: p.id.clone(),
                }],
                ..Delta::default()
            }
        }
        Body::RevokeKey(b) => {
            let operator = operator.expect("invariant: non-genesis events have an operator");
            let p = r.party_event(&b.party, &b.prev)?;
            let rec = r.own_key(p, &b.key)?;
            if let Some(effective) = rec.revoked {
                return Err(RuleError::AlreadyRevoked {
                    key: b.key,
                    effective,
                });
            }
            if b.effective < ctx.now {
                return Err(RuleError::RevocationBackdated {
                    effective: b.effective,
                    now: ctx.now,
                });
            }
            if sigs.has(p) {
                sigs.require(p, "the party itself")?;
            } else {
                sigs.require(operator, "the party itself or the operator")?;
            }
            let mut np = r.advance_party(p);
            for k in &mut np.keys {
                if k.key == b.key {
                    k.revoked = Some(b.effective);
                }
            }
            Delta {
                parties: vec![np],
                ..Delta::default()
            }
        }
        Body::Register(b) => {
            let m = r.party(&b.manufacturer, "manufacturer")?;
            sigs.require(m, "manufacturer")?;
            if !m.has_role(Role::Manufacturer) {
                return Err(RuleError::NotManufacturer {
                    party: m.reference(),
                });
            }
            let mut d = Delta::default();
            for u in b.units.iter().filter(|u| r.judges(u)) {
                if r.state.unit(u).is_some() {
                    return Err(RuleError::UnitExists { unit: u.clone() });
                }
                let kind_of = u.kind().map_err(|_| RuleError::Invalid {
                    kind,
                    field: "units",
                    rule: "unit URN",
                })?;
                match kind_of {
                    UnitKind::Custody { manufacturer, .. } if manufacturer != m.id => {
                        return Err(RuleError::ForeignUnit {
                            unit: u.clone(),
                            manufacturer: m.reference(),
                            reason: "the unit id names another manufacturer",
                        });
                    }
                    UnitKind::Sgtin { company_prefix, .. }
                        if !m
                            .profile
                            .gs1_company_prefixes
                            .iter()
                            .any(|g| g == company_prefix) =>
                    {
                        return Err(RuleError::ForeignUnit {
                            unit: u.clone(),
                            manufacturer: m.reference(),
                            reason: "its GS1 company prefix is not in the manufacturer's profile.gs1_company_prefixes",
                        });
                    }
                    _ => {}
                }
                d.units.push(UnitRecord {
                    id: u.clone(),
                    manufacturer: m.id.clone(),
                    holder: m.id.clone(),
                    head: r.hash,
                    head_at: at,
                    pending: None,
                    retired: None,
                    registered: ctx.index,
                    length: 1,
                    held_since: at,
                });
                d.index.push(IndexOp::Holding {
                    party: m.id.clone(),
                    unit: u.clone(),
                    held: true,
                });
                d.index.push(IndexOp::ChainLink {
                    unit: u.clone(),
                    seq: 0,
                });
                d.index.push(IndexOp::Involved {
                    party: m.id.clone(),
                    unit: u.clone(),
                });
            }
            d
        }
        Body::Transfer(b) => {
            let from = r.party(&b.from, "from")?;
            let to = r.party(&b.to, "to")?;
            sigs.require(from, "sender (current holder)")?;
            if from.id == to.id {
                return Err(RuleError::SelfTransfer {
                    party: from.reference(),
                });
            }
            r.each_unit(&b.units, |u| {
                r.movable(u)?;
                if u.holder != from.id {
                    return Err(RuleError::NotHolder {
                        kind,
                        unit: u.id.clone(),
                        signer: from.reference(),
                        holder: r.state.party_ref(&u.holder),
                    });
                }
                let mut nu = r.advance_unit(u);
                nu.pending = Some(Pending {
                    transfer: r.hash,
                    from: from.id.clone(),
                    to: to.id.clone(),
                    since: at,
                });
                let involved = IndexOp::Involved {
                    party: to.id.clone(),
                    unit: u.id.clone(),
                };
                Ok((nu, vec![involved]))
            })?
        }
        Body::Accept(b) => {
            let by = r.party(&b.by, "by")?;
            sigs.require(by, "recipient")?;
            let end_user = b.end_use.as_ref().and_then(|e| e.end_user_party.as_ref());
            if let Some(p) = end_user {
                r.party(p, "end_use.end_user_party")?;
            }
            r.each_unit(&b.units, |u| {
                let pending = r.pending_in(u, &b.transfer, by, true)?;
                let mut nu = r.advance_unit(u);
                nu.pending = None;
                nu.holder = by.id.clone();
                nu.held_since = at;
                let mut moves = Vec::with_capacity(4);
                // The holder's stay ends with the transfer it handed the unit on with.
                if u.holder != u.manufacturer {
                    moves.push(IndexOp::Stay {
                        party: u.holder.clone(),
                        days: u.held_since.whole_days_until(pending.since),
                    });
                }
                moves.extend([
                    IndexOp::Holding {
                        party: pending.from.clone(),
                        unit: u.id.clone(),
                        held: false,
                    },
                    IndexOp::Holding {
                        party: by.id.clone(),
                        unit: u.id.clone(),
                        held: true,
                    },
                ]);
                moves.extend(end_user.map(|p| IndexOp::Involved {
                    party: p.clone(),
                    unit: u.id.clone(),
                }));
                Ok((nu, moves))
            })?
        }
        Body::Reject(b) => {
            let by = r.party(&b.by, "by")?;
            sigs.require(by, "recipient")?;
            r.each_unit(&b.units, |u| {
                r.pending_in(u, &b.transfer, by, true)?;
                let mut nu = r.advance_unit(u);
                nu.pending = None;
                Ok((nu, vec![]))
            })?
        }
        Body::Cancel(b) => {
            let by = r.party(&b.by, "by")?;
            sigs.require(by, "sender")?;
            r.each_unit(&b.units, |u| {
                r.pending_in(u, &b.transfer, by, false)?;
                let mut nu = r.advance_unit(u);
                nu.pending = None;
                Ok((nu, vec![]))
            })?
        }
        Body::Observe(b) => {
            let obs = r.party(&b.observer, "observer")?;
            r.party(&b.seen_at, "seen_at")?;
            sigs.require(obs, "observer")?;
            r.each_unit(&b.units, |u| {
                if !obs.has_role(Role::Servicer) && u.manufacturer != obs.id {
                    return Err(RuleError::NotObserver {
                        party: obs.reference(),
                        unit: u.id.clone(),
                    });
                }
                Ok((r.advance_unit(u), vec![]))
            })?
        }
        Body::Retire(b) => {
            let by = r.party(&b.by, "by")?;
            sigs.require(by, "holder")?;
            let lost = matches!(
                b.reason,
                super::event::RetireReason::Lost | super::event::RetireReason::Stolen
            );
            r.each_unit(&b.units, |u| {
                r.movable(u)?;
                if u.holder != by.id && !(lost && u.manufacturer == by.id) {
                    return Err(RuleError::NotHolder {
                        kind,
                        unit: u.id.clone(),
                        signer: by.reference(),
                        holder: r.state.party_ref(&u.holder),
                    });
                }
                let mut nu = r.advance_unit(u);
                nu.retired = Some(b.reason);
                let out = vec![IndexOp::Holding {
                    party: u.holder.clone(),
                    unit: u.id.clone(),
                    held: false,
                }];
                Ok((nu, out))
            })?
        }
    };
    sigs.finish()?;
    Ok(delta)
}

struct Rules<'s, S: StateRead> {
    state: &'s S,
    kind: &'static str,
    at: Timestamp,
    hash: EventHash,
    ctx: Context,
    /// Judge the registrations and links of these units only ([`apply_for_unit`],
    /// [`apply_for_units`]).
    only: Option<&'s dyn Fn(&UnitId) -> bool>,
}

impl<'s, S: StateRead> Rules<'s, S> {
    fn judges(&self, u: &UnitId) -> bool {
        self.only.is_none_or(|judged| judged(u))
    }

    fn party(&self, id: &PartyId, field: &'static str) -> Result<&'s PartyRecord, RuleError> {
        self.state.party(id).ok_or_else(|| RuleError::UnknownParty {
            kind: self.kind,
            field,
            party: id.clone(),
        })
    }

    /// The subject of a party event: exists, `prev` is its head, time moves forward.
    fn party_event(&self, id: &PartyId, prev: &EventHash) -> Result<&'s PartyRecord, RuleError> {
        let p = self.party(id, "party")?;
        if &p.head != prev {
            return Err(RuleError::PartyChainBroken {
                kind: self.kind,
                party: p.reference(),
                expected: p.head,
                found: *prev,
            });
        }
        if self.at < p.head_at {
            return Err(RuleError::TimeBeforePrevious {
                kind: self.kind,
                at: self.at,
                previous: p.head_at,
                subject: format!("party {}", p.handle),
            });
        }
        Ok(p)
    }

    fn own_key<'p>(&self, p: &'p PartyRecord, k: &PublicKey) -> Result<&'p KeyRecord, RuleError> {
        p.key(k).ok_or_else(|| RuleError::KeyNotOfParty {
            kind: self.kind,
            key: *k,
            party: p.reference(),
        })
    }

    fn unused_key(&self, k: &PublicKey) -> Result<(), RuleError> {
        match self.state.key_owner(k) {
            Some(owner) => Err(RuleError::KeyInUse {
                kind: self.kind,
                key: *k,
                owner: self.state.party_ref(owner),
            }),
            None => Ok(()),
        }
    }

    fn check_profile_refs(&self, p: &Profile) -> Result<(), RuleError> {
        if let Some(parent) = &p.parent {
            self.party(parent, "profile.parent")?;
        }
        for o in &p.owners {
            if let Some(op) = &o.party {
                self.party(op, "profile.owners[].party")?;
            }
        }
        Ok(())
    }

    fn check_new_party(
        &self,
        id: &PartyId,
        handle: &super::ids::Handle,
        keys: &[PublicKey],
        profile: &Profile,
        sigs: &mut Signatures<'_>,
    ) -> Result<(), RuleError> {
        let first = keys.first().ok_or(RuleError::Invalid {
            kind: self.kind,
            field: "keys",
            rule: "at least one key",
        })?;
        let expected = PartyId::derive(first);
        if &expected != id {
            return Err(RuleError::PartyIdMismatch {
                kind: self.kind,
                party: id.clone(),
                expected,
            });
        }
        if let Some(p) = self.state.party(id) {
            return Err(RuleError::PartyExists {
                party: p.reference(),
            });
        }
        if let Some(holder) = self.state.party_by_handle(handle) {
            return Err(RuleError::HandleTaken {
                kind: self.kind,
                handle: handle.clone(),
                holder: self.state.party_ref(holder),
            });
        }
        for k in keys {
            self.unused_key(k)?;
        }
        self.check_profile_refs(profile)?;
        let who = PartyRecordOrNew { id, handle };
        for k in keys {
            sigs.require_key(k, &who)?;
        }
        Ok(())
    }

    fn new_party(
        &self,
        id: &PartyId,
        handle: &super::ids::Handle,
        profile: &Profile,
        keys: &[PublicKey],
        sponsor: Option<PartyId>,
    ) -> Delta {
        let rec = PartyRecord {
            id: id.clone(),
            handle: handle.clone(),
            profile: profile.clone(),
            keys: keys
                .iter()
                .map(|k| KeyRecord {
                    key: *k,
                    added: self.at,
                    rotated: None,
                    revoked: None,
                })
                .collect(),
            head: self.hash,
            head_at: self.at,
            enrolled: self.ctx.index,
            sponsor,
        };
        let mut index = vec![IndexOp::Handle {
            handle: handle.clone(),
            party: Some(id.clone()),
        }];
        index.extend(keys.iter().map(|k| IndexOp::Key {
            key: *k,
            party: id.clone(),
        }));
        Delta {
            parties: vec![rec],
            index,
            ..Delta::default()
        }
    }

    fn advance_party(&self, p: &PartyRecord) -> PartyRecord {
        let mut np = p.clone();
        np.head = self.hash;
        np.head_at = self.at;
        np
    }

    fn advance_unit(&self, u: &UnitRecord) -> UnitRecord {
        let mut nu = u.clone();
        nu.head = self.hash;
        nu.head_at = self.at;
        nu.length += 1;
        nu
    }

    /// Units that may change hands: not retired, nothing pending.
    fn movable(&self, u: &UnitRecord) -> Result<(), RuleError> {
        if let Some(reason) = u.retired {
            return Err(RuleError::Retired {
                kind: self.kind,
                unit: u.id.clone(),
                reason: reason.as_str(),
            });
        }
        if let Some(p) = &u.pending {
            return Err(RuleError::TransferPending {
                kind: self.kind,
                unit: u.id.clone(),
                transfer: p.transfer,
            });
        }
        Ok(())
    }

    /// The unit is pending in `transfer` and `by` is its recipient (or its sender).
    fn pending_in<'u>(
        &self,
        u: &'u UnitRecord,
        transfer: &EventHash,
        by: &PartyRecord,
        recipient: bool,
    ) -> Result<&'u Pending, RuleError> {
        let p = u
            .pending
            .as_ref()
            .filter(|p| &p.transfer == transfer)
            .ok_or_else(|| RuleError::NotPending {
                kind: self.kind,
                unit: u.id.clone(),
                transfer: *transfer,
            })?;
        let expected = if recipient { &p.to } else { &p.from };
        if expected != &by.id {
            return Err(RuleError::WrongParty {
                kind: self.kind,
                unit: u.id.clone(),
                role: if recipient { "recipient" } else { "sender" },
                signer: by.reference(),
                expected: self.state.party_ref(expected),
            });
        }
        Ok(p)
    }

    /// Checks each link (registered, `prev` is the head, time moves forward), then lets
    /// `f` judge the unit and produce its new record and holding changes.
    fn each_unit(
        &self,
        links: &[UnitLink],
        mut f: impl FnMut(&UnitRecord) -> Result<(UnitRecord, Vec<IndexOp>), RuleError>,
    ) -> Result<Delta, RuleError> {
        let mut d = Delta::default();
        for l in links {
            if !self.judges(&l.unit) {
                continue;
            }
            let u = self
                .state
                .unit(&l.unit)
                .ok_or_else(|| RuleError::UnknownUnit {
                    kind: self.kind,
                    unit: l.unit.clone(),
                })?;
            if u.head != l.prev {
                return Err(RuleError::ChainBroken {
                    kind: self.kind,
                    unit: u.id.clone(),
                    expected: u.head,
                    found: l.prev,
                });
            }
            if self.at < u.head_at {
                return Err(RuleError::TimeBeforePrevious {
                    kind: self.kind,
                    at: self.at,
                    previous: u.head_at,
                    subject: format!("unit {}", u.id),
                });
            }
            let (nu, ops) = f(u)?;
            d.index.push(IndexOp::ChainLink {
                unit: u.id.clone(),
                seq: u.length,
            });
            d.index.extend(ops);
            d.units.push(nu);
        }
        Ok(d)
    }
}
