//! The settings forms of a workspace's storage targets and notifiers: one form per kind,
//! described by a table of its settings ([`Kind`]); the fields a page renders ([`FieldView`])
//! from what is stored or was typed; the settings JSON the services take, built from the posted
//! form ([`Posted`]); and the answer of a "test" button ([`Tested`]).
//!
//! Secret settings are password inputs (or write-only text areas) that are never filled in: on a
//! change, one left empty keeps the stored secret. Whether a change moves where secrets go (and
//! so needs them again) is for the service to say.

use askama::Template;
use serde::Deserialize;
use serde_json::{Map, Value};
use statehouse_backup::service::TestOutcome;
use statehouse_core::Error;

use super::page::Chrome;
use super::states::Choice;

/// How a setting is typed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One line of text (empty: left out).
    Text,
    /// An address (`https://…`).
    Url,
    /// A whole number.
    Number,
    /// A secret on one line: a password input, never filled in.
    Secret,
    /// A secret of several lines (a private key, a credentials file): a text area, never
    /// filled in.
    SecretBlock,
    /// Several lines that are not secret (a CA certificate, a body template).
    Block,
    /// A checkbox (`true`/`false`).
    Flag,
    /// One of these `(value, label)`; the value `""` leaves the setting out (its default).
    Choice(&'static [(&'static str, &'static str)]),
    /// A list, one item per line or comma-separated.
    List,
    /// Secret HTTP headers, one `Name: value` per line.
    Headers,
}

impl Input {
    pub fn is_secret(self) -> bool {
        matches!(self, Input::Secret | Input::SecretBlock | Input::Headers)
    }
}

/// One setting of a kind.
pub struct Setting {
    /// Its name in the settings JSON.
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    pub required: bool,
    /// What to write, and what leaving it empty means.
    pub hint: &'static str,
}

/// A kind of target or notifier and its settings, in form order.
pub struct Kind {
    /// The `kind` tag: `local`, `s3`, `slack`, …
    pub name: &'static str,
    pub label: &'static str,
    /// One sentence on what it is.
    pub about: &'static str,
    pub settings: &'static [Setting],
}

/// The kind named `name` in `kinds`.
pub fn kind_named<'a>(kinds: &'a [Kind], name: &str) -> Option<&'a Kind> {
    kinds.iter().find(|k| k.name == name)
}

/// The kinds as choices of a `<select>`, `current` selected.
pub fn kind_choices(kinds: &[Kind], current: &str) -> Vec<Choice> {
    kinds
        .iter()
        .map(|k| Choice {
            value: k.name.to_owned(),
            label: format!("{} ({})", k.label, k.name),
            selected: k.name == current,
        })
        .collect()
}

/// Settings fields are named `s.<setting>` in forms, apart from the form's own fields.
const PREFIX: &str = "s.";

/// A posted form as its pairs, in order (checkboxes of a list repeat their name). No `Debug`:
/// it holds secrets.
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub struct Posted(Vec<(String, String)>);

impl Posted {
    /// The first value of `field`, or `""`.
    pub fn get(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == field)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether `field` was sent (a ticked checkbox).
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(k, _)| k == field)
    }

    /// Every value of `field`, in order.
    pub fn all(&self, field: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == field)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn setting(&self, name: &str) -> &str {
        self.get(&format!("{PREFIX}{name}"))
    }

    fn has_setting(&self, name: &str) -> bool {
        self.has(&format!("{PREFIX}{name}"))
    }
}

/// One field of a settings form, ready for `config_fields.html`.
pub struct FieldView {
    pub id: String,
    pub name: String,
    pub label: &'static str,
    pub hint: &'static str,
    /// `text`, `url`, `number`, `password`, `textarea`, `checkbox` or `select`.
    pub widget: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
    /// Required now: on a change, not for a secret that is stored.
    pub required: bool,
    pub secret: bool,
    /// A secret that is stored (left empty, it is kept).
    pub stored: bool,
}

