//! `/ui/units/{unit}`: the custody graph, the timeline of events with signer, signature
//! status and log index, the verdict with its evidence, the bundle download, and the
//! in-browser re-verification of every signature and hash (`app.js`).

use axum::extract::{Path, State};
use axum::response::Response;

use super::{e, page, seg, verdict_class};
use crate::core::state::MemState;
use crate::graph::{day, Graph};
use crate::server::problem::Problem;
use crate::server::AppState;
use crate::store::Store;

pub async fn handler(State(state): State<AppState>, Path(unit): Path<String>) -> Response {
    let st = state.clone();
    match build(state, unit).await {
        Ok((title, body)) => page(&st, &title, &body),
        Err(p) => super::error_page(&st, &p),
    }
}

async fn build(state: AppState, unit: String) -> Result<(String, String), Problem> {
    let u = crate::core::unit::UnitId::parse(&unit).map_err(|err| {
        Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_unit",
            err.to_string(),
        )
    })?;
    crate::server::api::blocking(move || {
        let store = state.ledger.store();
        if store.unit(&u)?.is_none() {
            return Err(Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                format!("unit {u} is not registered"),
            ));
        }
        let chain = crate::chain::read_cached(store, state.ledger.name(), &u, &state.verified).map_err(|err| {
            Problem::new(
                axum::http::StatusCode::CONFLICT,
                "broken",
                format!("the chain of {u} does not verify: {err}"),
            )
        })?;
        let mut names = MemState::default();
        for p in store.parties()? {
            names.parties.insert(p.id.clone(), p);
        }
        let guard = state.index()?;
        let (ix, _) = &*guard;
        let o = crate::server::operator::resolve_options(&state);
        let peers = state.peers(o.dwell)?;
        let r = state.resolve_unit(ix, &u, &o, &peers)?;
        let g = Graph::of(&chain, &names, Some(&r));
        let handle = |p: &crate::core::ids::PartyId| {
            names
                .parties
                .get(p)
                .map_or_else(|| p.to_string(), |r| r.handle.to_string())
        };
        let mut h = format!(
            "<h1>Unit <span class=\"unit-id\">{}</span></h1>\n<p class=\"verdict-line\">Verdict: <span class=\"verdict {}\" id=\"verdict\">{}</span> · {} events · held by <a href=\"/ui/parties/{}\">{}</a></p>\n",
            e(u.as_str()),
            verdict_class(r.verdict.as_str()),
            e(&r.verdict.as_str().replace('_', " ")),
            chain.events.len(),
            seg(chain.unit.holder.as_str()),
            e(&handle(&chain.unit.holder))
        );
        h.push_str(&format!(
            "<p><a class=\"button\" id=\"bundle\" href=\"/v1/units/{}/bundle\" download=\"{}.bundle.json\">Download the evidence bundle</a> <span class=\"hint\">verify it offline: <code>custody verify-bundle FILE --log-key KEY</code></span></p>\n",
            seg(u.as_str()),
            e(&u.as_str().replace(':', "_"))
        ));
        // Findings.
        h.push_str("<section aria-labelledby=\"evidence\"><h2 id=\"evidence\">Evidence</h2>");
        if r.findings.is_empty() {
            h.push_str("<p>No finding: no holder, recipient or declared end user is restricted, and no red flag.</p>");
        } else {
            h.push_str("<ul class=\"findings\">");
            for f in &r.findings {
                let who = f
                    .party
                    .as_ref()
                    .map(|p| format!(" <a href=\"/ui/parties/{}\">{}</a>", seg(p.as_str()), e(&handle(p))))
                    .unwrap_or_default();
                let when = f.date.map(|d| format!(" · {}", day(d))).unwrap_or_default();
                let at = f.index.map(|i| format!(" · log #{i}")).unwrap_or_default();
                let mut item = format!(
                    "<li><span class=\"verdict {}\">{}</span> <code>{}</code>{who}{when}{at}<br>{}",
                    verdict_class(f.verdict.as_str()),
                    e(&f.verdict.as_str().replace('_', " ")),
                    e(f.rule),
                    e(&f.detail)
                );
                for s in &f.screening {
                    item.push_str(&format!(
                        "<br><span class=\"entry\">List entry: {}</span>",
                        e(&s.explain())
                    ));
                }
                for c in &f.candidates {
                    item.push_str(&format!(
                        "<br><span class=\"entry\">Candidate: {} ({}, {}), score {:.2}</span>",
                        e(&c.entry_name),
                        e(&c.source_list),
                        e(&c.entry_id),
                        c.score
                    ));
                }
                item.push_str("</li>");
                h.push_str(&item);
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>\n");
        // The graph, with its text alternative.
        h.push_str("<section aria-labelledby=\"graph\"><h2 id=\"graph\">Custody graph</h2><div class=\"legend\" aria-hidden=\"true\"><span class=\"l-handoff\">handoff</span> <span class=\"l-pending\">pending</span> <span class=\"l-observed\">observed</span> <span class=\"l-restricted\">restricted party</span></div><figure class=\"graph\">");
        h.push_str(&crate::graph::svg::render(&g));
        h.push_str("<figcaption><details><summary>The graph as text</summary><ol class=\"handoffs\">");
        for l in g.lines() {
            h.push_str(&format!("<li>{}</li>", e(&l)));
        }
        h.push_str("</ol></details></figcaption></figure></section>\n");
        // Timeline.
        h.push_str(&format!(
            "<section aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline</h2><p id=\"browser-check\" data-unit=\"{}\" data-ledger=\"{}\" aria-live=\"polite\">Signatures verified by the server. <span class=\"needs-js\">Your browser re-checks them when JavaScript is on.</span></p><div class=\"scroll\"><table class=\"timeline\"><thead><tr><th scope=\"col\">Log #</th><th scope=\"col\">Date</th><th scope=\"col\">Event</th><th scope=\"col\">Signed by</th><th scope=\"col\">Server check</th><th scope=\"col\">Browser check</th><th scope=\"col\">Event hash</th></tr></thead><tbody>",
            e(u.as_str()),
            e(state.ledger.name().as_str())
        ));
        for ev in &chain.events {
            let signers: Vec<String> = ev
                .event
                .signatures
                .iter()
                .map(|s| match store.key_owner(&s.key) {
                    Ok(Some(p)) => format!("<a href=\"/ui/parties/{}\">{}</a>", seg(p.as_str()), e(&handle(&p))),
                    _ => format!("key {}", e(&s.key.to_string())),
                })
                .collect();
            h.push_str(&format!(
                "<tr data-hash=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"ok\">✓ signature and link</td><td class=\"bcheck\">…</td><td><code>{}</code></td></tr>\n",
                ev.hash,
                ev.index,
                e(&day(ev.event.body.at())),
                e(ev.event.body.kind()),
                signers.join(", "),
                &ev.hash.to_string()[..16]
            ));
        }
        h.push_str("</tbody></table></div></section>\n");
        Ok((format!("Unit {u}"), h))
    })
    .await
}
