//! Graphviz DOT.

use super::{day, EdgeKind, Graph};

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The graph as a DOT digraph: restricted parties red, pending transfers dashed,
/// observations dotted.
#[must_use]
pub fn render(g: &Graph) -> String {
    let mut out = format!(
        "digraph custody {{\n  label={};\n  labelloc=t;\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"sans-serif\"];\n",
        quote(&format!("unit {}", g.unit))
    );
    for (i, n) in g.nodes.iter().enumerate() {
        let mut label = format!("{}\\n{} {}", n.handle, n.name, n.country);
        if let Some(r) = &n.restricted {
            label.push_str(&format!("\\nRESTRICTED: {r}"));
        }
        if n.holder {
            label.push_str("\\n(holds the unit)");
        }
        let style = if n.restricted.is_some() {
            ", color=red, fontcolor=red, penwidth=2"
        } else {
            ""
        };
        out.push_str(&format!(
            "  p{i} [label={}{style}];\n",
            quote(&label).replace("\\\\n", "\\n")
        ));
    }
    for e in &g.edges {
        let (style, what) = match e.kind {
            EdgeKind::Handoff => ("solid", "handoff"),
            EdgeKind::Pending => ("dashed", "pending"),
            EdgeKind::Returned => ("solid, color=gray", "returned"),
            EdgeKind::Observed => ("dotted, color=purple", "observed"),
        };
        out.push_str(&format!(
            "  p{} -> p{} [label={}, style={style}];\n",
            e.from,
            e.to,
            quote(&format!("{} {what} #{}", day(e.at), e.index))
        ));
    }
    out.push_str("}\n");
    out
}
