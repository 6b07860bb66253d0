//! `/`: counts of units by verdict, the flagged units with filters and search, the latest
//! checkpoint with its witness cosignatures, and the list snapshots in use.

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{e, page, seg, verdict_class};
use crate::resolve::{Resolution, Verdict};
use crate::server::problem::Problem;
use crate::server::AppState;
use crate::store::Store;

/// Every unit's resolution, recomputed when the log or the lists change (at most once a
/// minute while the log grows).
pub struct Cached {
    size: u64,
    lists: String,
    at: i64,
    pub units: u64,
    pub counts: Vec<(String, u64)>,
    pub flagged: Vec<Resolution>,
}

#[derive(Deserialize)]
pub struct Filter {
    verdict: Option<String>,
    q: Option<String>,
}

fn resolutions(state: &AppState) -> Result<std::sync::Arc<Cached>, Problem> {
    let store = state.ledger.store();
    let size = store.len()?;
    let guard = state.index()?;
    let (ix, used) = &*guard;
    let lists = serde_json::to_string(used).unwrap_or_default();
    let now = (state.clock)().unix();
    {
        let c = state
            .ui
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = &*c {
            if c.lists == lists && (c.size == size || now - c.at < 60) {
                return Ok(std::sync::Arc::clone(c));
            }
        }
    }
    let o = crate::server::operator::resolve_options(state);
    let sum =
        crate::resolve::resolve_all(store, state.ledger.name(), ix, &o, &|_, _, _| {}, |r| {
            Ok(r.verdict != Verdict::Clear)
        })?;
    let counts = Verdict::ALL
        .iter()
        .map(|v| {
            (
                v.as_str().to_owned(),
                sum.counts.get(v.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let c = std::sync::Arc::new(Cached {
        size,
        lists,
        at: now,
        units: sum.units,
        counts,
        flagged: sum.resolutions,
    });
    *state
        .ui
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::sync::Arc::clone(&c));
    Ok(c)
}

/// Whether a resolution matches the search text: unit id, party ids and handles named in
/// its findings, finding details, and list entries.
fn matches(r: &Resolution, q: &str, handles: &std::collections::HashMap<String, String>) -> bool {
    let q = q.to_lowercase();
    let hit = |s: &str| s.to_lowercase().contains(&q);
    hit(r.unit.as_str())
        || r.findings.iter().any(|f| {
            hit(&f.detail)
                || f.party.as_ref().is_some_and(|p| {
                    hit(p.as_str()) || handles.get(p.as_str()).is_some_and(|h| hit(h))
                })
                || serde_json::to_string(&f.screening).is_ok_and(|s| hit(&s))
                || f.candidates
                    .iter()
                    .any(|c| hit(&c.entry_name) || hit(&c.entry_id))
        })
}

pub async fn page_inner(state: AppState, f: Filter) -> Result<Response, Problem> {
    let st = state.clone();
    let body = crate::server::api::blocking(move || {
        let state = st;
        let c = resolutions(&state)?;
        let store = state.ledger.store();
        let parties = store.parties()?;
        let handles: std::collections::HashMap<String, String> = parties
            .iter()
            .map(|p| (p.id.to_string(), format!("{} {}", p.handle, p.profile.legal_name)))
            .collect();
        let short: std::collections::HashMap<String, String> = parties
            .iter()
            .map(|p| (p.id.to_string(), p.handle.to_string()))
            .collect();
        let wanted = f.verdict.as_deref().filter(|v| !v.is_empty());
        if let Some(v) = wanted {
            if Verdict::parse(v).is_none() {
                return Err(Problem::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("verdict {v:?} is not one of the verdicts"),
                ));
            }
        }
        let q = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let shown: Vec<&Resolution> = c
            .flagged
            .iter()
            .filter(|r| wanted.is_none_or(|v| r.verdict.as_str() == v))
            .filter(|r| q.is_none_or(|q| matches(r, q, &handles)))
            .collect();
        let mut h = String::from("<h1>Overview</h1>\n<section aria-labelledby=\"counts\"><h2 id=\"counts\">Units by verdict</h2><ul class=\"counts\">");
        h.push_str(&format!("<li><span class=\"n\">{}</span> units</li>", c.units));
        for (v, n) in &c.counts {
            h.push_str(&format!(
                "<li class=\"{}\"><a href=\"/?verdict={v}\"><span class=\"n\">{n}</span> {}</a></li>",
                verdict_class(v),
                e(&v.replace('_', " "))
            ));
        }
        h.push_str("</ul></section>\n");
        // Filters: a plain GET form, no script needed.
        h.push_str("<section aria-labelledby=\"flagged\"><h2 id=\"flagged\">Flagged units</h2><form method=\"get\" action=\"/\" class=\"filters\" role=\"search\"><label>Search <input type=\"search\" name=\"q\" value=\"");
        h.push_str(&e(q.unwrap_or("")));
        h.push_str("\" placeholder=\"serial, party or list entry\"></label> <label>Verdict <select name=\"verdict\"><option value=\"\">any</option>");
        for v in Verdict::ALL.iter().filter(|v| **v != Verdict::Clear) {
            let sel = if wanted == Some(v.as_str()) { " selected" } else { "" };
            h.push_str(&format!(
                "<option value=\"{0}\"{sel}>{1}</option>",
                v.as_str(),
                v.as_str().replace('_', " ")
            ));
        }
        h.push_str("</select></label> <button type=\"submit\">Filter</button></form>\n");
        h.push_str(&format!(
            "<p class=\"shown\" aria-live=\"polite\">{} of {} flagged units</p>\n",
            shown.len(),
            c.flagged.len()
        ));
        h.push_str("<div class=\"scroll\"><table class=\"flagged\"><thead><tr><th scope=\"col\">Unit</th><th scope=\"col\">Verdict</th><th scope=\"col\">Why</th></tr></thead><tbody>\n");
        for r in shown.iter().take(500) {
            let why = r
                .findings
                .iter()
                .filter(|f| f.verdict == r.verdict)
                .map(|f| {
                    let who = f
                        .party
                        .as_ref()
                        .and_then(|p| short.get(p.as_str()))
                        .map(|h| format!("{h}: "))
                        .unwrap_or_default();
                    format!("{who}{}", f.detail)
                })
                .collect::<Vec<_>>()
                .join("; ");
            h.push_str(&format!(
                "<tr><td><a href=\"/ui/units/{}\">{}</a></td><td><span class=\"verdict {}\">{}</span></td><td>{}</td></tr>\n",
                seg(r.unit.as_str()),
                e(r.unit.as_str()),
                verdict_class(r.verdict.as_str()),
                e(&r.verdict.as_str().replace('_', " ")),
                e(&why)
            ));
        }
        h.push_str("</tbody></table></div></section>\n");
        // The latest checkpoint and who cosigned it.
        h.push_str("<section aria-labelledby=\"checkpoint\"><h2 id=\"checkpoint\">Latest checkpoint</h2>");
        match store.latest_checkpoint()? {
            None => h.push_str("<p>No checkpoint yet.</p>"),
            Some(cp) => {
                let note = crate::cosigning::with_cosignatures(store, cp.to_note());
                let signers: Vec<String> = note
                    .lines()
                    .filter_map(|l| l.strip_prefix("— "))
                    .filter_map(|l| l.split_whitespace().next())
                    .map(str::to_owned)
                    .collect();
                let witnesses: Vec<&String> = signers
                    .iter()
                    .filter(|s| s.as_str() != state.ledger.name().as_str())
                    .collect();
                h.push_str(&format!(
                    "<p>Tree size <strong>{}</strong>, root <code>{}</code>. Witness cosignatures: {}.</p><pre class=\"note\">{}</pre>",
                    cp.checkpoint.size,
                    e(&cp.checkpoint.root.to_string()),
                    if witnesses.is_empty() {
                        "none yet".to_owned()
                    } else {
                        witnesses.iter().map(|w| e(w)).collect::<Vec<_>>().join(", ")
                    },
                    e(&note)
                ));
            }
        }
        h.push_str("</section>\n");
        let guard = state.index()?;
        let (_, used) = &*guard;
        h.push_str("<section aria-labelledby=\"lists\"><h2 id=\"lists\">Lists in use</h2>");
        if used.is_empty() {
            h.push_str("<p>No sanctions list is imported: every party screens clear.</p>");
        } else {
            h.push_str("<table><thead><tr><th scope=\"col\">List</th><th scope=\"col\">Version</th><th scope=\"col\">Content hash</th></tr></thead><tbody>");
            for s in used {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    e(&s.name),
                    s.version,
                    e(&s.content_hash)
                ));
            }
            h.push_str("</tbody></table>");
        }
        h.push_str("</section>\n");
        Ok(h)
    })
    .await?;
    Ok(page(&state, "Overview", &body))
}

pub async fn handler(State(state): State<AppState>, Query(f): Query<Filter>) -> Response {
    let st = state.clone();
    match page_inner(state, f).await {
        Ok(r) => r,
        Err(p) => super::error_page(&st, &p),
    }
}
