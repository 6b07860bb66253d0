//! The resolver on chains built for each verdict and red flag: the verdict and the evidence.

mod common;

use common::*;
use custody::core::event::EndUse;
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Timestamp};
use custody::keys::KeyPair;
use custody::resolve::change::changed;
use custody::resolve::{
    baseline, resolve, resolve_all, resolve_all_within, Admission, DwellRule, Options, Peers,
    Resolution, Signatures, Verdict,
};
use custody::screen::entry::SourceKind;
use custody::screen::import::{self, Input};
use custody::screen::matcher::{Index, Thresholds};
use custody::store::{MemoryStore, SledStore, Store};

/// A deny list naming the fixture's end user, listed on `date` (empty: no listing date, as
/// in OFAC's files).
fn index(date: &str) -> Index {
    let listed = if date.is_empty() {
        String::new()
    } else {
        format!(r#", "listed_on": "{date}""#)
    };
    named("User Bureau", &listed)
}

/// A deny list with one entry named `name`.
fn named(name: &str, listed: &str) -> Index {
    let json = format!(r#"[{{"id": "D1", "name": "{name}", "country": "CN"{listed}}}]"#);
    let got = import::import(
        SourceKind::Denylist,
        &[Input {
            name: "deny.json".into(),
            bytes: json.into_bytes(),
        }],
        &[],
    )
    .expect("import");
    Index::build([("deny", got.entries.as_slice())])
}

fn opts(now: Timestamp) -> Options {
    Options {
        thresholds: Thresholds::default(),
        stale_pending_days: 30,
        now,
        dwell: DwellRule::default(),
        signatures: Signatures::Anchored,
    }
}

fn eu(country: &str) -> EndUse {
    EndUse {
        end_user: text("Lab"),
        end_user_party: None,
        end_use: text("research"),
        destination_country: CountryCode::parse(country).expect("cc"),
        no_restricted_retransfer: true,
    }
}

fn run(w: &World<MemoryStore>, ix: &Index, u: &UnitId) -> Resolution {
    run_at(w, ix, u, w.now())
}

fn run_at(w: &World<MemoryStore>, ix: &Index, u: &UnitId, now: Timestamp) -> Resolution {
    let store = w.ledger.store();
    let peers = baseline(store, DwellRule::default()).expect("baseline");
    resolve(
        store,
        &ledger_name(),
        ix,
        u,
        &opts(now),
        &peers,
        &Default::default(),
    )
    .expect("resolve")
}

fn rules(r: &Resolution) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.rule).collect()
}

/// `from` transfers `u` to `to`, who accepts it with an end-use declaration.
fn hand_on<S: Store>(w: &World<S>, from: &KeyPair, to: &KeyPair, u: &UnitId) {
    let c = w.client();
    let t = c
        .transfer(
            from,
            &to.party_id(),
            std::slice::from_ref(u),
            text("S"),
            cn(),
        )
        .expect("transfer");
    c.accept(to, &t.hash, &[], Some(eu("CN"))).expect("accept");
}

/// maker → dist (accepted with end use) → sub (accepted) … as far as `hops`.
fn moved<S: Store>(w: &World<S>, hops: usize) -> UnitId {
    let u = w.register(1);
    let path = [(&w.maker, &w.dist), (&w.dist, &w.sub), (&w.sub, &w.user)];
    for (from, to) in path.iter().take(hops) {
        hand_on(w, from, to, &u[0]);
    }
    u[0].clone()
}

#[test]
fn clear_when_nobody_is_restricted() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 2);
    let r = run(&w, &index("2023-01-01"), &u);
    assert_eq!(r.verdict, Verdict::Clear, "{:#?}", r.findings);
    // With a list that names nobody involved, the same.
    assert!(r.findings.is_empty());
}

#[test]
fn sanctioned_end_names_the_holder_and_the_listing() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 3);
    let r = run(&w, &index("2023-01-01"), &u);
    assert_eq!(r.verdict, Verdict::SanctionedEnd);
    let f = &r.findings[0];
    assert_eq!(
        (f.rule, f.party.clone()),
        ("restricted_holder", Some(w.user.party_id()))
    );
    assert!(!f.screening.is_empty(), "the evidence names the list entry");
}

