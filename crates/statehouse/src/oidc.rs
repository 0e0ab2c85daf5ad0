//! Single sign-on's configuration turned into the server's OIDC login, and `statehouse oidc
//! seal-secret`, which seals the client secret under the instance's master key so that the
//! configuration file (or environment) never holds it in the clear.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use statehouse_core::service::Services;
use statehouse_core::sso::GroupMapping;
use statehouse_server::oidc::{OidcLogin, OidcSettings};
use zeroize::Zeroizing;

use crate::config::{Config, OidcConfig};
use crate::instance;

/// What a sealed client secret starts with in the configuration.
const SEALED_PREFIX: &str = "sealed:";
/// The purpose the client secret is sealed for (its key is derived from the master key).
const SECRET_PURPOSE: &str = "oidc-client-secret";

#[derive(Subcommand)]
pub enum OidcCommand {
    /// Seal the OIDC client secret under this instance's master key: reads the secret from
    /// stdin (without echo on a terminal) and prints `sealed:…` for `oidc.client_secret`
    /// (STATEHOUSE_OIDC__CLIENT_SECRET). Only a statehouse with this master key file opens it.
    SealSecret,
}

pub async fn run(config: &Config, command: OidcCommand) -> Result<()> {
    match command {
        OidcCommand::SealSecret => {
            let secret = read_secret()?;
            let instance = instance::open(config, instance::Access::Existing).await?;
            let sealed = instance
                .services
                .cipher
                .seal_text(SECRET_PURPOSE, secret.as_bytes())?;
            outln!("{SEALED_PREFIX}{sealed}")?;
            errln!(
                "put this in oidc.client_secret (or STATEHOUSE_OIDC__CLIENT_SECRET); it opens only with the master key file {}",
                instance.key_file.path().display()
            );
            Ok(())
        }
    }
}

fn read_secret() -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let secret = if stdin.is_terminal() {
        Zeroizing::new(crate::users::read_hidden("client secret: ")?)
    } else {
        let mut line = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the client secret from stdin")?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    if secret.trim().is_empty() {
        bail!(
            "no client secret on stdin (pipe it in, e.g. `printf '%s\\n' \"$SECRET\" | statehouse oidc seal-secret`)"
        );
    }
    Ok(secret)
}

/// The server's single sign-on, when `[oidc]` configures it: the client secret opened (a
/// plain one is warned about), the settings checked.
pub fn login(config: &Config, services: &Services) -> Result<Option<Arc<OidcLogin>>> {
    let oidc = &config.oidc;
    if !oidc.enabled() {
        return Ok(None);
    }
    let settings = settings(oidc, services)?;
    tracing::info!(
        issuer = settings.issuer_url,
        redirect_uri = settings.redirect_uri(),
        "single sign-on is on"
    );
    let login = OidcLogin::new(settings, services.clock.clone())?;
    Ok(Some(Arc::new(login)))
}

fn settings(oidc: &OidcConfig, services: &Services) -> Result<OidcSettings> {
    let required = |value: &Option<String>, key: &str| -> Result<String> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => bail!(
                "oidc.{key} is required with single sign-on (STATEHOUSE_OIDC__{})",
                key.to_uppercase()
            ),
        }
    };
    let issuer_url = required(&oidc.issuer_url, "issuer_url")?;
    let client_id = required(&oidc.client_id, "client_id")?;
    let public_url = required(&oidc.public_url, "public_url")?
        .trim_end_matches('/')
        .to_owned();
    let client_secret = match oidc.client_secret.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(match text.strip_prefix(SEALED_PREFIX) {
            Some(sealed) => {
                let opened = services.cipher.open_text(SECRET_PURPOSE, sealed).context(
                    "oidc.client_secret does not open with this master key file: seal it again with `statehouse oidc seal-secret`",
                )?;
                if services.cipher.text_sealed_under_old_key(sealed) {
                    tracing::warn!(
                        "oidc.client_secret is sealed under a master key that is no longer the primary one: seal it again with `statehouse oidc seal-secret` before `statehouse key forget-retired`"
                    );
                }
                Zeroizing::new(
                    String::from_utf8(opened.to_vec())
                        .context("the sealed oidc.client_secret is not text")?,
                )
            }
            None => {
                tracing::warn!(
                    "oidc.client_secret is in the clear: seal it with `statehouse oidc seal-secret` and use the sealed:… text instead"
                );
                Zeroizing::new(text.to_owned())
            }
        }),
    };
    let scopes: Vec<String> = oidc
        .scopes
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(OidcSettings {
        issuer_url,
        client_id,
        client_secret,
        scopes,
        username_claim: oidc.username_claim.clone(),
        groups_claim: oidc.groups_claim.clone(),
        mapping: GroupMapping {
            admin_groups: oidc.admin_groups.clone(),
            workspace_roles: oidc.workspace_roles.clone(),
        },
        public_url,
        button_label: oidc.button_label.clone(),
    })
}
