//! `custody serve`: the ledger over HTTP (axum + tokio).
//!
//! One process owns the sled directory and the ledger's writer. Handlers verify events on
//! the blocking pool and hand them to the writer; a receipt is answered only once it is
//! durable. Shutdown (SIGINT/SIGTERM, or the future given to [`serve`]) stops accepting
//! connections, lets in-flight requests finish, then drops the ledger, which commits a final
//! checkpoint and flushes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use std::sync::{PoisonError, RwLock};

use crate::ledger::{Clock, Ledger};
use crate::screen::lists::{SledLists, SnapshotRef};
use crate::screen::matcher::Index;
use crate::store::{SledStore, Store};

mod api;
mod metrics;
mod operator;
pub mod problem;

use problem::Problem;

pub mod ui;

/// Largest request body: a batch of events (each event is at most 1 MiB).
pub const MAX_BODY: usize = 16 << 20;
/// Requests served at once; the rest wait.
pub const MAX_CONCURRENT: usize = 512;
/// A request that takes longer is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Screening = Arc<(Index, Vec<SnapshotRef>)>;

#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger<SledStore>>,
    pub metrics: Arc<metrics::Metrics>,
    pub clock: Clock,
    /// Unix seconds when the server started: operator requests created earlier are refused.
    pub started: i64,
    nonces: Arc<operator::Nonces>,
    lists: Arc<SledLists>,
    index: Arc<RwLock<Option<Screening>>>,
    /// The dwell baseline with the log size and rule it was computed for.
    peers: Arc<std::sync::Mutex<Option<(u64, crate::resolve::DwellRule, crate::resolve::Peers)>>>,
    /// The dashboard's resolutions of every unit.
    ui: Arc<std::sync::Mutex<Option<Arc<ui::overview::Cached>>>>,
    /// Events verified for earlier chain reads and resolutions ([`crate::verified`]).
    pub verified: Arc<crate::verified::VerifiedCache>,
}

impl AppState {
    /// One unit's resolution, with events verified earlier taken from the shared cache.
    fn resolve_unit(
        &self,
        ix: &crate::screen::matcher::Index,
        u: &crate::core::unit::UnitId,
        o: &crate::resolve::Options,
        peers: &crate::resolve::Peers,
    ) -> Result<crate::resolve::Resolution, crate::store::StoreError> {
        crate::resolve::resolve(
            self.ledger.store(),
            self.ledger.name(),
            ix,
            u,
            o,
            peers,
            &self.verified,
        )
    }

    /// The screening index over the latest list versions, built on first use.
    fn index(&self) -> Result<Screening, Problem> {
        if let Some(i) = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(Arc::clone(i));
        }
        let built = Arc::new(
            crate::screen::lists::index_latest(&*self.lists)
                .map_err(|e| Problem::internal("reading the lists", &e))?,
        );
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&built));
        Ok(built)
    }

    /// The dwell baseline, from the store's completed-stay counters (a few records per
    /// party), kept for the log size it was read at.
    fn peers(&self, rule: crate::resolve::DwellRule) -> Result<crate::resolve::Peers, Problem> {
        let store = self.ledger.store();
        let size = store.len()?;
        let mut cached = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, r, p)) = *cached {
            if s == size && r == rule {
                return Ok(p);
            }
        }
        let p = crate::resolve::baseline(store, rule)?;
        *cached = Some((size, rule, p));
        Ok(p)
    }

    fn invalidate_index(&self) {
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The OpenAPI 3.1 document (`schemas/openapi.json`; its components are the JSON Schemas
/// of `schemas/custody.schema.json`, and a test checks every path against the server).
const OPENAPI: &str = include_str!("../../schemas/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ok = tokio::task::spawn_blocking(move || state.ledger.store().len().is_ok())
        .await
        .unwrap_or(false);
    if ok {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let st = state.clone();
    let sizes = tokio::task::spawn_blocking(move || {
        let s = st.ledger.store();
        (
            s.len().unwrap_or(0),
            s.latest_checkpoint()
                .ok()
                .flatten()
                .map_or(0, |c| c.checkpoint.size),
        )
    })
    .await
    .unwrap_or((0, 0));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(sizes.0, sizes.1),
    )
        .into_response()
}

/// Errors produced by the framework's layers (body limit, timeout, method) become problems
/// too, so every error a client sees has the same shape.
async fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    // The framework's own rejections (query strings, path parameters) say what was wrong
    // in a short text body: keep it as the detail.
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let rule = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ if text.as_deref().is_some_and(|t| t.contains("query string")) => "bad_query",
        _ => "bad_request",
    };
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {MAX_BODY} bytes")
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long".to_owned(),
        s if s.is_server_error() => s.canonical_reason().unwrap_or("error").to_owned(),
        s => text.unwrap_or_else(|| s.canonical_reason().unwrap_or("error").to_owned()),
    };
    Problem::new(status, rule, detail).into_response()
}

