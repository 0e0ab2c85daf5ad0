//! The `[outbound]` section of the instance configuration: set by whoever runs statehouse,
//! never by workspace admins (they only name destinations, which this policy then judges).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a connection is for. Each has its own allowances: databases and storage targets
/// usually live on private networks, webhooks and notifiers usually on the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Registered databases, the verification server, admin connections for read-only roles,
    /// restores into another server.
    Databases,
    /// Storage targets (S3, Azure Blob, GCS, SFTP, WebDAV, FTP, Google Drive).
    Targets,
    /// Notifiers (email, Slack, Discord, Telegram, Teams, Mattermost, ntfy, webhook).
    Notifiers,
    /// Webhooks of the event stream.
    Webhooks,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Databases,
        Purpose::Targets,
        Purpose::Notifiers,
        Purpose::Webhooks,
    ];

    /// The word used in the configuration (`databases`, …).
    pub fn key(self) -> &'static str {
        match self {
            Purpose::Databases => "databases",
            Purpose::Targets => "targets",
            Purpose::Notifiers => "notifiers",
            Purpose::Webhooks => "webhooks",
        }
    }

    /// "databases", "storage targets", …: what the refusal says may not connect.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Databases => "databases",
            Purpose::Targets => "storage targets",
            Purpose::Notifiers => "notifiers",
            Purpose::Webhooks => "webhooks",
        }
    }

    fn parse(word: &str) -> Result<Purpose, String> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.key() == word)
            .ok_or_else(|| {
                format!(
                    "{word:?} is not a kind of connection: use databases, targets, notifiers, \
                     webhooks, or true/false for all or none"
                )
            })
    }
}

/// Some kinds of connections. Written `true` (all), `false` (none), a list
/// (`["databases", "targets"]`) or, in environment variables, `databases,targets`.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct PurposeSet(u8);

impl PurposeSet {
    pub const NONE: PurposeSet = PurposeSet(0);
    pub const ALL: PurposeSet = PurposeSet(0b1111);

    pub fn of(purposes: &[Purpose]) -> PurposeSet {
        PurposeSet(
            purposes
                .iter()
                .fold(0, |bits, p| bits | PurposeSet::bit(*p)),
        )
    }

    fn bit(purpose: Purpose) -> u8 {
        1 << (purpose as u8)
    }

    pub fn contains(self, purpose: Purpose) -> bool {
        self.0 & PurposeSet::bit(purpose) != 0
    }

    pub fn purposes(self) -> Vec<Purpose> {
        Purpose::ALL
            .into_iter()
            .filter(|p| self.contains(*p))
            .collect()
    }
}

impl fmt::Debug for PurposeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.purposes().iter().map(|p| p.key()))
            .finish()
    }
}

impl Serialize for PurposeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let keys: Vec<&str> = self.purposes().iter().map(|p| p.key()).collect();
        keys.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PurposeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            All(bool),
            List(Vec<String>),
            Text(String),
        }
        let words = match Raw::deserialize(d)? {
            Raw::All(true) => return Ok(PurposeSet::ALL),
            Raw::All(false) => return Ok(PurposeSet::NONE),
            Raw::List(words) => words,
            Raw::Text(text) => match text.trim() {
                "true" | "all" => return Ok(PurposeSet::ALL),
                "false" | "none" | "" => return Ok(PurposeSet::NONE),
                list => list.split(',').map(|w| w.trim().to_owned()).collect(),
            },
        };
        let mut purposes = Vec::new();
        for word in words {
            match word.trim() {
                "all" => return Ok(PurposeSet::ALL),
                word => purposes.push(Purpose::parse(word).map_err(serde::de::Error::custom)?),
            }
        }
        Ok(PurposeSet::of(&purposes))
    }
}