#[test]
fn sanctioned_pending_and_a_stale_transfer() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 2);
    w.client()
        .transfer(
            &w.sub,
            &w.user.party_id(),
            std::slice::from_ref(&u),
            text("S"),
            cn(),
        )
        .expect("transfer");
    let ix = index("2023-01-01");
    let r = run(&w, &ix, &u);
    assert_eq!(r.verdict, Verdict::SanctionedPending);
    assert!(rules(&r).contains(&"restricted_recipient"));
    let later = run_at(&w, &ix, &u, w.now().saturating_add(40 * 86_400));
    assert!(
        rules(&later).contains(&"stale_pending"),
        "{:?}",
        rules(&later)
    );
}

#[test]
fn sanctioned_history_says_whether_the_listing_came_before_or_after() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 3);
    w.tick(60);
    hand_on(&w, &w.user, &w.sub, &u);
    // Listed before the user took custody (T0 is 2023-11-14): a violation at the time.
    let before = run(&w, &index("2023-01-01"), &u);
    assert_eq!(before.verdict, Verdict::SanctionedHistory);
    let f = before
        .findings
        .iter()
        .find(|f| f.rule == "restricted_past_holder")
        .expect("history");
    assert_eq!(f.restricted_at_the_time, Some(true));
    // Listed only afterwards.
    let after = run(&w, &index("2024-06-01"), &u);
    let f = after
        .findings
        .iter()
        .find(|f| f.rule == "restricted_past_holder")
        .expect("history");
    assert_eq!(f.restricted_at_the_time, Some(false));
    // A list without listing dates cannot say: the finding says so instead of guessing.
    let unknown = run(&w, &index(""), &u);
    assert_eq!(unknown.verdict, Verdict::SanctionedHistory);
    let f = unknown
        .findings
        .iter()
        .find(|f| f.rule == "restricted_past_holder")
        .expect("history");
    assert_eq!(f.restricted_at_the_time, None);
    assert!(f.detail.contains("no listing date"), "{}", f.detail);
}

#[test]
fn diverted_when_observed_away_from_the_holder() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 1);
    w.client()
        .observe(
            &w.svc,
            &w.sub.party_id(),
            std::slice::from_ref(&u),
            None,
            None,
        )
        .expect("observe");
    let r = run(&w, &index("2023-01-01"), &u);
    assert_eq!(r.verdict, Verdict::Diverted);
    assert_eq!(r.findings[0].party, Some(w.sub.party_id()));
}

#[test]
fn red_flags_for_review() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let u = w.register(1);
    // Accepted without an end-use declaration, to a destination other than the recipient's country.
    let t = c
        .transfer(
            &w.maker,
            &w.dist.party_id(),
            &u,
            text("S"),
            CountryCode::parse("DE").expect("cc"),
        )
        .expect("transfer");
    c.accept(&w.dist, &t.hash, &[], None).expect("accept");
    let r = run(&w, &index("2023-01-01"), &u[0]);
    assert_eq!(r.verdict, Verdict::Review);
    let got = rules(&r);
    assert!(
        got.contains(&"no_end_use") && got.contains(&"destination_mismatch"),
        "{got:?}"
    );
    // A distributor outside the manufacturer's sponsorship tree (the servicer was enrolled by
    // the operator) receiving units is flagged too.
    let u2 = w.register(1);
    c.transfer(
        &w.maker,
        &w.svc.party_id(),
        &u2,
        text("S"),
        CountryCode::parse("US").expect("cc"),
    )
    .expect("transfer");
    let r = run(&w, &index("2023-01-01"), &u2[0]);
    assert!(
        rules(&r).contains(&"unauthorized_distributor"),
        "{:?}",
        rules(&r)
    );
}

#[test]
fn the_store_is_only_read() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 3);
    let before = w.ledger.store().len().expect("len");
    let _ = run(&w, &index("2023-01-01"), &u);
    assert_eq!(w.ledger.store().len().expect("len"), before);
}

