//! Evidence bundles (FORMAT.md §15): one unit's chain with everything needed to check it
//! offline against a signed checkpoint: the events of every party involved, an inclusion
//! proof for each event, and the checkpoint. Verification is pure: it needs only the
//! bundle and the log's verifier key.
//!
//! What a verified bundle proves: every event in it is in the log the checkpoint commits
//! to, at the stated index and ledger time; every signature verifies; replayed in log order,
//! the party events and the unit's chain satisfy every chain and authorization rule (key
//! validity at the time of signing, roles, holder, recipient); the unit's chain is linked
//! from its register event to its last event. What it cannot prove without a verifiable map
//! of heads: that the bundle holds the unit's latest event or a party's latest key event.
//! A missing earlier party event (an omitted rotation) makes a later signature unauthorized,
//! and is caught.

use serde::{Deserialize, Serialize};

use super::checkpoint::{CheckpointError, SignedCheckpoint, VerifierKey};
use super::error::{DecodeError, RuleError, SignatureError};
use super::event::{Body, Envelope};
use super::ids::{EventHash, LedgerName, LogIndex};
use super::merkle::{self, ProofError, TreeHash};
use super::rules::{self, Context};
use super::state::{MemState, StateRead, UnitRecord};
use super::unit::UnitId;
use super::values::Timestamp;
use super::verify::SignedEvent;

/// The format tag of this version.
pub const FORMAT: &str = "custody-bundle/1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub ledger: LedgerName,
    pub unit: UnitId,
    /// The signed checkpoint (C2SP signed note text) every proof is against.
    pub checkpoint: String,
    /// Log indexes of the unit's chain, oldest first; each is in `entries`.
    pub chain: Vec<u64>,
    /// Every event of the bundle, in strictly increasing log index.
    pub entries: Vec<Entry>,
    /// Optionally, the unit's resolution report signed by the log key (FORMAT.md §14)
    /// and the list entries its findings rely on, as the lists published them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    pub signed: super::report::SignedReport,
    pub list_entries: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub index: u64,
    pub integrated_at: Timestamp,
    pub event: Envelope,
    /// Inclusion proof of the entry's leaf in the checkpoint's tree (RFC 9162 §2.1.3).
    pub proof: Vec<TreeHash>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle format {0:?}: expected {FORMAT}")]
    Format(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("entry {position}: log index {index} is not after the previous entry's")]
    Order { position: usize, index: u64 },
    #[error("entry at log index {index}: beyond the checkpoint's tree size {size}")]
    BeyondCheckpoint { index: u64, size: u64 },
    #[error("entry at log index {index}: {source}")]
    Decode { index: u64, source: DecodeError },
    #[error("entry at log index {index}: {source}")]
    Signature { index: u64, source: SignatureError },
    #[error("entry at log index {index}: inclusion proof does not verify against the checkpoint: {source}")]
    Proof { index: u64, source: ProofError },
    #[error("entry at log index {index}: refused by the ledger rules: {source}")]
    Rule { index: u64, source: RuleError },
    #[error("the unit's chain: {0}")]
    Chain(String),
    #[error("resolution report: {0}")]
    Report(String),
}

/// What a verified bundle establishes.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    pub ledger: LedgerName,
    pub unit: UnitId,
    pub tree_size: u64,
    pub root_hash: TreeHash,
    pub entries: usize,
    /// The unit's chain: log index, event hash, kind, the event's own time, ledger time.
    pub chain: Vec<ChainStep>,
    /// The unit as the replay leaves it (holder, pending transfer, retirement).
    pub state: UnitRecord,
    /// With a resolution report: its verdict (the report's signature and subject checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainStep {
    pub index: u64,
    pub hash: EventHash,
    pub kind: &'static str,
    pub at: Timestamp,
    pub integrated_at: Timestamp,
}

