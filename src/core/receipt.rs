//! The ledger's signed receipt for an accepted event (FORMAT.md §10): where the event sits
//! in the log, when it was integrated, and the checkpoint that first covers it, or the
//! time by which a covering checkpoint will have been issued.
//!
//! Receipts are signed in batches: the leaves of a small Merkle tree (RFC 9162 hashing)
//! are the receipt bodies, `SHA-256(0x00 || "custody:v1:receipt" 0x00 || JCS(body))`, and
//! the log key signs `"custody:v1:receipt-batch" 0x00 || size (8 bytes, big-endian) ||
//! root` once for the whole batch. Each receipt carries its position and inclusion path,
//! so it verifies on its own. One signature per batch of 512 instead of one per event
//! takes signing from 14.4 to 1.9 µs of CPU per event (BENCHMARKS.md, ninth round). A
//! batch of one has an empty path and its root is its leaf. The body names the ledger, so
//! a receipt of one ledger is worthless for another.

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use super::canonical;
use super::event::SigBytes;
use super::ids::{EventHash, LedgerName, LogIndex, PublicKey};
use super::merkle::{self, ProofError, TreeHash};
use super::values::Timestamp;

const RECEIPT_DOMAIN: &[u8] = b"custody:v1:receipt\0";
const BATCH_DOMAIN: &[u8] = b"custody:v1:receipt-batch\0";

/// Most receipts one batch signature covers: paths stay at most 16 hashes.
pub const MAX_BATCH: usize = 1 << 16;

/// A checkpoint named by its size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRef {
    pub size: u64,
    pub root_hash: TreeHash,
}

impl CheckpointRef {
    /// The reference to a signed checkpoint.
    #[must_use]
    pub fn of(c: &super::checkpoint::SignedCheckpoint) -> Self {
        Self {
            size: c.checkpoint.size,
            root_hash: c.checkpoint.root,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    pub ledger: LedgerName,
    pub index: LogIndex,
    pub event_hash: EventHash,
    pub integrated_at: Timestamp,
    /// The first checkpoint whose tree contains the event, when one existed at receipt time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
    /// Otherwise: the ledger promises a covering checkpoint no later than this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_by: Option<Timestamp>,
}

/// Where a receipt sits in the batch its signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchPosition {
    /// How many receipts the batch holds (at least one).
    pub size: u64,
    /// This receipt's leaf index in the batch.
    pub index: u64,
    /// The RFC 9162 §2.1.3.1 inclusion proof of this receipt's leaf in the batch tree,
    /// sibling hashes from the leaf up (empty in a batch of one).
    pub path: Vec<TreeHash>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub body: ReceiptBody,
    pub batch: BatchPosition,
    /// ed25519 signature of the log key over the batch's signing input.
    pub signature: SigBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("a receipt names either a checkpoint or a checkpoint_by time, exactly one")]
    Coverage,
    #[error("the receipt's checkpoint (size {size}) does not contain log index {index}")]
    NotCovered { size: u64, index: u64 },
    #[error("the receipt is for ledger {found}, not {expected}")]
    WrongLedger { expected: String, found: String },
    #[error(
        "the receipt's batch position (index {index} of {size}) does not fit its path: {reason}"
    )]
    BatchPath {
        index: u64,
        size: u64,
        reason: ProofError,
    },
    #[error("the receipt signature does not verify under the log key")]
    BadSignature,
}

/// The bytes whose leaf hash stands for a receipt body in its batch:
/// `"custody:v1:receipt" 0x00 || JCS(body)`.
#[must_use]
pub fn leaf_input(body: &ReceiptBody) -> Vec<u8> {
    let value = serde_json::to_value(body)
        .expect("invariant: receipt bodies serialize (string keys, integer numbers)");
    let jcs = canonical::to_vec(&value)
        .expect("invariant: receipt bodies hold only strings and integers below 2^53");
    let mut msg = RECEIPT_DOMAIN.to_vec();
    msg.extend_from_slice(&jcs);
    msg
}

/// A receipt body's leaf hash: `SHA-256(0x00 || leaf_input(body))`.
#[must_use]
pub fn leaf(body: &ReceiptBody) -> TreeHash {
    merkle::leaf_hash(&leaf_input(body))
}

