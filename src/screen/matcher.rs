//! The screening index and scorer.
//!
//! Every name of every entry is normalised once and indexed by token (blocking): a query
//! only scores names that share a token with it, or a token within Jaro-Winkler 0.92 of
//! one of its own (found through a 3-letter prefix table). Tokens weigh by rarity,
//! `ln(1 + N / df)` over the N indexed names, so "public security bureau" counts little and
//! the place name a lot. The score of a pair is a soft, weighted Dice coefficient:
//! `Σ matched pairs sim·(w_q + w_n) / (Σ w(query) + Σ w(name))`, with tokens paired
//! greedily by similarity (1 for equal tokens, Jaro-Winkler ≥ 0.92 otherwise). Then rules:
//! - `place_conflict`: both names name places and none agree → score halved;
//! - `extra_place`: they share a place but one names another → held below `match`;
//! - `place_unconfirmed`: only one of the two names names a place → held below `match`;
//! - `split_word`: one side writes as two tokens what the other writes as one;
//! - `country_agrees` (+0.03, capped at 1) / `country_differs` (×0.92) when the query has
//!   a country and the entry names countries;
//! - `listed_after_date`: with a date, an entry listed later does not count.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::entry::{Date, ListEntry};
use super::normalize::{country_code, normalize, related, Normalized};

/// Jaro-Winkler similarity at which two different tokens are taken as one misspelt.
pub const FUZZY: f64 = 0.92;

/// Score thresholds. Defaults chosen on `tests/data/screening-eval.tsv` (BENCHMARKS.md).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// At or above: a match (the party is treated as listed).
    pub matched: f64,
    /// At or above (and below `matched`): a possible match for human review.
    pub review: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            matched: 0.86,
            review: 0.70,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Match,
    Review,
}

/// One pair of tokens that counted.
#[derive(Clone, Debug, Serialize)]
pub struct TokenMatch {
    pub query: String,
    pub name: String,
    pub similarity: f64,
    pub weight: f64,
}

/// A candidate with everything that explains its score.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub list: String,
    pub entry_id: String,
    pub entry_name: String,
    /// The name of the entry that scored best, as published.
    pub matched_name: String,
    pub level: Level,
    pub score: f64,
    pub query_form: String,
    pub name_form: String,
    pub tokens: Vec<TokenMatch>,
    /// Rules that changed the score, in order.
    pub rules: Vec<String>,
    pub programs: Vec<String>,
    pub source_list: String,
    pub listed_on: Option<Date>,
    /// False when screening for a date before the listing.
    pub in_force: bool,
}

/// What to screen.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub name: String,
    pub country: Option<String>,
    pub date: Option<Date>,
}

struct NameRec {
    entry: u32,
    /// Index into the entry's names (0 = primary).
    which: u16,
    tokens: Vec<u32>,
    places: Vec<u32>,
}

struct Indexed {
    list: String,
    entry: ListEntry,
    countries: HashSet<String>,
}

/// An index over the entries of one or more list snapshots.
pub struct Index {
    entries: Vec<Indexed>,
    names: Vec<NameRec>,
    vocab: HashMap<String, u32>,
    words: Vec<String>,
    df: Vec<u32>,
    postings: Vec<Vec<u32>>,
    prefixes: HashMap<String, Vec<u32>>,
}

fn prefix(w: &str) -> Option<String> {
    (w.chars().count() >= 4).then(|| w.chars().take(3).collect())
}

fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    if let Some(s) = related(a, b) {
        return s;
    }
    if a.chars().count() < 4
        || b.chars().count() < 4
        || a.chars().any(|c| c.is_ascii_digit())
        || b.chars().any(|c| c.is_ascii_digit())
    {
        return 0.0;
    }
    let s = strsim::jaro_winkler(a, b);
    if s >= FUZZY {
        s
    } else {
        0.0
    }
}

