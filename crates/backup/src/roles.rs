//! The least privilege a backup needs: a helper creating a read-only login role, and a check of
//! the configured role that warns about too much (superuser, write, create) or too little
//! (tables it cannot read, so pg_dump would fail).

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::connection::{PgConnection, explain, query_error, quote_ident};
use crate::pipeline::BackupError;

/// User schemas: everything but the system ones (`pg_*`, `information_schema`).
const USER_SCHEMA: &str = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

/// Checks a role name for [`create_readonly_role`]: 1–63 characters of `a-z`, `0-9`, `_`, not
/// starting with a digit, not `pg_…` (reserved), not a reserved role word.
pub fn validate_role_name(role: &str) -> Result<(), BackupError> {
    let valid_chars = role
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let reserved = [
        "public",
        "none",
        "current_user",
        "session_user",
        "current_role",
    ];
    if role.is_empty()
        || role.len() > 63
        || !valid_chars
        || role.starts_with(|c: char| c.is_ascii_digit())
        || role.starts_with("pg_")
        || reserved.contains(&role)
    {
        return Err(BackupError::Config(format!(
            "{role:?} cannot be the backup role's name: use 1 to 63 lowercase letters, digits and \
             underscores, not starting with a digit or pg_ (e.g. statehouse_backup)"
        )));
    }
    Ok(())
}

/// Creates `role`, a LOGIN role that can read and dump `databases` and nothing more: CONNECT on
/// each database, USAGE on each of their user schemas, SELECT on all their tables and sequences,
/// and default privileges (`ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA …`) for every
/// role owning the schema or something in it, so tables those roles create later are readable
/// too. Nothing granted to PUBLIC or to any other role changes. Schemas created later are not
/// covered: run it again for them, or grant USAGE by hand.
///
/// `admin` must be able to create roles and to grant on those objects (a superuser, or a member
/// of every owner). The password is sent as a SCRAM-SHA-256 verifier computed here, never as
/// text the server could log; it must be ASCII (generated passwords are). On a failure halfway,
/// what was created is removed again.
pub async fn create_readonly_role(
    admin: &PgConnection,
    role: &str,
    password: &SecretString,
    databases: &[String],
) -> Result<(), BackupError> {
    validate_role_name(role)?;
    if databases.is_empty() {
        return Err(BackupError::Config(
            "name at least one database the backup role may read".to_owned(),
        ));
    }
    let verifier = scram_verifier(password)?;
    let mut session = admin.connect().await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_optional(&mut session)
        .await
        .map_err(|e| query_error(admin, "looking up the role", &e))?;
    if exists.is_some() {
        return Err(BackupError::Config(format!(
            "the role {role:?} already exists; choose another name or drop it first"
        )));
    }
    for database in databases {
        let found: Option<(bool,)> =
            sqlx::query_as("SELECT datallowconn FROM pg_database WHERE datname = $1")
                .bind(database)
                .fetch_optional(&mut session)
                .await
                .map_err(|e| query_error(admin, "looking up the database", &e))?;
        match found {
            Some((true,)) => {}
            Some((false,)) => {
                return Err(BackupError::Config(format!(
                    "the database {database:?} does not allow connections, so it cannot be backed up"
                )));
            }
            None => {
                return Err(BackupError::Config(format!(
                    "the database {database:?} does not exist on {}:{}",
                    admin.host, admin.port
                )));
            }
        }
    }
    // The verifier is base64 and `$:` only: safe inside a literal.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
         PASSWORD '{verifier}'",
        quote_ident(role)
    )))
    .execute(&mut session)
    .await
    .map_err(|e| query_error(admin, &format!("creating the role {role:?}"), &e))?;
    let _ = session.close().await;

    let mut granted: Vec<&String> = Vec::new();
    for database in databases {
        match grant_read_only(admin, role, database).await {
            Ok(()) => granted.push(database),
            Err(e) => {
                let cleanup = remove_role(admin, role, &granted).await;
                let note = match cleanup {
                    Ok(()) => format!("the role {role:?} was removed again"),
                    Err(c) => format!(
                        "removing the role {role:?} again failed too ({c}); run DROP OWNED BY \
                         {role} in each database, then DROP ROLE {role}"
                    ),
                };
                return Err(BackupError::Database(format!("{e}; {note}")));
            }
        }
    }
    Ok(())
}

