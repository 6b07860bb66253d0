//! Screening on the real published list files (copied from ../shared/data into
//! tests/data/sanctions): importers account for every row, snapshots diff, names match in
//! English, pinyin and characters, decoys do not, and hierarchy and ownership extend a
//! listing, date-aware.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use custody::core::ids::PartyId;
use custody::screen::entry::{Date, SourceKind};
use custody::screen::eval;
use custody::screen::hierarchy::{Finding, OwnerInfo, PartyInfo, Screener, Status};
use custody::screen::import::{self, Input};
use custody::screen::lists::{import_into, inputs, ListStore, MemoryLists, SledLists};
use custody::screen::matcher::{Index, Level, Query, Thresholds};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn csv_records(path: &Path) -> usize {
    let body = import::text(&std::fs::read(path).expect("read"));
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes())
        .records()
        .count()
}

/// Every sdn.csv row is an entry; every alt/add/comment row is attached or reported.
#[test]
fn ofac_rows_are_all_accounted_for() {
    for year in ["2019", "2021"] {
        let dir = data(&format!("sanctions/ofac-sdn-{year}"));
        let files = inputs(SourceKind::OfacSdn, &dir).expect("inputs");
        assert_eq!(files.len(), 4, "sdn, alt, add and comments are read");
        let got = import::import(SourceKind::OfacSdn, &files, &[]).expect("import");
        assert_eq!(
            got.entries.len(),
            csv_records(&dir.join("sdn.csv")),
            "{year}: one entry per row"
        );
        let aliases: usize = got.entries.iter().map(|e| e.aliases.len()).sum();
        let addresses: usize = got.entries.iter().map(|e| e.addresses.len()).sum();
        let reported = |f: &str| got.problems.iter().filter(|p| p.file == f).count();
        assert_eq!(
            aliases + reported("alt.csv"),
            csv_records(&dir.join("alt.csv")),
            "{year}: alt.csv"
        );
        // Addresses with every field empty add nothing but are not problems: count rows.
        let add_rows = csv_records(&dir.join("add.csv"));
        assert!(addresses + reported("add.csv") <= add_rows);
        for p in &got.problems {
            assert!(p.line > 0, "{year}: every problem has a line: {p:?}");
        }
    }
}

#[test]
fn ofac_entry_29159_has_its_aliases_and_address_and_not_the_decoy_row() {
    let files = inputs(SourceKind::OfacSdn, &data("sanctions/ofac-sdn-2021")).expect("inputs");
    let got = import::import(SourceKind::OfacSdn, &files, &[]).expect("import");
    let e = got.entries.iter().find(|e| e.id == "29159").expect("29159");
    assert_eq!(e.name, "XINJIANG PUBLIC SECURITY BUREAU");
    assert_eq!(e.programs, vec!["GLOMAG"]);
    assert_eq!(e.aliases.len(), 4);
    assert!(e
        .aliases
        .contains(&"PUBLIC SECURITY DEPARTMENT OF XUAR".to_owned()));
    // add.csv line 8136 is address 29159 of entry 19157 (Panama): not this entry's.
    assert_eq!(e.countries, vec!["China"]);
    assert_eq!(e.addresses, vec!["Xinjiang, China"]);
}

#[test]
fn importing_2019_then_2021_reports_the_xinjiang_listings_as_additions() {
    let store = MemoryLists::default();
    let first = import_into(
        &store,
        SourceKind::OfacSdn,
        None,
        &inputs(SourceKind::OfacSdn, &data("sanctions/ofac-sdn-2019")).expect("inputs"),
        "2019-12-31T00:00:00Z",
    )
    .expect("2019");
    assert_eq!((first.version, first.diff.from_version), (1, 0));
    let second = import_into(
        &store,
        SourceKind::OfacSdn,
        None,
        &inputs(
            SourceKind::OfacSdn,
            &data("sanctions/ofac-sdn-2021/sdn.csv"),
        )
        .expect("inputs"),
        "2021-07-31T00:00:00Z",
    )
    .expect("2021");
    assert_eq!((second.version, second.diff.from_version), (2, 1));
    let added: Vec<&str> = second
        .diff
        .added
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        added.contains(&"29159"),
        "XINJIANG PUBLIC SECURITY BUREAU added"
    );
    assert!(added.contains(&"29299"), "XPCC added");
    assert!(!second.diff.removed.is_empty() && !second.diff.changed.is_empty());
    // The same files again: unchanged, no new version.
    let again = import_into(
        &store,
        SourceKind::OfacSdn,
        None,
        &inputs(SourceKind::OfacSdn, &data("sanctions/ofac-sdn-2021")).expect("inputs"),
        "2021-08-01T00:00:00Z",
    )
    .expect("again");
    assert!(again.unchanged);
    assert_eq!(
        store.names().expect("names"),
        vec![("ofac-sdn".to_owned(), 2)]
    );
    assert_eq!(second.content_hash, again.content_hash);
}

