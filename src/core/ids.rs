//! Newtypes for every identifier on the wire. Each validates at construction and
//! serializes as the string form written in `schemas/FORMAT.md`.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::FieldError;

/// Implements `TryFrom<String>`, `From<T> for String`, `FromStr` and `Display`
/// for a newtype whose `parse` validates a `&str`.
macro_rules! string_newtype {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                <$t>::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
        impl FromStr for $t {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                <$t>::parse(s)
            }
        }
    };
}

fn invalid(kind: &'static str, value: &str, rule: &'static str) -> FieldError {
    let mut shown: String = value.chars().take(80).collect();
    if value.chars().count() > 80 {
        shown.push('…');
    }
    FieldError::Invalid {
        kind,
        value: shown,
        rule,
    }
}

/// SHA-256 of an event (see FORMAT.md §4). Lowercase hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventHash([u8; 32]);

impl EventHash {
    #[must_use]
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("event hash", s, "64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| invalid("event hash", s, "64 lowercase hex digits"))?;
        Ok(Self(out))
    }
}
impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({self})")
    }
}
string_newtype!(EventHash);

/// Position of an event in the ledger's single total order, from 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogIndex(u64);

impl LogIndex {
    #[must_use]
    pub const fn new(i: u64) -> Self {
        Self(i)
    }
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}
impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An ed25519 public key: 32 bytes, standard base64 with padding on the wire.
/// Construction rejects encodings that are not a valid curve point and the
/// small-order ("weak") keys that `verify_strict` would refuse anyway.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(b: [u8; 32]) -> Result<Self, FieldError> {
        match decompressed(&b) {
            Ok(_) => Ok(Self(b)),
            Err(KeyFault::NotAPoint) => Err(invalid(
                "public key",
                &B64.encode(b),
                "a valid ed25519 point",
            )),
            Err(KeyFault::Weak) => Err(invalid(
                "public key",
                &B64.encode(b),
                "not a small-order (weak) ed25519 point",
            )),
        }
    }
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let raw = B64
            .decode(s)
            .map_err(|_| invalid("public key", s, "standard base64 with padding"))?;
        let arr: [u8; 32] = raw
            .try_into()
            .map_err(|_| invalid("public key", s, "exactly 32 bytes"))?;
        Self::from_bytes(arr)
    }
    #[must_use]
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        decompressed(&self.0).expect(
            "invariant: PublicKey is only constructed from bytes that decompress to a strong point",
        )
    }
}

#[derive(Debug)]
enum KeyFault {
    NotAPoint,
    Weak,
}

/// The curve point of a key, or why it is refused. Decompressing costs about a third of a
/// signature check, and a ledger has few keys signing many events (each event's keys are
/// checked when it is parsed and again when it is verified): valid keys are remembered,
/// a few thousand per thread.
fn decompressed(b: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey, KeyFault> {
    thread_local! {
        static KEYS: std::cell::RefCell<std::collections::HashMap<[u8; 32], ed25519_dalek::VerifyingKey>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    KEYS.with(|keys| {
        if let Some(k) = keys.borrow().get(b) {
            return Ok(*k);
        }
        let k = ed25519_dalek::VerifyingKey::from_bytes(b).map_err(|_| KeyFault::NotAPoint)?;
        if k.is_weak() {
            return Err(KeyFault::Weak);
        }
        let mut keys = keys.borrow_mut();
        if keys.len() >= 4096 {
            keys.clear();
        }
        keys.insert(*b, k);
        Ok(k)
    })
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}
string_newtype!(PublicKey);

/// Stable party identifier: the first 16 bytes of
/// `SHA-256("custody:v1:party-id\0" || first enrollment key)`, as 32 lowercase hex digits.
/// Shared text (`Arc<str>`), like [`crate::core::unit::UnitId`]: every unit record names
/// its manufacturer and holder, and copies taken from a party's record share its text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartyId(std::sync::Arc<str>);

impl PartyId {
    pub const DOMAIN: &'static [u8] = b"custody:v1:party-id\0";
    #[must_use]
    pub fn derive(key: &PublicKey) -> Self {
        let mut h = Sha256::new();
        h.update(Self::DOMAIN);
        h.update(key.as_bytes());
        Self(hex::encode(&h.finalize()[..16]).into())
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.into()))
        } else {
            Err(invalid("party id", s, "32 lowercase hex digits"))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyId({})", self.0)
    }
}
string_newtype!(PartyId);

/// A party's unique human handle: 2 to 63 of `a-z 0-9 -`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Handle(String);

impl Handle {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let ok = (2..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(
                "handle",
                s,
                "2-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype!(Handle);

/// The ledger's name (its origin, as in C2SP checkpoints): 1 to 128 printable
/// ASCII characters without spaces, e.g. `custody.example.org/ledger`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LedgerName(String);

impl LedgerName {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        // The name is also the log's origin and the key name of its checkpoint signatures,
        // and signed-note key names may not contain '+'.
        if (1..=128).contains(&s.len())
            && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'+')
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(
                "ledger name",
                s,
                "1-128 printable ASCII characters, no spaces and no '+'",
            ))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for LedgerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_newtype!(LedgerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_hash_rejects_uppercase_and_wrong_length() {
        assert!(EventHash::parse(&"a".repeat(64)).is_ok());
        assert!(EventHash::parse(&"A".repeat(64)).is_err());
        assert!(EventHash::parse(&"a".repeat(63)).is_err());
    }

    #[test]
    fn public_key_rejects_weak_and_non_canonical_base64() {
        // The identity point (small order) is weak.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(PublicKey::from_bytes(ident).is_err());
        let good = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let s = B64.encode(good.as_bytes());
        assert!(PublicKey::parse(&s).is_ok());
        assert!(PublicKey::parse(s.trim_end_matches('=')).is_err());
    }

    #[test]
    fn public_key_refuses_non_points_every_time_and_caches_only_valid_keys() {
        // The first y with no x on the curve.
        let not_a_point = (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
            .expect("some small y is not on the curve");
        let mut ident = [0u8; 32];
        ident[0] = 1;
        for _ in 0..2 {
            let e = PublicKey::from_bytes(not_a_point).expect_err("not a point");
            assert!(e.to_string().contains("a valid ed25519 point"), "{e}");
            let e = PublicKey::from_bytes(ident).expect_err("weak");
            assert!(e.to_string().contains("weak"), "{e}");
        }
        let good = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        for _ in 0..2 {
            let k = PublicKey::from_bytes(good.to_bytes()).expect("valid key");
            assert_eq!(k.verifying_key(), good);
        }
    }

    #[test]
    fn handle_rules() {
        assert!(Handle::parse("pearl-river-trading").is_ok());
        assert!(Handle::parse("Pearl").is_err());
        assert!(Handle::parse("-x").is_err());
        assert!(Handle::parse("x").is_err());
    }
}
