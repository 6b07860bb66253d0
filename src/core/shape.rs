//! Stateless shape rules of an envelope (FORMAT.md §2.3): list sizes, uniqueness,
//! signature order, profile consistency. Nothing here looks at ledger state.

use std::collections::HashSet;

use super::error::DecodeError;
use super::event::{Body, Envelope, Profile, UnitLink};
use super::ids::PublicKey;
use super::unit::UnitId;

/// Most units one event may touch (a lot of kits, a pallet).
pub const MAX_UNITS_PER_EVENT: usize = 5000;
/// Most signatures on one envelope.
pub const MAX_SIGNATURES: usize = 16;
/// Most keys a party lists at enrollment.
pub const MAX_KEYS: usize = 8;
/// Most aliases, owners or GS1 prefixes in a profile.
pub const MAX_PROFILE_LIST: usize = 64;

fn shape(field: impl Into<String>, rule: &'static str) -> DecodeError {
    DecodeError::Shape {
        field: field.into(),
        rule,
    }
}

pub fn check(env: &Envelope) -> Result<(), DecodeError> {
    let sigs = &env.signatures;
    if sigs.is_empty() {
        return Err(shape("signatures", "at least one signature is required"));
    }
    if sigs.len() > MAX_SIGNATURES {
        return Err(shape("signatures", "at most 16 signatures"));
    }
    if sigs
        .windows(2)
        .any(|w| w[0].key.as_bytes() >= w[1].key.as_bytes())
    {
        return Err(shape(
            "signatures",
            "must be sorted by key bytes, each key once",
        ));
    }
    match &env.body {
        Body::Genesis(b) => {
            profile(&b.profile)?;
            keys(&b.keys)?;
        }
        Body::Enroll(b) => {
            profile(&b.profile)?;
            keys(&b.keys)?;
        }
        Body::Update(b) => profile(&b.profile)?,
        Body::RotateKey(b) => {
            if b.old_key == b.new_key {
                return Err(shape("new_key", "must differ from old_key"));
            }
        }
        Body::RevokeKey(_) => {}
        Body::Register(b) => {
            count("units", b.units.len())?;
            unique("units", b.units.iter())?;
        }
        Body::Transfer(b) => links(&b.units)?,
        Body::Accept(b) => links(&b.units)?,
        Body::Reject(b) => links(&b.units)?,
        Body::Cancel(b) => links(&b.units)?,
        Body::Observe(b) => links(&b.units)?,
        Body::Retire(b) => links(&b.units)?,
    }
    Ok(())
}

fn count(field: &str, n: usize) -> Result<(), DecodeError> {
    if n == 0 {
        return Err(shape(field, "must list at least one unit"));
    }
    if n > MAX_UNITS_PER_EVENT {
        return Err(shape(field, "at most 5000 units per event"));
    }
    Ok(())
}

fn unique<'a>(field: &str, units: impl Iterator<Item = &'a UnitId>) -> Result<(), DecodeError> {
    let mut seen = HashSet::new();
    for (i, u) in units.enumerate() {
        if !seen.insert(u) {
            return Err(shape(
                format!("{field}[{i}]"),
                "a unit may appear only once per event",
            ));
        }
    }
    Ok(())
}

fn links(l: &[UnitLink]) -> Result<(), DecodeError> {
    count("units", l.len())?;
    unique("units", l.iter().map(|x| &x.unit))
}

fn keys(k: &[PublicKey]) -> Result<(), DecodeError> {
    if k.is_empty() || k.len() > MAX_KEYS {
        return Err(shape("keys", "1 to 8 keys"));
    }
    let set: HashSet<_> = k.iter().collect();
    if set.len() != k.len() {
        return Err(shape("keys", "each key once"));
    }
    Ok(())
}

fn profile(p: &Profile) -> Result<(), DecodeError> {
    if p.roles.is_empty() {
        return Err(shape("profile.roles", "at least one role"));
    }
    if p.roles.windows(2).any(|w| w[0] >= w[1]) {
        return Err(shape(
            "profile.roles",
            "roles sorted in the order operator, manufacturer, distributor, end_user, servicer, each once",
        ));
    }
    if p.aliases.len() > MAX_PROFILE_LIST
        || p.owners.len() > MAX_PROFILE_LIST
        || p.gs1_company_prefixes.len() > MAX_PROFILE_LIST
    {
        return Err(shape(
            "profile",
            "aliases, owners and gs1_company_prefixes hold at most 64 items each",
        ));
    }
    if let Some(r) = &p.region {
        if r.country() != p.country.as_str() {
            return Err(shape(
                "profile.region",
                "must be a subdivision of profile.country",
            ));
        }
    }
    let mut total: u32 = 0;
    for (i, o) in p.owners.iter().enumerate() {
        if o.share_bps == 0 || o.share_bps > 10_000 {
            return Err(shape(
                format!("profile.owners[{i}].share_bps"),
                "1 to 10000 basis points",
            ));
        }
        total += o.share_bps;
    }
    if total > 10_000 {
        return Err(shape(
            "profile.owners",
            "shares add up to more than 10000 basis points (100 %)",
        ));
    }
    for (i, g) in p.gs1_company_prefixes.iter().enumerate() {
        if !(6..=12).contains(&g.len()) || !g.bytes().all(|b| b.is_ascii_digit()) {
            return Err(shape(
                format!("profile.gs1_company_prefixes[{i}]"),
                "6 to 12 digits",
            ));
        }
    }
    Ok(())
}
