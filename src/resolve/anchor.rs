//! What `resolve --all` takes the log's events on.
//!
//! The ledger admits an event only as a [`crate::core::verify::VerifiedEvent`] (every
//! signature checked with `verify_strict` when it was submitted), and the log key signs
//! checkpoints over the leaves of what it admitted. So the events below the size of a
//! signed checkpoint need not have their signatures checked again to be the events the
//! ledger admitted: it is enough that their bytes still rebuild the checkpoint's root. That
//! costs two SHA-256 per event where a signature check costs ~40 µs per signer.
//!
//! By default ([`Signatures::Anchored`]) the resolver reads the latest checkpoint, checks its
//! signature under the ledger's log key, takes the events below its size as
//! [`LoggedEvent`](crate::core::verify::LoggedEvent)s (decoded and hashed, signatures not
//! checked) while it rebuilds the tree from their leaves, and verifies every signature of
//! the events past it. If the rebuilt root is not the checkpoint's, the whole resolution
//! fails: nothing judged from bytes the log did not commit to is reported. The report says
//! which events were anchored and how many signatures were checked ([`Admission`]).
//!
//! This trusts the holder of the log key not to have signed a checkpoint over events it did
//! not verify. `custody verify` trusts nothing of the kind: it checks every signature and
//! every checkpoint. [`Signatures::Every`] (`resolve --all --verify-signatures`) makes the
//! resolver do the same.

use serde::Serialize;

use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::merkle::{Frontier, TreeHash};
use crate::core::receipt::CheckpointRef;
use crate::store::{Store, StoreError};

/// How `resolve --all` admits the events it replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Signatures {
    /// Events below the latest signed checkpoint by the tree they rebuild; the rest by
    /// their signatures.
    #[default]
    Anchored,
    /// Every event by its signatures.
    Every,
}

/// What the events of a `resolve --all` were taken on (part of its report).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Admission {
    /// The checkpoint whose root the first `size` events rebuilt; absent when every
    /// event's signatures were checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchored_to: Option<CheckpointRef>,
    /// Events whose signatures this resolution checked (every event past the checkpoint).
    pub signatures_checked: u64,
    /// Events read.
    pub events: u64,
}

/// The tree being rebuilt under a signed checkpoint.
pub struct Anchor {
    checkpoint: SignedCheckpoint,
    frontier: Frontier,
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        location: "the log".into(),
        detail,
    }
}

impl Anchor {
    /// The latest checkpoint of `store`, its signature checked under `vkey`; `None` when
    /// there is none yet, or with [`Signatures::Every`].
    pub fn latest<S: Store>(
        store: &S,
        vkey: &VerifierKey,
        how: Signatures,
    ) -> Result<Option<Self>, StoreError> {
        if how == Signatures::Every {
            return Ok(None);
        }
        let Some(checkpoint) = store.latest_checkpoint()? else {
            return Ok(None);
        };
        checkpoint.verify(vkey).map_err(|e| {
            corrupt(format!(
                "the latest checkpoint (size {}) does not verify under the ledger's log key: \
                 {e}; run `custody verify`",
                checkpoint.checkpoint.size
            ))
        })?;
        Ok(Some(Self {
            checkpoint,
            frontier: Frontier::default(),
        }))
    }

    /// The events below this size are anchored.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.checkpoint.checkpoint.size
    }

    /// Appends the leaf hash of the next event (below [`Anchor::size`], in log order).
    pub fn push(&mut self, leaf: TreeHash) {
        debug_assert!(self.frontier.size() < self.size(), "only anchored leaves");
        self.frontier.push(leaf);
    }

    /// After every anchored leaf: the checkpoint, if the leaves rebuilt its root.
    pub fn finish(self) -> Result<CheckpointRef, StoreError> {
        let (size, want) = (self.size(), self.checkpoint.checkpoint.root);
        if self.frontier.size() != size {
            return Err(corrupt(format!(
                "the latest checkpoint is signed at size {size} but the log holds {} events: \
                 events were removed from its end; run `custody verify`",
                self.frontier.size()
            )));
        }
        let got = self.frontier.root();
        if got != want {
            return Err(corrupt(format!(
                "the log's first {size} events no longer rebuild the root of the checkpoint \
                 signed at that size (root {want}, rebuilt {got}): an event was changed after \
                 it was logged; run `custody verify` to find it"
            )));
        }
        Ok(CheckpointRef::of(&self.checkpoint))
    }
}
