//! Shared fixtures: a small world of parties on a ledger with a pinned clock.
#![allow(dead_code)]

pub mod process;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use custody::client::{Client, ClientError};
use custody::core::event::{Body, Profile, Role};
use custody::core::ids::{Handle, LedgerName};
use custody::core::unit::UnitId;
use custody::core::values::{CountryCode, Text, Timestamp};
use custody::keys::KeyPair;
use custody::ledger::{AppendError, Clock, Ledger, Receipt};
use custody::store::Store;

pub const T0: i64 = 1_700_000_000;

pub fn ledger_name() -> LedgerName {
    LedgerName::parse("test.example/ledger").expect("valid name")
}

/// A key derived from a label, so tests are deterministic.
pub fn key(label: &str) -> KeyPair {
    use sha2::Digest as _;
    let seed: [u8; 32] = sha2::Sha256::digest(label.as_bytes()).into();
    KeyPair::from_signing(ed25519_dalek::SigningKey::from_bytes(&seed)).expect("valid key")
}

/// The ledger's log key in tests.
pub fn log_key() -> KeyPair {
    key("log")
}

/// Initializes `store` as the test ledger and opens it with the test log key.
pub fn open_ledger<S: Store>(store: S, clock: Clock) -> Ledger<S> {
    let k = log_key();
    Ledger::init(&store, &ledger_name(), &k.public).expect("init");
    Ledger::open(store, clock, k.signing).expect("open")
}

pub fn profile(name: &str, country: &str, roles: &[Role]) -> Profile {
    let mut roles = roles.to_vec();
    roles.sort();
    Profile {
        legal_name: Text::parse(name).expect("valid"),
        aliases: vec![],
        country: CountryCode::parse(country).expect("valid"),
        region: None,
        address: None,
        roles,
        parent: None,
        owners: vec![],
        gs1_company_prefixes: if name.contains("Maker") {
            vec!["0614141".into()]
        } else {
            vec![]
        },
    }
}

pub struct World<S: Store> {
    pub ledger: Ledger<S>,
    pub clock: Arc<AtomicI64>,
    pub op: KeyPair,
    pub maker: KeyPair,
    pub dist: KeyPair,
    pub sub: KeyPair,
    pub user: KeyPair,
    pub svc: KeyPair,
}

impl<S: Store> World<S> {
    /// Genesis plus five enrolled parties.
    pub fn new(store: S) -> Self {
        let clock = Arc::new(AtomicI64::new(T0));
        let c2 = Arc::clone(&clock);
        let clk: Clock = Arc::new(move || Timestamp::clamped(c2.load(Ordering::SeqCst)));
        let ledger = open_ledger(store, clk);
        let w = World {
            ledger,
            clock,
            op: key("op"),
            maker: key("maker"),
            dist: key("dist"),
            sub: key("sub"),
            user: key("user"),
            svc: key("svc"),
        };
        let c = w.client();
        c.genesis(
            &w.op,
            h("operator"),
            profile("Operator", "US", &[Role::Operator]),
        )
        .expect("genesis");
        c.enroll(
            &w.maker,
            &w.op,
            h("maker"),
            profile("Maker Inc", "US", &[Role::Manufacturer]),
        )
        .expect("maker");
        c.enroll(
            &w.svc,
            &w.op,
            h("servicer"),
            profile("Service LLC", "US", &[Role::Servicer]),
        )
        .expect("svc");
        c.enroll(
            &w.dist,
            &w.maker,
            h("dist"),
            profile("Dist Ltd", "CN", &[Role::Distributor]),
        )
        .expect("dist");
        c.enroll(
            &w.sub,
            &w.dist,
            h("sub"),
            profile("Sub Ltd", "CN", &[Role::Distributor]),
        )
        .expect("sub");
        c.enroll(
            &w.user,
            &w.sub,
            h("user"),
            profile("User Bureau", "CN", &[Role::EndUser]),
        )
        .expect("user");
        w
    }

    pub fn client(&self) -> Client<'_> {
        let c2 = Arc::clone(&self.clock);
        Client::new(
            &self.ledger,
            Arc::new(move || Timestamp::clamped(c2.load(Ordering::SeqCst))),
        )
    }

    pub fn tick(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::clamped(self.clock.load(Ordering::SeqCst))
    }

    pub fn units(&self, n: usize) -> Vec<UnitId> {
        let base = self.ledger.store().len().expect("len");
        (0..n)
            .map(|i| {
                UnitId::custody(&self.maker.party_id(), "SEQ", &format!("S{base}-{i}"))
                    .expect("valid")
            })
            .collect()
    }

    /// Registers `n` new units with the maker.
    pub fn register(&self, n: usize) -> Vec<UnitId> {
        let u = self.units(n);
        self.client()
            .register(&self.maker, u.clone(), None, None)
            .expect("register");
        u
    }

    pub fn submit(&self, body: Body, keys: &[&KeyPair]) -> Result<Receipt, ClientError> {
        let ks: Vec<_> = keys.iter().map(|k| &k.signing).collect();
        self.client().submit(body, &ks)
    }
}

pub fn h(s: &str) -> Handle {
    Handle::parse(s).expect("valid handle")
}

pub fn text(s: &str) -> Text {
    Text::parse(s).expect("valid text")
}

pub fn cn() -> CountryCode {
    CountryCode::parse("CN").expect("valid")
}

/// The stable rule name of a refusal; panics with the error if it was something else.
pub fn rule(r: Result<Receipt, ClientError>) -> &'static str {
    match r {
        Err(ClientError::Append(AppendError::Rule(e))) => e.rule(),
        Err(other) => panic!("expected a rule refusal, got {other}"),
        Ok(rc) => panic!(
            "expected a refusal, but the event was accepted at {}",
            rc.index
        ),
    }
}
