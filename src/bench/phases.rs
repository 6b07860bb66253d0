//! The phases of `custody bench`, in order: ceilings, build (library ingest), HTTP ingest,
//! reads and proofs, resolution, screening, audit, bundles, disk and memory.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use super::{
    ceilings, disk_usage, peak_rss_mb, step, world, BenchError, Config, Latency, Pick, Report,
};
use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{EventHash, LedgerName, LogIndex};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::core::verify::{SignedEvent, VerifiedEvent};
use crate::ledger::{system_clock, Ledger};
use crate::resolve::Verdict;
use crate::screen::lists::ListStore as _;
use crate::store::{SledStore, Store};

const ENTITY_LIST: &[u8] = include_bytes!("../cli/demo/entity-list-2019-10-09.csv");

fn append(ledger: &Ledger<SledStore>, evs: Vec<VerifiedEvent>) -> Result<(), BenchError> {
    for chunk in evs.chunks(4096) {
        for r in ledger.append_all(chunk.to_vec()) {
            r.map_err(|e| step("append")(e.to_string()))?;
        }
    }
    Ok(())
}

/// Decodes and verifies `bytes` on all cores and appends them in order, as a library user
/// with more than one thread would: the next batch of 4,096 is verified while the writer
/// commits the current one (as the server's request threads do). Returns the events
/// appended.
fn ingest(
    ledger: &Ledger<SledStore>,
    name: &LedgerName,
    bytes: &[Vec<u8>],
) -> Result<u64, BenchError> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<VerifiedEvent>, String>>(1);
        s.spawn(move || {
            for batch in bytes.chunks(4096) {
                let evs = batch
                    .par_iter()
                    .map(|b| {
                        SignedEvent::decode(b)
                            .map_err(|e| e.to_string())
                            .and_then(|e| e.verify(name).map_err(|e| e.to_string()))
                    })
                    .collect();
                if tx.send(evs).is_err() {
                    return;
                }
            }
        });
        let mut n = 0;
        for evs in rx {
            let evs = evs.map_err(step("decode"))?;
            n += evs.len() as u64;
            append(ledger, evs)?;
        }
        Ok(n)
    })
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// Runs every phase in `dir` (created; the ledger is built in `dir/ledger`).
pub fn run(cfg: Config, dir: &Path, progress: &dyn Fn(&str)) -> Result<Report, BenchError> {
    // Each phase's start and own peak; the whole run's peak is the largest of them.
    let rss = std::cell::RefCell::new(Vec::<(String, f64, f64)>::new());
    let (whole_peak, reset) = (std::cell::Cell::new(0.0f64), std::cell::Cell::new(true));
    let progress = |stage: &str| {
        let peak = peak_rss_mb();
        whole_peak.set(whole_peak.get().max(peak));
        let mut phases = rss.borrow_mut();
        if let Some(last) = phases.last_mut() {
            last.2 = peak;
        }
        reset.set(reset.get() && super::reset_peak_rss());
        let now = super::rss_mb();
        phases.push((stage.to_owned(), now, now));
        drop(phases);
        progress(stage);
    };
    std::fs::create_dir_all(dir)?;
    progress("measuring this machine's ceilings");
    let ceil = ceilings::measure(dir)?;
    let data = dir.join("ledger");
    let name =
        LedgerName::parse("bench.example/ledger").map_err(|e| step("name")(e.to_string()))?;
    let log = world::key("bench log key");
    let store = SledStore::open(&data)?;
    Ledger::init(&store, &name, &log.public)?;
    let at = Timestamp::clamped(system_clock()().unix() - 3600);
    let ledger = Ledger::open(store, system_clock(), log.signing.clone())
        .map_err(|e| step("open")(e.to_string()))?;
    let lists = crate::screen::lists::SledLists::open(ledger.store().db())
        .map_err(|e| step("lists")(e.to_string()))?;
    crate::screen::lists::import_into(
        &lists,
        crate::screen::entry::SourceKind::Csl,
        Some("entity-list"),
        &[crate::screen::import::Input {
            name: "entity-list-2019-10-09.csv".into(),
            bytes: ENTITY_LIST.to_vec(),
        }],
        "bench",
    )
    .map_err(|e| step("list import")(e.to_string()))?;
    let listed: Vec<String> = lists
        .latest("entity-list")
        .map_err(|e| step("lists")(e.to_string()))?
        .map(|s| s.entries.iter().map(|e| e.name.clone()).collect())
        .unwrap_or_default();
    // The list store holds the sled database open; the ledger must be the last holder.
    drop(lists);

    progress("building the ledger (parties, registrations, shipments to distributors)");
    let n_parties = usize::try_from(cfg.parties.max(4)).unwrap_or(usize::MAX);
    let (p, groups) = world::parties(&name, n_parties, &listed, at);
    for g in groups {
        append(&ledger, g)?;
    }
    let per_unit = 2.021;
    let n_units =
        ((cfg.events.saturating_sub(cfg.parties) as f64 / per_unit) as usize / 100 * 100).max(1000);
    // Registered and shipped to distributors a slice at a time (lots, then their transfers,
    // then the accepts), so that the generator holds one slice of events, not the ledger's.
    let units = world::Units::new(&p);
    let mut heads: Vec<EventHash> = Vec::with_capacity(n_units / world::GROUP + 1);
    const SLICE: usize = 100_000;
    // Each slice starts a lot and a group (their registrations and heads are indexed from it).
    const _: () = assert!(SLICE % world::LOT == 0 && SLICE % world::GROUP == 0);
    for start in (0..n_units).step_by(SLICE) {
        let ids = units.ids(start..(start + SLICE).min(n_units));
        let regs = world::registrations(&name, &p, &ids, at);
        let registered: Vec<EventHash> = regs.iter().map(VerifiedEvent::hash).collect();
        append(&ledger, regs)?;
        let (ts, accs, hs) =
            world::to_distributors(&name, &p, start / world::GROUP, &ids, &registered, at);
        append(&ledger, ts)?;
        append(&ledger, accs)?;
        heads.extend(hs);
    }

    // The bulk: single-unit shipments to end users, timed through the library as a server
    // receives them (canonical bytes decoded and verified on all cores, then appended).
    let held = (n_units / 20).clamp(200, 20_000).min(n_units / 2);
    // Unit `i`, its head and the distributor holding it.
    let bulk = |r: std::ops::Range<usize>| -> Vec<(UnitId, EventHash, usize)> {
        units
            .ids(r.clone())
            .into_iter()
            .zip(r)
            .map(|(u, i)| {
                let g = i / world::GROUP;
                (u, heads[g], p.distributor_of(g))
            })
            .collect()
    };
    let lib_units = n_units - held;
    let mut lib_secs = 0.0;
    let mut lib_events = 0u64;
    for start in (0..lib_units).step_by(20_000) {
        progress(&format!(
            "library ingest: {start} of {lib_units} units shipped to end users"
        ));
        let chunk = bulk(start..(start + 20_000).min(lib_units));
        let pairs = world::to_end_users(&name, &p, &chunk, at);
        let bytes: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(t, _)| t)
            .chain(pairs.iter().map(|(_, a)| a))
            .map(|e| e.canonical_bytes().to_vec())
            .collect();
        drop(pairs);
        let t = Instant::now();
        lib_events += ingest(&ledger, &name, &bytes)?;
        lib_secs += t.elapsed().as_secs_f64();
    }
    let library = lib_events as f64 / lib_secs.max(1e-9);
    drop(ledger);

    progress("HTTP ingest on loopback (batches, then single events)");
    let pairs = world::to_end_users(&name, &p, &bulk(lib_units..n_units), at);
    // The generator keeps one head per group of units (to pick units at random it makes
    // their ids again from an index).
    drop(heads);
    let json = |e: &VerifiedEvent| String::from_utf8_lossy(e.canonical_bytes()).into_owned();
    let split = pairs.len() * 4 / 5;
    let (batch_pairs, single_pairs) = pairs.split_at(split);
    let (http_batch, http_single, single_lat) =
        http(&data, &log, batch_pairs, single_pairs, &json)?;
    drop(pairs);

    progress("reads, proofs and one-unit resolutions");
    let store = SledStore::open(&data)?;
    let size = store.len()?;
    let mut pick = Pick(7);
    // As a long-running server reads: one shared cache of verified events (each hit still
    // reads the entry and compares its bytes); and with nothing cached. Interleaved, each
    // read of a different random unit, so that neither warms sled's cache for the other.
    let verified = std::sync::Arc::new(crate::verified::VerifiedCache::default());
    let (mut chain, mut chain_uncached) = (Vec::new(), Vec::new());
    for k in 0..2000 {
        let u = units.id(pick.below(n_units as u64) as usize);
        let t = Instant::now();
        if k % 2 == 0 {
            crate::chain::read_cached(&store, &name, &u, &verified)
                .map_err(|e| step("chain read")(e.to_string()))?;
            chain.push(us(t));
        } else {
            crate::chain::read(&store, &name, &u).map_err(|e| step("chain read")(e.to_string()))?;
            chain_uncached.push(us(t));
        }
    }
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for _ in 0..2000 {
        let i = pick.below(size);
        let t = Instant::now();
        crate::log::prove_inclusion(&store, LogIndex::new(i), size)
            .map_err(|e| step("inclusion")(e.to_string()))?;
        inclusion.push(us(t));
        let old = 1 + pick.below(size - 1);
        let t = Instant::now();
        crate::log::prove_consistency(&store, old, size)
            .map_err(|e| step("consistency")(e.to_string()))?;
        consistency.push(us(t));
    }
    let lists = crate::screen::lists::SledLists::open(store.db())
        .map_err(|e| step("lists")(e.to_string()))?;
    let (ix, _) =
        crate::screen::lists::index_latest(&lists).map_err(|e| step("index")(e.to_string()))?;
    let o = crate::resolve::Options {
        thresholds: crate::screen::matcher::Thresholds::default(),
        stale_pending_days: 30,
        now: system_clock()(),
        dwell: crate::resolve::DwellRule::default(),
        signatures: crate::resolve::Signatures::Anchored,
    };
    let t = Instant::now();
    let peers = crate::resolve::baseline(&store, o.dwell)?;
    let dwell_baseline_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut one = Vec::new();
    for _ in 0..300 {
        let u = units.id(pick.below(n_units as u64) as usize);
        let t = Instant::now();
        crate::resolve::resolve(&store, &name, &ix, &u, &o, &peers, &verified)?;
        one.push(us(t));
    }

    // The whole-ledger passes open the store as `custody resolve --all` and `custody
    // verify` do, sled's cache sized for scans.
    drop(lists);
    drop(store);
    let store = SledStore::open_for(&data, crate::store::CacheFor::Scans)?;

    // As `custody resolve --all --flagged --format json` does: each flagged resolution
    // written out as it is judged (here to a sink), none kept. Anchored to the latest
    // checkpoint (the default), then checking every signature (`--verify-signatures`).
    let resolve_all = |signatures| -> Result<(f64, crate::resolve::Summary), BenchError> {
        let o = crate::resolve::Options { signatures, ..o };
        let t = Instant::now();
        let mut sink = std::io::sink();
        let sum = crate::resolve::resolve_all(&store, &name, &ix, &o, &|_, _, _| {}, |r| {
            if r.verdict != Verdict::Clear {
                serde_json::to_writer(&mut sink, r)
                    .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
            }
            Ok(false)
        })?;
        Ok((t.elapsed().as_secs_f64(), sum))
    };
    progress("resolving every unit");
    let (resolve_all_s, anchored) = resolve_all(crate::resolve::Signatures::Anchored)?;
    progress("resolving every unit, every signature checked");
    let (resolve_all_verify_s, every) = resolve_all(crate::resolve::Signatures::Every)?;
    if anchored.counts != every.counts || anchored.units != every.units {
        return Err(step("resolve --all")(format!(
            "anchored and signature-checked resolutions differ: {:?} against {:?}",
            anchored.counts, every.counts
        )));
    }

    progress("screening every party");
    let ids: Vec<_> = store.parties()?.into_iter().map(|r| r.id).collect();
    let t = Instant::now();
    let mut screened = 0u64;
    while t.elapsed().as_secs_f64() < 1.0 {
        let mut s = crate::screen::hierarchy::Screener::new(&ix, &store, o.thresholds, None);
        for id in &ids {
            s.party(id)?;
            screened += 1;
        }
    }
    let screening = screened as f64 / t.elapsed().as_secs_f64();

    progress("auditing the whole ledger");
    let t = Instant::now();
    let audit = crate::audit::verify_ledger(&store, |_, _| {})?;
    let audit_rate = size as f64 / t.elapsed().as_secs_f64();
    if !audit.ok {
        return Err(step("audit")(format!("{:?}", audit.failure)));
    }

    progress("bundles");
    let vkey = VerifierKey {
        name: name.clone(),
        key: log.public,
    };
    let (mut ex, mut ve) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let u = units.id(pick.below(n_units as u64) as usize);
        let t = Instant::now();
        let b =
            crate::bundle::export(&store, &u).map_err(|e| step("bundle export")(e.to_string()))?;
        ex.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        crate::core::bundle::verify(&b, &vkey).map_err(|e| step("bundle verify")(e.to_string()))?;
        ve.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(store);
    progress("done");
    let disk = disk_usage(&data);
    Ok(Report {
        events: size,
        units: n_units as u64,
        parties: ids.len() as u64,
        ceilings: ceil,
        library_ingest_per_s: library,
        library_ingest_ratio: library / ceil.verify_strict_all_cores,
        library_ingest_storage_ratio: library / ceil.sled_events_per_s,
        http_batch_ingest_per_s: http_batch,
        http_batch_ratio: http_batch / ceil.verify_strict_all_cores,
        http_batch_storage_ratio: http_batch / ceil.sled_events_per_s,
        http_single_ingest_per_s: http_single,
        http_single_latency: single_lat,
        chain_read: Latency::of(chain),
        chain_read_uncached: Latency::of(chain_uncached),
        inclusion_proof: Latency::of(inclusion),
        consistency_proof: Latency::of(consistency),
        resolve_one: Latency::of(one),
        resolve_all_s,
        resolve_all_verify_s,
        resolve_all_signatures_checked: anchored.admission.signatures_checked,
        dwell_baseline_ms,
        screening_names_per_s: screening,
        audit_events_per_s: audit_rate,
        audit_ratio: audit_rate / ceil.verify_strict_all_cores,
        bundle_export_ms: Latency::of(ex).p50_us,
        bundle_verify_ms: Latency::of(ve).p50_us,
        disk_bytes: disk,
        disk_bytes_per_event: disk as f64 / size.max(1) as f64,
        peak_rss_mb: whole_peak.get().max(peak_rss_mb()),
        rss_by_phase: rss.into_inner(),
        phase_peaks_reset: reset.get(),
    })
}

