//! Name normalisation for screening. Pure and table-driven: the tables are data files in
//! `src/screen/data/` (documented there), compiled into the binary.
//!
//! Steps, in order: Unicode NFKC; Han text segmented by the glossary (longest phrase first,
//! `公安局` → "public security bureau", places → their canonical Latin names), leftover Han
//! runs transliterated to toneless pinyin as one token; lower case; diacritics removed
//! (NFKD, combining marks dropped: Ürümqi → urumqi); apostrophes removed; other punctuation
//! splits tokens; abbreviations expanded (PSB, XUAR, XPCC…); runs of tokens matched against
//! the spelling-variant table (`wu lu mu qi`, `hsin chiang` → one token); variants mapped to
//! their canonical token (Urumchi → urumqi, Uighur → uyghur); stop words, legal forms and
//! one-letter tokens dropped. Word order is ignored later: names compare as token sets.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use pinyin::ToPinyin;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

const GLOSSARY: &str = include_str!("data/glossary.tsv");
const VARIANTS: &str = include_str!("data/variants.tsv");
const ABBREVIATIONS: &str = include_str!("data/abbreviations.tsv");
const STOPWORDS: &str = include_str!("data/stopwords.txt");
const COUNTRIES: &str = include_str!("data/countries.tsv");

/// Longest run of tokens the variant table matches.
const MAX_RUN: usize = 4;

struct Tables {
    glossary: HashMap<String, Vec<String>>,
    glossary_max: usize,
    /// Spelling (single token, or tokens joined by spaces) → canonical token.
    variants: HashMap<String, String>,
    places: HashSet<String>,
    abbreviations: HashMap<String, Vec<String>>,
    related: HashMap<(String, String), f64>,
    stop: HashSet<String>,
    countries: HashMap<String, String>,
}

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
}

/// Lower case without diacritics, for table keys and tokens.
fn fold(s: &str) -> String {
    s.to_lowercase()
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect()
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Tables {
            glossary: HashMap::new(),
            glossary_max: 1,
            variants: HashMap::new(),
            places: HashSet::new(),
            abbreviations: HashMap::new(),
            related: HashMap::new(),
            stop: HashSet::new(),
            countries: HashMap::new(),
        };
        for r in rows(GLOSSARY) {
            let words = r.get(1).map_or_else(Vec::new, |e| {
                e.split_whitespace().map(str::to_owned).collect()
            });
            t.glossary_max = t.glossary_max.max(r[0].chars().count());
            t.glossary.insert(r[0].to_owned(), words);
        }
        for r in rows(VARIANTS) {
            if r[0] == "related" {
                let sim = r.get(3).and_then(|x| x.trim().parse().ok()).unwrap_or(0.0);
                let (a, b) = (fold(r[1]), fold(r[2]));
                t.related.insert((a.clone(), b.clone()), sim);
                t.related.insert((b, a), sim);
                continue;
            }
            let (kind, canon) = (r[0], fold(r[1]));
            if kind == "place" {
                t.places.insert(canon.clone());
            }
            for v in &r[1..] {
                let key = fold(v).replace(['\'', '-'], "");
                t.variants.insert(key, canon.clone());
            }
        }
        for r in rows(ABBREVIATIONS) {
            if let Some(e) = r.get(1) {
                t.abbreviations
                    .insert(fold(r[0]), e.split_whitespace().map(fold).collect());
            }
        }
        for r in rows(STOPWORDS) {
            t.stop.insert(fold(r[0].trim()));
        }
        for r in rows(COUNTRIES) {
            for name in &r[1..] {
                t.countries.insert(fold(name), r[0].to_owned());
            }
            t.countries.insert(fold(r[0]), r[0].to_owned());
        }
        t
    })
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Replaces Han text by glossary words and pinyin, leaving other text alone.
fn han(s: &str) -> String {
    let t = tables();
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() * 2);
    let mut pinyin_run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            out.push(' ');
            out.push_str(run);
            out.push(' ');
            run.clear();
        }
    };
    let mut i = 0;
    while i < chars.len() {
        if !is_han(chars[i]) {
            flush(&mut pinyin_run, &mut out);
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let longest = (1..=t.glossary_max.min(chars.len() - i))
            .rev()
            .find_map(|k| {
                let phrase: String = chars[i..i + k].iter().collect();
                t.glossary.get(&phrase).map(|w| (k, w))
            });
        match longest {
            Some((k, words)) => {
                flush(&mut pinyin_run, &mut out);
                out.push(' ');
                out.push_str(&words.join(" "));
                out.push(' ');
                i += k;
            }
            None => {
                if let Some(p) = chars[i].to_pinyin() {
                    pinyin_run.push_str(p.plain());
                }
                i += 1;
            }
        }
    }
    flush(&mut pinyin_run, &mut out);
    out
}

/// A name in normal form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// Tokens in the order they appear (duplicates removed).
    pub tokens: Vec<String>,
    /// The tokens that are place names.
    pub places: Vec<String>,
}

impl Normalized {
    #[must_use]
    pub fn form(&self) -> String {
        self.tokens.join(" ")
    }
}

