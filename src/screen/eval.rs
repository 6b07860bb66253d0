//! Precision and recall of the screener on a labelled set (`tests/data/screening-eval.tsv`),
//! used by the tests, the benchmark and to choose the default thresholds.
//!
//! A case names a listed entry (`LIST:ID`) or `none`. A named case is a true positive when
//! that entry is among the match-level candidates, else a false negative. A `none` case is
//! a false positive when anything matches.

use serde::Serialize;

use super::matcher::{Index, Level, Query, Thresholds};

#[derive(Clone, Debug)]
pub struct Case {
    pub line: usize,
    pub query: String,
    pub country: Option<String>,
    /// `(list, id)`, or `None` for a party that is not listed.
    pub expect: Option<(String, String)>,
    pub note: String,
}

/// Parses the TSV (`query, country or -, LIST:ID or none, note`; `#` comments).
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() < 3 {
            return Err(format!(
                "line {}: expected query, country, expected, note",
                i + 1
            ));
        }
        let expect = match f[2].trim() {
            "none" => None,
            e => {
                let (list, id) = e
                    .split_once(':')
                    .ok_or_else(|| format!("line {}: expected LIST:ID or none", i + 1))?;
                Some((list.to_owned(), id.to_owned()))
            }
        };
        out.push(Case {
            line: i + 1,
            query: f[0].to_owned(),
            country: (f[1].trim() != "-").then(|| f[1].trim().to_owned()),
            expect,
            note: f.get(3).map_or_else(String::new, |s| (*s).to_owned()),
        });
    }
    Ok(out)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub matched: f64,
    pub review: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub true_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    /// Positives found at review level or above.
    pub review_recall: f64,
    /// `line: query → what happened`, for each miss.
    pub misses: Vec<String>,
}

#[must_use]
pub fn evaluate(ix: &Index, cases: &[Case], th: Thresholds) -> Report {
    let mut r = Report {
        matched: th.matched,
        review: th.review,
        ..Report::default()
    };
    let mut review_hits = 0;
    let mut positives = 0;
    for c in cases {
        let got = ix.screen(
            &Query {
                name: c.query.clone(),
                country: c.country.clone(),
                date: None,
            },
            th,
            10,
        );
        let top = got.first().map_or_else(
            || "nothing".to_owned(),
            |t| format!("{}:{} {:.3}", t.list, t.entry_id, t.score),
        );
        match &c.expect {
            Some((list, id)) => {
                positives += 1;
                let hit = |lvl: Option<Level>| {
                    got.iter().any(|x| {
                        &x.list == list && &x.entry_id == id && lvl.is_none_or(|l| x.level == l)
                    })
                };
                if hit(None) {
                    review_hits += 1;
                }
                if hit(Some(Level::Match)) {
                    r.true_positives += 1;
                } else {
                    r.false_negatives += 1;
                    r.misses.push(format!(
                        "{}: {} → missed {list}:{id}; top {top}",
                        c.line, c.query
                    ));
                }
            }
            None => {
                if got.iter().any(|x| x.level == Level::Match) {
                    r.false_positives += 1;
                    r.misses
                        .push(format!("{}: {} → false match {top}", c.line, c.query));
                } else {
                    r.true_negatives += 1;
                }
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    r.precision = ratio(r.true_positives, r.true_positives + r.false_positives);
    r.recall = ratio(r.true_positives, r.true_positives + r.false_negatives);
    r.review_recall = ratio(review_hits, positives);
    r
}
