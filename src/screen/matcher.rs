//! The screening index and scorer.
//!
//! Every name of every entry is normalised once and indexed by token. Each indexed token
//! knows its near neighbours (Jaro-Winkler ≥ 0.92 within its 3-letter prefix bucket, and
//! the related pairs of the tables), computed once at build time. Blocking: a query takes
//! its rarest tokens until they carry more than half of its weight; a name that contains
//! none of them (or their neighbours) cannot reach 0.7 and is never scored (names that
//! hold the join of two adjacent query tokens are added for the `split_word` rule). Tokens weigh by rarity,
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
    /// Near neighbours of each token (other tokens, similarity), sorted by token id.
    near: Vec<Vec<(u32, f64)>>,
}

fn prefix(w: &str) -> Option<String> {
    (w.chars().count() >= 4).then(|| w.chars().take(3).collect())
}

/// Similarity of two different tokens: related pairs, else Jaro-Winkler ≥ `FUZZY` for
/// words of 4+ letters without digits, else 0.
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

/// One query token, resolved against the index.
struct QTok {
    word: String,
    id: Option<u32>,
    weight: f64,
    /// Indexed tokens it matches other than itself, with their similarity, sorted by id.
    near: Vec<(u32, f64)>,
    place: bool,
}

impl QTok {
    fn sim(&self, t: u32) -> f64 {
        if self.id == Some(t) {
            return 1.0;
        }
        self.near
            .binary_search_by_key(&t, |(id, _)| *id)
            .map_or(0.0, |k| self.near[k].1)
    }
}

