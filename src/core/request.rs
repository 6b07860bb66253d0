//! Signed HTTP requests for operator-only operations (FORMAT.md §12).
//!
//! `Authorization: Signature key="<base64 public key>", created="<unix seconds>",
//! nonce="<16-64 of [A-Za-z0-9_-]>", signature="<base64 ed25519 signature>"`, where the
//! signature is over
//! `"custody:v1:request" 0x00 ‖ ledger ‖ 0x00 ‖ METHOD ‖ 0x00 ‖ path-and-query ‖ 0x00 ‖
//! created ‖ 0x00 ‖ nonce ‖ 0x00 ‖ hex(SHA-256(body))`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use super::ids::{LedgerName, PublicKey};

const DOMAIN: &[u8] = b"custody:v1:request\0";

/// The parts of a request that are signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub created: i64,
    pub nonce: &'a str,
    pub body: &'a [u8],
}

#[must_use]
pub fn signing_input(ledger: &LedgerName, r: &RequestParts<'_>) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    for part in [
        ledger.as_str().as_bytes(),
        r.method.as_bytes(),
        r.path_and_query.as_bytes(),
        r.created.to_string().as_bytes(),
        r.nonce.as_bytes(),
    ] {
        m.extend_from_slice(part);
        m.push(0);
    }
    m.extend_from_slice(hex::encode(Sha256::digest(r.body)).as_bytes());
    m
}

/// The `Authorization` header value for a request signed with `key`.
#[must_use]
pub fn authorization(ledger: &LedgerName, key: &SigningKey, r: &RequestParts<'_>) -> String {
    let sig = key.sign(&signing_input(ledger, r));
    format!(
        "Signature key=\"{}\", created=\"{}\", nonce=\"{}\", signature=\"{}\"",
        B64.encode(key.verifying_key().as_bytes()),
        r.created,
        r.nonce,
        B64.encode(sig.to_bytes())
    )
}

/// A parsed `Authorization: Signature …` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub key: PublicKey,
    pub created: i64,
    pub nonce: String,
    pub signature: [u8; 64],
}

impl SignatureHeader {
    /// Parses the header value; the error says which parameter is wrong.
    pub fn parse(v: &str) -> Result<Self, String> {
        let rest = v
            .strip_prefix("Signature ")
            .ok_or("the Authorization scheme must be Signature")?;
        let mut key = None;
        let mut created = None;
        let mut nonce = None;
        let mut sig = None;
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("parameter {part:?} is not name=\"value\""))?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("parameter {k} must be quoted"))?;
            match k {
                "key" => key = Some(PublicKey::parse(v).map_err(|e| format!("key: {e}"))?),
                "created" => {
                    created = Some(v.parse::<i64>().map_err(|_| "created: not unix seconds")?)
                }
                "nonce" => {
                    let ok = (16..=64).contains(&v.len())
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !ok {
                        return Err("nonce: 16-64 of A-Z a-z 0-9 - _".into());
                    }
                    nonce = Some(v.to_owned());
                }
                "signature" => {
                    let raw = B64.decode(v).map_err(|_| "signature: not base64")?;
                    sig = Some(
                        <[u8; 64]>::try_from(raw.as_slice())
                            .map_err(|_| "signature: not 64 bytes")?,
                    );
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        Ok(Self {
            key: key.ok_or("key is missing")?,
            created: created.ok_or("created is missing")?,
            nonce: nonce.ok_or("nonce is missing")?,
            signature: sig.ok_or("signature is missing")?,
        })
    }

    /// Verifies the signature over the request.
    pub fn verify(
        &self,
        ledger: &LedgerName,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> bool {
        let parts = RequestParts {
            method,
            path_and_query,
            created: self.created,
            nonce: &self.nonce,
            body,
        };
        self.key
            .verifying_key()
            .verify_strict(
                &signing_input(ledger, &parts),
                &ed25519_dalek::Signature::from_bytes(&self.signature),
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify_and_any_change_fails() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let l = LedgerName::parse("l.example/x").expect("name");
        let r = RequestParts {
            method: "POST",
            path_and_query: "/v1/lists",
            created: 1_700_000_000,
            nonce: "abcdefghijklmnop",
            body: b"{}",
        };
        let h = SignatureHeader::parse(&authorization(&l, &k, &r)).expect("parses");
        assert!(h.verify(&l, "POST", "/v1/lists", b"{}"));
        assert!(!h.verify(&l, "PUT", "/v1/lists", b"{}"));
        assert!(!h.verify(&l, "POST", "/v1/lists?x", b"{}"));
        assert!(!h.verify(&l, "POST", "/v1/lists", b"{ }"));
        let other = LedgerName::parse("m.example/x").expect("name");
        assert!(!h.verify(&other, "POST", "/v1/lists", b"{}"));
        assert!(SignatureHeader::parse("Bearer x").is_err());
        assert!(SignatureHeader::parse("Signature key=\"x\"").is_err());
    }
}
