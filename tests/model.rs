//! Chain rules against an independent model over random sequences of operations: every
//! operation is accepted exactly when the model says it should be, the stored state ends
//! equal to the model, and the whole ledger re-verifies.

mod common;

use common::*;
use custody::core::event::RetireReason;
use custody::core::ids::EventHash;
use custody::keys::KeyPair;
use custody::store::{MemoryStore, Store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        actor: usize,
        unit: usize,
        to: usize,
    },
    Accept {
        actor: usize,
        unit: usize,
    },
    Reject {
        actor: usize,
        unit: usize,
    },
    Cancel {
        actor: usize,
        unit: usize,
    },
    Retire {
        actor: usize,
        unit: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..4usize;
    let u = 0..3usize;
    prop_oneof![
        4 => (a.clone(), u.clone(), 0..4usize).prop_map(|(actor, unit, to)| Op::Transfer { actor, unit, to }),
        3 => (a.clone(), u.clone()).prop_map(|(actor, unit)| Op::Accept { actor, unit }),
        1 => (a.clone(), u.clone()).prop_map(|(actor, unit)| Op::Reject { actor, unit }),
        1 => (a.clone(), u.clone()).prop_map(|(actor, unit)| Op::Cancel { actor, unit }),
        1 => (a, u).prop_map(|(actor, unit)| Op::Retire { actor, unit }),
    ]
}

#[derive(Clone, Debug)]
struct ModelUnit {
    holder: usize,
    pending: Option<(usize, usize, EventHash)>,
    retired: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn rules_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let w = World::new(MemoryStore::new());
        let c = w.client();
        let parties: [&KeyPair; 4] = [&w.maker, &w.dist, &w.sub, &w.user];
        let units = w.register(3);
        let mut model: Vec<ModelUnit> = (0..3).map(|_| ModelUnit { holder: 0, pending: None, retired: false }).collect();
        let nowhere = EventHash::from_bytes([0xab; 32]);
        for op in ops {
            w.tick(1);
            match op {
                Op::Transfer { actor, unit, to } => {
                    let m = &model[unit];
                    let expect = !m.retired && m.pending.is_none() && m.holder == actor && to != actor;
                    let r = c.transfer(parties[actor], &parties[to].party_id(), &units[unit..=unit], text("S"), cn());
                    prop_assert_eq!(r.is_ok(), expect, "{:?} {:?} -> {:?}", op, m, r.as_ref().err().map(ToString::to_string));
                    if let Ok(rc) = r {
                        model[unit].pending = Some((actor, to, rc.hash));
                    }
                }
                Op::Accept { actor, unit } | Op::Reject { actor, unit } | Op::Cancel { actor, unit } => {
                    let m = model[unit].clone();
                    let hash = m.pending.map_or(nowhere, |p| p.2);
                    let cancel = matches!(op, Op::Cancel { .. });
                    let expect = m.pending.is_some_and(|(from, to, _)| if cancel { from == actor } else { to == actor });
                    let only = &units[unit..=unit];
                    let r = match op {
                        Op::Accept { .. } => c.accept(parties[actor], &hash, only, None),
                        Op::Reject { .. } => c.reject(parties[actor], &hash, only, text("no")),
                        _ => c.cancel(parties[actor], &hash, only, text("no")),
                    };
                    prop_assert_eq!(r.is_ok(), expect, "{:?} {:?} -> {:?}", op, m, r.as_ref().err().map(ToString::to_string));
                    if r.is_ok() {
                        if let (Op::Accept { .. }, Some((_, to, _))) = (&op, m.pending) {
                            model[unit].holder = to;
                        }
                        model[unit].pending = None;
                    }
                }
                Op::Retire { actor, unit } => {
                    let m = &model[unit];
                    let expect = !m.retired && m.pending.is_none() && m.holder == actor;
                    let r = c.retire(parties[actor], &units[unit..=unit], RetireReason::Destroyed, None);
                    prop_assert_eq!(r.is_ok(), expect, "{:?} {:?}", op, m);
                    if r.is_ok() {
                        model[unit].retired = true;
                    }
                }
            }
        }
        for (i, m) in model.iter().enumerate() {
            let rec = w.ledger.store().unit(&units[i]).expect("read").expect("unit");
            prop_assert_eq!(&rec.holder, &parties[m.holder].party_id());
            prop_assert_eq!(rec.pending.is_some(), m.pending.is_some());
            prop_assert_eq!(rec.retired.is_some(), m.retired);
        }
        let report = custody::audit::verify_ledger(w.ledger.store(), |_, _| {}).expect("audit");
        prop_assert!(report.ok, "{:?}", report.failure);
        // In passes of one or two units: the same report.
        for units_per_pass in [1, 2] {
            let budget = custody::audit::Budget { units_per_pass };
            let passes = custody::audit::verify_ledger_within(w.ledger.store(), budget, |_, _| {})
                .expect("audit");
            prop_assert_eq!(format!("{passes:?}"), format!("{report:?}"));
        }
    }
}
