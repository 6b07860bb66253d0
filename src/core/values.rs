//! Validated value types: countries, regions, timestamps and bounded text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::FieldError;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted.
const ISO_3166_1: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

fn invalid(kind: &'static str, value: &str, rule: &'static str) -> FieldError {
    FieldError::Invalid {
        kind,
        value: value.chars().take(80).collect(),
        rule,
    }
}

/// An assigned ISO 3166-1 alpha-2 country code, upper case (`CN`, `US`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let b = s.as_bytes();
        if b.len() == 2
            && b.iter().all(u8::is_ascii_uppercase)
            && ISO_3166_1.split(' ').any(|c| c == s)
        {
            Ok(Self([b[0], b[1]]))
        } else {
            Err(invalid(
                "country",
                s,
                "an assigned ISO 3166-1 alpha-2 code in upper case",
            ))
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("invariant: CountryCode holds two ASCII letters")
    }
}
impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl TryFrom<String> for CountryCode {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_owned()
    }
}
impl FromStr for CountryCode {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::parse(s)
    }
}

/// An ISO 3166-2 subdivision code shape: `CC-XXX` (country, hyphen, 1-3 upper-case
/// letters or digits), e.g. `CN-XJ`. Whether it belongs to the party's country is a
/// profile rule.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let rule =
            "ISO 3166-2 code: CC-XXX with an assigned country and 1-3 upper-case letters or digits";
        let (cc, sub) = s
            .split_once('-')
            .ok_or_else(|| invalid("region", s, rule))?;
        CountryCode::parse(cc).map_err(|_| invalid("region", s, rule))?;
        if (1..=3).contains(&sub.len())
            && sub
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid("region", s, rule))
        }
    }
    #[must_use]
    pub fn country(&self) -> &str {
        &self.0[..2]
    }
}
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Region {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

/// A UTC instant with one-second precision. On the wire exactly `YYYY-MM-DDTHH:MM:SSZ`
/// (RFC 3339, no fraction, `Z` offset); any other spelling is refused so that the
/// canonical bytes of an event are unique.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(i64);

impl Timestamp {
    /// Earliest accepted instant: 2000-01-01T00:00:00Z.
    pub const MIN: i64 = 946_684_800;
    /// Latest accepted instant: 9999-12-31T23:59:59Z.
    pub const MAX: i64 = 253_402_300_799;

    pub fn from_unix(secs: i64) -> Result<Self, FieldError> {
        if (Self::MIN..=Self::MAX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(invalid(
                "timestamp",
                &secs.to_string(),
                "between 2000-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            ))
        }
    }
    /// The nearest representable instant to `secs` (for clocks, which the core never reads).
    #[must_use]
    pub fn clamped(secs: i64) -> Self {
        Self(secs.clamp(Self::MIN, Self::MAX))
    }
    #[must_use]
    pub const fn unix(self) -> i64 {
        self.0
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let rule = "RFC 3339 UTC with seconds and no fraction: YYYY-MM-DDTHH:MM:SSZ";
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| invalid("timestamp", s, rule))?;
        let ts = Self::from_unix(t.unix_timestamp())?;
        if ts.to_string() != s {
            return Err(invalid("timestamp", s, rule));
        }
        Ok(ts)
    }
    /// Whole days from `self` to `later` (0 if `later` is earlier).
    #[must_use]
    pub fn whole_days_until(self, later: Self) -> u32 {
        u32::try_from((later.0 - self.0).max(0) / 86_400).unwrap_or(u32::MAX)
    }
    #[must_use]
    pub fn saturating_add(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs).clamp(Self::MIN, Self::MAX))
    }
}
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = OffsetDateTime::from_unix_timestamp(self.0)
            .expect("invariant: Timestamp is within the representable range");
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}
impl TryFrom<String> for Timestamp {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}
impl FromStr for Timestamp {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::parse(s)
    }
}

/// Free text with a length limit and no control characters other than none at all:
/// 1 to `MAX_TEXT_CHARS` Unicode scalar values, no C0/C1 controls, not blank.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

impl Text {
    pub const MAX_TEXT_CHARS: usize = 1024;
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let n = s.chars().count();
        if n == 0
            || n > Self::MAX_TEXT_CHARS
            || s.trim().is_empty()
            || s.chars().any(char::is_control)
        {
            return Err(invalid(
                "text",
                s,
                "1-1024 characters, not blank, no control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Text {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}
impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}
impl FromStr for Text {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_assigned_codes_only() {
        assert!(CountryCode::parse("CN").is_ok());
        assert!(CountryCode::parse("cn").is_err());
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("CHN").is_err());
    }

    #[test]
    fn regions() {
        assert_eq!(
            Region::parse("CN-XJ").map(|r| r.country().to_owned()).ok(),
            Some("CN".into())
        );
        assert!(Region::parse("CN").is_err());
        assert!(Region::parse("XX-AB").is_err());
    }

    #[test]
    fn timestamps_have_one_spelling() {
        let t = Timestamp::parse("2024-03-01T12:00:00Z").expect("valid");
        assert_eq!(t.to_string(), "2024-03-01T12:00:00Z");
        assert!(Timestamp::parse("2024-03-01T12:00:00.5Z").is_err());
        assert!(Timestamp::parse("2024-03-01T12:00:00+00:00").is_err());
        assert!(Timestamp::parse("2024-03-01t12:00:00z").is_err());
        assert!(Timestamp::parse("1999-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn text_rules() {
        assert!(Text::parse("ok").is_ok());
        assert!(Text::parse("  ").is_err());
        assert!(Text::parse("a\nb").is_err());
        assert!(Text::parse(&"x".repeat(1025)).is_err());
    }
}
