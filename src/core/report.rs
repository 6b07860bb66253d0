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

    /// The signature [`SignedReport::sign`] makes, over a report too large to hold in memory:
    /// `feed` hands the report's text to the hasher it is given, in pieces, and must hand the
    /// same bytes each time it is called (it is called twice, as Ed25519 hashes the message
    /// twice). Its error is returned as is.
    pub fn sign_streamed<E>(
        key: &SigningKey,
        feed: impl Fn(&mut dyn FnMut(&[u8])) -> Result<(), E>,
    ) -> Result<SigBytes, E> {
        use sha2::Digest as _;
        let failed = std::cell::RefCell::new(None);
        let esk = ed25519_dalek::hazmat::ExpandedSecretKey::from(key.as_bytes());
        let update = |h: &mut sha2::Sha512| {
            h.update(DOMAIN);
            if let Err(e) = feed(&mut |piece| h.update(piece)) {
                *failed.borrow_mut() = Some(e);
                return Err(ed25519_dalek::SignatureError::new());
            }
            Ok(())
        };
        let sig = ed25519_dalek::hazmat::raw_sign_byupdate::<sha2::Sha512, _>(
            &esk,
            update,
            &key.verifying_key(),
        );
        if let Some(e) = failed.into_inner() {
            return Err(e);
        }
        Ok(SigBytes(
            sig.expect("invariant: signing fails only when feeding the text failed")
                .to_bytes(),
        ))
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

    proptest::proptest! {
        /// Signing a text fed in pieces gives the very signature of signing it whole.
        #[test]
        fn a_streamed_signature_is_the_signature_of_the_whole_text(
            text in ".{0,300}",
            cut in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let k = SigningKey::from_bytes(&[9; 32]);
            let whole = SignedReport::sign(&k, text.clone());
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cut.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let streamed = SignedReport::sign_streamed(&k, |put: &mut dyn FnMut(&[u8])| {
                let mut at = 0;
                for &c in &cuts {
                    put(&bytes[at..c]);
                    at = c;
                }
                put(&bytes[at..]);
                Ok::<(), std::convert::Infallible>(())
            });
            proptest::prop_assert_eq!(streamed, Ok(whole.signature));
        }
    }

    #[test]
    fn a_failure_to_feed_the_text_is_returned() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let r = SignedReport::sign_streamed(&k, |_: &mut dyn FnMut(&[u8])| Err("unreadable"));
        assert_eq!(r, Err("unreadable"));
    }
}
