//! The names serde derives for a type, read back from the type itself: an enum's variant names
//! and the field names of a variant's payload struct. The job file's keys are these names, so
//! the list of operations and of each operation's keys is never written twice.
//!
//! Written by hand: `serde-aux`'s `serde_introspect` reads a struct's fields the same way
//! (a deserializer that stops at `deserialize_struct`), but not an enum's variants or their
//! payloads, and it would be a dependency for these few lines.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor};
use std::fmt;

/// The variant names of enum `T`, in declaration order (empty if `T` is not an enum).
pub fn variants<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    found(T::deserialize(Probe::Enum))
}

/// The field names of the struct held by variant `index` of enum `T` (empty if it holds none).
pub fn variant_fields<T: for<'de> Deserialize<'de>>(index: u32) -> &'static [&'static str] {
    found(T::deserialize(Probe::Variant(index)))
}

fn found<T>(probe: Result<T, Found>) -> &'static [&'static str] {
    match probe {
        Err(Found(Some(names))) => names,
        _ => &[],
    }
}

/// Ends a probe: the names it was after, or `None` where the type asked for something else.
#[derive(Debug)]
struct Found(Option<&'static [&'static str]>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("names probe")
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Found(None)
    }
}

/// A deserializer that holds no data: it answers with the names the type hands it.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Stop at the enum's variant names.
    Enum,
    /// Enter this variant of the enum and stop at its payload's field names.
    Variant(u32),
    /// Stop at a struct's field names.
    Struct,
}

impl<'de> de::Deserializer<'de> for Probe {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
        Err(Found(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Found> {
        Err(Found(matches!(self, Probe::Struct).then_some(fields)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Found> {
        match self {
            Probe::Enum => Err(Found(Some(variants))),
            Probe::Variant(index) => visitor.visit_enum(Variant(index)),
            Probe::Struct => Err(Found(None)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The variant chosen by index; its payload is probed as a struct.
struct Variant(u32);

impl<'de> EnumAccess<'de> for Variant {
    type Error = Found;
    type Variant = Payload;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Payload), Found> {
        Ok((seed.deserialize(self.0.into_deserializer())?, Payload))
    }
}

struct Payload;

impl<'de> VariantAccess<'de> for Payload {
    type Error = Found;

    fn unit_variant(self) -> Result<(), Found> {
        Err(Found(None))
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Found> {
        seed.deserialize(Probe::Struct)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Found> {
        Err(Found(None))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Found> {
        Err(Found(Some(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Shape {
        Circle(Circle),
        UnitSquare,
        Rect { width: f64, height: f64 },
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Circle {
        circle: f64,
        #[serde(default)]
        filled: bool,
    }

    #[test]
    fn reads_variants_and_payload_fields() {
        assert_eq!(variants::<Shape>(), ["circle", "unit_square", "rect"]);
        assert_eq!(variant_fields::<Shape>(0), ["circle", "filled"]);
        assert!(variant_fields::<Shape>(1).is_empty());
        assert_eq!(variant_fields::<Shape>(2), ["width", "height"]);
        assert!(variants::<Circle>().is_empty());
    }
}
