//! Values nested deeper than statehouse takes apart. serde_json stops building a value at 128
//! levels (so that no body can exhaust the stack), while Terraform writes deeper ones without
//! complaint. Such a value is stored and served as sent; where statehouse shows values
//! (outputs, diffs) it shows a note in its place instead of failing.

use serde_json::Value;
use serde_json::value::RawValue;

/// Shown in place of a value too deeply nested to be taken apart.
pub const TOO_DEEP: &str = "(nested more than 128 levels deep: statehouse does not show it; download the state to read it)";

/// The value of `raw` (valid JSON, as every raw value read from a body is), or `None` when it
/// nests too deeply to be built.
pub(crate) fn readable(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// The value of `raw`, or the [`TOO_DEEP`] note in its place.
pub(crate) fn shown(raw: &RawValue) -> Value {
    readable(raw).unwrap_or_else(|| Value::String(TOO_DEEP.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` nested arrays around a string.
    pub(crate) fn nested(levels: usize) -> String {
        format!("{}\"x\"{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn deep_values_get_the_note() -> Result<(), serde_json::Error> {
        let shallow = RawValue::from_string(nested(100))?;
        assert!(readable(&shallow).is_some());
        let deep = RawValue::from_string(nested(200))?;
        assert_eq!(readable(&deep), None);
        assert_eq!(shown(&deep), Value::String(TOO_DEEP.into()));
        Ok(())
    }
}
