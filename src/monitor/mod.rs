//! Log monitoring (`custody monitor`): follows a ledger's signed checkpoints over HTTP and
//! checks that the log only ever grows by appending.
//!
//! The monitor keeps, in a state file, the last checkpoint it verified and the compact
//! Merkle frontier of that tree (log2 n hashes). Each step it fetches the latest checkpoint,
//! verifies its signature with the pinned verifier key, and then:
//! - a smaller tree than before: the log **shrank**;
//! - the same size with another root, or a consistency proof from the old tree to the new
//!   one that does not verify: the log **forked** (history was rewritten);
//! - otherwise it fetches every new entry, verifies it (canonical bytes, signatures, hash)
//!   and appends its leaf to the frontier, whose root must be the new checkpoint's root:
//!   the entries served are exactly the ones the checkpoint commits to.
//!
//! On an alert nothing is overwritten: both signed checkpoints are kept as evidence. New
//! events that touch watched units or parties are reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::event::Envelope;
use crate::core::ids::LogIndex;
use crate::core::ids::{EventHash, LedgerName, PartyId};
use crate::core::merkle::{self, Frontier, TreeHash};
use crate::core::proof::ConsistencyProof;
use crate::core::state::Touches;
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::core::verify::verify_stored;
use crate::ledger::replica::{Replica, ReplicaError};
use crate::store::{LogEntry, SledStore};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("talking to {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("state file {path}: {detail}")]
    State { path: String, detail: String },
    #[error("the first run needs --verifier-key: the log key must be pinned out of band")]
    NoKey,
    #[error("--verifier-key: {0}")]
    BadKey(String),
    #[error("mirror: {0}")]
    Mirror(String),
}

/// What the monitor remembers between runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub verifier_key: String,
    /// The last verified checkpoint (signed note); `None` before the first.
    pub checkpoint: Option<String>,
    /// `range_nodes(0, size)` of that tree.
    pub frontier: Vec<TreeHash>,
}

pub mod peers;

use peers::PeerView;

/// Why the log cannot be trusted any more; the evidence is saved beside the state file.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// `shrank`, `forked`, `split_view`, `entries_do_not_match`, `bad_checkpoint` or
    /// `bad_entry`.
    pub kind: &'static str,
    pub detail: String,
    /// The files holding the previous and the offending signed checkpoints.
    pub evidence: Vec<String>,
}

/// An event that touches what is watched.
#[derive(Clone, Debug, Serialize)]
pub struct Touch {
    pub index: u64,
    pub hash: EventHash,
    pub kind: &'static str,
    pub at: Timestamp,
    pub units: Vec<UnitId>,
    pub parties: Vec<PartyId>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub old_size: u64,
    pub new_size: u64,
    pub entries_verified: u64,
    pub touches: Vec<Touch>,
    /// What each peer showed (split-view detection), when peers are given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
}

/// What to report besides the log's integrity.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    pub units: Vec<UnitId>,
    pub parties: Vec<PartyId>,
    /// Servers of the same log to compare views with (split-view detection, [`peers`]).
    pub peers: Vec<String>,
}

/// A log entry as `GET /v1/log/entries` serves it.
#[derive(Deserialize)]
pub(crate) struct WireEntry {
    pub index: u64,
    pub integrated_at: Timestamp,
    pub hash: EventHash,
    pub event: String,
}