#[test]
fn csl_files_with_header_variants_duplicates_and_a_truncated_row() {
    for file in [
        "csl-2019-sample.csv",
        "csl-2023-partial.csv",
        "csl-2025-format-sample.csv",
    ] {
        let path = data(&format!("sanctions/csl/{file}"));
        let headers = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .filter(|l| l.starts_with("_id,") || l.starts_with("source,"))
            .count();
        let rows = csv_records(&path) - headers;
        let got = import::import(
            SourceKind::Csl,
            &inputs(SourceKind::Csl, &path).expect("in"),
            &[],
        )
        .expect("import");
        // Rows = entries + reported rows (truncated or failing) + duplicate ids reported.
        assert_eq!(
            got.entries.len() + got.problems.len(),
            rows,
            "{file}: {:?}",
            got.problems
        );
        if file == "csl-2023-partial.csv" {
            let truncated = got
                .problems
                .iter()
                .find(|p| p.reason.contains("truncated"))
                .expect("the last row is truncated");
            assert_eq!(truncated.line, 4233);
        }
        assert!(got
            .entries
            .iter()
            .all(|e| !e.name.is_empty() && !e.id.is_empty()));
    }
    // The `?` for an apostrophe, `; `-separated values and start dates.
    let got = import::import(
        SourceKind::Csl,
        &inputs(SourceKind::Csl, &data("sanctions/csl/csl-2023-partial.csv")).expect("in"),
        &[],
    )
    .expect("import");
    let kunlun = got
        .entries
        .iter()
        .find(|e| e.id == "15268")
        .expect("Bank of Kunlun");
    assert_eq!(kunlun.aliases.len(), 2);
    assert!(kunlun.countries.contains(&"CN".to_owned()));
    assert!(got.entries.iter().any(|e| e.listed_on.is_some()));
    assert!(
        !got.entries.iter().any(|e| e.name.contains("s?")),
        "apostrophes restored"
    );
}

#[test]
fn csl_json_in_the_trade_gov_api_shape() {
    let json = br#"{"total": 2, "results": [
      {"id": "abc1", "source": "Entity List (EL) - Bureau of Industry and Security", "name": "Xinjiang Uighur Autonomous Region (XUAR) People?s Government Public Security Bureau",
       "alt_names": ["XUAR PSB"], "addresses": [{"address": "Urumqi", "city": "Urumqi", "country": "CN"}],
       "programs": [], "start_date": "2019-10-09", "federal_register_notice": "84 FR 54002", "type": "Entity"},
      {"source": "Entity List (EL) - Bureau of Industry and Security", "name": ""}
    ]}"#;
    let got = import::import(
        SourceKind::Csl,
        &[Input {
            name: "csl.json".into(),
            bytes: json.to_vec(),
        }],
        &[],
    )
    .expect("import");
    assert_eq!(got.entries.len(), 1);
    let e = &got.entries[0];
    assert_eq!(e.id, "abc1");
    assert!(e.name.contains("People's Government"));
    assert_eq!(e.listed_on, Date::parse("2019-10-09").ok());
    assert_eq!(e.countries, vec!["CN"]);
    assert_eq!(got.problems.len(), 1);
    assert!(got.problems[0].reason.contains("name field is empty"));
}

