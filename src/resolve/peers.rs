//! The dwell red flag: a holder that sits on a unit far longer than its peers.
//!
//! Peers are every intermediary (a party that is neither the unit's manufacturer nor an
//! end user) that held a unit and handed it on: their stays, in whole days from accepting
//! the unit to transferring it on, form the sample. A stay is flagged when it lasts more
//! than `factor` times the sample's median and at least `min_days`; with fewer than
//! `min_sample` completed stays there is no baseline and nothing is flagged (the report
//! says so through [`Peers`]).

use serde::{Deserialize, Serialize};

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
    pub fn of(mut days: Vec<u32>, rule: DwellRule) -> Self {
        days.sort_unstable();
        let n = days.len();
        let median_days = match n {
            0 => 0,
            _ if n % 2 == 1 => days[n / 2],
            _ => {
                days[n / 2 - 1] / 2 + days[n / 2] / 2 + (days[n / 2 - 1] % 2 + days[n / 2] % 2) / 2
            }
        };
        let stays = n as u64;
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
    }
}
