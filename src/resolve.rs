//! The resolver: does a unit's custody chain end at, or pass through, a restricted party?
//!
//! For one unit it re-reads and verifies the whole chain, replays custody (register,
//! transfers, accepts, observations), screens every party that held it, was offered it or
//! was declared its end user (with their parents and owners, `screen::hierarchy`), and
//! reports findings. The verdict is the most severe finding:
//! `broken` > `sanctioned_end` > `sanctioned_pending` > `sanctioned_history` > `diverted` >
//! `review` > `clear`.

use serde::Serialize;

use crate::chain::{self, ChainError};
use crate::core::event::Body;
use crate::core::event::Role;
use crate::core::ids::{EventHash, LedgerName, LogIndex, PartyId};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::screen::entry::Date;
use crate::screen::hierarchy::{Finding as Screened, Screener, Status};
use crate::screen::matcher::{Index, Thresholds};
use crate::store::{Store, StoreError};

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
    /// The resolver's notion of now (ledger time), for stale transfers.
    pub now: Timestamp,
}

fn date_of(t: Timestamp) -> Option<Date> {
    Date::parse(&t.to_string()).ok()
}

struct Walk {
    holder: Option<(PartyId, Timestamp, EventHash, LogIndex)>,
    past: Vec<(PartyId, Timestamp, EventHash, LogIndex)>,
    pending: Option<(PartyId, Timestamp, EventHash, LogIndex)>,
    end_users: Vec<(PartyId, Timestamp, EventHash, LogIndex)>,
    manufacturer: Option<PartyId>,
}

