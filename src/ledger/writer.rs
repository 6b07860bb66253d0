//! The single writer thread: judges events against current state, extends the Merkle
//! frontier, decides when to issue a checkpoint, and group-commits it all in one durable
//! `Store::commit`. The commit runs on a second thread (the committer), so the writer
//! judges the next group while the store makes the previous one durable: a two-stage
//! pipeline, at most one group in flight. The next group is judged over the in-flight
//! group's changes ([`Overlay::over`]); it is sent to the committer only after the
//! previous commit returned, and refused if that commit failed.
//!
//! Invariants:
//! - a reply is sent only after the commit holding its event (and the Merkle nodes and
//!   checkpoint that cover it) returned `Ok`; a duplicate of an event in the group in
//!   flight is answered with the next group, so after the commit of the original;
//! - the store commits groups one at a time, in the order they were judged;
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

/// A judged group on its way to the store, with everyone waiting on it.
struct InFlight {
    group: Group,
    waiting: Vec<(Sender<Result<Draft, AppendError>>, Dup)>,
    cp_requests: Vec<Sender<Result<SignedCheckpoint, AppendError>>>,
    now: Timestamp,
}

/// The group the writer is judging.
struct Building {
    now: Timestamp,
    overlay: Overlay,
    group: Group,
    frontier: Frontier,
    waiting: Vec<(Sender<Result<Draft, AppendError>>, Dup)>,
    cp_requests: Vec<Sender<Result<SignedCheckpoint, AppendError>>>,
    /// Jobs taken and their weight, against `MAX_GROUP` and `MAX_GROUP_BYTES`.
    count: usize,
    weight: usize,
}