#[test]
fn a_holder_sitting_far_longer_than_its_peers_is_flagged() {
    let w = World::new(MemoryStore::new());
    // Five units pass through the distributor within a day: the peers' baseline.
    for _ in 0..5 {
        moved(&w, 2);
    }
    let ix = index("2023-01-01");
    let quick = moved(&w, 1);
    let slow = moved(&w, 1);
    w.tick(100 * 86_400);
    // Both now sit at the distributor for 100 days: flagged, with the baseline in the detail.
    let r = run(&w, &ix, &slow);
    assert_eq!(r.verdict, Verdict::Review, "{:#?}", r.findings);
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "long_dwell")
        .expect("long_dwell");
    assert_eq!(f.party, Some(w.dist.party_id()));
    assert!(f.detail.contains("median is 0 days over 5"), "{}", f.detail);
    // Handed on after 100 days: the completed stay is flagged too, and the 10-day stay of
    // a unit the distributor passed on quickly is not.
    hand_on(&w, &w.dist, &w.sub, &slow);
    assert!(rules(&run(&w, &ix, &slow)).contains(&"long_dwell"));
    let r = run_at(&w, &ix, &quick, w.now());
    assert!(
        rules(&r).contains(&"long_dwell"),
        "the quick unit now sits 100 days too"
    );
    // The end user holding a unit for ever is not a dwell: it is where units end.
    let end = moved(&w, 3);
    w.tick(400 * 86_400);
    let r = run(&w, &ix, &end);
    assert!(!rules(&r).contains(&"long_dwell"), "{:?}", rules(&r));
}

#[test]
fn too_few_peers_means_no_dwell_flag() {
    let w = World::new(MemoryStore::new());
    moved(&w, 2);
    let u = moved(&w, 1);
    w.tick(1000 * 86_400);
    let r = run(&w, &index("2023-01-01"), &u);
    assert!(!rules(&r).contains(&"long_dwell"), "{:?}", rules(&r));
}

/// A ledger with units in several verdicts.
fn mixed<S: Store>(w: &World<S>) -> Vec<UnitId> {
    let mut units = vec![moved(w, 1), moved(w, 2), moved(w, 3)];
    let u = moved(w, 1);
    w.client()
        .observe(
            &w.svc,
            &w.sub.party_id(),
            std::slice::from_ref(&u),
            None,
            None,
        )
        .expect("observe");
    units.push(u);
    units.extend(w.register(3));
    units
}

/// The dwell baseline of the whole ledger as a verified replay derives it (what
/// `resolve --all` judges against).
fn replayed_baseline<S: Store>(w: &World<S>) -> Peers {
    resolve_all(
        w.ledger.store(),
        &ledger_name(),
        &index("2023-01-01"),
        &opts(w.now()),
        &|_, _, _| {},
        |_| Ok(false),
    )
    .expect("resolve_all")
    .peers
    .expect("a baseline")
}

/// One-unit resolutions read the dwell baseline from the store's completed-stay counters;
/// it equals what a verified replay of the whole log derives, on sled (counters added to
/// across commits and reopening): stays of several lengths, with the manufacturer's and the
/// end user's left out, and a party that becomes an end user later left out from then on.
#[test]
fn the_dwell_baseline_from_stay_counters_equals_a_full_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::new(SledStore::open(dir.path()).expect("open"));
    for k in 0..9 {
        let u = moved(&w, 1);
        w.tick(k * 5 * 86_400);
        hand_on(&w, &w.dist, &w.sub, &u);
        w.tick((k % 3) * 86_400 + 3_600);
        hand_on(&w, &w.sub, &w.user, &u);
        // The end user hands it back: a stay the baseline leaves out.
        w.tick(200 * 86_400);
        hand_on(&w, &w.user, &w.dist, &u);
    }
    let from_counters = baseline(w.ledger.store(), DwellRule::default()).expect("baseline");
    assert_eq!(from_counters, replayed_baseline(&w));
    assert_eq!(from_counters.stays, 18, "{from_counters:?}");
    assert_eq!(from_counters.median_days, 2, "{from_counters:?}");
    let stays = w.ledger.store().stays().expect("stays");
    assert!(
        stays.iter().any(|(p, _, _)| *p == w.user.party_id()),
        "the end user's stays are counted, and left out when read: {stays:?}"
    );
    assert!(!stays.iter().any(|(p, _, _)| *p == w.maker.party_id()));
    // The sub-distributor becomes an end user: its stays leave both baselines.
    w.client()
        .update(
            &w.sub,
            h("sub"),
            profile("Sub Ltd", "CN", &[custody::core::event::Role::EndUser]),
            None,
        )
        .expect("update");
    let from_counters = baseline(w.ledger.store(), DwellRule::default()).expect("baseline");
    assert_eq!(from_counters, replayed_baseline(&w));
    assert_eq!(from_counters.stays, 9);
    assert_eq!(from_counters.median_days, 20, "{from_counters:?}");
    drop(w);
    let reopened = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(
        baseline(&reopened, DwellRule::default()).expect("baseline"),
        from_counters
    );
}

