//! The append path: one writer thread that judges events against current state and
//! group-commits them (one durable `Store::commit` acknowledges every event of the group),
//! together with the Merkle nodes they complete and, by [`LogPolicy`], a signed checkpoint.
//!
//! Callers verify signatures *before* handing events over (that needs no state and runs on
//! as many threads as they like); the writer only loads the records an event touches,
//! runs `core::rules::apply`, and queues the result. Architecture invariant: a receipt is
//! sent only after the commit that holds its event returned `Ok`, i.e. after the flush.
//! If a commit fails the writer stops accepting events for good (the process must be
//! restarted and the store re-opened), because a failed flush may have left part of the
//! group on disk. Receipts are signed with the log key on the caller's thread, so the
//! writer spends no time on them.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::core::checkpoint::{SignedCheckpoint, VerifierKey};
use crate::core::error::RuleError;
use crate::core::ids::{EventHash, LedgerName, LogIndex, PublicKey};
use crate::core::receipt::{self, ReceiptBody, SignedReceipt};
use crate::core::values::Timestamp;
use crate::core::verify::VerifiedEvent;
use crate::store::{LedgerMeta, Store, StoreError};

mod overlay;
pub mod replica;
mod writer;

use writer::{Job, Writer};

/// Most events one commit group holds.
pub const MAX_GROUP: usize = 4096;

/// A group stops taking events once their canonical bytes reach this much (it always takes
/// at least one). Event bytes stand in for the records an event writes (a lot registration
/// of 1,000 units is ~80 KB and writes ~4,000 records). sled applies a group as one batch,
/// and groups of 4,096 large events held gigabytes: at 200k events the build phase of
/// `custody bench` peaked at 2.1 GiB resident with no byte bound, 0.53 GiB with this one,
/// and ingest got faster (BENCHMARKS.md, "Memory"). Single-unit events (~0.7 KB) still
/// group by the hundreds, so one fsync still serves hundreds of events.
pub const MAX_GROUP_BYTES: usize = 256 << 10;
/// Receipts `append_all` signs as one batch (one signature), while the writer commits the rest.
pub const SIGN_CHUNK: usize = 512;

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

/// When checkpoints are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// Zero: every commit group that adds events carries a checkpoint of the new tree, so
    /// every receipt names the checkpoint that first covers its event. Otherwise at most
    /// one checkpoint per interval; receipts in between carry a promise (`checkpoint_by`)
    /// that the writer keeps with a timer, on shutdown, and at the next start.
    pub checkpoint_interval: Duration,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            checkpoint_interval: Duration::ZERO,
        }
    }
}

/// Proof of acceptance: the ledger's signed receipt, plus whether the event was already
/// in the log (an idempotent resubmission gets the same signed body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Receipt {
    pub index: LogIndex,
    pub hash: EventHash,
    pub integrated_at: Timestamp,
    /// True when the identical event was already in the log (idempotent resubmission).
    pub duplicate: bool,
    pub signed: SignedReceipt,
}

/// The writer's unsigned answer for one event.
pub(crate) struct Draft {
    body: ReceiptBody,
    duplicate: bool,
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
    #[error("the log is empty: there is no checkpoint to issue")]
    Empty,
    #[error("this is a read-only mirror of ledger {0}: send events to the ledger itself")]
    ReadOnly(String),
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
    #[error("the log key given ({given}) is not this ledger's log key ({expected})")]
    WrongLogKey { expected: String, given: String },
}

impl Clone for AppendError {
    fn clone(&self) -> Self {
        match self {
            Self::Rule(r) => Self::Rule(r.clone()),
            Self::Store(e) => Self::Failed(e.to_string()),
            Self::Failed(s) => Self::Failed(s.clone()),
            Self::Closed => Self::Closed,
            Self::Empty => Self::Empty,
            Self::ReadOnly(n) => Self::ReadOnly(n.clone()),
        }
    }
}

