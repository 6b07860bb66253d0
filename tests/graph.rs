//! The custody graph of a unit (`custody chain --format dot|mermaid|svg`, the dashboard's
//! unit page): nodes in order of first appearance, each edge with its kind, and renderers
//! that escape whatever the parties declared.

mod common;

use common::*;
use custody::core::event::Role;
use custody::core::state::MemState;
use custody::core::values::{CountryCode, Text};
use custody::graph::{dot, mermaid, svg, EdgeKind, Graph};
use custody::store::{MemoryStore, Store};

/// The graph of `unit` from its verified chain, with every party's record for names.
fn graph_of(w: &World<MemoryStore>, unit: &custody::core::unit::UnitId) -> Graph {
    let chain = custody::chain::read(w.ledger.store(), &ledger_name(), unit).expect("chain");
    let mut names = MemState::default();
    for p in w.ledger.store().parties().expect("parties") {
        names.parties.insert(p.id.clone(), p);
    }
    Graph::of(&chain, &names, None)
}

/// One new unit, shipped by the maker under `waybill` and accepted by the distributor
/// `gap` seconds later.
fn registered_at_distributor(
    w: &World<MemoryStore>,
    waybill: &str,
    gap: i64,
) -> Vec<custody::core::unit::UnitId> {
    let c = w.client();
    let u = w.register(1);
    let t = c
        .transfer(
            &w.maker,
            &w.dist.party_id(),
            &u,
            Text::parse(waybill).expect("t"),
            CountryCode::parse("CN").expect("c"),
        )
        .expect("transfer");
    w.tick(gap);
    c.accept(&w.dist, &t.hash, &u, None).expect("accept");
    u
}

#[test]
fn handoffs_pending_transfers_and_observations_become_edges() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let cn = || CountryCode::parse("CN").expect("c");
    let u = registered_at_distributor(&w, "AWB 1", 60);
    w.tick(60);
    // A recipient whose declared name would break markup if it were not escaped.
    let odd = key("odd");
    c.enroll(
        &odd,
        &w.dist,
        h("odd-trading"),
        profile("<b>Odd & \"Sons\"</b>", "CN", &[Role::Distributor]),
    )
    .expect("enroll");
    c.transfer(
        &w.dist,
        &odd.party_id(),
        &u,
        Text::parse("AWB 2").expect("t"),
        cn(),
    )
    .expect("pending transfer");
    w.tick(60);
    c.observe(&w.svc, &w.user.party_id(), &u, None, None)
        .expect("observe");
    let g = graph_of(&w, &u[0]);
    let order: Vec<_> = g.nodes.iter().map(|n| n.handle.as_str()).collect();
    assert_eq!(order, ["maker", "dist", "odd-trading", "servicer", "user"]);
    let kinds: Vec<_> = g.edges.iter().map(|e| (e.from, e.to, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (0, 1, EdgeKind::Handoff),
            (1, 2, EdgeKind::Pending),
            (3, 4, EdgeKind::Observed)
        ]
    );
    assert!(
        g.nodes[1].holder,
        "dist holds it: the last transfer is pending"
    );
    assert!(g.nodes[0].maker);
    assert_eq!(g.lines().len(), 3);

    let d = dot::render(&g);
    assert_eq!(d.matches("style=dashed").count(), 1, "{d}");
    assert_eq!(d.matches("style=dotted").count(), 1, "{d}");
    assert!(d.contains(r#"\"Sons\""#), "quotes escaped in DOT: {d}");
    let m = mermaid::render(&g);
    assert!(m.starts_with("flowchart TD"));
    assert_eq!(m.matches("-.->").count(), 2, "{m}");
    assert!(!m.contains("\"Sons\""), "quotes escaped in Mermaid: {m}");
    let s = svg::render(&g);
    assert!(
        s.contains("&lt;b&gt;Odd &amp; &quot;Sons&quot;&lt;/b&gt;"),
        "{s}"
    );
    assert!(!s.contains("<b>"), "no markup from party data in the SVG");
    assert_eq!(
        s.matches("stroke-dasharray=\"7 5\"").count(),
        1,
        "one pending arrow"
    );
    // One box per stay: maker, dist, and odd-trading offered the unit; the observation is a
    // note beside dist's stay.
    assert_eq!(s.matches("<g class=\"party").count(), 3);
    assert_eq!(s.matches("<g class=\"note note-observed\"").count(), 1);
    assert!(s.contains("offered, not accepted"));
    assert!(
        !s.contains("style="),
        "presentation attributes only (strict CSP)"
    );
}

/// A unit passed back and forth 30 times between two distributors: one box per stay, the
/// picture grows only in height, every hop is a labelled arrow between neighbours.
#[test]
fn a_thirty_hop_chain_stays_readable() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let cn = || CountryCode::parse("CN").expect("c");
    let u = registered_at_distributor(&w, "AWB 0", 0);
    let (mut a, mut b) = (&w.dist, &w.sub);
    for i in 1..30 {
        w.tick(3600);
        let t = c
            .transfer(
                a,
                &b.party_id(),
                &u,
                Text::parse(&format!("AWB {i}")).expect("t"),
                cn(),
            )
            .expect("transfer");
        c.accept(b, &t.hash, &u, None).expect("accept");
        std::mem::swap(&mut a, &mut b);
    }
    let g = graph_of(&w, &u[0]);
    assert_eq!(g.edges.len(), 30);
    let s = svg::render(&g);
    assert_eq!(
        s.matches("<g class=\"party").count(),
        31,
        "one box per stay"
    );
    assert_eq!(s.matches("<g class=\"edge edge-handoff\"").count(), 30);
    assert_eq!(
        s.matches("(again)").count(),
        28,
        "repeated parties are marked"
    );
    assert!(s.contains("viewBox=\"0 0 780 "), "the width does not grow");
    // Boxes never overlap: their y coordinates strictly increase by at least a box height.
    let ys: Vec<usize> = s
        .match_indices("<rect x=\"20\" y=\"")
        .map(|(i, m)| {
            let rest = &s[i + m.len()..];
            rest[..rest.find('"').expect("end")].parse().expect("y")
        })
        .collect();
    assert_eq!(ys.len(), 31);
    assert!(ys.windows(2).all(|p| p[1] >= p[0] + 58));
}
