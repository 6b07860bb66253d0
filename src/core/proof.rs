//! Inclusion and consistency proofs as they travel (FORMAT.md §11), with their
//! verification against checkpoints.

use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::merkle::{self, ProofError, TreeHash};

/// Proof that the leaf at `index` is in the tree of `tree_size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    /// The leaf hash (FORMAT.md §8); recompute it from the entry to bind the proof to it.
    pub leaf_hash: TreeHash,
    /// Sibling hashes, from the leaf up (RFC 9162 §2.1.3.1).
    pub hashes: Vec<TreeHash>,
}

impl InclusionProof {
    /// Verifies the proof against a root of `tree_size` leaves.
    pub fn verify(&self, root: &TreeHash) -> Result<(), ProofError> {
        merkle::verify_inclusion(
            &self.leaf_hash,
            self.index,
            self.tree_size,
            &self.hashes,
            root,
        )
    }

    /// Verifies the proof against a checkpoint of the same size.
    pub fn verify_against(&self, cp: &Checkpoint) -> Result<(), ProofError> {
        if cp.size != self.tree_size {
            return Err(ProofError::WrongLength);
        }
        self.verify(&cp.root)
    }
}

/// Proof that the tree of `new_size` leaves extends the tree of `old_size` leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    /// RFC 9162 §2.1.4.1 proof hashes.
    pub hashes: Vec<TreeHash>,
}

impl ConsistencyProof {
    pub fn verify(&self, old_root: &TreeHash, new_root: &TreeHash) -> Result<(), ProofError> {
        merkle::verify_consistency(
            self.old_size,
            self.new_size,
            old_root,
            new_root,
            &self.hashes,
        )
    }

    /// Verifies the proof between two checkpoints of the sizes it names.
    pub fn verify_between(&self, old: &Checkpoint, new: &Checkpoint) -> Result<(), ProofError> {
        if old.size != self.old_size || new.size != self.new_size {
            return Err(ProofError::WrongLength);
        }
        self.verify(&old.root, &new.root)
    }
}
