//! What a list update changes: every party is screened against the lists before and
//! after; only the units a changed party is involved with (the store's involvement index:
//! manufacturer, transfer recipients, declared end users) are resolved again, before and
//! after; the units whose verdict differs are reported with the parties that explain it.
//! The cost is one screening of every party twice, plus the affected units' chains: the
//! rest of the ledger is not read.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::events::EventCache;
use super::peers::Peers;
use super::screens::Screens;
use super::{resolve_with, Options, Resolution, Verdict};
use crate::core::ids::{LedgerName, PartyId};
use crate::core::unit::UnitId;
use crate::screen::hierarchy::{Finding, PartyScreening, Status};
use crate::screen::matcher::Candidate;
use crate::screen::matcher::Index;
use crate::store::{Store, StoreError};

/// A party whose screening differs between the two list versions.
#[derive(Clone, Debug, Serialize)]
pub struct PartyChange {
    pub party: PartyId,
    pub name: String,
    pub before: Status,
    pub after: Status,
}

/// A unit whose verdict changed, with the changed parties involved in it and its new
/// resolution (the evidence).
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub unit: UnitId,
    pub before: Verdict,
    pub after: Verdict,
    pub because_of: Vec<PartyId>,
    pub resolution: Resolution,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Changes {
    pub parties_screened: u64,
    pub parties_changed: Vec<PartyChange>,
    /// Units re-resolved: those the changed parties are involved with.
    pub units_touched: u64,
    pub changes: Vec<Change>,
}

/// What the comparison looks at: the status and which entries (at which level, in force or
/// not) explain it, through which parents and owners. Not the scores: adding any entry to an
/// index shifts every score a little (token weights are corpus-wide), which changes no verdict.
fn evidence(s: &PartyScreening) -> (Status, Vec<String>) {
    fn cand(c: &Candidate) -> String {
        format!("{}:{}:{:?}:{}", c.list, c.entry_id, c.level, c.in_force)
    }
    fn finding(f: &Finding) -> String {
        match f {
            Finding::Listed { candidate } => format!("listed {}", cand(candidate)),
            Finding::Subordinate { path, ancestor } => {
                let p: Vec<&str> = path.iter().map(|s| s.party.as_str()).collect();
                format!("subordinate {} {}", p.join(">"), finding(ancestor))
            }
            Finding::Owned { total_bps, owners } => {
                let o: Vec<String> = owners
                    .iter()
                    .map(|o| {
                        format!(
                            "{}/{}/{}/{}",
                            o.name,
                            o.party.as_ref().map_or("", |p| p.as_str()),
                            o.share_bps,
                            o.restricted_because.join("+")
                        )
                    })
                    .collect();
                format!("owned {total_bps} {}", o.join(","))
            }
        }
    }
    let mut keys: Vec<String> = s.findings.iter().map(finding).collect();
    keys.extend(s.review.iter().map(|c| format!("review {}", cand(c))));
    keys.sort();
    (s.status, keys)
}

/// The units whose verdict differs between list index `old` and `new`.
pub fn changed<S: Store>(
    store: &S,
    ledger: &LedgerName,
    old: &Index,
    new: &Index,
    o: &Options,
    peers: &Peers,
) -> Result<Changes, StoreError> {
    let ids: Vec<PartyId> = store.parties()?.into_iter().map(|r| r.id).collect();
    let mut before = Screens::new(old, store, o.thresholds);
    let mut after = Screens::new(new, store, o.thresholds);
    before.preload(&ids)?;
    after.preload(&ids)?;
    let mut out = Changes {
        parties_screened: ids.len() as u64,
        ..Changes::default()
    };
    let mut touched: BTreeMap<UnitId, BTreeSet<PartyId>> = BTreeMap::new();
    for id in &ids {
        let (b, a) = (before.now(id)?, after.now(id)?);
        if evidence(&b) == evidence(&a) {
            continue;
        }
        out.parties_changed.push(PartyChange {
            party: id.clone(),
            name: a.name.clone(),
            before: b.status,
            after: a.status,
        });
        let mut from = None;
        loop {
            let page = store.involved(id, from.as_ref(), 4096)?;
            let Some(last) = page.last() else { break };
            from = Some(last.clone());
            for u in page {
                touched.entry(u).or_default().insert(id.clone());
            }
        }
    }
    out.units_touched = touched.len() as u64;
    let mut cache = EventCache::default();
    for (unit, parties) in touched {
        let was = resolve_with(store, ledger, &mut before, &mut cache, &unit, o, peers)?;
        let now = resolve_with(store, ledger, &mut after, &mut cache, &unit, o, peers)?;
        if was.verdict != now.verdict {
            out.changes.push(Change {
                unit,
                before: was.verdict,
                after: now.verdict,
                because_of: parties.into_iter().collect(),
                resolution: now,
            });
        }
    }
    Ok(out)
}
