//! Where statehouse connects to a PostgreSQL server, both for the libpq tools it runs
//! (`pg_dump`, `pg_restore`: everything through the environment) and for its own queries (sqlx:
//! versions, row counts, roles, health), with the same TLS settings for both.
//!
//! A connection a workspace named carries the instance's outbound policy: its host is resolved
//! once and checked when a session or tool connects, and the connection goes to exactly that
//! address (libpq: `PGHOSTADDR`, with `PGHOST` kept for TLS); a Unix socket directory is
//! checked as such; the contents of statehouse's own store (dump, restore, grants, row counts)
//! are refused.

use std::io::Write;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use statehouse_outbound::{OutboundError, OutboundPolicy, Purpose, unreachable_message};
use tokio::process::Command;

use crate::pipeline::BackupError;

mod from_url;

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
    /// The outbound policy every connection is checked against; `None` only for connections
    /// the operator configured (statehouse's own store for its self-backup).
    pub policy: Option<Arc<OutboundPolicy>>,
}

/// Where a session or tool actually connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// No policy applies: the host as written.
    AsWritten,
    /// A Unix socket in the directory [`PgConnection::host`].
    Socket,
    /// These addresses (at least one, tried in order), checked by the policy.
    Addresses(Vec<IpAddr>),
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
            .field("checked", &self.policy.is_some())
            .finish()
    }
}

impl PgConnection {
    /// The same connection, checked against `policy` whenever it connects.
    pub fn checked_by(self, policy: Arc<OutboundPolicy>) -> PgConnection {
        PgConnection {
            policy: Some(policy),
            ..self
        }
    }

