//! Evidence bundles: the first line is the verifier key, the rest the bundle JSON. Parsing
//! and offline verification (checkpoint, proofs, signatures, rules replay) never panic.
#![no_main]
use custody::core::bundle::{verify, Bundle};
use custody::core::checkpoint::VerifierKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(i) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(Ok(vk)) = std::str::from_utf8(&data[..i]).map(VerifierKey::parse) else {
        return;
    };
    if let Ok(b) = serde_json::from_slice::<Bundle>(&data[i + 1..]) {
        let _ = verify(&b, &vk);
    }
});