#[test]
fn resolving_all_in_one_pass_agrees_with_one_by_one() {
    let w = World::new(MemoryStore::new());
    let units = mixed(&w);
    let ix = index("2023-01-01");
    let store = w.ledger.store();
    let sum = resolve_all(
        store,
        &ledger_name(),
        &ix,
        &opts(w.now()),
        &|_, _, _| {},
        |_| Ok(true),
    )
    .expect("resolve_all");
    assert_eq!(sum.units, units.len() as u64);
    let mut verdicts = std::collections::BTreeSet::new();
    for r in &sum.resolutions {
        let one = run(&w, &ix, &r.unit);
        assert_eq!(
            serde_json::to_value(r).expect("json"),
            serde_json::to_value(&one).expect("json"),
            "unit {}",
            r.unit
        );
        verdicts.insert(r.verdict);
    }
    assert!(
        verdicts.len() >= 3,
        "the fixture covers several verdicts: {verdicts:?}"
    );
    assert_eq!(sum.counts.values().sum::<u64>(), units.len() as u64);
    // Replaying one or two units per pass: the same resolutions, in the same order.
    for units_per_pass in [1, 2] {
        let budget = custody::audit::Budget { units_per_pass };
        let passes = resolve_all_within(
            store,
            &ledger_name(),
            &ix,
            &opts(w.now()),
            budget,
            &|_, _, _| {},
            |_| Ok(true),
        )
        .expect("resolve_all in passes");
        assert_eq!(
            serde_json::to_value(&passes).expect("json"),
            serde_json::to_value(&sum).expect("json"),
            "{units_per_pass} units per pass"
        );
    }
}

/// `resolve --all` by default takes the events below the latest checkpoint on that
/// checkpoint (their leaves must rebuild its signed root) and checks the signatures of the
/// events past it: the same resolutions as checking every signature, and the report says
/// which was done. A latest checkpoint that does not verify under the log key is refused.
#[test]
fn anchored_resolution_agrees_with_every_signature_checked() {
    use custody::core::checkpoint::Checkpoint;
    use custody::core::receipt::CheckpointRef;
    use custody::ledger::{Ledger, LogPolicy};
    use custody::store::Group;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let store = Arc::new(MemoryStore::new());
    let w = World::new(Arc::clone(&store));
    let mut units = mixed(&w);
    // Closed: the writer's last checkpoint covers everything so far. Reopened with an
    // hour between checkpoints, the next events stay past it.
    let World {
        ledger,
        clock,
        op,
        maker,
        dist,
        sub,
        user,
        svc,
    } = w;
    drop(ledger);
    let covered = store.len().expect("len");
    let c2 = Arc::clone(&clock);
    let clk: custody::ledger::Clock =
        Arc::new(move || Timestamp::clamped(c2.load(Ordering::SeqCst)));
    let policy = LogPolicy {
        checkpoint_interval: std::time::Duration::from_secs(3600),
    };
    let ledger =
        Ledger::open_with(Arc::clone(&store), clk, log_key().signing, policy).expect("reopen");
    let w = World {
        ledger,
        clock,
        op,
        maker,
        dist,
        sub,
        user,
        svc,
    };
    units.extend(mixed(&w));
    let total = store.len().expect("len");
    assert!(total > covered, "events past the checkpoint");
    let latest = store
        .latest_checkpoint()
        .expect("read")
        .expect("a checkpoint");
    assert_eq!(latest.checkpoint.size, covered);

    let ix = index("2023-01-01");
    let all = |signatures| {
        let o = Options {
            signatures,
            ..opts(w.now())
        };
        resolve_all(&*store, &ledger_name(), &ix, &o, &|_, _, _| {}, |_| {
            Ok(true)
        })
    };
    let anchored = all(Signatures::Anchored).expect("anchored");
    let every = all(Signatures::Every).expect("every signature");
    assert_eq!(anchored.units, units.len() as u64);
    assert_eq!(
        anchored.admission,
        Admission {
            anchored_to: Some(CheckpointRef::of(&latest)),
            signatures_checked: total - covered,
            events: total,
        }
    );
    assert_eq!(
        every.admission,
        Admission {
            anchored_to: None,
            signatures_checked: total,
            events: total,
        }
    );
    let json = |s: &custody::resolve::Summary| {
        serde_json::to_value((&s.resolutions, &s.counts, &s.peers)).expect("json")
    };
    assert_eq!(json(&anchored), json(&every));

    // A checkpoint at the log's size signed by another key: the latest, and refused.
    let forged = Checkpoint {
        origin: ledger_name(),
        size: total,
        root: latest.checkpoint.root,
    }
    .sign(&key("not-the-log").signing);
    store
        .commit(&Group {
            checkpoint: Some(forged),
            ..Group::default()
        })
        .expect("write");
    let err = all(Signatures::Anchored).expect_err("refused").to_string();
    assert!(
        err.contains("does not verify under the ledger's log key"),
        "{err}"
    );
    all(Signatures::Every).expect("every signature checked: no checkpoint is used");
}

