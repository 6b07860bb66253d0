//! The log's side of witnessing: ask witnesses (C2SP tlog-witness) to cosign the latest
//! checkpoint, with a consistency proof from the size each one last cosigned, and keep the
//! cosigned note beside the ledger (sled tree `cosignatures`: `w` ‖ witness URL → last
//! cosigned size, `n` ‖ size → the note with every cosignature received).

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use crate::core::checkpoint::SignedCheckpoint;
use crate::log;
use crate::store::{SledStore, Store as _};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("storage: {0}")]
    Store(String),
    #[error("the ledger has no checkpoint yet")]
    NoCheckpoint,
}

fn store_err(e: impl ToString) -> CosignError {
    CosignError::Store(e.to_string())
}

/// What one witness answered.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub witness: String,
    pub cosigned: bool,
    /// The refusal or transport error, when not cosigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub size: u64,
    /// The checkpoint with every cosignature received so far for its size.
    pub note: String,
    pub answers: Vec<Answer>,
}

fn tree(store: &SledStore) -> Result<sled::Tree, CosignError> {
    store.db().open_tree("cosignatures").map_err(store_err)
}

/// The cosigned note of the checkpoint of `size`, if any witness cosigned it.
pub fn cosigned(store: &SledStore, size: u64) -> Result<Option<String>, CosignError> {
    let key = [b"n".as_slice(), &size.to_be_bytes()].concat();
    Ok(tree(store)?
        .get(key)
        .map_err(store_err)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// `note` with the witnesses' cosignatures, when they cosigned its checkpoint.
pub fn with_cosignatures(store: &SledStore, note: String) -> String {
    let size = SignedCheckpoint::parse(note.as_bytes()).map(|c| c.checkpoint.size);
    match size.ok().map(|s| cosigned(store, s)) {
        Some(Ok(Some(c))) => c,
        _ => note,
    }
}

enum Reply {
    Lines(String),
    OldSize(u64),
    Refused(String),
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Reply {
    let target = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    match agent.post(&target).send_string(body) {
        Ok(r) => Reply::Lines(r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(409, r)) if r.content_type() == "text/x.tlog.size" => {
            match r.into_string().unwrap_or_default().trim().parse() {
                Ok(n) => Reply::OldSize(n),
                Err(_) => Reply::Refused("409 with an unreadable size".into()),
            }
        }
        Err(ureq::Error::Status(code, r)) => Reply::Refused(format!(
            "HTTP {code}: {}",
            r.into_string().unwrap_or_default().trim()
        )),
        Err(e) => Reply::Refused(e.to_string()),
    }
}

/// Asks each witness to cosign the latest checkpoint; keeps what they return.
pub fn cosign_latest(store: &SledStore, witnesses: &[String]) -> Result<Outcome, CosignError> {
    let latest = store
        .latest_checkpoint()
        .map_err(store_err)?
        .ok_or(CosignError::NoCheckpoint)?;
    let size = latest.checkpoint.size;
    let mut cp = match cosigned(store, size)? {
        Some(n) => SignedCheckpoint::parse(n.as_bytes()).map_err(store_err)?,
        None => latest.clone(),
    };
    let t = tree(store)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut answers = Vec::new();
    for w in witnesses {
        let wkey = [b"w".as_slice(), w.as_bytes()].concat();
        let mut old = match t.get(&wkey).map_err(store_err)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let mut answer = Answer {
            witness: w.clone(),
            cosigned: false,
            error: None,
        };
        // One retry when the witness remembers another size than we do.
        for _ in 0..2 {
            let proof = if old > 0 && old < size {
                match log::prove_consistency(store, old, size) {
                    Ok(p) => p.hashes,
                    Err(e) => {
                        answer.error = Some(format!("consistency proof from {old}: {e}"));
                        break;
                    }
                }
            } else {
                vec![]
            };
            let mut body = format!("old {old}\n");
            for h in &proof {
                body.push_str(&B64.encode(h.as_bytes()));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(&latest.to_note());
            match post(&agent, w, &body) {
                Reply::Lines(lines) => {
                    let joined = format!("{}{lines}", cp.to_note());
                    match SignedCheckpoint::parse(joined.as_bytes()) {
                        Ok(mut with) => {
                            // One line per witness key: a newer cosignature replaces an older one.
                            let mut seen = std::collections::HashSet::new();
                            with.signatures.reverse();
                            with.signatures
                                .retain(|s| seen.insert((s.name.clone(), s.key_id)));
                            with.signatures.reverse();
                            cp = with;
                            answer.cosigned = true;
                            t.insert(&wkey, &size.to_be_bytes()).map_err(store_err)?;
                        }
                        Err(e) => answer.error = Some(format!("unreadable cosignature: {e}")),
                    }
                    break;
                }
                Reply::OldSize(n) if n != old && n <= size => old = n,
                Reply::OldSize(n) => {
                    answer.error = Some(format!(
                        "the witness has cosigned size {n}, beyond ours ({size})"
                    ));
                    break;
                }
                Reply::Refused(e) => {
                    answer.error = Some(e);
                    break;
                }
            }
        }
        answers.push(answer);
    }
    let note = cp.to_note();
    t.insert(
        [b"n".as_slice(), &size.to_be_bytes()].concat(),
        note.as_bytes(),
    )
    .map_err(store_err)?;
    t.flush().map_err(store_err)?;
    Ok(Outcome {
        size,
        note,
        answers,
    })
}
