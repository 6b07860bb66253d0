//! `/ui/parties/{party}`: profile, declared parent and owners, sponsor and keys, the
//! screening result with its explanation, the units it holds now, and its flows: whom it
//! receives from and passes to (from the transfers of the units it is involved with).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;

use super::{e, page, seg};
use crate::core::event::Body;
use crate::core::ids::PartyId;
use crate::server::problem::Problem;
use crate::server::AppState;
use crate::store::Store;

/// Units whose chains are read for the flows (the page says when there are more).
const FLOW_UNITS: usize = 300;

pub async fn handler(State(state): State<AppState>, Path(party): Path<String>) -> Response {
    let st = state.clone();
    match build(state, party).await {
        Ok((title, body)) => page(&st, &title, &body),
        Err(p) => super::error_page(&st, &p),
    }
}

async fn build(state: AppState, party: String) -> Result<(String, String), Problem> {
    crate::server::api::blocking(move || {
        let store = state.ledger.store();
        let not_found = || {
            Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("no party {party:?}"),
            )
        };
        let id = PartyId::parse(&party).map_err(|_| not_found())?;
        let rec = store.party(&id)?.ok_or_else(not_found)?;
        let handle = |p: &PartyId| {
            store
                .party(p)
                .ok()
                .flatten()
                .map_or_else(|| p.to_string(), |r| r.handle.to_string())
        };
        let link = |p: &PartyId| {
            format!(
                "<a href=\"/ui/parties/{}\">{}</a>",
                seg(p.as_str()),
                e(&handle(p))
            )
        };
        let pr = &rec.profile;
        let mut h = format!(
            "<h1>{}</h1>\n<dl class=\"profile\"><dt>Handle</dt><dd>{}</dd><dt>Party id</dt><dd><code>{}</code></dd><dt>Country</dt><dd>{}</dd><dt>Roles</dt><dd>{}</dd>",
            e(&pr.legal_name.to_string()),
            e(&rec.handle.to_string()),
            e(id.as_str()),
            e(&pr.country.to_string()),
            e(&pr.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
        );
        if !pr.aliases.is_empty() {
            h.push_str(&format!(
                "<dt>Also known as</dt><dd>{}</dd>",
                e(&pr.aliases.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            ));
        }
        if let Some(a) = &pr.address {
            h.push_str(&format!("<dt>Address</dt><dd>{}</dd>", e(&a.to_string())));
        }
        if let Some(p) = &pr.parent {
            h.push_str(&format!("<dt>Declared parent</dt><dd>{}</dd>", link(p)));
        }
        for o in &pr.owners {
            let who = o.party.as_ref().map_or_else(|| e(&o.name.to_string()), &link);
            h.push_str(&format!(
                "<dt>Owner</dt><dd>{who} ({}%)</dd>",
                f64::from(o.share_bps) / 100.0
            ));
        }
        if let Some(s) = &rec.sponsor {
            h.push_str(&format!("<dt>Sponsored by</dt><dd>{}</dd>", link(s)));
        }
        h.push_str(&format!("<dt>Enrolled</dt><dd>log #{}</dd></dl>\n", rec.enrolled));
        // Screening.
        let guard = state.index()?;
        let (ix, _) = &*guard;
        let s = crate::screen::hierarchy::Screener::new(
            ix,
            store,
            crate::screen::matcher::Thresholds::default(),
            None,
        )
        .party(&id)?;
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        h.push_str(&format!(
            "<section aria-labelledby=\"screening\"><h2 id=\"screening\">Screening</h2><p>Result: <span class=\"verdict {}\" id=\"screening-status\">{}</span></p>",
            if status == "clear" { "v-clear" } else if status == "restricted" { "v-sanctioned" } else { "v-review" },
            e(&status.replace('_', " "))
        ));
        if !s.findings.is_empty() || !s.review.is_empty() || !s.notes.is_empty() {
            h.push_str("<ul>");
            for f in &s.findings {
                h.push_str(&format!("<li>{}</li>", e(&f.explain())));
            }
            for c in &s.review {
                h.push_str(&format!(
                    "<li>To review: {} ({}, {}), score {:.2}</li>",
                    e(&c.entry_name),
                    e(&c.source_list),
                    e(&c.entry_id),
                    c.score
                ));
            }
            for n in &s.notes {
                h.push_str(&format!("<li>Note: {}</li>", e(n)));
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>\n");
        // Units held now.
        let held = store.holdings(&id, None, 200)?;
        h.push_str(&format!(
            "<section aria-labelledby=\"held\"><h2 id=\"held\">Units held now</h2><p>{}{}</p>",
            held.len(),
            if held.len() == 200 { " (the first 200)" } else { "" }
        ));
        if !held.is_empty() {
            h.push_str("<ul class=\"units\">");
            for u in &held {
                h.push_str(&format!(
                    "<li><a href=\"/ui/units/{}\">{}</a></li>",
                    seg(u.as_str()),
                    e(u.as_str())
                ));
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>\n");
        // Flows in and out, from the chains of the units it is involved with.
        let involved = store.involved(&id, None, FLOW_UNITS + 1)?;
        let mut inflow: BTreeMap<PartyId, (u64, String)> = BTreeMap::new();
        let mut outflow: BTreeMap<PartyId, (u64, String)> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for u in involved.iter().take(FLOW_UNITS) {
            for i in store.chain(u)? {
                let Some(entry) = store.entry(i)? else { continue };
                if !seen.insert(entry.hash) {
                    continue;
                }
                let Ok(env) = serde_json::from_slice::<crate::core::event::Envelope>(&entry.event) else {
                    continue;
                };
                if let Body::Transfer(t) = &env.body {
                    let n = t.units.len() as u64;
                    let d = crate::graph::day(t.at);
                    let bump = |m: &mut BTreeMap<PartyId, (u64, String)>, p: &PartyId| {
                        let x = m.entry(p.clone()).or_insert((0, String::new()));
                        x.0 += n;
                        if d > x.1 {
                            x.1.clone_from(&d);
                        }
                    };
                    if t.to == id {
                        bump(&mut inflow, &t.from);
                    }
                    if t.from == id {
                        bump(&mut outflow, &t.to);
                    }
                }
            }
        }
        h.push_str("<section aria-labelledby=\"flows\"><h2 id=\"flows\">Flows</h2>");
        if involved.len() > FLOW_UNITS {
            h.push_str(&format!("<p>From the first {FLOW_UNITS} units it is involved with.</p>"));
        }
        for (title, m) in [("Receives from", &inflow), ("Passes to", &outflow)] {
            h.push_str(&format!("<h3>{title}</h3>"));
            if m.is_empty() {
                h.push_str("<p>Nobody.</p>");
                continue;
            }
            h.push_str("<table><thead><tr><th scope=\"col\">Party</th><th scope=\"col\">Units</th><th scope=\"col\">Latest</th></tr></thead><tbody>");
            for (p, (n, d)) in m {
                h.push_str(&format!("<tr><td>{}</td><td>{n}</td><td>{}</td></tr>", link(p), e(d)));
            }
            h.push_str("</tbody></table>");
        }
        h.push_str("</section>\n");
        Ok((format!("Party {}", rec.handle), h))
    })
    .await
}
