//! Unit identifiers: how users address a serialized item.
//!
//! Two spellings, both URNs so they never collide:
//! - `urn:custody:unit:<manufacturer party id>:<product code>:<serial>` for makers that do
//!   not use GS1; product code and serial are 1-64 of `A-Z a-z 0-9 . _ -`.
//! - `urn:epc:id:sgtin:<company prefix>.<indicator+item ref>.<serial>` (GS1 EPC Tag Data
//!   Standard pure identity URI): prefix of 6-12 digits, prefix plus item reference 13
//!   digits, serial 1-20 characters of GS1 AI-82 in URI form (`%xx` escapes allowed).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::FieldError;
use super::ids::PartyId;

const CUSTODY_PREFIX: &str = "urn:custody:unit:";
const SGTIN_PREFIX: &str = "urn:epc:id:sgtin:";

/// Shared text (`Arc<str>`): a unit id is copied into many records and index entries
/// (the audit's replay holds each several times), and a copy is then a reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnitId(Arc<str>);

/// The parts of a unit id, as far as the rules need them.
#[derive(Debug, PartialEq, Eq)]
pub enum UnitKind<'a> {
    /// Maker-assigned product code and serial under a manufacturer's party id.
    Custody {
        manufacturer: PartyId,
        product: &'a str,
        serial: &'a str,
    },
    /// GS1 SGTIN; the company prefix must be one the manufacturer declared.
    Sgtin {
        company_prefix: &'a str,
        item_ref: &'a str,
        serial: &'a str,
    },
}

fn invalid(value: &str, rule: &'static str) -> FieldError {
    FieldError::Invalid {
        kind: "unit",
        value: value.chars().take(120).collect(),
        rule,
    }
}

fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// GS1 AI-82 characters allowed literally in an EPC URI serial.
fn is_sgtin_serial(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut chars = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let esc = b.get(i + 1..i + 3);
            if !matches!(
                esc,
                Some(b"22" | b"25" | b"26" | b"2F" | b"3C" | b"3E" | b"3F")
            ) {
                return false;
            }
            i += 3;
        } else if b[i].is_ascii_alphanumeric() || b"!'()*+,-.:;=_".contains(&b[i]) {
            i += 1;
        } else {
            return false;
        }
        chars += 1;
    }
    (1..=20).contains(&chars)
}

impl UnitId {
    /// A non-GS1 unit id under a manufacturer.
    pub fn custody(
        manufacturer: &PartyId,
        product: &str,
        serial: &str,
    ) -> Result<Self, FieldError> {
        Self::parse(&format!(
            "{CUSTODY_PREFIX}{manufacturer}:{product}:{serial}"
        ))
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let id = Self(Arc::from(s));
        id.kind()?;
        Ok(id)
    }

    pub fn kind(&self) -> Result<UnitKind<'_>, FieldError> {
        let s = &*self.0;
        if let Some(rest) = s.strip_prefix(CUSTODY_PREFIX) {
            let rule = "urn:custody:unit:<party id>:<product>:<serial>, product and serial 1-64 of A-Z a-z 0-9 . _ -";
            let mut parts = rest.split(':');
            let (Some(m), Some(p), Some(sn), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(s, rule));
            };
            let manufacturer = PartyId::parse(m).map_err(|_| invalid(s, rule))?;
            if !is_code(p) || !is_code(sn) {
                return Err(invalid(s, rule));
            }
            Ok(UnitKind::Custody {
                manufacturer,
                product: p,
                serial: sn,
            })
        } else if let Some(rest) = s.strip_prefix(SGTIN_PREFIX) {
            let rule = "urn:epc:id:sgtin:<company prefix>.<item ref>.<serial> (6-12 digit prefix, 13 digits together, serial of GS1 AI-82 URI characters)";
            let mut parts = rest.splitn(3, '.');
            let (Some(cp), Some(ir), Some(sn)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(invalid(s, rule));
            };
            let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
            if !(6..=12).contains(&cp.len())
                || !digits(cp)
                || !digits(ir)
                || cp.len() + ir.len() != 13
                || !is_sgtin_serial(sn)
            {
                return Err(invalid(s, rule));
            }
            Ok(UnitKind::Sgtin {
                company_prefix: cp,
                item_ref: ir,
                serial: sn,
            })
        } else {
            Err(invalid(
                s,
                "a unit URN starting urn:custody:unit: or urn:epc:id:sgtin:",
            ))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for UnitId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<UnitId> for String {
    fn from(u: UnitId) -> String {
        u.0.to_string()
    }
}
impl FromStr for UnitId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgtin_shapes() {
        assert!(UnitId::parse("urn:epc:id:sgtin:0614141.812345.6789").is_ok());
        assert!(UnitId::parse("urn:epc:id:sgtin:0614141.812345.A%2FB").is_ok());
        assert!(
            UnitId::parse("urn:epc:id:sgtin:0614141.81234.6789").is_err(),
            "12 digits"
        );
        assert!(UnitId::parse("urn:epc:id:sgtin:0614141.812345.a b").is_err());
        assert!(UnitId::parse("urn:epc:id:sgtin:0614141.812345.%41").is_err());
        assert!(UnitId::parse(&format!(
            "urn:epc:id:sgtin:0614141.812345.{}",
            "1".repeat(21)
        ))
        .is_err());
    }

    #[test]
    fn custody_shapes() {
        let p = PartyId::parse(&"ab".repeat(16)).expect("valid");
        let u = UnitId::custody(&p, "SEQ-3500", "SN.0001").expect("valid");
        assert!(matches!(
            u.kind(),
            Ok(UnitKind::Custody {
                product: "SEQ-3500",
                ..
            })
        ));
        assert!(UnitId::custody(&p, "SEQ 3500", "1").is_err());
        assert!(UnitId::custody(&p, "SEQ", "1:2").is_err());
        assert!(UnitId::parse("SN0001").is_err());
    }
}
