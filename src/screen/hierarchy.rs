//! Screening a party with its declared hierarchy and ownership.
//!
//! A party is **restricted** when
//! - one of its names matches a listed entry in force on the date (`listed`);
//! - its parent chain reaches a restricted party (`subordinate`: Entity List entries cover
//!   a listed bureau's subordinate units); the finding names the path;
//! - parties that are restricted own 50% or more of it in aggregate (`owned`: OFAC's 50%
//!   rule, BIS's affiliates rule). Owners on the ledger are judged recursively (an entity
//!   blocked by ownership counts as blocked); owners named only by name are screened.
//!
//! It is under **review** when the only candidates are between the thresholds, and
//! **clear** otherwise. Cycles in declared parents or owners are cut and reported.

use std::collections::HashMap;

use serde::Serialize;

use super::entry::Date;
use super::matcher::{Candidate, Index, Level, Query, Thresholds};
use crate::core::ids::PartyId;
use crate::core::state::PartyRecord;
use crate::store::{Store, StoreError};

/// What screening needs to know about a party.
#[derive(Clone, Debug)]
pub struct PartyInfo {
    pub id: PartyId,
    /// Legal name first, then aliases.
    pub names: Vec<String>,
    pub country: Option<String>,
    pub parent: Option<PartyId>,
    pub owners: Vec<OwnerInfo>,
}

#[derive(Clone, Debug)]
pub struct OwnerInfo {
    pub name: String,
    pub party: Option<PartyId>,
    pub share_bps: u32,
}

impl From<&PartyRecord> for PartyInfo {
    fn from(r: &PartyRecord) -> Self {
        let p = &r.profile;
        Self {
            id: r.id.clone(),
            names: std::iter::once(p.legal_name.to_string())
                .chain(p.aliases.iter().map(ToString::to_string))
                .collect(),
            country: Some(p.country.as_str().to_owned()),
            parent: p.parent.clone(),
            owners: p
                .owners
                .iter()
                .map(|o| OwnerInfo {
                    name: o.name.to_string(),
                    party: o.party.clone(),
                    share_bps: o.share_bps,
                })
                .collect(),
        }
    }
}

/// Where party profiles come from.
pub trait Parties {
    fn party(&self, id: &PartyId) -> Result<Option<PartyInfo>, StoreError>;
}

impl<S: Store> Parties for S {
    fn party(&self, id: &PartyId) -> Result<Option<PartyInfo>, StoreError> {
        Ok(Store::party(self, id)?.as_ref().map(PartyInfo::from))
    }
}

