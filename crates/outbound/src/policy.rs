//! The outbound policy: may a connection for a given purpose go to this address? Every
//! destination a workspace admin names (webhook and notifier URLs, storage endpoints, database
//! hosts, local directories) is judged here, on the address actually connected to.

use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::address::{AddressClass, Network, classify};
use crate::config::{OutboundConfig, Purpose, PurposeSet};

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection was not made: refused by the policy, or the destination could not be
/// reached (said the same way whatever the reason, so that errors do not tell an open port
/// from a closed one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{}", unreachable_message(.host, *.port))]
    Unreachable { host: String, port: u16 },
}

/// The one message for a destination that could not be reached: refused, timed out, not
/// resolvable, TLS failed, or not speaking the protocol.
pub fn unreachable_message(host: &str, port: u16) -> String {
    format!(
        "could not connect to {}:{port} (check the host name and port, that it accepts \
         connections from statehouse, and its TLS certificate)",
        bracket_ipv6(host)
    )
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A destination the policy refuses; the message names the configuration key that would allow
/// it (where one does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by the outbound policy: {purpose} may not {what}{why}", purpose = .purpose.label())]
pub struct Refusal {
    pub purpose: Purpose,
    /// "connect to 127.1 (127.0.0.1)", "use the directory /etc".
    what: String,
    /// "; a loopback address … (outbound.allow_loopback …)".
    why: String,
}

impl Refusal {
    fn new(purpose: Purpose, what: String, why: String) -> Refusal {
        Refusal { purpose, what, why }
    }
}

/// `outbound.allow_loopback = ["webhooks"] (STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=webhooks)`.
fn allow_hint(key: &str, purpose: Purpose) -> String {
    format!(
        "outbound.{key} = [\"{p}\"] in the configuration (STATEHOUSE_OUTBOUND__{env}={p})",
        p = purpose.key(),
        env = key.to_ascii_uppercase()
    )
}

/// Where statehouse's own store lives, to refuse backing it up as a workspace's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// A host name, an IP address, or a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl StoreLocation {
    /// Where a `postgres://` store URL points (`?host=/dir` for a socket); `None` for other
    /// URLs.
    pub fn from_postgres_url(text: &str) -> Option<StoreLocation> {
        let url = url::Url::parse(text.trim()).ok()?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return None;
        }
        let query = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let host = query("host").or_else(|| match url.host() {
            Some(url::Host::Ipv6(ip)) => Some(ip.to_string()),
            Some(host) => Some(host.to_string()),
            None => None,
        })?;
        let user = match url.username() {
            "" => "postgres".to_owned(),
            user => decode(user),
        };
        let database = match url.path().trim_start_matches('/') {
            "" => query("dbname").unwrap_or(user),
            database => decode(database),
        };
        let port = query("port")
            .and_then(|p| p.parse().ok())
            .or(url.port())
            .unwrap_or(5432);
        Some(StoreLocation {
            host,
            port,
            database,
        })
    }
}

/// The policy of one instance. Cheap to share (`Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    loopback: PurposeSet,
    unix_sockets: bool,
    private: PurposeSet,
    networks: Vec<Network>,
    /// Every host of the store's connection string (several with a multi-host URL).
    own_store: Vec<StoreLocation>,
    allow_own_store: bool,
    local_roots: Vec<PathBuf>,
}

impl Default for OutboundPolicy {
    /// The defaults of [`OutboundConfig`], with no directory for `local` targets.
    fn default() -> Self {
        OutboundPolicy::from_config(&OutboundConfig::default())
    }
}

impl OutboundPolicy {
    pub fn from_config(config: &OutboundConfig) -> OutboundPolicy {
        OutboundPolicy {
            loopback: config.allow_loopback,
            unix_sockets: config.allow_unix_sockets,
            private: config.allow_private,
            networks: config.allow_networks.clone(),
            own_store: Vec::new(),
            allow_own_store: config.allow_own_store,
            local_roots: config.local_target_roots.clone(),
        }
    }

    /// Lets every kind of connection reach this host (and databases its Unix sockets): what a
    /// single-host setup or a test suite with local servers configures.
    pub fn allowing_loopback(mut self) -> OutboundPolicy {
        self.loopback = PurposeSet::ALL;
        self.unix_sockets = true;
        self
    }

    /// Lets `local` targets write under `roots` (instead of the configured ones).
    pub fn with_local_roots(mut self, roots: Vec<PathBuf>) -> OutboundPolicy {
        self.local_roots = roots;
        self
    }