/// Normalises one name.
#[must_use]
pub fn normalize(name: &str) -> Normalized {
    let t = tables();
    let nfkc: String = name.nfkc().collect();
    let latin = fold(&han(&nfkc));
    let cleaned: String = latin
        .chars()
        .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`' | 'ʼ'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    // Runs of single letters are dotted acronyms: "p s b" (from P.S.B.) → "psb".
    let mut words: Vec<String> = Vec::new();
    let mut letters = String::new();
    for w in cleaned.split_whitespace() {
        if w.chars().count() == 1 && w.chars().all(char::is_alphabetic) {
            letters.push_str(w);
            continue;
        }
        if !letters.is_empty() {
            words.push(std::mem::take(&mut letters));
        }
        words.push(w.to_owned());
    }
    if !letters.is_empty() {
        words.push(letters);
    }
    let mut raw: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let pair = words.get(i + 1).map(|b| format!("{}{b}", words[i]));
        if let Some(exp) = pair.as_deref().and_then(|p| t.abbreviations.get(p)) {
            raw.extend(exp.iter().cloned());
            i += 2;
            continue;
        }
        match t.abbreviations.get(words[i].as_str()) {
            Some(exp) => raw.extend(exp.iter().cloned()),
            None => raw.push(words[i].clone()),
        }
        i += 1;
    }
    let mut tokens: Vec<String> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let hit = (1..=MAX_RUN.min(raw.len() - i)).rev().find_map(|k| {
            let spaced = raw[i..i + k].join(" ");
            let joined = raw[i..i + k].concat();
            t.variants
                .get(&spaced)
                .or_else(|| t.variants.get(&joined))
                .map(|c| (k, c.clone()))
        });
        let (k, tok) = hit.unwrap_or_else(|| (1, raw[i].clone()));
        i += k;
        let single_letter = tok.chars().count() == 1 && tok.chars().all(char::is_alphabetic);
        if !t.stop.contains(&tok) && !single_letter && !tokens.contains(&tok) {
            tokens.push(tok);
        }
    }
    let places = tokens
        .iter()
        .filter(|w| t.places.contains(*w))
        .cloned()
        .collect();
    Normalized { tokens, places }
}

/// The similarity of two different canonical tokens the tables declare related
/// (`bureau` ~ `department`).
#[must_use]
pub fn related(a: &str, b: &str) -> Option<f64> {
    tables().related.get(&(a.to_owned(), b.to_owned())).copied()
}

/// Every token related to `a`, with its similarity.
#[must_use]
pub fn related_to(a: &str) -> Vec<(String, f64)> {
    tables()
        .related
        .iter()
        .filter(|((x, _), _)| x == a)
        .map(|((_, y), s)| (y.clone(), *s))
        .collect()
}

/// ISO 3166-1 alpha-2 code for a country as lists write it (`CN`, `China`, `Russia`…).
#[must_use]
pub fn country_code(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        return crate::core::values::CountryCode::parse(s)
            .ok()
            .map(|c| c.as_str().to_owned());
    }
    tables().countries.get(&fold(s)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> String {
        normalize(s).form()
    }

    #[test]
    fn the_xinjiang_bureau_in_english_pinyin_and_characters() {
        let english = form("XINJIANG PUBLIC SECURITY BUREAU");
        assert_eq!(english, "xinjiang public security bureau");
        assert_eq!(form("新疆公安局"), english);
        assert_eq!(form("Xinjiang Gonganju"), english);
        assert_eq!(form("Xinjiang PSB"), english);
        assert_eq!(
            form("新疆维吾尔自治区公安厅"),
            "xinjiang uyghur autonomous region public security department"
        );
        assert_eq!(
            form("PUBLIC SECURITY DEPARTMENT OF XINJIANG UYGAR AUTONOMOUS REGION"),
            "public security department xinjiang uyghur autonomous region"
        );
    }

    #[test]
    fn places_diacritics_variants_and_legal_forms() {
        assert_eq!(
            form("Ürümqi Municipal P.S.B."),
            "urumqi city public security bureau"
        );
        assert_eq!(
            form("乌鲁木齐市公安局"),
            "urumqi city public security bureau"
        );
        assert_eq!(
            form("Wu Lu Mu Qi City Public Security Bureau"),
            "urumqi city public security bureau"
        );
        assert_eq!(form("Hsin-chiang Trading Co., Ltd."), "xinjiang trading");
        assert_eq!(
            form("新疆生产建设兵团"),
            "xinjiang production construction corps"
        );
        assert_eq!(form("XPCC"), "xinjiang production construction corps");
        assert_eq!(normalize("Kashi Prefecture PSB").places, vec!["kashgar"]);
        // Unknown Han text still gets a comparable form.
        assert_eq!(form("华大"), "huada");
    }

    #[test]
    fn countries() {
        assert_eq!(country_code("CN").as_deref(), Some("CN"));
        assert_eq!(country_code("China").as_deref(), Some("CN"));
        assert_eq!(country_code("Russia").as_deref(), Some("RU"));
        assert_eq!(
            country_code("Iran, Islamic Republic of").as_deref(),
            Some("IR")
        );
        assert_eq!(country_code("Atlantis"), None);
    }
}
