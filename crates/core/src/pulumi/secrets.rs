//! Secret values in a checkpoint. Pulumi writes a secret as an object
//! `{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "…"}`;
//! statehouse never shows, compares by value or indexes what such an object holds — only that
//! a secret is there, as [`SECRET_MASK`]. (It could not decrypt it anyway: the key belongs to
//! the stack's secrets provider.)

use serde_json::Value;

/// The key that marks a special value (secret, asset, archive, resource reference).
pub const SIG_KEY: &str = "4dabf18193072939515e22adb298388d";
/// The signature of a secret.
pub const SECRET_SIG: &str = "1b47061264138c4ac30d75fd1eb44270";
/// Special values that are not secrets and are shown as written: assets, archives,
/// resource references.
const SHOWN_SIGS: [&str; 3] = [
    "c44067f5952c0a294b673a41bacd8c17",
    "0def7320c3a5731c473e5ecbe6d01bc7",
    "5cf8f73096256a8f31e491e813e4eb8e",
];

/// Shown in place of a secret value.
pub const SECRET_MASK: &str = "(secret)";

/// Whether `value` is a secret. Any special value that is not known to be harmless counts as
/// one, so an unknown or malformed signature hides more, never less.
pub fn is_secret(value: &Value) -> bool {
    let Some(sig) = value.as_object().and_then(|o| o.get(SIG_KEY)) else {
        return false;
    };
    !sig.as_str().is_some_and(|s| SHOWN_SIGS.contains(&s))
}

/// `value` with every secret in it (itself included) replaced by [`SECRET_MASK`], and
/// whether there was one.
pub fn masked(value: Value) -> (Value, bool) {
    let mut value = value;
    let found = mask_in_place(&mut value);
    (value, found)
}

fn mask_in_place(value: &mut Value) -> bool {
    if is_secret(value) {
        *value = Value::String(SECRET_MASK.into());
        return true;
    }
    // Every element is visited (no short-circuit): each secret in it must be masked.
    let mut found = false;
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| found |= mask_in_place(v)),
        Value::Array(items) => items.iter_mut().for_each(|v| found |= mask_in_place(v)),
        _ => {}
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_are() {
        let secret = json!({SIG_KEY: SECRET_SIG, "ciphertext": "v1:abc"});
        assert!(is_secret(&secret));
        let (shown, found) = masked(json!({"a": [1, secret.clone()], "b": {"c": secret}}));
        assert!(found);
        assert_eq!(shown, json!({"a": [1, "(secret)"], "b": {"c": "(secret)"}}));
        assert!(!shown.to_string().contains("v1:abc"));
    }

    #[test]
    fn unknown_signatures_count_as_secrets_and_assets_do_not() {
        assert!(is_secret(&json!({SIG_KEY: "something-new", "x": 1})));
        assert!(is_secret(&json!({SIG_KEY: 7})));
        let asset = json!({SIG_KEY: "c44067f5952c0a294b673a41bacd8c17", "path": "index.ts"});
        assert_eq!(masked(asset.clone()), (asset, false));
        assert_eq!(masked(json!("plain")), (json!("plain"), false));
    }
}