#[test]
fn a_list_update_re_resolves_only_the_units_of_changed_parties() {
    let w = World::new(MemoryStore::new());
    let units = mixed(&w);
    let store = w.ledger.store();
    let empty = Index::build(std::iter::empty::<(
        &str,
        &[custody::screen::entry::ListEntry],
    )>());
    let ix = index("2023-01-01");
    let peers = baseline(store, DwellRule::default()).expect("baseline");
    let c = changed(store, &ledger_name(), &empty, &ix, &opts(w.now()), &peers).expect("changed");
    // Only the end user "User Bureau" is listed: only the units it is involved with are touched.
    assert_eq!(c.parties_changed.len(), 1, "{:?}", c.parties_changed);
    assert_eq!(c.parties_changed[0].party, w.user.party_id());
    let involved = store
        .involved(&w.user.party_id(), None, 100)
        .expect("involved");
    assert_eq!(c.units_touched, involved.len() as u64);
    assert!(c.units_touched < units.len() as u64);
    assert_eq!(c.changes.len(), 1);
    let ch = &c.changes[0];
    assert_eq!(
        (ch.before, ch.after),
        (Verdict::Clear, Verdict::SanctionedEnd)
    );
    assert_eq!(ch.because_of, vec![w.user.party_id()]);
    // The same lists on both sides change nothing and touch nothing.
    let none = changed(store, &ledger_name(), &ix, &ix, &opts(w.now()), &peers).expect("changed");
    assert_eq!((none.units_touched, none.changes.len()), (0, 0));
}

#[test]
fn a_declared_end_user_that_is_restricted_is_a_sanctioned_end() {
    let w = World::new(MemoryStore::new());
    let c = w.client();
    let u = w.register(1);
    let t = c
        .transfer(&w.maker, &w.dist.party_id(), &u, text("S"), cn())
        .expect("transfer");
    // The distributor holds it, declaring the (listed) bureau as the end user.
    let mut decl = eu("CN");
    decl.end_user_party = Some(w.user.party_id());
    c.accept(&w.dist, &t.hash, &[], Some(decl)).expect("accept");
    let r = run(&w, &index("2023-01-01"), &u[0]);
    assert_eq!(r.verdict, Verdict::SanctionedEnd, "{:#?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(
        (f.rule, f.party.clone()),
        ("restricted_end_user", Some(w.user.party_id()))
    );
    assert!(!f.screening.is_empty());
}

#[test]
fn a_possible_match_between_the_thresholds_is_for_review() {
    let w = World::new(MemoryStore::new());
    let u = moved(&w, 3);
    // "User Office Bureau" scores between the review (0.70) and match (0.86) thresholds
    // against the holder "User Bureau".
    let r = run(&w, &named("User Office Bureau", ""), &u);
    assert_eq!(r.verdict, Verdict::Review, "{:#?}", r.findings);
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "possible_match")
        .expect("possible_match");
    assert_eq!(f.party, Some(w.user.party_id()));
    assert!(f.detail.contains("possible match"), "{}", f.detail);
    assert_eq!(f.candidates.len(), 1, "the evidence names the candidate");
    assert_eq!(f.candidates[0].entry_name, "User Office Bureau");
    assert!(f.candidates[0].score >= 0.70 && f.candidates[0].score < 0.86);
}
