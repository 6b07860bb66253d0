//! Key files: ed25519 secret keys as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`),
//! written with mode 0600. The secret never appears in Debug output and is zeroized on
//! drop (by ed25519-dalek's `SigningKey`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

use crate::core::ids::{PartyId, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not an ed25519 PKCS#8 PEM private key: {detail}")]
    Format { path: PathBuf, detail: String },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to overwrite existing key file {0}")]
    Exists(PathBuf),
}

/// A loaded signing key with its public half.
pub struct KeyPair {
    pub signing: SigningKey,
    pub public: PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyPair {{ public: {}, secret: <redacted> }}",
            self.public
        )
    }
}

impl KeyPair {
    pub fn from_signing(signing: SigningKey) -> Result<Self, KeyError> {
        let public = PublicKey::from_bytes(signing.verifying_key().to_bytes()).map_err(|e| {
            KeyError::Format {
                path: PathBuf::new(),
                detail: e.to_string(),
            }
        })?;
        Ok(Self { signing, public })
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_signing(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The party id a party enrolled with this as its first key gets.
    #[must_use]
    pub fn party_id(&self) -> PartyId {
        PartyId::derive(&self.public)
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.into(),
            source,
        })?;
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Format {
            path: path.into(),
            detail: e.to_string(),
        })?;
        Self::from_signing(signing).map_err(|e| match e {
            KeyError::Format { detail, .. } => KeyError::Format {
                path: path.into(),
                detail,
            },
            other => other,
        })
    }

    /// Writes the key as PKCS#8 PEM with mode 0600; never overwrites.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let pem = self
            .signing
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| KeyError::Format {
                path: path.into(),
                detail: e.to_string(),
            })?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.into())
            } else {
                KeyError::Write {
                    path: path.into(),
                    source,
                }
            }
        })?;
        f.write_all(pem.as_bytes())
            .map_err(|source| KeyError::Write {
                path: path.into(),
                source,
            })?;
        f.sync_all().map_err(|source| KeyError::Write {
            path: path.into(),
            source,
        })
    }
}