    /// Refuses databases that are statehouse's own store (unless the configuration allows it).
    /// `store` lists every host the store's connection string names.
    pub fn with_own_store(mut self, store: Vec<StoreLocation>) -> OutboundPolicy {
        self.own_store = store;
        self
    }

    pub fn local_roots(&self) -> &[PathBuf] {
        &self.local_roots
    }

    /// May `purpose` connect to `ip`? `host` is what the user wrote, for the message.
    pub fn check_ip(&self, purpose: Purpose, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let what = if host.trim_matches(['[', ']']) == ip.to_string() {
            format!("connect to {ip}")
        } else {
            format!("connect to {host} ({ip})")
        };
        let class = classify(ip);
        let refuse = |why: String| {
            Err(Refusal::new(
                purpose,
                what.clone(),
                format!(", {}; {why}", class.describe()),
            ))
        };
        match class {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if self.loopback.contains(purpose) => Ok(()),
            AddressClass::Loopback => refuse(format!(
                "an operator can allow it with {}",
                allow_hint("allow_loopback", purpose)
            )),
            AddressClass::Private
                if self.private.contains(purpose)
                    || self.networks.iter().any(|n| n.contains(ip)) =>
            {
                Ok(())
            }
            AddressClass::Private => refuse(format!(
                "an operator can allow it with {} or outbound.allow_networks = [\"{ip}/{}\"] \
                 (STATEHOUSE_OUTBOUND__ALLOW_NETWORKS)",
                allow_hint("allow_private", purpose),
                if ip.is_ipv4() { 32 } else { 128 }
            )),
            AddressClass::LinkLocal | AddressClass::Metadata => refuse(
                "statehouse never connects there (cloud metadata services hand out the \
                 server's credentials there)"
                    .to_owned(),
            ),
            AddressClass::Reserved => refuse("statehouse never connects there".to_owned()),
        }
    }

    /// May databases connect through the Unix socket in directory `path`?
    pub fn check_unix_socket(&self, purpose: Purpose, path: &str) -> Result<(), Refusal> {
        if self.unix_sockets && purpose == Purpose::Databases {
            return Ok(());
        }
        Err(Refusal::new(
            purpose,
            format!("connect to the Unix socket {path}"),
            "; an operator can allow databases to use Unix sockets with \
             outbound.allow_unix_sockets = true in the configuration \
             (STATEHOUSE_OUTBOUND__ALLOW_UNIX_SOCKETS=true)"
                .to_owned(),
        ))
    }

    /// Resolves `host` (a name or an IP address, IPv6 with or without brackets) and returns
    /// the addresses `purpose` may connect to, in resolver order. Connect to exactly these: a
    /// second resolution could answer differently (DNS rebinding). A name whose every address
    /// is refused gets the refusal of the first; one that does not resolve is
    /// [`OutboundError::Unreachable`].
    pub async fn resolve(
        &self,
        purpose: Purpose,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(purpose, host, ip)
                .map_err(OutboundError::Refused)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let unreachable = || OutboundError::Unreachable {
            host: host.to_owned(),
            port,
        };
        // Only names reach the system resolver: no lists (`a,b`), paths or URLs.
        let is_name = !bare.is_empty()
            && bare.len() <= 253
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !is_name {
            return Err(unreachable());
        }
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| unreachable())?
            .map_err(|_| unreachable())?;
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for address in found {
            match self.check_ip(purpose, host, address.ip()) {
                Ok(()) if !allowed.contains(&address) => allowed.push(address),
                Ok(()) => {}
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(OutboundError::Refused(refusal)),
            (true, None) => Err(unreachable()),
        }
    }

    /// Refuses a database that is statehouse's own store: `host` as written (a socket
    /// directory or a name), `address` the checked address connected to (`None` for a socket).
    pub async fn check_not_own_store(
        &self,
        host: &str,
        address: Option<IpAddr>,
        port: u16,
        database: &str,
    ) -> Result<(), Refusal> {
        if self.allow_own_store || !self.is_own_store(host, address, port, database).await {
            return Ok(());
        }
        Err(Refusal::new(
            Purpose::Databases,
            format!(
                "work on the database {database:?} at {}:{port}",
                bracket_ipv6(host)
            ),
            ", statehouse's own store (its self-backup covers it; a workspace's backup of it \
             would let that workspace read every workspace's data); an operator can allow it \
             with outbound.allow_own_store = true (STATEHOUSE_OUTBOUND__ALLOW_OWN_STORE=true)"
                .to_owned(),
        ))
    }

