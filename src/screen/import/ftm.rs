//! OpenSanctions FollowTheMoney JSON lines.
//!
//! - Entity files (`entities.ftm.json`): one entity per line, `{"id", "schema", "properties":
//!   {"name": [...], ...}}`. Party schemata become entries; `Sanction` entities lend their
//!   program and listing date to the entity they name; other schemata are reported.
//! - Delta files (`entities.delta.json`): one `{"op": "ADD"|"MOD"|"DEL", "entity": {...}}` per
//!   line, applied to the current entries of the list.
//! - A delta index (`…delta.json` with `{"versions": {...}}`): the delta files it names are
//!   applied in version order, read from the files given beside it, named
//!   `<prefix>__<version>__entities.delta.json`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{file_error, text, ImportError, Imported, Input};
use crate::screen::entry::{Date, EntryType, ListEntry, RowProblem};

const PARTY_SCHEMATA: &[&str] = &[
    "Person",
    "Organization",
    "Company",
    "LegalEntity",
    "PublicBody",
    "Vessel",
    "Airplane",
];

fn strings(props: &Value, keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        if let Some(a) = props.get(*k).and_then(Value::as_array) {
            for v in a.iter().filter_map(Value::as_str) {
                if !v.trim().is_empty() && !out.iter().any(|x| x == v) {
                    out.push(v.trim().to_owned());
                }
            }
        }
    }
    out
}

/// An entry from a party entity, or why not.
fn entry(e: &Value) -> Result<Option<ListEntry>, String> {
    let id = e
        .get("id")
        .and_then(Value::as_str)
        .ok_or("the entity has no id")?;
    let schema = e
        .get("schema")
        .and_then(Value::as_str)
        .ok_or("the entity has no schema")?;
    if !PARTY_SCHEMATA.contains(&schema) {
        return Ok(None);
    }
    let p = e.get("properties").cloned().unwrap_or(Value::Null);
    let mut names = strings(&p, &["name"]);
    if names.is_empty() {
        if let Some(c) = e.get("caption").and_then(Value::as_str) {
            names.push(c.to_owned());
        }
    }
    if names.is_empty() {
        return Err(format!("entity {id} has no name"));
    }
    let name = e
        .get("caption")
        .and_then(Value::as_str)
        .filter(|c| names.iter().any(|n| n == c))
        .map_or_else(|| names[0].clone(), str::to_owned);
    let mut aliases: Vec<String> = names.into_iter().filter(|n| *n != name).collect();
    for a in strings(&p, &["alias", "weakAlias", "previousName"]) {
        if a != name && !aliases.contains(&a) {
            aliases.push(a);
        }
    }
    let listed_on = strings(&p, &["listingDate", "startDate"])
        .first()
        .and_then(|d| Date::parse(d).ok());
    let notes = strings(&p, &["notes", "summary"]).join(" ");
    let datasets: Vec<String> = e
        .get("datasets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ListEntry {
        id: id.to_owned(),
        entry_type: EntryType::parse(schema),
        name,
        aliases,
        programs: strings(&p, &["program", "programId", "topics"]),
        countries: strings(
            &p,
            &[
                "country",
                "nationality",
                "citizenship",
                "jurisdiction",
                "mainCountry",
            ],
        ),
        addresses: strings(&p, &["address"]),
        identifiers: strings(
            &p,
            &[
                "registrationNumber",
                "taxNumber",
                "innCode",
                "ogrnCode",
                "swiftBic",
                "imoNumber",
                "idNumber",
                "passportNumber",
                "leiCode",
            ],
        ),
        listed_on,
        notice: (!notes.is_empty()).then_some(notes),
        source_list: if datasets.is_empty() {
            "OpenSanctions".into()
        } else {
            format!("OpenSanctions: {}", datasets.join(", "))
        },
    }))
}