/// Four client threads, each with its own HTTP agent, sharing `items` in order.
fn clients<T: Sync>(
    items: &[T],
    each: impl Fn(&ureq::Agent, &T) -> Result<(), BenchError> + Sync,
) -> Result<(), BenchError> {
    std::thread::scope(|s| {
        let each = &each;
        let hs: Vec<_> = items
            .chunks(items.len().div_ceil(4).max(1))
            .map(|part| {
                s.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    part.iter().try_for_each(|x| each(&agent, x))
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| step("HTTP client")("panicked".into()))?
        })
    })
}

/// `custody serve`'s router in this process on a loopback port: batches of 500 events from
/// 4 clients, then single events from 4 clients; events/s for both and the latency of one
/// request.
fn http(
    data: &Path,
    log: &crate::keys::KeyPair,
    batch_pairs: &[(VerifiedEvent, VerifiedEvent)],
    single_pairs: &[(VerifiedEvent, VerifiedEvent)],
    json: &(dyn Fn(&VerifiedEvent) -> String + Sync),
) -> Result<(f64, f64, Latency), BenchError> {
    let store = SledStore::open(data)?;
    let ledger = Ledger::open(store, system_clock(), log.signing.clone())
        .map_err(|e| step("open")(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(crate::server::serve(
        listener,
        ledger,
        system_clock(),
        async {
            let _ = stopped.await;
        },
    ));
    let post = |agent: &ureq::Agent, path: &str, body: &str| -> Result<(), BenchError> {
        match agent
            .post(&format!("{url}{path}"))
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(step("HTTP ingest")(e.to_string())),
        }
    };
    let bodies: Vec<String> = batch_pairs
        .chunks(250)
        .map(|c| {
            let ts = c.iter().map(|(t, _)| json(t));
            let as_ = c.iter().map(|(_, a)| json(a));
            format!("[{}]", ts.chain(as_).collect::<Vec<_>>().join(","))
        })
        .collect();
    let t = Instant::now();
    clients(&bodies, |agent, b| post(agent, "/v1/events:batch", b))?;
    let batch = (batch_pairs.len() * 2) as f64 / t.elapsed().as_secs_f64();
    let lat = std::sync::Mutex::new(Vec::new());
    let t = Instant::now();
    clients(single_pairs, |agent, (tr, ac)| {
        for e in [tr, ac] {
            let t = Instant::now();
            post(agent, "/v1/events", &json(e))?;
            lat.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(us(t));
        }
        Ok(())
    })?;
    let single = (single_pairs.len() * 2) as f64 / t.elapsed().as_secs_f64();
    let _ = stop.send(());
    rt.block_on(server)
        .map_err(|e| step("server")(e.to_string()))??;
    Ok((
        batch,
        single,
        Latency::of(
            lat.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ),
    ))
}
