//! The `custody` command line: argument types, shared options and output helpers. One file
//! per group of subcommands; `main.rs` only dispatches.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::core::ids::Handle;
use crate::core::unit::UnitId;
use crate::keys::KeyPair;
use crate::ledger::{system_clock, Ledger, Receipt};
use crate::store::{CacheFor, SledStore, Store};

pub mod bench;
pub mod bundle;
pub mod demo;
pub mod events;
pub mod log;
pub mod monitor;
pub mod party;
pub mod read;
pub mod resolve;
mod resolve_stream;
pub mod screen;
pub mod witness;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// `custody chain` only: the custody graph as Graphviz DOT.
    Dot,
    /// `custody chain` only: the custody graph as a Mermaid flowchart.
    Mermaid,
    /// `custody chain` only: the custody graph as a standalone SVG.
    Svg,
}

/// Where the ledger lives unless --data says otherwise.
pub const DEFAULT_DATA: &str = "./custody-data";

#[derive(Parser, Debug)]
#[command(
    name = "custody",
    version,
    about = "Serial-number provenance ledger: signed, hash-chained custody of serialized units"
)]
pub struct Cli {
    /// Data directory of the ledger (sled).
    #[arg(
        long,
        global = true,
        env = "CUSTODY_DATA",
        default_value = DEFAULT_DATA
    )]
    pub data: PathBuf,
    /// Signing key (PKCS#8 PEM) of the party acting.
    #[arg(long, global = true, env = "CUSTODY_KEY")]
    pub key: Option<PathBuf>,
    /// The ledger's own log key (PKCS#8 PEM), which signs checkpoints and receipts.
    /// Default: log-key.pem in the data directory (created by `custody init`).
    #[arg(long, global = true, env = "CUSTODY_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// A custody server (http://host:port): write commands sign here and submit there;
    /// `unit`, `chain`, `checkpoint` and `party show|list` read from it.
    #[arg(long, global = true, env = "CUSTODY_SERVER")]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a ledger: its name and its operator (genesis event).
    Init(party::InitArgs),
    /// Generate an ed25519 key pair as a PKCS#8 PEM file (mode 0600).
    Keygen(party::KeygenArgs),
    /// Enroll, update, re-key and list parties.
    #[command(subcommand)]
    Party(party::PartyCommand),
    /// Register units (a whole lot at once) as their manufacturer.
    Register(events::RegisterArgs),
    /// Offer units to another party (signed by the holder).
    Transfer(events::TransferArgs),
    /// Take custody of a pending transfer, with an end-use declaration.
    Accept(events::AcceptArgs),
    /// Refuse a pending transfer (recipient).
    Reject(events::EndArgs),
    /// Withdraw a pending transfer (sender).
    Cancel(events::EndArgs),
    /// Attest that units were seen at a party (servicer or manufacturer).
    Observe(events::ObserveArgs),
    /// Retire units: destroyed, decommissioned, lost or stolen.
    Retire(events::RetireArgs),
    /// Submit a pre-signed event (JSON envelope) from a file or stdin ("-").
    Submit(events::SubmitArgs),
    /// Print a unit's custody chain with every signature checked.
    Chain(read::ChainArgs),
    /// Show a unit's current state.
    Unit(read::UnitArgs),
    /// Re-verify the entire ledger from disk: events, chains, indexes, the Merkle tree
    /// and every checkpoint ever issued.
    Verify(read::VerifyArgs),
    /// Print the latest signed checkpoint (C2SP tlog-checkpoint signed note).
    Checkpoint(log::CheckpointArgs),
    /// Inclusion proof of an event (by hash or log index), or consistency proof between
    /// two tree sizes.
    Prove(log::ProveArgs),
    /// Sanctions list snapshots: import, show (the default), diff.
    Lists(screen::ListsArgs),
    /// Verdicts: does a unit's chain end at, or pass through, a restricted party?
    Resolve(resolve::ResolveArgs),
    /// Screen a name, or a ledger party with --party, against the imported lists.
    Screen(screen::ScreenArgs),
    /// Serve the ledger over HTTP (JSON API under /v1) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Run the demonstration scenario on the embedded example keys.
    Demo(demo::DemoArgs),
    /// Write a unit's evidence bundle: its chain, the events of every party involved, and
    /// inclusion proofs against the latest checkpoint.
    Export(bundle::ExportArgs),
    /// Verify an evidence bundle offline against the log's verifier key (exit 3 if it fails).
    VerifyBundle(bundle::VerifyBundleArgs),
    /// Follow a server's log (--server): verify every checkpoint and entry, alert (exit 4,
    /// evidence saved) if it shrinks or forks, report events touching watched units/parties.
    Monitor(monitor::MonitorArgs),
    /// Audit the whole ledger: the data directory's (as `verify`), or a server's with
    /// --server and --verifier-key (every entry replayed against its signed checkpoint).
    Audit(read::AuditArgs),
    /// Run a transparency-log witness (C2SP tlog-witness) for the logs given with --log.
    Witness(witness::WitnessArgs),
    /// Ask witnesses to cosign the ledger's latest checkpoint (kept beside the ledger; bundles
    /// carry the cosignatures).
    Cosign(witness::CosignArgs),
    /// Build a synthetic ledger and measure ingest, reads, proofs, resolution, audit, bundles,
    /// disk and memory against this machine's limits (BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