    /// Whether the host names a Unix socket directory (libpq: an absolute path, or `@` for
    /// Linux's abstract namespace).
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/') || self.host.starts_with('@')
    }

    /// Resolves and checks where this connection goes (see [`Destination`]). Connect only there:
    /// a second resolution could answer differently.
    pub(crate) async fn destination(&self) -> Result<Destination, BackupError> {
        let Some(policy) = &self.policy else {
            return Ok(Destination::AsWritten);
        };
        if self.is_socket() {
            policy.check_unix_socket(Purpose::Databases, &self.host)?;
            return Ok(Destination::Socket);
        }
        let found = policy
            .resolve(Purpose::Databases, &self.host, self.port)
            .await
            .map_err(|e| match e {
                OutboundError::Refused(refusal) => BackupError::from(refusal),
                unreachable => BackupError::Database(format!(
                    "cannot connect to PostgreSQL at {}: {unreachable}",
                    self.describe()
                )),
            })?;
        if found.is_empty() {
            return Err(self.unreachable());
        }
        Ok(Destination::Addresses(
            found.iter().map(|address| address.ip()).collect(),
        ))
    }

    /// Refuses to work on the contents of statehouse's own store (dump, restore, grants, row
    /// counts) unless the policy allows it; sessions that only read the server's version,
    /// list or create databases may use its database.
    async fn refuse_own_store(&self, destination: &Destination) -> Result<(), BackupError> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let addresses = match destination {
            Destination::Addresses(addresses) => addresses.iter().copied().map(Some).collect(),
            Destination::Socket | Destination::AsWritten => vec![None],
        };
        for address in addresses {
            policy
                .check_not_own_store(&self.host, address, self.port, &self.database)
                .await?;
        }
        Ok(())
    }

    /// Whether this database is statehouse's own store and the policy refuses it (whole-server
    /// runs leave it out instead of failing on it).
    pub(crate) async fn is_refused_own_store(&self) -> bool {
        let Some(policy) = &self.policy else {
            return false;
        };
        let address = if self.is_socket() {
            None
        } else {
            match policy
                .resolve(Purpose::Databases, &self.host, self.port)
                .await
            {
                Ok(found) => match found.first() {
                    Some(address) => Some(address.ip()),
                    None => return false,
                },
                Err(_) => return false,
            }
        };
        policy
            .check_not_own_store(&self.host, address, self.port, &self.database)
            .await
            .is_err()
    }

    /// The one message for a server that could not be reached, whatever the reason (refused,
    /// timed out, TLS, not PostgreSQL): it must not tell an open port from a closed one.
    pub(crate) fn unreachable(&self) -> BackupError {
        BackupError::Database(format!(
            "cannot connect to PostgreSQL at {}: {}",
            self.describe(),
            unreachable_message(&self.host, self.port)
        ))
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

    /// Opens one session for statehouse's own queries, within [`Self::connect_timeout`], to the
    /// checked destination. Statements are not logged: some carry passwords (`CREATE ROLE`).
    pub(crate) async fn connect(&self) -> Result<sqlx::PgConnection, BackupError> {
        let destination = self.destination().await?;
        self.connect_at(&destination).await
    }

    /// [`Self::connect`] for work on the database's contents (grants, row counts): refused on
    /// statehouse's own store (see [`Self::refuse_own_store`]).
    pub(crate) async fn connect_to_contents(&self) -> Result<sqlx::PgConnection, BackupError> {
        let destination = self.destination().await?;
        self.refuse_own_store(&destination).await?;
        self.connect_at(&destination).await
    }

    /// Connects to `destination`: each checked address in turn (as libpq tries a name's
    /// addresses), until one answers.
    async fn connect_at(
        &self,
        destination: &Destination,
    ) -> Result<sqlx::PgConnection, BackupError> {
        let options = self.connect_options()?.disable_statement_logging();
        let attempts: Vec<PgConnectOptions> = match destination {
            Destination::Socket => vec![options.socket(&self.host)],
            // With verify-full the TLS handshake binds the session to the name (a certificate
            // for it, from the configured CA): sqlx resolves the name itself, and an address
            // other than the checked ones fails the handshake before anything is sent.
            Destination::Addresses(_) if self.sslmode.as_deref() == Some("verify-full") => {
                vec![options]
            }
            Destination::Addresses(addresses) => addresses
                .iter()
                .map(|ip| options.clone().host(&ip.to_string()))
                .collect(),
            Destination::AsWritten if self.is_socket() => vec![options.socket(&self.host)],
            Destination::AsWritten => vec![options],
        };
        for attempt in attempts {
            match tokio::time::timeout(
                self.connect_timeout,
                sqlx::PgConnection::connect_with(&attempt),
            )
            .await
            {
                Ok(Ok(connection)) => return Ok(connection),
                // PostgreSQL answered (a wrong password, no such database): that is the answer.
                Ok(Err(e @ sqlx::Error::Database(_))) => {
                    return Err(BackupError::Database(format!(
                        "cannot connect to PostgreSQL at {}: {}",
                        self.describe(),
                        explain(self, &e)
                    )));
                }
                Ok(Err(_)) | Err(_) => {}
            }
        }
        Err(self.unreachable())
    }
}

/// A readable reason for a failed connection or query, with what to check.
pub(crate) fn explain(connection: &PgConnection, error: &sqlx::Error) -> String {
    match error {
        // Alike whatever the reason, so that it does not tell an open port from a closed one.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            unreachable_message(&connection.host, connection.port)
        }
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
    /// The checked addresses the tool connects to, in order (`PGHOSTADDR`; `PGHOST` stays the
    /// name, for TLS).
    addresses: Vec<IpAddr>,
    ca_file: Option<tempfile::NamedTempFile>,
}

impl LibpqEnv {
    /// Checks the connection against its outbound policy (see [`PgConnection::destination`])
    /// and prepares the tool's environment.
    pub(crate) async fn new(connection: &PgConnection) -> Result<LibpqEnv, BackupError> {
        connection.ssl_mode()?;
        // The tools dump or restore the database's contents.
        let destination = connection.destination().await?;
        connection.refuse_own_store(&destination).await?;
        let addresses = match destination {
            Destination::Addresses(addresses) => addresses,
            Destination::Socket | Destination::AsWritten => Vec::new(),
        };
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
            addresses,
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
        if !self.addresses.is_empty() {
            // libpq pairs host and hostaddr lists entry by entry and tries them in order.
            let hosts = vec![c.host.as_str(); self.addresses.len()].join(",");
            let addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
            command
                .env("PGHOST", hosts)
                .env("PGHOSTADDR", addresses.join(","));
        }
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
    fn identifiers_and_conninfo_values_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(conninfo_value("host=x' \\"), "'host=x\\' \\\\'");
    }
}
