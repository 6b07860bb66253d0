//! Storage: one small trait, with an embedded sled implementation and an in-memory one that
//! pass the same conformance suite (`tests/store_conformance.rs`).
//!
//! The trait speaks in domain records, never in backend keys, and writes only through
//! [`Store::commit`], which takes a whole group of events at once: a networked backend
//! (PostgreSQL) implements it as one transaction, sled as one atomic batch plus a flush.
//! Architecture invariant: when `commit` returns `Ok`, the group is durable; when it
//! returns `Err`, nothing of the group may be visible after a restart *and* the caller
//! must treat the store as failed (see `ledger::Ledger`), because a backend cannot always
//! tell whether a failed flush left data behind.

use serde::{Deserialize, Serialize};

use crate::core::checkpoint::SignedCheckpoint;
use crate::core::ids::{EventHash, Handle, LedgerName, LogIndex, PartyId, PublicKey};
use crate::core::merkle::{NodeId, TreeHash};
use crate::core::state::{Delta, PartyRecord, UnitRecord};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;

mod hash_table;
mod log_files;
pub mod memory;
pub mod sled_store;
mod tree_nodes;
mod unit_codec;
mod upper_nodes;
pub mod watermark;

pub use memory::MemoryStore;
pub use sled_store::{CacheFor, SledStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("storage is corrupt at {location}: {detail}")]
    Corrupt { location: String, detail: String },
    #[error("the data directory holds ledger {found}, not {expected}")]
    WrongLedger { expected: String, found: String },
    #[error("the ledger is already initialized as {0}")]
    AlreadyInitialized(String),
    #[error("commit out of order: the store holds {len} events, the batch starts at {start}")]
    OutOfOrder { len: u64, start: u64 },
    #[error("malformed commit group: {0}")]
    BadGroup(String),
    /// The directory was written with another storage layout than this build reads.
    #[error("the data directory uses storage layout {found}; this build of custody reads layout {expected}. Keep it with the custody version that wrote it, or mirror its ledger into a new directory (`custody monitor --mirror DIR` against a server of that version)")]
    Layout { found: u64, expected: u64 },
    /// Fewer events, or other ones, than were acknowledged: the storage lost data.
    #[error("acknowledged events are missing: {detail}. The storage lost data (sled cuts a damaged log back to its last readable point); restore the data directory from a backup or a mirror (`custody monitor --mirror`), whose audit must pass")]
    Lost { detail: String },
}

/// What the store knows about the ledger it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMeta {
    pub name: LedgerName,
    /// The log key: signs checkpoints and receipts.
    pub log_key: PublicKey,
}

/// One event in the log, as stored: position, ledger time, hash and canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: LogIndex,
    pub integrated_at: Timestamp,
    pub hash: EventHash,
    /// JCS bytes of the envelope (FORMAT.md §3).
    pub event: Vec<u8>,
}

/// An accepted event with everything it changes.
#[derive(Clone, Debug)]
pub struct Committed {
    pub entry: LogEntry,
    pub delta: Delta,
}

/// One durable write: consecutive events, the Merkle nodes they complete, and optionally
/// a checkpoint of the tree as it stands after them. `nodes` lists, leaf by leaf, exactly
/// the nodes each appended leaf completes from level 0 up (what `Frontier::push` returns),
/// which lets a backend store them at positions that follow from the leaf index; a group
/// whose nodes are not exactly those is refused ([`StoreError::BadGroup`]). A group may
/// hold no events (and then no nodes), only a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub events: Vec<Committed>,
    pub nodes: Vec<(NodeId, TreeHash)>,
    pub checkpoint: Option<SignedCheckpoint>,
}

/// Record counts, for consistency checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events: u64,
    pub parties: u64,
    pub units: u64,
    pub handles: u64,
    pub keys: u64,
    pub holdings: u64,
    pub involved: u64,
    pub chain_links: u64,
    /// (party, days) counters of completed stays.
    pub stays: u64,
    pub hashes: u64,
    /// Leaves whose Merkle nodes are stored (one per event).
    pub nodes: u64,
    pub checkpoints: u64,
}

/// What [`Store::check_hash_index`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFault {
    /// The log index it concerns, if one.
    pub index: Option<LogIndex>,
    pub detail: String,
}

/// The (party, unit) indexes, as an audit names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartyUnits {
    /// Units a party holds now ([`Store::holdings`]).
    Holdings,
    /// Units a party is or was involved with ([`Store::involved`]).
    Involved,
}

