//! How an [`ErrorDetail`] is written: `code`, then `message`, then the
//! fields of its kind.
//!
//! A derived `Serialize` with `#[serde(flatten)]` writes the flattened kind
//! after `message` (or before it, fields and all), but API v1 has always
//! written `code` first and `message` second. Clients should not depend on
//! key order, yet the bytes of an error must not change because the type
//! behind them did. So the kind is serialized exactly as serde derives it
//! (an internally tagged enum asks for a struct and writes its tag as the
//! first field) through a serializer that passes every field on and adds
//! `message` right after the tag. Reading needs nothing of the sort: the
//! derived `Deserialize` takes keys in any order.

use serde::ser::{Impossible, Serialize, SerializeStruct, Serializer};

use super::ErrorDetail;

/// The key of the tag, as `#[serde(tag = "code")]` names it.
const TAG: &str = "code";

impl Serialize for ErrorDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.kind.serialize(MessageAfterTag {
            inner: serializer,
            message: &self.message,
        })
    }
}

/// Serializes an error kind as a struct with `message` after its tag.
struct MessageAfterTag<'a, S> {
    inner: S,
    message: &'a str,
}

/// The fields of that struct, passed on to the real serializer.
struct Fields<'a, S> {
    inner: S,
    message: &'a str,
}

impl<S: SerializeStruct> SerializeStruct for Fields<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.inner.serialize_field(key, value)?;
        if key == TAG {
            self.inner.serialize_field("message", self.message)?;
        }
        Ok(())
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// An error kind is always a struct to serde (every variant is a unit or a
/// struct variant of an internally tagged enum); anything else is a bug
/// that the round-trip tests would catch, answered with an error rather
/// than a panic.
fn not_a_struct<E: serde::ser::Error>() -> E {
    E::custom("an error kind serializes as a struct")
}

/// The serializer methods an error kind never calls.
macro_rules! not_a_struct {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, S::Error> {
            Err(not_a_struct())
        })*
    };
}

impl<'a, S: Serializer> Serializer for MessageAfterTag<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeStruct = Fields<'a, S::SerializeStruct>;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(Fields {
            inner: self.inner.serialize_struct(name, len + 1)?,
            message: self.message,
        })
    }

    not_a_struct! {
        serialize_bool(bool) -> S::Ok;
        serialize_i8(i8) -> S::Ok;
        serialize_i16(i16) -> S::Ok;
        serialize_i32(i32) -> S::Ok;
        serialize_i64(i64) -> S::Ok;
        serialize_u8(u8) -> S::Ok;
        serialize_u16(u16) -> S::Ok;
        serialize_u32(u32) -> S::Ok;
        serialize_u64(u64) -> S::Ok;
        serialize_f32(f32) -> S::Ok;
        serialize_f64(f64) -> S::Ok;
        serialize_char(char) -> S::Ok;
        serialize_str(&str) -> S::Ok;
        serialize_bytes(&[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(&'static str) -> S::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> S::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(not_a_struct())
    }
}
