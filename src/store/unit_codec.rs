//! The binary form of a unit record in sled (storage layouts 4 and 5; layouts up to 3
//! stored JSON; layout 5 added the holder's custody time). A unit's record is rewritten by
//! every event that touches it, so its size is paid once per event in sled's log: JSON took
//! about 335 bytes (520 while a transfer is pending), this form takes 93 (165). The unit id
//! is not repeated: it is the record's key.
//!
//! All integers big-endian:
//! ```text
//! u8 flags            bit 0: a transfer is pending; bit 1: retired; other bits zero
//! 16 bytes            manufacturer party id
//! 16 bytes            holder party id
//! 32 bytes            head event hash
//! i64                 head time (Unix seconds)
//! u64                 log index of the registration
//! u32                 chain length
//! i64                 when the holder took custody (Unix seconds)
//! [if pending]        32-byte transfer hash, 16-byte from, 16-byte to, i64 since
//! [if retired]        u8 reason: 0 destroyed, 1 decommissioned, 2 lost, 3 stolen
//! ```

use crate::core::event::RetireReason;
use crate::core::ids::{EventHash, LogIndex, PartyId};
use crate::core::state::{Pending, UnitRecord};
use crate::core::unit::UnitId;
use crate::core::values::Timestamp;

const PENDING: u8 = 1;
const RETIRED: u8 = 2;

/// Why stored bytes are not a unit record.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum UnitCodecError {
    #[error("unit record ends early: {0} missing")]
    Short(&'static str),
    #[error("unit record has {0} bytes after its end")]
    Trailing(usize),
    #[error("unit record has unknown flags {0:#04x}")]
    Flags(u8),
    #[error("unit record has unknown retirement reason {0}")]
    Reason(u8),
    #[error("unit record's {field} is invalid: {detail}")]
    Field { field: &'static str, detail: String },
}

fn reason_code(r: RetireReason) -> u8 {
    match r {
        RetireReason::Destroyed => 0,
        RetireReason::Decommissioned => 1,
        RetireReason::Lost => 2,
        RetireReason::Stolen => 3,
    }
}

fn party_bytes(p: &PartyId) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex::decode_to_slice(p.as_str(), &mut out)
        .expect("invariant: a party id is 32 lowercase hex digits");
    out
}

/// Appends the binary form of `r` (without its id) to `out`.
pub(super) fn encode_into(r: &UnitRecord, out: &mut Vec<u8>) {
    let flags = if r.pending.is_some() { PENDING } else { 0 }
        | if r.retired.is_some() { RETIRED } else { 0 };
    out.push(flags);
    out.extend_from_slice(&party_bytes(&r.manufacturer));
    out.extend_from_slice(&party_bytes(&r.holder));
    out.extend_from_slice(r.head.as_bytes());
    out.extend_from_slice(&r.head_at.unix().to_be_bytes());
    out.extend_from_slice(&r.registered.get().to_be_bytes());
    out.extend_from_slice(&r.length.to_be_bytes());
    out.extend_from_slice(&r.held_since.unix().to_be_bytes());
    if let Some(p) = &r.pending {
        out.extend_from_slice(p.transfer.as_bytes());
        out.extend_from_slice(&party_bytes(&p.from));
        out.extend_from_slice(&party_bytes(&p.to));
        out.extend_from_slice(&p.since.unix().to_be_bytes());
    }
    if let Some(reason) = r.retired {
        out.push(reason_code(reason));
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], UnitCodecError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(UnitCodecError::Short(what))?;
        self.rest = rest;
        Ok(*head)
    }
    fn party(&mut self, what: &'static str) -> Result<PartyId, UnitCodecError> {
        let b = self.take::<16>(what)?;
        PartyId::parse(&hex::encode(b)).map_err(|e| UnitCodecError::Field {
            field: what,
            detail: e.to_string(),
        })
    }
    fn time(&mut self, what: &'static str) -> Result<Timestamp, UnitCodecError> {
        let t = i64::from_be_bytes(self.take::<8>(what)?);
        Timestamp::from_unix(t).map_err(|e| UnitCodecError::Field {
            field: what,
            detail: e.to_string(),
        })
    }
    fn hash(&mut self, what: &'static str) -> Result<EventHash, UnitCodecError> {
        Ok(EventHash::from_bytes(self.take::<32>(what)?))
    }
}

