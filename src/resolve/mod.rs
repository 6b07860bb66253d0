//! The resolver: does a unit's custody chain end at, or pass through, a restricted party?
//!
//! For one unit it re-reads and verifies the whole chain, replays custody (register,
//! transfers, accepts, observations), screens every party that held it, was offered it or
//! was declared its end user (with their parents and owners, `screen::hierarchy`), and
//! reports findings. The verdict is the most severe finding:
//! `broken` > `sanctioned_end` > `sanctioned_pending` > `sanctioned_history` > `diverted` >
//! `review` > `clear`.
//!
//! Code map: [`walk`] replays custody from events (pure), [`judge`] turns a walk into
//! findings, [`screens`] memoizes screening per party, [`peers`] is the dwell baseline,
//! [`bulk`] resolves the whole ledger in one pass over the log, and [`anchor`] is what it
//! takes the log's events on.

pub mod anchor;
pub mod bulk;
pub mod change;
pub mod events;
pub mod judge;
mod judge_all;
pub mod peers;
pub mod screens;
mod units;
pub mod walk;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::chain::ChainError;
use crate::core::event::Role;
use crate::core::ids::{EventHash, LedgerName, LogIndex, PartyId};
use crate::core::unit::UnitId;
use crate::core::values::{CountryCode, Timestamp};
use crate::screen::hierarchy::{Finding as Screened, PartyScreening};
use crate::screen::matcher::{Index, Thresholds};
use crate::store::{Store, StoreError};
use crate::verified::VerifiedCache;

pub use anchor::{Admission, Signatures};
pub use bulk::{resolve_all, resolve_all_within, Summary};
pub use peers::{baseline, DwellRule, Peers};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Clear,
    Review,
    Diverted,
    SanctionedHistory,
    SanctionedPending,
    SanctionedEnd,
    Broken,
}

impl Verdict {
    /// Every verdict, least severe first.
    pub const ALL: [Self; 7] = [
        Self::Clear,
        Self::Review,
        Self::Diverted,
        Self::SanctionedHistory,
        Self::SanctionedPending,
        Self::SanctionedEnd,
        Self::Broken,
    ];

    /// The verdict with this name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::Review => "review",
            Self::Diverted => "diverted",
            Self::SanctionedHistory => "sanctioned_history",
            Self::SanctionedPending => "sanctioned_pending",
            Self::SanctionedEnd => "sanctioned_end",
            Self::Broken => "broken",
        }
    }
}

/// One reason for a verdict, with its evidence.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    /// Stable name of the rule that produced it.
    pub rule: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventHash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<LogIndex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub party: Option<PartyId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<Timestamp>,
    /// For sanctioned findings: why the party is restricted (listing, parent path, owners).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub screening: Vec<Screened>,
    /// For possible matches: the candidates between the review and match thresholds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<crate::screen::matcher::Candidate>,
    /// For history: was the party already restricted on the date it took custody?
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restricted_at_the_time: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Resolution {
    pub unit: UnitId,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub thresholds: Thresholds,
    /// A transfer pending longer than this is a red flag (the unit may have gone dark).
    pub stale_pending_days: i64,
    /// The resolver's notion of now (ledger time), for stale transfers and dwell.
    pub now: Timestamp,
    /// How far beyond its peers a holder's stay must be to raise `long_dwell`.
    pub dwell: DwellRule,
    /// How the whole-ledger resolution (`resolve --all`) admits the log's events; one
    /// unit's chain is always signature-checked.
    pub signatures: Signatures,
}

/// The one-unit path: parties read from the store as the walk meets them.
struct One<'a, 'b, S: Store> {
    store: &'a S,
    screens: &'b mut screens::Screens<'a, S>,
    hashes: HashMap<LogIndex, EventHash>,
    records: HashMap<PartyId, Option<crate::core::state::PartyRecord>>,
}

impl<S: Store> One<'_, '_, S> {
    fn record(
        &mut self,
        p: &PartyId,
    ) -> Result<Option<&crate::core::state::PartyRecord>, StoreError> {
        if !self.records.contains_key(p) {
            let r = self.store.party(p)?;
            self.records.insert(p.clone(), r);
        }
        Ok(self.records.get(p).and_then(Option::as_ref))
    }
}

