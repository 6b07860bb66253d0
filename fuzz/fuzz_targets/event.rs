//! Event envelopes from the wire (`SignedEvent::decode` + `verify`) and from storage
//! (`verify_stored`): any bytes give a value or an error, never a panic; what decodes and
//! verifies re-encodes to canonical bytes that verify again to the same hash.
#![no_main]
use custody::core::ids::LedgerName;
use custody::core::verify::{verify_stored, SignedEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ledger = LedgerName::parse("fuzz.example/ledger").expect("valid name");
    if let Ok(ev) = SignedEvent::decode(data) {
        if let Ok(v) = ev.verify(&ledger) {
            let again =
                verify_stored(v.canonical_bytes(), &ledger).expect("canonical bytes verify");
            assert_eq!(again.hash(), v.hash());
        }
    }
    let _ = verify_stored(data, &ledger);
});
