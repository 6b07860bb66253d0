//! The `custody` binary: parses arguments and dispatches; all logic lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use custody::cli::{self, Cli, Command, Format};

/// mimalloc instead of glibc's malloc: sled and serde allocate per key and per field, and
/// under glibc a quarter of the writer thread's time went to `malloc`/`free`
/// (BENCHMARKS.md, fifth round).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Init(a) => cli::party::init(&cli, a),
        Command::Keygen(a) => cli::party::keygen(&cli, a),
        Command::Party(c) => cli::party::run(&cli, c),
        Command::Register(a) => cli::events::register(&cli, a),
        Command::Transfer(a) => cli::events::transfer(&cli, a),
        Command::Accept(a) => cli::events::accept(&cli, a),
        Command::Reject(a) => cli::events::end(&cli, a, true),
        Command::Cancel(a) => cli::events::end(&cli, a, false),
        Command::Observe(a) => cli::events::observe(&cli, a),
        Command::Retire(a) => cli::events::retire(&cli, a),
        Command::Submit(a) => cli::events::submit(&cli, a),
        Command::Chain(a) => cli::read::chain(&cli, a),
        Command::Unit(a) => cli::read::unit(&cli, a),
        Command::Verify(a) => match cli::read::verify(&cli, a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
        Command::Checkpoint(a) => cli::log::checkpoint(&cli, a),
        Command::Prove(a) => cli::log::prove(&cli, a),
        Command::Lists(a) => cli::screen::run(
            &cli,
            a.cmd.as_ref().unwrap_or(&cli::screen::ListsCommand::Show),
        ),
        Command::Resolve(a) => cli::resolve::run(&cli, a),
        Command::Screen(a) => cli::screen::screen(&cli, a),
        Command::Serve(a) => cli::serve(&cli, a),
        Command::Demo(a) => cli::demo::run(&cli, a),
        Command::Export(a) => cli::bundle::export(&cli, a),
        Command::Audit(a) => match cli::read::audit(&cli, a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
        Command::Witness(a) => cli::witness::witness(&cli, a),
        Command::Bench(a) => cli::bench::run(&cli, a),
        Command::Cosign(a) => match cli::witness::cosign(&cli, a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
        Command::Monitor(a) => match cli::monitor::run(&cli, a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(4),
            Err(e) => Err(e),
        },
        Command::VerifyBundle(a) => match cli::bundle::verify(&cli, a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(3),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match cli.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": format!("{e:#}") })
                ),
                Format::Text | Format::Dot | Format::Mermaid | Format::Svg => {
                    eprintln!("error: {e:#}");
                }
            }
            ExitCode::FAILURE
        }
    }
}
