//! A transparency-log witness (C2SP tlog-witness): `POST /add-checkpoint` cosigns a
//! checkpoint of a log it trusts only if it is consistent with the last one it cosigned for
//! that log, and remembers the new one (persisted, atomically, before answering). A log
//! that rewrites its history cannot get the rewritten tree cosigned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::cosignature::cosign;
use crate::core::merkle::{self, TreeHash};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a checkpoint is not cosigned, with the protocol's status code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("400 bad request: {0}")]
    BadRequest(String),
    #[error("403 forbidden: the checkpoint is not signed by the log's trusted key: {0}")]
    Forbidden(String),
    #[error("404 not found: this witness does not follow log {0}")]
    UnknownLog(String),
    #[error("409 conflict: the latest checkpoint cosigned for this log has size {0}")]
    OldSize(u64),
    #[error("409 conflict: a different root was already cosigned for size {0}")]
    Fork(u64),
    #[error("422 unprocessable: the consistency proof from size {old} to {new} does not verify: {detail}")]
    Inconsistent { old: u64, new: u64, detail: String },
    #[error("500: the witness could not persist its state: {0}")]
    Io(String),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Seen {
    size: u64,
    root: TreeHash,
}

pub struct Witness {
    name: String,
    key: SigningKey,
    logs: Vec<VerifierKey>,
    state_path: PathBuf,
    state: Mutex<BTreeMap<String, Seen>>,
}

impl Witness {
    /// A witness named `name` following `logs`, with its memory in `state_path`.
    pub fn open(
        name: &str,
        key: SigningKey,
        logs: Vec<VerifierKey>,
        state_path: &Path,
    ) -> Result<Self, Refusal> {
        let state = match std::fs::read(state_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Refusal::Io(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Refusal::Io(e.to_string())),
        };
        Ok(Self {
            name: name.to_owned(),
            key,
            logs,
            state_path: state_path.to_owned(),
            state: Mutex::new(state),
        })
    }

    /// The witness's verifier key (`name+keyid+base64(0x04 ‖ key)`).
    #[must_use]
    pub fn vkey(&self) -> String {
        crate::core::cosignature::WitnessKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
        .to_vkey()
    }

    fn persist(&self, state: &BTreeMap<String, Seen>) -> Result<(), Refusal> {
        let io = |e: std::io::Error| Refusal::Io(e.to_string());
        let tmp = self.state_path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(state).map_err(|e| Refusal::Io(e.to_string()))?;
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.state_path).map_err(io)
    }

    /// The `add-checkpoint` call: the request body in, signature lines out.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refusal> {
        let bad = |s: &str| Refusal::BadRequest(s.to_owned());
        let (head, note) = body
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| n == &"0" || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line must be `old SIZE`"))?;
        let proof: Vec<TreeHash> = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(TreeHash::from_bytes)
                    .ok_or_else(|| bad("a consistency proof line is one base64 hash"))
            })
            .collect::<Result<_, _>>()?;
        if proof.len() > 63 {
            return Err(bad("more than 63 proof lines"));
        }
        let cp = SignedCheckpoint::parse(note.as_bytes())
            .map_err(|e| Refusal::BadRequest(format!("checkpoint: {e}")))?;
        let origin = cp.checkpoint.origin.to_string();
        let vkey = self
            .logs
            .iter()
            .find(|k| k.name == cp.checkpoint.origin)
            .ok_or_else(|| Refusal::UnknownLog(origin.clone()))?;
        cp.verify(vkey)
            .map_err(|e| Refusal::Forbidden(e.to_string()))?;
        let (size, root) = (cp.checkpoint.size, cp.checkpoint.root);
        if old > size {
            return Err(bad("the old size is larger than the checkpoint's"));
        }
        // Checking against the latest cosigned checkpoint and recording the new one happen
        // under one lock, so concurrent requests cannot roll the witness back.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = state.get(&origin).copied();
        let latest = seen.map_or(0, |s| s.size);
        if old != latest {
            return Err(Refusal::OldSize(latest));
        }
        match seen {
            None if !proof.is_empty() => return Err(bad("the proof must be empty from size 0")),
            None => {}
            Some(s) if s.size == size && s.root != root => return Err(Refusal::Fork(size)),
            Some(s) if s.size == size => {}
            Some(s) => {
                merkle::verify_consistency(s.size, size, &s.root, &root, &proof).map_err(|e| {
                    Refusal::Inconsistent {
                        old: s.size,
                        new: size,
                        detail: e.to_string(),
                    }
                })?
            }
        }
        let mut next = state.clone();
        next.insert(origin, Seen { size, root });
        self.persist(&next)?;
        *state = next;
        let sig = cosign(&self.key, &self.name, cp.text(), now);
        let mut line = String::from("\u{2014} ");
        line.push_str(&sig.name);
        line.push(' ');
        let mut raw = sig.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.sig);
        line.push_str(&B64.encode(raw));
        line.push('\n');
        Ok(line)
    }
}

async fn add_checkpoint(State(w): State<std::sync::Arc<Witness>>, body: String) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let w2 = std::sync::Arc::clone(&w);
    let r = tokio::task::spawn_blocking(move || w2.add_checkpoint(&body, now)).await;
    match r {
        Ok(Ok(lines)) => (StatusCode::OK, lines).into_response(),
        Ok(Err(Refusal::OldSize(n))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{n}\n"),
        )
            .into_response(),
        Ok(Err(e)) => {
            let code = match &e {
                Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
                Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
                Refusal::UnknownLog(_) => StatusCode::NOT_FOUND,
                Refusal::OldSize(_) | Refusal::Fork(_) => StatusCode::CONFLICT,
                Refusal::Inconsistent { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(refusal = %e, "checkpoint not cosigned");
            (code, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Serves the witness until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    w: Witness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(128 * 1024))
        .with_state(std::sync::Arc::new(w));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