#[test]
fn opensanctions_entities_and_deltas() {
    let store = MemoryLists::default();
    let base = import_into(
        &store,
        SourceKind::Opensanctions,
        Some("os-t1"),
        &inputs(
            SourceKind::Opensanctions,
            &data("sanctions/opensanctions/t1__entities.ftm.json"),
        )
        .expect("in"),
        "t",
    )
    .expect("entities");
    let lines = std::fs::read_to_string(data("sanctions/opensanctions/t1__entities.ftm.json"))
        .expect("read")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(
        base.entries + base.problems.len(),
        lines,
        "{:?}",
        base.problems
    );
    // The t2 index applies its delta files in version order.
    let t2 = import_into(
        &store,
        SourceKind::Opensanctions,
        Some("os-t2"),
        &inputs(
            SourceKind::Opensanctions,
            &data("sanctions/opensanctions/t2__delta.json"),
        )
        .expect("in"),
        "t",
    )
    .expect("deltas");
    // ADD two, ADD + MOD, DEL the one added, ADD one: three remain, the MOD applied.
    assert_eq!((t2.entries, t2.problems.len()), (3, 0), "{:?}", t2.problems);
    let names: Vec<&str> = t2.diff.added.iter().map(|(_, n)| n.as_str()).collect();
    assert!(
        names.contains(&"Foobar Foobargroup") && !names.contains(&"AL-QAIDA IN IRAQ"),
        "{names:?}"
    );
    assert!(!t2
        .diff
        .added
        .iter()
        .any(|(id, _)| id == "NK-500Poltergeist"));
    // A delta against the stored list: MOD and DEL of unknown ids are reported.
    let delta = br#"{"op":"DEL","entity":{"id":"nobody"}}
{"op":"DEL","entity":{"id":"Q4365364"}}
not json
"#;
    let next = import_into(
        &store,
        SourceKind::Opensanctions,
        Some("os-t2"),
        &[Input {
            name: "x__entities.delta.json".into(),
            bytes: delta.to_vec(),
        }],
        "t",
    )
    .expect("delta");
    assert_eq!((next.version, next.entries), (2, 2));
    assert_eq!(next.diff.removed.len(), 1);
    let lines: Vec<u64> = next.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![1, 3], "{:?}", next.problems);
}

#[test]
fn deny_lists_in_csv_and_json() {
    let csv = b"id,name,aliases,country,listed_on,reason\nD1,Pearl River Trading Co Ltd,Pearl River Trading; PRT,CN,2024-03-01,unauthorized distributor\nD2,,,,,\nD3,Kashgar Lab Supply,,CN,not a date,x\n";
    let got = import::import(
        SourceKind::Denylist,
        &[Input {
            name: "deny.csv".into(),
            bytes: csv.to_vec(),
        }],
        &[],
    )
    .expect("csv");
    assert_eq!(got.entries.len(), 1);
    assert_eq!(got.entries[0].aliases, vec!["Pearl River Trading", "PRT"]);
    let lines: Vec<u64> = got.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 4]);
    let json = br#"[{"name": "Tianshan Scientific", "country": ["CN"], "aliases": ["Tianshan Sci"]}, {"country": "CN"}]"#;
    let got = import::import(
        SourceKind::Denylist,
        &[Input {
            name: "deny.json".into(),
            bytes: json.to_vec(),
        }],
        &[],
    )
    .expect("json");
    assert_eq!((got.entries.len(), got.problems.len()), (1, 1));
    assert_eq!(got.entries[0].id, "item-1");
}

/// The index over OFAC 2021 and the CSL 2023 file, as the evaluation set expects.
fn index() -> Index {
    let of = import::import(
        SourceKind::OfacSdn,
        &inputs(SourceKind::OfacSdn, &data("sanctions/ofac-sdn-2021")).expect("in"),
        &[],
    )
    .expect("ofac");
    let csl = import::import(
        SourceKind::Csl,
        &inputs(SourceKind::Csl, &data("sanctions/csl/csl-2023-partial.csv")).expect("in"),
        &[],
    )
    .expect("csl");
    Index::build([
        ("ofac-sdn", of.entries.as_slice()),
        ("csl", csl.entries.as_slice()),
    ])
}