/// A read-only mirror refuses every write (events, batches, list imports) before reading
/// the body; screening a name (`POST /v1/screen`) only reads.
async fn read_only_guard(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.ledger.is_read_only()
        && req.method() != axum::http::Method::GET
        && req.method() != axum::http::Method::HEAD
        && req.uri().path() != "/v1/screen"
    {
        let e = crate::ledger::AppendError::ReadOnly(state.ledger.name().to_string());
        let mut resp = Problem::from(e).into_response();
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    next.run(req).await
}

async fn fallback() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; the API is under /v1",
    )
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/events", post(api::post_event))
        .route("/events:batch", post(api::post_batch))
        .route("/events/{hash}", get(api::get_event))
        .route("/ledger", get(api::get_ledger))
        .route("/units/{unit}", get(api::get_unit))
        .route("/units/{unit}/chain", get(api::get_chain))
        .route("/units/{unit}/bundle", get(api::get_bundle))
        .route("/units/{unit}/resolution", get(operator::get_resolution))
        .route("/resolutions", get(operator::get_resolutions))
        .route("/parties", get(api::get_parties))
        .route("/parties/{party}", get(api::get_party))
        .route("/parties/{party}/units", get(api::get_holdings))
        .route("/checkpoint", get(api::get_checkpoint))
        .route("/proofs/inclusion", get(api::get_inclusion))
        .route("/proofs/consistency", get(api::get_consistency))
        .route("/log/entries", get(api::get_entries))
        .route("/openapi.json", get(openapi))
        .route("/lists", post(operator::post_list))
        .route("/screen", post(operator::post_screen));
    Router::new()
        .nest("/v1", v1)
        .merge(ui::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_only_guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Refuses an announced Content-Length over the limit before reading the body.
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::map_response(as_problem))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(ConcurrencyLimitLayer::new(MAX_CONCURRENT))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` completes, then drains and closes the ledger (final checkpoint,
/// flush) before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ledger: Ledger<SledStore>,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, ledger, clock, shutdown, Witnessing::default()).await
}

/// Witnesses the server asks to cosign each new checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Witnessing {
    pub witnesses: Vec<String>,
    pub every: std::time::Duration,
}

/// [`serve`], asking `w.witnesses` (C2SP tlog-witness) to cosign each new checkpoint at most
/// every `w.every`; `GET /v1/checkpoint` and bundles then carry their cosignatures.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    ledger: Ledger<SledStore>,
    clock: Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    w: Witnessing,
) -> std::io::Result<()> {
    let lists = SledLists::open(ledger.store().db()).map_err(std::io::Error::other)?;
    let state = AppState {
        ledger: Arc::new(ledger),
        metrics: Arc::default(),
        started: clock().unix(),
        clock,
        nonces: Arc::default(),
        lists: Arc::new(lists),
        index: Arc::default(),
        peers: Arc::default(),
        ui: Arc::default(),
        verified: Arc::default(),
    };
    if !w.witnesses.is_empty() {
        let st = state.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(w.every.max(std::time::Duration::from_millis(100))).await;
                let (st2, ws) = (st.clone(), w.witnesses.clone());
                let r = tokio::task::spawn_blocking(move || {
                    let store = st2.ledger.store();
                    match store.latest_checkpoint() {
                        Ok(Some(c)) if c.checkpoint.size > last => {
                            crate::cosigning::cosign_latest(store, &ws).map(Some)
                        }
                        _ => Ok(None),
                    }
                })
                .await;
                match r {
                    Ok(Ok(Some(o))) => {
                        last = o.size;
                        for a in o.answers.iter().filter(|a| !a.cosigned) {
                            tracing::warn!(witness = %a.witness, error = ?a.error, size = o.size, "checkpoint not cosigned");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cosigning failed"),
                    _ => {}
                }
            }
        });
    }
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, ledger = %state.ledger.name(), "custody serving");
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped accepting requests; closing the ledger");
    let ledger = state.ledger;
    // Handlers are done; the last reference closes the writer (final checkpoint + flush).
    tokio::task::spawn_blocking(move || drop(ledger))
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