/// What a form shows: the stored settings (public part) and the names of the secrets set, or
/// nothing for a new one; and what was typed, when the form comes back with an error.
pub struct Shown<'a> {
    pub stored: Option<(&'a Value, &'a [String])>,
    pub typed: Option<&'a Posted>,
}

/// A stored value as text in a field.
fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// The fields of `kind`'s form.
pub fn fields(kind: &Kind, shown: &Shown<'_>) -> Vec<FieldView> {
    kind.settings
        .iter()
        .map(|s| {
            let secret = s.input.is_secret();
            let stored_value = shown.stored.and_then(|(v, _)| v.get(s.name));
            let stored_secret = shown
                .stored
                .is_some_and(|(_, set)| set.iter().any(|n| n == s.name));
            let value = match (secret, shown.typed) {
                (true, _) => String::new(),
                (false, Some(typed)) => typed.setting(s.name).to_owned(),
                (false, None) => text_of(stored_value),
            };
            let checked = match shown.typed {
                Some(typed) => typed.has_setting(s.name),
                None => stored_value.and_then(Value::as_bool).unwrap_or(false),
            };
            let widget = match s.input {
                Input::Text | Input::List => "text",
                Input::Url => "url",
                Input::Number => "number",
                Input::Secret => "password",
                Input::SecretBlock | Input::Block | Input::Headers => "textarea",
                Input::Flag => "checkbox",
                Input::Choice(_) => "select",
            };
            let options = match s.input {
                Input::Choice(options) => options
                    .iter()
                    .map(|(v, l)| Choice {
                        value: (*v).to_owned(),
                        label: (*l).to_owned(),
                        selected: *v == value,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            FieldView {
                id: format!("setting-{}", s.name.replace('_', "-")),
                name: format!("{PREFIX}{}", s.name),
                label: s.label,
                hint: s.hint,
                widget,
                value,
                checked,
                options,
                required: s.required && !stored_secret && s.input != Input::Flag,
                secret,
                stored: stored_secret,
            }
        })
        .collect()
}

/// Browsers send the line breaks of a text area as CRLF; keys and certificates want LF.
fn lines_of(raw: &str) -> String {
    raw.replace("\r\n", "\n")
}

/// The settings JSON (`{"kind": …, …}`) of `kind` from the posted form: empty fields are left
/// out (the service then keeps a stored secret, or uses the setting's default). `stored_secrets`
/// names the secrets the target or notifier already has (none for a new one).
pub fn settings_of(
    kind: &Kind,
    posted: &Posted,
    stored_secrets: &[String],
) -> Result<Value, Error> {
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind.name.into()));
    for s in kind.settings {
        let raw = posted.setting(s.name);
        let value = match s.input {
            Input::Flag => Some(Value::Bool(posted.has_setting(s.name))),
            Input::Secret | Input::SecretBlock => {
                (!raw.trim().is_empty()).then(|| Value::String(lines_of(raw)))
            }
            Input::Text | Input::Url | Input::Choice(_) => {
                Some(raw.trim()).filter(|t| !t.is_empty()).map(Value::from)
            }
            Input::Block => (!raw.trim().is_empty()).then(|| Value::String(lines_of(raw))),
            Input::Number => match raw.trim() {
                "" => None,
                n => Some(Value::from(n.parse::<i64>().map_err(|_| {
                    Error::BadRequest(format!("{}: {n:?} is not a whole number", s.label))
                })?)),
            },
            Input::List => {
                let items: Vec<Value> = raw
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(Value::from)
                    .collect();
                (!items.is_empty()).then_some(Value::Array(items))
            }
            Input::Headers => headers_of(s.label, raw)?,
        };
        match value {
            Some(v) => {
                out.insert(s.name.into(), v);
            }
            None if s.required && !stored_secrets.iter().any(|n| n == s.name) => {
                return Err(Error::BadRequest(format!("{} is required", s.label)));
            }
            None => {}
        }
    }
    Ok(Value::Object(out))
}

/// `Name: value` lines as a JSON object (`None` when there are none).
fn headers_of(label: &str, raw: &str) -> Result<Option<Value>, Error> {
    let mut headers = Map::new();
    for line in raw.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            // The line may hold a secret: name it by its position only.
            return Err(Error::BadRequest(format!(
                "{label}: every line is `Name: value`; line {} has no colon",
                headers.len() + 1
            )));
        };
        headers.insert(name.trim().to_owned(), Value::from(value.trim()));
    }
    Ok((!headers.is_empty()).then_some(Value::Object(headers)))
}

