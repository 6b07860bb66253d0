//! The physical limits of this machine, measured before the ledger is: Ed25519
//! `verify_strict` and batch verification per core and on all cores, SHA-256 throughput,
//! `fdatasync` on the data directory's disk, and sled's own rate for the ledger's writes
//! ([`super::storage`]).

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use ed25519_dalek::{Signer as _, SigningKey};
use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest as _;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ceilings {
    pub verify_strict_one_core: f64,
    pub verify_strict_all_cores: f64,
    pub verify_batch_all_cores: f64,
    pub sha256_mb_per_s: f64,
    pub fdatasync_per_s: f64,
    /// Single-unit events/s sled makes durable given exactly the ledger's writes for them
    /// ([`super::storage`]): the storage ceiling of ingest.
    pub sled_events_per_s: f64,
    pub cores: usize,
}

fn messages(n: usize) -> (Vec<Vec<u8>>, Vec<ed25519_dalek::Signature>, SigningKey) {
    let k = SigningKey::from_bytes(&[9; 32]);
    let msgs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            format!("custody bench message {i}, about the size of a small event body").into_bytes()
        })
        .collect();
    let sigs = msgs.par_iter().map(|m| k.sign(m)).collect();
    (msgs, sigs, k)
}

/// Measures every ceiling; the fsync one in `dir`.
pub fn measure(dir: &Path) -> std::io::Result<Ceilings> {
    let n = 40_000;
    let (msgs, sigs, k) = messages(n);
    let vk = k.verifying_key();
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs).take(n / 4) {
        vk.verify_strict(m, s).map_err(std::io::Error::other)?;
    }
    let one = (n / 4) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    msgs.par_iter()
        .zip(sigs.par_iter())
        .try_for_each(|(m, s)| vk.verify_strict(m, s))
        .map_err(std::io::Error::other)?;
    let all = n as f64 / t.elapsed().as_secs_f64();
    let keys = vec![vk; 64];
    let t = Instant::now();
    msgs.par_chunks(64)
        .zip(sigs.par_chunks(64))
        .try_for_each(|(m, s)| {
            let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&refs, s, &keys[..m.len()])
        })
        .map_err(std::io::Error::other)?;
    let batch = n as f64 / t.elapsed().as_secs_f64();
    let buf = vec![7u8; 64 << 20];
    let t = Instant::now();
    let _ = std::hint::black_box(sha2::Sha256::digest(&buf));
    let sha = 64.0 / t.elapsed().as_secs_f64();
    let path = dir.join("bench-fsync.tmp");
    let mut f = std::fs::File::create(&path)?;
    let block = [1u8; 4096];
    let t = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        f.write_all(&block)?;
        f.sync_data()?;
    }
    let fsync = f64::from(rounds) / t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    let sled = super::storage::sled_events_per_s(&dir.join("bench-sled-ceiling"))?;
    Ok(Ceilings {
        verify_strict_one_core: one,
        verify_strict_all_cores: all,
        verify_batch_all_cores: batch,
        sha256_mb_per_s: sha,
        fdatasync_per_s: fsync,
        sled_events_per_s: sled,
        cores: rayon::current_num_threads(),
    })
}