pub struct Ledger<S: Store> {
    store: Arc<S>,
    name: LedgerName,
    vkey: VerifierKey,
    /// `None` in a read-only mirror, which holds no log key and appends nothing.
    key: Option<Arc<SigningKey>>,
    tx: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl<S: Store> Ledger<S> {
    /// Records `name` in an empty store (or accepts the same name in a store that holds no
    /// event yet, so an interrupted `init` can be rerun).
    pub fn init(store: &S, name: &LedgerName, log_key: &PublicKey) -> Result<(), StoreError> {
        match store.meta()? {
            Some(m) if &m.name == name && &m.log_key == log_key && store.len()? == 0 => Ok(()),
            Some(m) => Err(StoreError::AlreadyInitialized(m.name.to_string())),
            None => store.init(&LedgerMeta {
                name: name.clone(),
                log_key: *log_key,
            }),
        }
    }

    /// Opens an initialized store with its log key and starts the writer; checkpoints
    /// with every commit group.
    pub fn open(store: S, clock: Clock, key: SigningKey) -> Result<Self, OpenError> {
        Self::open_with(store, clock, key, LogPolicy::default())
    }

    pub fn open_with(
        store: S,
        clock: Clock,
        key: SigningKey,
        policy: LogPolicy,
    ) -> Result<Self, OpenError> {
        // Before anything else: a store that lost acknowledged events must not serve.
        store.check_acknowledged()?;
        let meta = store.meta()?.ok_or(OpenError::NotInitialized)?;
        let given = PublicKey::from_bytes(key.verifying_key().to_bytes())
            .expect("invariant: a signing key's own public key is valid and not weak");
        if given != meta.log_key {
            return Err(OpenError::WrongLogKey {
                expected: meta.log_key.to_string(),
                given: given.to_string(),
            });
        }
        let vkey = VerifierKey {
            name: meta.name.clone(),
            key: meta.log_key,
        };
        let store = Arc::new(store);
        let key = Arc::new(key);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(MAX_GROUP * 4);
        let w = Writer::start(
            Arc::clone(&store),
            clock,
            meta.name.clone(),
            Arc::clone(&key),
            policy,
            &vkey,
        )?;
        let writer = std::thread::Builder::new()
            .name("custody-writer".into())
            .spawn(move || w.run(&rx))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            store,
            name: meta.name,
            vkey,
            key: Some(key),
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Opens an initialized store without the log key and without a writer: what
    /// `custody serve --read-only` serves (a mirror kept by `custody monitor --mirror`).
    /// Appends fail with [`AppendError::ReadOnly`]; [`Ledger::checkpoint`] returns the latest
    /// stored checkpoint; reports are not signed.
    pub fn open_read_only(store: S) -> Result<Self, OpenError> {
        store.check_acknowledged()?;
        let meta = store.meta()?.ok_or(OpenError::NotInitialized)?;
        Ok(Self {
            store: Arc::new(store),
            vkey: VerifierKey {
                name: meta.name.clone(),
                key: meta.log_key,
            },
            name: meta.name,
            key: None,
            tx: None,
            writer: None,
        })
    }

    /// Whether this ledger is a read-only mirror.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.key.is_none()
    }

    fn read_only(&self) -> AppendError {
        AppendError::ReadOnly(self.name.to_string())
    }

    /// Signs a report (JSON text) with the log key, under the report domain only; `None` in
    /// a read-only mirror.
    #[must_use]
    pub fn sign_report(&self, report: String) -> Option<crate::core::report::SignedReport> {
        Some(crate::core::report::SignedReport::sign(
            self.key.as_ref()?,
            report,
        ))
    }

    /// The log's verifier key (C2SP vkey), as witnesses and auditors configure it.
    #[must_use]
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.vkey
    }

