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

#[test]
fn handoffs_pending_transfers_and_observations_become_edges() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let u = w.register(1);
    let cn = || CountryCode::parse("CN").expect("c");
    let t = c
        .transfer(
            &w.maker,
            &w.dist.party_id(),
            &u,
            Text::parse("AWB 1").expect("t"),
            cn(),
        )
        .expect("transfer");
    w.tick(60);
    c.accept(&w.dist, &t.hash, &u, None).expect("accept");
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
    let chain = custody::chain::read(w.ledger.store(), &ledger_name(), &u[0]).expect("chain");
    let mut names = MemState::default();
    for p in w.ledger.store().parties().expect("parties") {
        names.parties.insert(p.id.clone(), p);
    }
    let g = Graph::of(&chain, &names, None);
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
    assert_eq!(s.matches("stroke-dasharray=\"7 5\"").count(), 1);
    assert_eq!(s.matches("<g class=\"party").count(), 5);
    assert!(
        !s.contains("style="),
        "presentation attributes only (strict CSP)"
    );
}
