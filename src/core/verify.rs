//! Decoding, signing and signature verification (FORMAT.md §3-§5).
//!
//! Byte layouts:
//! - signing input: `"custody:v1:sign\0" || ledger name || "\0" || JCS(body)`
//! - event hash:    `SHA-256("custody:v1:event\0" || ledger name || "\0" || JCS(envelope))`
//!
//! `SignedEvent::decode` turns bytes into a shape-checked envelope in normal form;
//! `SignedEvent::verify` checks every signature with `verify_strict` and is the only way
//! to obtain a [`VerifiedEvent`].

use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical;
use super::error::{DecodeError, SignatureError};
use super::event::{Body, Envelope, SigBytes, Signature};
use super::ids::{EventHash, LedgerName, PublicKey};
use super::shape;

/// Largest accepted encoded event.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Domain prefix of the signing input.
pub const SIGN_DOMAIN: &[u8] = b"custody:v1:sign\0";
/// Domain prefix of the event hash.
pub const EVENT_DOMAIN: &[u8] = b"custody:v1:event\0";

/// An envelope that decoded, has a valid shape and is in normal form; signatures unchecked.
#[derive(Clone, Debug)]
pub struct SignedEvent {
    envelope: Envelope,
    /// The envelope as a JSON value, when decoding already built it (verifying needs it).
    value: Option<Value>,
}

/// An event whose every signature verified for one ledger. Appending requires this type.
#[derive(Clone, Debug)]
pub struct VerifiedEvent {
    envelope: Envelope,
    canonical: Vec<u8>,
    hash: EventHash,
}

/// The signing input of a body for a ledger.
pub fn signing_input(ledger: &LedgerName, body: &Body) -> Result<Vec<u8>, SignatureError> {
    let value = serde_json::to_value(body).map_err(|e| SignatureError::Canonical(e.to_string()))?;
    signing_input_of(ledger, &value)
}

/// The signing input of a body already turned into a JSON value.
fn signing_input_of(ledger: &LedgerName, body: &Value) -> Result<Vec<u8>, SignatureError> {
    let jcs = canonical::to_vec(body).map_err(|e| SignatureError::Canonical(e.to_string()))?;
    let mut msg = Vec::with_capacity(SIGN_DOMAIN.len() + ledger.as_str().len() + 1 + jcs.len());
    msg.extend_from_slice(SIGN_DOMAIN);
    msg.extend_from_slice(ledger.as_str().as_bytes());
    msg.push(0);
    msg.extend_from_slice(&jcs);
    Ok(msg)
}

/// The event hash of canonical envelope bytes.
#[must_use]
pub fn event_hash(ledger: &LedgerName, canonical_envelope: &[u8]) -> EventHash {
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    h.update(ledger.as_str().as_bytes());
    h.update([0u8]);
    h.update(canonical_envelope);
    EventHash::from_bytes(h.finalize().into())
}

impl SignedEvent {
    /// Parses wire bytes: size limit, strict JSON (no unknown or duplicate fields), shape
    /// rules, normal form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        let json_err = |e: serde_json::Error| DecodeError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        // Typed first: serde's derive refuses duplicate and unknown fields.
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(json_err)?;
        let raw: Value = serde_json::from_slice(bytes).map_err(json_err)?;
        let normal = serde_json::to_value(&envelope).map_err(json_err)?;
        if normal != raw {
            return Err(DecodeError::NotNormalForm {
                detail: first_difference(&raw, &normal, ""),
            });
        }
        shape::check(&envelope)?;
        Ok(Self {
            envelope,
            value: Some(normal),
        })
    }

    /// Shape-checks an envelope built in memory.
    pub fn from_envelope(envelope: Envelope) -> Result<Self, DecodeError> {
        shape::check(&envelope)?;
        Ok(Self {
            envelope,
            value: None,
        })
    }

    #[must_use]
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Checks every signature with `verify_strict` over the signing input for `ledger`.
    pub fn verify(self, ledger: &LedgerName) -> Result<VerifiedEvent, SignatureError> {
        // One JSON value of the envelope and one canonical encoding serve both the signing
        // input and the canonical bytes: an envelope has exactly the members `body` and
        // `signatures`, in that (UTF-16) order, so its JCS is `{"body":` ‖ JCS(body) ‖
        // `,"signatures":` ‖ JCS(signatures) ‖ `}` and the body's JCS is a slice of it.
        let value = match self.value {
            Some(v) => v,
            None => serde_json::to_value(&self.envelope)
                .map_err(|e| SignatureError::Canonical(e.to_string()))?,
        };
        let member = |name: &str| {
            value
                .get(name)
                .ok_or_else(|| SignatureError::Canonical(format!("envelope without {name}")))
        };
        let jcs = |e: canonical::CanonicalError| SignatureError::Canonical(e.to_string());
        let mut canonical = Vec::with_capacity(512);
        canonical.extend_from_slice(b"{\"body\":");
        let body_start = canonical.len();
        canonical::write_value(member("body")?, &mut canonical).map_err(jcs)?;
        let body_end = canonical.len();
        canonical.extend_from_slice(b",\"signatures\":");
        canonical::write_value(member("signatures")?, &mut canonical).map_err(jcs)?;
        canonical.push(b'}');
        let body = &canonical[body_start..body_end];
        let mut msg =
            Vec::with_capacity(SIGN_DOMAIN.len() + ledger.as_str().len() + 1 + body.len());
        msg.extend_from_slice(SIGN_DOMAIN);
        msg.extend_from_slice(ledger.as_str().as_bytes());
        msg.push(0);
        msg.extend_from_slice(body);
        for (index, s) in self.envelope.signatures.iter().enumerate() {
            let sig = ed25519_dalek::Signature::from_bytes(&s.sig.0);
            if s.key.verifying_key().verify_strict(&msg, &sig).is_err() {
                return Err(SignatureError::Invalid {
                    index,
                    key: s.key,
                    ledger: ledger.to_string(),
                });
            }
        }
        debug_assert_eq!(
            canonical::to_vec(&value).ok().as_deref(),
            Some(canonical.as_slice()),
            "invariant: an envelope's JCS is body then signatures"
        );
        let hash = event_hash(ledger, &canonical);
        Ok(VerifiedEvent {
            envelope: self.envelope,
            canonical,
            hash,
        })
    }
}

