//! Rows per user table, counted in the exact snapshot a dump reads (an exported snapshot that
//! pg_dump imports with `--snapshot`), so a restore can be checked against exact numbers.

use std::collections::BTreeMap;

use sqlx::Connection;

use crate::connection::{PgConnection, query_error, quote_ident};
use crate::exclusions::DumpExclusions;
use crate::pipeline::BackupError;

/// Rows per table, keyed `schema.table` (names as they are, unquoted).
pub type RowCounts = BTreeMap<String, i64>;

/// The tables whose rows pg_dump dumps: ordinary tables (partitions included; a partitioned
/// parent holds no rows of its own) outside the system schemas, without the tables that belong
/// to extensions (pg_dump leaves their contents to `CREATE EXTENSION`).
const USER_TABLES: &str = "
    SELECT n.nspname::text, c.relname::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.deptype = 'e')
    ORDER BY 1, 2";

/// Counts the rows of every user table visible to `session` (in its current transaction).
pub(crate) async fn count_rows(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
) -> Result<RowCounts, BackupError> {
    count_dumped_rows(connection, session, &DumpExclusions::default()).await
}

/// Counts the rows pg_dump dumps with `exclusions`: tables it leaves out are not counted, those
/// whose data it leaves out count as empty (as they are restored).
pub(crate) async fn count_dumped_rows(
    connection: &PgConnection,
    session: &mut sqlx::PgConnection,
    exclusions: &DumpExclusions,
) -> Result<RowCounts, BackupError> {
    let excluded = exclusions.excluded_tables(connection, session).await?;
    let tables: Vec<(String, String)> = sqlx::query_as(USER_TABLES)
        .fetch_all(&mut *session)
        .await
        .map_err(|e| query_error(connection, "listing the tables", &e))?;
    let mut counts = RowCounts::new();
    for (schema, table) in tables {
        let name = format!("{schema}.{table}");
        if excluded.left_out.contains(&name) {
            continue;
        }
        if excluded.without_rows.contains(&name) {
            counts.insert(name, 0);
            continue;
        }
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *session)
            .await
            .map_err(|e| query_error(connection, &format!("counting {schema}.{table}"), &e))?;
        counts.insert(format!("{schema}.{table}"), rows);
    }
    Ok(counts)
}

/// An open REPEATABLE READ transaction whose snapshot is exported for pg_dump. It must stay
/// open until pg_dump has finished: [`ExportedSnapshot::finish`] ends it.
pub(crate) struct ExportedSnapshot {
    connection: PgConnection,
    session: sqlx::PgConnection,
    id: String,
}

impl ExportedSnapshot {
    pub(crate) async fn begin(connection: &PgConnection) -> Result<ExportedSnapshot, BackupError> {
        let mut session = connection.connect_to_contents().await?;
        // Row security off as in pg_dump: a policy that would hide rows fails the count (and the
        // dump) instead of silently counting fewer rows. The transaction sits idle during the
        // dump, so an idle-in-transaction timeout must not end it.
        let setup = [
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "SET LOCAL row_security = off",
            "SET LOCAL idle_in_transaction_session_timeout = 0",
        ];
        for sql in setup {
            sqlx::query(sql)
                .execute(&mut session)
                .await
                .map_err(|e| query_error(connection, "starting the snapshot transaction", &e))?;
        }
        let (id,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut session)
            .await
            .map_err(|e| query_error(connection, "exporting the snapshot", &e))?;
        Ok(ExportedSnapshot {
            connection: connection.clone(),
            session,
            id,
        })
    }

    /// The snapshot's id for `pg_dump --snapshot`.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) async fn count_rows(
        &mut self,
        exclusions: &DumpExclusions,
    ) -> Result<RowCounts, BackupError> {
        count_dumped_rows(&self.connection, &mut self.session, exclusions).await
    }

    /// Ends the (read-only) transaction and the session.
    pub(crate) async fn finish(mut self) {
        let _ = sqlx::query("COMMIT").execute(&mut self.session).await;
        let _ = self.session.close().await;
    }
}
