//! serde adapters that move `Vec<u8>` fields as one byte string instead of a
//! sequence of `u8`s.
//!
//! In postcard both forms have the same bytes — a varint length, then the
//! bytes (`serialize_bytes` and a `u8` sequence are identical on the wire, a
//! test below proves it) — so these adapters change speed, not the format:
//! a 16 MiB value is one copy instead of 16 Mi visitor calls. postcard checks
//! that the announced length is present before it hands the slice out, so the
//! copy is sized by bytes actually received, never by an unchecked length.
//!
//! Self-describing formats (serde_json) hand a sequence to the visitor
//! instead; [`ByteBuf`] accepts that too.

use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Preallocation cap for a byte sequence from a self-describing format,
/// whose size hint is not checked against the input.
const SEQ_PREALLOC_BYTES_MAX: usize = 4096;

/// Borrowed bytes that serialize through `serialize_bytes`.
pub(crate) struct BytesRef<'a>(pub(crate) &'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Owned bytes that deserialize from a byte string (or a `u8` sequence).
pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_byte_buf(ByteBufVisitor)
            .map(ByteBuf)
    }
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let hint = seq.size_hint().unwrap_or(0).min(SEQ_PREALLOC_BYTES_MAX);
        let mut bytes = Vec::with_capacity(hint);
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

/// `#[serde(with = "crate::bytes::vec")]` for a `Vec<u8>` field.
pub(crate) mod vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        ByteBuf::deserialize(d).map(|buf| buf.0)
    }
}

/// `#[serde(with = "crate::bytes::option")]` for an `Option<Vec<u8>>` field.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        bytes.as_deref().map(BytesRef).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<ByteBuf>::deserialize(d).map(|buf| buf.map(|buf| buf.0))
    }
}

/// `#[serde(with = "crate::bytes::option_seq")]` for an
/// `Option<(u64, Vec<u8>)>` field.
pub(crate) mod option_seq {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        found: &Option<(u64, Vec<u8>)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        found
            .as_ref()
            .map(|(seq, bytes)| (*seq, BytesRef(bytes)))
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(u64, Vec<u8>)>, D::Error> {
        Option::<(u64, ByteBuf)>::deserialize(d).map(|found| found.map(|(seq, buf)| (seq, buf.0)))
    }
}

/// `#[serde(with = "crate::bytes::list")]` for a `Vec<Vec<u8>>` field.
pub(crate) mod list {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|bytes| BytesRef(bytes)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        // serde caps the preallocation of a sequence by its own size hint
        // ("cautious" capacity), so a lying length costs at most 1 MiB here.
        Vec::<ByteBuf>::deserialize(d).map(|list| list.into_iter().map(|buf| buf.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Adapted {
        #[serde(with = "crate::bytes::vec")]
        one: Vec<u8>,
        #[serde(with = "option")]
        maybe: Option<Vec<u8>>,
        #[serde(with = "option_seq")]
        found: Option<(u64, Vec<u8>)>,
        #[serde(with = "list")]
        many: Vec<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Plain {
        one: Vec<u8>,
        maybe: Option<Vec<u8>>,
        found: Option<(u64, Vec<u8>)>,
        many: Vec<Vec<u8>>,
    }

    #[test]
    fn adapters_keep_the_plain_postcard_bytes() {
        let long: Vec<u8> = (0..=255).collect();
        let adapted = Adapted {
            one: long.clone(),
            maybe: Some(vec![1, 2]),
            found: Some((300, vec![9; 130])),
            many: vec![vec![], vec![7], long.clone()],
        };
        let plain = Plain {
            one: long.clone(),
            maybe: Some(vec![1, 2]),
            found: Some((300, vec![9; 130])),
            many: vec![vec![], vec![7], long],
        };
        let adapted_bytes = postcard::to_allocvec(&adapted).unwrap();
        let plain_bytes = postcard::to_allocvec(&plain).unwrap();
        assert_eq!(adapted_bytes, plain_bytes);
        let back: Adapted = postcard::from_bytes(&plain_bytes).unwrap();
        assert_eq!(back, adapted);
    }

    #[test]
    fn adapters_keep_none_and_empty() {
        let adapted = Adapted {
            one: vec![],
            maybe: None,
            found: None,
            many: vec![],
        };
        let bytes = postcard::to_allocvec(&adapted).unwrap();
        assert_eq!(bytes, [0, 0, 0, 0]);
        let back: Adapted = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, adapted);
    }

    #[test]
    fn a_lying_length_is_an_error_not_an_allocation() {
        // Announces u32::MAX bytes, carries two.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2];
        let result: Result<ByteBuf, _> = postcard::from_bytes(&bytes);
        assert_eq!(
            result.err(),
            Some(postcard::Error::DeserializeUnexpectedEnd)
        );
    }
}