    /// Whether `database` on `host:port` is the store (same database name and port, and the
    /// same socket directory or an address the store's host resolves to; every loopback
    /// address counts as the same host).
    pub async fn is_own_store(
        &self,
        host: &str,
        address: Option<IpAddr>,
        port: u16,
        database: &str,
    ) -> bool {
        for store in &self.own_store {
            if is_store_host(store, host, address, port, database).await {
                return true;
            }
        }
        false
    }

    /// The directory a `local` target may use for `path`: absolute, without `..`, and (with
    /// symbolic links resolved, as far as the path exists) inside one of the configured
    /// roots.
    pub fn confine_local(&self, path: &str) -> Result<PathBuf, Refusal> {
        let refuse = |why: &str| {
            let roots = if self.local_roots.is_empty() {
                "none is configured".to_owned()
            } else {
                self.local_roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Refusal::new(
                Purpose::Targets,
                format!("use the directory {path}"),
                format!(
                    ", {why}; local targets must be inside outbound.local_target_roots ({roots}); \
                     an operator can add a directory there (STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS)"
                ),
            )
        };
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err(refuse("which is not an absolute path"));
        }
        if given
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(refuse("which contains `..` or `.`"));
        }
        let resolved = resolve_existing(given);
        let inside = self
            .local_roots
            .iter()
            .any(|root| resolved.starts_with(resolve_existing(root)));
        if inside {
            Ok(resolved)
        } else {
            Err(refuse("which is outside the allowed directories"))
        }
    }
}