impl Index {
    /// Indexes `(list name, entry)` pairs.
    pub fn build<'a>(lists: impl IntoIterator<Item = (&'a str, &'a [ListEntry])>) -> Self {
        let mut ix = Self {
            entries: Vec::new(),
            names: Vec::new(),
            vocab: HashMap::new(),
            words: Vec::new(),
            df: Vec::new(),
            postings: Vec::new(),
            prefixes: HashMap::new(),
        };
        for (list, entries) in lists {
            for e in entries {
                let entry = ix.entries.len() as u32;
                for (which, name) in e.names().enumerate() {
                    let n = normalize(name);
                    if n.tokens.is_empty() {
                        continue;
                    }
                    let id = ix.names.len() as u32;
                    let tokens: Vec<u32> = n.tokens.iter().map(|w| ix.word(w)).collect();
                    for &t in &tokens {
                        ix.df[t as usize] += 1;
                        ix.postings[t as usize].push(id);
                    }
                    let places = n.places.iter().map(|w| ix.vocab[w.as_str()]).collect();
                    ix.names.push(NameRec {
                        entry,
                        which: u16::try_from(which).unwrap_or(u16::MAX),
                        tokens,
                        places,
                    });
                }
                ix.entries.push(Indexed {
                    list: list.to_owned(),
                    countries: e.countries.iter().filter_map(|c| country_code(c)).collect(),
                    entry: e.clone(),
                });
            }
        }
        ix
    }

    fn word(&mut self, w: &str) -> u32 {
        if let Some(&id) = self.vocab.get(w) {
            return id;
        }
        let id = self.words.len() as u32;
        self.vocab.insert(w.to_owned(), id);
        self.words.push(w.to_owned());
        self.df.push(0);
        self.postings.push(Vec::new());
        if let Some(p) = prefix(w) {
            self.prefixes.entry(p).or_default().push(id);
        }
        id
    }

    #[must_use]
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    fn weight_of(&self, df: u32) -> f64 {
        (1.0 + self.names.len().max(1) as f64 / f64::from(df.max(1))).ln()
    }

    /// Weight of a query token: as indexed, or (unknown) as rare as a token can be.
    fn query_weight(&self, w: &str) -> f64 {
        self.vocab.get(w).map_or_else(
            || self.weight_of(1),
            |&t| self.weight_of(self.df[t as usize]),
        )
    }

    /// Names sharing a token (or a near-spelling of one) with the query.
    fn block(&self, q: &Normalized) -> Vec<u32> {
        let common = (self.names.len() / 20).max(2000) as u32;
        let mut rare: Vec<u32> = Vec::new();
        let mut all: Vec<u32> = Vec::new();
        for w in &q.tokens {
            let mut ids: Vec<u32> = self.vocab.get(w).copied().into_iter().collect();
            if let Some(p) = prefix(w) {
                if let Some(similar) = self.prefixes.get(&p) {
                    ids.extend(similar.iter().copied().filter(|&t| {
                        self.words[t as usize] != *w && similarity(w, &self.words[t as usize]) > 0.0
                    }));
                }
            }
            for t in ids {
                all.push(t);
                if self.df[t as usize] <= common {
                    rare.push(t);
                }
            }
        }
        let use_tokens = if rare.is_empty() { all } else { rare };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for t in use_tokens {
            for &n in &self.postings[t as usize] {
                if seen.insert(n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// Scores one indexed name against the normalised query.
    fn score(
        &self,
        q: &Normalized,
        qw: &[f64],
        n: &NameRec,
        th: Thresholds,
    ) -> (f64, Vec<TokenMatch>, Vec<String>, f64) {
        let nw: Vec<f64> = n
            .tokens
            .iter()
            .map(|&t| self.weight_of(self.df[t as usize]))
            .collect();
        let mut order: Vec<usize> = (0..q.tokens.len()).collect();
        order.sort_by(|&a, &b| {
            qw[b]
                .partial_cmp(&qw[a])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut used = vec![false; n.tokens.len()];
        let mut matched = 0.0;
        let mut pairs = Vec::new();
        for qi in order {
            let best = n
                .tokens
                .iter()
                .enumerate()
                .filter(|(k, _)| !used[*k])
                .map(|(k, &t)| (k, similarity(&q.tokens[qi], &self.words[t as usize])))
                .filter(|(_, s)| *s > 0.0)
                .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
            if let Some((k, s)) = best {
                used[k] = true;
                matched += s * (qw[qi] + nw[k]);
                pairs.push(TokenMatch {
                    query: q.tokens[qi].clone(),
                    name: self.words[n.tokens[k] as usize].clone(),
                    similarity: s,
                    weight: qw[qi].max(nw[k]),
                });
            }
        }
        let mut rules = vec!["weighted_token_match".to_owned()];
        // A word written as two on one side ("aero caribbean" / "aerocaribbean").
        let q_used: Vec<bool> = (0..q.tokens.len())
            .map(|qi| pairs.iter().any(|p| p.query == q.tokens[qi]))
            .collect();
        for (k, &t) in n.tokens.iter().enumerate() {
            if used[k] {
                continue;
            }
            let word = &self.words[t as usize];
            let split = (0..q.tokens.len().saturating_sub(1)).find(|&i| {
                !q_used[i]
                    && !q_used[i + 1]
                    && similarity(&format!("{}{}", q.tokens[i], q.tokens[i + 1]), word) > 0.0
            });
            if let Some(i) = split {
                used[k] = true;
                matched += qw[i] + qw[i + 1] + nw[k];
                rules.push(format!(
                    "split_word: {} {} = {word}",
                    q.tokens[i],
                    q.tokens[i + 1]
                ));
            }
        }
        let total: f64 = qw.iter().sum::<f64>() + nw.iter().sum::<f64>();
        let mut score = if total > 0.0 { matched / total } else { 0.0 };
        // Place rules cap the final score (after the country adjustment).
        let mut cap = 1.0_f64;
        if q.places.is_empty() != n.places.is_empty() {
            rules.push("place_unconfirmed: only one of the names names a place".into());
            cap = th.matched - 0.01;
        }
        if !q.places.is_empty() && !n.places.is_empty() {
            let name_places: Vec<&str> = n
                .places
                .iter()
                .map(|&t| self.words[t as usize].as_str())
                .collect();
            let shared = q
                .places
                .iter()
                .filter(|p| name_places.contains(&p.as_str()))
                .count();
            if shared == 0 {
                score *= 0.5;
                rules.push(format!(
                    "place_conflict: {} vs {}",
                    q.places.join("/"),
                    name_places.join("/")
                ));
            } else if shared < q.places.len() || shared < name_places.len() {
                rules.push("extra_place: the names share a place but one names another".into());
                cap = th.matched - 0.01;
            }
        }
        (score, pairs, rules, cap)
    }

    /// Screens one name; candidates at or above `review`, best first, at most `limit`.
    #[must_use]
    pub fn screen(&self, q: &Query, th: Thresholds, limit: usize) -> Vec<Candidate> {
        let norm = normalize(&q.name);
        if norm.tokens.is_empty() {
            return Vec::new();
        }
        let qw: Vec<f64> = norm.tokens.iter().map(|w| self.query_weight(w)).collect();
        let country = q.country.as_deref().and_then(country_code);
        let mut best: HashMap<u32, Candidate> = HashMap::new();
        for nid in self.block(&norm) {
            let n = &self.names[nid as usize];
            let (mut score, tokens, mut rules, cap) = self.score(&norm, &qw, n, th);
            let ix = &self.entries[n.entry as usize];
            if let Some(c) = &country {
                if !ix.countries.is_empty() {
                    if ix.countries.contains(c) {
                        score = (score + 0.03).min(1.0);
                        rules.push(format!("country_agrees: {c}"));
                    } else {
                        score *= 0.92;
                        rules.push(format!("country_differs: {c} not in {:?}", ix.countries));
                    }
                }
            }
            score = score.min(cap);
            if score < th.review {
                continue;
            }
            let in_force = match (q.date, ix.entry.listed_on) {
                (Some(d), Some(l)) => l <= d,
                _ => true,
            };
            if !in_force {
                rules.push("listed_after_date".into());
            }
            let level = if score >= th.matched {
                Level::Match
            } else {
                Level::Review
            };
            let names: Vec<&str> = ix.entry.names().collect();
            let cand = Candidate {
                list: ix.list.clone(),
                entry_id: ix.entry.id.clone(),
                entry_name: ix.entry.name.clone(),
                matched_name: names
                    .get(usize::from(n.which))
                    .map_or_else(String::new, |s| (*s).to_owned()),
                level,
                score: (score * 1000.0).round() / 1000.0,
                query_form: norm.form(),
                name_form: n
                    .tokens
                    .iter()
                    .map(|&t| self.words[t as usize].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                tokens,
                rules,
                programs: ix.entry.programs.clone(),
                source_list: ix.entry.source_list.clone(),
                listed_on: ix.entry.listed_on,
                in_force,
            };
            match best.get(&n.entry) {
                Some(c) if c.score >= cand.score => {}
                _ => {
                    best.insert(n.entry, cand);
                }
            }
        }
        let mut out: Vec<Candidate> = best.into_values().collect();
        out.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.entry_id.cmp(&b.entry_id))
        });
        out.truncate(limit);
        out
    }
}
