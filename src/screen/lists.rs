//! List snapshots: stored versions per list name, import with diff against the previous
//! version, and reading the published files from disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::entry::{content_hash, ListEntry, RowProblem, Snapshot, SourceKind};
use super::import::{self, ImportError, Input};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("list storage failed: {0}")]
    Store(String),
    #[error("no list named {0:?} has been imported")]
    Unknown(String),
    #[error("list {name:?} has no version {version}")]
    NoVersion { name: String, version: u32 },
    #[error("list name {0:?}: use 1-64 of a-z 0-9 . _ -")]
    BadName(String),
}

/// Where snapshots are kept. sled in the ledger's data directory, or memory in tests.
pub trait ListStore {
    /// Stores a new version durably.
    fn put(&self, s: &Snapshot) -> Result<(), ListError>;
    fn get(&self, name: &str, version: u32) -> Result<Option<Snapshot>, ListError>;
    fn latest(&self, name: &str) -> Result<Option<Snapshot>, ListError>;
    /// Every list name with its latest version number.
    fn names(&self) -> Result<Vec<(String, u32)>, ListError>;
}

/// Snapshots in a sled tree of their own: key `name 0x00 u32 version`, value JSON.
pub struct SledLists {
    db: sled::Db,
    tree: sled::Tree,
}

fn store_err(e: impl ToString) -> ListError {
    ListError::Store(e.to_string())
}