/// A unit as users type it: a URN, or `MANUFACTURER-HANDLE/PRODUCT/SERIAL`.
pub fn parse_unit(store: &impl Store, s: &str) -> Result<UnitId> {
    parse_unit_with(&|m| Ok(crate::client::find_party(store, m)?), s)
}

/// The same, resolving the manufacturer through a client (local or remote).
pub fn parse_unit_via(client: &crate::client::Client<'_>, s: &str) -> Result<UnitId> {
    parse_unit_with(&|m| Ok(client.party(m)?), s)
}

fn parse_unit_with(
    party: &dyn Fn(&str) -> Result<crate::core::ids::PartyId>,
    s: &str,
) -> Result<UnitId> {
    if s.starts_with("urn:") {
        return UnitId::parse(s).map_err(Into::into);
    }
    let mut parts = s.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(sn)) => {
            let maker = party(m)?;
            Ok(UnitId::custody(&maker, p, sn)?)
        }
        _ => anyhow::bail!("unit {s:?}: expected a URN (urn:custody:unit:… or urn:epc:id:sgtin:…) or MANUFACTURER/PRODUCT/SERIAL"),
    }
}

pub fn parse_handle(s: &str) -> Result<Handle> {
    Handle::parse(s).map_err(Into::into)
}

/// Where the log key lives.
#[must_use]
pub fn log_key_path(cli: &Cli) -> PathBuf {
    cli.log_key
        .clone()
        .unwrap_or_else(|| cli.data.join("log-key.pem"))
}

/// Opens the store in `dir` for reading only (no log key needed); fails clearly if there
/// is no ledger.
pub fn open_store(dir: &Path) -> Result<SledStore> {
    open_store_for(dir, CacheFor::Serving)
}

/// [`open_store`] with sled's cache sized for `what` (a whole-ledger pass: [`CacheFor::Scans`]).
pub fn open_store_for(dir: &Path, what: CacheFor) -> Result<SledStore> {
    if !dir.join("conf").exists() {
        anyhow::bail!(
            "no ledger in {}: run `custody init` first (or pass --data)",
            dir.display()
        );
    }
    SledStore::open_for(dir, what).with_context(|| format!("opening ledger in {}", dir.display()))
}

/// Opens the ledger for appending, with its log key.
pub fn open(cli: &Cli) -> Result<Ledger<SledStore>> {
    let store = open_store(&cli.data)?;
    let path = log_key_path(cli);
    let key = KeyPair::load(&path).with_context(|| {
        format!(
            "loading the log key {} (pass --log-key FILE if it is kept elsewhere)",
            path.display()
        )
    })?;
    Ledger::open(store, system_clock(), key.signing)
        .with_context(|| format!("opening ledger in {}", cli.data.display()))
}

/// The ledger write commands talk to: the server given by `--server`, or the local one.
pub fn access(cli: &Cli) -> Result<Box<dyn crate::client::Access>> {
    match &cli.server {
        Some(url) => Ok(Box::new(
            crate::remote::Remote::connect(url).with_context(|| format!("connecting to {url}"))?,
        )),
        None => Ok(Box::new(open(cli)?)),
    }
}

/// Loads the log key at `path`, or creates it there.
pub fn load_or_create_log_key(path: &Path) -> Result<KeyPair> {
    if path.exists() {
        return Ok(KeyPair::load(path)?);
    }
    let k = KeyPair::generate()?;
    k.save(path)?;
    Ok(k)
}

pub fn load_key(path: Option<&Path>) -> Result<KeyPair> {
    let p = path.context("this command signs: pass --key FILE (or set CUSTODY_KEY)")?;
    Ok(KeyPair::load(p)?)
}

