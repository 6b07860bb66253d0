//! `custody monitor`: follow a server's log, verify every checkpoint and entry, alert when
//! the log shrinks or forks (exit 4, evidence saved), report events touching watched units
//! and parties.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{emit, Cli};
use crate::core::ids::PartyId;
use crate::core::unit::UnitId;
use crate::ledger::replica::Replica;
use crate::monitor::{step, Report, Watch};

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Where the last verified checkpoint and its frontier are kept between runs.
    #[arg(long)]
    pub state: PathBuf,
    /// The log's verifier key, pinned on the first run (out of band, not from the server).
    #[arg(long)]
    pub verifier_key: Option<String>,
    /// Seconds between checks; without it, check once and exit.
    #[arg(long)]
    pub interval: Option<u64>,
    /// Report new events naming this unit (URN); repeatable.
    #[arg(long = "watch-unit")]
    pub units: Vec<String>,
    /// Report new events naming this party (party id); repeatable.
    #[arg(long = "watch-party")]
    pub parties: Vec<String>,
    /// Keep a full verified mirror of the log in this directory (sled): every entry with its
    /// index and integration time, rules replayed, every verified checkpoint. Serve it with
    /// `custody serve --read-only --data DIR`.
    #[arg(long)]
    pub mirror: Option<PathBuf>,
    /// Another server of the same log (a mirror, a replica) to compare views with: a log
    /// that shows it another history is a split view (alert). Repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

fn render(r: &Report) -> String {
    let mut s = match &r.alert {
        None => format!(
            "log verified: {} → {} entries ({} new entries checked, the frontier reproduces the signed root)",
            r.old_size, r.new_size, r.entries_verified
        ),
        Some(a) => format!(
            "ALERT {}: {}\n  evidence: {}",
            a.kind,
            a.detail,
            a.evidence.join(", ")
        ),
    };
    for p in &r.peers {
        s.push_str(&match (&p.error, p.size) {
            (Some(e), _) => format!("\n  peer {}: not compared: {e}", p.url),
            (None, Some(n)) => format!("\n  peer {}: {n} entries, consistent", p.url),
            (None, None) => format!("\n  peer {}", p.url),
        });
    }
    for t in &r.touches {
        s.push_str(&format!(
            "\n  #{} {} {} {}{}",
            t.index,
            t.at,
            t.kind,
            t.hash,
            t.units
                .iter()
                .map(|u| format!(" unit {u}"))
                .chain(t.parties.iter().map(|p| format!(" party {p}")))
                .collect::<String>()
        ));
    }
    s
}

/// Runs; `Ok(false)` after an alert.
pub fn run(cli: &Cli, a: &MonitorArgs) -> Result<bool> {
    let server = cli
        .server
        .as_deref()
        .context("monitor needs --server URL")?;
    let watch = Watch {
        units: a
            .units
            .iter()
            .map(|u| UnitId::parse(u).with_context(|| format!("--watch-unit {u}")))
            .collect::<Result<_>>()?,
        parties: a
            .parties
            .iter()
            .map(|p| PartyId::parse(p).with_context(|| format!("--watch-party {p}")))
            .collect::<Result<_>>()?,
        peers: a.peers.clone(),
    };
    let pinned = super::bundle::verifier_key_arg(cli, a.verifier_key.as_deref())?;
    let mut mirror = match &a.mirror {
        None => None,
        Some(dir) => {
            let key = match &pinned {
                Some(k) => k.clone(),
                None => crate::monitor::pinned_key(&a.state)?.context(
                    "the first run needs --verifier-key: the log key must be pinned out of band",
                )?,
            };
            let vkey = crate::core::checkpoint::VerifierKey::parse(&key)
                .map_err(|e| anyhow::anyhow!("--verifier-key: {e}"))?;
            let store = crate::store::SledStore::open(dir)
                .with_context(|| format!("opening the mirror {}", dir.display()))?;
            Some(
                Replica::open(store, &vkey)
                    .with_context(|| format!("opening the mirror {}", dir.display()))?,
            )
        }
    };
    loop {
        let r = step(server, &a.state, pinned.as_deref(), &watch, mirror.as_mut())?;
        let alert = r.alert.is_some();
        emit(cli.format, &r, render)?;
        if alert {
            return Ok(false);
        }
        match a.interval {
            None => return Ok(true),
            Some(s) => std::thread::sleep(std::time::Duration::from_secs(s.max(1))),
        }
    }
}
