//! From a replayed walk to findings: the events' own red flags, then screening of the
//! current holder, declared end users, the pending recipient and past holders, then the
//! stale-transfer and dwell checks. Shared by the one-unit and the whole-ledger paths,
//! which differ only in how they look parties and event hashes up ([`Evidence`]).

use std::sync::Arc;

use super::peers::Peers;
use super::walk::{days, Directory, Flag, Stay, Walk};
use super::{Finding, Options, Resolution, Verdict};
use crate::core::ids::{EventHash, LogIndex, PartyId};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;
use crate::screen::hierarchy::{PartyScreening, Status};
use crate::store::StoreError;

/// Lookups the judge needs beyond the walk's [`Directory`].
pub trait Evidence: Directory {
    fn id(&self, p: &Self::Key) -> PartyId;
    /// How findings name the party: its handle and id.
    fn label(&mut self, p: &Self::Key) -> Result<String, StoreError>;
    fn hash(&self, i: LogIndex) -> EventHash;
    /// The party screened against the lists as they are now (memoized by the caller).
    fn screen(&mut self, p: &Self::Key) -> Result<Arc<PartyScreening>, StoreError>;
    /// Whether the party was already restricted on the date of `t` (`None`: the listing
    /// that restricts it has no date in its list).
    fn restricted_at(&mut self, p: &Self::Key, t: Timestamp) -> Result<Option<bool>, StoreError>;
}

fn at<E: Evidence>(
    ev: &E,
    verdict: Verdict,
    rule: &'static str,
    detail: String,
    index: LogIndex,
    party: &E::Key,
    date: Timestamp,
) -> Finding {
    Finding {
        verdict,
        rule,
        detail,
        event: Some(ev.hash(index)),
        index: Some(index),
        party: Some(ev.id(party)),
        date: Some(date),
        screening: vec![],
        candidates: vec![],
        restricted_at_the_time: None,
    }
}

/// Screens one party of the walk: a restricted finding, a possible match, or nothing.
fn screened<E: Evidence>(
    ev: &mut E,
    verdict: Verdict,
    rule: &'static str,
    what: &str,
    s: &Stay<E::Key>,
    history: bool,
    out: &mut Vec<Finding>,
) -> Result<(), StoreError> {
    let sc = ev.screen(&s.party)?;
    let id = ev.label(&s.party)?;
    match sc.status {
        Status::Restricted => {
            let mut f = at(
                ev,
                verdict,
                rule,
                format!("{what} {id} \"{}\" is restricted", sc.name),
                s.index,
                &s.party,
                s.since,
            );
            f.screening.clone_from(&sc.findings);
            if history {
                f.restricted_at_the_time = ev.restricted_at(&s.party, s.since)?;
                if f.restricted_at_the_time.is_none() {
                    f.detail.push_str(
                        "; the list gives no listing date, so whether it was already listed when it took custody is not known",
                    );
                }
            }
            out.push(f);
        }
        Status::Review => {
            let mut f = at(
                ev,
                Verdict::Review,
                "possible_match",
                format!(
                    "{what} {id} \"{}\" is a possible match for review: {} candidate(s)",
                    sc.name,
                    sc.review.len()
                ),
                s.index,
                &s.party,
                s.since,
            );
            f.candidates.clone_from(&sc.review);
            out.push(f);
        }
        Status::Clear => {}
    }
    Ok(())
}

/// The findings and verdict of a replayed unit.
pub fn judge<E: Evidence>(
    unit: &UnitId,
    w: &Walk<E::Key>,
    ev: &mut E,
    o: &Options,
    peers: &Peers,
) -> Result<Resolution, StoreError> {
    let mut out = Vec::new();
    for f in &w.flags {
        let (verdict, rule, detail, party) = match &f.flag {
            Flag::Unauthorized { to } => (
                Verdict::Review,
                "unauthorized_distributor",
                format!("transfer to {}, which the manufacturer has not authorized (not in its sponsorship tree)", ev.label(to)?),
                to,
            ),
            Flag::DestinationMismatch { to, declared, actual } => (
                Verdict::Review,
                "destination_mismatch",
                format!("declared destination {declared} differs from the recipient's country {actual}"),
                to,
            ),
            Flag::NoEndUse { by } => (
                Verdict::Review,
                "no_end_use",
                "accepted without an end-use declaration".to_owned(),
                by,
            ),
            Flag::ObservedElsewhere { observer, seen_at, holder } => (
                Verdict::Diverted,
                "observed_elsewhere",
                format!(
                    "observed by {} at {}, but the recorded holder is {}",
                    ev.label(observer)?,
                    ev.label(seen_at)?,
                    ev.label(holder)?
                ),
                seen_at,
            ),
        };
        out.push(at(ev, verdict, rule, detail, f.index, party, f.at));
    }
    if let Some(h) = &w.holder {
        let what = "the current holder";
        screened(
            ev,
            Verdict::SanctionedEnd,
            "restricted_holder",
            what,
            h,
            false,
            &mut out,
        )?;
    }
    for e in &w.end_users {
        let what = "the declared end user";
        screened(
            ev,
            Verdict::SanctionedEnd,
            "restricted_end_user",
            what,
            e,
            false,
            &mut out,
        )?;
    }
    if let Some(p) = &w.pending {
        let what = "the pending recipient";
        screened(
            ev,
            Verdict::SanctionedPending,
            "restricted_recipient",
            what,
            p,
            false,
            &mut out,
        )?;
        let d = days(p.since, o.now);
        if i64::from(d) > o.stale_pending_days {
            let detail = format!(
                "transfer to {} pending for {d} days (more than {}): the unit may have gone off the ledger",
                ev.label(&p.party)?,
                o.stale_pending_days
            );
            out.push(at(
                ev,
                Verdict::Review,
                "stale_pending",
                detail,
                p.index,
                &p.party,
                p.since,
            ));
        }
    }
    for h in &w.past {
        if w.maker.as_ref() == Some(&h.party) {
            continue;
        }
        let what = "a past holder";
        screened(
            ev,
            Verdict::SanctionedHistory,
            "restricted_past_holder",
            what,
            h,
            true,
            &mut out,
        )?;
    }
    let intermediary = |ev: &mut E, s: &Stay<E::Key>| -> Result<bool, StoreError> {
        Ok(w.maker.as_ref() != Some(&s.party) && !ev.is_end_user(&s.party)?)
    };
    let stays = w.past.iter().chain(w.holder.iter());
    for s in stays {
        let d = days(s.since, s.until.unwrap_or(o.now));
        if peers.too_long(d) && intermediary(ev, s)? {
            let detail = format!(
                "{} {} the unit for {d} days; its peers' median is {} days over {} completed stays (flagged above {} days)",
                ev.label(&s.party)?,
                if s.until.is_some() { "held" } else { "has held" },
                peers.median_days,
                peers.stays,
                peers.threshold_days.unwrap_or_default()
            );
            out.push(at(
                ev,
                Verdict::Review,
                "long_dwell",
                detail,
                s.index,
                &s.party,
                s.since,
            ));
        }
    }
    let verdict = out
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Clear);
    out.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(a.index.cmp(&b.index)));
    Ok(Resolution {
        unit: unit.clone(),
        verdict,
        findings: out,
    })
}