/// Plain GETs against a server, errors naming the URL.
pub(crate) struct Http {
    base: String,
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    /// Entries `start..end` (the server serves at most 1000 per call).
    pub(crate) fn entries(&self, start: u64, end: u64) -> Result<Vec<WireEntry>, MonitorError> {
        let path = format!("/v1/log/entries?start={start}&end={end}");
        serde_json::from_str(&self.get(&path)?).map_err(|e| MonitorError::Transport {
            url: format!("{}{path}", self.base),
            detail: e.to_string(),
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn get(&self, path: &str) -> Result<String, MonitorError> {
        let url = format!("{}{path}", self.base);
        let t = |detail: String| MonitorError::Transport {
            url: url.clone(),
            detail,
        };
        match self.agent.get(&url).call() {
            Ok(r) => r.into_string().map_err(|e| t(e.to_string())),
            Err(ureq::Error::Status(code, r)) => Err(t(format!(
                "HTTP {code}: {}",
                r.into_string().unwrap_or_default()
            ))),
            Err(e) => Err(t(e.to_string())),
        }
    }
}

/// The verifier key pinned in a state file, if it exists.
pub fn pinned_key(path: &Path) -> Result<Option<String>, MonitorError> {
    Ok(load(path)?.map(|s| s.verifier_key))
}

fn load(path: &Path) -> Result<Option<State>, MonitorError> {
    let bad = |detail: String| MonitorError::State {
        path: path.display().to_string(),
        detail,
    };
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| bad(e.to_string())),
    }
}

/// Writes the state atomically (temporary file, fsync, rename).
fn save(path: &Path, s: &State) -> Result<(), MonitorError> {
    let bad = |detail: String| MonitorError::State {
        path: path.display().to_string(),
        detail,
    };
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(s).map_err(|e| bad(e.to_string()))?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(|e| bad(e.to_string()))?;
        f.write_all(&json).map_err(|e| bad(e.to_string()))?;
        f.sync_all().map_err(|e| bad(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))
}

fn evidence(state_path: &Path, old: Option<&str>, new: &str) -> Vec<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir: PathBuf = state_path.with_extension(format!("evidence-{stamp}"));
    let mut out = Vec::new();
    if std::fs::create_dir_all(&dir).is_ok() {
        for (name, text) in [
            ("previous.checkpoint", old),
            ("offending.checkpoint", Some(new)),
        ] {
            if let Some(t) = text {
                let p = dir.join(name);
                if std::fs::write(&p, t).is_ok() {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out
}

/// One monitoring step against `server`, with the state in `state_path`. With a `mirror`,
/// every verified entry and checkpoint is also replicated into it (see
/// [`crate::ledger::replica`]).
pub fn step(
    server: &str,
    state_path: &Path,
    pinned: Option<&str>,
    watch: &Watch,
    mut mirror: Option<&mut Replica<SledStore>>,
) -> Result<Report, MonitorError> {
    let mut st = match (load(state_path)?, pinned) {
        (Some(s), Some(k)) if s.verifier_key != k => {
            return Err(MonitorError::BadKey(format!(
                "differs from the key pinned in {}: {}",
                state_path.display(),
                s.verifier_key
            )))
        }
        (Some(s), _) => s,
        (None, Some(k)) => State {
            verifier_key: k.to_owned(),
            checkpoint: None,
            frontier: vec![],
        },
        (None, None) => return Err(MonitorError::NoKey),
    };
    let vkey =
        VerifierKey::parse(&st.verifier_key).map_err(|e| MonitorError::BadKey(e.to_string()))?;
    let http = Http::new(server);
    let note = http.get("/v1/checkpoint")?;
    let old = match &st.checkpoint {
        Some(n) => {
            Some(
                SignedCheckpoint::parse(n.as_bytes()).map_err(|e| MonitorError::State {
                    path: state_path.display().to_string(),
                    detail: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let old_size = old.as_ref().map_or(0, |c| c.checkpoint.size);
    if let Some(m) = mirror.as_deref() {
        if m.len() < old_size {
            return Err(MonitorError::Mirror(format!(
                "it holds {} entries but {} has verified {old_size}: a mirror starts with its \
                 own new state file",
                m.len(),
                state_path.display()
            )));
        }
    }
    let mut report = Report {
        old_size,
        new_size: old_size,
        ..Report::default()
    };
    let alert = |kind, detail: String| Alert {
        kind,
        detail,
        evidence: evidence(state_path, st.checkpoint.as_deref(), &note),
    };
    let new =
        match SignedCheckpoint::parse(note.as_bytes()).and_then(|c| c.verify(&vkey).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                report.alert = Some(alert(
                    "bad_checkpoint",
                    format!("the served checkpoint does not verify under the pinned key: {e}"),
                ));
                return Ok(report);
            }
        };
    report.new_size = new.checkpoint.size;
    if let Some(o) = &old {
        let (os, ns) = (o.checkpoint.size, new.checkpoint.size);
        if ns < os {
            report.alert = Some(alert(
                "shrank",
                format!("the log shrank from {os} to {ns} entries"),
            ));
            return Ok(report);
        }
        if ns == os && o.checkpoint.root != new.checkpoint.root {
            report.alert = Some(alert(
                "forked",
                format!("two different roots signed for size {os}"),
            ));
            return Ok(report);
        }
        if ns > os && os > 0 {
            let proof: Result<ConsistencyProof, String> = http
                .get(&format!("/v1/proofs/consistency?from={os}&to={ns}"))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
            let ok = proof.and_then(|p| {
                p.verify(&o.checkpoint.root, &new.checkpoint.root)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = ok {
                report.alert = Some(alert("forked", format!("the checkpoint of size {ns} is not an extension of the verified one of size {os}: {e}")));
                return Ok(report);
            }
        }
    }
    // Every new entry, verified, appended to the frontier.
    let mut frontier =
        Frontier::from_nodes(old_size, &st.frontier).ok_or_else(|| MonitorError::State {
            path: state_path.display().to_string(),
            detail: "the frontier does not fit the checkpoint's size".into(),
        })?;
    let ledger: LedgerName = new.checkpoint.origin.clone();
    let mut i = old_size;
    while i < new.checkpoint.size {
        let end = (i + 1000).min(new.checkpoint.size);
        let page = http.entries(i, end)?;
        if page.is_empty() {
            report.alert = Some(alert(
                "entries_do_not_match",
                format!("the server holds no entry {i} below its checkpoint size"),
            ));
            return Ok(report);
        }
        let mut replicate = Vec::with_capacity(page.len());
        for e in page {
            let checked = if e.index == i {
                verify_stored(e.event.as_bytes(), &ledger).map_err(|err| err.to_string())
            } else {
                Err(format!("expected entry {i}, got {}", e.index))
            };
            let ev = match checked {
                Ok(ev) if ev.hash() == e.hash => ev,
                Ok(ev) => {
                    report.alert = Some(alert(
                        "bad_entry",
                        format!(
                            "entry {i}: claimed hash {} is not the event hash {}",
                            e.hash,
                            ev.hash()
                        ),
                    ));
                    return Ok(report);
                }
                Err(d) => {
                    report.alert = Some(alert("bad_entry", format!("entry {i}: {d}")));
                    return Ok(report);
                }
            };
            frontier.push(merkle::entry_leaf_hash(
                e.integrated_at,
                ev.canonical_bytes(),
            ));
            report.entries_verified += 1;
            let env: &Envelope = ev.envelope();
            let t = Touches::of(env);
            let units: Vec<UnitId> = t
                .units
                .into_iter()
                .filter(|u| watch.units.contains(u))
                .collect();
            let parties: Vec<PartyId> = t
                .parties
                .into_iter()
                .filter(|p| watch.parties.contains(p))
                .collect();
            if !units.is_empty() || !parties.is_empty() {
                report.touches.push(Touch {
                    index: i,
                    hash: ev.hash(),
                    kind: env.body.kind(),
                    at: env.body.at(),
                    units,
                    parties,
                });
            }
            if mirror.is_some() {
                let entry = LogEntry {
                    index: LogIndex::new(i),
                    integrated_at: e.integrated_at,
                    hash: e.hash,
                    event: e.event.into_bytes(),
                };
                replicate.push((entry, ev));
            }
            i += 1;
        }
        if let Some(m) = mirror.as_deref_mut() {
            match m.append(&replicate) {
                Ok(()) => {}
                Err(ReplicaError::Differs { index, detail }) => {
                    report.alert = Some(alert(
                        "forked",
                        format!("entry {index} differs from the one served before: {detail}"),
                    ));
                    return Ok(report);
                }
                Err(ReplicaError::Refused { index, detail }) => {
                    report.alert = Some(alert(
                        "bad_entry",
                        format!("entry {index} breaks the ledger's rules: {detail}"),
                    ));
                    return Ok(report);
                }
                Err(e) => return Err(MonitorError::Mirror(e.to_string())),
            }
        }
    }
    if frontier.root() != new.checkpoint.root {
        report.alert = Some(alert(
            "entries_do_not_match",
            format!(
                "the {} entries served do not hash to the root of the checkpoint of size {}",
                new.checkpoint.size, new.checkpoint.size
            ),
        ));
        return Ok(report);
    }
    for url in &watch.peers {
        match peers::compare(&http, url, &vkey, &new) {
            peers::Compared::View(v) => report.peers.push(v),
            peers::Compared::SplitView {
                view,
                note: theirs,
                detail,
            } => {
                report.peers.push(view);
                // previous.checkpoint: the view this monitor was shown; offending: the peer's.
                let evidence = evidence(state_path, Some(&note), &theirs);
                report.alert = Some(Alert {
                    kind: "split_view",
                    detail,
                    evidence,
                });
                return Ok(report);
            }
        }
    }
    if let Some(m) = mirror {
        m.checkpoint(&new)
            .map_err(|e| MonitorError::Mirror(e.to_string()))?;
    }
    st.checkpoint = Some(note.clone());
    st.frontier = frontier.hashes();
    save(state_path, &st)?;
    Ok(report)
}
