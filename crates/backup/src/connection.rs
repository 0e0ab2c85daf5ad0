//! Where statehouse connects to a PostgreSQL server, both for the libpq tools it runs
//! (`pg_dump`, `pg_restore`: everything through the environment) and for its own queries (sqlx:
//! versions, row counts, roles, health), with the same TLS settings for both.

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::process::Command;

use crate::pipeline::BackupError;

/// How long establishing a connection may take unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect. The password only ever travels in `PGPASSWORD` (tools) or the protocol
/// (own queries), never on a command line.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConnection {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    /// libpq `sslmode` (`disable`, `require`, `verify-full`, …); libpq's default when `None`.
    pub sslmode: Option<String>,
    /// PEM text of the CA certificate(s) the server's certificate must chain to (libpq
    /// `sslrootcert`); what `sslmode=verify-ca`/`verify-full` check against.
    pub ca_certificate: Option<String>,
    /// How long establishing a connection may take (libpq counts whole seconds, at least 2).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .field(
                "ca_certificate",
                &self.ca_certificate.as_ref().map(|_| "<PEM>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PgConnection {
    /// Reads `postgres://user:password@host:port/database?sslmode=…&connect_timeout=<seconds>`.
    /// Missing parts take libpq's usual defaults (localhost, 5432, user `postgres`, database
    /// named like the user); the CA certificate is set separately (it is PEM text, not a path).
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
        let user = match url.username() {
            "" => "postgres".to_owned(),
            u => decode(u),
        };
        let database = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            d => decode(d),
        };
        let query = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
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
        let connection = PgConnection {
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            database,
            user,
            password: url.password().map(decode),
            sslmode: query("sslmode"),
            ca_certificate: None,
            connect_timeout,
        };
        connection.ssl_mode()?;
        Ok(connection)
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> PgConnection {
        PgConnection {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// `user@host:port/database`, for messages (no secret in it).
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    fn ssl_mode(&self) -> Result<PgSslMode, BackupError> {
        match &self.sslmode {
            None => Ok(PgSslMode::default()),
            Some(mode) => PgSslMode::from_str(mode).map_err(|_| {
                BackupError::Config(format!(
                    "sslmode {mode:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }),
        }
    }

    fn connect_options(&self) -> Result<PgConnectOptions, BackupError> {
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
            .ssl_mode(self.ssl_mode()?)
            .application_name("statehouse-backup")
            // The tools' connections get no statement cache either; these sessions run a
            // handful of distinct statements once.
            .statement_cache_capacity(0);
        if let Some(password) = &self.password {
            options = options.password(password);
        }
        if let Some(pem) = &self.ca_certificate {
            options = options.ssl_root_cert_from_pem(pem.as_bytes().to_vec());
        }
        Ok(options)
    }

    /// Opens one session for statehouse's own queries, within [`Self::connect_timeout`].
    pub(crate) async fn connect(&self) -> Result<sqlx::PgConnection, BackupError> {
        let options = self.connect_options()?;
        match tokio::time::timeout(
            self.connect_timeout,
            sqlx::PgConnection::connect_with(&options),
        )
        .await
        {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(BackupError::Database(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.describe(),
                explain(self, &e)
            ))),
            Err(_) => Err(BackupError::Database(format!(
                "cannot connect to PostgreSQL at {}: no answer within {:?} (is the host reachable \
                 and the port right?)",
                self.describe(),
                self.connect_timeout
            ))),
        }
    }
}

/// A readable reason for a failed connection or query, with what to check.
pub(crate) fn explain(connection: &PgConnection, error: &sqlx::Error) -> String {
    let at = format!("{}:{}", connection.host, connection.port);
    match error {
        sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {at} (is PostgreSQL running and listening there?)")
        }
        sqlx::Error::Io(e) => format!("cannot reach {at}: {e}"),
        sqlx::Error::Tls(e) => format!(
            "the TLS handshake with {at} failed: {e} (check sslmode and the CA certificate)"
        ),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") => format!(
                "password authentication failed for user {:?} (check the password)",
                connection.user
            ),
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// A query failed: which one (in words) and why.
pub(crate) fn query_error(connection: &PgConnection, what: &str, e: &sqlx::Error) -> BackupError {
    BackupError::Database(format!(
        "{what} failed on {}: {}",
        connection.describe(),
        explain(connection, e)
    ))
}

/// The environment of a libpq tool for one connection. Holds the CA certificate's temporary file
/// (mode 0600, deleted on drop), so it must live as long as the tool runs.
pub(crate) struct LibpqEnv {
    connection: PgConnection,
    ca_file: Option<tempfile::NamedTempFile>,
}

impl LibpqEnv {
    pub(crate) fn new(connection: &PgConnection) -> Result<LibpqEnv, BackupError> {
        connection.ssl_mode()?;
        let ca_file = match &connection.ca_certificate {
            None => None,
            Some(pem) => {
                // tempfile creates the file with mode 0600 on Unix.
                let mut file = tempfile::Builder::new()
                    .prefix("statehouse-ca-")
                    .suffix(".pem")
                    .tempfile()
                    .map_err(|e| {
                        BackupError::Config(format!(
                            "cannot write the CA certificate to a temporary file: {e}"
                        ))
                    })?;
                file.write_all(pem.as_bytes())
                    .and_then(|()| file.flush())
                    .map_err(|e| {
                        BackupError::Config(format!(
                            "cannot write the CA certificate to a temporary file: {e}"
                        ))
                    })?;
                Some(file)
            }
        };
        Ok(LibpqEnv {
            connection: connection.clone(),
            ca_file,
        })
    }

    /// Sets the connection's environment on `command` and clears every other libpq variable
    /// that could redirect it. Nothing secret (nor a connection string that could hold one)
    /// appears in the tool's arguments, so nothing secret is visible in `ps`.
    pub(crate) fn apply(&self, command: &mut Command) {
        let c = &self.connection;
        for var in [
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGCONNECT_TIMEOUT",
            "PGHOSTADDR",
            "PGOPTIONS",
        ] {
            command.env_remove(var);
        }
        command
            .env("PGHOST", &c.host)
            .env("PGPORT", c.port.to_string())
            .env("PGDATABASE", &c.database)
            .env("PGUSER", &c.user)
            .env("PGAPPNAME", "statehouse-backup")
            // libpq waits whole seconds and treats anything below 2 as 2.
            .env(
                "PGCONNECT_TIMEOUT",
                c.connect_timeout.as_secs_f64().ceil().max(2.0).to_string(),
            );
        if let Some(password) = &c.password {
            command.env("PGPASSWORD", password);
        }
        if let Some(sslmode) = &c.sslmode {
            command.env("PGSSLMODE", sslmode);
        }
        if let Some(file) = &self.ca_file {
            command.env("PGSSLROOTCERT", file.path());
        }
    }
}

/// The server's version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerVersion {
    /// `15` for 15.4, `9` for 9.6 (see [`crate::pg_tools::major_from_version_num`]).
    pub major: u32,
    /// `server_version_num`, e.g. `150004`.
    pub num: u32,
    /// `server_version`, e.g. `15.4 (Debian 15.4-1.pgdg120+1)`.
    pub text: String,
}

/// Asks the server for its version.
pub async fn server_version(connection: &PgConnection) -> Result<ServerVersion, BackupError> {
    let mut session = connection.connect().await?;
    let version = version_of_session(connection, &mut session).await;
    let _ = session.close().await;
    version
}

pub(crate) async fn version_of_session(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
) -> Result<ServerVersion, BackupError> {
    let (num, text): (String, String) = sqlx::query_as(
        "SELECT current_setting('server_version_num'), current_setting('server_version')",
    )
    .fetch_one(&mut *session)
    .await
    .map_err(|e| query_error(connection, "reading the server version", &e))?;
    let num: u32 = num.trim().parse().map_err(|_| {
        BackupError::Database(format!(
            "the server at {} reported server_version_num {num:?}, which is not a number",
            connection.describe()
        ))
    })?;
    Ok(ServerVersion {
        major: crate::pg_tools::major_from_version_num(num),
        num,
        text,
    })
}

/// `name` as a double-quoted SQL identifier (embedded quotes doubled).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a libpq connection-string value (single-quoted, `\` and `'` escaped), so a
/// database name can never be taken for a connection string of its own.
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
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
    fn identifiers_and_conninfo_values_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(conninfo_value("host=x' \\"), "'host=x\\' \\\\'");
    }
}
