//! A self-contained SVG (presentation attributes only, so it renders under a strict
//! Content-Security-Policy and as a standalone file). Parties are stacked top to bottom
//! in order of first appearance; an edge between neighbours is a straight arrow on the
//! left, any other an arc on the right, so a 30-hop chain stays readable (the picture
//! grows in height, never in width).

use super::{day, EdgeKind, Graph};

const W: usize = 640;
const BOX_X: usize = 60;
const BOX_W: usize = 360;
const BOX_H: usize = 58;
const STEP: usize = 96;
const TOP: usize = 40;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The graph as an SVG document (`<svg>` element with title and description).
#[must_use]
pub fn render(g: &Graph) -> String {
    let h = TOP + g.nodes.len().max(1) * STEP + 20;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" width=\"100%\" role=\"img\" aria-labelledby=\"graph-title graph-desc\" class=\"custody-graph\">\n<title id=\"graph-title\">Custody graph of unit {}</title>\n<desc id=\"graph-desc\">{}</desc>\n",
        esc(&g.unit),
        esc(&g.lines().join("; "))
    );
    o.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker><marker id=\"arrow-obs\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6a1b9a\"/></marker></defs>\n");
    let y = |i: usize| TOP + i * STEP;
    // Edges first, under the boxes.
    let mut arc = 0usize;
    for e in &g.edges {
        let (stroke, dash, marker, what) = match e.kind {
            EdgeKind::Handoff => ("#333", "", "arrow", "handoff"),
            EdgeKind::Pending => ("#333", " stroke-dasharray=\"7 5\"", "arrow", "pending"),
            EdgeKind::Returned => ("#999", "", "arrow", "returned"),
            EdgeKind::Observed => (
                "#6a1b9a",
                " stroke-dasharray=\"2 4\"",
                "arrow-obs",
                "observed",
            ),
        };
        let label = format!("{} {what} #{}", day(e.at), e.index);
        let cls = format!("edge edge-{}", what);
        if e.to == e.from + 1 && e.kind != EdgeKind::Observed {
            let x = BOX_X + 40;
            let (y1, y2) = (y(e.from) + BOX_H, y(e.to));
            o.push_str(&format!(
                "<g class=\"{cls}\"><line x1=\"{x}\" y1=\"{y1}\" x2=\"{x}\" y2=\"{y2}\" stroke=\"{stroke}\" stroke-width=\"2\"{dash} marker-end=\"url(#{marker})\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{stroke}\">{}</text></g>\n",
                x + 8,
                (y1 + y2) / 2 + 4,
                esc(&label)
            ));
        } else {
            arc += 1;
            let bulge = BOX_X + BOX_W + 20 + (arc % 6) * 22;
            let (y1, y2) = (y(e.from) + BOX_H / 2, y(e.to) + BOX_H / 2);
            let x0 = BOX_X + BOX_W;
            o.push_str(&format!(
                "<g class=\"{cls}\"><path d=\"M{x0},{y1} C{bulge},{y1} {bulge},{y2} {x0},{y2}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"2\"{dash} marker-end=\"url(#{marker})\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{stroke}\" text-anchor=\"end\">{}</text></g>\n",
                W - 4,
                (y1 + y2) / 2 + 4,
                esc(&label)
            ));
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let (fill, stroke, width) = if n.restricted.is_some() {
            ("#fde2e2", "#b00020", 3)
        } else if n.holder {
            ("#e3f2fd", "#0d47a1", 2)
        } else {
            ("#f5f5f5", "#555", 1)
        };
        let mut second = format!("{} · {}", clip(&n.name, 40), n.country);
        if n.holder {
            second.push_str(" · holds it now");
        }
        let third = n
            .restricted
            .as_ref()
            .map(|r| format!("RESTRICTED: {}", clip(r, 44)))
            .unwrap_or_default();
        let cls = if n.restricted.is_some() {
            "party party-restricted"
        } else {
            "party"
        };
        o.push_str(&format!(
            "<g class=\"{cls}\" data-party=\"{}\"><title>{}</title><rect x=\"{BOX_X}\" y=\"{}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/><text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\" fill=\"#111\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#333\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#b00020\" class=\"restricted-entry\">{}</text></g>\n",
            esc(n.party.as_str()),
            esc(&format!("{} ({}){}", n.name, n.party, n.restricted.as_ref().map(|r| format!(": restricted, {r}")).unwrap_or_default())),
            y(i),
            BOX_X + 10,
            y(i) + 18,
            esc(&clip(&n.handle, 40)),
            BOX_X + 10,
            y(i) + 34,
            esc(&second),
            BOX_X + 10,
            y(i) + 50,
            esc(&third)
        ));
    }
    if let Some(r) = &g.retired {
        o.push_str(&format!(
            "<text x=\"{BOX_X}\" y=\"{}\" font-size=\"12\" fill=\"#555\">{}</text>\n",
            h - 6,
            esc(r)
        ));
    }
    o.push_str("</svg>\n");
    o
}
