//! The JCS encoding of [`super::canonical`] produced straight from typed values, without
//! building a `serde_json::Value` first: a serde `Serializer` that writes canonical bytes,
//! buffering only each object's members so it can sort them.
//!
//! It writes exactly what `canonical::to_vec(&serde_json::to_value(x)?)` writes for every
//! value custody serializes (a property test checks this on events, and debug builds
//! cross-check every verification in `verify`). Profiling a chain read showed `to_value`
//! and the `Value` walk at ~23% of verifying a large event.

use serde::ser::{self, Serialize};

use super::canonical::{write_string, CanonicalError, MAX_SAFE_INTEGER};

impl ser::Error for CanonicalError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonicalError::Serialize(msg.to_string())
    }
}

/// Canonical (JCS) bytes of `v`.
pub fn to_canonical<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    v.serialize(Ser { out: &mut out })?;
    Ok(out)
}

struct Ser<'a> {
    out: &'a mut Vec<u8>,
}

fn int(out: &mut Vec<u8>, v: i128) -> Result<(), CanonicalError> {
    if v.unsigned_abs() > u128::from(MAX_SAFE_INTEGER) {
        return Err(CanonicalError::Number(v.to_string()));
    }
    out.extend_from_slice(v.to_string().as_bytes());
    Ok(())
}

/// JCS member order: UTF-16 code units (byte order for ASCII names).
fn member_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// An object being written: members' names and canonical values, sorted at the end.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    members: Vec<(String, Vec<u8>)>,
    /// For maps: the key just serialized, waiting for its value.
    key: Option<String>,
    /// For externally tagged variants: the `{"variant":` already written, to close.
    variant: bool,
}

impl Object<'_> {
    fn member<T: Serialize + ?Sized>(&mut self, name: String, v: &T) -> Result<(), CanonicalError> {
        let mut buf = Vec::new();
        v.serialize(Ser { out: &mut buf })?;
        // A repeated name keeps the last value, as a JSON object built from it would.
        self.members.retain(|(n, _)| *n != name);
        self.members.push((name, buf));
        Ok(())
    }

    fn finish(mut self) -> Result<(), CanonicalError> {
        self.members.sort_by(|a, b| member_order(&a.0, &b.0));
        self.out.push(b'{');
        for (i, (name, value)) in self.members.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(name, self.out);
            self.out.push(b':');
            self.out.extend_from_slice(value);
        }
        self.out.push(b'}');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// An array being written.
struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        v.serialize(Ser { out: self.out })
    }

    fn finish(self) -> Result<(), CanonicalError> {
        self.out.push(b']');
        if self.variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

/// Writes `{"variant":` for an externally tagged variant with content.
fn open_variant(out: &mut Vec<u8>, variant: &str) {
    out.push(b'{');
    write_string(variant, out);
    out.push(b':');
}

impl<'a> ser::Serializer for Ser<'a> {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonicalError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_u8(self, v: u8) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), CanonicalError> {
        int(self.out, v.into())
    }
    fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
        Err(CanonicalError::Number(v.to_string()))
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
        Err(CanonicalError::Number(v.to_string()))
    }
    fn serialize_char(self, v: char) -> Result<(), CanonicalError> {
        write_string(v.encode_utf8(&mut [0u8; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonicalError> {
        write_string(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonicalError> {
        // As serde_json: an array of numbers.
        let mut a = Array {
            out: self.out,
            first: true,
            variant: false,
        };
        a.out.push(b'[');
        for b in v {
            a.element(b)?;
        }
        a.finish()
    }
    fn serialize_none(self) -> Result<(), CanonicalError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), CanonicalError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonicalError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), CanonicalError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), CanonicalError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        open_variant(self.out, variant);
        v.serialize(Ser { out: self.out })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, CanonicalError> {
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            first: true,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Array<'a>, CanonicalError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, CanonicalError> {
        open_variant(self.out, variant);
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            first: true,
            variant: true,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, CanonicalError> {
        Ok(Object {
            out: self.out,
            members: Vec::new(),
            key: None,
            variant: false,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>, CanonicalError> {
        Ok(Object {
            out: self.out,
            members: Vec::with_capacity(len),
            key: None,
            variant: false,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a>, CanonicalError> {
        open_variant(self.out, variant);
        Ok(Object {
            out: self.out,
            members: Vec::with_capacity(len),
            key: None,
            variant: true,
        })
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        self.element(v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        self.element(v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        self.element(v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Array<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        self.element(v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), CanonicalError> {
        // Keys must be strings: serialize, then take the JSON string back.
        let mut buf = Vec::new();
        k.serialize(Ser { out: &mut buf })?;
        let name: String = serde_json::from_slice(&buf)
            .map_err(|_| CanonicalError::Serialize("object keys must be strings".into()))?;
        self.key = Some(name);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), CanonicalError> {
        let name = self
            .key
            .take()
            .ok_or_else(|| CanonicalError::Serialize("map value without a key".into()))?;
        self.member(name, v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        self.member(name.to_owned(), v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        self.member(name.to_owned(), v)
    }
    fn end(self) -> Result<(), CanonicalError> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Serialize;

    use super::to_canonical;
    use crate::core::canonical::{self, tests::arb_json};

    /// What the typed encoder must equal: JCS of the value serde_json builds.
    fn via_value<T: Serialize>(v: &T) -> Vec<u8> {
        canonical::to_vec(&serde_json::to_value(v).expect("serializable")).expect("integers")
    }

    proptest! {
        #[test]
        fn any_json_value_encodes_as_through_a_value(v in arb_json()) {
            prop_assert_eq!(to_canonical(&v).expect("integers only"), via_value(&v));
        }
    }

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        Lot {
            zeta: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            absent: Option<String>,
            present: Option<String>,
            alpha: Vec<i64>,
        },
    }

    #[derive(Serialize)]
    enum External {
        Unit,
        New(u8),
        Tuple(u8, bool),
        Struct { b: u8, a: char },
    }

    #[test]
    fn typed_shapes_encode_as_through_a_value() {
        let t = Tagged::Lot {
            zeta: 7,
            absent: None,
            present: Some("\u{1d11e} \"q\" \u{7}".into()),
            alpha: vec![-(1 << 53) + 1, 0, (1 << 53) - 1],
        };
        assert_eq!(to_canonical(&t).expect("ok"), via_value(&t));
        for e in [
            External::Unit,
            External::New(1),
            External::Tuple(2, true),
            External::Struct { b: 3, a: 'x' },
        ] {
            assert_eq!(to_canonical(&e).expect("ok"), via_value(&e));
        }
        let m: std::collections::HashMap<String, (u8, ())> =
            [("é".to_string(), (1, ())), ("z".to_string(), (2, ()))].into();
        assert_eq!(to_canonical(&m).expect("ok"), via_value(&m));
    }

    #[test]
    fn what_jcs_cannot_hold_is_refused() {
        assert!(to_canonical(&(1u64 << 53)).is_err());
        assert!(to_canonical(&1.5f64).is_err());
        let m: std::collections::BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(to_canonical(&m).is_err(), "non-string keys");
    }
}
