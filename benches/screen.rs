//! Screening throughput and latency against every list file in tests/data/sanctions, and
//! precision/recall on the labelled evaluation set at several thresholds.
//!
//! `cargo bench --bench screen` (env: BENCH_NAMES, default 100000; BENCH_RUNS, default 3;
//! medians).

mod common;
use common::{env, median, pct};

use std::path::Path;
use std::time::Instant;

use custody::screen::entry::{ListEntry, SourceKind};
use custody::screen::eval;
use custody::screen::import;
use custody::screen::lists::inputs;
use custody::screen::matcher::{Index, Level, Query, Thresholds};
use rayon::prelude::*;

fn lists() -> Vec<(String, Vec<ListEntry>)> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sanctions");
    let mut out = Vec::new();
    let mut add = |name: &str, kind: SourceKind, path: &Path, base: &[ListEntry]| {
        let files = inputs(kind, path).expect("inputs");
        let got = import::import(kind, &files, base).expect("import");
        out.push((name.to_owned(), got.entries));
    };
    add(
        "ofac-2019",
        SourceKind::OfacSdn,
        &d.join("ofac-sdn-2019"),
        &[],
    );
    add(
        "ofac-2021",
        SourceKind::OfacSdn,
        &d.join("ofac-sdn-2021"),
        &[],
    );
    add(
        "csl-2019",
        SourceKind::Csl,
        &d.join("csl/csl-2019-sample.csv"),
        &[],
    );
    add(
        "csl-2023",
        SourceKind::Csl,
        &d.join("csl/csl-2023-partial.csv"),
        &[],
    );
    add(
        "csl-2025",
        SourceKind::Csl,
        &d.join("csl/csl-2025-format-sample.csv"),
        &[],
    );
    add(
        "os-t1",
        SourceKind::Opensanctions,
        &d.join("opensanctions/t1__entities.ftm.json"),
        &[],
    );
    add(
        "os-t2",
        SourceKind::Opensanctions,
        &d.join("opensanctions/t2__delta.json"),
        &[],
    );
    out
}