/// Verifies a bundle against the log's verifier key. The first failure is returned,
/// naming the entry and the check.
pub fn verify(b: &Bundle, key: &VerifierKey) -> Result<Verified, BundleError> {
    if b.format != FORMAT {
        return Err(BundleError::Format(b.format.clone()));
    }
    let cp = SignedCheckpoint::parse(b.checkpoint.as_bytes())?;
    cp.verify(key)?;
    let (size, root) = (cp.checkpoint.size, cp.checkpoint.root);
    if cp.checkpoint.origin != b.ledger {
        return Err(CheckpointError::WrongOrigin {
            expected: b.ledger.to_string(),
            found: cp.checkpoint.origin.to_string(),
        }
        .into());
    }
    for (position, w) in b.entries.windows(2).enumerate() {
        if w[1].index <= w[0].index {
            return Err(BundleError::Order {
                position: position + 1,
                index: w[1].index,
            });
        }
    }
    if let Some(e) = b.entries.iter().find(|e| e.index >= size) {
        return Err(BundleError::BeyondCheckpoint {
            index: e.index,
            size,
        });
    }
    let mut state = MemState::default();
    let mut hashes = std::collections::HashMap::new();
    for e in &b.entries {
        let index = e.index;
        let ev = SignedEvent::from_envelope(e.event.clone())
            .map_err(|source| BundleError::Decode { index, source })?
            .verify(&b.ledger)
            .map_err(|source| BundleError::Signature { index, source })?;
        let leaf = merkle::entry_leaf_hash(e.integrated_at, ev.canonical_bytes());
        merkle::verify_inclusion(&leaf, index, size, &e.proof, &root)
            .map_err(|source| BundleError::Proof { index, source })?;
        let ctx = Context {
            index: LogIndex::new(index),
            now: e.integrated_at,
        };
        let delta = if ev.body().units().is_empty() {
            rules::apply(&state, &ev, ctx)
        } else {
            rules::apply_for_unit(&state, &ev, ctx, &b.unit)
        }
        .map_err(|source| BundleError::Rule { index, source })?;
        state.apply(LogIndex::new(index), &delta);
        hashes.insert(
            index,
            (ev.hash(), ev.body().kind(), ev.body().at(), e.integrated_at),
        );
    }
    // The chain: listed, linked, and every entry that names the unit is in it.
    let names_unit = |e: &Entry| e.event.body.units().contains(&&b.unit);
    let in_chain: Vec<u64> = b
        .entries
        .iter()
        .filter(|e| names_unit(e))
        .map(|e| e.index)
        .collect();
    if in_chain != b.chain {
        return Err(BundleError::Chain(format!(
            "the entries naming the unit are at {in_chain:?}, the bundle lists {:?}",
            b.chain
        )));
    }
    let Some(&first) = b.chain.first() else {
        return Err(BundleError::Chain(
            "the bundle lists no event of the unit".into(),
        ));
    };
    let register = b.entries.iter().find(|e| e.index == first);
    if !matches!(register.map(|e| &e.event.body), Some(Body::Register(_))) {
        return Err(BundleError::Chain(format!(
            "the first event of the chain (log index {first}) is not the unit's register event"
        )));
    }
    let rec = state
        .unit(&b.unit)
        .cloned()
        .ok_or_else(|| BundleError::Chain("the replay did not register the unit".into()))?;
    let chain: Vec<ChainStep> = b
        .chain
        .iter()
        .filter_map(|i| {
            hashes
                .get(i)
                .map(|&(hash, kind, at, integrated_at)| ChainStep {
                    index: *i,
                    hash,
                    kind,
                    at,
                    integrated_at,
                })
        })
        .collect();
    if chain.last().map(|s| s.hash) != Some(rec.head) {
        return Err(BundleError::Chain(
            "the replayed unit's head is not the last event of the listed chain".into(),
        ));
    }
    let verdict = match &b.resolution {
        None => None,
        Some(r) => Some(check_report(b, r, key, size, &root)?),
    };
    Ok(Verified {
        verdict,
        ledger: b.ledger.clone(),
        unit: b.unit.clone(),
        tree_size: size,
        root_hash: root,
        entries: b.entries.len(),
        chain,
        state: rec,
    })
}

/// The report is signed by the log key, is about this unit of this ledger, and was computed
/// at a checkpoint of this log no larger than the bundle's (the same root if the same size).
fn check_report(
    b: &Bundle,
    r: &Resolution,
    key: &VerifierKey,
    size: u64,
    root: &TreeHash,
) -> Result<String, BundleError> {
    let bad = |s: String| BundleError::Report(s);
    if !r.signed.verify(&key.key) {
        return Err(bad("its signature does not verify under the log key".into()));
    }
    let v: serde_json::Value =
        serde_json::from_str(&r.signed.report).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v["ledger"].as_str() != Some(b.ledger.as_str()) {
        return Err(bad("it is about another ledger".into()));
    }
    if v["resolution"]["unit"].as_str() != Some(b.unit.as_str()) {
        return Err(bad("it is about another unit".into()));
    }
    let at = v["checkpoint"]["size"]
        .as_u64()
        .ok_or_else(|| bad("it names no checkpoint".into()))?;
    let same_root = v["checkpoint"]["root_hash"].as_str() == Some(root.to_string().as_str());
    if at > size || (at == size && !same_root) {
        return Err(bad(format!(
            "its checkpoint (size {at}) is not this bundle's log at or before size {size}"
        )));
    }
    v["resolution"]["verdict"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| bad("it holds no verdict".into()))
}