impl<S: Store> walk::Directory for One<'_, '_, S> {
    type Key = PartyId;
    fn key(&mut self, id: &PartyId) -> Result<PartyId, StoreError> {
        Ok(id.clone())
    }
    fn country(&mut self, p: &PartyId) -> Result<Option<CountryCode>, StoreError> {
        Ok(self.record(p)?.map(|r| r.profile.country))
    }
    fn is_end_user(&mut self, p: &PartyId) -> Result<bool, StoreError> {
        Ok(self.record(p)?.is_some_and(|r| r.has_role(Role::EndUser)))
    }
    fn authorized(&mut self, maker: &PartyId, p: &PartyId) -> Result<bool, StoreError> {
        walk::in_sponsor_tree(maker, p, |q| {
            Ok(self.record(q)?.and_then(|r| r.sponsor.clone()))
        })
    }
}

impl<S: Store> judge::Evidence for One<'_, '_, S> {
    fn id(&self, p: &PartyId) -> PartyId {
        p.clone()
    }
    fn label(&mut self, p: &PartyId) -> Result<String, StoreError> {
        Ok(label(self.record(p)?.map(|r| &r.handle), p))
    }
    fn hash(&self, i: LogIndex) -> EventHash {
        self.hashes
            .get(&i)
            .copied()
            .expect("the walk names only events of the chain it replayed")
    }
    fn screen(&mut self, p: &PartyId) -> Result<Arc<PartyScreening>, StoreError> {
        self.screens.now(p)
    }
    fn restricted_at(&mut self, p: &PartyId, t: Timestamp) -> Result<Option<bool>, StoreError> {
        self.screens.restricted_at(p, t)
    }
}

/// `handle (id)`, or `(id)` for a party not on the ledger.
fn label(handle: Option<&crate::core::ids::Handle>, id: &PartyId) -> String {
    match handle {
        Some(h) => format!("{h} ({id})"),
        None => format!("({id})"),
    }
}

/// The resolution of a unit whose chain failed verification.
fn broken(unit: &UnitId, index: Option<LogIndex>, detail: String) -> Resolution {
    Resolution {
        unit: unit.clone(),
        verdict: Verdict::Broken,
        findings: vec![Finding {
            verdict: Verdict::Broken,
            rule: "chain_verification",
            detail,
            event: None,
            index,
            party: None,
            date: None,
            screening: vec![],
            candidates: vec![],
            restricted_at_the_time: None,
        }],
    }
}

/// Resolves one unit: reads and verifies its chain, replays it, and judges it against the
/// ledger-wide dwell baseline `peers` ([`baseline`]). Events verified earlier for the same
/// stored bytes come from `verified` (see [`crate::verified`]).
pub fn resolve<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    unit: &UnitId,
    o: &Options,
    peers: &Peers,
    verified: &Arc<VerifiedCache>,
) -> Result<Resolution, StoreError> {
    let mut screens = screens::Screens::new(index, store, o.thresholds);
    let mut cache = events::EventCache::backed_by(256, Arc::clone(verified));
    resolve_with(store, ledger, &mut screens, &mut cache, unit, o, peers)
}

/// [`resolve`] with screening answers and verified events shared across calls.
pub fn resolve_with<'a, S: Store>(
    store: &'a S,
    ledger: &LedgerName,
    screens: &mut screens::Screens<'a, S>,
    cache: &mut events::EventCache,
    unit: &UnitId,
    o: &Options,
    peers: &Peers,
) -> Result<Resolution, StoreError> {
    let c = match events::chain(store, ledger, unit, cache)? {
        Ok(c) => c,
        Err(ChainError::Store(e)) => return Err(e),
        Err(e) => {
            let at = match &e {
                ChainError::Broken { index, .. } => Some(*index),
                _ => None,
            };
            return Ok(broken(unit, at, e.to_string()));
        }
    };
    let mut one = One {
        store,
        screens,
        hashes: c.iter().map(|(i, e)| (*i, e.hash())).collect(),
        records: HashMap::new(),
    };
    let mut w = walk::Walk::default();
    for (i, e) in &c {
        w.step(*i, e.hash(), e.body(), &mut one)?;
    }
    judge::judge(unit, &w, &mut one, o, peers)
}
