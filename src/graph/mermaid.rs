//! Mermaid flowchart.

use super::{day, EdgeKind, Graph};

fn text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// The graph as a Mermaid `flowchart TD`: restricted parties in the `restricted` class,
/// pending transfers dotted, observations as dotted lines labelled "observed".
#[must_use]
pub fn render(g: &Graph) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, n) in g.nodes.iter().enumerate() {
        let mut label = format!("{}<br/>{} {}", n.handle, n.name, n.country);
        if let Some(r) = &n.restricted {
            label.push_str(&format!("<br/>RESTRICTED: {r}"));
        }
        out.push_str(&format!("  p{i}[\"{}\"]\n", text(&label)));
    }
    for e in &g.edges {
        let label = format!("{} #{}", day(e.at), e.index);
        let arrow = match e.kind {
            EdgeKind::Handoff => format!("-->|\"{label}\"|"),
            EdgeKind::Pending => format!("-.->|\"pending {label}\"|"),
            EdgeKind::Returned => format!("-->|\"returned {label}\"|"),
            EdgeKind::Observed => format!("-.->|\"observed {label}\"|"),
        };
        out.push_str(&format!("  p{} {arrow} p{}\n", e.from, e.to));
    }
    out.push_str("  classDef restricted fill:#fde2e2,stroke:#b00020,stroke-width:2px\n");
    for (i, n) in g.nodes.iter().enumerate() {
        if n.restricted.is_some() {
            out.push_str(&format!("  class p{i} restricted\n"));
        }
    }
    out
}