/// Whether `p` sits in the manufacturer's sponsorship tree (authorized by it, directly or
/// through distributors it authorized).
fn authorized<S: Store>(store: &S, maker: &PartyId, p: &PartyId) -> Result<bool, StoreError> {
    let mut cur = p.clone();
    for _ in 0..64 {
        if &cur == maker {
            return Ok(true);
        }
        match store.party(&cur)?.and_then(|r| r.sponsor) {
            Some(s) => cur = s,
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Resolves one unit.
pub fn resolve<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    unit: &UnitId,
    o: &Options,
) -> Result<Resolution, StoreError> {
    let mut findings = Vec::new();
    let c = match chain::read(store, ledger, unit) {
        Ok(c) => c,
        Err(ChainError::Store(e)) => return Err(e),
        Err(e) => {
            let index = match &e {
                ChainError::Broken { index, .. } => Some(*index),
                _ => None,
            };
            return Ok(Resolution {
                unit: unit.clone(),
                verdict: Verdict::Broken,
                findings: vec![Finding {
                    verdict: Verdict::Broken,
                    rule: "chain_verification",
                    detail: e.to_string(),
                    event: None,
                    index,
                    party: None,
                    date: None,
                    screening: vec![],
                    restricted_at_the_time: None,
                }],
            });
        }
    };
    let flag =
        |verdict, rule, detail: String, ev: &chain::ChainEvent, party: Option<&PartyId>, date| {
            Finding {
                verdict,
                rule,
                detail,
                event: Some(ev.hash),
                index: Some(ev.index),
                party: party.cloned(),
                date,
                screening: vec![],
                restricted_at_the_time: None,
            }
        };
    let mut w = Walk {
        holder: None,
        past: vec![],
        pending: None,
        end_users: vec![],
        manufacturer: None,
    };
    for ev in &c.events {
        match &ev.event.body {
            Body::Register(r) => {
                w.manufacturer = Some(r.manufacturer.clone());
                w.holder = Some((r.manufacturer.clone(), r.at, ev.hash, ev.index));
            }
            Body::Transfer(t) => {
                w.pending = Some((t.to.clone(), t.at, ev.hash, ev.index));
                let rec = store.party(&t.to)?;
                let end_user = rec.as_ref().is_some_and(|r| r.has_role(Role::EndUser));
                if let (Some(maker), false) = (&w.manufacturer, end_user) {
                    if !authorized(store, maker, &t.to)? {
                        findings.push(flag(
                            Verdict::Review,
                            "unauthorized_distributor",
                            format!("transfer to {}, which the manufacturer has not authorized (not in its sponsorship tree)", t.to),
                            ev,
                            Some(&t.to),
                            Some(t.at),
                        ));
                    }
                }
                if let Some(r) = &rec {
                    if r.profile.country != t.destination_country {
                        findings.push(flag(
                            Verdict::Review,
                            "destination_mismatch",
                            format!(
                                "declared destination {} differs from the recipient's country {}",
                                t.destination_country, r.profile.country
                            ),
                            ev,
                            Some(&t.to),
                            Some(t.at),
                        ));
                    }
                }
            }
            Body::Accept(a) => {
                if let Some(h) = w.holder.take() {
                    w.past.push(h);
                }
                w.holder = Some((a.by.clone(), a.at, ev.hash, ev.index));
                w.pending = None;
                match &a.end_use {
                    None => findings.push(flag(
                        Verdict::Review,
                        "no_end_use",
                        "accepted without an end-use declaration".into(),
                        ev,
                        Some(&a.by),
                        Some(a.at),
                    )),
                    Some(eu) => {
                        if let Some(p) = &eu.end_user_party {
                            w.end_users.push((p.clone(), a.at, ev.hash, ev.index));
                        }
                    }
                }
            }
            Body::Reject(_) | Body::Cancel(_) => w.pending = None,
            Body::Observe(ob) if w.holder.as_ref().is_some_and(|h| h.0 != ob.seen_at) => {
                let holder = w
                    .holder
                    .as_ref()
                    .map(|h| h.0.to_string())
                    .unwrap_or_default();
                findings.push(flag(
                    Verdict::Diverted,
                    "observed_elsewhere",
                    format!(
                        "observed by {} at {}, but the recorded holder is {holder}",
                        ob.observer, ob.seen_at
                    ),
                    ev,
                    Some(&ob.seen_at),
                    Some(ob.at),
                ));
            }
            _ => {}
        }
    }
    let mut now_screen = Screener::new(index, store, o.thresholds, None);
    let screen_at = |p: &PartyId, t: Timestamp| -> Result<Status, StoreError> {
        Ok(Screener::new(index, store, o.thresholds, date_of(t))
            .party(p)?
            .status)
    };
    let sanctioned = |verdict,
                      rule,
                      what: &str,
                      (p, t, h, i): &(PartyId, Timestamp, EventHash, LogIndex),
                      then: Option<bool>,
                      findings: &mut Vec<Finding>,
                      now_screen: &mut Screener<'_, S>|
     -> Result<(), StoreError> {
        let s = now_screen.party(p)?;
        match s.status {
            Status::Restricted => findings.push(Finding {
                verdict,
                rule,
                detail: format!("{what} {} ({p}) is restricted", s.name),
                event: Some(*h),
                index: Some(*i),
                party: Some(p.clone()),
                date: Some(*t),
                screening: s.findings,
                restricted_at_the_time: then,
            }),
            Status::Review => findings.push(Finding {
                verdict: Verdict::Review,
                rule: "possible_match",
                detail: format!(
                    "{what} {} ({p}) is a possible match for review: {} candidate(s)",
                    s.name,
                    s.review.len()
                ),
                event: Some(*h),
                index: Some(*i),
                party: Some(p.clone()),
                date: Some(*t),
                screening: vec![],
                restricted_at_the_time: None,
            }),
            Status::Clear => {}
        }
        Ok(())
    };
    if let Some(h) = &w.holder {
        sanctioned(
            Verdict::SanctionedEnd,
            "restricted_holder",
            "the current holder",
            h,
            None,
            &mut findings,
            &mut now_screen,
        )?;
    }
    for e in &w.end_users {
        sanctioned(
            Verdict::SanctionedEnd,
            "restricted_end_user",
            "the declared end user",
            e,
            None,
            &mut findings,
            &mut now_screen,
        )?;
    }
    if let Some(p) = &w.pending {
        sanctioned(
            Verdict::SanctionedPending,
            "restricted_recipient",
            "the pending recipient",
            p,
            None,
            &mut findings,
            &mut now_screen,
        )?;
        let days = (o.now.unix() - p.1.unix()) / 86_400;
        if days > o.stale_pending_days {
            findings.push(Finding {
                verdict: Verdict::Review,
                rule: "stale_pending",
                detail: format!("transfer to {} pending for {days} days (more than {}): the unit may have gone off the ledger", p.0, o.stale_pending_days),
                event: Some(p.2),
                index: Some(p.3),
                party: Some(p.0.clone()),
                date: Some(p.1),
                screening: vec![],
                restricted_at_the_time: None,
            });
        }
    }
    for h in &w.past {
        if Some(&h.0) == w.manufacturer.as_ref() {
            continue;
        }
        let then = screen_at(&h.0, h.1)? == Status::Restricted;
        sanctioned(
            Verdict::SanctionedHistory,
            "restricted_past_holder",
            "a past holder",
            h,
            Some(then),
            &mut findings,
            &mut now_screen,
        )?;
    }
    let verdict = findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Clear);
    findings.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(a.index.cmp(&b.index)));
    Ok(Resolution {
        unit: unit.clone(),
        verdict,
        findings,
    })
}

/// Every unit's resolution, with counts by verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub units: u64,
    pub counts: std::collections::BTreeMap<&'static str, u64>,
    /// The resolutions `keep` accepted.
    pub resolutions: Vec<Resolution>,
}

/// Resolves every unit, in id order, keeping those for which `keep` says so.
pub fn resolve_all<S: Store>(
    store: &S,
    ledger: &LedgerName,
    index: &Index,
    o: &Options,
    mut keep: impl FnMut(&Resolution) -> Result<bool, StoreError>,
) -> Result<Summary, StoreError> {
    let mut sum = Summary::default();
    let mut after = None;
    loop {
        let page = store.units(after.as_ref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for rec in &page {
            sum.units += 1;
            let r = resolve(store, ledger, index, &rec.id, o)?;
            *sum.counts.entry(r.verdict.as_str()).or_insert(0) += 1;
            if keep(&r)? {
                sum.resolutions.push(r);
            }
        }
    }
    Ok(sum)
}
