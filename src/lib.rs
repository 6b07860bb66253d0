//! custody: a serial-number provenance ledger.
//!
//! - [`core`]: pure types, canonical encoding, signatures and chain rules (no I/O).
//! - [`store`]: the storage trait, sled and in-memory implementations.
//! - [`ledger`]: the single-writer, group-committing append path.
//! - [`audit`]: whole-ledger re-verification from the raw log.
//! - [`keys`]: PKCS#8 key files.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod bundle;
pub mod chain;
pub mod cli;
pub mod client;
pub mod core;
pub mod cosigning;
pub mod graph;
pub mod keys;
pub mod ledger;
pub mod log;
pub mod monitor;
pub mod remote;
pub mod resolve;
pub mod screen;
pub mod server;
pub mod store;
pub mod verified;
pub mod witness;