impl VerifiedEvent {
    #[must_use]
    pub fn hash(&self) -> EventHash {
        self.hash
    }
    #[must_use]
    pub fn body(&self) -> &Body {
        &self.envelope.body
    }
    #[must_use]
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    /// JCS bytes of the whole envelope: what the log stores and the event hash covers.
    #[must_use]
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }
    /// The envelope, without the canonical bytes.
    #[must_use]
    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }
    /// The keys that signed, in envelope order.
    pub fn signers(&self) -> impl Iterator<Item = &PublicKey> {
        self.envelope.signatures.iter().map(|s| &s.key)
    }
}

/// Signs a body with each key and returns the envelope with signatures in canonical order.
pub fn sign(
    ledger: &LedgerName,
    body: Body,
    keys: &[&SigningKey],
) -> Result<Envelope, SignatureError> {
    let msg = signing_input(ledger, &body)?;
    let mut signatures: Vec<Signature> = keys
        .iter()
        .map(|k| {
            let key = PublicKey::from_bytes(k.verifying_key().to_bytes())
                .map_err(|e| SignatureError::Canonical(e.to_string()))?;
            Ok(Signature {
                key,
                sig: SigBytes(k.sign(&msg).to_bytes()),
            })
        })
        .collect::<Result<_, SignatureError>>()?;
    signatures.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    signatures.dedup_by(|a, b| a.key == b.key);
    Ok(Envelope { body, signatures })
}

/// Describes where two JSON values first differ, as a JSON pointer.
fn first_difference(raw: &Value, normal: &Value, path: &str) -> String {
    match (raw, normal) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    None => {
                        return format!("field {path}/{k} must be omitted when empty or absent")
                    }
                    Some(w) if v != w => return first_difference(v, w, &format!("{path}/{k}")),
                    _ => {}
                }
            }
            format!("object {path} differs")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                if v != w {
                    return first_difference(v, w, &format!("{path}/{i}"));
                }
            }
            format!("array {path} differs")
        }
        _ => format!("field {path} must be written as {normal}"),
    }
}

/// Why stored bytes are not a valid event ([`verify_stored`]).
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the bytes are not the canonical (JCS) form of the event")]
    NotCanonical,
}

/// Decodes and verifies bytes that must be the canonical (JCS) form of a signed event, as
/// the log stores them: the same acceptance as [`SignedEvent::decode`] then
/// [`SignedEvent::verify`] then comparing the canonical bytes with `bytes`, in fewer passes.
/// Bytes equal to the canonical serialization of the typed envelope are in normal form by
/// construction, so the separate normal-form comparison of `decode` is not needed.
pub fn verify_stored(bytes: &[u8], ledger: &LedgerName) -> Result<VerifiedEvent, StoredError> {
    let ev = SignedEvent::from_envelope(envelope_of(bytes)?)?.verify(ledger)?;
    if ev.canonical_bytes() != bytes {
        return Err(StoredError::NotCanonical);
    }
    Ok(ev)
}

/// The envelope in `bytes` (size limit, strict JSON); nothing else is checked.
pub(super) fn envelope_of(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_EVENT_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

impl VerifiedEvent {
    /// Bytes read again whose hash is that of an event verified earlier in this process
    /// ([`super::hashes::VerifiedHashes::again`]): the event hash covers the ledger name and
    /// exactly those bytes, signatures included, so they are that event.
    pub(super) fn readmitted(envelope: Envelope, canonical: Vec<u8>, hash: EventHash) -> Self {
        Self {
            envelope,
            canonical,
            hash,
        }
    }
}

pub use super::hashes::{AgainError, LoggedEvent, LoggedHashes, VerifiedHashes};
