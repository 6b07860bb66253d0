//! The witness's `add-checkpoint` request body (C2SP tlog-witness): any text gets a
//! cosignature or a refusal, never a panic.
#![no_main]
use custody::core::checkpoint::VerifierKey;
use custody::core::ids::{LedgerName, PublicKey};
use custody::witness::Witness;
use libfuzzer_sys::fuzz_target;

/// The log the witness follows: key from a fixed seed (the seed corpus is signed with it).
fn log_key() -> ed25519_dalek_key::Key {
    ed25519_dalek_key::Key::from_seed([7; 32])
}

thread_local! {
    static W: Witness = {
        let dir = std::env::temp_dir().join(format!("custody-fuzz-witness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let vk = VerifierKey {
            name: LedgerName::parse("fuzz.example/log").expect("name"),
            key: PublicKey::from_bytes(log_key().public()).expect("key"),
        };
        Witness::open("fuzz.example/witness", log_key().signing(), vec![vk], &dir.join("state.json"))
            .expect("witness")
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    W.with(|w| {
        let _ = w.add_checkpoint(body, 1_800_000_000);
    });
});

mod ed25519_dalek_key {
    pub struct Key(custody::keys::KeyPair);
    impl Key {
        pub fn from_seed(seed: [u8; 32]) -> Self {
            Self(
                custody::keys::KeyPair::from_signing(ed25519_dalek::SigningKey::from_bytes(&seed))
                    .expect("key"),
            )
        }
        pub fn public(&self) -> [u8; 32] {
            *self.0.public.as_bytes()
        }
        pub fn signing(&self) -> ed25519_dalek::SigningKey {
            self.0.signing.clone()
        }
    }
}
