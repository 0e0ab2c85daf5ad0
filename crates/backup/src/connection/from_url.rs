//! A connection from a `postgres://` URL, read as libpq reads one: percent-decoded parts, and
//! connection parameters in the query (`host`, `port`, `user`, `password`, `dbname`, `sslmode`,
//! `connect_timeout`) taking precedence over the URL's own parts. A host that is a path is a
//! Unix socket directory, written either way: `postgres:///db?host=/run/postgresql` or
//! `postgres://%2Frun%2Fpostgresql/db` (how statehouse writes a socket host of its own store).

use std::time::Duration;

use super::{DEFAULT_CONNECT_TIMEOUT, PgConnection};
use crate::pipeline::BackupError;

impl PgConnection {
    /// Reads `postgres://user:password@host:port/database?sslmode=…&connect_timeout=<seconds>`
    /// (see the module's notes). Missing parts take libpq's usual defaults (localhost, 5432,
    /// user `postgres`, database named like the user); the CA certificate is set separately
    /// (it is PEM text, not a path).
    pub fn from_url(text: &str) -> Result<PgConnection, BackupError> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            BackupError::Config(format!(
                "the database URL is not a URL ({e}); write postgres://user:password@host:5432/database"
            ))
        })?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(BackupError::Config(format!(
                "the database URL has scheme {:?}; write postgres://user:password@host:5432/database",
                url.scheme()
            )));
        }
        // Percent-decoding only: a `+` in a password is a plus, not a space.
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let query = |key: &str| {
            url.query_pairs()
                .filter(|(k, _)| k == key)
                .last()
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        let user = query("user").unwrap_or_else(|| match url.username() {
            "" => "postgres".to_owned(),
            u => decode(u),
        });
        let database =
            query("dbname").unwrap_or_else(|| match url.path().trim_start_matches('/') {
                "" => user.clone(),
                d => decode(d),
            });
        let connect_timeout = match query("connect_timeout") {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(seconds) => match seconds.parse::<u64>() {
                Ok(s) if s > 0 => Duration::from_secs(s),
                _ => {
                    return Err(BackupError::Config(format!(
                        "connect_timeout={seconds:?} in the database URL is not a positive number of seconds"
                    )));
                }
            },
        };
        let host = match (query("host"), url.host()) {
            (Some(host), _) => host,
            // libpq wants IPv6 addresses without brackets.
            (None, Some(url::Host::Ipv6(ip))) => ip.to_string(),
            (None, Some(host)) if !host.to_string().is_empty() => decode(&host.to_string()),
            (None, _) => "localhost".to_owned(),
        };
        if host.contains(',') {
            return Err(BackupError::Config(format!(
                "the database URL names several hosts ({host}); name the one to connect to"
            )));
        }
        let port = match query("port") {
            None => url.port().unwrap_or(5432),
            Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                BackupError::Config(format!(
                    "port={port:?} in the database URL is not a port number (1-65535)"
                ))
            })?,
        };
        let connection = PgConnection {
            host,
            port,
            database,
            user,
            password: query("password").or_else(|| url.password().map(decode)),
            sslmode: query("sslmode"),
            ca_certificate: None,
            connect_timeout,
            policy: None,
        };
        connection.ssl_mode()?;
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn url_is_split_into_fields_and_secrets_are_redacted_in_debug() {
        let mut c = PgConnection::from_url(
            "postgres://al%40ice:p%2Fs+s@db.example:6543/my%20db?sslmode=require&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(c.host, "db.example");
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "al@ice");
        assert_eq!(c.password.as_deref(), Some("p/s+s"));
        assert_eq!(c.database, "my db");
        assert_eq!(c.sslmode.as_deref(), Some("require"));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        c.ca_certificate = Some("-----BEGIN CERTIFICATE-----\nsecretish".to_owned());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("p/s+s") && !debug.contains("secretish"),
            "{debug}"
        );
        assert_eq!(c.describe(), "al@ice@db.example:6543/my db");
        let d = PgConnection::from_url("postgres://bob@localhost").unwrap();
        assert_eq!(
            (d.port, d.database.as_str(), d.password, d.connect_timeout),
            (5432, "bob", None, DEFAULT_CONNECT_TIMEOUT)
        );
        assert!(PgConnection::from_url("mysql://x@y/z").is_err());
        let err = PgConnection::from_url("postgres://x@y/z?sslmode=sometimes").unwrap_err();
        assert!(err.to_string().contains("verify-full"), "{err}");
        let err = PgConnection::from_url("postgres://x@y/z?connect_timeout=soon").unwrap_err();
        assert!(err.to_string().contains("connect_timeout"), "{err}");
    }

    #[test]
    fn socket_hosts_and_query_parameters_are_read_as_libpq_reads_them() {
        let c = PgConnection::from_url("postgres:///statehouse?host=/run/postgresql&port=5433")
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/run/postgresql", 5433));
        assert!(c.is_socket());
        assert_eq!(
            (c.user.as_str(), c.database.as_str()),
            ("postgres", "statehouse")
        );
        let c = PgConnection::from_url("postgres://sh@%2Frun%2Fpostgresql:5432/app").unwrap();
        assert_eq!(
            (c.host.as_str(), c.user.as_str()),
            ("/run/postgresql", "sh")
        );
        assert!(c.is_socket());
        let c = PgConnection::from_url(
            "postgresql://ignored@db.example/ignored?user=app&password=s%26cret&dbname=prod&host=db2.example",
        )
        .unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.user.as_str(),
                c.password.as_deref(),
                c.database.as_str()
            ),
            ("db2.example", "app", Some("s&cret"), "prod")
        );
        for bad in [
            "postgres://x@y/z?port=0",
            "postgres://x@y/z?port=http",
            "postgres:///z?host=a,b",
        ] {
            assert!(PgConnection::from_url(bad).is_err(), "{bad}");
        }
    }
}
