//! `custody checkpoint` and `custody prove`: the global Merkle log from the command line.
//! Read-only: they need the store, not the log key.

use anyhow::{Context as _, Result};
use clap::Args;
use serde::Serialize;

use super::read::ledger_name;
use super::{emit, open_store, Cli, Format};
use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{EventHash, LogIndex};
use crate::core::proof::{ConsistencyProof, InclusionProof};
use crate::log;
use crate::store::{SledStore, Store};

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// The checkpoint issued at this tree size (default: the latest).
    #[arg(long)]
    pub size: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// Inclusion proof of this event: its hash (64 hex digits) or its log index.
    #[arg(required_unless_present = "consistency")]
    pub event: Option<String>,
    /// Inclusion: prove against the checkpoint at this size (default: the latest).
    #[arg(long, conflicts_with = "consistency")]
    pub size: Option<u64>,
    /// Consistency proof from tree size OLD to tree size NEW.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "event")]
    pub consistency: Option<Vec<u64>>,
}

#[derive(Serialize)]
struct CheckpointOut {
    origin: String,
    size: u64,
    root_hash: String,
    /// The C2SP verifier key of the log (name+keyid+key).
    verifier_key: String,
    /// The signed note, exactly as issued.
    note: String,
}

fn vkey(store: &SledStore) -> Result<VerifierKey> {
    let meta = store
        .meta()?
        .context("the data directory holds no initialized ledger")?;
    Ok(VerifierKey {
        name: meta.name,
        key: meta.log_key,
    })
}

pub fn checkpoint(cli: &Cli, a: &CheckpointArgs) -> Result<()> {
    let (cp, vk) = if let Some(url) = &cli.server {
        let r = crate::remote::Remote::connect(url)?;
        let path = a.size.map_or_else(
            || "/v1/checkpoint".to_owned(),
            |s| format!("/v1/checkpoint?size={s}"),
        );
        let cp = crate::core::checkpoint::SignedCheckpoint::parse(r.get_text(&path)?.as_bytes())?;
        let info = r
            .get_json("/v1/ledger")?
            .context("the server did not describe its ledger")?;
        let vk = VerifierKey::parse(info["verifier_key"].as_str().unwrap_or_default())?;
        // A checkpoint the log key did not sign is not printed as if it were.
        cp.verify(&vk)?;
        (cp, vk)
    } else {
        let store = open_store(&cli.data)?;
        (log::checkpoint(&store, a.size)?, vkey(&store)?)
    };
    let out = CheckpointOut {
        origin: cp.checkpoint.origin.to_string(),
        size: cp.checkpoint.size,
        root_hash: cp.checkpoint.root.to_string(),
        verifier_key: vk.to_string(),
        note: cp.to_note(),
    };
    match cli.format {
        // The text form is the note itself, so it can be piped to any C2SP tool.
        Format::Text => {
            super::out(&out.note)?;
            Ok(())
        }
        _ => emit(cli.format, &out, |_| String::new()),
    }
}

#[derive(Serialize)]
struct InclusionOut {
    ledger: String,
    event_hash: EventHash,
    proof: InclusionProof,
    checkpoint: String,
}

#[derive(Serialize)]
struct ConsistencyOut {
    ledger: String,
    proof: ConsistencyProof,
    /// Signed checkpoints at the two sizes, where they were issued.
    old_checkpoint: Option<String>,
    new_checkpoint: Option<String>,
}

fn hashes(h: &[crate::core::merkle::TreeHash]) -> String {
    h.iter()
        .enumerate()
        .map(|(i, h)| format!("\n    {i:>2} {h}"))
        .collect()
}

pub fn prove(cli: &Cli, a: &ProveArgs) -> Result<()> {
    let store = open_store(&cli.data)?;
    let ledger = ledger_name(&store)?.to_string();
    if let Some(sizes) = &a.consistency {
        let (old, new) = (sizes[0], sizes[1]);
        let proof = log::prove_consistency(&store, old, new)?;
        let out = ConsistencyOut {
            ledger,
            old_checkpoint: store.checkpoint(old)?.map(|c| c.to_note()),
            new_checkpoint: store.checkpoint(new)?.map(|c| c.to_note()),
            proof,
        };
        return emit(cli.format, &out, |o| {
            format!(
                "consistency proof of ledger {} from size {} to size {} ({} hashes):{}",
                o.ledger,
                o.proof.old_size,
                o.proof.new_size,
                o.proof.hashes.len(),
                hashes(&o.proof.hashes)
            )
        });
    }
    let which = a
        .event
        .as_deref()
        .context("name an event (hash or log index), or pass --consistency OLD NEW")?;
    let index = match which.parse::<u64>() {
        Ok(i) => LogIndex::new(i),
        Err(_) => {
            let h = EventHash::parse(which)
                .with_context(|| format!("{which:?} is neither a log index nor an event hash"))?;
            store.index_of(&h)?.ok_or(log::LogError::UnknownEvent(h))?
        }
    };
    let entry = store
        .entry(index)?
        .with_context(|| format!("log index {index} is not in the log"))?;
    let cp = log::checkpoint(&store, a.size)?;
    let proof = log::prove_inclusion(&store, index, cp.checkpoint.size)?;
    let out = InclusionOut {
        ledger,
        event_hash: entry.hash,
        proof,
        checkpoint: cp.to_note(),
    };
    emit(cli.format, &out, |o| {
        format!(
            "inclusion proof of event {} at log index {} in the tree of size {}\n  leaf hash {}\n  hashes ({}):{}\n\nagainst checkpoint:\n{}",
            o.event_hash,
            o.proof.index,
            o.proof.tree_size,
            o.proof.leaf_hash,
            o.proof.hashes.len(),
            hashes(&o.proof.hashes),
            o.checkpoint.trim_end()
        )
    })
}