/// The record counts [`Store::census`] gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    pub events: u64,
    /// Registered units, as counted at commit (no scan).
    pub units: u64,
    pub parties: u64,
    pub handles: u64,
    pub keys: u64,
    pub stays: u64,
    /// Leaves whose Merkle nodes are stored (one per event).
    pub nodes: u64,
    pub checkpoints: u64,
}

pub trait Store: Send + Sync + 'static {
    /// Records the ledger name in an empty store, durably.
    fn init(&self, meta: &LedgerMeta) -> Result<(), StoreError>;
    fn meta(&self) -> Result<Option<LedgerMeta>, StoreError>;
    /// Number of events in the log (the next log index).
    fn len(&self) -> Result<u64, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    fn entry(&self, i: LogIndex) -> Result<Option<LogEntry>, StoreError>;
    /// Entries `start..end` (fewer if the log is shorter), in order.
    fn entries(&self, start: LogIndex, end: LogIndex) -> Result<Vec<LogEntry>, StoreError>;
    fn index_of(&self, h: &EventHash) -> Result<Option<LogIndex>, StoreError>;
    fn operator(&self) -> Result<Option<PartyId>, StoreError>;
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, StoreError>;
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, StoreError>;
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, StoreError>;
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, StoreError>;
    /// Log indexes of the unit's chain, oldest first.
    fn chain(&self, u: &UnitId) -> Result<Vec<LogIndex>, StoreError>;
    /// The units of party `p` in `family`, in unit-id order, after `after` and up to `until`
    /// included (`None`: no bound), at most `limit`: one bounded range read (an audit's
    /// range of units reads no more than its own).
    fn party_units(
        &self,
        family: PartyUnits,
        p: &PartyId,
        bounds: (Option<&UnitId>, Option<&UnitId>),
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError>;
    /// Units the party holds now, in unit-id order, after `after`, at most `limit`.
    /// The parties that have at least one pair in `family`, in id order, each once,
    /// without reading their units (a seek per party). With the parties' bounded reads
    /// this is how an audit accounts for every pair without counting them: a pair under a
    /// party that has no record is the only one no party's read would see.
    fn pair_parties(&self, family: PartyUnits) -> Result<Vec<PartyId>, StoreError>;
    fn holdings(
        &self,
        p: &PartyId,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError> {
        self.party_units(PartyUnits::Holdings, p, (after, None), limit)
    }
    /// Units the party is or was involved with (manufacturer, transfer recipient, declared
    /// end user), in unit-id order, after `after`, at most `limit`.
    fn involved(
        &self,
        p: &PartyId,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError> {
        self.party_units(PartyUnits::Involved, p, (after, None), limit)
    }
    fn parties(&self) -> Result<Vec<PartyRecord>, StoreError>;
    /// Units' records with their chains (as [`Store::unit`] and [`Store::chain`]) in unit-id
    /// order after `after`, at most `limit` units: one ordered scan, for audits.
    fn unit_chains(
        &self,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<(UnitRecord, Vec<LogIndex>)>, StoreError>;
    /// Compares the hash index with the log's hashes (`hashes[i]` is entry `i`'s): `None`
    /// when it maps exactly each of them to its index, else the first fault. The store
    /// checks its own structure (a table's probe runs, say), which no listing would show.
    fn check_hash_index(&self, hashes: &[EventHash]) -> Result<Option<IndexFault>, StoreError>;
    /// Units in id order after `after`, at most `limit`.
    fn units(&self, after: Option<&UnitId>, limit: usize) -> Result<Vec<UnitRecord>, StoreError>;
    /// How many records of every kind the store holds (a scan of everything).
    fn counts(&self) -> Result<Counts, StoreError>;
    /// The counts an audit checks besides its ordered scans: the small record kinds, the
    /// log files' own counts, the number of units as counted at commit, and the (party,
    /// unit) pairs (a scan of each of those two families).
    fn census(&self) -> Result<Census, StoreError>;
    /// Registered units, as counted at commit: no scan (what sizes an audit's passes).
    fn unit_count(&self) -> Result<u64, StoreError>;
    /// Every completed-stay counter ([`crate::core::state::IndexOp::Stay`]): `(party,
    /// days, stays)` in party-id then days order, none with zero stays. Few records (parties
    /// × distinct durations), so the dwell baseline never needs the log.
    fn stays(&self) -> Result<Vec<(PartyId, u32, u64)>, StoreError>;
    /// Merkle node hashes, in the order asked (`None` where the store has none). One
    /// round trip for a whole proof; a backend may serve them from a cache of what it
    /// committed.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError>;
    /// The same, read from durable storage itself, bypassing any cache: what an audit
    /// compares with the tree it recomputes.
    fn stored_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        self.nodes(ids)
    }
    /// The checkpoint issued at this tree size.
    fn checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError>;
    /// The largest checkpoint issued.
    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError>;
    /// Checkpoints with sizes in `from..`, ascending, at most `limit`. The first one with
    /// a size above `i` is the first that covers log index `i`.
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// Applies a group atomically and durably.
    fn commit(&self, group: &Group) -> Result<(), StoreError>;
    /// Checks that the store still holds every event it acknowledged (a backend whose
    /// storage can silently lose a tail keeps an independent record to check against);
    /// [`StoreError::Lost`] if not.
    fn check_acknowledged(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn init(&self, meta: &LedgerMeta) -> Result<(), StoreError> {
        (**self).init(meta)
    }
    fn meta(&self) -> Result<Option<LedgerMeta>, StoreError> {
        (**self).meta()
    }
    fn len(&self) -> Result<u64, StoreError> {
        (**self).len()
    }
    fn entry(&self, i: LogIndex) -> Result<Option<LogEntry>, StoreError> {
        (**self).entry(i)
    }
    fn entries(&self, start: LogIndex, end: LogIndex) -> Result<Vec<LogEntry>, StoreError> {
        (**self).entries(start, end)
    }
    fn index_of(&self, h: &EventHash) -> Result<Option<LogIndex>, StoreError> {
        (**self).index_of(h)
    }
    fn operator(&self) -> Result<Option<PartyId>, StoreError> {
        (**self).operator()
    }
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, StoreError> {
        (**self).party(id)
    }
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, StoreError> {
        (**self).party_by_handle(h)
    }
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, StoreError> {
        (**self).key_owner(k)
    }
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, StoreError> {
        (**self).unit(u)
    }
    fn chain(&self, u: &UnitId) -> Result<Vec<LogIndex>, StoreError> {
        (**self).chain(u)
    }
    fn party_units(
        &self,
        family: PartyUnits,
        p: &PartyId,
        bounds: (Option<&UnitId>, Option<&UnitId>),
        limit: usize,
    ) -> Result<Vec<UnitId>, StoreError> {
        (**self).party_units(family, p, bounds, limit)
    }
    fn pair_parties(&self, family: PartyUnits) -> Result<Vec<PartyId>, StoreError> {
        (**self).pair_parties(family)
    }
    fn parties(&self) -> Result<Vec<PartyRecord>, StoreError> {
        (**self).parties()
    }
    fn unit_chains(
        &self,
        after: Option<&UnitId>,
        limit: usize,
    ) -> Result<Vec<(UnitRecord, Vec<LogIndex>)>, StoreError> {
        (**self).unit_chains(after, limit)
    }
    fn check_hash_index(&self, hashes: &[EventHash]) -> Result<Option<IndexFault>, StoreError> {
        (**self).check_hash_index(hashes)
    }
    fn units(&self, after: Option<&UnitId>, limit: usize) -> Result<Vec<UnitRecord>, StoreError> {
        (**self).units(after, limit)
    }
    fn counts(&self) -> Result<Counts, StoreError> {
        (**self).counts()
    }
    fn census(&self) -> Result<Census, StoreError> {
        (**self).census()
    }
    fn unit_count(&self) -> Result<u64, StoreError> {
        (**self).unit_count()
    }
    fn stays(&self) -> Result<Vec<(PartyId, u32, u64)>, StoreError> {
        (**self).stays()
    }
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        (**self).nodes(ids)
    }
    fn stored_nodes(&self, ids: &[NodeId]) -> Result<Vec<Option<TreeHash>>, StoreError> {
        (**self).stored_nodes(ids)
    }
    fn checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        (**self).checkpoint(size)
    }
    fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError> {
        (**self).latest_checkpoint()
    }
    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<SignedCheckpoint>, StoreError> {
        (**self).checkpoints(from, limit)
    }
    fn commit(&self, group: &Group) -> Result<(), StoreError> {
        (**self).commit(group)
    }
    fn check_acknowledged(&self) -> Result<(), StoreError> {
        (**self).check_acknowledged()
    }
}
