//! RFC 8785 JSON Canonicalization Scheme (JCS), restricted to the values custody
//! events can hold: objects, arrays, strings, booleans, null and integers of magnitude
//! below 2^53. Floats are refused rather than canonicalized (no custody field is one).
//!
//! - Object members are sorted by their names compared as UTF-16 code unit sequences
//!   (RFC 8785 §3.2.3); no whitespace anywhere.
//! - Strings are written as ECMAScript `JSON.stringify` writes them (§3.2.2.2): `"` and `\`
//!   escaped, U+0008/9/A/C/D as `\b \t \n \f \r`, other controls below U+0020 as `\u00xx`
//!   with lower-case hex, everything else as literal UTF-8.
//! - Integers in plain decimal (§3.2.2.3 for integral values below 2^53).

use serde_json::Value;

/// Largest integer magnitude JCS represents exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("number {0} is not an integer below 2^53; custody JSON has integers only")]
    Number(String),
}

/// Canonical bytes of a JSON value.
pub fn to_vec(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(v, &mut out)?;
    Ok(out)
}

/// Appends the canonical bytes of `v` to `out`.
pub fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let ok = n
                .as_u64()
                .filter(|x| *x <= MAX_SAFE_INTEGER)
                .map(|x| x.to_string())
                .or_else(|| {
                    n.as_i64()
                        .filter(|x| x.unsigned_abs() <= MAX_SAFE_INTEGER)
                        .map(|x| x.to_string())
                });
            match ok {
                Some(s) => out.extend_from_slice(s.as_bytes()),
                None => return Err(CanonicalError::Number(n.to_string())),
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // Byte order is UTF-16 order for ASCII names (every custody field name).
            members.sort_by(|a, b| {
                if a.0.is_ascii() && b.0.is_ascii() {
                    a.0.cmp(b.0)
                } else {
                    a.0.encode_utf16().cmp(b.0.encode_utf16())
                }
            });
            out.push(b'{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(val, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    // Runs of bytes that need no escape are copied whole. Only ASCII bytes are ever
    // escaped, and a UTF-8 multi-byte sequence holds no ASCII byte, so cutting the string
    // at an escaped byte never splits a character.
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[run..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                run = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escaped);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_vec(v).expect("integers only")).expect("utf-8")
    }

    /// The escaping rules one character at a time, as RFC 8785 §3.2.2.2 states them.
    fn reference(s: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\r' => out.extend_from_slice(b"\\r"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
                }
                c => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
            }
        }
        out.push(b'"');
        out
    }

    proptest! {
        #[test]
        fn strings_escape_as_the_reference_does(s in "(\\PC|[\\x00-\\x1f\"\\\\])*", t in any::<String>()) {
            for x in [&s, &t] {
                let mut out = Vec::new();
                write_string(x, &mut out);
                prop_assert_eq!(out, reference(x));
            }
        }
    }

    #[test]
    fn rfc8785_key_order_is_utf16() {
        // RFC 8785 §3.2.3 example keys: sorted by UTF-16 code units, so U+1D11E (a surrogate
        // pair starting 0xD834) sorts before U+FB33 but after U+00FC.
        let v = json!({"\u{20ac}": 1, "\r": 2, "\u{fb33}": 3, "1": 4, "\u{1d11e}": 5, "\u{80}": 6, "\u{fc}": 7, "\u{dc}": 8});
        assert_eq!(
            canon(&v),
            "{\"\\r\":2,\"1\":4,\"\u{80}\":6,\"\u{dc}\":8,\"\u{fc}\":7,\"\u{20ac}\":1,\"\u{1d11e}\":5,\"\u{fb33}\":3}"
        );
    }

    #[test]
    fn string_escapes_match_ecmascript() {
        let v = json!("\u{0}\u{1f}\"\\/\u{7f}\u{2028}é\t");
        assert_eq!(canon(&v), "\"\\u0000\\u001f\\\"\\\\/\u{7f}\u{2028}é\\t\"");
    }

    #[test]
    fn floats_are_refused() {
        assert!(to_vec(&json!(1.5)).is_err());
        assert!(to_vec(&json!(9_007_199_254_740_992u64)).is_err());
        assert_eq!(
            canon(&json!(-9_007_199_254_740_991i64)),
            "-9007199254740991"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(MAX_SAFE_INTEGER as i64)..=(MAX_SAFE_INTEGER as i64)).prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Canonical output parses back to the same value and is a fixed point.
        #[test]
        fn canonical_round_trip(v in arb_json()) {
            let bytes = to_vec(&v).expect("integers only");
            let back: Value = serde_json::from_slice(&bytes).expect("canonical output is JSON");
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(to_vec(&back).expect("integers only"), bytes);
        }
    }
}
