//! Reports signed by the ledger's log key (FORMAT.md §14): resolution reports today.
//!
//! The signed bytes are the report's JSON text exactly as carried in the `report` string,
//! so a verifier needs no canonicalisation: check
//! `ed25519(log key, "custody:v1:report" 0x00 ‖ UTF-8 bytes of report)`, then parse it.

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use super::event::SigBytes;
use super::ids::PublicKey;

const DOMAIN: &[u8] = b"custody:v1:report\0";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReport {
    /// The report, as JSON text.
    pub report: String,
    pub signature: SigBytes,
}

fn input(report: &str) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(report.as_bytes());
    m
}

impl SignedReport {
    /// Signs `report` (JSON text) with the log key.
    #[must_use]
    pub fn sign(key: &SigningKey, report: String) -> Self {
        let signature = SigBytes(key.sign(&input(&report)).to_bytes());
        Self { report, signature }
    }

    /// True if the log key signed exactly this text.
    #[must_use]
    pub fn verify(&self, log_key: &PublicKey) -> bool {
        log_key
            .verifying_key()
            .verify_strict(
                &input(&self.report),
                &ed25519_dalek::Signature::from_bytes(&self.signature.0),
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_the_text_breaks_the_signature() {
        let k = SigningKey::from_bytes(&[4; 32]);
        let pk = PublicKey::from_bytes(k.verifying_key().to_bytes()).expect("key");
        let r = SignedReport::sign(&k, r#"{"verdict":"clear"}"#.into());
        assert!(r.verify(&pk));
        let mut bad = r.clone();
        bad.report = r#"{"verdict":"clear" }"#.into();
        assert!(!bad.verify(&pk));
        let other =
            PublicKey::from_bytes(SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes())
                .expect("key");
        assert!(!r.verify(&other));
    }
}
