//! Replaying one unit's custody from its events: who holds it, who held it before and for
//! how long, who it is offered to, who was declared its end user, and the red flags the
//! events themselves raise. Pure: party facts come through [`Directory`], and the party
//! key `P` is whatever the caller interns parties as (a `PartyId` for one unit, a table
//! index when replaying millions).

use crate::core::event::Body;
use crate::core::ids::{EventHash, LogIndex, PartyId};
use crate::core::values::{CountryCode, Timestamp};
use crate::store::StoreError;

/// What the walk needs to know about parties.
pub trait Directory {
    type Key: Clone + PartialEq;
    fn key(&mut self, id: &PartyId) -> Result<Self::Key, StoreError>;
    /// The party's declared country (`None`: not on the ledger).
    fn country(&mut self, p: &Self::Key) -> Result<Option<CountryCode>, StoreError>;
    fn is_end_user(&mut self, p: &Self::Key) -> Result<bool, StoreError>;
    /// Whether `p` is in `maker`'s sponsorship tree (authorized by it, directly or through
    /// distributors it authorized).
    fn authorized(&mut self, maker: &Self::Key, p: &Self::Key) -> Result<bool, StoreError>;
}

/// Whether `p` is `maker` or reached from it through declared sponsors: the maker's
/// sponsorship tree (followed at most 64 steps, so a cycle ends it).
pub fn in_sponsor_tree<K: Clone + PartialEq, E>(
    maker: &K,
    p: &K,
    mut sponsor_of: impl FnMut(&K) -> Result<Option<K>, E>,
) -> Result<bool, E> {
    let mut cur = p.clone();
    for _ in 0..64 {
        if &cur == maker {
            return Ok(true);
        }
        match sponsor_of(&cur)? {
            Some(s) => cur = s,
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// A party's time with the unit: from the event that gave it custody (or offered it)
/// until it handed the unit on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stay<P> {
    pub party: P,
    pub since: Timestamp,
    pub index: LogIndex,
    /// When it transferred the unit on (for past holders).
    pub until: Option<Timestamp>,
}

/// A red flag raised by an event, before screening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flag<P> {
    /// Transfer to a party outside the manufacturer's sponsorship tree.
    Unauthorized { to: P },
    /// Transfer whose declared destination differs from the recipient's country.
    DestinationMismatch {
        to: P,
        declared: CountryCode,
        actual: CountryCode,
    },
    /// Accept without an end-use declaration.
    NoEndUse { by: P },
    /// An observation places the unit somewhere other than its recorded holder.
    ObservedElsewhere { observer: P, seen_at: P, holder: P },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged<P> {
    pub flag: Flag<P>,
    pub index: LogIndex,
    pub at: Timestamp,
}

/// The replayed custody of one unit.
#[derive(Clone, Debug)]
pub struct Walk<P> {
    pub maker: Option<P>,
    pub holder: Option<Stay<P>>,
    pub past: Vec<Stay<P>>,
    pub pending: Option<Stay<P>>,
    pub end_users: Vec<Stay<P>>,
    pub flags: Vec<Flagged<P>>,
    /// The last event applied.
    pub head: Option<EventHash>,
}

impl<P> Default for Walk<P> {
    fn default() -> Self {
        Self {
            maker: None,
            holder: None,
            past: Vec::new(),
            pending: None,
            end_users: Vec::new(),
            flags: Vec::new(),
            head: None,
        }
    }
}

impl<P: Clone + PartialEq> Walk<P> {
    /// Applies the next event of this unit's chain (already verified and linked).
    pub fn step<D: Directory<Key = P>>(
        &mut self,
        index: LogIndex,
        hash: EventHash,
        body: &Body,
        dir: &mut D,
    ) -> Result<(), StoreError> {
        self.head = Some(hash);
        match body {
            Body::Register(r) => {
                let m = dir.key(&r.manufacturer)?;
                self.maker = Some(m.clone());
                self.holder = Some(Stay {
                    party: m,
                    since: r.at,
                    index,
                    until: None,
                });
            }
            Body::Transfer(t) => {
                let to = dir.key(&t.to)?;
                if let Some(maker) = &self.maker {
                    if !dir.is_end_user(&to)? && !dir.authorized(maker, &to)? {
                        self.flag(Flag::Unauthorized { to: to.clone() }, index, t.at);
                    }
                }
                if let Some(actual) = dir.country(&to)? {
                    if actual != t.destination_country {
                        let f = Flag::DestinationMismatch {
                            to: to.clone(),
                            declared: t.destination_country,
                            actual,
                        };
                        self.flag(f, index, t.at);
                    }
                }
                self.pending = Some(Stay {
                    party: to,
                    since: t.at,
                    index,
                    until: None,
                });
            }
            Body::Accept(a) => {
                let by = dir.key(&a.by)?;
                let handed_on = self.pending.take().map(|p| p.since);
                if let Some(mut h) = self.holder.take() {
                    h.until = handed_on.or(Some(a.at));
                    self.past.push(h);
                }
                self.holder = Some(Stay {
                    party: by.clone(),
                    since: a.at,
                    index,
                    until: None,
                });
                match &a.end_use {
                    None => self.flag(Flag::NoEndUse { by }, index, a.at),
                    Some(eu) => {
                        if let Some(p) = &eu.end_user_party {
                            let party = dir.key(p)?;
                            self.end_users.push(Stay {
                                party,
                                since: a.at,
                                index,
                                until: None,
                            });
                        }
                    }
                }
            }
            Body::Reject(_) | Body::Cancel(_) => self.pending = None,
            Body::Observe(ob) => {
                let seen_at = dir.key(&ob.seen_at)?;
                if let Some(h) = self.holder.as_ref().filter(|h| h.party != seen_at) {
                    let f = Flag::ObservedElsewhere {
                        observer: dir.key(&ob.observer)?,
                        seen_at,
                        holder: h.party.clone(),
                    };
                    self.flag(f, index, ob.at);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flag(&mut self, flag: Flag<P>, index: LogIndex, at: Timestamp) {
        self.flags.push(Flagged { flag, index, at });
    }

    /// Every completed stay of an intermediary (neither the manufacturer nor an end
    /// user), in days: the peer sample for the dwell red flag.
    pub fn intermediary_days<D: Directory<Key = P>>(
        &self,
        dir: &mut D,
        out: &mut Vec<u32>,
    ) -> Result<(), StoreError> {
        for s in &self.past {
            if self.maker.as_ref() == Some(&s.party) || dir.is_end_user(&s.party)? {
                continue;
            }
            if let Some(u) = s.until {
                out.push(days(s.since, u));
            }
        }
        Ok(())
    }
}

/// Whole days from `a` to `b` (0 if `b` is earlier).
#[must_use]
pub fn days(a: Timestamp, b: Timestamp) -> u32 {
    a.whole_days_until(b)
}