/// `path` with its longest existing ancestor canonicalized (symbolic links resolved) and the
/// rest appended as written.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut resolved = canonical;
            for part in rest.iter().rev() {
                resolved.push(part);
            }
            return resolved;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Whether `database` on `host:port` is the store at `store` (see
/// [`OutboundPolicy::is_own_store`]).
async fn is_store_host(
    store: &StoreLocation,
    host: &str,
    address: Option<IpAddr>,
    port: u16,
    database: &str,
) -> bool {
    if store.port != port || store.database != database {
        return false;
    }
    let store_is_socket = store.host.starts_with('/');
    match address {
        None => store_is_socket && Path::new(&store.host) == Path::new(host),
        Some(_) if store_is_socket => false,
        Some(ip) => {
            let bare = store.host.trim_matches(['[', ']']);
            let store_addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((bare, port))
                    .await
                    .map(|found| found.map(|a| a.ip()).collect())
                    .unwrap_or_default(),
            };
            let loopback = |a: IpAddr| classify(a) == AddressClass::Loopback;
            store_addresses
                .iter()
                .any(|s| *s == ip || (loopback(*s) && loopback(ip)))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn strict() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    #[tokio::test]
    async fn loopback_in_every_spelling_is_refused_and_names_the_key() {
        for host in [
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
            "0.0.0.0",
            "[::]",
            "localhost",
        ] {
            let err = strict()
                .resolve(Purpose::Webhooks, host, 80)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("refused by the outbound policy: webhooks may not connect to"),
                "{host}: {err}"
            );
            assert!(
                err.contains("outbound.allow_loopback = [\"webhooks\"]")
                    && err.contains("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=webhooks"),
                "{host}: {err}"
            );
        }
        let allowed = strict().allowing_loopback();
        let found = allowed
            .resolve(Purpose::Webhooks, "127.1", 8080)
            .await
            .unwrap();
        assert_eq!(found, vec!["127.0.0.1:8080".parse().unwrap()]);
    }

    #[tokio::test]
    async fn metadata_is_refused_even_when_everything_else_is_allowed() {
        let open = OutboundPolicy::from_config(&OutboundConfig {
            allow_loopback: PurposeSet::ALL,
            allow_private: PurposeSet::ALL,
            allow_networks: vec!["169.254.0.0/16".parse().unwrap()],
            ..OutboundConfig::default()
        });
        for host in [
            "169.254.169.254",
            "[fd00:ec2::254]",
            "100.100.100.200",
            "[fe80::1]",
        ] {
            let err = open
                .resolve(Purpose::Targets, host, 80)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("statehouse never connects there"),
                "{host}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn private_addresses_follow_the_purpose_and_the_allowed_networks() {
        let policy = strict();
        policy
            .resolve(Purpose::Databases, "10.1.2.3", 5432)
            .await
            .unwrap();
        policy
            .resolve(Purpose::Targets, "192.168.0.9", 443)
            .await
            .unwrap();
        let err = policy
            .resolve(Purpose::Notifiers, "10.1.2.3", 25)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a private address")
                && err.contains("outbound.allow_private = [\"notifiers\"]")
                && err.contains("outbound.allow_networks = [\"10.1.2.3/32\"]"),
            "{err}"
        );
        let with_network = OutboundPolicy::from_config(&OutboundConfig {
            allow_networks: vec!["10.1.2.0/24".parse().unwrap()],
            ..OutboundConfig::default()
        });
        with_network
            .resolve(Purpose::Notifiers, "10.1.2.3", 25)
            .await
            .unwrap();
        with_network
            .resolve(Purpose::Webhooks, "10.1.3.1", 443)
            .await
            .unwrap_err();
    }

    #[tokio::test]
    async fn names_that_are_not_names_and_unknown_names_are_unreachable() {
        for host in ["a,b", "/var/run/postgresql", "no-such-host.invalid", ""] {
            let err = strict()
                .resolve(Purpose::Databases, host, 5432)
                .await
                .unwrap_err();
            assert!(
                matches!(err, OutboundError::Unreachable { .. }),
                "{host}: {err}"
            );
            assert!(err.to_string().starts_with("could not connect to"), "{err}");
        }
    }

    #[test]
    fn unix_sockets_are_for_databases_and_only_when_allowed() {
        let err = strict()
            .check_unix_socket(Purpose::Databases, "/run/postgresql")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the Unix socket /run/postgresql")
                && err.contains("outbound.allow_unix_sockets = true"),
            "{err}"
        );
        let allowed = strict().allowing_loopback();
        allowed
            .check_unix_socket(Purpose::Databases, "/run/postgresql")
            .unwrap();
        allowed
            .check_unix_socket(Purpose::Targets, "/run/postgresql")
            .unwrap_err();
    }

    #[tokio::test]
    async fn the_own_store_is_recognised_by_socket_or_address() {
        let policy = strict()
            .allowing_loopback()
            .with_own_store(vec![StoreLocation {
                host: "localhost".into(),
                port: 5432,
                database: "statehouse".into(),
            }]);
        let loopback = Some("127.0.0.2".parse().unwrap());
        let err = policy
            .check_not_own_store("127.0.0.2", loopback, 5432, "statehouse")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("outbound.allow_own_store = true"), "{err}");
        policy
            .check_not_own_store("127.0.0.2", loopback, 5432, "shop")
            .await
            .unwrap();
        policy
            .check_not_own_store("127.0.0.2", loopback, 5433, "statehouse")
            .await
            .unwrap();
        let socket = strict().with_own_store(vec![StoreLocation {
            host: "/run/postgresql".into(),
            port: 5432,
            database: "statehouse".into(),
        }]);
        assert!(
            socket
                .is_own_store("/run/postgresql", None, 5432, "statehouse")
                .await
        );
        assert!(!socket.is_own_store("/tmp", None, 5432, "statehouse").await);
    }

    #[test]
    fn store_locations_come_from_postgres_urls() {
        assert_eq!(
            StoreLocation::from_postgres_url(
                "postgres://sh:pw@db.internal:6432/infra?sslmode=require"
            ),
            Some(StoreLocation {
                host: "db.internal".into(),
                port: 6432,
                database: "infra".into()
            })
        );
        assert_eq!(
            StoreLocation::from_postgres_url("postgresql:///statehouse?host=/run/postgresql"),
            Some(StoreLocation {
                host: "/run/postgresql".into(),
                port: 5432,
                database: "statehouse".into()
            })
        );
        assert_eq!(StoreLocation::from_postgres_url("sqlite:/x/db"), None);
    }

    #[test]
    fn local_targets_stay_inside_their_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("backups");
        std::fs::create_dir(&root).unwrap();
        let outside = tmp.path().join("elsewhere");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let policy = strict().with_local_roots(vec![root.clone()]);
        let inside = policy
            .confine_local(&root.join("nightly/shop").to_string_lossy())
            .unwrap();
        assert!(
            inside.ends_with("backups/nightly/shop"),
            "{}",
            inside.display()
        );
        for bad in [
            outside.to_string_lossy().into_owned(),
            format!("{}/../elsewhere", root.display()),
            root.join("link/x").to_string_lossy().into_owned(),
            "/etc".to_owned(),
            "relative/dir".to_owned(),
        ] {
            let err = policy.confine_local(&bad).unwrap_err().to_string();
            assert!(
                err.contains("outbound.local_target_roots") && err.contains("backups"),
                "{bad}: {err}"
            );
        }
        let err = strict().confine_local("/srv/x").unwrap_err().to_string();
        assert!(err.contains("none is configured"), "{err}");
    }
}