#[test]
fn evaluation_set_precision_and_recall_at_the_default_thresholds() {
    let ix = index();
    let cases =
        eval::parse(&std::fs::read_to_string(data("screening-eval.tsv")).expect("eval set"))
            .expect("parses");
    assert!(cases.len() >= 80);
    let r = eval::evaluate(&ix, &cases, Thresholds::default());
    assert!(
        r.precision >= 0.95 && r.recall >= 0.95,
        "precision {:.3} recall {:.3}; misses: {:#?}",
        r.precision,
        r.recall,
        r.misses
    );
}

fn top(ix: &Index, name: &str, country: Option<&str>) -> Option<(String, Level, f64)> {
    ix.screen(
        &Query {
            name: name.into(),
            country: country.map(str::to_owned),
            date: None,
        },
        Thresholds::default(),
        3,
    )
    .into_iter()
    .next()
    .map(|c| (c.entry_id, c.level, c.score))
}

#[test]
fn the_xinjiang_bureau_matches_in_every_script_and_decoys_do_not() {
    let ix = index();
    for q in [
        "Xinjiang Public Security Bureau",
        "Xinjiang Public Security Department",
        "Xinjiang Gonganting",
        "新疆公安厅",
        "新疆维吾尔自治区公安局",
        "XUAR PSB",
    ] {
        let (id, level, _) = top(&ix, q, Some("CN")).expect(q);
        assert_eq!((id.as_str(), level), ("29159", Level::Match), "{q}");
    }
    for q in [
        "Guangdong Provincial Public Security Department",
        "上海市公安局",
        "Xinjiang Medical University First Affiliated Hospital",
        "Urumqi Tianshan Trading Co Ltd",
        "Kashgar City Public Security Bureau",
    ] {
        assert!(
            top(&ix, q, Some("CN")).is_none_or(|(_, l, _)| l != Level::Match),
            "{q} must not match"
        );
    }
    // Explanations name the rule that kept another city's bureau down.
    let c = ix.screen(
        &Query {
            name: "Xinjiang Kashgar Public Security Bureau".into(),
            country: Some("CN".into()),
            date: None,
        },
        Thresholds::default(),
        1,
    );
    let c = c.first().expect("a review candidate");
    assert_eq!(c.level, Level::Review);
    assert!(
        c.rules.iter().any(|r| r.starts_with("extra_place")),
        "{:?}",
        c.rules
    );
}

fn id(n: u8) -> PartyId {
    PartyId::parse(&format!("{n:032x}")).expect("id")
}

fn party(n: u8, name: &str, parent: Option<u8>, owners: Vec<OwnerInfo>) -> PartyInfo {
    PartyInfo {
        id: id(n),
        names: vec![name.into()],
        country: Some("CN".into()),
        parent: parent.map(id),
        owners,
    }
}

