//! `custody monitor`: follow a server's log, verify every checkpoint and entry, alert when
//! the log shrinks or forks (exit 4, evidence saved), report events touching watched units
//! and parties.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{emit, Cli};
use crate::core::ids::PartyId;
use crate::core::unit::UnitId;
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
    };
    loop {
        let r = step(server, &a.state, a.verifier_key.as_deref(), &watch)?;
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
