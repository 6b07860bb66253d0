//! A unit's custody graph: parties as nodes, handoffs as dated edges, from its verified
//! chain and (optionally) its resolution. Pure: built from values, rendered to text by
//! [`dot`], [`mermaid`] and [`svg`] (`custody chain --format dot|mermaid|svg`, and the
//! dashboard's unit page).

pub mod dot;
pub mod mermaid;
pub mod svg;

use std::collections::HashMap;

use serde::Serialize;

use crate::chain::Chain;
use crate::core::event::Body;
use crate::core::ids::{LogIndex, PartyId};
use crate::core::state::MemState;
use crate::core::values::Timestamp;
use crate::resolve::Resolution;

/// One party in the graph.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub party: PartyId,
    /// Short name (handle) and legal name, as enrolled.
    pub handle: String,
    pub name: String,
    pub country: String,
    /// The party holds the unit now.
    pub holder: bool,
    /// The manufacturer that registered it.
    pub maker: bool,
    /// Why the resolver holds the party restricted (the matched list entry), if it does.
    pub restricted: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A transfer the recipient accepted.
    Handoff,
    /// A transfer not yet accepted.
    Pending,
    /// A transfer rejected or cancelled: custody did not move.
    Returned,
    /// A servicer's observation of the unit at a party.
    Observed,
}

/// One dated edge, in chain order.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// Indexes into [`Graph::nodes`].
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    pub at: Timestamp,
    /// Log index of the event that made the edge (the transfer, or the observation).
    pub index: LogIndex,
}

#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    pub unit: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// `retired: REASON` when the unit was retired.
    pub retired: Option<String>,
}

/// Why a party is restricted, from the resolution's sanctioned findings.
fn restrictions(r: Option<&Resolution>) -> HashMap<PartyId, String> {
    let mut out = HashMap::new();
    for f in r.map(|r| r.findings.as_slice()).unwrap_or_default() {
        let (Some(p), Some(first)) = (&f.party, f.screening.first()) else {
            continue;
        };
        out.entry(p.clone()).or_insert_with(|| first.explain());
    }
    out
}

impl Graph {
    /// Builds the graph of `chain`; `names` holds the party records (for names and
    /// countries), `resolution` marks restricted parties.
    #[must_use]
    pub fn of(chain: &Chain, names: &MemState, resolution: Option<&Resolution>) -> Self {
        let restricted = restrictions(resolution);
        let mut g = Graph {
            unit: chain.unit.id.to_string(),
            nodes: vec![],
            edges: vec![],
            retired: chain
                .unit
                .retired
                .map(|r| format!("retired: {}", r.as_str())),
        };
        let mut at: HashMap<PartyId, usize> = HashMap::new();
        let mut node = |g: &mut Graph, p: &PartyId| -> usize {
            if let Some(i) = at.get(p) {
                return *i;
            }
            let rec = names.parties.get(p);
            g.nodes.push(Node {
                party: p.clone(),
                handle: rec.map_or_else(|| p.to_string(), |r| r.handle.to_string()),
                name: rec.map_or_else(String::new, |r| r.profile.legal_name.to_string()),
                country: rec.map_or_else(String::new, |r| r.profile.country.to_string()),
                holder: *p == chain.unit.holder,
                maker: *p == chain.unit.manufacturer,
                restricted: restricted.get(p).cloned(),
            });
            at.insert(p.clone(), g.nodes.len() - 1);
            g.nodes.len() - 1
        };
        // Transfers by hash, to settle their edges when accepted/rejected/cancelled.
        let mut open: HashMap<crate::core::ids::EventHash, usize> = HashMap::new();
        for e in &chain.events {
            match &e.event.body {
                Body::Register(r) => {
                    node(&mut g, &r.manufacturer);
                }
                Body::Transfer(t) => {
                    let (a, b) = (node(&mut g, &t.from), node(&mut g, &t.to));
                    g.edges.push(Edge {
                        from: a,
                        to: b,
                        kind: EdgeKind::Pending,
                        at: t.at,
                        index: e.index,
                    });
                    open.insert(e.hash, g.edges.len() - 1);
                }
                Body::Accept(x) => {
                    if let Some(i) = open.remove(&x.transfer) {
                        g.edges[i].kind = EdgeKind::Handoff;
                    }
                }
                Body::Reject(x) => {
                    if let Some(i) = open.remove(&x.transfer) {
                        g.edges[i].kind = EdgeKind::Returned;
                    }
                }
                Body::Cancel(x) => {
                    if let Some(i) = open.remove(&x.transfer) {
                        g.edges[i].kind = EdgeKind::Returned;
                    }
                }
                Body::Observe(o) => {
                    let (a, b) = (node(&mut g, &o.observer), node(&mut g, &o.seen_at));
                    g.edges.push(Edge {
                        from: a,
                        to: b,
                        kind: EdgeKind::Observed,
                        at: o.at,
                        index: e.index,
                    });
                }
                _ => {}
            }
        }
        g
    }

    /// One line per edge, for text alternatives: "2021-06-01 handoff A → B (log #12)".
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.edges
            .iter()
            .map(|e| {
                let (a, b) = (&self.nodes[e.from], &self.nodes[e.to]);
                let what = match e.kind {
                    EdgeKind::Handoff => "handoff",
                    EdgeKind::Pending => "transfer, not accepted",
                    EdgeKind::Returned => "transfer rejected or cancelled",
                    EdgeKind::Observed => "observed by",
                };
                let (x, y) = if e.kind == EdgeKind::Observed {
                    (b, a)
                } else {
                    (a, b)
                };
                format!(
                    "{} {what} {} → {} (log #{})",
                    day(e.at),
                    x.handle,
                    y.handle,
                    e.index
                )
            })
            .collect()
    }
}

/// `YYYY-MM-DD` of a timestamp.
#[must_use]
pub fn day(t: Timestamp) -> String {
    t.to_string().chars().take(10).collect()
}