#[test]
fn subordinates_and_majority_owned_parties_are_restricted_with_the_path() {
    let ix = index();
    let owner = |name: &str, p: Option<u8>, bps: u32| OwnerInfo {
        name: name.into(),
        party: p.map(id),
        share_bps: bps,
    };
    let parties: HashMap<PartyId, PartyInfo> = [
        party(
            1,
            "Xinjiang Uyghur Autonomous Region Public Security Department",
            None,
            vec![],
        ),
        party(
            2,
            "Bayingolin Mongol Autonomous Prefecture Public Security Bureau",
            Some(1),
            vec![],
        ),
        party(3, "Korla City Public Security Bureau", Some(2), vec![]),
        party(4, "Guangzhou Trading Co", None, vec![]),
        party(
            5,
            "Korla Security Technology Co",
            None,
            vec![
                owner("Korla City PSB", Some(3), 3000),
                owner("XPCC", None, 2500),
            ],
        ),
        party(
            6,
            "Minority Holding Co",
            None,
            vec![owner("Korla City PSB", Some(3), 4999)],
        ),
        party(7, "Loop A", Some(8), vec![]),
        party(8, "Loop B", Some(7), vec![]),
    ]
    .into_iter()
    .map(|p| (p.id.clone(), p))
    .collect();
    let mut s = Screener::new(&ix, &parties, Thresholds::default(), None);

    let korla = s.party(&id(3)).expect("screen");
    assert_eq!(korla.status, Status::Restricted);
    let Finding::Subordinate { path, ancestor } = &korla.findings[0] else {
        panic!("expected a subordinate finding: {:?}", korla.findings);
    };
    let names: Vec<&str> = path.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "Bayingolin Mongol Autonomous Prefecture Public Security Bureau",
            "Xinjiang Uyghur Autonomous Region Public Security Department"
        ]
    );
    let Finding::Listed { candidate } = ancestor.as_ref() else {
        panic!("the ancestor is listed");
    };
    assert_eq!(candidate.entry_id, "29159");

    // 30% by a restricted ledger party + 25% by a listed name = 55%: restricted.
    let owned = s.party(&id(5)).expect("screen");
    assert_eq!(owned.status, Status::Restricted);
    assert!(
        matches!(
            &owned.findings[..],
            [Finding::Owned {
                total_bps: 5500,
                ..
            }]
        ),
        "{:?}",
        owned.findings
    );
    // 49.99%: not.
    assert_ne!(s.party(&id(6)).expect("screen").status, Status::Restricted);
    assert_eq!(s.party(&id(4)).expect("screen").status, Status::Clear);
    let looped = s.party(&id(7)).expect("a cycle ends");
    assert!(
        looped.notes.iter().any(|n| n.contains("cycle")),
        "{:?}",
        looped.notes
    );
}

#[test]
fn screening_is_date_aware() {
    let csl = br#"{"results": [{"id": "el-1", "source": "Entity List (EL) - Bureau of Industry and Security",
        "name": "Urumqi Municipal Public Security Bureau", "start_date": "2019-10-09", "addresses": [], "type": "Entity"}]}"#;
    let got = import::import(
        SourceKind::Csl,
        &[Input {
            name: "el.json".into(),
            bytes: csl.to_vec(),
        }],
        &[],
    )
    .expect("import");
    let ix = Index::build([("el", got.entries.as_slice())]);
    let at = |d: &str| {
        ix.screen(
            &Query {
                name: "乌鲁木齐市公安局".into(),
                country: Some("CN".into()),
                date: Some(Date::parse(d).expect("date")),
            },
            Thresholds::default(),
            1,
        )
    };
    let before = at("2019-06-01");
    assert!(!before[0].in_force && before[0].rules.iter().any(|r| r == "listed_after_date"));
    assert!(at("2019-10-09")[0].in_force);
    let parties: HashMap<PartyId, PartyInfo> =
        [party(1, "Urumqi City Public Security Bureau", None, vec![])]
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
    let d = |s: &str| Some(Date::parse(s).expect("date"));
    let early = Screener::new(&ix, &parties, Thresholds::default(), d("2019-01-01"))
        .party(&id(1))
        .expect("screen");
    assert_ne!(early.status, Status::Restricted, "not listed yet");
    let late = Screener::new(&ix, &parties, Thresholds::default(), d("2020-01-01"))
        .party(&id(1))
        .expect("screen");
    assert_eq!(late.status, Status::Restricted);
}

#[test]
fn snapshots_persist_in_sled() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let db = custody::store::SledStore::open(dir.path()).expect("open");
        let lists = SledLists::open(db.db()).expect("lists");
        import_into(
            &lists,
            SourceKind::Csl,
            Some("csl-2025"),
            &inputs(
                SourceKind::Csl,
                &data("sanctions/csl/csl-2025-format-sample.csv"),
            )
            .expect("in"),
            "t",
        )
        .expect("import");
    }
    let db = custody::store::SledStore::open(dir.path()).expect("reopen");
    let lists = SledLists::open(db.db()).expect("lists");
    let s = lists.latest("csl-2025").expect("read").expect("stored");
    assert_eq!((s.version, s.entries.len()), (1, 13));
    assert!(matches!(
        import_into(&lists, SourceKind::Csl, Some("Bad Name"), &[], "t"),
        Err(custody::screen::lists::ListError::BadName(_))
    ));
}
