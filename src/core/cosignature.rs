//! Witness cosignatures (C2SP tlog-cosignature, Ed25519 `cosignature/v1`) and the witness
//! policies verifiers apply: a checkpoint counts as witnessed when at least `quorum` of the
//! named witnesses cosigned it.
//!
//! A cosignature is a note signature line `— <name> base64(key id ‖ timestamp ‖ signature)`
//! where the key id is `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]`, the timestamp is a
//! big-endian u64 of POSIX seconds, and the signature is Ed25519 over
//! `"cosignature/v1\n" ‖ "time " ‖ decimal timestamp ‖ "\n" ‖ checkpoint text`.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::checkpoint::{NoteSignature, SignedCheckpoint};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A witness: its key name and Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub key: VerifyingKey,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    #[error("witness key {0:?}: expected NAME+KEYID+BASE64(0x04 ‖ 32-byte Ed25519 key)")]
    BadKey(String),
    #[error("witness policy: {0}")]
    BadPolicy(String),
    #[error(
        "{found} of the required {quorum} witnesses cosigned the checkpoint (valid: {names:?})"
    )]
    Quorum {
        quorum: usize,
        found: usize,
        names: Vec<String>,
    },
}

impl WitnessKey {
    /// `SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[:4]`.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(b"\n\x04");
        h.update(self.key.as_bytes());
        let d = h.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The C2SP verifier key string: `name+keyid(hex)+base64(0x04 ‖ key)`.
    #[must_use]
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![0x04];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), B64.encode(raw))
    }

    pub fn parse(s: &str) -> Result<Self, CosignatureError> {
        let bad = || CosignatureError::BadKey(s.to_owned());
        let mut parts = s.trim().splitn(3, '+');
        let (name, id, key) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(i), Some(k)) if !n.is_empty() => (n, i, k),
            _ => return Err(bad()),
        };
        let raw = B64.decode(key).map_err(|_| bad())?;
        let (&alg, key) = raw.split_first().ok_or_else(bad)?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
        let wk = Self {
            name: name.to_owned(),
            key: VerifyingKey::from_bytes(&key).map_err(|_| bad())?,
        };
        if alg != 0x04 || u32::from_str_radix(id, 16).ok() != Some(wk.key_id()) || id.len() != 8 {
            return Err(bad());
        }
        Ok(wk)
    }

    /// Whether `sig` is this witness's valid cosignature of `text`; its timestamp if so.
    #[must_use]
    pub fn verify(&self, text: &str, sig: &NoteSignature) -> Option<u64> {
        if sig.name != self.name || sig.key_id != self.key_id() || sig.sig.len() != 72 {
            return None;
        }
        let ts = u64::from_be_bytes(sig.sig[..8].try_into().ok()?);
        let s = Signature::from_slice(&sig.sig[8..]).ok()?;
        self.key
            .verify_strict(&message(text, ts), &s)
            .ok()
            .map(|()| ts)
    }
}

fn message(text: &str, ts: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {ts}\n{text}").into_bytes()
}

/// This witness's cosignature of a checkpoint text at `timestamp`, as a note signature.
#[must_use]
pub fn cosign(key: &SigningKey, name: &str, text: &str, timestamp: u64) -> NoteSignature {
    let wk = WitnessKey {
        name: name.to_owned(),
        key: key.verifying_key(),
    };
    let mut sig = timestamp.to_be_bytes().to_vec();
    sig.extend_from_slice(&key.sign(&message(text, timestamp)).to_bytes());
    NoteSignature {
        name: name.to_owned(),
        key_id: wk.key_id(),
        sig,
    }
}

/// The witnesses a verifier trusts and how many of them must have cosigned.
/// On disk (JSON): `{"quorum": 2, "witnesses": ["name+keyid+key", …]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub quorum: usize,
    pub witnesses: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub quorum: usize,
    pub witnesses: Vec<WitnessKey>,
}

impl Policy {
    pub fn from_file(f: &PolicyFile) -> Result<Self, CosignatureError> {
        let witnesses = f
            .witnesses
            .iter()
            .map(|w| WitnessKey::parse(w))
            .collect::<Result<Vec<_>, _>>()?;
        if f.quorum == 0 || f.quorum > witnesses.len() {
            return Err(CosignatureError::BadPolicy(format!(
                "quorum {} with {} witnesses",
                f.quorum,
                witnesses.len()
            )));
        }
        Ok(Self {
            quorum: f.quorum,
            witnesses,
        })
    }

    /// The names of the policy's witnesses that validly cosigned `cp`, if they reach the
    /// quorum. Signatures of unknown keys are ignored.
    pub fn check(&self, cp: &SignedCheckpoint) -> Result<Vec<String>, CosignatureError> {
        let names: Vec<String> = self
            .witnesses
            .iter()
            .filter(|w| {
                cp.signatures
                    .iter()
                    .any(|s| w.verify(cp.text(), s).is_some())
            })
            .map(|w| w.name.clone())
            .collect();
        if names.len() < self.quorum {
            return Err(CosignatureError::Quorum {
                quorum: self.quorum,
                found: names.len(),
                names,
            });
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_verify_and_quorum() {
        let note = "example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/log AAAAAAAAAA==\n";
        let mut cp = SignedCheckpoint::parse(note.as_bytes()).expect("note");
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let k2 = SigningKey::from_bytes(&[2; 32]);
        let w1 = WitnessKey {
            name: "w1.example".into(),
            key: k1.verifying_key(),
        };
        let w2 = WitnessKey {
            name: "w2.example".into(),
            key: k2.verifying_key(),
        };
        assert_eq!(WitnessKey::parse(&w1.to_vkey()).expect("vkey"), w1);
        let s = cosign(&k1, "w1.example", cp.text(), 1_700_000_000);
        assert_eq!(w1.verify(cp.text(), &s), Some(1_700_000_000));
        assert_eq!(w2.verify(cp.text(), &s), None, "another witness's key");
        cp.signatures.push(s);
        // The note round-trips with the cosignature line.
        let again = SignedCheckpoint::parse(cp.to_note().as_bytes()).expect("reparse");
        let policy = |q| Policy {
            quorum: q,
            witnesses: vec![w1.clone(), w2.clone()],
        };
        assert_eq!(policy(1).check(&again), Ok(vec!["w1.example".to_owned()]));
        assert!(matches!(
            policy(2).check(&again),
            Err(CosignatureError::Quorum { found: 1, .. })
        ));
        // A cosignature over another text does not count.
        let other = cosign(
            &k2,
            "w2.example",
            "example.com/log\n6\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            1,
        );
        assert_eq!(w2.verify(again.text(), &other), None);
    }
}
