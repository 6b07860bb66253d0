//! Reading the global Merkle log out of a store: roots, inclusion and consistency proofs.
//! Each proof is one batched node read of O(log n) nodes (`core::merkle::nodes_for`),
//! never a walk over the log.

use crate::core::checkpoint::SignedCheckpoint;
use crate::core::ids::{EventHash, LogIndex};
use crate::core::merkle::{self, Frontier, NodeId, TreeHash};
use crate::core::proof::{ConsistencyProof, InclusionProof};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("log index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("no event with hash {0} in the log")]
    UnknownEvent(EventHash),
    #[error("no checkpoint was issued at tree size {0}")]
    NoCheckpoint(u64),
    #[error("no checkpoint has been issued yet")]
    NoCheckpointYet,
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
}

/// Reads nodes, failing as corruption when the store lacks one the tree must have.
fn read(store: &impl Store, ids: &[NodeId]) -> Result<Vec<(NodeId, TreeHash)>, StoreError> {
    let got = store.nodes(ids)?;
    ids.iter()
        .zip(got)
        .map(|(id, h)| {
            h.map(|h| (*id, h)).ok_or_else(|| StoreError::Corrupt {
                location: format!("tree node level {} index {}", id.level, id.index),
                detail: "missing".into(),
            })
        })
        .collect()
}

/// The right edge of the tree of `size` leaves.
pub fn frontier(store: &impl Store, size: u64) -> Result<Frontier, StoreError> {
    let ids = merkle::range_nodes(0, size);
    let hs: Vec<TreeHash> = read(store, &ids)?.into_iter().map(|(_, h)| h).collect();
    Ok(Frontier::from_nodes(size, &hs)
        .expect("invariant: one hash was read per node of range_nodes(0, size)"))
}

/// The root of the tree of `size` leaves (`size` at most the log length).
pub fn root_at(store: &impl Store, size: u64) -> Result<TreeHash, LogError> {
    let len = store.len()?;
    if size > len {
        return Err(LogError::IndexOutOfRange {
            index: size,
            size: len,
        });
    }
    Ok(frontier(store, size)?.root())
}

fn spans_to_hashes(
    store: &impl Store,
    spans: &[merkle::Span],
) -> Result<Vec<TreeHash>, StoreError> {
    let ids = merkle::nodes_for(spans);
    let read = read(store, &ids)?;
    Ok(merkle::assemble(spans, &read)
        .expect("invariant: every node of every span was read just above"))
}

/// Inclusion proof of log entry `index` in the tree of `size` leaves.
pub fn prove_inclusion(
    store: &impl Store,
    index: LogIndex,
    size: u64,
) -> Result<InclusionProof, LogError> {
    let len = store.len()?;
    let i = index.get();
    if i >= size || size > len {
        return Err(LogError::IndexOutOfRange {
            index: i,
            size: size.min(len),
        });
    }
    let leaf = read(store, &[NodeId::leaf(i)])?[0].1;
    let hashes = spans_to_hashes(store, &merkle::inclusion_spans(i, size))?;
    Ok(InclusionProof {
        index: i,
        tree_size: size,
        leaf_hash: leaf,
        hashes,
    })
}

/// Consistency proof from the tree of `old` leaves to the tree of `new` leaves.
pub fn prove_consistency(
    store: &impl Store,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, LogError> {
    let len = store.len()?;
    if old > new {
        return Err(LogError::SizesOutOfOrder { old, new });
    }
    if new > len {
        return Err(LogError::IndexOutOfRange {
            index: new,
            size: len,
        });
    }
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes: spans_to_hashes(store, &merkle::consistency_spans(old, new))?,
    })
}

/// The checkpoint at `size`, or the latest one.
pub fn checkpoint(store: &impl Store, size: Option<u64>) -> Result<SignedCheckpoint, LogError> {
    match size {
        Some(s) => store.checkpoint(s)?.ok_or(LogError::NoCheckpoint(s)),
        None => store.latest_checkpoint()?.ok_or(LogError::NoCheckpointYet),
    }
}

/// The first checkpoint whose tree contains log index `i`.
pub fn first_covering(
    store: &impl Store,
    i: LogIndex,
) -> Result<Option<SignedCheckpoint>, StoreError> {
    Ok(store.checkpoints(i.get() + 1, 1)?.into_iter().next())
}