/// The settings worth showing in a list, `name: value`, secrets left out.
pub fn summary(kind: Option<&Kind>, settings: &Value) -> String {
    let Some(kind) = kind else {
        return String::new();
    };
    kind.settings
        .iter()
        .filter(|s| !s.input.is_secret())
        .filter_map(|s| {
            let text = match settings.get(s.name) {
                Some(Value::Bool(true)) => "yes".to_owned(),
                Some(Value::Bool(false)) => return None,
                other => text_of(other),
            };
            (!text.is_empty()).then(|| format!("{}: {text}", s.name))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Every setting as a fact (label, value): secrets say only whether they are set.
pub fn facts(kind: Option<&Kind>, settings: &Value, secrets_set: &[String]) -> Vec<Fact> {
    let Some(kind) = kind else {
        return vec![Fact {
            label: "Settings".into(),
            value: settings.to_string(),
        }];
    };
    kind.settings
        .iter()
        .map(|s| {
            let value = if s.input.is_secret() {
                if secrets_set.iter().any(|n| n == s.name) {
                    "set (never shown)".to_owned()
                } else {
                    "not set".to_owned()
                }
            } else {
                match settings.get(s.name) {
                    Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
                    other => {
                        let text = text_of(other);
                        if text.is_empty() {
                            "—".to_owned()
                        } else {
                            text
                        }
                    }
                }
            };
            Fact {
                label: s.label.to_owned(),
                value,
            }
        })
        .collect()
}

/// A label and its value, in a `dl.facts`.
pub struct Fact {
    pub label: String,
    pub value: String,
}

/// The answer of "Test connection" or "Send test", for the page.
pub struct Tested {
    pub ok: bool,
    pub text: String,
}

impl Tested {
    /// `what_worked` says what succeeded ("wrote, read back and deleted a test file").
    pub fn of(outcome: &TestOutcome, what_worked: &str) -> Tested {
        let took = outcome.duration_ms;
        if outcome.ok {
            Tested {
                ok: true,
                text: format!("The test worked: {what_worked} ({took} ms)."),
            }
        } else {
            Tested {
                ok: false,
                text: format!(
                    "The test failed after {took} ms: {}",
                    outcome.error.as_deref().unwrap_or("no reason given")
                ),
            }
        }
    }
}

/// The confirmation before deleting a target or a notifier.
#[derive(Template)]
#[template(path = "config_delete.html")]
pub struct DeletePage {
    pub chrome: Chrome,
    /// "storage target", "notifier".
    pub what: &'static str,
    pub name: String,
    pub workspace: String,
    pub facts: Vec<Fact>,
    pub warning: String,
    pub action: String,
    pub back: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    const KIND: Kind = Kind {
        name: "demo",
        label: "Demo",
        about: "",
        settings: &[
            Setting {
                name: "host",
                label: "Host",
                input: Input::Text,
                required: true,
                hint: "",
            },
            Setting {
                name: "port",
                label: "Port",
                input: Input::Number,
                required: false,
                hint: "",
            },
            Setting {
                name: "key",
                label: "Key",
                input: Input::SecretBlock,
                required: true,
                hint: "",
            },
            Setting {
                name: "to",
                label: "To",
                input: Input::List,
                required: false,
                hint: "",
            },
            Setting {
                name: "tls",
                label: "TLS",
                input: Input::Flag,
                required: false,
                hint: "",
            },
            Setting {
                name: "headers",
                label: "Headers",
                input: Input::Headers,
                required: false,
                hint: "",
            },
        ],
    };

    fn posted(pairs: &[(&str, &str)]) -> Posted {
        let text = serde_urlencoded::to_string(pairs).unwrap();
        serde_urlencoded::from_str(&text).unwrap()
    }

    #[test]
    fn a_posted_form_becomes_settings() {
        let form = posted(&[
            ("csrf_token", "x"),
            ("s.host", " db.example "),
            ("s.port", "2222"),
            ("s.key", "line 1\r\nline 2\r\n"),
            ("s.to", "a@example.com, b@example.com\nc@example.com"),
            ("s.tls", "on"),
            ("s.headers", "Authorization: Bearer x:y\r\n\r\nX-A: 1"),
        ]);
        assert_eq!(
            settings_of(&KIND, &form, &[]).unwrap(),
            json!({
                "kind": "demo", "host": "db.example", "port": 2222,
                "key": "line 1\nline 2\n",
                "to": ["a@example.com", "b@example.com", "c@example.com"], "tls": true,
                "headers": {"Authorization": "Bearer x:y", "X-A": "1"},
            })
        );
    }

    #[test]
    fn empty_fields_are_left_out_and_stored_secrets_are_kept() {
        let form = posted(&[("s.host", "h"), ("s.key", "  ")]);
        let refusal = settings_of(&KIND, &form, &[]).unwrap_err();
        assert_eq!(refusal.to_string(), "Key is required");
        let kept = settings_of(&KIND, &form, &["key".into()]).unwrap();
        assert_eq!(kept, json!({"kind": "demo", "host": "h", "tls": false}));
        let base = [("s.host", "h"), ("s.key", "k")];
        let refusal = settings_of(
            &KIND,
            &posted(&[base[0], base[1], ("s.port", "twenty")]),
            &[],
        )
        .unwrap_err();
        assert!(refusal.to_string().contains("not a whole number"));
        let form = posted(&[base[0], base[1], ("s.headers", "Bearer secret")]);
        let refusal = settings_of(&KIND, &form, &[]).unwrap_err();
        assert!(refusal.to_string().contains("line 1"), "{refusal}");
        assert!(!refusal.to_string().contains("secret"), "{refusal}");
    }

    #[test]
    fn fields_never_show_secrets_and_mark_stored_ones() {
        let stored =
            json!({"kind": "demo", "host": "h", "port": 22, "to": ["a", "b"], "tls": true});
        let secrets = vec!["key".to_owned()];
        let shown = Shown {
            stored: Some((&stored, &secrets)),
            typed: None,
        };
        let views = fields(&KIND, &shown);
        assert_eq!(views[0].value, "h");
        assert_eq!(views[1].value, "22");
        assert!(views[2].stored && !views[2].required && views[2].value.is_empty());
        assert_eq!(views[3].value, "a, b");
        assert!(views[4].checked);
        let typed = posted(&[("s.host", "typed"), ("s.key", "secret typed")]);
        let shown = Shown {
            stored: None,
            typed: Some(&typed),
        };
        let views = fields(&KIND, &shown);
        assert_eq!(views[0].value, "typed");
        assert!(views[2].value.is_empty() && views[2].required);
        assert!(!views[4].checked);
        assert_eq!(
            summary(Some(&KIND), &stored),
            "host: h · port: 22 · to: a, b · tls: yes"
        );
    }

    #[test]
    fn repeated_fields_are_all_kept() {
        let form = posted(&[("databases", "a"), ("databases", "b"), ("name", "n")]);
        assert_eq!(form.all("databases"), vec!["a", "b"]);
        assert_eq!(form.get("name"), "n");
        assert!(!form.has("enabled"));
    }
}