/// Realistic party names: Chinese firms in English, pinyin and characters, bureaus, and
/// one in ten a variant of a listed name.
fn names(n: usize, listed: &[String]) -> Vec<String> {
    const PLACES: &[&str] = &[
        "Urumqi",
        "Kashgar",
        "Hotan",
        "Shanghai",
        "Shenzhen",
        "Guangzhou",
        "Beijing",
        "Hangzhou",
        "Chengdu",
        "Wuhan",
        "Xi'an",
        "Korla",
        "Karamay",
        "Tianjin",
        "Nanjing",
        "Xiamen",
    ];
    const TRADES: &[&str] = &[
        "Trading",
        "Scientific Instruments",
        "Biotechnology",
        "Medical Equipment",
        "Logistics",
        "Electronics",
        "Import and Export",
        "Laboratory Supply",
        "Genomics",
        "Software",
        "Precision Machinery",
        "Pharmaceutical",
        "Security Technology",
        "Optics",
    ];
    const FORMS: &[&str] = &["Co., Ltd.", "Co Ltd", "Limited", "Group Co", "Inc.", ""];
    const HAN: &[&str] = &["乌鲁木齐", "喀什", "上海", "深圳", "广州", "北京", "杭州"];
    const HAN_TRADE: &[&str] = &[
        "科技有限公司",
        "贸易有限公司",
        "生物技术有限公司",
        "医院",
        "公安局",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut r = |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    (0..n)
        .map(|i| match i % 10 {
            0 => {
                let l = &listed[r(listed.len())];
                // A variant: case and word order changed.
                let mut w: Vec<&str> = l.split_whitespace().collect();
                if w.len() > 2 {
                    w.swap(0, 1);
                }
                w.join(" ").to_lowercase()
            }
            1 | 2 => format!("{}{}", HAN[r(HAN.len())], HAN_TRADE[r(HAN_TRADE.len())]),
            3 => format!(
                "{} Municipal Public Security Bureau",
                PLACES[r(PLACES.len())]
            ),
            _ => format!(
                "{} {} {} {}",
                PLACES[r(PLACES.len())],
                [
                    "Tianshan",
                    "Pearl River",
                    "Golden",
                    "Silk Road",
                    "Huaxia",
                    "Kunlun",
                    "Great Wall"
                ][r(7)],
                TRADES[r(TRADES.len())],
                FORMS[r(FORMS.len())]
            ),
        })
        .collect()
}

fn main() {
    let n = env("BENCH_NAMES", 100_000);
    let runs = env("BENCH_RUNS", 3);
    let t = Instant::now();
    let all = lists();
    let import_secs = t.elapsed().as_secs_f64();
    let entries: usize = all.iter().map(|(_, e)| e.len()).sum();
    let listed: Vec<String> = all
        .iter()
        .flat_map(|(_, e)| e.iter().map(|x| x.name.clone()))
        .collect();
    let t = Instant::now();
    let ix = Index::build(all.iter().map(|(n, e)| (n.as_str(), e.as_slice())));
    let build_secs = t.elapsed().as_secs_f64();
    let queries = names(n, &listed);
    let th = Thresholds::default();
    let screen = |name: &str, limit: usize| {
        ix.screen(
            &Query {
                name: name.to_owned(),
                country: Some("CN".into()),
                date: None,
            },
            th,
            limit,
        )
    };
    let mut all_core = vec![];
    let mut one_core = vec![];
    let mut matched = 0;
    for _ in 0..runs {
        let t = Instant::now();
        matched = queries
            .par_iter()
            .filter(|q| screen(q, 5).iter().any(|c| c.level == Level::Match))
            .count();
        all_core.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for q in queries.iter().take(n / 10) {
            std::hint::black_box(screen(q, 5));
        }
        one_core.push(t.elapsed().as_secs_f64() * 10.0);
    }
    let mut lat = vec![];
    for q in queries.iter().step_by((n / 5000).max(1)) {
        let t = Instant::now();
        std::hint::black_box(screen(q, 10));
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cases = eval::parse(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/screening-eval.tsv"),
        )
        .expect("eval set"),
    )
    .expect("parse");
    // The evaluation set names entries of the 2021 OFAC and 2023 CSL files.
    let eval_ix = Index::build(
        all.iter()
            .filter(|(n, _)| n == "ofac-2021" || n == "csl-2023")
            .map(|(n, e)| {
                (
                    if n == "ofac-2021" { "ofac-sdn" } else { "csl" },
                    e.as_slice(),
                )
            }),
    );
    let cores = rayon::current_num_threads();
    let (a, o) = (median(all_core), median(one_core));
    println!("custody bench (screen): {n} generated names, {runs} runs, {cores} threads; medians");
    println!(
        "  lists: {} files' worth, {entries} entries, {} indexed names; import {import_secs:.2} s, index {build_secs:.2} s",
        all.len(),
        ix.name_count()
    );
    println!(
        "  screen {n} names, all cores  {a:>7.2} s  ({:.0} names/s; {matched} matched)",
        n as f64 / a
    );
    println!(
        "  screen {n} names, one core   {o:>7.2} s  ({:.0} names/s, extrapolated from {})",
        n as f64 / o,
        n / 10
    );
    println!(
        "  one query                    p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        pct(&mut lat, 50),
        pct(&mut lat, 99),
        pct(&mut lat, 100)
    );
    println!("  evaluation set ({} cases):", cases.len());
    for m in [0.75, 0.80, 0.83, 0.86, 0.90, 0.95] {
        let r = eval::evaluate(
            &eval_ix,
            &cases,
            Thresholds {
                matched: m,
                review: th.review,
            },
        );
        println!(
            "    match ≥ {m:.2}: precision {:.3} recall {:.3} (tp {} fp {} fn {} tn {}); review-level recall {:.3}",
            r.precision, r.recall, r.true_positives, r.false_positives, r.false_negatives, r.true_negatives, r.review_recall
        );
    }
}