fn key(name: &str, version: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl SledLists {
    pub fn open(db: sled::Db) -> Result<Self, ListError> {
        let tree = db.open_tree("lists").map_err(store_err)?;
        Ok(Self { db, tree })
    }
}

impl ListStore for SledLists {
    fn put(&self, s: &Snapshot) -> Result<(), ListError> {
        let v = serde_json::to_vec(s).map_err(store_err)?;
        self.tree
            .insert(key(&s.name, s.version), v)
            .map_err(store_err)?;
        self.db.flush().map_err(store_err)?;
        Ok(())
    }
    fn get(&self, name: &str, version: u32) -> Result<Option<Snapshot>, ListError> {
        self.tree
            .get(key(name, version))
            .map_err(store_err)?
            .map(|v| serde_json::from_slice(&v).map_err(store_err))
            .transpose()
    }
    fn latest(&self, name: &str) -> Result<Option<Snapshot>, ListError> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        match self.tree.scan_prefix(prefix).next_back() {
            None => Ok(None),
            Some(r) => {
                let (_, v) = r.map_err(store_err)?;
                serde_json::from_slice(&v).map(Some).map_err(store_err)
            }
        }
    }
    fn names(&self) -> Result<Vec<(String, u32)>, ListError> {
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for r in self.tree.iter().keys() {
            let k = r.map_err(store_err)?;
            if let Some(z) = k.iter().position(|&b| b == 0) {
                let name = String::from_utf8_lossy(&k[..z]).into_owned();
                let v = k
                    .get(z + 1..z + 5)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, u32::from_be_bytes);
                out.insert(name, v);
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// In memory, for unit tests.
#[derive(Default)]
pub struct MemoryLists {
    inner: std::sync::Mutex<BTreeMap<(String, u32), Snapshot>>,
}

impl ListStore for MemoryLists {
    fn put(&self, s: &Snapshot) -> Result<(), ListError> {
        self.lock().insert((s.name.clone(), s.version), s.clone());
        Ok(())
    }
    fn get(&self, name: &str, version: u32) -> Result<Option<Snapshot>, ListError> {
        Ok(self.lock().get(&(name.to_owned(), version)).cloned())
    }
    fn latest(&self, name: &str) -> Result<Option<Snapshot>, ListError> {
        Ok(self
            .lock()
            .range((name.to_owned(), 0)..=(name.to_owned(), u32::MAX))
            .next_back()
            .map(|(_, s)| s.clone()))
    }
    fn names(&self) -> Result<Vec<(String, u32)>, ListError> {
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for (n, v) in self.lock().keys() {
            out.insert(n.clone(), *v);
        }
        Ok(out.into_iter().collect())
    }
}

impl MemoryLists {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u32), Snapshot>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An entry whose listing changed between versions, and what changed.
#[derive(Clone, Debug, Serialize)]
pub struct Changed {
    pub id: String,
    pub name: String,
    pub fields: Vec<&'static str>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Diff {
    pub from_version: u32,
    pub to_version: u32,
    /// `(id, name)` pairs.
    pub added: Vec<(String, String)>,
    pub removed: Vec<(String, String)>,
    pub changed: Vec<Changed>,
}

fn changed_fields(a: &ListEntry, b: &ListEntry) -> Vec<&'static str> {
    let mut f = Vec::new();
    let checks: [(&'static str, bool); 10] = [
        ("name", a.name != b.name),
        ("aliases", a.aliases != b.aliases),
        ("type", a.entry_type != b.entry_type),
        ("programs", a.programs != b.programs),
        ("countries", a.countries != b.countries),
        ("addresses", a.addresses != b.addresses),
        ("identifiers", a.identifiers != b.identifiers),
        ("listed_on", a.listed_on != b.listed_on),
        ("notice", a.notice != b.notice),
        ("source_list", a.source_list != b.source_list),
    ];
    for (name, differs) in checks {
        if differs {
            f.push(name);
        }
    }
    f
}

/// What changed from `old` to `new`, by entry id.
#[must_use]
pub fn diff(old: Option<&Snapshot>, new: &Snapshot) -> Diff {
    let before: BTreeMap<&str, &ListEntry> = old
        .map(|o| o.entries.iter().map(|e| (e.id.as_str(), e)).collect())
        .unwrap_or_default();
    let after: BTreeMap<&str, &ListEntry> =
        new.entries.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut d = Diff {
        from_version: old.map_or(0, |o| o.version),
        to_version: new.version,
        ..Diff::default()
    };
    for (id, e) in &after {
        match before.get(id) {
            None => d.added.push(((*id).to_owned(), e.name.clone())),
            Some(o) => {
                let fields = changed_fields(o, e);
                if !fields.is_empty() {
                    d.changed.push(Changed {
                        id: (*id).to_owned(),
                        name: e.name.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for (id, e) in &before {
        if !after.contains_key(id) {
            d.removed.push(((*id).to_owned(), e.name.clone()));
        }
    }
    d
}

/// The outcome of an import.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    pub kind: SourceKind,
    pub version: u32,
    pub content_hash: String,
    pub entries: usize,
    /// True when the files equal the latest version's: nothing was stored.
    pub unchanged: bool,
    pub diff: Diff,
    pub problems: Vec<RowProblem>,
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Imports files as a new version of list `name` (default: the source kind's name).
pub fn import_into(
    store: &dyn ListStore,
    kind: SourceKind,
    name: Option<&str>,
    files: &[Input],
    imported_at: &str,
) -> Result<Outcome, ListError> {
    let name = name.unwrap_or(kind.as_str()).to_owned();
    if !valid_name(&name) {
        return Err(ListError::BadName(name));
    }
    let previous = store.latest(&name)?;
    let base: &[ListEntry] = previous.as_ref().map_or(&[], |p| p.entries.as_slice());
    let got = import::import(kind, files, base)?;
    let hash = content_hash(&got.files);
    let unchanged = previous
        .as_ref()
        .is_some_and(|p| p.content_hash == hash && p.kind == kind);
    let snap = Snapshot {
        name: name.clone(),
        kind,
        version: previous.as_ref().map_or(1, |p| p.version + 1),
        content_hash: hash.clone(),
        files: got.files,
        imported_at: imported_at.to_owned(),
        entries: got.entries,
        problems: got.problems.clone(),
    };
    if unchanged {
        let p = previous
            .as_ref()
            .expect("invariant: unchanged implies a previous version");
        return Ok(Outcome {
            name,
            kind,
            version: p.version,
            content_hash: hash,
            entries: p.entries.len(),
            unchanged: true,
            diff: Diff {
                from_version: p.version,
                to_version: p.version,
                ..Diff::default()
            },
            problems: got.problems,
        });
    }
    let d = diff(previous.as_ref(), &snap);
    store.put(&snap)?;
    Ok(Outcome {
        name,
        kind,
        version: snap.version,
        content_hash: hash,
        entries: snap.entries.len(),
        unchanged: false,
        diff: d,
        problems: got.problems,
    })
}

fn read(path: &Path) -> Result<Input, ListError> {
    Ok(Input {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        bytes: std::fs::read(path).map_err(|source| ListError::Read {
            path: path.display().to_string(),
            source,
        })?,
    })
}

/// The files an import of `path` reads: for OFAC, `sdn.csv` and its companions in the
/// same directory (`path` may be the directory); for an OpenSanctions delta index, the
/// delta files beside it; otherwise the file itself.
pub fn inputs(kind: SourceKind, path: &Path) -> Result<Vec<Input>, ListError> {
    let dir: PathBuf = if path.is_dir() {
        path.to_owned()
    } else {
        path.parent().map(Path::to_owned).unwrap_or_default()
    };
    match kind {
        SourceKind::OfacSdn => {
            let main = if path.is_dir() {
                dir.join("sdn.csv")
            } else {
                path.to_owned()
            };
            let mut out = vec![read(&main)?];
            for extra in ["alt.csv", "add.csv", "sdn_comments.csv"] {
                let p = dir.join(extra);
                if p.exists() {
                    out.push(read(&p)?);
                }
            }
            Ok(out)
        }
        SourceKind::Opensanctions => {
            let first = read(path)?;
            let is_index = serde_json::from_slice::<serde_json::Value>(&first.bytes)
                .is_ok_and(|v| v.get("versions").is_some());
            let mut out = vec![first];
            if is_index {
                let stem = out[0]
                    .name
                    .strip_suffix("delta.json")
                    .unwrap_or("")
                    .to_owned();
                let mut siblings: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(|source| ListError::Read {
                        path: dir.display().to_string(),
                        source,
                    })?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(&stem) && n.ends_with("__entities.delta.json")
                        })
                    })
                    .collect();
                siblings.sort();
                for p in siblings {
                    out.push(read(&p)?);
                }
            }
            Ok(out)
        }
        SourceKind::Csl | SourceKind::Denylist => Ok(vec![read(path)?]),
    }
}

/// A snapshot named by list, version and content hash: what a screening result was
/// computed against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotRef {
    pub name: String,
    pub version: u32,
    pub content_hash: String,
}

/// The screening index over the latest version of every list in `store`.
pub fn index_latest(
    store: &dyn ListStore,
) -> Result<(super::matcher::Index, Vec<SnapshotRef>), ListError> {
    index_as_of(store, None)
}

/// The index over the latest version of every list, except `pin = (name, version)`, which
/// is taken at that version (0: as if the list had never been imported).
pub fn index_as_of(
    store: &dyn ListStore,
    pin: Option<(&str, u32)>,
) -> Result<(super::matcher::Index, Vec<SnapshotRef>), ListError> {
    let mut snaps = Vec::new();
    for (name, latest) in store.names()? {
        let v = match pin {
            Some((n, v)) if n == name => v,
            _ => latest,
        };
        if v == 0 {
            continue;
        }
        let s = store.get(&name, v)?.ok_or_else(|| ListError::NoVersion {
            name: name.clone(),
            version: v,
        })?;
        snaps.push(s);
    }
    let used = snaps
        .iter()
        .map(|s| SnapshotRef {
            name: s.name.clone(),
            version: s.version,
            content_hash: s.content_hash.clone(),
        })
        .collect();
    let ix = super::matcher::Index::build(
        snaps
            .iter()
            .map(|s| (s.name.as_str(), s.entries.as_slice())),
    );
    Ok((ix, used))
}
