//! An identifying attribute's value as the search index keeps it: a string, or nothing.
//! Shared by the Terraform and Pulumi indexers.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::index::MAX_INDEXED_TEXT;

/// An identifying attribute's value when it is a string; anything else (numbers, objects,
/// lists nested however deep) is skipped without building it.
pub(crate) struct Identifier<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Identifier<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdentifierVisitor(std::marker::PhantomData))
    }
}

struct IdentifierVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for IdentifierVisitor<'a> {
    type Value = Identifier<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Identifier(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Identifier(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Identifier(Some(Cow::Owned(v))))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Identifier(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Identifier(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Identifier(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Identifier(None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Identifier(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Identifier(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Identifier(None))
    }
}

impl<'a> Identifier<'a> {
    /// A value already read as text.
    pub(crate) fn text(s: &'a str) -> Self {
        Identifier(Some(Cow::Borrowed(s)))
    }

    /// The value as the index keeps it: a non-empty string of at most [`MAX_INDEXED_TEXT`]
    /// bytes without U+0000 (which PostgreSQL cannot store; no real identifier has one).
    pub(crate) fn into_indexed(self) -> Option<String> {
        match self.0 {
            Some(s) if !s.is_empty() && s.len() <= MAX_INDEXED_TEXT && !s.contains('\0') => {
                Some(s.into_owned())
            }
            _ => None,
        }
    }
}
