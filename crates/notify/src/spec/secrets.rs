//! A notifier's secrets kept apart from the rest: which fields hold secrets, splitting them off to
//! be stored encrypted and joining them back, the redacted view, and which changes would send
//! them elsewhere.

use serde_json::{Map, Value};

use super::NotifierSpec;
use crate::error::NotifyError;
use crate::secret::{REDACTED, scrub, url_hint};

/// The top-level fields of each kind that hold secrets.
fn secret_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "email" => &["password"],
        "slack" | "discord" | "teams" | "mattermost" => &["webhook_url"],
        "telegram" => &["bot_token"],
        "ntfy" => &["topic", "access_token", "password"],
        "webhook" => &["url", "headers"],
        _ => return None,
    })
}

/// The fields of each kind that say where its secrets are sent (a secret URL is one of them
/// itself): changing one must come with the secrets again, or a workspace admin could send the
/// stored ones to a server of their own.
fn destination_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "email" => &[
            "host",
            "port",
            "security",
            "ca_certificate_pem",
            "accept_invalid_certs",
        ],
        "slack" | "discord" | "teams" | "mattermost" => &["webhook_url"],
        "telegram" => &["api_base", "chat_id"],
        "ntfy" => &["server"],
        "webhook" => &["url"],
        _ => &[],
    }
}

const KINDS: &str = "email, slack, discord, telegram, teams, mattermost, ntfy, webhook";

impl NotifierSpec {
    /// The fields saying where secrets go that differ between `self` and `changed` (all of them
    /// when the kind differs).
    pub fn moved_fields(&self, changed: &NotifierSpec) -> Vec<&'static str> {
        let fields = destination_fields(self.kind());
        if self.kind() != changed.kind() {
            return fields.to_vec();
        }
        let (old, new) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(changed).unwrap_or_default(),
        );
        fields
            .iter()
            .copied()
            .filter(|field| old.get(field) != new.get(field))
            .collect()
    }

    /// Splits the settings into what may be stored and shown as is (`kind` included) and the
    /// secret fields only, to be stored encrypted. [`NotifierSpec::from_parts`] joins them.
    pub fn split_secrets(&self) -> (Value, Value) {
        let mut public = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // Cannot happen: every field serializes, and every map key is a string.
            _ => Map::new(),
        };
        let mut secret = Map::new();
        for field in secret_fields(self.kind()).unwrap_or_default() {
            if let Some(value) = public.remove(*field) {
                secret.insert((*field).to_owned(), value);
            }
        }
        (Value::Object(public), Value::Object(secret))
    }

    /// Joins what [`NotifierSpec::split_secrets`] split. Does not [`validate`](Self::validate):
    /// stored settings stay loadable when the rules get stricter.
    pub fn from_parts(public: &Value, secret: &Value) -> Result<NotifierSpec, NotifyError> {
        let unreadable = |why: String| {
            NotifyError::Invalid(format!("stored notifier settings are unreadable: {why}"))
        };
        let Value::Object(public) = public else {
            return Err(unreadable(
                "the public part is not a JSON object".to_owned(),
            ));
        };
        let empty = Map::new();
        let secret = match secret {
            Value::Object(secret) => secret,
            Value::Null => &empty,
            _ => {
                return Err(unreadable(
                    "the secret part is not a JSON object".to_owned(),
                ));
            }
        };
        let kind = public.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(allowed) = secret_fields(kind) else {
            return Err(unreadable(format!(
                "unknown kind {kind:?}; expected one of {KINDS}"
            )));
        };
        let mut joined = public.clone();
        for (field, value) in secret {
            if !allowed.contains(&field.as_str()) {
                return Err(unreadable(format!(
                    "the secret part has a field {field:?}, which is not a secret of {kind}"
                )));
            }
            if joined.insert(field.clone(), value.clone()).is_some() {
                return Err(unreadable(format!(
                    "field {field:?} is in both the public and the secret part"
                )));
            }
        }
        let secrets = secret_strings(secret);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        serde_json::from_value(Value::Object(joined))
            .map_err(|e| unreadable(scrub(&e.to_string(), &secrets)))
    }

    /// The settings as JSON safe to show (e.g. from an API): secrets replaced by `********`,
    /// secret URLs by their scheme and host (`https://hooks.slack.com/…`), header values hidden
    /// but names kept, a Telegram token by its bot id (`123456:********`).
    pub fn redacted(&self) -> Value {
        let (mut public, secret) = self.split_secrets();
        let (Value::Object(public_map), Value::Object(secret)) = (&mut public, secret) else {
            return public;
        };
        for (field, value) in secret {
            let shown = match (field.as_str(), value) {
                ("webhook_url" | "url", Value::String(url)) => Value::String(url_hint(&url)),
                ("bot_token", Value::String(token)) => Value::String(match token.split_once(':') {
                    Some((bot_id, _)) => format!("{bot_id}:{REDACTED}"),
                    None => REDACTED.to_owned(),
                }),
                ("headers", Value::Object(headers)) => Value::Object(
                    headers
                        .into_iter()
                        .map(|(name, _)| (name, Value::String(REDACTED.to_owned())))
                        .collect(),
                ),
                _ => Value::String(REDACTED.to_owned()),
            };
            public_map.insert(field, shown);
        }
        public
    }
}