/// The bytes the log key signs for a batch of `size` receipts with tree root `root`.
#[must_use]
pub fn batch_signing_input(size: u64, root: &TreeHash) -> Vec<u8> {
    let mut msg = BATCH_DOMAIN.to_vec();
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(root.as_bytes());
    msg
}

/// Signs `bodies` as one batch, given their [`leaf`] hashes (callers may hash them in
/// parallel). The receipts come back in the order of `bodies`.
///
/// # Panics
/// If `leaves` does not hold one hash per body, or the batch is empty or larger than
/// [`MAX_BATCH`]: the writer's callers build their batches.
#[must_use]
pub fn sign_batch(
    bodies: Vec<ReceiptBody>,
    leaves: &[TreeHash],
    key: &SigningKey,
) -> Vec<SignedReceipt> {
    assert_eq!(bodies.len(), leaves.len(), "invariant: one leaf per body");
    assert!(
        (1..=MAX_BATCH).contains(&bodies.len()),
        "invariant: batches hold 1 to MAX_BATCH receipts"
    );
    debug_assert!(
        bodies.iter().all(|b| b.check().is_ok()),
        "the writer builds well-formed bodies"
    );
    let (root, paths) = merkle::paths_in_memory(leaves);
    let size = bodies.len() as u64;
    let signature = SigBytes(key.sign(&batch_signing_input(size, &root)).to_bytes());
    bodies
        .into_iter()
        .zip(paths)
        .zip(0u64..)
        .map(|((body, path), index)| SignedReceipt {
            body,
            batch: BatchPosition { size, index, path },
            signature,
        })
        .collect()
}

impl ReceiptBody {
    fn check(&self) -> Result<(), ReceiptError> {
        match (&self.checkpoint, &self.checkpoint_by) {
            (Some(c), None) if c.size <= self.index.get() => Err(ReceiptError::NotCovered {
                size: c.size,
                index: self.index.get(),
            }),
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(ReceiptError::Coverage),
        }
    }

    /// Signs the body alone, as a batch of one.
    #[must_use]
    pub fn sign(self, key: &SigningKey) -> SignedReceipt {
        let l = leaf(&self);
        sign_batch(vec![self], &[l], key)
            .pop()
            .expect("invariant: a batch of one signs one receipt")
    }
}