/// All grants of one database, in one transaction.
async fn grant_read_only(
    admin: &PgConnection,
    role: &str,
    database: &str,
) -> Result<(), BackupError> {
    let connection = admin.with_database(database);
    let mut session = connection.connect_to_contents().await?;
    let result = async {
        let mut tx = session
            .begin()
            .await
            .map_err(|e| query_error(&connection, "starting a transaction", &e))?;
        let quoted_role = quote_ident(role);
        let schemas: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT n.nspname::text FROM pg_namespace n WHERE {USER_SCHEMA} ORDER BY 1"
        )))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(&connection, "listing the schemas", &e))?;
        let mut statements = vec![format!(
            "GRANT CONNECT ON DATABASE {} TO {quoted_role}",
            quote_ident(database)
        )];
        for (schema,) in &schemas {
            let s = quote_ident(schema);
            statements.push(format!("GRANT USAGE ON SCHEMA {s} TO {quoted_role}"));
            statements.push(format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {quoted_role}"));
            statements.push(format!(
                "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {quoted_role}"
            ));
            let owners: Vec<(String,)> = sqlx::query_as(
                "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = $1
                 UNION
                 SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                 ORDER BY 1",
            )
            .bind(schema)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| query_error(&connection, "listing the owners", &e))?;
            for (owner,) in owners {
                let o = quote_ident(&owner);
                statements.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT SELECT ON TABLES TO {quoted_role}"
                ));
                statements.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT SELECT ON SEQUENCES TO {quoted_role}"
                ));
            }
        }
        for sql in &statements {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut *tx).await.map_err(|e| {
                BackupError::Database(format!(
                    "granting read access in the database {database:?} failed at `{sql}`: {} \
                     (connect as a superuser, or as a member of every owning role)",
                    explain(&connection, &e)
                ))
            })?;
        }
        tx.commit()
            .await
            .map_err(|e| query_error(&connection, "committing the grants", &e))
    }
    .await;
    let _ = session.close().await;
    result
}

/// Undoes a half-finished [`create_readonly_role`].
async fn remove_role(
    admin: &PgConnection,
    role: &str,
    granted: &[&String],
) -> Result<(), BackupError> {
    for database in granted {
        let connection = admin.with_database(database);
        let mut session = connection.connect().await?;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP OWNED BY {}",
            quote_ident(role)
        )))
        .execute(&mut session)
        .await;
        let _ = session.close().await;
        dropped.map_err(|e| query_error(&connection, "DROP OWNED", &e))?;
    }
    let mut session = admin.connect().await?;
    let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP ROLE {}",
        quote_ident(role)
    )))
    .execute(&mut session)
    .await;
    let _ = session.close().await;
    dropped
        .map(|_| ())
        .map_err(|e| query_error(admin, "DROP ROLE", &e))
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, what PostgreSQL stores for a
/// SCRAM password (RFC 5802/7677; as libpq's `PQencryptPasswordConn` computes it).
fn scram_verifier(password: &SecretString) -> Result<String, BackupError> {
    const ITERATIONS: u32 = 4096;
    let password = password.expose_secret();
    if password.is_empty() || !password.is_ascii() {
        // Non-ASCII passwords go through SASLprep on the server; ASCII ones are used as is.
        return Err(BackupError::Config(
            "the backup role's password must be non-empty ASCII (a generated one is best)"
                .to_owned(),
        ));
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salted = pbkdf2_sha256(password.as_bytes(), &salt, ITERATIONS)?;
    let client_key = hmac_sha256(&salted, b"Client Key")?;
    let server_key = hmac_sha256(&salted, b"Server Key")?;
    let stored_key = Sha256::digest(client_key);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    ))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], BackupError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| BackupError::Config(format!("cannot hash the password: {e}")))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// PBKDF2-HMAC-SHA-256 with one 32-byte output block.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], BackupError> {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &first)?;
    let mut result = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &u)?;
        for (r, b) in result.iter_mut().zip(u.iter()) {
            *r ^= b;
        }
    }
    Ok(result)
}

/// Something about the configured backup role worth fixing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrivilegeWarning {
    /// The role is a superuser: a leaked backup credential could do anything.
    Superuser { role: String },
    /// The role can change data (INSERT, UPDATE, DELETE or TRUNCATE) in these tables.
    CanWrite { tables: Vec<String> },
    /// The role can create objects in these schemas or databases.
    CanCreate { places: Vec<String> },
    /// The role cannot read these tables or sequences: pg_dump would fail.
    MissingSelect { objects: Vec<String> },
    /// The role cannot use these schemas, which hold tables: pg_dump would fail.
    MissingSchemaUsage { schemas: Vec<String> },
}

impl PrivilegeWarning {
    /// Whether a backup with this role would fail (as opposed to merely being over-privileged).
    pub fn blocks_backup(&self) -> bool {
        matches!(
            self,
            PrivilegeWarning::MissingSelect { .. } | PrivilegeWarning::MissingSchemaUsage { .. }
        )
    }
}

/// At most this many names in a warning's message.
const LISTED: usize = 5;

fn listing(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        format!("{shown} and {} more", names.len() - LISTED)
    } else {
        shown
    }
}

