//! The ledger's signed receipt for an accepted event (FORMAT.md §10): where the event sits
//! in the log, when it was integrated, and the checkpoint that first covers it, or the
//! time by which a covering checkpoint will have been issued.
//!
//! Signing input: `"custody:v1:receipt" 0x00 || JCS(body)`, signed with the log key. The
//! body names the ledger, so a receipt of one ledger is worthless for another.

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use super::canonical;
use super::event::SigBytes;
use super::ids::{EventHash, LedgerName, LogIndex, PublicKey};
use super::merkle::TreeHash;
use super::values::Timestamp;

const RECEIPT_DOMAIN: &[u8] = b"custody:v1:receipt\0";

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub body: ReceiptBody,
    /// ed25519 signature of the log key over the signing input.
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
    #[error("the receipt signature does not verify under the log key")]
    BadSignature,
}

/// The bytes the log key signs for a receipt body.
#[must_use]
pub fn signing_input(body: &ReceiptBody) -> Vec<u8> {
    let value = serde_json::to_value(body)
        .expect("invariant: receipt bodies serialize (string keys, integer numbers)");
    let jcs = canonical::to_vec(&value)
        .expect("invariant: receipt bodies hold only strings and integers below 2^53");
    let mut msg = RECEIPT_DOMAIN.to_vec();
    msg.extend_from_slice(&jcs);
    msg
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

    /// Signs the body with the log key.
    #[must_use]
    pub fn sign(self, key: &SigningKey) -> SignedReceipt {
        debug_assert!(self.check().is_ok(), "the writer builds well-formed bodies");
        let signature = SigBytes(key.sign(&signing_input(&self)).to_bytes());
        SignedReceipt {
            body: self,
            signature,
        }
    }
}

impl SignedReceipt {
    /// Checks the shape, the ledger and the log key's signature.
    pub fn verify(&self, ledger: &LedgerName, log_key: &PublicKey) -> Result<(), ReceiptError> {
        self.body.check()?;
        if &self.body.ledger != ledger {
            return Err(ReceiptError::WrongLedger {
                expected: ledger.to_string(),
                found: self.body.ledger.to_string(),
            });
        }
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        log_key
            .verifying_key()
            .verify_strict(&signing_input(&self.body), &sig)
            .map_err(|_| ReceiptError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::leaf_hash;

    #[test]
    fn receipts_verify_and_refuse_tampering() {
        let sk = SigningKey::from_bytes(&[3u8; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).expect("valid key");
        let ledger = LedgerName::parse("r.example/l").expect("valid");
        let body = ReceiptBody {
            ledger: ledger.clone(),
            index: LogIndex::new(4),
            event_hash: EventHash::from_bytes([1; 32]),
            integrated_at: Timestamp::clamped(1_700_000_000),
            checkpoint: Some(CheckpointRef {
                size: 5,
                root_hash: leaf_hash(b"x"),
            }),
            checkpoint_by: None,
        };
        let r = body.clone().sign(&sk);
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
        let mut both = r;
        both.body.checkpoint_by = Some(Timestamp::clamped(0));
        assert_eq!(both.verify(&ledger, &pk), Err(ReceiptError::Coverage));
    }
}