/// A scored name before it becomes a `Candidate`.
struct Scored {
    score: f64,
    pairs: Vec<(usize, usize, f64)>,
    rules: Vec<String>,
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
            near: Vec::new(),
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
        ix.near = (0..ix.words.len())
            .map(|t| ix.neighbours(&ix.words[t], Some(t as u32)))
            .collect();
        ix
    }

    /// Indexed tokens within `similarity` of `w` (other than `own`), sorted by id.
    fn neighbours(&self, w: &str, own: Option<u32>) -> Vec<(u32, f64)> {
        let mut out: Vec<(u32, f64)> = Vec::new();
        if let Some(bucket) = prefix(w).and_then(|p| self.prefixes.get(&p)) {
            for &t in bucket {
                if Some(t) != own {
                    let s = similarity(w, &self.words[t as usize]);
                    if s > 0.0 {
                        out.push((t, s));
                    }
                }
            }
        }
        for r in super::normalize::related_to(w) {
            if let Some(&t) = self.vocab.get(r.0.as_str()) {
                if Some(t) != own && !out.iter().any(|(x, _)| *x == t) {
                    out.push((t, r.1));
                }
            }
        }
        out.sort_by_key(|(t, _)| *t);
        out
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

    fn resolve(&self, q: &Normalized) -> Vec<QTok> {
        q.tokens
            .iter()
            .map(|w| {
                let id = self.vocab.get(w).copied();
                let near = match id {
                    Some(t) => self.near[t as usize].clone(),
                    None => self.neighbours(w, None),
                };
                QTok {
                    weight: id.map_or_else(
                        || self.weight_of(1),
                        |t| self.weight_of(self.df[t as usize]),
                    ),
                    word: w.clone(),
                    id,
                    near,
                    place: q.places.contains(w),
                }
            })
            .collect()
    }

    /// Names that can reach the review threshold: those containing one of the query's
    /// rarest tokens (or a neighbour), taken until they carry over half the query weight.
    fn block(&self, q: &[QTok]) -> Vec<u32> {
        let total: f64 = q.iter().map(|t| t.weight).sum();
        let mut order: Vec<&QTok> = q.iter().collect();
        order.sort_by(|a, b| {
            b.weight
                .partial_cmp(&a.weight)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut covered = 0.0;
        for t in order {
            for id in t.id.into_iter().chain(t.near.iter().map(|(x, _)| *x)) {
                for &n in &self.postings[id as usize] {
                    if seen.insert(n) {
                        out.push(n);
                    }
                }
            }
            covered += t.weight;
            if covered > total * 0.5 {
                break;
            }
        }
        // Words split in two by the query (the `split_word` rule) block by their join.
        for w in q.windows(2) {
            let joined = format!("{}{}", w[0].word, w[1].word);
            // Exact joins only: a fuzzy search per pair would double the cost of a query.
            if let Some(id) = self.vocab.get(&joined).copied() {
                for &n in &self.postings[id as usize] {
                    if seen.insert(n) {
                        out.push(n);
                    }
                }
            }
        }
        out
    }

    /// Scores one indexed name against the resolved query.
    fn score(&self, q: &[QTok], n: &NameRec, th: Thresholds) -> (Scored, f64) {
        let nw: Vec<f64> = n
            .tokens
            .iter()
            .map(|&t| self.weight_of(self.df[t as usize]))
            .collect();
        let mut order: Vec<usize> = (0..q.len()).collect();
        order.sort_by(|&a, &b| {
            q[b].weight
                .partial_cmp(&q[a].weight)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut used = vec![false; n.tokens.len()];
        let mut q_used = vec![false; q.len()];
        let mut matched = 0.0;
        let mut pairs = Vec::new();
        for qi in order {
            let mut best: Option<(usize, f64)> = None;
            for (k, &t) in n.tokens.iter().enumerate() {
                if used[k] {
                    continue;
                }
                let s = q[qi].sim(t);
                if s > 0.0 && best.is_none_or(|(_, b)| s > b) {
                    best = Some((k, s));
                }
            }
            if let Some((k, s)) = best {
                used[k] = true;
                q_used[qi] = true;
                matched += s * (q[qi].weight + nw[k]);
                pairs.push((qi, k, s));
            }
        }
        let mut rules = vec!["weighted_token_match".to_owned()];
        // A word written as two on one side ("aero caribbean" / "aerocaribbean").
        if q.len() >= 2 && used.iter().any(|u| !u) {
            for (k, &t) in n.tokens.iter().enumerate() {
                if used[k] {
                    continue;
                }
                let word = &self.words[t as usize];
                let split = (0..q.len() - 1).find(|&i| {
                    !q_used[i]
                        && !q_used[i + 1]
                        && similarity(&format!("{}{}", q[i].word, q[i + 1].word), word) > 0.0
                });
                if let Some(i) = split {
                    used[k] = true;
                    q_used[i] = true;
                    q_used[i + 1] = true;
                    matched += q[i].weight + q[i + 1].weight + nw[k];
                    rules.push(format!(
                        "split_word: {} {} = {word}",
                        q[i].word,
                        q[i + 1].word
                    ));
                }
            }
        }
        let total: f64 = q.iter().map(|t| t.weight).sum::<f64>() + nw.iter().sum::<f64>();
        let score = if total > 0.0 { matched / total } else { 0.0 };
        // Place rules cap the final score (after the country adjustment).
        let mut cap = 1.0_f64;
        let q_places: Vec<&QTok> = q.iter().filter(|t| t.place).collect();
        if q_places.is_empty() != n.places.is_empty() {
            rules.push("place_unconfirmed: only one of the names names a place".into());
            cap = th.matched - 0.01;
        }
        if !q_places.is_empty() && !n.places.is_empty() {
            let shared_q = q_places
                .iter()
                .filter(|p| n.places.iter().any(|&t| p.sim(t) > 0.0))
                .count();
            let shared_n = n
                .places
                .iter()
                .filter(|&&t| q_places.iter().any(|p| p.sim(t) > 0.0))
                .count();
            if shared_q == 0 {
                let names: Vec<&str> = n
                    .places
                    .iter()
                    .map(|&t| self.words[t as usize].as_str())
                    .collect();
                let qn: Vec<&str> = q_places.iter().map(|p| p.word.as_str()).collect();
                rules.push(format!(
                    "place_conflict: {} vs {}",
                    qn.join("/"),
                    names.join("/")
                ));
                return (
                    Scored {
                        score: score * 0.5,
                        pairs,
                        rules,
                    },
                    cap,
                );
            }
            if shared_q < q_places.len() || shared_n < n.places.len() {
                rules.push("extra_place: the names share a place but one names another".into());
                cap = th.matched - 0.01;
            }
        }
        (
            Scored {
                score,
                pairs,
                rules,
            },
            cap,
        )
    }

    /// Screens one name; candidates at or above `review`, best first, at most `limit`.
    #[must_use]
    pub fn screen(&self, q: &Query, th: Thresholds, limit: usize) -> Vec<Candidate> {
        let norm = normalize(&q.name);
        if norm.tokens.is_empty() {
            return Vec::new();
        }
        let qt = self.resolve(&norm);
        let country = q.country.as_deref().and_then(country_code);
        let mut best: HashMap<u32, (f64, u32, Scored)> = HashMap::new();
        for nid in self.block(&qt) {
            let n = &self.names[nid as usize];
            let (mut sc, cap) = self.score(&qt, n, th);
            let mut score = sc.score;
            let rules = &mut sc.rules;
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
            sc.score = score;
            match best.get(&n.entry) {
                Some((s, _, _)) if *s >= score => {}
                _ => {
                    best.insert(n.entry, (score, nid, sc));
                }
            }
        }
        let mut out: Vec<Candidate> = best
            .into_values()
            .map(|(score, nid, sc)| self.candidate(q, &qt, &norm, nid, score, sc, th))
            .collect();
        out.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.entry_id.cmp(&b.entry_id))
        });
        out.truncate(limit);
        out
    }

    /// The explained candidate for a name that passed.
    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        q: &Query,
        qt: &[QTok],
        norm: &Normalized,
        nid: u32,
        score: f64,
        mut sc: Scored,
        th: Thresholds,
    ) -> Candidate {
        let n = &self.names[nid as usize];
        let ix = &self.entries[n.entry as usize];
        let in_force = match (q.date, ix.entry.listed_on) {
            (Some(d), Some(l)) => l <= d,
            _ => true,
        };
        if !in_force {
            sc.rules.push("listed_after_date".into());
        }
        let names: Vec<&str> = ix.entry.names().collect();
        Candidate {
            list: ix.list.clone(),
            entry_id: ix.entry.id.clone(),
            entry_name: ix.entry.name.clone(),
            matched_name: names
                .get(usize::from(n.which))
                .map_or_else(String::new, |s| (*s).to_owned()),
            level: if score >= th.matched {
                Level::Match
            } else {
                Level::Review
            },
            score: (score * 1000.0).round() / 1000.0,
            query_form: norm.form(),
            name_form: n
                .tokens
                .iter()
                .map(|&t| self.words[t as usize].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            tokens: sc
                .pairs
                .iter()
                .map(|&(qi, k, s)| {
                    let t = n.tokens[k];
                    TokenMatch {
                        query: qt[qi].word.clone(),
                        name: self.words[t as usize].clone(),
                        similarity: s,
                        weight: qt[qi].weight.max(self.weight_of(self.df[t as usize])),
                    }
                })
                .collect(),
            rules: sc.rules,
            programs: ix.entry.programs.clone(),
            source_list: ix.entry.source_list.clone(),
            listed_on: ix.entry.listed_on,
            in_force,
        }
    }
}
