//! OFAC SDN legacy CSV: `sdn.csv` (required) with `alt.csv`, `add.csv` and
//! `sdn_comments.csv` (each optional). No header rows; `-0- ` means empty; the files end
//! with a DOS end-of-file mark.
//!
//! - sdn.csv: ent_num, name, type, programs (`A] [B`), title, call sign, vessel type,
//!   tonnage, GRT, vessel flag, vessel owner, remarks
//! - alt.csv: ent_num, alt_num, alt_type, alt_name, remarks
//! - add.csv: ent_num, add_num, address, city/state/postal, country, remarks
//! - sdn_comments.csv: ent_num, remarks continued

use std::collections::HashMap;

use super::{csv_records, ImportError, Imported, Input};
use crate::screen::entry::{EntryType, ListEntry, RowProblem};

fn field(s: &str) -> Option<String> {
    let t = s.trim();
    (t != "-0-" && !t.is_empty()).then(|| t.to_owned())
}

/// Every record with `want` fields, with its line; others are reported.
fn records(f: &Input, want: usize, problems: &mut Vec<RowProblem>) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    for (line, rec) in csv_records(f, problems) {
        if rec.len() == want {
            out.push((line, rec.iter().map(str::to_owned).collect()));
        } else {
            problems.push(RowProblem {
                file: f.name.clone(),
                line,
                reason: format!("expected {want} fields, found {}", rec.len()),
            });
        }
    }
    out
}

fn find<'a>(files: &'a [Input], name: &str) -> Option<&'a Input> {
    files.iter().find(|f| {
        f.name
            .rsplit('/')
            .next()
            .unwrap_or(&f.name)
            .eq_ignore_ascii_case(name)
    })
}

pub fn import(files: &[Input]) -> Result<Imported, ImportError> {
    let sdn = find(files, "sdn.csv").ok_or_else(|| ImportError::Missing {
        kind: "ofac-sdn",
        what: "sdn.csv (with alt.csv, add.csv and sdn_comments.csv beside it)".into(),
    })?;
    let mut problems = Vec::new();
    let mut entries: Vec<ListEntry> = Vec::new();
    let mut by_num: HashMap<String, usize> = HashMap::new();
    for (line, r) in records(sdn, 12, &mut problems) {
        let (Some(num), Some(name)) = (field(&r[0]), field(&r[1])) else {
            problems.push(RowProblem {
                file: sdn.name.clone(),
                line,
                reason: "an entry needs ent_num and name".into(),
            });
            continue;
        };
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            problems.push(RowProblem {
                file: sdn.name.clone(),
                line,
                reason: format!("ent_num {num:?} is not a number"),
            });
            continue;
        }
        let entry_type = field(&r[2]).map_or(EntryType::Entity, |t| EntryType::parse(&t));
        let programs = field(&r[3])
            .map(|p| {
                p.split("] [")
                    .map(|x| x.trim_matches(['[', ']', ' ']).to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut identifiers = Vec::new();
        if let Some(c) = field(&r[5]) {
            identifiers.push(format!("call sign {c}"));
        }
        let mut countries = Vec::new();
        if let Some(flag) = field(&r[9]) {
            countries.push(flag);
        }
        by_num.insert(num.clone(), entries.len());
        entries.push(ListEntry {
            id: num,
            entry_type,
            name,
            aliases: vec![],
            programs,
            countries,
            addresses: vec![],
            identifiers,
            listed_on: None,
            notice: field(&r[11]),
            source_list: "Specially Designated Nationals (SDN) - Treasury Department".into(),
        });
    }
    let mut attach = |f: &Input, want: usize, apply: &mut dyn FnMut(&mut ListEntry, &[String])| {
        for (line, r) in records(f, want, &mut problems) {
            match field(&r[0]).and_then(|n| by_num.get(&n)) {
                Some(&i) => apply(&mut entries[i], &r),
                None => problems.push(RowProblem {
                    file: f.name.clone(),
                    line,
                    reason: format!("ent_num {:?} is not in sdn.csv", r[0].trim()),
                }),
            }
        }
    };
    if let Some(alt) = find(files, "alt.csv") {
        attach(alt, 5, &mut |e, r| {
            if let Some(a) = field(&r[3]) {
                e.aliases.push(a);
            }
        });
    }
    if let Some(add) = find(files, "add.csv") {
        attach(add, 6, &mut |e, r| {
            let parts: Vec<String> = [&r[2], &r[3], &r[4]]
                .iter()
                .filter_map(|s| field(s))
                .collect();
            if !parts.is_empty() {
                e.addresses.push(parts.join(", "));
            }
            if let Some(c) = field(&r[4]) {
                if !e.countries.contains(&c) {
                    e.countries.push(c);
                }
            }
        });
    }
    if let Some(com) = find(files, "sdn_comments.csv") {
        attach(com, 2, &mut |e, r| {
            if let Some(more) = field(&r[1]) {
                let n = e.notice.get_or_insert_with(String::new);
                n.push_str(&more);
            }
        });
    }
    Ok(Imported {
        entries,
        problems,
        files: vec![],
    })
}
