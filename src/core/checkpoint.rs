//! Checkpoints in the C2SP `tlog-checkpoint` format, signed as C2SP `signed-note`s, so
//! that existing witnesses, monitors and libraries can read them (FORMAT.md §9).
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n      <- the note text (what is signed)
//! \n
//! — <key name> <base64(key id (4 bytes, big-endian) || ed25519 signature)>\n
//! ```
//! The key name of the ledger's log key is its origin (the ledger name). Key id:
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. Verifier key (vkey), as shared with
//! witnesses: `<name>+<8 hex digits of the key id>+<base64(0x01 || public key)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use super::ids::{LedgerName, PublicKey};
use super::merkle::TreeHash;

/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// Signature type byte of ed25519 in signed-note key ids and vkeys.
const ALG_ED25519: u8 = 0x01;
/// Most signature lines parsed (the Go reference implementation's limit).
pub const MAX_SIGNATURES: usize = 100;
/// Largest signed note parsed.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("signed note is malformed: {0}")]
    Malformed(&'static str),
    #[error("checkpoint body is malformed: {0}")]
    Body(&'static str),
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error("no signature by {name} (key id {key_id:08x}) on the checkpoint")]
    NotSigned { name: String, key_id: u32 },
    #[error("the signature by {name} (key id {key_id:08x}) does not verify")]
    BadSignature { name: String, key_id: u32 },
    #[error("verifier key is malformed: {0}")]
    BadVerifierKey(&'static str),
}

/// The signed-note key id of an ed25519 key under `name`.
#[must_use]
pub fn key_id(name: &str, key: &PublicKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A log's public key as witnesses and monitors configure it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: LedgerName,
    pub key: PublicKey,
}

impl VerifierKey {
    #[must_use]
    pub fn id(&self) -> u32 {
        key_id(self.name.as_str(), &self.key)
    }

    /// Parses `<name>+<hex key id>+<base64(0x01 || key)>`, checking the key id.
    pub fn parse(s: &str) -> Result<Self, CheckpointError> {
        let bad = CheckpointError::BadVerifierKey;
        // Names and key ids hold no '+', but base64 keys may.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+KEYID+KEY"));
        };
        let name = LedgerName::parse(name).map_err(|_| bad("the name is not a valid origin"))?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let Some((&ALG_ED25519, pk)) = raw.split_first() else {
            return Err(bad("the key is not an ed25519 key (type byte 0x01)"));
        };
        let pk: [u8; 32] = pk
            .try_into()
            .map_err(|_| bad("an ed25519 key has 32 bytes"))?;
        let key = PublicKey::from_bytes(pk).map_err(|_| bad("the key is weak or invalid"))?;
        let v = Self { name, key };
        if id.len() != 8 || format!("{:08x}", v.id()) != id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(v)
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id(), B64.encode(raw))
    }
}

/// What a checkpoint says: this origin's tree had this many leaves and this root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: LedgerName,
    pub size: u64,
    pub root: TreeHash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline. custody adds no extension lines.
    #[must_use]
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root)
    }

    /// Signs the checkpoint with the log key; the key name is the origin.
    #[must_use]
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        let text = self.text();
        let pk = PublicKey::from_bytes(key.verifying_key().to_bytes())
            .expect("invariant: a signing key's own public key is valid and not weak");
        let id = key_id(self.origin.as_str(), &pk);
        let sig = key.sign(text.as_bytes()).to_bytes();
        SignedCheckpoint {
            checkpoint: self.clone(),
            text,
            signatures: vec![NoteSignature {
                name: self.origin.to_string(),
                key_id: id,
                sig: sig.to_vec(),
            }],
        }
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub sig: Vec<u8>,
}

/// A parsed signed checkpoint; `text` is exactly the signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    text: String,
    pub signatures: Vec<NoteSignature>,
}

fn body(text: &str) -> Result<Checkpoint, CheckpointError> {
    let bad = CheckpointError::Body;
    let mut lines = text
        .strip_suffix('\n')
        .ok_or(bad("the text must end in a newline"))?
        .split('\n');
    let origin = lines.next().ok_or(bad("no origin line"))?;
    let origin =
        LedgerName::parse(origin).map_err(|_| bad("the origin line is not a valid origin"))?;
    let size = lines.next().ok_or(bad("no tree size line"))?;
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err(bad(
            "the tree size must be a decimal number without leading zeros",
        ));
    }
    let size: u64 = size
        .parse()
        .map_err(|_| bad("the tree size does not fit 64 bits"))?;
    let root = lines.next().ok_or(bad("no root hash line"))?;
    let root = TreeHash::parse(root).map_err(|_| bad("the root hash is not 32 bytes of base64"))?;
    if lines.any(str::is_empty) {
        return Err(bad("extension lines must not be empty"));
    }
    Ok(Checkpoint { origin, size, root })
}

fn signature_line(line: &str) -> Result<NoteSignature, CheckpointError> {
    let bad = CheckpointError::Malformed;
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(bad(
        "a signature line must start with an em dash and a space",
    ))?;
    let (name, sig) = rest
        .split_once(' ')
        .ok_or(bad("a signature line is NAME SPACE BASE64"))?;
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(bad("a key name is non-empty, without spaces or '+'"));
    }
    let raw = B64
        .decode(sig)
        .map_err(|_| bad("a signature is standard base64"))?;
    if raw.len() < 5 {
        return Err(bad(
            "a signature holds a 4-byte key id and at least one byte",
        ));
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        sig: raw[4..].to_vec(),
    })
}

