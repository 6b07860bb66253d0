//! Helpers shared by the benchmarks.
#![allow(dead_code)]

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// The `p`-th percentile (0-100) of `v`, sorting it.
pub fn pct(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[(v.len() * p / 100).min(v.len() - 1)]
}

use custody::client::Client;
use custody::core::event::{Profile, Role};
use custody::core::ids::Handle;
use custody::core::values::{CountryCode, Text};
use custody::keys::KeyPair;

/// A key from a fixed seed.
pub fn key(seed: u8) -> KeyPair {
    KeyPair::from_signing(ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).expect("key")
}

pub fn profile(name: &str, roles: Vec<Role>) -> Profile {
    Profile {
        legal_name: Text::parse(name).expect("t"),
        aliases: vec![],
        country: CountryCode::parse("US").expect("c"),
        region: None,
        address: None,
        roles,
        parent: None,
        owners: vec![],
        gs1_company_prefixes: vec![],
    }
}

/// Genesis (operator, key 1) and two enrolled parties: a manufacturer (key 2) and a
/// distributor (key 3). Returns the maker and distributor keys.
pub fn parties(c: &Client<'_>) -> (KeyPair, KeyPair) {
    let (op, maker, dist) = (key(1), key(2), key(3));
    c.genesis(
        &op,
        Handle::parse("op").expect("h"),
        profile("Op", vec![Role::Operator]),
    )
    .expect("genesis");
    c.enroll(
        &maker,
        &op,
        Handle::parse("maker").expect("h"),
        profile("Maker", vec![Role::Manufacturer]),
    )
    .expect("enroll");
    c.enroll(
        &dist,
        &op,
        Handle::parse("dist").expect("h"),
        profile("Dist", vec![Role::Distributor]),
    )
    .expect("enroll");
    (maker, dist)
}