fn secret_strings(secret: &Map<String, Value>) -> Vec<String> {
    let mut strings = Vec::new();
    for value in secret.values() {
        match value {
            Value::String(text) => strings.push(text.clone()),
            Value::Object(map) => strings.extend(secret_strings(map)),
            _ => {}
        }
    }
    strings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::secret::Secret;
    use crate::spec::samples::{SECRETS, assert_no_secret, every_kind};
    use crate::spec::{EmailSpec, SlackSpec, TelegramSpec};

    #[test]
    fn split_and_join_round_trip_for_every_kind() {
        for spec in every_kind() {
            let (public, secret) = spec.split_secrets();
            assert_eq!(public["kind"], spec.kind());
            assert_no_secret(&public.to_string());
            let secret_fields = secret_fields(spec.kind()).unwrap();
            let secret_map = secret.as_object().unwrap();
            assert!(!secret_map.is_empty(), "{} has secrets", spec.kind());
            assert!(
                secret_map
                    .keys()
                    .all(|k| secret_fields.contains(&k.as_str()))
            );
            assert_eq!(NotifierSpec::from_parts(&public, &secret).unwrap(), spec);
            // Storage round trip: both parts as text and back.
            let public: Value = serde_json::from_str(&public.to_string()).unwrap();
            let secret: Value = serde_json::from_str(&secret.to_string()).unwrap();
            assert_eq!(NotifierSpec::from_parts(&public, &secret).unwrap(), spec);
        }
    }

    #[test]
    fn from_parts_refuses_mixed_up_parts_without_repeating_secrets() {
        let spec = NotifierSpec::Slack(SlackSpec {
            webhook_url: Secret::new(SECRETS[1]),
        });
        let (public, secret) = spec.split_secrets();

        let missing = NotifierSpec::from_parts(&public, &Value::Null).unwrap_err();
        assert!(missing.to_string().contains("webhook_url"), "{missing}");

        let mut smuggled = secret.clone();
        smuggled["channel"] = json!("x");
        let err = NotifierSpec::from_parts(&public, &smuggled).unwrap_err();
        assert!(err.to_string().contains("\"channel\""), "{err}");

        let err = NotifierSpec::from_parts(&secret, &secret).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");

        let mut both = public.clone();
        both["webhook_url"] = json!("https://elsewhere.example.com/");
        let err = NotifierSpec::from_parts(&both, &secret).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");

        // A secret of the wrong type: serde's message would quote it.
        let telegram = json!({"kind": "telegram", "chat_id": "@x"});
        let err =
            NotifierSpec::from_parts(&telegram, &json!({"bot_token": ["123456:tg-secret-token"]}))
                .unwrap_err();
        assert!(matches!(err, NotifyError::Invalid(_)));
        assert_no_secret(&err.to_string());
    }

    #[test]
    fn redacted_view_and_debug_show_no_secret() {
        for spec in every_kind() {
            let redacted = spec.redacted();
            assert_no_secret(&redacted.to_string());
            assert_no_secret(&format!("{spec:?}"));
            assert_eq!(redacted["kind"], spec.kind());
        }
        let kinds = every_kind();
        assert_eq!(
            kinds[1].redacted(),
            json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/…"})
        );
        assert_eq!(kinds[3].redacted()["bot_token"], "123456:********");
        assert_eq!(kinds[3].redacted()["chat_id"], "-100200");
        assert_eq!(kinds[0].redacted()["password"], "********");
        assert_eq!(kinds[0].redacted()["username"], "alice");
        assert_eq!(
            kinds[8].redacted()["headers"],
            json!({"Authorization": "********"})
        );
        assert_eq!(kinds[8].redacted()["url"], "https://receiver.example.com/…");
        assert_eq!(kinds[6].redacted()["topic"], "********");
    }

    #[test]
    fn moved_fields_are_those_saying_where_secrets_go() {
        let kinds = every_kind();
        for spec in &kinds {
            assert!(spec.moved_fields(spec).is_empty(), "{}", spec.kind());
        }
        let NotifierSpec::Email(email) = &kinds[0] else {
            panic!()
        };
        let elsewhere = NotifierSpec::Email(EmailSpec {
            host: "mail.attacker.example".to_owned(),
            to: vec!["other@example.com".to_owned()],
            ..email.clone()
        });
        assert_eq!(kinds[0].moved_fields(&elsewhere), vec!["host"]);
        let NotifierSpec::Telegram(telegram) = &kinds[3] else {
            panic!()
        };
        let other_chat = NotifierSpec::Telegram(TelegramSpec {
            chat_id: "@elsewhere".to_owned(),
            ..telegram.clone()
        });
        assert_eq!(kinds[3].moved_fields(&other_chat), vec!["chat_id"]);
        assert_eq!(kinds[8].moved_fields(&kinds[1]), vec!["url"]);
    }
}