impl Parties for HashMap<PartyId, PartyInfo> {
    fn party(&self, id: &PartyId) -> Result<Option<PartyInfo>, StoreError> {
        Ok(self.get(id).cloned())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Clear,
    Review,
    Restricted,
}

/// One step of a parent path.
#[derive(Clone, Debug, Serialize)]
pub struct PathStep {
    pub party: PartyId,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct OwnerShare {
    pub name: String,
    pub party: Option<PartyId>,
    pub share_bps: u32,
    /// The owner's own finding (listed, subordinate, owned), by its `basis` names.
    pub restricted_because: Vec<String>,
}

/// Why a party is restricted.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Finding {
    /// One of the party's names matches a listed entry in force.
    Listed { candidate: Box<Candidate> },
    /// The parent chain reaches a restricted party: `path` runs from the party's parent to
    /// the restricted ancestor, whose own findings follow.
    Subordinate {
        path: Vec<PathStep>,
        ancestor: Box<Finding>,
    },
    /// Restricted owners hold `total_bps` (≥ 5000) of it.
    Owned {
        total_bps: u32,
        owners: Vec<OwnerShare>,
    },
}

impl Finding {
    /// The list entry the finding rests on, in words: the entry itself, the parent path to
    /// a listed ancestor, or the restricted owners.
    #[must_use]
    pub fn explain(&self) -> String {
        match self {
            Self::Listed { candidate } => format!(
                "{} — {} ({}){}",
                candidate.source_list,
                candidate.entry_name,
                candidate.entry_id,
                candidate
                    .listed_on
                    .map(|d| format!(", listed {d}"))
                    .unwrap_or_default()
            ),
            Self::Subordinate { path, ancestor } => format!(
                "subordinate via {} of: {}",
                path.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" → "),
                ancestor.explain()
            ),
            Self::Owned { total_bps, owners } => format!(
                "{}% owned by restricted parties: {}",
                total_bps / 100,
                owners
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    #[must_use]
    pub fn basis(&self) -> &'static str {
        match self {
            Self::Listed { .. } => "listed",
            Self::Subordinate { .. } => "subordinate",
            Self::Owned { .. } => "owned",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PartyScreening {
    pub party: PartyId,
    pub name: String,
    pub status: Status,
    pub findings: Vec<Finding>,
    /// Candidates between the thresholds, and matches not yet in force on the date.
    pub review: Vec<Candidate>,
    /// Declared links that could not be followed (unknown party, cycle).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Screens parties of one ledger against one index, remembering answers.
pub struct Screener<'a, P: Parties + ?Sized> {
    index: &'a Index,
    parties: &'a P,
    th: Thresholds,
    date: Option<Date>,
    /// With a date: entries without a listing date count as not yet in force.
    strict_dates: bool,
    memo: HashMap<PartyId, PartyScreening>,
}

/// Aggregate share (basis points) at which owners make a party restricted.
pub const CONTROL_BPS: u32 = 5000;

impl<'a, P: Parties + ?Sized> Screener<'a, P> {
    pub fn new(index: &'a Index, parties: &'a P, th: Thresholds, date: Option<Date>) -> Self {
        Self {
            index,
            parties,
            th,
            date,
            strict_dates: false,
            memo: HashMap::new(),
        }
    }

    /// Counts entries whose list gives no listing date (OFAC's legacy files) as not in
    /// force on the date asked, instead of in force: with both answers, a caller can tell
    /// "restricted on that date", "not yet", and "cannot tell".
    #[must_use]
    pub fn unknown_dates_not_in_force(mut self) -> Self {
        self.strict_dates = true;
        self
    }

    /// Screens names directly: match-level candidates in force, and the rest for review.
    fn names(&self, names: &[String], country: Option<&str>) -> (Vec<Candidate>, Vec<Candidate>) {
        let mut hits: Vec<Candidate> = Vec::new();
        for n in names {
            let q = Query {
                name: n.clone(),
                country: country.map(str::to_owned),
                date: self.date,
            };
            for c in self.index.screen(&q, self.th, 5) {
                match hits
                    .iter_mut()
                    .find(|h| h.list == c.list && h.entry_id == c.entry_id)
                {
                    Some(h) if h.score >= c.score => {}
                    Some(h) => *h = c,
                    None => hits.push(c),
                }
            }
        }
        let strict = self.strict_dates && self.date.is_some();
        hits.into_iter().partition(|c| {
            c.level == Level::Match && c.in_force && !(strict && c.listed_on.is_none())
        })
    }

    /// Screens a party, following its parent and owners.
    pub fn party(&mut self, id: &PartyId) -> Result<PartyScreening, StoreError> {
        let mut visiting = Vec::new();
        self.visit(id, &mut visiting)
    }

    fn visit(
        &mut self,
        id: &PartyId,
        visiting: &mut Vec<PartyId>,
    ) -> Result<PartyScreening, StoreError> {
        if let Some(s) = self.memo.get(id) {
            return Ok(s.clone());
        }
        let Some(info) = self.parties.party(id)? else {
            return Ok(PartyScreening {
                party: id.clone(),
                name: String::new(),
                status: Status::Clear,
                findings: vec![],
                review: vec![],
                notes: vec![format!("party {id} is not on the ledger")],
            });
        };
        visiting.push(id.clone());
        let (matches, review) = self.names(&info.names, info.country.as_deref());
        let mut out = PartyScreening {
            party: id.clone(),
            name: info.names.first().cloned().unwrap_or_default(),
            status: Status::Clear,
            findings: matches
                .into_iter()
                .map(|c| Finding::Listed {
                    candidate: Box::new(c),
                })
                .collect(),
            review,
            notes: vec![],
        };
        if let Some(p) = &info.parent {
            if visiting.contains(p) {
                out.notes.push(format!(
                    "parent {p} is in a cycle of declared parents; not followed"
                ));
            } else {
                let ps = self.visit(p, visiting)?;
                if ps.status == Status::Restricted {
                    let first = ps.findings.first().cloned();
                    if let Some(f) = first {
                        let mut path = vec![PathStep {
                            party: ps.party.clone(),
                            name: ps.name.clone(),
                        }];
                        let ancestor = match f {
                            Finding::Subordinate {
                                path: rest,
                                ancestor,
                            } => {
                                path.extend(rest);
                                ancestor
                            }
                            other => Box::new(other),
                        };
                        out.findings.push(Finding::Subordinate { path, ancestor });
                    }
                }
                out.notes
                    .extend(ps.notes.iter().map(|n| format!("via parent: {n}")));
            }
        }
        let mut shares = Vec::new();
        let mut total = 0u32;
        for o in &info.owners {
            let because: Vec<String> = match &o.party {
                Some(p) if visiting.contains(p) => {
                    out.notes
                        .push(format!("owner {p} is in an ownership cycle; not followed"));
                    vec![]
                }
                Some(p) => {
                    let os = self.visit(p, visiting)?;
                    if os.status == Status::Restricted {
                        os.findings.iter().map(|f| f.basis().to_owned()).collect()
                    } else {
                        vec![]
                    }
                }
                None => {
                    let (m, _) = self.names(std::slice::from_ref(&o.name), None);
                    m.iter()
                        .map(|c| format!("listed: {}:{} {}", c.list, c.entry_id, c.entry_name))
                        .collect()
                }
            };
            if !because.is_empty() {
                total = total.saturating_add(o.share_bps);
                shares.push(OwnerShare {
                    name: o.name.clone(),
                    party: o.party.clone(),
                    share_bps: o.share_bps,
                    restricted_because: because,
                });
            }
        }
        if total >= CONTROL_BPS {
            out.findings.push(Finding::Owned {
                total_bps: total,
                owners: shares,
            });
        }
        out.status = if !out.findings.is_empty() {
            Status::Restricted
        } else if !out.review.is_empty() {
            Status::Review
        } else {
            Status::Clear
        };
        visiting.pop();
        self.memo.insert(id.clone(), out.clone());
        Ok(out)
    }
}
