//! Split-view detection: a log that shows one history to this monitor and another to
//! someone else is caught by comparing views. A peer is any server that serves the same
//! log's checkpoints and proofs: another monitor's mirror (`custody serve --read-only`),
//! another replica, or the ledger reached by another route.
//!
//! Two checkpoints signed by the log key are consistent when the smaller tree is a prefix
//! of the larger one. The side holding the larger tree proves it (RFC 9162 consistency
//! proof); if that side cannot, the other one is asked. Same size with another root, or a
//! proof that does not verify, is a **split view**: the two signed checkpoints are the
//! evidence, and no operator can explain them away.

use serde::Serialize;

use super::Http;
use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::proof::ConsistencyProof;

/// What one peer showed.
#[derive(Clone, Debug, Serialize)]
pub struct PeerView {
    pub url: String,
    /// The peer's tree size, when it served a checkpoint that verifies.
    pub size: Option<u64>,
    /// Proven consistent with this monitor's view.
    pub consistent: bool,
    /// Why the peer could not be compared (unreachable, bad checkpoint): not evidence
    /// against the log, since anyone can run a broken peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of comparing one peer.
pub(crate) enum Compared {
    View(PeerView),
    /// The log signed two views that cannot both be true; the peer's signed note.
    SplitView {
        view: PeerView,
        note: String,
        detail: String,
    },
}

fn proof(http: &Http, from: u64, to: u64) -> Result<ConsistencyProof, String> {
    http.get(&format!("/v1/proofs/consistency?from={from}&to={to}"))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
}

/// Compares `ours` (verified, served by `server`) with the checkpoint `peer` serves.
pub(crate) fn compare(
    server: &Http,
    peer_url: &str,
    vkey: &VerifierKey,
    ours: &SignedCheckpoint,
) -> Compared {
    let peer = Http::new(peer_url);
    let mut view = PeerView {
        url: peer_url.to_owned(),
        size: None,
        consistent: false,
        error: None,
    };
    let note = match peer.get("/v1/checkpoint") {
        Ok(n) => n,
        Err(e) => {
            view.error = Some(e.to_string());
            return Compared::View(view);
        }
    };
    let theirs =
        match SignedCheckpoint::parse(note.as_bytes()).and_then(|c| c.verify(vkey).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                view.error = Some(format!(
                    "its checkpoint does not verify under the pinned key: {e}"
                ));
                return Compared::View(view);
            }
        };
    let (os, ts) = (ours.checkpoint.size, theirs.checkpoint.size);
    view.size = Some(ts);
    let split = |view: PeerView, detail: String| Compared::SplitView {
        view,
        note: note.clone(),
        detail,
    };
    if os == ts {
        if ours.checkpoint.root == theirs.checkpoint.root {
            view.consistent = true;
            return Compared::View(view);
        }
        return split(
            view,
            format!("the log signed two different roots for size {os}: one for this monitor, one for {peer_url}"),
        );
    }
    if os.min(ts) == 0 {
        view.consistent = true;
        return Compared::View(view);
    }
    let (small, large) = if os < ts {
        (ours, &theirs)
    } else {
        (&theirs, ours)
    };
    // The log itself (this monitor's server) must be able to prove any two of its signed
    // checkpoints consistent; the peer is asked when the server cannot serve a proof.
    // A valid proof from anyone settles it: none exists for two trees that disagree. The
    // log is asked first (an honest log can prove any two of its signed checkpoints
    // consistent), then the peer. Proofs served that do not verify, and none that does,
    // make two log-signed checkpoints with no common history: a split view. When nobody
    // can serve a proof at all (a server lagging behind the other's size, unreachable),
    // the comparison is reported as not made.
    let (mut unavailable, mut invalid) = (Vec::new(), Vec::new());
    for http in [server, &peer] {
        match proof(http, small.checkpoint.size, large.checkpoint.size) {
            Err(e) => unavailable.push(e),
            Ok(p) => match p.verify(&small.checkpoint.root, &large.checkpoint.root) {
                Ok(()) => {
                    view.consistent = true;
                    return Compared::View(view);
                }
                Err(e) => invalid.push(format!("{}: {e}", http.base())),
            },
        }
    }
    if invalid.is_empty() {
        view.error = Some(format!(
            "no consistency proof available: {}",
            unavailable.join("; ")
        ));
        return Compared::View(view);
    }
    split(
        view,
        format!(
            "the log signed a tree of size {} and one of size {} that share no history: no consistency proof between them verifies ({}); it showed {peer_url} another history",
            small.checkpoint.size,
            large.checkpoint.size,
            invalid.join("; ")
        ),
    )
}
