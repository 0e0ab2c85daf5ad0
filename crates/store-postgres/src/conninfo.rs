//! Reading a PostgreSQL connection string the way libpq does, including what sqlx 0.9 leaves
//! out: several hosts (`postgres://h1:5432,h2:5433/db`, `?host=h1,h2&port=5432,5433`,
//! `PGHOST=h1,h2`), `target_session_attrs`, and key/value strings (`host=h1,h2 dbname=db`).
//! The result is one sqlx [`PgConnectOptions`] per host, in the order given, and which kind of
//! server to settle on.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use url::form_urlencoded;

use statehouse_core::{Error, Result};

mod key_value;
mod redact;

use key_value::parse_key_values;
pub use redact::redact;

/// libpq's `target_session_attrs`: which server of the list a session settles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    /// The first server that accepts a connection (libpq's default).
    Any,
    /// A server whose sessions accept writes (`transaction_read_only` off).
    ReadWrite,
    /// A server not in recovery (not a standby).
    Primary,
    /// A server whose sessions are read-only.
    ReadOnly,
    /// A standby (in recovery).
    Standby,
    /// A standby if any answers, else any server.
    PreferStandby,
}

impl SessionAttrs {
    fn parse(value: &str) -> std::result::Result<SessionAttrs, String> {
        Ok(match value {
            "any" => SessionAttrs::Any,
            "read-write" => SessionAttrs::ReadWrite,
            "primary" => SessionAttrs::Primary,
            "read-only" => SessionAttrs::ReadOnly,
            "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            other => {
                return Err(format!(
                    "target_session_attrs {other:?} is not one of any, read-write, primary, \
                     read-only, standby, prefer-standby"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::Primary => "primary",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server in this state suits (`PreferStandby` takes anything; the caller tries
    /// standbys first).
    pub fn accepts(self, in_recovery: bool, read_only: bool) -> bool {
        match self {
            SessionAttrs::Any | SessionAttrs::PreferStandby => true,
            SessionAttrs::ReadWrite => !read_only,
            SessionAttrs::Primary => !in_recovery,
            SessionAttrs::ReadOnly => read_only,
            SessionAttrs::Standby => in_recovery,
        }
    }

    /// Whether only writable servers suit.
    pub fn wants_writes(self) -> bool {
        matches!(self, SessionAttrs::ReadWrite | SessionAttrs::Primary)
    }
}

/// A connection string, read.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// One entry per host, in the order given; at least one.
    pub hosts: Vec<PgConnectOptions>,
    /// For each host, a single-host URL (`postgres://user:password@host:port/db?…`) saying the
    /// same, for tools that take one host (self-backups). Holds the password: never show it.
    pub urls: Vec<String>,
    pub attrs: SessionAttrs,
}

/// URL parameters sqlx does not know and this module handles (or refuses) itself.
const OURS: [&str; 4] = ["host", "port", "target_session_attrs", "load_balance_hosts"];

/// Whether `text` is a PostgreSQL connection string: a `postgres://` / `postgresql://` URL or
/// libpq key/value pairs (`host=… dbname=…`).
pub fn is_conninfo(text: &str) -> bool {
    let text = text.trim();
    has_pg_scheme(text)
        || (!text.contains("://") && parse_key_values(text).is_ok_and(|kv| !kv.is_empty()))
}

fn has_pg_scheme(text: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|s| {
        text.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    })
}

/// Reads `text` (URL or key/value; empty: the PG* environment only) on top of the PG*
/// environment, as libpq would.
pub fn parse(text: &str) -> Result<ConnInfo> {
    let text = text.trim();
    if has_pg_scheme(text) {
        let (scheme, rest) = text.split_once("://").unwrap_or(("postgres", ""));
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let (userinfo, hostspec) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let pairs = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let base = UrlBase {
            scheme,
            userinfo,
            path,
        };
        return expand(Some(&base), hostspec, pairs).map_err(|why| {
            Error::Config(format!("invalid PostgreSQL URL {:?}: {why}", redact(text)))
        });
    }
    if text.contains("://") {
        return Err(Error::Config(format!(
            "invalid PostgreSQL URL {:?}: it must start with postgres:// or postgresql:// \
             (or be key/value pairs such as host=db1,db2 dbname=statehouse)",
            redact(text)
        )));
    }
    let pairs = parse_key_values(text).and_then(|pairs| {
        match pairs
            .iter()
            .find(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        {
            Some((k, _)) => Err(format!(
                "{k:?} is not a connection parameter statehouse knows"
            )),
            None => Ok(pairs),
        }
    });
    let pairs = pairs.map_err(|why| {
        Error::Config(format!(
            "invalid PostgreSQL connection string {:?}: {why}",
            redact(text)
        ))
    })?;
    expand(None, "", pairs).map_err(|why| {
        Error::Config(format!(
            "invalid PostgreSQL connection string {:?}: {why}",
            redact(text)
        ))
    })
}

/// Key/value parameters accepted (what sqlx reads, plus what this module handles). A URL's
/// unknown parameters are ignored with a warning by sqlx, as before; a key/value string is
/// only ever written by hand, so a typo there is refused.
const KNOWN_KEYS: [&str; 16] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
    "target_session_attrs",
    "load_balance_hosts",
    "connect_timeout",
    "statement-cache-capacity",
];

/// What a URL keeps around each host of its list.
struct UrlBase<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    path: &'a str,
}

/// One [`PgConnectOptions`] per host: from the URL's host list (`hostspec`), else a `host`
/// parameter list, else a PGHOST list; ports from each URL entry, a `port` list or PGPORT.
fn expand(
    base: Option<&UrlBase<'_>>,
    hostspec: &str,
    pairs: Vec<(String, String)>,
) -> std::result::Result<ConnInfo, String> {
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    if get("load_balance_hosts").is_some_and(|v| v != "disable") {
        return Err(
            "load_balance_hosts is not supported: statehouse tries the hosts in the order given"
                .into(),
        );
    }
    if get("hostaddr").is_some_and(|v| v.contains(',')) {
        return Err("hostaddr lists are not supported: list the hosts in host=".into());
    }
    let attrs =
        match get("target_session_attrs").or_else(|| std::env::var("PGTARGETSESSIONATTRS").ok()) {
            Some(value) => SessionAttrs::parse(value.trim())?,
            None => SessionAttrs::Any,
        };
    let rest: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Builds one host's URL for sqlx: `entry` goes in the authority, `host`/`port` as
    // parameters (sqlx reads both; a parameter wins).
    let one = |entry: &str, host: Option<&str>, port: Option<&str>| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &rest {
            query.append_pair(k, v);
        }
        if let Some(host) = host {
            query.append_pair("host", host);
        }
        if let Some(port) = port {
            query.append_pair("port", port);
        }
        let url = match base {
            Some(b) => {
                let userinfo = b.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
                format!(
                    "{}://{userinfo}{entry}{}?{}",
                    b.scheme,
                    b.path,
                    query.finish()
                )
            }
            None => format!("postgres://?{}", query.finish()),
        };
        let options = PgConnectOptions::from_str(&url).map_err(|e| match host.or(Some(entry)) {
            Some(h) if !h.is_empty() => format!("host {h:?}: {e}"),
            _ => e.to_string(),
        })?;
        Ok::<_, String>((options, single_host_url(base, entry, host, port, &pairs)))
    };
    let split =
        |list: &str| -> Vec<String> { list.split(',').map(|s| s.trim().to_owned()).collect() };
    let url_entries = split(hostspec);
    let (hosts, ports): (Vec<String>, Vec<String>) = match get("host") {
        Some(list) => (
            split(&list),
            get("port").map(|p| split(&p)).unwrap_or_default(),
        ),
        None if url_entries.len() > 1 => {
            if url_entries.iter().any(String::is_empty) {
                return Err("an empty host in the host list".into());
            }
            let port = get("port");
            let each = url_entries
                .iter()
                .map(|entry| one(entry, None, port.as_deref()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let (hosts, urls) = each.into_iter().unzip();
            return Ok(ConnInfo { hosts, urls, attrs });
        }
        // A URL without a host, or key/value without host=: libpq's PGHOST, a list too.
        None => match std::env::var("PGHOST") {
            Ok(list) if hostspec.is_empty() && list.contains(',') => (
                split(&list),
                get("port")
                    .or_else(|| std::env::var("PGPORT").ok())
                    .map(|p| split(&p))
                    .unwrap_or_default(),
            ),
            // One host (the URL's, or PGHOST's, which sqlx reads itself).
            _ => (
                Vec::new(),
                get("port").map(|p| split(&p)).unwrap_or_default(),
            ),
        },
    };
    if hosts.len() > 1 && hosts.iter().any(String::is_empty) {
        return Err("an empty host in the host list".into());
    }
    if ports.len() > 1 && ports.len() != hosts.len().max(1) {
        return Err(format!(
            "{} ports for {} hosts: give one port for all hosts or one per host",
            ports.len(),
            hosts.len().max(1)
        ));
    }
    let port_of = |i: usize| {
        ports
            .get(if ports.len() > 1 { i } else { 0 })
            .map(String::as_str)
    };
    let entry = if url_entries.len() == 1 { hostspec } else { "" };
    let each = if hosts.is_empty() {
        vec![one(entry, None, port_of(0))?]
    } else {
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| one(entry, Some(h), port_of(i)))
            .collect::<std::result::Result<Vec<_>, _>>()?
    };
    let (hosts, urls) = each.into_iter().unzip();
    Ok(ConnInfo { hosts, urls, attrs })
}

/// One host's connection as a plain single-host URL: user, password and database in their
/// URL places (from the URL or from `user` / `password` / `dbname` parameters), `sslmode`
/// and `connect_timeout` kept.
fn single_host_url(
    base: Option<&UrlBase<'_>>,
    entry: &str,
    host: Option<&str>,
    port: Option<&str>,
    pairs: &[(String, String)],
) -> String {
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let userinfo = match (base.and_then(|b| b.userinfo), get("user")) {
        (Some(userinfo), None) => format!("{userinfo}@"),
        (from_url, user) => {
            let url_user = from_url.map(|u| u.split_once(':').map_or(u, |(name, _)| name));
            let password = get("password").map(percent_encode).or_else(|| {
                from_url
                    .and_then(|u| u.split_once(':'))
                    .map(|(_, p)| p.to_owned())
            });
            match (
                user.map(percent_encode).or(url_user.map(str::to_owned)),
                password,
            ) {
                (Some(user), Some(password)) => format!("{user}:{password}@"),
                (Some(user), None) => format!("{user}@"),
                (None, _) => String::new(),
            }
        }
    };
    let hostport = match host {
        Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        Some(h) => percent_encode(h),
        None => entry.to_owned(),
    };
    let hostport = match (host, port) {
        (Some(_), Some(p)) => format!("{hostport}:{p}"),
        _ => hostport,
    };
    let path = match (get("dbname"), base) {
        (Some(db), _) => format!("/{}", percent_encode(db)),
        (None, Some(b)) => b.path.to_owned(),
        (None, None) => String::new(),
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for key in ["sslmode", "connect_timeout"] {
        if let Some(value) = get(key) {
            query.append_pair(key, value);
        }
    }
    let query = query.finish();
    let scheme = base.map_or("postgres", |b| b.scheme);
    if query.is_empty() {
        format!("{scheme}://{userinfo}{hostport}{path}")
    } else {
        format!("{scheme}://{userinfo}{hostport}{path}?{query}")
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `host:port` (or the socket) of one host, for messages.
pub fn place(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(dir) => format!("socket {}/.s.PGSQL.{}", dir.display(), options.get_port()),
        None if options.get_host().starts_with('/') => {
            format!(
                "socket {}/.s.PGSQL.{}",
                options.get_host(),
                options.get_port()
            )
        }
        None if options.get_host().contains(':') && !options.get_host().starts_with('[') => {
            format!("[{}]:{}", options.get_host(), options.get_port())
        }
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// Every host, database and user, for messages. Never the password.
pub fn describe(info: &ConnInfo) -> String {
    let places: Vec<String> = info.hosts.iter().map(place).collect();
    let first = &info.hosts[0];
    let user = first.get_username();
    let database = first.get_database().unwrap_or(user);
    format!(
        "{} (database {database:?}, user {user:?})",
        places.join(", ")
    )
}

/// Each host's name (or socket directory), port and database: what the outbound policy
/// compares a workspace's database with to refuse statehouse's own store.
pub fn endpoints(text: &str) -> Result<Vec<(String, u16, String)>> {
    let info = parse(text)?;
    Ok(info
        .hosts
        .iter()
        .map(|o| {
            let host = match o.get_socket() {
                Some(dir) => dir.display().to_string(),
                None => o.get_host().to_owned(),
            };
            let database = o.get_database().unwrap_or(o.get_username()).to_owned();
            (host, o.get_port(), database)
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn places(text: &str) -> Vec<String> {
        parse(text).unwrap().hosts.iter().map(place).collect()
    }

    #[test]
    fn url_host_lists_give_one_entry_per_host() {
        let info =
            parse("postgres://u:pw@db1:5432,db2:5433,[::1]/state?target_session_attrs=read-write&sslmode=disable")
                .unwrap();
        assert_eq!(info.attrs, SessionAttrs::ReadWrite);
        assert_eq!(
            info.hosts.iter().map(place).collect::<Vec<_>>(),
            ["db1:5432", "db2:5433", "[::1]:5432"]
        );
        for host in &info.hosts {
            assert_eq!(host.get_username(), "u");
            assert_eq!(host.get_database(), Some("state"));
        }
        assert_eq!(
            places("postgresql:///state?host=a,b&port=6000,6001"),
            ["a:6000", "b:6001"]
        );
        assert_eq!(
            places("postgresql:///state?host=a,b&port=6000"),
            ["a:6000", "b:6000"]
        );
        assert_eq!(places("postgres://one:7000/db"), ["one:7000"]);
        // A port parameter next to one host (or none: PGHOST's) is kept.
        assert_eq!(places("postgres://one/db?port=7001"), ["one:7001"]);
        assert_eq!(places("host=one port=7002 dbname=db"), ["one:7002"]);
        assert_eq!(
            parse("postgres:///db?port=7003").unwrap().hosts[0].get_port(),
            7003
        );
    }

    #[test]
    fn key_value_strings_are_read_like_libpq() {
        let info = parse(
            "host=db1,db2 port=5432,5433 dbname=state user=alice password='it''s' \
             target_session_attrs=primary application_name='my app'",
        );
        // `''` is not an escape in libpq (backslash is): the value ends at the second quote.
        assert!(info.is_err());
        let info = parse(
            "host=db1,db2 port=5432,5433 dbname=state user=alice password='it\\'s x' \
             target_session_attrs=primary application_name='my app'",
        )
        .unwrap();
        assert_eq!(info.attrs, SessionAttrs::Primary);
        assert_eq!(
            info.hosts.iter().map(place).collect::<Vec<_>>(),
            ["db1:5432", "db2:5433"]
        );
        assert_eq!(info.hosts[1].get_database(), Some("state"));
        assert_eq!(info.hosts[1].get_username(), "alice");
        assert_eq!(info.hosts[0].get_application_name(), Some("my app"));
        assert!(is_conninfo("host=db1 dbname=x"));
        assert!(is_conninfo("postgres://h/db"));
        assert!(!is_conninfo("sqlite:x.db"));
        assert!(!is_conninfo(""));
    }

    #[test]
    fn bad_strings_are_refused_with_the_reason() {
        for (bad, says) in [
            ("postgres://h1,,h2/db", "empty host"),
            ("postgres:///db?host=a,b,c&port=1,2", "3 hosts"),
            (
                "postgres://h1,h2/db?target_session_attrs=leader",
                "target_session_attrs",
            ),
            (
                "postgres://h1,h2/db?load_balance_hosts=random",
                "load_balance_hosts",
            ),
            ("host=a dbnme=x", "dbnme"),
            ("host=a dbname", "no value"),
            ("host='a", "closing quote"),
            ("mysql://h/db", "postgres://"),
        ] {
            let err = parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn session_attrs_accept_the_right_servers() {
        use SessionAttrs::*;
        // (in_recovery, read_only)
        assert!(ReadWrite.accepts(false, false) && !ReadWrite.accepts(true, true));
        assert!(!ReadWrite.accepts(false, true));
        assert!(Primary.accepts(false, true) && !Primary.accepts(true, true));
        assert!(Standby.accepts(true, true) && !Standby.accepts(false, false));
        assert!(ReadOnly.accepts(false, true) && !ReadOnly.accepts(false, false));
        assert!(Any.accepts(true, true) && PreferStandby.accepts(false, false));
    }

    #[test]
    fn every_host_has_a_single_host_url() {
        let info = parse("postgres://u:p%40ss@h1:5432,h2:5433/state?sslmode=disable&target_session_attrs=read-write").unwrap();
        assert_eq!(
            info.urls,
            [
                "postgres://u:p%40ss@h1:5432/state?sslmode=disable",
                "postgres://u:p%40ss@h2:5433/state?sslmode=disable"
            ]
        );
        let info =
            parse("host=h1,::1 port=5432,5433 dbname=st user=al password='a b' sslmode=require")
                .unwrap();
        assert_eq!(
            info.urls,
            [
                "postgres://al:a%20b@h1:5432/st?sslmode=require",
                "postgres://al:a%20b@[::1]:5433/st?sslmode=require"
            ]
        );
    }

    #[test]
    fn endpoints_list_every_host() {
        let found = endpoints("postgres://u@h1:5432,h2:5433/state").unwrap();
        assert_eq!(
            found,
            [
                ("h1".to_owned(), 5432, "state".to_owned()),
                ("h2".to_owned(), 5433, "state".to_owned())
            ]
        );
    }
}