    /// Issues a checkpoint now if the tree grew since the last one; returns the latest.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, AppendError> {
        if self.is_read_only() {
            return self.store.latest_checkpoint()?.ok_or(AppendError::Empty);
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(Job::Checkpoint { reply })
            .map_err(|_| AppendError::Closed)?;
        rx.recv().map_err(|_| AppendError::Closed)?
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
        let draft = rx.recv().map_err(|_| AppendError::Closed)?;
        self.finish_batch(vec![draft])
            .pop()
            .expect("invariant: one answer per draft")
    }

    fn receipt(signed: SignedReceipt, duplicate: bool) -> Receipt {
        let b = &signed.body;
        Receipt {
            index: b.index,
            hash: b.event_hash,
            integrated_at: b.integrated_at,
            duplicate,
            signed,
        }
    }

    /// Signs the accepted drafts of `drafts` as one batch (FORMAT.md §10): leaf hashes on
    /// every core, then one signature. Refusals pass through in place.
    fn finish_batch(
        &self,
        drafts: Vec<Result<Draft, AppendError>>,
    ) -> Vec<Result<Receipt, AppendError>> {
        use rayon::prelude::*;
        let Some(key) = self.key.as_ref() else {
            return drafts.into_iter().map(|_| Err(self.read_only())).collect();
        };
        let mut bodies = Vec::with_capacity(drafts.len());
        let slots: Vec<Result<bool, AppendError>> = drafts
            .into_iter()
            .map(|d| {
                d.map(|d| {
                    bodies.push(d.body);
                    d.duplicate
                })
            })
            .collect();
        let mut signed = if bodies.is_empty() {
            Vec::new()
        } else {
            let leaves: Vec<_> = bodies.par_iter().map(receipt::leaf).collect();
            receipt::sign_batch(bodies, &leaves, key)
        }
        .into_iter();
        slots
            .into_iter()
            .map(|slot| {
                slot.map(|duplicate| {
                    let s = signed
                        .next()
                        .expect("invariant: one signed receipt per accepted draft");
                    Self::receipt(s, duplicate)
                })
            })
            .collect()
    }

    /// Appends many events, each judged on its own (one refusal does not stop the rest),
    /// in order; results line up with the input.
    ///
    /// Receipts are signed in batches of up to [`SIGN_CHUNK`], one signature each
    /// (FORMAT.md §10). For more than [`SIGN_CHUNK`] events they are signed a batch at a
    /// time as the writer commits, on a helper thread, while the writer goes on with the
    /// next groups: signing them all after the last commit left the writer idle meanwhile
    /// (BENCHMARKS.md, fifth round).
    pub fn append_all(&self, events: Vec<VerifiedEvent>) -> Vec<Result<Receipt, AppendError>> {
        let n = events.len();
        let pending: Vec<_> = events.into_iter().map(|e| self.submit(e)).collect();
        let draft = |p: Result<Receiver<Result<Draft, AppendError>>, AppendError>| {
            p.and_then(|rx| rx.recv().map_err(|_| AppendError::Closed)?)
        };
        if n <= SIGN_CHUNK {
            let drafts: Vec<_> = pending.into_iter().map(draft).collect();
            return self.finish_batch(drafts);
        }
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Result<Draft, AppendError>>>();
            let signer = s.spawn(move || {
                let mut out = Vec::with_capacity(n);
                for chunk in rx {
                    out.extend(self.finish_batch(chunk));
                }
                out
            });
            let mut chunk = Vec::with_capacity(SIGN_CHUNK);
            for p in pending {
                chunk.push(draft(p));
                if chunk.len() == SIGN_CHUNK {
                    // The signer only stops early by panicking, which the join re-raises.
                    let _ = tx.send(std::mem::replace(
                        &mut chunk,
                        Vec::with_capacity(SIGN_CHUNK),
                    ));
                }
            }
            let _ = tx.send(chunk);
            drop(tx);
            signer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn submit(
        &self,
        event: VerifiedEvent,
    ) -> Result<Receiver<Result<Draft, AppendError>>, AppendError> {
        if self.is_read_only() {
            return Err(self.read_only());
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(Job::Append {
            event: Box::new(event),
            reply,
        })
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