/// A list written as a TOML array or, in an environment variable, comma-separated.
fn list_or_commas<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<Vec<T>, D::Error>
where
    T::Err: fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    let words: Vec<String> = match Raw::deserialize(d)? {
        Raw::List(words) => words,
        Raw::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    words
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<T>().map_err(serde::de::Error::custom))
        .collect()
}

/// `[outbound]`: where statehouse may connect on behalf of workspaces. Link-local and cloud
/// metadata addresses are refused whatever it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Kinds of connections that may reach this host (127.0.0.0/8, ::1, 0.0.0.0, ::).
    pub allow_loopback: PurposeSet,
    /// Databases may be reached through a Unix socket (`host=/var/run/postgresql`).
    pub allow_unix_sockets: bool,
    /// Kinds of connections that may reach private addresses (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7).
    pub allow_private: PurposeSet,
    /// Networks every kind may reach even where private addresses are refused (e.g. the
    /// in-house ntfy or mail relay): `["10.0.5.7/32"]`.
    #[serde(deserialize_with = "list_or_commas")]
    pub allow_networks: Vec<crate::Network>,
    /// Databases may be statehouse's own store (it is backed up by the self-backup already;
    /// a workspace's backup of it would let that workspace read every workspace's data).
    pub allow_own_store: bool,
    /// Directories `local` storage targets must be inside (default `<data_dir>/backups`).
    #[serde(deserialize_with = "list_or_commas")]
    pub local_target_roots: Vec<PathBuf>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allow_loopback: PurposeSet::NONE,
            allow_unix_sockets: false,
            allow_private: PurposeSet::of(&[Purpose::Databases, Purpose::Targets]),
            allow_networks: Vec::new(),
            allow_own_store: false,
            local_target_roots: Vec::new(),
        }
    }
}

impl Serialize for crate::Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for crate::Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn set(value: serde_json::Value) -> Result<PurposeSet, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn purpose_sets_are_written_as_booleans_lists_or_commas() {
        assert_eq!(set(json!(true)).unwrap(), PurposeSet::ALL);
        assert_eq!(set(json!(false)).unwrap(), PurposeSet::NONE);
        assert_eq!(set(json!("true")).unwrap(), PurposeSet::ALL);
        assert_eq!(
            set(json!(["databases", "webhooks"])).unwrap(),
            PurposeSet::of(&[Purpose::Databases, Purpose::Webhooks])
        );
        assert_eq!(
            set(json!("targets, notifiers")).unwrap(),
            PurposeSet::of(&[Purpose::Targets, Purpose::Notifiers])
        );
        let err = set(json!(["database"])).unwrap_err();
        assert!(err.contains("\"database\" is not a kind"), "{err}");
        let round: PurposeSet = serde_json::from_value(
            serde_json::to_value(PurposeSet::of(&[Purpose::Targets])).unwrap(),
        )
        .unwrap();
        assert_eq!(round, PurposeSet::of(&[Purpose::Targets]));
    }

    #[test]
    fn defaults_allow_private_addresses_to_databases_and_targets_only() {
        let config: OutboundConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(config.allow_loopback, PurposeSet::NONE);
        assert!(config.allow_private.contains(Purpose::Databases));
        assert!(config.allow_private.contains(Purpose::Targets));
        assert!(!config.allow_private.contains(Purpose::Notifiers));
        assert!(!config.allow_private.contains(Purpose::Webhooks));
        assert!(!config.allow_unix_sockets && !config.allow_own_store);
        let config: OutboundConfig = serde_json::from_value(json!({
            "allow_networks": "10.0.5.0/24, 192.168.1.7",
            "local_target_roots": ["/srv/backups"],
        }))
        .unwrap();
        assert_eq!(config.allow_networks.len(), 2);
        assert_eq!(
            config.local_target_roots,
            vec![PathBuf::from("/srv/backups")]
        );
        let err = serde_json::from_value::<OutboundConfig>(json!({"allow_loopbak": true}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_loopbak"), "{err}");
    }
}