impl SignedReceipt {
    /// Checks the shape, the ledger, the path to the batch root and the log key's
    /// signature over that root.
    pub fn verify(&self, ledger: &LedgerName, log_key: &PublicKey) -> Result<(), ReceiptError> {
        self.body.check()?;
        if &self.body.ledger != ledger {
            return Err(ReceiptError::WrongLedger {
                expected: ledger.to_string(),
                found: self.body.ledger.to_string(),
            });
        }
        let b = &self.batch;
        let root = merkle::root_from_inclusion(&leaf(&self.body), b.index, b.size, &b.path)
            .map_err(|reason| ReceiptError::BatchPath {
                index: b.index,
                size: b.size,
                reason,
            })?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        log_key
            .verifying_key()
            .verify_strict(&batch_signing_input(b.size, &root), &sig)
            .map_err(|_| ReceiptError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::leaf_hash;
    use proptest::prelude::*;

    fn keys() -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[3u8; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).expect("valid key");
        (sk, pk)
    }

    fn ledger() -> LedgerName {
        LedgerName::parse("r.example/l").expect("valid")
    }

    fn body(index: u64) -> ReceiptBody {
        ReceiptBody {
            ledger: ledger(),
            index: LogIndex::new(index),
            event_hash: EventHash::from_bytes([(index % 251) as u8; 32]),
            integrated_at: Timestamp::clamped(1_700_000_000),
            checkpoint: Some(CheckpointRef {
                size: index + 1,
                root_hash: leaf_hash(b"x"),
            }),
            checkpoint_by: None,
        }
    }

    fn batch(first: u64, n: u64) -> Vec<SignedReceipt> {
        let bodies: Vec<_> = (first..first + n).map(body).collect();
        let leaves: Vec<_> = bodies.iter().map(leaf).collect();
        sign_batch(bodies, &leaves, &keys().0)
    }

    #[test]
    fn receipts_verify_and_refuse_tampering() {
        let (sk, pk) = keys();
        let ledger = ledger();
        let r = body(4).sign(&sk);
        assert!(r.batch.path.is_empty() && r.batch.size == 1);
        r.verify(&ledger, &pk).expect("verifies");
        let mut moved = r.clone();
        moved.body.index = LogIndex::new(3);
        assert_eq!(moved.verify(&ledger, &pk), Err(ReceiptError::BadSignature));
        let mut uncovered = r.clone();
        uncovered.body.index = LogIndex::new(5);
        assert!(matches!(
            uncovered.verify(&ledger, &pk),
            Err(ReceiptError::NotCovered { .. })
        ));
        let mut both = r.clone();
        both.body.checkpoint_by = Some(Timestamp::clamped(0));
        assert_eq!(both.verify(&ledger, &pk), Err(ReceiptError::Coverage));
        let other = LedgerName::parse("r.example/other").expect("valid");
        assert!(matches!(
            r.verify(&other, &pk),
            Err(ReceiptError::WrongLedger { .. })
        ));
        let mut grown = r;
        grown.batch.size = 2;
        assert!(matches!(
            grown.verify(&ledger, &pk),
            Err(ReceiptError::BatchPath { .. })
        ));
    }

    #[test]
    fn a_batch_of_one_signs_its_leaf_as_the_root() {
        let (sk, pk) = keys();
        let b = body(0);
        let r = b.clone().sign(&sk);
        let sig = ed25519_dalek::Signature::from_bytes(&r.signature.0);
        pk.verifying_key()
            .verify_strict(&batch_signing_input(1, &leaf(&b)), &sig)
            .expect("the root of a batch of one is its leaf");
    }

    #[test]
    fn the_signature_binds_the_batch_size() {
        // In a batch of 3, leaf 0's path [l1, l2] also folds to the same root when read as
        // leaf 0 of a batch of 4: only the signed size tells the two apart.
        let (_, pk) = keys();
        let rs = batch(0, 3);
        let mut r = rs[0].clone();
        r.batch.size = 4;
        let root = merkle::root_from_inclusion(&leaf(&r.body), 0, 4, &r.batch.path);
        let same = merkle::root_from_inclusion(&leaf(&r.body), 0, 3, &rs[0].batch.path);
        assert_eq!(root, same, "the path fits both sizes");
        assert_eq!(r.verify(&ledger(), &pk), Err(ReceiptError::BadSignature));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every receipt of a batch verifies on its own, under one signature; moving it
        /// to another position, changing the batch size, or changing one hash of its path
        /// or one field of its body makes it fail.
        #[test]
        fn every_receipt_of_a_batch_verifies_alone_and_refuses_tampering(
            n in 1u64..100,
            pick in any::<u64>(),
            hash_pick in any::<usize>(),
        ) {
            let (_, pk) = keys();
            let rs = batch(10, n);
            prop_assert_eq!(rs.len() as u64, n);
            for r in &rs {
                prop_assert_eq!(r.verify(&ledger(), &pk), Ok(()));
                prop_assert_eq!(&r.signature, &rs[0].signature);
            }
            let r = &rs[(pick % n) as usize];
            let mut b = r.clone();
            b.body.event_hash = EventHash::from_bytes([255; 32]);
            prop_assert!(b.verify(&ledger(), &pk).is_err());
            if n > 1 {
                let mut m = r.clone();
                m.batch.index = (r.batch.index + 1) % n;
                prop_assert!(m.verify(&ledger(), &pk).is_err());
                let mut p = r.clone();
                let k = hash_pick % p.batch.path.len();
                p.batch.path[k] = leaf_hash(b"not a sibling");
                prop_assert!(p.verify(&ledger(), &pk).is_err());
                let mut short = r.clone();
                short.batch.path.pop();
                let refused = matches!(
                    short.verify(&ledger(), &pk),
                    Err(ReceiptError::BatchPath { .. })
                );
                prop_assert!(refused, "a path one hash short is refused as such");
            }
            let mut s = r.clone();
            s.batch.size = n + 1;
            prop_assert!(s.verify(&ledger(), &pk).is_err());
        }
    }
}