/// Prints a value as JSON, or as text through `text`.
/// Writes to standard output. A reader that went away (`custody … | head`) is not an
/// error: the rest of the output is dropped.
pub fn out(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to standard output"),
    }
}

pub fn emit<T: Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    match format {
        Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(value)?))?,
        Format::Text => out(&format!("{}\n", text(value)))?,
        Format::Dot | Format::Mermaid | Format::Svg => {
            anyhow::bail!("--format dot|mermaid|svg is for `custody chain` (a custody graph); use text or json here")
        }
    }
    Ok(())
}

#[derive(Serialize)]
pub struct Accepted<'a> {
    pub kind: &'a str,
    pub receipt: Receipt,
}

/// Prints the receipt of an accepted event.
pub fn emit_receipt(format: Format, kind: &str, r: Receipt) -> Result<()> {
    emit(format, &Accepted { kind, receipt: r }, |a| {
        let dup = if a.receipt.duplicate {
            " (already in the log: same receipt)"
        } else {
            ""
        };
        format!(
            "{} accepted at log index {}{dup}\n  event hash {}\n  integrated {}",
            a.kind, a.receipt.index, a.receipt.hash, a.receipt.integrated_at
        )
    })
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7433")]
    pub listen: String,
    /// Issue checkpoints at most this often (seconds; 0 = with every commit group). Receipts
    /// in between carry a `checkpoint_by` promise.
    #[arg(long, default_value_t = 1)]
    pub checkpoint_interval: u64,
    /// A witness (C2SP tlog-witness URL prefix) to ask to cosign each new checkpoint;
    /// repeatable. `GET /v1/checkpoint` and bundles then carry the cosignatures.
    #[arg(long = "witness")]
    pub witnesses: Vec<String>,
    /// Seconds between cosigning rounds (only when the log grew).
    #[arg(long, default_value_t = 10)]
    pub cosign_interval: u64,
    /// Serve the data directory read-only, without the log key: a mirror kept by `custody
    /// monitor --mirror`. Writes get 405 `read_only`; reports go unsigned.
    #[arg(long, conflicts_with = "witnesses")]
    pub read_only: bool,
}

/// `custody serve`.
pub fn serve(cli: &Cli, a: &ServeArgs) -> Result<()> {
    let store = open_store(&cli.data)?;
    if a.read_only {
        let ledger = Ledger::open_read_only(store)
            .with_context(|| format!("opening the mirror in {}", cli.data.display()))?;
        let what = format!("a read-only mirror of ledger {}", ledger.name());
        return listen_and_serve(&a.listen, &what, move |listener| {
            crate::server::serve(
                listener,
                ledger,
                system_clock(),
                crate::server::shutdown_signal(),
            )
        });
    }
    let path = log_key_path(cli);
    let key = KeyPair::load(&path).with_context(|| {
        format!(
            "loading the log key {} (pass --log-key FILE)",
            path.display()
        )
    })?;
    let ledger = Ledger::open_with(
        store,
        system_clock(),
        key.signing,
        crate::ledger::LogPolicy {
            checkpoint_interval: std::time::Duration::from_secs(a.checkpoint_interval),
        },
    )
    .with_context(|| format!("opening ledger in {}", cli.data.display()))?;
    let what = format!("ledger {}", ledger.name());
    listen_and_serve(&a.listen, &what, move |listener| {
        crate::server::serve_with(
            listener,
            ledger,
            system_clock(),
            crate::server::shutdown_signal(),
            crate::server::Witnessing {
                witnesses: a.witnesses.clone(),
                every: std::time::Duration::from_secs(a.cosign_interval),
            },
        )
    })
}

/// Binds `listen` on a new multi-threaded runtime, says what serves where, and runs `serve`
/// on the listener until it returns (on SIGINT or SIGTERM).
pub fn listen_and_serve<F, Fut>(listen: &str, what: &str, serve: F) -> Result<()>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let at = listener
            .local_addr()
            .map_or_else(|_| listen.to_owned(), |x| x.to_string());
        eprintln!("custody serving {what} on http://{at}");
        serve(listener).await.context("serving")
    })
}

/// Arguments shared by commands that name units.
#[derive(Args, Debug, Clone)]
pub struct UnitsArg {
    /// Unit (URN or MANUFACTURER/PRODUCT/SERIAL); repeat for several.
    #[arg(long = "unit", required = true)]
    pub units: Vec<String>,
}
