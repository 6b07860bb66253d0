//! Every list importer (OFAC SDN CSV, CSL CSV/JSON, OpenSanctions FtM, deny lists) on any
//! bytes: entries or row problems, never a panic. The first byte picks the format and the
//! file name the importer sees.
#![no_main]
use custody::screen::entry::SourceKind;
use custody::screen::import::{import, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (kind, name) = match pick % 8 {
        0 => (SourceKind::OfacSdn, "sdn.csv"),
        1 => (SourceKind::OfacSdn, "alt.csv"),
        2 => (SourceKind::Csl, "consolidated.csv"),
        3 => (SourceKind::Csl, "consolidated.json"),
        4 => (SourceKind::Opensanctions, "entities.ftm.json"),
        5 => (SourceKind::Opensanctions, "delta.json"),
        6 => (SourceKind::Denylist, "deny.csv"),
        _ => (SourceKind::Denylist, "deny.json"),
    };
    let files = [Input {
        name: name.to_owned(),
        bytes: rest.to_vec(),
    }];
    let _ = import(kind, &files, &[]);
});