/// What the committer reports for each group: its events once durable, or why not.
type Outcome = Result<Vec<Committed>, StoreError>;

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
    /// The changes of the group the committer holds, if it has not reported yet.
    in_flight: Option<Arc<Overlay>>,
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
            in_flight: None,
        };
        if w.frontier.size() > w.checkpointed {
            // Keep any promise made before a restart: cover the whole log at once.
            w.issue_checkpoint()?;
        }
        Ok(w)
    }

    pub(super) fn run(mut self, rx: &Receiver<Job>) {
        let (to_commit, commits) = crossbeam_channel::bounded::<InFlight>(1);
        let (report, outcomes) = crossbeam_channel::bounded::<Outcome>(1);
        let committer = Committer {
            store: Arc::clone(&self.store),
            name: self.name.clone(),
            interval: self.policy.checkpoint_interval,
        };
        std::thread::scope(|scope| {
            let started = std::thread::Builder::new()
                .name("custody-commit".into())
                .spawn_scoped(scope, move || committer.run(&commits, &report));
            if let Err(e) = started {
                self.fail(&StoreError::Io(format!(
                    "cannot start the committer thread: {e}"
                )));
            }
            self.judge_loop(rx, &to_commit, &outcomes);
            self.settle(&outcomes);
            drop(to_commit);
        });
        // Shutting down: leave no event uncovered by a checkpoint.
        if self.failed.is_none() && self.frontier.size() > self.checkpointed {
            if let Err(e) = self.issue_checkpoint() {
                tracing::error!(error = %e, "final checkpoint failed");
            }
        }
    }

    fn judge_loop(
        &mut self,
        rx: &Receiver<Job>,
        to_commit: &Sender<InFlight>,
        outcomes: &Receiver<Outcome>,
    ) {
        loop {
            let first = match self.uncovered_since {
                Some(since) => {
                    let wait = (since + self.policy.checkpoint_interval)
                        .saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(j) => j,
                        Err(RecvTimeoutError::Timeout) => {
                            self.settle(outcomes);
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
            self.group(jobs, rx, to_commit, outcomes);
        }
    }

    /// Waits for the committer's report on the group in flight, if any: its events become
    /// known as committed, or the writer fails.
    fn settle(&mut self, outcomes: &Receiver<Outcome>) {
        if self.in_flight.take().is_none() {
            return;
        }
        match outcomes.recv() {
            Ok(Ok(events)) => self.known.get_mut().committed(&events),
            Ok(Err(e)) => self.fail(&e),
            Err(_) => self.fail(&StoreError::Io("the committer thread stopped".into())),
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

    fn group(
        &mut self,
        jobs: Vec<Job>,
        rx: &Receiver<Job>,
        to_commit: &Sender<InFlight>,
        outcomes: &Receiver<Outcome>,
    ) {
        if let Some(reason) = self.failed.clone() {
            for j in jobs {
                match j {
                    Job::Append { reply, .. } => {
                        let _ = reply.send(Err(AppendError::Failed(reason.clone())));
                    }
                    Job::Checkpoint { reply } => refuse(std::iter::empty(), vec![reply], &reason),
                }
            }
            return;
        }
        // Judged over the group in flight, while the committer makes it durable.
        let mut b = Building {
            now: (self.clock)().max(self.last_time),
            overlay: Overlay::over(self.in_flight.clone()),
            group: Group::default(),
            frontier: self.frontier.clone(),
            waiting: Vec::new(),
            cp_requests: Vec::new(),
            count: 0,
            weight: 0,
        };
        for j in jobs {
            self.add(&mut b, j);
        }
        if self.in_flight.is_some() {
            self.settle(outcomes);
            if let Some(reason) = self.failed.clone() {
                refuse(
                    b.waiting.into_iter().map(|(r, _)| r),
                    b.cp_requests,
                    &reason,
                );
                return;
            }
            // Jobs that arrived during that commit join this group, as they would have
            // joined it had the writer committed the previous group itself: the pipeline
            // must not make groups smaller (more commits, each with its fsync).
            while b.count < MAX_GROUP && b.weight < MAX_GROUP_BYTES {
                match rx.try_recv() {
                    Ok(j) => self.add(&mut b, j),
                    Err(_) => break,
                }
            }
        }
        let grew = b.frontier.size() > self.checkpointed;
        let due = self.policy.checkpoint_interval.is_zero()
            || !b.cp_requests.is_empty()
            || self
                .uncovered_since
                .is_some_and(|t| t.elapsed() >= self.policy.checkpoint_interval);
        if grew && due {
            b.group.checkpoint = Some(
                Checkpoint {
                    origin: self.name.clone(),
                    size: b.frontier.size(),
                    root: b.frontier.root(),
                }
                .sign(&self.key),
            );
        }
        // The previous group is durable: this one goes to the committer. What the writer
        // now holds runs ahead of the store by this group; if its commit fails, the
        // writer refuses everything after it.
        self.frontier = b.frontier;
        self.last_time = b.now;
        if let Some(cp) = &b.group.checkpoint {
            self.checkpointed = cp.checkpoint.size;
            self.uncovered_since = None;
        } else if self.uncovered_since.is_none() && grew {
            self.uncovered_since = Some(Instant::now());
        }
        self.in_flight = Some(b.overlay.into_layer());
        let sent = to_commit.send(InFlight {
            group: b.group,
            waiting: b.waiting,
            cp_requests: b.cp_requests,
            now: b.now,
        });
        if let Err(crossbeam_channel::SendError(f)) = sent {
            self.in_flight = None;
            let e = StoreError::Io("the committer thread stopped".into());
            self.fail(&e);
            refuse(
                f.waiting.into_iter().map(|(r, _)| r),
                f.cp_requests,
                &e.to_string(),
            );
        }
    }

    /// Judges one job into the group being built.
    fn add(&self, b: &mut Building, job: Job) {
        b.count += 1;
        b.weight += job.weight();
        let (event, reply) = match job {
            Job::Append { event, reply } => (event, reply),
            Job::Checkpoint { reply } => {
                b.cp_requests.push(reply);
                return;
            }
        };
        match self.judge(&b.overlay, &event, b.now, b.group.events.len() as u64) {
            Ok(Judged::Duplicate(d)) => b.waiting.push((reply, d)),
            Ok(Judged::New(c)) => {
                let leaf = entry_leaf_hash(c.entry.integrated_at, &c.entry.event);
                b.group.nodes.extend(b.frontier.push(leaf));
                let d = Dup {
                    index: c.entry.index,
                    hash: c.entry.hash,
                    integrated_at: b.now,
                    duplicate: false,
                    coverage: None,
                };
                b.overlay.apply(&c);
                b.group.events.push(c);
                b.waiting.push((reply, d));
            }
            // Refused: nothing of it is in the group; the client may hear at once.
            Err(e) => {
                let _ = reply.send(Err(e));
            }
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
        if let Some((index, integrated_at)) = overlay.accepted(&hash) {
            return Ok(Judged::Duplicate(Dup {
                index,
                hash,
                integrated_at,
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

/// Answers everyone waiting on a group that will not be committed.
fn refuse(
    appends: impl Iterator<Item = Sender<Result<Draft, AppendError>>>,
    cp_requests: Vec<Sender<Result<SignedCheckpoint, AppendError>>>,
    reason: &str,
) {
    for reply in appends {
        let _ = reply.send(Err(AppendError::Failed(reason.to_owned())));
    }
    for reply in cp_requests {
        let _ = reply.send(Err(AppendError::Failed(reason.to_owned())));
    }
}

/// The second stage: commits each judged group, then answers those waiting on it.
struct Committer<S: Store> {
    store: Arc<S>,
    name: LedgerName,
    interval: std::time::Duration,
}

impl<S: Store> Committer<S> {
    fn run(&self, groups: &Receiver<InFlight>, report: &Sender<Outcome>) {
        for f in groups {
            let g = &f.group;
            let done = if g.events.is_empty() && g.checkpoint.is_none() {
                Ok(())
            } else {
                self.store.commit(g)
            };
            let outcome = match done {
                Ok(()) => {
                    tracing::debug!(
                        events = g.events.len(),
                        checkpoint = g.checkpoint.is_some(),
                        "group committed"
                    );
                    self.reply(f.waiting, g.checkpoint.as_ref(), f.now);
                    self.answer_checkpoints(f.cp_requests);
                    Ok(f.group.events)
                }
                Err(e) => {
                    let reason = e.to_string();
                    refuse(
                        f.waiting.into_iter().map(|(r, _)| r),
                        f.cp_requests,
                        &reason,
                    );
                    Err(e)
                }
            };
            if report.send(outcome).is_err() {
                return;
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
        let promise =
            now.saturating_add(i64::try_from(self.interval.as_secs()).unwrap_or(i64::MAX) + 1);
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
