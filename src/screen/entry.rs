//! What a sanctions-list entry keeps, whatever list it came from, and list snapshots.

use serde::{Deserialize, Serialize};

/// The formats custody imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// OFAC SDN legacy CSV (`sdn.csv` with `alt.csv`, `add.csv`, `sdn_comments.csv`).
    OfacSdn,
    /// US Consolidated Screening List (trade.gov), CSV or JSON.
    Csl,
    /// OpenSanctions FollowTheMoney JSON lines (entities, or ADD/MOD/DEL deltas).
    Opensanctions,
    /// An operator's own deny list, CSV or JSON.
    Denylist,
}

impl SourceKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OfacSdn => "ofac-sdn",
            Self::Csl => "csl",
            Self::Opensanctions => "opensanctions",
            Self::Denylist => "denylist",
        }
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ofac-sdn" => Ok(Self::OfacSdn),
            "csl" => Ok(Self::Csl),
            "opensanctions" => Ok(Self::Opensanctions),
            "denylist" => Ok(Self::Denylist),
            _ => Err(format!(
                "unknown list source {s:?}: expected ofac-sdn, csl, opensanctions or denylist"
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    Entity,
    Individual,
    Vessel,
    Aircraft,
    Unknown,
}

impl EntryType {
    /// From the spellings lists use (`individual`, `Entity`, FtM schemata…).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "individual" | "person" => Self::Individual,
            "entity" | "organization" | "company" | "legalentity" | "publicbody" => Self::Entity,
            "vessel" => Self::Vessel,
            "aircraft" | "airplane" => Self::Aircraft,
            _ => Self::Unknown,
        }
    }
}

/// A civil date `YYYY-MM-DD` (listing dates; ISO 8601 order compares correctly as text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    y: u16,
    m: u8,
    d: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`, also found at the start of longer timestamps.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a date YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            s.get(r)
                .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|x| x.parse().ok())
                .ok_or_else(bad)
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if !(1..=days).contains(&d) || !(1900..=9999).contains(&y) {
            return Err(bad());
        }
        Ok(Self {
            y: y as u16,
            m: m as u8,
            d: d as u8,
        })
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
}
impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

/// One listed party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The list's own id for the entry (OFAC ent_num, CSL `_id` or entity number, FtM id…).
    pub id: String,
    pub entry_type: EntryType,
    /// The primary name, as published.
    pub name: String,
    /// Other names (a.k.a., f.k.a., n.k.a., weak aliases), as published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Countries named by the entry (addresses, nationality, jurisdiction), as published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<String>,
    /// When the listing started, where the list says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_on: Option<Date>,
    /// Federal Register notice, remarks or notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// The list within the source (e.g. "Entity List (EL) - Bureau of Industry and Security").
    pub source_list: String,
}

impl ListEntry {
    /// Every name: the primary one first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// One file that went into a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// A row the importer could not turn into an entry, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub file: String,
    /// 1-based line (CSV record start line, or JSON line number).
    pub line: u64,
    pub reason: String,
}

/// One imported version of a named list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The list's name in this ledger (defaults to the source kind).
    pub name: String,
    pub kind: SourceKind,
    /// 1 for the first import of this name, then +1.
    pub version: u32,
    /// SHA-256 over the files' names and hashes (see `content_hash`).
    pub content_hash: String,
    pub files: Vec<SourceFile>,
    /// When it was imported (RFC 3339 UTC, seconds).
    pub imported_at: String,
    pub entries: Vec<ListEntry>,
    /// Rows reported, not imported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<RowProblem>,
}

/// `SHA-256` over `name 0x00 sha256-hex 0x0A` for each file, in the order given.
#[must_use]
pub fn content_hash(files: &[SourceFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.sha256.as_bytes());
        h.update([b'\n']);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            Date::parse("2020-07-09").map(|d| d.to_string()),
            Ok("2020-07-09".into())
        );
        assert!(Date::parse("2019-02-29").is_err());
        assert!(Date::parse("2020-02-29").is_ok());
        assert!(Date::parse("2020-13-01").is_err());
        assert!(Date::parse("20-07-09").is_err());
        assert!(Date::parse("2020-07-09T00:00:00Z").is_ok());
        assert!(Date::parse("2019-10-09") < Date::parse("2020-07-09"));
    }
}
