//! The single writer thread: judges events against current state, extends the Merkle
//! frontier, decides when to issue a checkpoint, and group-commits it all in one durable
//! `Store::commit`.
//!
//! Invariants:
//! - a reply is sent only after the commit holding its event (and the Merkle nodes and
//!   checkpoint that cover it) returned `Ok`;
//! - the writer is the only code that signs checkpoints, and it signs only the root of its
//!   own frontier, which only ever grows; at start it checks that the stored tree
//!   reproduces the latest stored checkpoint, so it never signs a checkpoint inconsistent
//!   with one already issued;
//! - after a failed commit it refuses everything: its frontier may be ahead of the disk.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ed25519_dalek::SigningKey;

use super::overlay::{Known, Overlay};
use super::{AppendError, Clock, Draft, LogPolicy, MAX_GROUP, MAX_GROUP_BYTES};
use crate::core::checkpoint::{Checkpoint, SignedCheckpoint, VerifierKey};
use crate::core::ids::{EventHash, LedgerName, LogIndex};
use crate::core::merkle::{entry_leaf_hash, Frontier};
use crate::core::receipt::{CheckpointRef, ReceiptBody};
use crate::core::rules::{self, Context};
use crate::core::state::Touches;
use crate::core::values::Timestamp;
use crate::core::verify::VerifiedEvent;
use crate::log;
use crate::store::{Committed, Group, LogEntry, Store, StoreError};

pub(super) enum Job {
    Append {
        event: Box<VerifiedEvent>,
        reply: Sender<Result<Draft, AppendError>>,
    },
    Checkpoint {
        reply: Sender<Result<SignedCheckpoint, AppendError>>,
    },
}

impl Job {
    /// What the job adds to a group's size: its event's canonical bytes.
    fn weight(&self) -> usize {
        match self {
            Job::Append { event, .. } => event.canonical_bytes().len(),
            Job::Checkpoint { .. } => 0,
        }
    }
}

/// `first` and whatever else is already queued, up to `max` items or until their weights
/// reach `max_weight` (the item that reaches it is included: a group is never empty).
fn take_group<T>(
    first: T,
    rx: &Receiver<T>,
    weight: impl Fn(&T) -> usize,
    max: usize,
    max_weight: usize,
) -> Vec<T> {
    let mut total = weight(&first);
    let mut out = vec![first];
    while out.len() < max && total < max_weight {
        match rx.try_recv() {
            Ok(j) => {
                total += weight(&j);
                out.push(j);
            }
            Err(_) => break,
        }
    }
    out
}

pub(super) struct Writer<S: Store> {
    store: Arc<S>,
    clock: Clock,
    name: LedgerName,
    key: Arc<SigningKey>,
    policy: LogPolicy,
    frontier: Frontier,
    last_time: Timestamp,
    /// Tree size of the latest checkpoint, and when the first event it does not cover
    /// was committed (the deadline of the promise in that event's receipt).
    checkpointed: u64,
    uncovered_since: Option<Instant>,
    failed: Option<String>,
    /// Committed parties and key owners, across groups (see [`Known`]).
    known: std::cell::RefCell<Known>,
}

fn corrupt(location: impl Into<String>, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        location: location.into(),
        detail: detail.into(),
    }
}

impl<S: Store> Writer<S> {
    pub(super) fn start(
        store: Arc<S>,
        clock: Clock,
        name: LedgerName,
        key: Arc<SigningKey>,
        policy: LogPolicy,
        vkey: &VerifierKey,
    ) -> Result<Self, StoreError> {
        let len = store.len()?;
        let last_time = match len.checked_sub(1) {
            Some(i) => {
                store
                    .entry(LogIndex::new(i))?
                    .ok_or_else(|| corrupt(format!("log entry {i}"), "missing"))?
                    .integrated_at
            }
            None => Timestamp::clamped(0),
        };
        let frontier = log::frontier(&*store, len)?;
        let checkpointed = match store.latest_checkpoint()? {
            None => 0,
            Some(cp) => {
                let c = &cp.checkpoint;
                let loc = format!("checkpoint at size {}", c.size);
                cp.verify(vkey)
                    .map_err(|e| corrupt(&loc, format!("{e}: refusing to sign beside it")))?;
                if c.size > len {
                    return Err(corrupt(
                        loc,
                        format!("it covers {} events but the log holds {len}", c.size),
                    ));
                }
                if log::frontier(&*store, c.size)?.root() != c.root {
                    return Err(corrupt(
                        loc,
                        "the stored tree no longer has this signed root: the log was \
                         rewritten; refusing to sign checkpoints that contradict it",
                    ));
                }
                c.size
            }
        };
        let mut w = Self {
            store,
            clock,
            name,
            key,
            policy,
            frontier,
            last_time,
            checkpointed,
            uncovered_since: None,
            failed: None,
            known: std::cell::RefCell::default(),
        };
        if w.frontier.size() > w.checkpointed {
            // Keep any promise made before a restart: cover the whole log at once.
            w.issue_checkpoint()?;
        }
        Ok(w)
    }

