//! The resolver on chains built for each verdict and red flag: the verdict and the evidence.

mod common;

use common::*;
use custody::core::event::EndUse;
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Timestamp};
use custody::resolve::{resolve, Options, Resolution, Verdict};
use custody::screen::entry::SourceKind;
use custody::screen::import::{self, Input};
use custody::screen::matcher::{Index, Thresholds};
use custody::store::{MemoryStore, Store};

/// A deny list naming the fixture's end user, listed on `date`.
fn index(date: &str) -> Index {
    let json = format!(
        r#"[{{"id": "D1", "name": "User Bureau", "country": "CN", "listed_on": "{date}"}}]"#
    );
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
    resolve(w.ledger.store(), &ledger_name(), ix, u, &opts(w.now())).expect("resolve")
}

fn rules(r: &Resolution) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.rule).collect()
}

/// maker → dist (accepted with end use) → sub (accepted) … as far as `hops`.
fn moved(w: &World<MemoryStore>, hops: usize) -> UnitId {
    let c = w.client();
    let u = w.register(1);
    let path = [(&w.maker, &w.dist), (&w.dist, &w.sub), (&w.sub, &w.user)];
    for (from, to) in path.iter().take(hops) {
        let t = c
            .transfer(from, &to.party_id(), &u, text("S"), cn())
            .expect("transfer");
        c.accept(to, &t.hash, &[], Some(eu("CN"))).expect("accept");
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
    let later = resolve(
        w.ledger.store(),
        &ledger_name(),
        &ix,
        &u,
        &opts(w.now().saturating_add(40 * 86_400)),
    )
    .expect("resolve");
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
    let c = w.client();
    let t = c
        .transfer(
            &w.user,
            &w.sub.party_id(),
            std::slice::from_ref(&u),
            text("back"),
            cn(),
        )
        .expect("transfer back");
    c.accept(&w.sub, &t.hash, &[], Some(eu("CN")))
        .expect("accept");
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
