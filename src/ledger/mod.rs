//! The append path: one writer thread that judges events against current state and
//! group-commits them (one durable `Store::commit` acknowledges every event of the group).
//!
//! Callers verify signatures *before* handing events over (that needs no state and runs on
//! as many threads as they like); the writer only loads the records an event touches,
//! runs `core::rules::apply`, and queues the result. Architecture invariant: a receipt is
//! sent only after the commit that holds its event returned `Ok`, i.e. after the flush.
//! If a commit fails the writer stops accepting events for good (the process must be
//! restarted and the store re-opened), because a failed flush may have left part of the
//! group on disk.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::core::error::RuleError;
use crate::core::ids::{EventHash, LedgerName, LogIndex};
use crate::core::rules::{self, Context};
use crate::core::state::Touches;
use crate::core::values::Timestamp;
use crate::core::verify::VerifiedEvent;
use crate::store::{Committed, LedgerMeta, LogEntry, Store, StoreError};

mod overlay;

use overlay::Overlay;

/// Most events one commit group holds.
pub const MAX_GROUP: usize = 4096;

/// The ledger's clock; injected so tests can pin time. The core never reads a clock.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock, to the second.
#[must_use]
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp::clamped(secs)
    })
}

/// Proof of acceptance: where the event sits in the log and when it was integrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub index: LogIndex,
    pub hash: EventHash,
    pub integrated_at: Timestamp,
    /// True when the identical event was already in the log (idempotent resubmission).
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Boxed: rule errors carry several ids and would make every `Result` large.
    #[error(transparent)]
    Rule(Box<RuleError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the ledger stopped accepting events after a storage failure ({0}); restart it")]
    Failed(String),
    #[error("the ledger writer has shut down")]
    Closed,
}

impl From<RuleError> for AppendError {
    fn from(e: RuleError) -> Self {
        Self::Rule(Box::new(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no ledger here: run `custody init` first")]
    NotInitialized,
}

struct Job {
    event: VerifiedEvent,
    reply: Sender<Result<Receipt, AppendError>>,
}

pub struct Ledger<S: Store> {
    store: Arc<S>,
    name: LedgerName,
    tx: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl<S: Store> Ledger<S> {
    /// Records `name` in an empty store (or accepts the same name in a store that holds no
    /// event yet, so an interrupted `init` can be rerun).
    pub fn init(store: &S, name: &LedgerName) -> Result<(), StoreError> {
        match store.meta()? {
            Some(m) if &m.name == name && store.len()? == 0 => Ok(()),
            Some(m) => Err(StoreError::AlreadyInitialized(m.name.to_string())),
            None => store.init(&LedgerMeta { name: name.clone() }),
        }
    }

    /// Opens an initialized store and starts the writer.
    pub fn open(store: S, clock: Clock) -> Result<Self, OpenError> {
        let meta = store.meta()?.ok_or(OpenError::NotInitialized)?;
        let store = Arc::new(store);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(MAX_GROUP * 4);
        let w = Writer::start(Arc::clone(&store), clock)?;
        let writer = std::thread::Builder::new()
            .name("custody-writer".into())
            .spawn(move || w.run(&rx))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            store,
            name: meta.name,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    #[must_use]
    pub fn name(&self) -> &LedgerName {
        &self.name
    }

    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends one event; returns once it is durable (or refused).
    pub fn append(&self, event: VerifiedEvent) -> Result<Receipt, AppendError> {
        let rx = self.submit(event)?;
        rx.recv().map_err(|_| AppendError::Closed)?
    }

    /// Appends many events, each judged on its own (one refusal does not stop the rest),
    /// in order; results line up with the input.
    pub fn append_all(&self, events: Vec<VerifiedEvent>) -> Vec<Result<Receipt, AppendError>> {
        let pending: Vec<_> = events.into_iter().map(|e| self.submit(e)).collect();
        pending
            .into_iter()
            .map(|p| p.and_then(|rx| rx.recv().map_err(|_| AppendError::Closed)?))
            .collect()
    }

    fn submit(
        &self,
        event: VerifiedEvent,
    ) -> Result<Receiver<Result<Receipt, AppendError>>, AppendError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(Job { event, reply })
            .map_err(|_| AppendError::Closed)?;
        Ok(rx)
    }
}

impl<S: Store> Drop for Ledger<S> {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            // A writer that panicked has nothing left to flush; its panic was already reported.
            let _ = w.join();
        }
    }
}

struct Writer<S: Store> {
    store: Arc<S>,
    clock: Clock,
    next: u64,
    last_time: Timestamp,
    failed: Option<String>,
}

impl<S: Store> Writer<S> {
    fn start(store: Arc<S>, clock: Clock) -> Result<Self, StoreError> {
        let next = store.len()?;
        let last_time = match next.checked_sub(1) {
            Some(i) => {
                store
                    .entry(LogIndex::new(i))?
                    .ok_or_else(|| StoreError::Corrupt {
                        location: format!("log entry {i}"),
                        detail: "missing".into(),
                    })?
                    .integrated_at
            }
            None => Timestamp::clamped(0),
        };
        Ok(Self {
            store,
            clock,
            next,
            last_time,
            failed: None,
        })
    }

    fn run(mut self, rx: &Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.group(jobs);
        }
    }

    fn group(&mut self, jobs: Vec<Job>) {
        if let Some(reason) = &self.failed {
            for j in jobs {
                let _ = j.reply.send(Err(AppendError::Failed(reason.clone())));
            }
            return;
        }
        let now = (self.clock)().max(self.last_time);
        let mut overlay = Overlay::default();
        let mut batch: Vec<Committed> = Vec::new();
        let mut waiting = Vec::new();
        for job in jobs {
            match self.judge(&overlay, &job.event, now, batch.len() as u64) {
                Ok(Judged::Duplicate(r)) => waiting.push((job.reply, r)),
                Ok(Judged::New(c)) => {
                    let r = Receipt {
                        index: c.entry.index,
                        hash: c.entry.hash,
                        integrated_at: now,
                        duplicate: false,
                    };
                    overlay.apply(&c);
                    batch.push(c);
                    waiting.push((job.reply, r));
                }
                // Refused: nothing of it is in the batch; the client may hear at once.
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            self.store.commit(&batch)
        };
        match outcome {
            Ok(()) => {
                self.next += batch.len() as u64;
                self.last_time = now;
                tracing::debug!(events = batch.len(), next = self.next, "group committed");
                for (reply, r) in waiting {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the writer refuses all further events");
                let reason = e.to_string();
                self.failed = Some(reason.clone());
                for (reply, _) in waiting {
                    let _ = reply.send(Err(AppendError::Failed(reason.clone())));
                }
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
        if let Some((index, integrated_at)) = overlay.hashes.get(&hash) {
            return Ok(Judged::Duplicate(Receipt {
                index: *index,
                hash,
                integrated_at: *integrated_at,
                duplicate: true,
            }));
        }
        if let Some(index) = self.store.index_of(&hash)? {
            let entry = self
                .store
                .entry(index)?
                .ok_or_else(|| StoreError::Corrupt {
                    location: format!("log entry {index}"),
                    detail: format!("hash index points at it for {hash} but it is missing"),
                })?;
            return Ok(Judged::Duplicate(Receipt {
                index,
                hash,
                integrated_at: entry.integrated_at,
                duplicate: true,
            }));
        }
        let state = overlay.load(&*self.store, &Touches::of(ev.envelope()))?;
        let index = LogIndex::new(self.next + offset);
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

enum Judged {
    Duplicate(Receipt),
    New(Committed),
}
