//! Serde helpers that make request parsing match JSON Schema exactly.
//!
//! JSON Schema's `integer` accepts `124.0` (a number with a zero fraction is an integer), so
//! integer fields accept integral floats; and an optional field that is not nullable in the
//! contract must be absent rather than `null`, so optional fields reject an explicit `null`.

pub mod lenient {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct IntVisitor;

    impl Visitor<'_> for IntVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("must be a non-negative integer"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0 {
                Ok(v as u64)
            } else {
                Err(E::custom("must be a non-negative integer"))
            }
        }
    }

    /// A non-negative integer, also written as an integral float.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(IntVisitor)
    }

    /// An optional integer that, when present, is not `null`.
    pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        int(d).map(Some)
    }

    /// An optional value that, when present, is not `null`.
    pub fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    struct UniqueMap;

    impl<'de> Visitor<'de> for UniqueMap {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    // serde_json keeps the last of duplicate keys; JSON leaves it undefined,
                    // and a signed or hashed body must mean one thing.
                    return Err(de::Error::custom(format!("duplicate key {k:?}")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }

    /// An optional object of strings that, when present, is not `null` and has no key twice.
    pub fn unique_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, D::Error> {
        d.deserialize_map(UniqueMap).map(Some)
    }
}