impl SignedCheckpoint {
    /// Parses a signed note holding a checkpoint. Checks syntax only; see [`Self::verify`].
    pub fn parse(note: &[u8]) -> Result<Self, CheckpointError> {
        let bad = CheckpointError::Malformed;
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad("the note is larger than 64 KiB"));
        }
        let s = std::str::from_utf8(note).map_err(|_| bad("the note is not UTF-8"))?;
        if s.chars().any(|c| c < ' ' && c != '\n') {
            return Err(bad("the note contains a control character"));
        }
        let split = s
            .rfind("\n\n")
            .ok_or(bad("no blank line before the signatures"))?;
        let (text, sigs) = (&s[..=split], &s[split + 2..]);
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or(bad("the note must end in a newline"))?;
        let signatures = sigs
            .split('\n')
            .map(signature_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(bad("more than 100 signatures"));
        }
        Ok(Self {
            checkpoint: body(text)?,
            text: text.to_owned(),
            signatures,
        })
    }

    /// The signed text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The whole note: text, blank line, signature lines.
    #[must_use]
    pub fn to_note(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            let mut raw = s.key_id.to_be_bytes().to_vec();
            raw.extend_from_slice(&s.sig);
            out.push_str(SIG_PREFIX);
            out.push_str(&s.name);
            out.push(' ');
            out.push_str(&B64.encode(raw));
            out.push('\n');
        }
        out
    }

    /// Checks the origin and the signature of `vkey` (the first line with its name and
    /// key id decides, as in the reference implementation). Other signatures (witness
    /// cosignatures) are kept but not judged here.
    pub fn verify(&self, vkey: &VerifierKey) -> Result<(), CheckpointError> {
        if self.checkpoint.origin != vkey.name {
            return Err(CheckpointError::WrongOrigin {
                expected: vkey.name.to_string(),
                found: self.checkpoint.origin.to_string(),
            });
        }
        let (name, id) = (vkey.name.to_string(), vkey.id());
        let line = self
            .signatures
            .iter()
            .find(|s| s.name == name && s.key_id == id)
            .ok_or_else(|| CheckpointError::NotSigned {
                name: name.clone(),
                key_id: id,
            })?;
        let sig = <[u8; 64]>::try_from(line.sig.as_slice())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .map_err(|_| CheckpointError::BadSignature {
                name: name.clone(),
                key_id: id,
            })?;
        vkey.key
            .verifying_key()
            .verify_strict(self.text.as_bytes(), &sig)
            .map_err(|_| CheckpointError::BadSignature { name, key_id: id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::merkle::leaf_hash;

    fn setup() -> (SigningKey, VerifierKey, Checkpoint) {
        let sk = SigningKey::from_bytes(&[9u8; 32]);
        let name = LedgerName::parse("custody.example/log").expect("valid name");
        let key = PublicKey::from_bytes(sk.verifying_key().to_bytes()).expect("valid key");
        let cp = Checkpoint {
            origin: name.clone(),
            size: 7,
            root: leaf_hash(b"r"),
        };
        (sk, VerifierKey { name, key }, cp)
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let (sk, vk, cp) = setup();
        let note = cp.sign(&sk).to_note();
        let parsed = SignedCheckpoint::parse(note.as_bytes()).expect("own note parses");
        assert_eq!(parsed.checkpoint, cp);
        assert_eq!(parsed.to_note(), note);
        parsed.verify(&vk).expect("own signature verifies");
        assert_eq!(VerifierKey::parse(&vk.to_string()), Ok(vk));
    }

    #[test]
    fn verifier_keys_round_trip_even_with_plus_signs_in_the_base64() {
        let name = LedgerName::parse("custody.example/log").expect("valid name");
        let mut plus = 0;
        for seed in 0..64u8 {
            let sk = SigningKey::from_bytes(&[seed; 32]);
            let key = PublicKey::from_bytes(sk.verifying_key().to_bytes()).expect("valid key");
            let vk = VerifierKey {
                name: name.clone(),
                key,
            };
            let s = vk.to_string();
            plus += usize::from(s.matches('+').count() > 2);
            assert_eq!(VerifierKey::parse(&s), Ok(vk), "{s}");
        }
        assert!(plus > 0, "some keys have '+' in their base64");
    }

    #[test]
    fn altered_text_or_other_origin_fails() {
        let (sk, vk, cp) = setup();
        let note = cp.sign(&sk).to_note().replacen("\n7\n", "\n8\n", 1);
        let parsed = SignedCheckpoint::parse(note.as_bytes()).expect("still well-formed");
        assert!(matches!(
            parsed.verify(&vk),
            Err(CheckpointError::BadSignature { .. })
        ));
        let other = VerifierKey {
            name: LedgerName::parse("other.example/log").expect("valid"),
            key: vk.key,
        };
        assert!(matches!(
            parsed.verify(&other),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let (sk, _, cp) = setup();
        let good = cp.sign(&sk).to_note();
        for bad in [
            good.replace('\u{2014}', "-"),
            good.replacen("\n\n", "\n", 1),
            good.trim_end().to_owned(),
            good.replacen("\n7\n", "\n07\n", 1),
            good.replacen("\n7\n", "\n\t7\n", 1),
        ] {
            assert!(SignedCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
