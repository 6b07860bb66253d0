//! Importers for the list formats as published. Each takes the raw files and returns the
//! entries plus every row it could not use, with its line and reason: nothing is dropped
//! silently.

use sha2::{Digest, Sha256};

use super::entry::{ListEntry, RowProblem, SourceFile, SourceKind};

mod csl;
mod denylist;
mod ftm;
mod ofac;

/// One input file, by the name it is known by (`sdn.csv`, `alt.csv`, …) and its bytes.
pub struct Input {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What an import produced.
#[derive(Debug, Default)]
pub struct Imported {
    pub entries: Vec<ListEntry>,
    pub problems: Vec<RowProblem>,
    pub files: Vec<SourceFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error("the {kind} import needs {what}")]
    Missing { kind: &'static str, what: String },
}

pub(crate) fn file_error(file: &str, reason: impl ToString) -> ImportError {
    ImportError::File {
        file: file.to_owned(),
        reason: reason.to_string(),
    }
}

/// Text of a published file: UTF-8 (with or without BOM), else Windows-1252 (OFAC's legacy
/// files), without the DOS end-of-file mark (0x1A) the legacy files end with.
#[must_use]
pub fn text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut s = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| cp1252(b)).collect(),
    };
    while s.ends_with(['\u{1a}', '\r', '\n']) {
        let k = s.trim_end_matches(['\u{1a}', '\r', '\n']).len();
        s.truncate(k);
    }
    s
}

/// Windows-1252 to Unicode (the printable range differs from Latin-1 in 0x80-0x9F).
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

pub(crate) fn describe(f: &Input) -> SourceFile {
    SourceFile {
        name: f.name.clone(),
        sha256: hex::encode(Sha256::digest(&f.bytes)),
        bytes: f.bytes.len() as u64,
    }
}

/// Every record of a CSV file (no header handling) with its 1-based line; records that
/// are not valid CSV are reported in `problems` instead.
pub(crate) fn csv_records(
    f: &Input,
    problems: &mut Vec<RowProblem>,
) -> Vec<(u64, csv::StringRecord)> {
    let body = text(&f.bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut out = Vec::new();
    for r in rdr.records() {
        match r {
            Ok(rec) => out.push((rec.position().map_or(0, csv::Position::line), rec)),
            Err(e) => problems.push(RowProblem {
                file: f.name.clone(),
                line: e.position().map_or(0, csv::Position::line),
                reason: format!("not valid CSV: {e}"),
            }),
        }
    }
    out
}

/// Splits a `; `-separated multi-value field, dropping empty parts.
pub(crate) fn multi(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Imports `files` as `kind`. OpenSanctions deltas apply to `base` (the current entries).
pub fn import(
    kind: SourceKind,
    files: &[Input],
    base: &[ListEntry],
) -> Result<Imported, ImportError> {
    let mut out = match kind {
        SourceKind::OfacSdn => ofac::import(files)?,
        SourceKind::Csl => csl::import(files)?,
        SourceKind::Opensanctions => ftm::import(files, base)?,
        SourceKind::Denylist => denylist::import(files)?,
    };
    out.files = files.iter().map(describe).collect();
    // One entry per id: a list that repeats an id keeps the first and reports the rest.
    let mut seen = std::collections::HashSet::new();
    let mut problems = Vec::new();
    out.entries.retain(|e| {
        let fresh = seen.insert(e.id.clone());
        if !fresh {
            problems.push(RowProblem {
                file: files.first().map(|f| f.name.clone()).unwrap_or_default(),
                line: 0,
                reason: format!(
                    "entry id {} appears more than once; the first is kept",
                    e.id
                ),
            });
        }
        fresh
    });
    out.problems.extend(problems);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_handles_bom_cp1252_and_the_dos_eof_mark() {
        assert_eq!(text(b"\xEF\xBB\xBFa,b\r\n\x1a"), "a,b");
        assert_eq!(text(b"caf\xe9 \x93x\x94"), "café “x”");
    }
}
