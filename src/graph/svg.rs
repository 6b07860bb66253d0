//! A self-contained SVG (presentation attributes only, so it renders under a strict
//! Content-Security-Policy and as a standalone file), drawn as the unit's path: one box per
//! stay, top to bottom (a party that receives the unit again gets a new box, marked
//! "again"), each handoff a dated arrow between consecutive boxes, a pending transfer a
//! dashed arrow to a dashed box. Observations and returned transfers are notes beside the
//! stay during which they happened. The picture grows in height only, so a 30-hop chain
//! stays readable.

use super::{day, Edge, EdgeKind, Graph};

const W: usize = 780;
const BOX_X: usize = 20;
const BOX_W: usize = 380;
const BOX_H: usize = 58;
const GAP: usize = 40;
const NOTE_X: usize = BOX_X + BOX_W + 24;
const NOTE_H: usize = 18;
const TOP: usize = 16;

/// One stay: the node that held (or is offered) the unit, the edge that brought it there,
/// and what happened during it.
struct Row<'a> {
    node: usize,
    via: Option<&'a Edge>,
    notes: Vec<&'a Edge>,
    again: bool,
}

fn rows(g: &Graph) -> Vec<Row<'_>> {
    let mut out = vec![Row {
        node: g.nodes.iter().position(|n| n.maker).unwrap_or(0),
        via: None,
        notes: vec![],
        again: false,
    }];
    for e in &g.edges {
        match e.kind {
            EdgeKind::Handoff | EdgeKind::Pending => {
                let again = out.iter().any(|r| r.node == e.to);
                out.push(Row {
                    node: e.to,
                    via: Some(e),
                    notes: vec![],
                    again,
                });
            }
            EdgeKind::Observed | EdgeKind::Returned => {
                if let Some(last) = out.last_mut() {
                    last.notes.push(e);
                }
            }
        }
    }
    out
}

fn row_height(r: &Row<'_>) -> usize {
    BOX_H.max(r.notes.len() * NOTE_H + 8) + GAP
}

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
    let rows = rows(g);
    let h = TOP + rows.iter().map(row_height).sum::<usize>() + 10;
    let mut o = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" width=\"100%\" role=\"img\" aria-labelledby=\"graph-title graph-desc\" class=\"custody-graph\">\n<title id=\"graph-title\">Custody graph of unit {}</title>\n<desc id=\"graph-desc\">{}</desc>\n",
        esc(&g.unit),
        esc(&g.lines().join("; "))
    );
    o.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker></defs>\n");
    let mut y = TOP;
    let mut prev_bottom = None;
    // The last stay not merely offered: where the unit is now.
    let now = rows
        .iter()
        .rposition(|x| x.via.is_none_or(|e| e.kind != EdgeKind::Pending));
    for (i, r) in rows.iter().enumerate() {
        let n = &g.nodes[r.node];
        let pending = r.via.is_some_and(|e| e.kind == EdgeKind::Pending);
        if let (Some(e), Some(y0)) = (r.via, prev_bottom) {
            let x = BOX_X + 40;
            let (what, dash) = if pending {
                ("pending", " stroke-dasharray=\"7 5\"")
            } else {
                ("handoff", "")
            };
            o.push_str(&format!(
                "<g class=\"edge edge-{what}\"><line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{y}\" stroke=\"#333\" stroke-width=\"2\"{dash} marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#333\">{}</text></g>\n",
                x + 8,
                (y0 + y) / 2 + 4,
                esc(&format!("{} {what} #{}", day(e.at), e.index))
            ));
        }
        let (fill, stroke, width) = if n.restricted.is_some() {
            ("#fde2e2", "#b00020", 3)
        } else if n.holder && !pending {
            ("#e3f2fd", "#0d47a1", 2)
        } else {
            ("#f5f5f5", "#555", 1)
        };
        let mut second = format!("{} · {}", clip(&n.name, 40), n.country);
        if pending {
            second.push_str(" · offered, not accepted");
        } else if n.holder && now == Some(i) {
            second.push_str(" · holds it now");
        }
        let third = n
            .restricted
            .as_ref()
            .map(|x| format!("RESTRICTED: {}", clip(x, 44)))
            .unwrap_or_default();
        let cls = if n.restricted.is_some() {
            "party party-restricted"
        } else {
            "party"
        };
        let dash = if pending {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let again = if r.again { " (again)" } else { "" };
        o.push_str(&format!(
            "<g class=\"{cls}\" data-party=\"{}\"><title>{}</title><rect x=\"{BOX_X}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"{dash}/><text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\" fill=\"#111\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#333\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#b00020\" class=\"restricted-entry\">{}</text></g>\n",
            esc(n.party.as_str()),
            esc(&format!("{} ({}){}", n.name, n.party, n.restricted.as_ref().map(|x| format!(": restricted, {x}")).unwrap_or_default())),
            BOX_X + 10,
            y + 18,
            esc(&format!("{}{again}", clip(&n.handle, 40))),
            BOX_X + 10,
            y + 34,
            esc(&second),
            BOX_X + 10,
            y + 50,
            esc(&third)
        ));
        for (k, e) in r.notes.iter().enumerate() {
            let (a, b) = (&g.nodes[e.from], &g.nodes[e.to]);
            let (text, color, cls) = match e.kind {
                EdgeKind::Observed => (
                    format!(
                        "{} seen at {} by {} #{}",
                        day(e.at),
                        clip(&b.handle, 24),
                        clip(&a.handle, 20),
                        e.index
                    ),
                    if b.restricted.is_some() {
                        "#b00020"
                    } else {
                        "#6a1b9a"
                    },
                    "note note-observed",
                ),
                _ => (
                    format!(
                        "{} offered to {}, returned #{}",
                        day(e.at),
                        clip(&b.handle, 24),
                        e.index
                    ),
                    "#777",
                    "note note-returned",
                ),
            };
            let ty = y + 14 + k * NOTE_H;
            o.push_str(&format!(
                "<g class=\"{cls}\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"2 3\"/><text x=\"{NOTE_X}\" y=\"{ty}\" font-size=\"11\" fill=\"{color}\">{}</text></g>\n",
                BOX_X + BOX_W,
                ty - 4,
                NOTE_X - 4,
                ty - 4,
                esc(&text)
            ));
        }
        prev_bottom = Some(y + BOX_H);
        y += row_height(r);
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
