//! Merkle proof verification (RFC 9162) on arbitrary sizes, indexes and hashes, and proofs
//! decoded from JSON: never a panic, never an unbounded loop.
#![no_main]
use custody::core::merkle::{verify_consistency, verify_inclusion, TreeHash};
use custody::core::proof::{ConsistencyProof, InclusionProof};
use libfuzzer_sys::fuzz_target;

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in d.iter().skip(i).take(8).enumerate() {
        b[k] = *x;
    }
    u64::from_be_bytes(b)
}

fn hashes(d: &[u8]) -> Vec<TreeHash> {
    d.chunks_exact(32)
        .map(|c| TreeHash::from_bytes(c.try_into().expect("32 bytes")))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 16 {
        let (a, b) = (u64_at(data, 0), u64_at(data, 8));
        let hs = hashes(&data[16..]);
        if hs.len() >= 2 {
            let _ = verify_inclusion(&hs[0], a, b, &hs[2..], &hs[1]);
            let _ = verify_consistency(a, b, &hs[0], &hs[1], &hs[2..]);
            // Small sizes too, where most paths are valid.
            let _ = verify_inclusion(&hs[0], a % 64, b % 64, &hs[2..], &hs[1]);
            let _ = verify_consistency(a % 64, b % 64, &hs[0], &hs[1], &hs[2..]);
        }
    }
    if let Ok(p) = serde_json::from_slice::<InclusionProof>(data) {
        let _ = p.verify(&TreeHash::from_bytes([0; 32]));
    }
    if let Ok(p) = serde_json::from_slice::<ConsistencyProof>(data) {
        let _ = p.verify(
            &TreeHash::from_bytes([0; 32]),
            &TreeHash::from_bytes([1; 32]),
        );
    }
});
