//! Operator-only endpoints and screening over HTTP.
//!
//! Operator calls carry `Authorization: Signature …` (FORMAT.md §12): the key must be a
//! currently valid key of the ledger's operator party, `created` within 300 s of the server
//! clock and not before the server started (so a request cannot be replayed across a
//! restart), and the nonce unused within that window.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;

use super::problem::Problem;
use super::AppState;
use crate::core::request::SignatureHeader;
use crate::screen::entry::{Date, SourceKind};
use crate::screen::hierarchy::Screener;
use crate::screen::import::Input;
use crate::screen::lists;
use crate::screen::matcher::{Query, Thresholds};
use crate::store::Store;

/// How far `created` may be from the server clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// Nonces seen, with their `created`, forgotten once outside the window.
#[derive(Default)]
pub struct Nonces {
    seen: Mutex<HashMap<String, i64>>,
}

impl Nonces {
    /// True if the nonce is fresh (and records it).
    fn fresh(&self, nonce: &str, created: i64, now: i64) -> bool {
        let mut s = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.retain(|_, c| (now - *c).abs() <= MAX_SKEW_SECS);
        s.insert(nonce.to_owned(), created).is_none()
    }
}

fn unauthorized(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "operator_signature", detail)
}

/// Checks the operator signature of a request.
fn authorize(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Problem> {
    let v = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "this operation needs Authorization: Signature … by the operator (FORMAT.md §12)",
            )
        })?;
    let h = SignatureHeader::parse(v).map_err(|e| unauthorized(format!("Authorization: {e}")))?;
    let now = (state.clock)().unix();
    if (now - h.created).abs() > MAX_SKEW_SECS || h.created < state.started {
        return Err(unauthorized(format!(
            "created {} is not within {MAX_SKEW_SECS} s of the server clock ({now}) or predates the server's start",
            h.created
        )));
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    if !h.verify(state.ledger.name(), method.as_str(), path, body) {
        return Err(unauthorized("the request signature does not verify"));
    }
    let store = state.ledger.store();
    let op = store
        .operator()?
        .ok_or_else(|| unauthorized("the ledger has no operator yet"))?;
    let rec = store
        .party(&op)?
        .ok_or_else(|| unauthorized("the operator is not enrolled"))?;
    let when = (state.clock)();
    if !rec
        .keys
        .iter()
        .any(|k| k.key == h.key && k.valid_at(when, when).is_ok())
    {
        return Err(unauthorized(
            "the key is not a valid key of the ledger's operator",
        ));
    }
    if !state.nonces.fresh(&h.nonce, h.created, now) {
        return Err(unauthorized("the nonce was already used (replay)"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    name: String,
    /// The file's bytes, base64.
    content_base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    source: SourceKind,
    #[serde(default)]
    name: Option<String>,
    files: Vec<ListFile>,
}

fn bad(rule: &str, e: impl std::fmt::Display) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, rule, e.to_string())
}

/// `POST /v1/lists`: import a list version (operator only).
pub async fn post_list(
    State(state): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    super::api::require_json(&headers)?;
    let st = state.clone();
    let out = super::api::blocking(move || {
        authorize(&st, &method, &uri, &headers, &body)?;
        let req: ImportRequest =
            serde_json::from_slice(&body).map_err(|e| bad("malformed_json", e))?;
        let files = req
            .files
            .into_iter()
            .map(|f| {
                Ok(Input {
                    bytes: B64.decode(&f.content_base64).map_err(|_| {
                        bad(
                            "bad_file",
                            format!("{}: content_base64 is not base64", f.name),
                        )
                    })?,
                    name: f.name,
                })
            })
            .collect::<Result<Vec<_>, Problem>>()?;
        let now = (st.clock)().to_string();
        let o = lists::import_into(&*st.lists, req.source, req.name.as_deref(), &files, &now)
            .map_err(|e| match e {
                lists::ListError::Store(_) => Problem::internal("storing a list", &e),
                other => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "list_import",
                    other.to_string(),
                ),
            })?;
        st.invalidate_index();
        Ok(o)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenRequest {
    #[serde(default)]
    name: Option<String>,
    /// A ledger party (handle or id), screened with its parent and owners.
    #[serde(default)]
    party: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

/// `POST /v1/screen`: screen a name or a ledger party against the imported lists.
pub async fn post_screen(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    super::api::require_json(&headers)?;
    let out = super::api::blocking(move || {
        let req: ScreenRequest = serde_json::from_slice(&body).map_err(|e| bad("malformed_json", e))?;
        let date = req.date.as_deref().map(Date::parse).transpose().map_err(|e| bad("bad_date", e))?;
        let guard = state.index()?;
        let (ix, used) = &*guard;
        let th = Thresholds::default();
        match (req.name, req.party) {
            (Some(name), None) => {
                let c = ix.screen(&Query { name: name.clone(), country: req.country.clone(), date }, th, 10);
                Ok(serde_json::json!({"query": name, "country": req.country, "date": date, "thresholds": th, "lists": used, "candidates": c}))
            }
            (None, Some(p)) => {
                let store = state.ledger.store();
                let id = crate::client::find_party(store, &p)
                    .map_err(|_| Problem::new(StatusCode::NOT_FOUND, "not_found", format!("no party {p:?}")))?;
                let r = Screener::new(ix, store, th, date).party(&id)?;
                serde_json::to_value(r).map_err(|e| Problem::internal("encoding a screening", &e))
            }
            _ => Err(bad("bad_query", "give exactly one of name and party")),
        }
    })
    .await?;
    Ok(Json(out).into_response())
}

pub(crate) fn resolve_options(state: &AppState) -> crate::resolve::Options {
    crate::resolve::Options {
        thresholds: Thresholds::default(),
        stale_pending_days: 30,
        now: (state.clock)(),
        dwell: crate::resolve::DwellRule::default(),
        signatures: crate::resolve::Signatures::Anchored,
    }
}

/// `GET /v1/units/{unit}/resolution`: the unit's verdict with its evidence.
pub async fn get_resolution(
    State(state): State<AppState>,
    axum::extract::Path(unit): axum::extract::Path<String>,
) -> Result<Response, Problem> {
    let u = crate::core::unit::UnitId::parse(&unit).map_err(|e| bad("bad_unit", e))?;
    let out = super::api::blocking(move || {
        let store = state.ledger.store();
        if store.unit(&u)?.is_none() {
            return Err(Problem::new(StatusCode::NOT_FOUND, "not_found", format!("unit {u} is not registered")));
        }
        let guard = state.index()?;
        let (ix, used) = &*guard;
        let o = resolve_options(&state);
        let peers = state.peers(o.dwell)?;
        let r = state.resolve_unit(ix, &u, &o, &peers)?;
        signed(&state, serde_json::json!({"ledger": state.ledger.name(), "checkpoint": checkpoint_ref(store)?, "lists": used, "peers": peers, "as_of": o.now, "resolution": r}))
    })
    .await?;
    Ok(Json(out).into_response())
}

/// Adds `signed`: the report's JSON text signed by the log key (FORMAT.md §14).
fn signed(state: &AppState, mut report: serde_json::Value) -> Result<serde_json::Value, Problem> {
    let text =
        serde_json::to_string(&report).map_err(|e| Problem::internal("encoding a report", &e))?;
    // A read-only mirror holds no log key: its reports go unsigned.
    if let Some(s) = state.ledger.sign_report(text) {
        report["signed"] =
            serde_json::to_value(s).map_err(|e| Problem::internal("encoding a report", &e))?;
    }
    Ok(report)
}

fn checkpoint_ref(
    store: &crate::store::SledStore,
) -> Result<Option<crate::core::receipt::CheckpointRef>, Problem> {
    Ok(store
        .latest_checkpoint()?
        .map(|c| crate::core::receipt::CheckpointRef::of(&c)))
}

#[derive(Deserialize)]
pub struct ResolutionsQuery {
    verdict: Option<String>,
}

/// `GET /v1/resolutions[?verdict=…]`: every unit's verdict (or those with this verdict).
pub async fn get_resolutions(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ResolutionsQuery>,
) -> Result<Response, Problem> {
    let wanted = match q.verdict.as_deref() {
        None => None,
        Some(v) => Some(crate::resolve::Verdict::parse(v).ok_or_else(|| {
            let all: Vec<&str> = crate::resolve::Verdict::ALL
                .iter()
                .map(|v| v.as_str())
                .collect();
            bad(
                "bad_query",
                format!("verdict {v:?}: expected one of {}", all.join(", ")),
            )
        })?),
    };
    let out = super::api::blocking(move || {
        let store = state.ledger.store();
        let guard = state.index()?;
        let (ix, used) = &*guard;
        let o = resolve_options(&state);
        let sum = crate::resolve::resolve_all(store, state.ledger.name(), ix, &o, &|_, _, _| {}, |r| {
            Ok(wanted.is_none_or(|v| v == r.verdict))
        })?;
        signed(&state, serde_json::json!({"ledger": state.ledger.name(), "checkpoint": checkpoint_ref(store)?, "lists": used, "peers": sum.peers, "as_of": o.now, "units": sum.units, "counts": sum.counts, "admission": sum.admission, "resolutions": sum.resolutions}))
    })
    .await?;
    Ok(Json(out).into_response())
}
