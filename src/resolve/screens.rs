//! Screening answers, memoized per party: one screening against the lists as they are now
//! for every party the resolver meets, and, for restricted parties only, whether they
//! were already restricted on a given date (a party clear now was clear then too, since an
//! earlier date only takes listings away).

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::core::ids::PartyId;
use crate::core::values::Timestamp;
use crate::screen::entry::Date;
use crate::screen::hierarchy::{Parties, PartyScreening, Screener, Status};
use crate::screen::matcher::{Index, Thresholds};
use crate::store::StoreError;

pub struct Screens<'a, P: Parties + Sync + ?Sized> {
    index: &'a Index,
    parties: &'a P,
    th: Thresholds,
    now: HashMap<PartyId, Arc<PartyScreening>>,
    dated: HashMap<(PartyId, Timestamp), Option<bool>>,
}

fn date_of(t: Timestamp) -> Option<Date> {
    Date::parse(&t.to_string()).ok()
}

impl<'a, P: Parties + Sync + ?Sized> Screens<'a, P> {
    pub fn new(index: &'a Index, parties: &'a P, th: Thresholds) -> Self {
        Self {
            index,
            parties,
            th,
            now: HashMap::new(),
            dated: HashMap::new(),
        }
    }

    /// Screens these parties on every core, ahead of the resolver asking.
    pub fn preload(&mut self, ids: &[PartyId]) -> Result<(), StoreError> {
        let chunk = ids.len().div_ceil(rayon::current_num_threads() * 4).max(1);
        let done: Vec<Vec<(PartyId, PartyScreening)>> = ids
            .par_chunks(chunk)
            .map(|c| {
                let mut s = Screener::new(self.index, self.parties, self.th, None);
                c.iter()
                    .map(|id| Ok((id.clone(), s.party(id)?)))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .collect::<Result<_, _>>()?;
        for (id, s) in done.into_iter().flatten() {
            self.now.insert(id, Arc::new(s));
        }
        Ok(())
    }

    /// The party screened against the lists as they are now.
    pub fn now(&mut self, id: &PartyId) -> Result<Arc<PartyScreening>, StoreError> {
        if let Some(s) = self.now.get(id) {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Screener::new(self.index, self.parties, self.th, None).party(id)?);
        self.now.insert(id.clone(), Arc::clone(&s));
        Ok(s)
    }

    /// The party screened now, without remembering it (for sharing across threads after
    /// [`Screens::preload`]).
    pub fn get(&self, id: &PartyId) -> Result<Arc<PartyScreening>, StoreError> {
        match self.now.get(id) {
            Some(s) => Ok(Arc::clone(s)),
            None => Ok(Arc::new(
                Screener::new(self.index, self.parties, self.th, None).party(id)?,
            )),
        }
    }

    /// Whether the party was restricted on the date of `t`, without remembering it:
    /// `None` when that rests on entries whose list gives no listing date.
    pub fn restricted_on(&self, id: &PartyId, t: Timestamp) -> Result<Option<bool>, StoreError> {
        if self.get(id)?.status != Status::Restricted {
            return Ok(Some(false));
        }
        let Some(d) = date_of(t) else {
            return Ok(None);
        };
        let screen = |strict: bool| -> Result<bool, StoreError> {
            let s = Screener::new(self.index, self.parties, self.th, Some(d));
            let mut s = if strict {
                s.unknown_dates_not_in_force()
            } else {
                s
            };
            Ok(s.party(id)?.status == Status::Restricted)
        };
        if screen(true)? {
            Ok(Some(true))
        } else if !screen(false)? {
            Ok(Some(false))
        } else {
            Ok(None)
        }
    }

    /// [`Screens::restricted_on`], remembered per party and date.
    pub fn restricted_at(
        &mut self,
        id: &PartyId,
        t: Timestamp,
    ) -> Result<Option<bool>, StoreError> {
        let key = (id.clone(), t);
        if let Some(&r) = self.dated.get(&key) {
            return Ok(r);
        }
        let r = self.restricted_on(id, t)?;
        self.dated.insert(key, r);
        Ok(r)
    }
}
