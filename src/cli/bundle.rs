//! `custody export` and `custody verify-bundle`: a unit's evidence bundle (FORMAT.md §15),
//! written from the data directory and verified offline with only the log's verifier key.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{emit, open_store, parse_unit, Cli};
use crate::core::bundle::{self, Bundle};
use crate::core::checkpoint::VerifierKey;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The unit (URN or MANUFACTURER/PRODUCT/SERIAL).
    pub unit: String,
    /// Write the bundle here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also carry the unit's resolution report, signed by the log key, and the list entries
    /// its findings rely on (needs the log key: run where the operator's key is).
    #[arg(long)]
    pub with_resolution: bool,
}

#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The bundle file (JSON).
    pub file: PathBuf,
    /// The log's verifier key (`NAME+KEYID+BASE64`, as `custody checkpoint --format json`
    /// prints it), or a file holding it. Obtain it from the operator out of band: the
    /// bundle's own claims are not trusted. `--log-key KEY` is accepted as an alias.
    #[arg(long)]
    pub verifier_key: Option<String>,
    /// Also require witness cosignatures: a JSON file `{"quorum": K, "witnesses":
    /// ["name+keyid+key", …]}`; the checkpoint must carry valid cosignatures of K of them.
    #[arg(long)]
    pub witness_policy: Option<PathBuf>,
}

pub fn export(cli: &Cli, a: &ExportArgs) -> Result<()> {
    let store = open_store(&cli.data)?;
    let unit = parse_unit(&store, &a.unit)?;
    let mut b = crate::bundle::export(&store, &unit)?;
    // With the witnesses' cosignatures, when they cosigned that checkpoint.
    b.checkpoint = crate::cosigning::with_cosignatures(&store, b.checkpoint);
    if a.with_resolution {
        b.resolution = Some(super::resolve::bundle_resolution(cli, &store, &unit)?);
    }
    let json = serde_json::to_string_pretty(&b)?;
    match &a.out {
        None => super::out(&format!("{json}\n"))?,
        Some(p) => {
            std::fs::write(p, json + "\n").with_context(|| format!("writing {}", p.display()))?;
            emit(
                cli.format,
                &serde_json::json!({"file": p.display().to_string(), "unit": unit, "entries": b.entries.len(), "chain": b.chain.len()}),
                |_| {
                    format!(
                    "wrote {}: unit {unit}, {} chain events, {} entries with inclusion proofs against a checkpoint of size {}",
                    p.display(),
                    b.chain.len(),
                    b.entries.len(),
                    b.checkpoint.lines().nth(1).unwrap_or("?")
                )
                },
            )?;
        }
    }
    Ok(())
}

fn verifier_key(flag: &str, s: &str) -> Result<VerifierKey> {
    if let Ok(k) = VerifierKey::parse(s.trim()) {
        return Ok(k);
    }
    let text = std::fs::read_to_string(s)
        .with_context(|| format!("{flag} {s:?} is neither a verifier key nor a readable file"))?;
    VerifierKey::parse(text.trim()).with_context(|| {
        format!("{flag} {s}: not a verifier key (NAME+KEYID+BASE64, as `custody checkpoint --format json` prints it)")
    })
}

/// The log's verifier key for commands that check a log from outside: `--verifier-key`,
/// or else the global `--log-key` given as the verifier key (or a file holding it), as the
/// auditor's documentation names it. `None` when neither is given.
pub fn verifier_key_arg(cli: &Cli, given: Option<&str>) -> Result<Option<String>> {
    let (flag, s) = match (given, &cli.log_key) {
        (Some(k), _) => ("--verifier-key", k.to_owned()),
        (None, Some(p)) => ("--log-key", p.display().to_string()),
        (None, None) => return Ok(None),
    };
    Ok(Some(verifier_key(flag, &s)?.to_string()))
}

/// Verifies; `Ok(false)` when the bundle fails (the failure is printed).
pub fn verify(cli: &Cli, a: &VerifyBundleArgs) -> Result<bool> {
    let given = verifier_key_arg(cli, a.verifier_key.as_deref())?.context(
        "verify-bundle needs the log's verifier key: --verifier-key KEY (or --log-key KEY)",
    )?;
    let key = VerifierKey::parse(&given).map_err(|e| anyhow::anyhow!("verifier key: {e}"))?;
    let text = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let b: Bundle = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a custody bundle", a.file.display()))?;
    let policy = match &a.witness_policy {
        None => None,
        Some(p) => {
            let f: crate::core::cosignature::PolicyFile = serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: not a witness policy", p.display()))?;
            Some(crate::core::cosignature::Policy::from_file(&f)?)
        }
    };
    let witnessed = match &policy {
        None => Ok(vec![]),
        Some(p) => crate::core::checkpoint::SignedCheckpoint::parse(b.checkpoint.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|cp| p.check(&cp).map_err(|e| e.to_string())),
    };
    let result = match witnessed {
        Err(e) => Err(format!("witness policy: {e}")),
        Ok(names) => bundle::verify(&b, &key)
            .map(|v| (v, names))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok((v, witnesses)) => {
            emit(
                cli.format,
                &serde_json::json!({"ok": true, "verified": v, "witnesses": witnesses}),
                |_| {
                    let mut s = format!(
                    "bundle verified offline: unit {} of ledger {}, {} entries, every signature, rule and inclusion proof checked against the checkpoint of size {} (root {})\nchain:",
                    v.unit, v.ledger, v.entries, v.tree_size, v.root_hash
                );
                    for c in &v.chain {
                        s.push_str(&format!(
                            "\n  #{:<8} {}  {:<9} {}",
                            c.index, c.at, c.kind, c.hash
                        ));
                    }
                    if let Some(v) = &v.verdict {
                        s.push_str(&format!("\nverdict (signed resolution report): {v}"));
                    }
                    if !witnesses.is_empty() {
                        s.push_str(&format!(
                            "\ncosigned by witnesses: {}",
                            witnesses.join(", ")
                        ));
                    }
                    s.push_str(&format!(
                        "\nholder: {}{}{}",
                        v.state.holder,
                        v.state.pending.as_ref().map_or(String::new(), |p| format!(
                            " · transfer pending to {}",
                            p.to
                        )),
                        v.state
                            .retired
                            .map_or(String::new(), |r| format!(" · retired ({})", r.as_str()))
                    ));
                    s
                },
            )?;
            Ok(true)
        }
        Err(e) => {
            emit(
                cli.format,
                &serde_json::json!({"ok": false, "failure": e.to_string()}),
                |_| format!("bundle FAILED verification: {e}"),
            )?;
            Ok(false)
        }
    }
}
