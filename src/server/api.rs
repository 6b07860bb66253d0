//! The `/v1` handlers. Blocking work (decode, verify, append, store reads) runs on tokio's
//! blocking pool; the signatures inside an event are its only authentication.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::AppState;
use crate::chain;
use crate::core::ids::{EventHash, LogIndex};
use crate::core::unit::UnitId;
use crate::core::verify::{SignedEvent, VerifiedEvent};
use crate::ledger::Receipt;
use crate::log;
use crate::store::Store;

/// Most events in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most log entries in one page.
pub const MAX_PAGE: u64 = 1000;

type Reply = Result<Response, Problem>;

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::internal("a worker task failed", &e))?
}

pub(super) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send Content-Type: application/json (got {ct:?})"),
        ))
    }
}

fn verify(state: &AppState, bytes: &[u8]) -> Result<VerifiedEvent, Problem> {
    let signed = SignedEvent::decode(bytes)?;
    signed
        .verify(state.ledger.name())
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "signature", e.to_string()))
}

fn receipt_response(r: Receipt) -> Response {
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(r)).into_response()
}

/// `POST /v1/events`: one signed event.
pub async fn post_event(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    require_json(&headers)?;
    let started = Instant::now();
    let st = state.clone();
    let out = blocking(move || {
        let ev = verify(&st, &body)?;
        st.ledger.append(ev).map_err(Problem::from)
    })
    .await;
    match out {
        Ok(r) => {
            state.metrics.appended(r.duplicate);
            state.metrics.latency(started.elapsed().as_secs_f64());
            Ok(receipt_response(r))
        }
        Err(p) => {
            state.metrics.rejected(&p.rule);
            Err(p)
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem {
    Accepted { status: u16, receipt: Receipt },
    Refused { status: u16, problem: Problem },
}

/// `POST /v1/events:batch`: a JSON array of signed events, each judged on its own.
pub async fn post_batch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    require_json(&headers)?;
    let started = Instant::now();
    let st = state.clone();
    let items = blocking(move || {
        let raw: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(&body).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("a batch is a JSON array of signed events: {e}"),
                )
            })?;
        if raw.len() > MAX_BATCH {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!(
                    "{} events in one batch; the limit is {MAX_BATCH}",
                    raw.len()
                ),
            ));
        }
        let checked: Vec<Result<VerifiedEvent, Problem>> = raw
            .iter()
            .map(|r| verify(&st, r.get().as_bytes()))
            .collect();
        let mut slots: Vec<Option<Result<Receipt, Problem>>> = Vec::with_capacity(checked.len());
        let mut good = Vec::new();
        let mut at = Vec::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok(ev) => {
                    good.push(ev);
                    at.push(i);
                    slots.push(None);
                }
                Err(p) => slots.push(Some(Err(p))),
            }
        }
        for (i, r) in at.into_iter().zip(st.ledger.append_all(good)) {
            slots[i] = Some(r.map_err(Problem::from));
        }
        Ok(slots
            .into_iter()
            .map(|s| {
                s.unwrap_or_else(|| Err(Problem::internal("a batch slot was not filled", &"bug")))
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let out: Vec<BatchItem> = items
        .into_iter()
        .map(|r| match r {
            Ok(receipt) => {
                state.metrics.appended(receipt.duplicate);
                state.metrics.latency(secs);
                BatchItem::Accepted {
                    status: if receipt.duplicate { 200 } else { 201 },
                    receipt,
                }
            }
            Err(problem) => {
                state.metrics.rejected(&problem.rule);
                BatchItem::Refused {
                    status: problem.status,
                    problem,
                }
            }
        })
        .collect();
    Ok((StatusCode::OK, Json(out)).into_response())
}

fn parse_unit(s: &str) -> Result<UnitId, Problem> {
    UnitId::parse(s).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_unit", e.to_string()))
}

fn not_found(what: String) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", what)
}

/// `GET /v1/units/{unit}`.
pub async fn get_unit(State(state): State<AppState>, Path(unit): Path<String>) -> Reply {
    let u = parse_unit(&unit)?;
    let rec = blocking(move || {
        state
            .ledger
            .store()
            .unit(&u)?
            .ok_or_else(|| not_found(format!("unit {u} is not registered")))
    })
    .await?;
    Ok(Json(rec).into_response())
}

/// `GET /v1/units/{unit}/chain`: every event, each signature verified.
pub async fn get_chain(State(state): State<AppState>, Path(unit): Path<String>) -> Reply {
    let u = parse_unit(&unit)?;
    let c = blocking(move || {
        if state.ledger.store().unit(&u)?.is_none() {
            return Err(not_found(format!("unit {u} is not registered")));
        }
        chain::read_cached(
            state.ledger.store(),
            state.ledger.name(),
            &u,
            &state.verified,
        )
        .map_err(|e| Problem::internal("reading a chain", &e))
    })
    .await?;
    Ok(Json(c).into_response())
}

/// `GET /v1/units/{unit}/bundle`: the unit's evidence bundle (FORMAT.md §15), against a
/// checkpoint that covers its last event (signed on demand when the latest does not).
pub async fn get_bundle(State(state): State<AppState>, Path(unit): Path<String>) -> Reply {
    use crate::bundle::{export, ExportError};
    let u = parse_unit(&unit)?;
    let b = blocking(move || {
        let store = state.ledger.store();
        let first = match export(store, &u) {
            Err(ExportError::NotCovered { .. }) => {
                state
                    .ledger
                    .checkpoint()
                    .map_err(|e| Problem::internal("signing a checkpoint", &e))?;
                export(store, &u)
            }
            other => other,
        };
        let mut b = first.map_err(|e| match e {
            ExportError::UnknownUnit(u) => not_found(format!("unit {u} is not registered")),
            ExportError::Store(e) => e.into(),
            e => Problem::internal("exporting a bundle", &e),
        })?;
        b.checkpoint = crate::cosigning::with_cosignatures(store, b.checkpoint);
        Ok(b)
    })
    .await?;
    Ok(Json(b).into_response())
}

/// `GET /v1/parties`.
pub async fn get_parties(State(state): State<AppState>) -> Reply {
    let all = blocking(move || Ok(state.ledger.store().parties()?)).await?;
    Ok(Json(all).into_response())
}

/// `GET /v1/parties/{id-or-handle}`.
pub async fn get_party(State(state): State<AppState>, Path(p): Path<String>) -> Reply {
    let rec = blocking(move || {
        let store = state.ledger.store();
        let id = crate::client::find_party(store, &p)
            .map_err(|_| not_found(format!("no party {p:?}")))?;
        store
            .party(&id)?
            .ok_or_else(|| not_found(format!("no party {p:?}")))
    })
    .await?;
    Ok(Json(rec).into_response())
}

#[derive(Deserialize)]
pub struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/parties/{id-or-handle}/units?after=&limit=`: units held now.
pub async fn get_holdings(
    State(state): State<AppState>,
    Path(p): Path<String>,
    Query(page): Query<Page>,
) -> Reply {
    let after = page.after.as_deref().map(parse_unit).transpose()?;
    let limit = page.limit.unwrap_or(1000).min(10_000);
    let units = blocking(move || {
        let store = state.ledger.store();
        let id = crate::client::find_party(store, &p)
            .map_err(|_| not_found(format!("no party {p:?}")))?;
        Ok(store.holdings(&id, after.as_ref(), limit)?)
    })
    .await?;
    Ok(Json(units).into_response())
}

#[derive(Deserialize)]
pub struct Size {
    size: Option<u64>,
}

/// `GET /v1/checkpoint[?size=N]`: the signed note, `text/plain`.
pub async fn get_checkpoint(State(state): State<AppState>, Query(q): Query<Size>) -> Reply {
    let note = blocking(move || {
        let store = state.ledger.store();
        let cp = log::checkpoint(store, q.size).map_err(Problem::from)?;
        Ok(crate::cosigning::with_cosignatures(store, cp.to_note()))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    index: Option<u64>,
    hash: Option<String>,
    size: Option<u64>,
}

#[derive(Serialize)]
struct InclusionOut {
    event_hash: EventHash,
    proof: crate::core::proof::InclusionProof,
    checkpoint: String,
}

/// `GET /v1/proofs/inclusion?index=I|hash=H[&size=N]` against the checkpoint at `size`
/// (default: the latest).
pub async fn get_inclusion(
    State(state): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Reply {
    let out = blocking(move || {
        let store = state.ledger.store();
        let index = match (q.index, q.hash.as_deref()) {
            (Some(i), None) => LogIndex::new(i),
            (None, Some(h)) => {
                let h = EventHash::parse(h).map_err(|e| {
                    Problem::new(StatusCode::BAD_REQUEST, "bad_hash", e.to_string())
                })?;
                store.index_of(&h)?.ok_or(log::LogError::UnknownEvent(h))?
            }
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    "give exactly one of index and hash",
                ))
            }
        };
        let cp = log::checkpoint(store, q.size)?;
        let proof = log::prove_inclusion(store, index, cp.checkpoint.size)?;
        let entry = store
            .entry(index)?
            .ok_or_else(|| not_found(format!("log index {index}")))?;
        Ok(InclusionOut {
            event_hash: entry.hash,
            proof,
            checkpoint: cp.to_note(),
        })
    })
    .await?;
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// `GET /v1/proofs/consistency?from=&to=`.
pub async fn get_consistency(
    State(state): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Reply {
    let p = blocking(move || {
        log::prove_consistency(state.ledger.store(), q.from, q.to).map_err(Problem::from)
    })
    .await?;
    Ok(Json(p).into_response())
}

#[derive(Deserialize)]
pub struct Range {
    start: u64,
    end: Option<u64>,
}

#[derive(Serialize)]
struct EntryOut {
    index: LogIndex,
    integrated_at: crate::core::values::Timestamp,
    hash: EventHash,
    /// The canonical JCS bytes of the envelope, as a string: hash them as they are.
    event: String,
}

fn entry_out(e: crate::store::LogEntry) -> Result<EntryOut, Problem> {
    Ok(EntryOut {
        index: e.index,
        integrated_at: e.integrated_at,
        hash: e.hash,
        event: String::from_utf8(e.event)
            .map_err(|err| Problem::internal("a stored event is not UTF-8", &err))?,
    })
}

/// `GET /v1/log/entries?start=&end=`: at most 1000 entries, for monitors mirroring the log.
pub async fn get_entries(State(state): State<AppState>, Query(r): Query<Range>) -> Reply {
    let end = r
        .end
        .unwrap_or(r.start + MAX_PAGE)
        .min(r.start.saturating_add(MAX_PAGE));
    if end < r.start {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            "end is before start",
        ));
    }
    let out = blocking(move || {
        let es = state
            .ledger
            .store()
            .entries(LogIndex::new(r.start), LogIndex::new(end))?;
        es.into_iter()
            .map(entry_out)
            .collect::<Result<Vec<_>, Problem>>()
    })
    .await?;
    Ok(Json(out).into_response())
}

#[derive(Serialize)]
struct LedgerOut {
    name: crate::core::ids::LedgerName,
    /// C2SP verifier key of the log key (checkpoints and receipts).
    verifier_key: String,
    /// Events in the log.
    size: u64,
}

/// `GET /v1/ledger`: the ledger's name, log key and size.
pub async fn get_ledger(State(state): State<AppState>) -> Reply {
    let out = blocking(move || {
        Ok(LedgerOut {
            name: state.ledger.name().clone(),
            verifier_key: state.ledger.verifier_key().to_string(),
            size: state.ledger.store().len()?,
        })
    })
    .await?;
    Ok(Json(out).into_response())
}

/// `GET /v1/events/{hash}`: one log entry by event hash.
pub async fn get_event(State(state): State<AppState>, Path(hash): Path<String>) -> Reply {
    let h = EventHash::parse(&hash)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad_hash", e.to_string()))?;
    let out = blocking(move || {
        let store = state.ledger.store();
        let i = store
            .index_of(&h)?
            .ok_or_else(|| not_found(format!("no event {h} in the log")))?;
        let e = store
            .entry(i)?
            .ok_or_else(|| not_found(format!("no event {h} in the log")))?;
        entry_out(e)
    })
    .await?;
    Ok(Json(out).into_response())
}