/// Applies one JSON-lines file (entities or deltas) to `current`.
fn apply(f: &Input, current: &mut BTreeMap<String, ListEntry>, problems: &mut Vec<RowProblem>) {
    let body = text(&f.bytes);
    let mut sanctions: Vec<(u64, Value)> = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut report = |reason: String| {
            problems.push(RowProblem {
                file: f.name.clone(),
                line: line_no,
                reason,
            });
        };
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                report(format!("not JSON: {e}"));
                continue;
            }
        };
        let (op, ent) = match v.get("op").and_then(Value::as_str) {
            Some(op) => (
                op.to_owned(),
                v.get("entity").cloned().unwrap_or(Value::Null),
            ),
            None => ("ADD".to_owned(), v),
        };
        let Some(id) = ent.get("id").and_then(Value::as_str).map(str::to_owned) else {
            report("the entity has no id".into());
            continue;
        };
        match op.as_str() {
            "DEL" => {
                if current.remove(&id).is_none() {
                    report(format!("DEL of {id}, which is not in the list"));
                }
            }
            "ADD" | "MOD" => {
                if ent.get("schema").and_then(Value::as_str) == Some("Sanction") {
                    sanctions.push((line_no, ent));
                    continue;
                }
                match entry(&ent) {
                    Ok(Some(e)) => {
                        if op == "MOD" && !current.contains_key(&id) {
                            report(format!("MOD of {id}, which is not in the list; added"));
                        }
                        current.insert(id, e);
                    }
                    Ok(None) => report(format!(
                        "schema {} is not a party; not screened",
                        ent.get("schema").and_then(Value::as_str).unwrap_or("?")
                    )),
                    Err(reason) => report(reason),
                }
            }
            other => report(format!("unknown delta op {other:?}")),
        }
    }
    // Sanctions name the entity they apply to: lend it program and listing date.
    for (line, s) in sanctions {
        let p = s.get("properties").cloned().unwrap_or(Value::Null);
        let targets = strings(&p, &["entity"]);
        let mut used = false;
        for t in &targets {
            if let Some(e) = current.get_mut(t) {
                used = true;
                for prog in strings(&p, &["program", "programId"]) {
                    if !e.programs.contains(&prog) {
                        e.programs.push(prog);
                    }
                }
                if e.listed_on.is_none() {
                    e.listed_on = strings(&p, &["listingDate", "startDate"])
                        .first()
                        .and_then(|d| Date::parse(d).ok());
                }
            }
        }
        if !used {
            problems.push(RowProblem {
                file: f.name.clone(),
                line,
                reason: format!("sanction for {targets:?}, which is not in the list"),
            });
        }
    }
}

/// The delta files a version index names, in version order.
fn index_files<'a>(index: &Input, files: &'a [Input]) -> Result<Vec<&'a Input>, ImportError> {
    let v: Value = serde_json::from_str(&text(&index.bytes))
        .map_err(|e| file_error(&index.name, format!("not JSON: {e}")))?;
    let versions = v
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| file_error(&index.name, "a delta index has a `versions` object"))?;
    let base = index.name.rsplit('/').next().unwrap_or(&index.name);
    let prefix = base.strip_suffix("delta.json").unwrap_or(base);
    let mut names: Vec<&String> = versions.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|ver| {
            let want = format!("{prefix}{ver}__entities.delta.json");
            files
                .iter()
                .find(|f| f.name.rsplit('/').next() == Some(want.as_str()))
                .ok_or_else(|| {
                    file_error(
                        &index.name,
                        format!("version {ver}: {want} is not beside the index"),
                    )
                })
        })
        .collect()
}

pub fn import(files: &[Input], base: &[ListEntry]) -> Result<Imported, ImportError> {
    let first = files.first().ok_or_else(|| ImportError::Missing {
        kind: "opensanctions",
        what: "an entities or delta file".into(),
    })?;
    let is_index = text(&first.bytes).contains("\"versions\"")
        && serde_json::from_str::<Value>(&text(&first.bytes))
            .is_ok_and(|v| v.get("versions").is_some());
    let order: Vec<&Input> = if is_index {
        index_files(first, files)?
    } else {
        files.iter().collect()
    };
    let deltas = order.iter().any(|f| {
        text(&f.bytes)
            .lines()
            .next()
            .is_some_and(|l| l.contains("\"op\""))
    });
    let mut current: BTreeMap<String, ListEntry> = if deltas || is_index {
        base.iter().map(|e| (e.id.clone(), e.clone())).collect()
    } else {
        BTreeMap::new()
    };
    let mut problems = Vec::new();
    for f in order {
        apply(f, &mut current, &mut problems);
    }
    Ok(Imported {
        entries: current.into_values().collect(),
        problems,
        files: vec![],
    })
}
