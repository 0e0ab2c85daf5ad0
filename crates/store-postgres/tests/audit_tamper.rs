//! Tampering with the audit log by SQL on PostgreSQL is detected by verification.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestSchema, fresh};
use sqlx::AssertSqlSafe;
use statehouse_store_conformance::audit::RawSql;
use statehouse_store_postgres::PgStore;

struct Attacker(PgStore);

impl RawSql for Attacker {
    async fn execute(&self, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(self.0.engine().pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn attacker(schema: &TestSchema) -> Attacker {
    Attacker(schema.open().await)
}

statehouse_store_conformance::audit_tamper_tests!(fresh(), attacker);
