//! `custody witness` (run a C2SP tlog-witness) and `custody cosign` (ask witnesses to
//! cosign the ledger's latest checkpoint).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{emit, open_store, Cli};
use crate::core::checkpoint::VerifierKey;
use crate::keys::KeyPair;
use crate::witness::Witness;

#[derive(Args, Debug)]
pub struct WitnessArgs {
    /// The witness's key name (a schema-less URL, e.g. witness.example.org/w1).
    #[arg(long)]
    pub name: String,
    /// The witness's Ed25519 key (PKCS#8 PEM, `custody keygen`).
    #[arg(long)]
    pub witness_key: PathBuf,
    /// A log to follow: its verifier key (`NAME+KEYID+BASE64`); repeatable.
    #[arg(long = "log", required_unless_present = "print_vkey")]
    pub logs: Vec<String>,
    /// Where the latest cosigned checkpoint of each log is kept.
    #[arg(long, required_unless_present = "print_vkey")]
    pub state: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7434")]
    pub listen: String,
    /// Print the witness's verifier key (for verifiers' policies) and exit.
    #[arg(long)]
    pub print_vkey: bool,
}

#[derive(Args, Debug)]
pub struct CosignArgs {
    /// A witness's URL prefix (its `add-checkpoint` is under it); repeatable.
    #[arg(long = "witness", required = true)]
    pub witnesses: Vec<String>,
}

pub fn witness(cli: &Cli, a: &WitnessArgs) -> Result<()> {
    let key = KeyPair::load(&a.witness_key)?;
    let logs = a
        .logs
        .iter()
        .map(|l| VerifierKey::parse(l).with_context(|| format!("--log {l}")))
        .collect::<Result<Vec<_>>>()?;
    let state = a.state.clone().unwrap_or_default();
    let w = Witness::open(&a.name, key.signing, logs, &state)?;
    if a.print_vkey {
        return emit(
            cli.format,
            &serde_json::json!({"verifier_key": w.vkey()}),
            |v| v["verifier_key"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let what = format!("witness {}", w.vkey());
    super::listen_and_serve(&a.listen, &what, move |listener| {
        crate::witness::serve(listener, w, crate::server::shutdown_signal())
    })
}

/// Cosigns; `Ok(false)` (exit 3) when a witness did not cosign (its answer says why).
pub fn cosign(cli: &Cli, a: &CosignArgs) -> Result<bool> {
    let store = open_store(&cli.data)?;
    let out = crate::cosigning::cosign_latest(&store, &a.witnesses)?;
    let refused = out.answers.iter().filter(|x| !x.cosigned).count();
    emit(cli.format, &out, |o| {
        let mut s = format!("checkpoint of size {}:", o.size);
        for x in &o.answers {
            match &x.error {
                None => s.push_str(&format!("\n  cosigned by {}", x.witness)),
                Some(e) => s.push_str(&format!("\n  NOT cosigned by {}: {e}", x.witness)),
            }
        }
        s.push('\n');
        s.push_str(&o.note);
        s
    })?;
    Ok(refused == 0)
}
