//! An operator's own deny list (e.g. a manufacturer's published list of unauthorized
//! distributors), CSV or JSON.
//!
//! CSV: a header row with `name` (required) and any of `id`, `aliases` (`; `-separated),
//! `country` (`; `-separated), `type`, `listed_on` (YYYY-MM-DD), `reason`, `address`.
//! JSON: an array of objects with the same fields (`aliases` and `country` may be arrays).
//! Rows without an `id` get `<line>`-based ids (`row-7`), stable for the same file.

use serde_json::Value;

use super::{csv_records, file_error, multi, text, ImportError, Imported, Input};
use crate::screen::entry::{Date, EntryType, ListEntry, RowProblem};

fn entry(get: &dyn Fn(&str) -> String, fallback_id: String) -> Result<ListEntry, String> {
    let name = get("name").trim().to_owned();
    if name.is_empty() {
        return Err("the name field is empty".into());
    }
    let listed_on = match get("listed_on").trim() {
        "" => None,
        d => Some(Date::parse(d).map_err(|e| format!("listed_on: {e}"))?),
    };
    let id = get("id").trim().to_owned();
    let reason = get("reason").trim().to_owned();
    Ok(ListEntry {
        id: if id.is_empty() { fallback_id } else { id },
        entry_type: match get("type").trim() {
            "" => EntryType::Entity,
            t => EntryType::parse(t),
        },
        name,
        aliases: multi(&get("aliases")),
        programs: vec!["DENYLIST".into()],
        countries: multi(&get("country")),
        addresses: multi(&get("address")),
        identifiers: vec![],
        listed_on,
        notice: (!reason.is_empty()).then_some(reason),
        source_list: "Operator deny list".into(),
    })
}

pub fn import(files: &[Input]) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    for f in files {
        let body = text(&f.bytes);
        if body.trim_start().starts_with('[') {
            let v: Value = serde_json::from_str(&body)
                .map_err(|e| file_error(&f.name, format!("not JSON: {e}")))?;
            let rows = v
                .as_array()
                .ok_or_else(|| file_error(&f.name, "expected an array"))?;
            for (i, row) in rows.iter().enumerate() {
                let get = |k: &str| match row.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ => String::new(),
                };
                match entry(&get, format!("item-{}", i + 1)) {
                    Ok(e) => out.entries.push(e),
                    Err(reason) => out.problems.push(RowProblem {
                        file: f.name.clone(),
                        line: i as u64 + 1,
                        reason: format!("item {}: {reason}", i + 1),
                    }),
                }
            }
            continue;
        }
        let mut rows = csv_records(f, &mut out.problems).into_iter();
        let header: Vec<String> = rows
            .next()
            .ok_or_else(|| file_error(&f.name, "no CSV header"))?
            .1
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        if !header.iter().any(|h| h == "name") {
            return Err(file_error(&f.name, "the header has no `name` column"));
        }
        for (line, rec) in rows {
            if rec.len() != header.len() {
                out.problems.push(RowProblem {
                    file: f.name.clone(),
                    line,
                    reason: format!("expected {} fields, found {}", header.len(), rec.len()),
                });
                continue;
            }
            let get = |k: &str| {
                header
                    .iter()
                    .position(|h| h == k)
                    .and_then(|i| rec.get(i))
                    .unwrap_or("")
                    .to_owned()
            };
            match entry(&get, format!("row-{line}")) {
                Ok(e) => out.entries.push(e),
                Err(reason) => out.problems.push(RowProblem {
                    file: f.name.clone(),
                    line,
                    reason,
                }),
            }
        }
    }
    Ok(out)
}
