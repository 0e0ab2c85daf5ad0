//! Unknown configuration keys: a misspelt key in the TOML file (`listn = …`, also inside a
//! section) stops statehouse with the key and the file named, instead of silently leaving the
//! default in place. The known keys are those of the defaults, so a new setting is known as
//! soon as it has a default. `STATEHOUSE_*` environment variables that name no setting only
//! get a warning: the environment is shared with the CLI's own variables, test harnesses and
//! other tools, and refusing to start over one would turn a stray variable into an outage.

use std::path::Path;

use anyhow::{Result, bail};
use figment::Provider;
use figment::value::{Dict, Value};

/// Variables with the `STATEHOUSE_` prefix that are not server settings: read by the CLI
/// (`--config`, `--server`, `--token`), by the log filter, or by statehouse's own test and
/// benchmark harnesses.
const NOT_SETTINGS: &[&str] = &[
    "CONFIG",
    "SERVER",
    "TOKEN",
    "LOG",
    "TERRAFORM",
    "SKIP_E2E",
    "SKIP_PG_TESTS",
    "REQUIRE_SERVERS",
];
const NOT_SETTINGS_PREFIXES: &[&str] = &["TEST_", "BENCH_"];

/// The default profile's values of a provider.
pub fn values(provider: &impl Provider) -> Result<Dict> {
    let mut data = provider.data()?;
    Ok(data.remove(&figment::Profile::Default).unwrap_or_default())
}

/// Refuses keys of `given` (the TOML file `file`) that `known` (the defaults) does not have.
pub fn refuse_unknown_keys(known: &Dict, given: &Dict, file: &Path) -> Result<()> {
    let mut unknown = Vec::new();
    collect_unknown(known, given, "", &mut unknown);
    match unknown.as_slice() {
        [] => Ok(()),
        [one] => bail!(
            "unknown key `{one}` in configuration file {} (a typo? see the Configuration section of the README)",
            file.display()
        ),
        many => bail!(
            "unknown keys {} in configuration file {} (typos? see the Configuration section of the README)",
            many.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            file.display()
        ),
    }
}

fn collect_unknown(known: &Dict, given: &Dict, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in given {
        let path = format!("{prefix}{key}");
        match (known.get(key), value) {
            (None, _) => out.push(path),
            // A section with known keys: check inside it. An empty default (a map of free
            // keys) or a leaf takes whatever is given; its type is checked when extracting.
            (Some(Value::Dict(_, inner)), Value::Dict(_, given)) if !inner.is_empty() => {
                collect_unknown(inner, given, &format!("{path}."), out)
            }
            (Some(_), _) => {}
        }
    }
}

/// `STATEHOUSE_*` variables in `vars` that name no setting of `known` (and are not one of
/// [`NOT_SETTINGS`]), sorted.
pub fn unknown_env_vars(known: &Dict, vars: impl Iterator<Item = String>) -> Vec<String> {
    let mut unknown: Vec<String> = vars
        .filter(|name| {
            let Some(rest) = name.strip_prefix("STATEHOUSE_") else {
                return false;
            };
            if NOT_SETTINGS.contains(&rest)
                || NOT_SETTINGS_PREFIXES.iter().any(|p| rest.starts_with(p))
            {
                return false;
            }
            !names_a_setting(known, &rest.to_ascii_lowercase())
        })
        .collect();
    unknown.sort();
    unknown
}

fn names_a_setting(known: &Dict, key: &str) -> bool {
    let mut current = known;
    for part in key.split("__") {
        match current.get(part) {
            None => return false,
            Some(Value::Dict(_, inner)) if !inner.is_empty() => current = inner,
            Some(_) => return true,
        }
    }
    // A whole section (`STATEHOUSE_POSTGRES=…`): a setting, if not a useful one.
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use figment::providers::{Format, Serialized, Toml};

    use super::*;
    use crate::config::Config;

    fn known() -> Dict {
        values(&Serialized::defaults(Config::default())).unwrap()
    }

    fn check(toml: &str) -> Result<()> {
        refuse_unknown_keys(
            &known(),
            &values(&Toml::string(toml)).unwrap(),
            Path::new("/etc/s.toml"),
        )
    }

    #[test]
    fn unknown_toml_keys_are_named_with_the_file() {
        assert!(check("listen = \"0.0.0.0:1\"\n[postgres]\npool_max = 3\n").is_ok());
        assert!(
            check("master_key_file = \"/k\"\n[self_backup]\ndir = \"/b\"\n").is_ok(),
            "keys whose default is unset are known too"
        );
        let err = check("listn = \"0.0.0.0:1\"\n").unwrap_err().to_string();
        assert!(
            err.contains("`listn`") && err.contains("/etc/s.toml"),
            "{err}"
        );
        let err = check("[postgres]\npool_mx = 3\n").unwrap_err().to_string();
        assert!(err.contains("`postgres.pool_mx`"), "{err}");
        let err = check("[self_backups]\nenabled = false\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`self_backups`"), "{err}");
        let err = check("a = 1\nb = 2\n").unwrap_err().to_string();
        assert!(err.contains("`a`, `b`"), "{err}");
    }

    #[test]
    fn env_vars_that_name_no_setting_are_found() {
        let vars = [
            "STATEHOUSE_LISTEN",
            "STATEHOUSE_LISTN",
            "STATEHOUSE_POSTGRES__POOL_MAX",
            "STATEHOUSE_POSTGRES__POOLMAX",
            "STATEHOUSE_SELF_BACKUP__DIR",
            "STATEHOUSE_SERVER",
            "STATEHOUSE_TOKEN",
            "STATEHOUSE_LOG",
            "STATEHOUSE_CONFIG",
            "STATEHOUSE_TEST_PG_URL",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unknown_env_vars(&known(), vars.into_iter()),
            ["STATEHOUSE_LISTN", "STATEHOUSE_POSTGRES__POOLMAX"]
        );
    }
}
