//! custody: a serial-number provenance ledger.
//!
//! - [`core`]: pure types, canonical encoding, signatures and chain rules.
#![forbid(unsafe_code)]

pub mod core;
