//! The dwell red flag: a holder that sits on a unit far longer than its peers.
//!
//! Peers are every intermediary (a party that is neither the unit's manufacturer nor an
//! end user) that held a unit and handed it on: their stays, in whole days from accepting
//! the unit to transferring it on, form the sample. A stay is flagged when it lasts more
//! than `factor` times the sample's median and at least `min_days`; with fewer than
//! `min_sample` completed stays there is no baseline and nothing is flagged (the report
//! says so through [`Peers`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::event::Role;
use crate::core::ids::PartyId;
use crate::store::{Store, StoreError};

/// The ledger-wide baseline, as reported next to every resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// Completed intermediary stays in the sample.
    pub stays: u64,
    pub median_days: u32,
    /// Stays longer than this are flagged (`None`: too few stays for a baseline).
    pub threshold_days: Option<u32>,
}

/// How far from the baseline a stay must be to raise the flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DwellRule {
    pub factor: u32,
    pub min_days: u32,
    pub min_sample: u64,
}

impl Default for DwellRule {
    fn default() -> Self {
        Self {
            factor: 4,
            min_days: 60,
            min_sample: 5,
        }
    }
}

impl Peers {
    /// The baseline of a sample of stays (in days).
    #[must_use]
    pub fn of(days: Vec<u32>, rule: DwellRule) -> Self {
        let mut counts = BTreeMap::new();
        for d in days {
            *counts.entry(d).or_insert(0u64) += 1;
        }
        Self::of_counts(&counts, rule)
    }

    /// The baseline of a sample given as the number of stays of each length (days).
    #[must_use]
    pub fn of_counts(counts: &BTreeMap<u32, u64>, rule: DwellRule) -> Self {
        let stays: u64 = counts.values().sum();
        // The stay at position `k` (from 0) in ascending order.
        let nth = |k: u64| {
            let mut seen = 0;
            for (&d, &n) in counts {
                seen += n;
                if k < seen {
                    return d;
                }
            }
            0
        };
        let median_days = match stays {
            0 => 0,
            n if n % 2 == 1 => nth(n / 2),
            n => {
                let (a, b) = (nth(n / 2 - 1), nth(n / 2));
                a / 2 + b / 2 + (a % 2 + b % 2) / 2
            }
        };
        let threshold_days = (stays >= rule.min_sample)
            .then(|| median_days.saturating_mul(rule.factor).max(rule.min_days));
        Self {
            stays,
            median_days,
            threshold_days,
        }
    }

    /// Whether a stay of `days` is far longer than the peers'.
    #[must_use]
    pub fn too_long(&self, days: u32) -> bool {
        self.threshold_days.is_some_and(|t| days > t)
    }
}

/// The dwell baseline of the ledger as it stands, from the store's completed-stay counters
/// (kept by every accepted event, compared with the log by `custody verify`): the stays of
/// every party that is not an end user now. Reads parties × distinct durations records,
/// however long the log.
pub fn baseline<S: Store>(store: &S, rule: DwellRule) -> Result<Peers, StoreError> {
    let mut counts = BTreeMap::new();
    let mut end_user: Option<(PartyId, bool)> = None;
    for (p, days, n) in store.stays()? {
        let skip = match &end_user {
            Some((q, e)) if *q == p => *e,
            _ => {
                let e = store
                    .party(&p)?
                    .ok_or_else(|| StoreError::Corrupt {
                        location: format!("stay counters of party {p}"),
                        detail: "the party has no record".into(),
                    })?
                    .has_role(Role::EndUser);
                end_user = Some((p, e));
                e
            }
        };
        if !skip {
            *counts.entry(days).or_insert(0) += n;
        }
    }
    Ok(Peers::of_counts(&counts, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_threshold() {
        let r = DwellRule::default();
        let p = Peers::of(vec![10, 2, 30, 4, 20], r);
        assert_eq!(
            (p.stays, p.median_days, p.threshold_days),
            (5, 10, Some(60))
        );
        assert!(!p.too_long(60) && p.too_long(61));
        let p = Peers::of(vec![30, 20, 40, 50, 10, 60], r);
        assert_eq!((p.median_days, p.threshold_days), (35, Some(140)));
        let p = Peers::of(vec![100; 4], r);
        assert_eq!(p.threshold_days, None, "too few stays for a baseline");
        assert!(!p.too_long(10_000));
        let p = Peers::of(vec![3, 4], r);
        assert_eq!(p.median_days, 3, "the mean of the middle two, rounded down");
        assert_eq!(Peers::of(vec![], r).median_days, 0);
    }

    proptest::proptest! {
        /// The median from counts equals the median of the sorted sample.
        #[test]
        fn median_of_counts_is_the_sorted_samples(mut days in proptest::collection::vec(0u32..50, 0..200)) {
            let p = Peers::of(days.clone(), DwellRule::default());
            days.sort_unstable();
            let n = days.len();
            let want = match n {
                0 => 0,
                _ if n % 2 == 1 => days[n / 2],
                _ => (days[n / 2 - 1] + days[n / 2]) / 2,
            };
            proptest::prop_assert_eq!(p.median_days, want);
            proptest::prop_assert_eq!(p.stays, n as u64);
        }
    }
}
