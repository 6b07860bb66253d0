//! The US Consolidated Screening List (trade.gov), CSV or JSON.
//!
//! CSV: a header row naming the columns (`source, entity_number, type, programs, name, …`),
//! in some files preceded by an `_id` column, and header rows may recur inside a file with
//! another variant: every header row switches the column map. Multi-valued fields are
//! separated by `; `. Names write apostrophes as `?`. JSON: the trade.gov API shape, an
//! object with `results` (or a bare array) of objects with the same field names, where
//! `addresses` and `ids` are arrays of objects.

use serde_json::Value;

use super::{csv_records, file_error, multi, text, ImportError, Imported, Input};
use crate::screen::entry::{Date, EntryType, ListEntry, RowProblem};

/// `People?s` → `People's`: a `?` between letters stands for an apostrophe.
fn apostrophes(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    c.iter()
        .enumerate()
        .map(|(i, &ch)| {
            let between =
                i > 0 && i + 1 < c.len() && c[i - 1].is_alphabetic() && c[i + 1].is_alphabetic();
            if ch == '?' && between {
                '\''
            } else {
                ch
            }
        })
        .collect()
}

/// A stable id for rows that have neither `_id` nor `entity_number`.
fn synthetic_id(source: &str, name: &str, addresses: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{source}\0{name}\0{addresses}"));
    format!("csl-{}", &hex::encode(d)[..16])
}

/// Countries from `…, CN`-style address endings and country fields.
fn country_codes(addresses: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in addresses {
        if let Some(last) = a.rsplit(',').next().map(str::trim) {
            if last.len() == 2
                && last.bytes().all(|b| b.is_ascii_uppercase())
                && !out.iter().any(|c| c == last)
            {
                out.push(last.to_owned());
            }
        }
    }
    out
}

struct Fields<'a> {
    get: &'a dyn Fn(&str) -> String,
}

fn entry(f: &Fields<'_>) -> Result<ListEntry, String> {
    let g = f.get;
    let name = apostrophes(g("name").trim());
    if name.is_empty() {
        return Err("the name field is empty".into());
    }
    let source = g("source");
    let addresses = multi(&g("addresses"));
    let id = [g("_id"), g("id"), g("entity_number")]
        .into_iter()
        .find(|s| !s.trim().is_empty())
        .map_or_else(
            || synthetic_id(&source, &name, &g("addresses")),
            |s| s.trim().to_owned(),
        );
    let mut countries = country_codes(&addresses);
    for c in multi(&g("citizenships"))
        .into_iter()
        .chain(multi(&g("nationalities")))
    {
        if !countries.contains(&c) {
            countries.push(c);
        }
    }
    let start = g("start_date");
    let listed_on = match start.trim() {
        "" => None,
        s => Some(Date::parse(s).map_err(|e| format!("start_date: {e}"))?),
    };
    let notice = [g("federal_register_notice"), g("remarks")]
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(ListEntry {
        id,
        entry_type: EntryType::parse(&g("type")),
        name,
        aliases: multi(&g("alt_names"))
            .iter()
            .map(|a| apostrophes(a))
            .collect(),
        programs: multi(&g("programs")),
        countries,
        addresses,
        identifiers: multi(&g("ids")),
        listed_on,
        notice: (!notice.is_empty()).then_some(notice),
        source_list: if source.trim().is_empty() {
            "Consolidated Screening List".into()
        } else {
            source.trim().to_owned()
        },
    })
}

fn is_header(rec: &csv::StringRecord) -> bool {
    rec.iter().any(|f| f == "name") && rec.iter().any(|f| f == "source")
}

fn import_csv(f: &Input, out: &mut Imported) -> Result<(), ImportError> {
    let mut header: Option<Vec<String>> = None;
    for (line, rec) in csv_records(f, &mut out.problems) {
        if is_header(&rec) {
            header = Some(rec.iter().map(|h| h.trim().to_owned()).collect());
            continue;
        }
        let Some(h) = &header else {
            return Err(file_error(
                &f.name,
                "the first row is not a CSL header (no `source` and `name` columns)",
            ));
        };
        if rec.len() != h.len() {
            out.problems.push(RowProblem {
                file: f.name.clone(),
                line,
                reason: format!(
                    "expected {} fields as in the header, found {} (truncated or shifted row)",
                    h.len(),
                    rec.len()
                ),
            });
            continue;
        }
        let get = |k: &str| {
            h.iter()
                .position(|c| c == k)
                .and_then(|i| rec.get(i))
                .unwrap_or("")
                .to_owned()
        };
        match entry(&Fields { get: &get }) {
            Ok(e) => out.entries.push(e),
            Err(reason) => out.problems.push(RowProblem {
                file: f.name.clone(),
                line,
                reason,
            }),
        }
    }
    Ok(())
}

/// A JSON field as the CSV would spell it: arrays joined with `; `, address objects
/// written out.
fn flat(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(flat)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(o) => {
            let keys = [
                "address",
                "city",
                "state",
                "postal_code",
                "country",
                "type",
                "number",
            ];
            keys.iter()
                .filter_map(|k| o.get(*k).map(flat))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        }
        other => other.to_string(),
    }
}

fn import_json(f: &Input, out: &mut Imported) -> Result<(), ImportError> {
    let v: Value = serde_json::from_str(&text(&f.bytes))
        .map_err(|e| file_error(&f.name, format!("not JSON: {e}")))?;
    let rows = match &v {
        Value::Array(a) => a,
        Value::Object(o) => o
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| file_error(&f.name, "expected an array or an object with `results`"))?,
        _ => {
            return Err(file_error(
                &f.name,
                "expected an array or an object with `results`",
            ))
        }
    };
    for (i, row) in rows.iter().enumerate() {
        let get = |k: &str| row.get(k).map(flat).unwrap_or_default();
        match row.as_object().map(|_| entry(&Fields { get: &get })) {
            Some(Ok(e)) => out.entries.push(e),
            Some(Err(reason)) => out.problems.push(RowProblem {
                file: f.name.clone(),
                line: i as u64 + 1,
                reason: format!("result {}: {reason}", i + 1),
            }),
            None => out.problems.push(RowProblem {
                file: f.name.clone(),
                line: i as u64 + 1,
                reason: format!("result {} is not an object", i + 1),
            }),
        }
    }
    Ok(())
}

pub fn import(files: &[Input]) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    if files.is_empty() {
        return Err(ImportError::Missing {
            kind: "csl",
            what: "a CSV or JSON file".into(),
        });
    }
    for f in files {
        if text(&f.bytes).trim_start().starts_with(['{', '[']) {
            import_json(f, &mut out)?;
        } else {
            import_csv(f, &mut out)?;
        }
    }
    Ok(out)
}