    pub(super) fn run(mut self, rx: &Receiver<Job>) {
        loop {
            let first = match self.uncovered_since {
                Some(since) => {
                    let wait = (since + self.policy.checkpoint_interval)
                        .saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(j) => j,
                        Err(RecvTimeoutError::Timeout) => {
                            self.scheduled_checkpoint();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(j) => j,
                    Err(_) => break,
                },
            };
            let jobs = take_group(first, rx, Job::weight, MAX_GROUP, MAX_GROUP_BYTES);
            self.group(jobs);
        }
        // Shutting down: leave no event uncovered by a checkpoint.
        if self.failed.is_none() && self.frontier.size() > self.checkpointed {
            if let Err(e) = self.issue_checkpoint() {
                tracing::error!(error = %e, "final checkpoint failed");
            }
        }
    }

    fn scheduled_checkpoint(&mut self) {
        if self.failed.is_some() {
            self.uncovered_since = None;
            return;
        }
        if let Err(e) = self.issue_checkpoint() {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &StoreError) {
        tracing::error!(error = %e, "commit failed; the writer refuses all further events");
        self.failed = Some(e.to_string());
        self.uncovered_since = None;
    }

    fn sign_checkpoint(&self) -> SignedCheckpoint {
        Checkpoint {
            origin: self.name.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        }
        .sign(&self.key)
    }

    /// Commits a checkpoint of the current tree on its own.
    fn issue_checkpoint(&mut self) -> Result<SignedCheckpoint, StoreError> {
        let cp = self.sign_checkpoint();
        self.store.commit(&Group {
            checkpoint: Some(cp.clone()),
            ..Group::default()
        })?;
        self.checkpointed = cp.checkpoint.size;
        self.uncovered_since = None;
        tracing::debug!(size = self.checkpointed, "checkpoint issued");
        Ok(cp)
    }

    fn group(&mut self, jobs: Vec<Job>) {
        let mut appends = Vec::with_capacity(jobs.len());
        let mut cp_requests = Vec::new();
        for j in jobs {
            match j {
                Job::Append { event, reply } => appends.push((event, reply)),
                Job::Checkpoint { reply } => cp_requests.push(reply),
            }
        }
        if let Some(reason) = &self.failed {
            for (_, reply) in appends {
                let _ = reply.send(Err(AppendError::Failed(reason.clone())));
            }
            for reply in cp_requests {
                let _ = reply.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        let now = (self.clock)().max(self.last_time);
        let mut overlay = Overlay::default();
        let mut group = Group::default();
        let mut frontier = self.frontier.clone();
        let mut waiting = Vec::new();
        for (event, reply) in appends {
            match self.judge(&overlay, &event, now, group.events.len() as u64) {
                Ok(Judged::Duplicate(d)) => waiting.push((reply, d)),
                Ok(Judged::New(c)) => {
                    let leaf = entry_leaf_hash(c.entry.integrated_at, &c.entry.event);
                    group.nodes.extend(frontier.push(leaf));
                    let d = Dup {
                        index: c.entry.index,
                        hash: c.entry.hash,
                        integrated_at: now,
                        duplicate: false,
                        coverage: None,
                    };
                    overlay.apply(&c);
                    group.events.push(c);
                    waiting.push((reply, d));
                }
                // Refused: nothing of it is in the group; the client may hear at once.
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        let grew = frontier.size() > self.checkpointed;
        let due = self.policy.checkpoint_interval.is_zero()
            || !cp_requests.is_empty()
            || self
                .uncovered_since
                .is_some_and(|t| t.elapsed() >= self.policy.checkpoint_interval);
        if grew && due {
            group.checkpoint = Some(
                Checkpoint {
                    origin: self.name.clone(),
                    size: frontier.size(),
                    root: frontier.root(),
                }
                .sign(&self.key),
            );
        }
        if group.events.is_empty() && group.checkpoint.is_none() {
            self.reply(waiting, None, now);
            self.answer_checkpoints(cp_requests);
            return;
        }
        match self.store.commit(&group) {
            Ok(()) => {
                self.known.get_mut().committed(&group.events);
                self.frontier = frontier;
                self.last_time = now;
                if let Some(cp) = &group.checkpoint {
                    self.checkpointed = cp.checkpoint.size;
                    self.uncovered_since = None;
                } else if self.uncovered_since.is_none() && grew {
                    self.uncovered_since = Some(Instant::now());
                }
                tracing::debug!(
                    events = group.events.len(),
                    size = self.frontier.size(),
                    checkpoint = group.checkpoint.is_some(),
                    "group committed"
                );
                self.reply(waiting, group.checkpoint.as_ref(), now);
                self.answer_checkpoints(cp_requests);
            }
            Err(e) => {
                self.fail(&e);
                let reason = e.to_string();
                for (reply, _) in waiting {
                    let _ = reply.send(Err(AppendError::Failed(reason.clone())));
                }
                for reply in cp_requests {
                    let _ = reply.send(Err(AppendError::Failed(reason.clone())));
                }
            }
        }
    }

    fn answer_checkpoints(&self, requests: Vec<Sender<Result<SignedCheckpoint, AppendError>>>) {
        if requests.is_empty() {
            return;
        }
        let latest = self
            .store
            .latest_checkpoint()
            .map_err(AppendError::from)
            .and_then(|c| c.ok_or(AppendError::Empty));
        for reply in requests {
            let _ = reply.send(latest.clone());
        }
    }

    /// Sends receipt drafts: events of this group are covered by its checkpoint (or get
    /// a promise); duplicates carry the coverage looked up when they were judged.
    fn reply(
        &self,
        waiting: Vec<(Sender<Result<Draft, AppendError>>, Dup)>,
        cp: Option<&SignedCheckpoint>,
        now: Timestamp,
    ) {
        let promise = now.saturating_add(
            i64::try_from(self.policy.checkpoint_interval.as_secs()).unwrap_or(i64::MAX) + 1,
        );
        let cp_ref = cp.map(CheckpointRef::of);
        for (reply, d) in waiting {
            let coverage = d.coverage.or(cp_ref).filter(|c| c.size > d.index.get());
            let body = ReceiptBody {
                ledger: self.name.clone(),
                index: d.index,
                event_hash: d.hash,
                integrated_at: d.integrated_at,
                checkpoint: coverage,
                checkpoint_by: coverage.is_none().then_some(promise),
            };
            let _ = reply.send(Ok(Draft {
                body,
                duplicate: d.duplicate,
            }));
        }
    }

    fn judge(
        &self,
        overlay: &Overlay,
        ev: &VerifiedEvent,
        now: Timestamp,
        offset: u64,
    ) -> Result<Judged, AppendError> {
        let hash = ev.hash();
        if let Some((index, integrated_at)) = overlay.hashes.get(&hash) {
            return Ok(Judged::Duplicate(Dup {
                index: *index,
                hash,
                integrated_at: *integrated_at,
                duplicate: true,
                coverage: None,
            }));
        }
        if let Some(index) = self.store.index_of(&hash)? {
            let entry = self.store.entry(index)?.ok_or_else(|| {
                corrupt(
                    format!("log entry {index}"),
                    format!("hash index points at it for {hash} but it is missing"),
                )
            })?;
            let coverage = log::first_covering(&*self.store, index)?.map(|c| CheckpointRef::of(&c));
            return Ok(Judged::Duplicate(Dup {
                index,
                hash,
                integrated_at: entry.integrated_at,
                duplicate: true,
                coverage,
            }));
        }
        let state = overlay.load(
            &*self.store,
            &mut self.known.borrow_mut(),
            &Touches::of(ev.envelope()),
        )?;
        let index = LogIndex::new(self.frontier.size() + offset);
        let delta = rules::apply(&state, ev, Context { index, now })?;
        let entry = LogEntry {
            index,
            integrated_at: now,
            hash,
            event: ev.canonical_bytes().to_vec(),
        };
        Ok(Judged::New(Committed { entry, delta }))
    }
}

/// What the writer knows about an accepted event before its receipt is built.
struct Dup {
    index: LogIndex,
    hash: EventHash,
    integrated_at: Timestamp,
    duplicate: bool,
    coverage: Option<CheckpointRef>,
}

enum Judged {
    Duplicate(Dup),
    New(Committed),
}

#[cfg(test)]
mod tests {
    use super::take_group;

    fn queued(items: &[usize]) -> crossbeam_channel::Receiver<usize> {
        let (tx, rx) = crossbeam_channel::unbounded();
        for &i in items {
            tx.send(i).expect("receiver alive");
        }
        rx
    }

    #[test]
    fn a_group_stops_at_the_count_or_the_weight_whichever_comes_first() {
        // Small items: the count bound.
        let rx = queued(&[1; 10]);
        assert_eq!(take_group(1, &rx, |&w| w, 4, 1000).len(), 4);
        // Large items: the weight bound, including the item that reaches it.
        let rx = queued(&[300, 300, 300, 300]);
        assert_eq!(take_group(300, &rx, |&w| w, 4096, 1000), vec![300; 4]);
        let rx = queued(&[600, 600]);
        assert_eq!(take_group(600, &rx, |&w| w, 4096, 1000), vec![600, 600]);
        // One item heavier than the bound still forms a group on its own.
        let rx = queued(&[5]);
        assert_eq!(take_group(5000, &rx, |&w| w, 4096, 1000), vec![5000]);
        assert_eq!(rx.len(), 1, "the next item waits for the next group");
        // An empty queue: the first item alone.
        let rx = queued(&[]);
        assert_eq!(take_group(7, &rx, |&w| w, 4096, 1000), vec![7]);
    }
}