/// The record of unit `id` from its binary form; every byte must be used.
pub(super) fn decode(id: &UnitId, bytes: &[u8]) -> Result<UnitRecord, UnitCodecError> {
    let mut r = Reader { rest: bytes };
    let [flags] = r.take::<1>("flags")?;
    if flags & !(PENDING | RETIRED) != 0 {
        return Err(UnitCodecError::Flags(flags));
    }
    let manufacturer = r.party("manufacturer")?;
    let holder = r.party("holder")?;
    let head = r.hash("head")?;
    let head_at = r.time("head time")?;
    let registered = LogIndex::new(u64::from_be_bytes(r.take::<8>("registration index")?));
    let length = u32::from_be_bytes(r.take::<4>("chain length")?);
    let held_since = r.time("custody time")?;
    let pending = if flags & PENDING != 0 {
        Some(Pending {
            transfer: r.hash("pending transfer")?,
            from: r.party("pending sender")?,
            to: r.party("pending recipient")?,
            since: r.time("pending since")?,
        })
    } else {
        None
    };
    let retired = if flags & RETIRED != 0 {
        let [code] = r.take::<1>("retirement reason")?;
        Some(match code {
            0 => RetireReason::Destroyed,
            1 => RetireReason::Decommissioned,
            2 => RetireReason::Lost,
            3 => RetireReason::Stolen,
            other => return Err(UnitCodecError::Reason(other)),
        })
    } else {
        None
    };
    if !r.rest.is_empty() {
        return Err(UnitCodecError::Trailing(r.rest.len()));
    }
    Ok(UnitRecord {
        id: id.clone(),
        manufacturer,
        holder,
        head,
        head_at,
        pending,
        retired,
        registered,
        length,
        held_since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn party(n: u64) -> PartyId {
        PartyId::parse(&format!("{n:032x}")).expect("32 hex digits")
    }

    fn record(
        seed: u64,
        pending: bool,
        retired: Option<u8>,
        t: i64,
        registered: u64,
    ) -> UnitRecord {
        let maker = party(seed);
        let id = UnitId::custody(&maker, "SEQ", &format!("S{seed}")).expect("unit id");
        UnitRecord {
            id,
            manufacturer: maker,
            holder: party(seed.wrapping_mul(31)),
            head: EventHash::from_bytes([seed as u8; 32]),
            head_at: Timestamp::clamped(t),
            pending: pending.then(|| Pending {
                transfer: EventHash::from_bytes([7; 32]),
                from: party(seed ^ 5),
                to: party(seed ^ 9),
                since: Timestamp::clamped(t + 1),
            }),
            retired: retired.map(|c| match c % 4 {
                0 => RetireReason::Destroyed,
                1 => RetireReason::Decommissioned,
                2 => RetireReason::Lost,
                _ => RetireReason::Stolen,
            }),
            registered: LogIndex::new(registered),
            length: (seed % 1000) as u32,
            held_since: Timestamp::clamped(t - 86_400),
        }
    }

    proptest! {
        #[test]
        fn records_round_trip_and_every_cut_is_refused(
            seed in any::<u64>(),
            pending in any::<bool>(),
            retired in proptest::option::of(0u8..4),
            t in Timestamp::MIN..=Timestamp::MAX,
            registered in any::<u64>(),
        ) {
            let r = record(seed, pending, retired, t, registered);
            let mut b = Vec::new();
            encode_into(&r, &mut b);
            prop_assert_eq!(b.len(), 93 + if pending { 72 } else { 0 } + usize::from(retired.is_some()));
            prop_assert_eq!(decode(&r.id, &b), Ok(r.clone()));
            for cut in 0..b.len() {
                prop_assert!(matches!(decode(&r.id, &b[..cut]), Err(UnitCodecError::Short(_))));
            }
            b.push(0);
            prop_assert_eq!(decode(&r.id, &b), Err(UnitCodecError::Trailing(1)));
        }
    }

    #[test]
    fn unknown_flags_reasons_and_times_are_refused() {
        let r = record(3, false, Some(1), Timestamp::MIN, 0);
        let mut b = Vec::new();
        encode_into(&r, &mut b);
        let mut bad = b.clone();
        bad[0] |= 4;
        assert_eq!(decode(&r.id, &bad), Err(UnitCodecError::Flags(6)));
        let mut bad = b.clone();
        *bad.last_mut().expect("reason byte") = 4;
        assert_eq!(decode(&r.id, &bad), Err(UnitCodecError::Reason(4)));
        let mut bad = b.clone();
        bad[65..73].copy_from_slice(&0i64.to_be_bytes());
        assert!(matches!(
            decode(&r.id, &bad),
            Err(UnitCodecError::Field {
                field: "head time",
                ..
            })
        ));
        let mut bad = b;
        bad[85..93].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(matches!(
            decode(&r.id, &bad),
            Err(UnitCodecError::Field {
                field: "custody time",
                ..
            })
        ));
    }
}