impl std::fmt::Display for PrivilegeWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeWarning::Superuser { role } => write!(
                f,
                "the backup role {role} is a superuser; create a read-only role for backups \
                 (statehouse can create one) so a leaked credential cannot change anything"
            ),
            PrivilegeWarning::CanWrite { tables } => write!(
                f,
                "the backup role can change data in {}; backups only need SELECT",
                listing(tables)
            ),
            PrivilegeWarning::CanCreate { places } => write!(
                f,
                "the backup role can create objects in {}; backups need no CREATE privilege",
                listing(places)
            ),
            PrivilegeWarning::MissingSelect { objects } => write!(
                f,
                "the backup role cannot read {}, so pg_dump will fail; GRANT SELECT on them",
                listing(objects)
            ),
            PrivilegeWarning::MissingSchemaUsage { schemas } => write!(
                f,
                "the backup role has no USAGE on the schema(s) {}, so pg_dump will fail; GRANT \
                 USAGE on them",
                listing(schemas)
            ),
        }
    }
}

/// Checks what the role of `connection` may do in its database.
pub async fn check_privileges(
    connection: &PgConnection,
) -> Result<Vec<PrivilegeWarning>, BackupError> {
    let mut session = connection.connect().await?;
    let result = privileges_of_session(connection, &mut session).await;
    let _ = session.close().await;
    result
}

async fn privileges_of_session(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
) -> Result<Vec<PrivilegeWarning>, BackupError> {
    let names = async |session: &mut sqlx::PgConnection, what: &str, sql: String| {
        sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *session)
            .await
            .map(|rows| rows.into_iter().map(|(n,)| n).collect::<Vec<_>>())
            .map_err(|e| query_error(connection, what, &e))
    };
    let (role, superuser): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *session)
    .await
    .map_err(|e| query_error(connection, "reading the role", &e))?;
    if superuser {
        // A superuser can do everything; the other warnings would only repeat it.
        return Ok(vec![PrivilegeWarning::Superuser { role }]);
    }
    // Tables pg_dump reads: ordinary and partitioned tables and sequences, not those of
    // extensions.
    let dumped = format!(
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {USER_SCHEMA}
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                           AND d.objid = c.oid AND d.deptype = 'e')"
    );
    let name = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)";
    let mut warnings = Vec::new();
    let writable = names(
        session,
        "checking write privileges",
        format!(
            "SELECT {name} {dumped} AND c.relkind IN ('r', 'p')
               AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') ORDER BY 1"
        ),
    )
    .await?;
    if !writable.is_empty() {
        warnings.push(PrivilegeWarning::CanWrite { tables: writable });
    }
    let mut places = names(
        session,
        "checking create privileges",
        "SELECT 'database ' || quote_ident(current_database())
         WHERE has_database_privilege(current_database(), 'CREATE')"
            .to_owned(),
    )
    .await?;
    places.extend(
        names(
            session,
            "checking create privileges",
            format!(
                "SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n
                 WHERE {USER_SCHEMA} AND has_schema_privilege(n.oid, 'CREATE') ORDER BY 1"
            ),
        )
        .await?,
    );
    if !places.is_empty() {
        warnings.push(PrivilegeWarning::CanCreate { places });
    }
    let unusable = names(
        session,
        "checking schema privileges",
        format!(
            "SELECT DISTINCT quote_ident(n.nspname) {dumped} AND c.relkind IN ('r', 'p', 'S')
               AND NOT has_schema_privilege(n.oid, 'USAGE') ORDER BY 1"
        ),
    )
    .await?;
    if !unusable.is_empty() {
        warnings.push(PrivilegeWarning::MissingSchemaUsage { schemas: unusable });
    }
    let unreadable = names(
        session,
        "checking read privileges",
        format!(
            "SELECT {name} {dumped} AND c.relkind IN ('r', 'p', 'S')
               AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY 1"
        ),
    )
    .await?;
    if !unreadable.is_empty() {
        warnings.push(PrivilegeWarning::MissingSelect {
            objects: unreadable,
        });
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn role_names_are_validated() {
        for ok in ["statehouse_backup", "_x", "b2"] {
            validate_role_name(ok).unwrap();
        }
        for bad in [
            "",
            "pg_backup",
            "2x",
            "Backup",
            "a-b",
            "a\"b",
            "public",
            &"x".repeat(64),
        ] {
            let err = validate_role_name(bad).unwrap_err().to_string();
            assert!(err.contains("lowercase letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn pbkdf2_matches_the_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"passwd", b"salt", 1).unwrap()),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        let verifier = scram_verifier(&"pw".to_owned().into()).unwrap();
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
        assert!(scram_verifier(&"pässword".to_owned().into()).is_err());
    }
}
