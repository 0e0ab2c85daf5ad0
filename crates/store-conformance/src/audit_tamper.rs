//! The tamper cases: raw SQL on the store's database alters, removes, reorders or inserts audit
//! entries or moves the pruned point, and verifying the chain must notice (see
//! [`crate::audit_tamper_tests`]).

use std::future::Future;
use std::sync::Arc;

use statehouse_core::audit::{AuditQuery, PRUNE_ACTION, ProblemKind, VerifyReport};
use statehouse_core::store::Store;

use crate::at;
use crate::audit::{append, record, verify};

/// Runs one SQL statement directly on the store's database, as an attacker with database
/// access would.
pub trait RawSql: Send + Sync {
    fn execute(&self, sql: &str) -> impl Future<Output = ()> + Send;
}

/// Six entries, verified intact.
async fn six_entries(store: &dyn Store) {
    let records: Vec<_> = (1..=6).map(|n| record(n, "ci", "state.write")).collect();
    append(store, &records[..3]).await;
    append(store, &records[3..]).await;
    assert!(verify(store).await.is_intact());
}

#[track_caller]
fn expect_problem(report: &VerifyReport, seq: i64, kind: ProblemKind) {
    match &report.problem {
        Some(p) => {
            assert_eq!((p.seq, p.kind), (seq, kind), "{}", p.message);
            assert!(!p.message.is_empty());
        }
        None => panic!("tampering went unnoticed: {report:?}"),
    }
}

pub async fn tamper_altered_field_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3")
        .await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Altered);
}

pub async fn tamper_altered_detail_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET detail = '{\"n\":5}' WHERE seq = 5")
        .await;
    expect_problem(&verify(store.as_ref()).await, 5, ProblemKind::Altered);
}

pub async fn tamper_removed_middle_row_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("DELETE FROM audit_entries WHERE seq = 3").await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Removed);
}

pub async fn tamper_removed_newest_rows_are_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("DELETE FROM audit_entries WHERE seq >= 5")
        .await;
    expect_problem(&verify(store.as_ref()).await, 5, ProblemKind::Truncated);
}

pub async fn tamper_reordered_rows_are_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute("UPDATE audit_entries SET seq = -3 WHERE seq = 3")
        .await;
    sql.execute("UPDATE audit_entries SET seq = 3 WHERE seq = 4")
        .await;
    sql.execute("UPDATE audit_entries SET seq = 4 WHERE seq = -3")
        .await;
    expect_problem(&verify(store.as_ref()).await, 3, ProblemKind::Broken);
}

pub async fn tamper_inserted_row_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    sql.execute(
        "INSERT INTO audit_entries (seq, at, actor, action, outcome, prev_hash, hash) \
         SELECT 7, at, 'mallory', 'state.read', 'success', hash, hash FROM audit_entries WHERE seq = 6",
    )
    .await;
    expect_problem(&verify(store.as_ref()).await, 7, ProblemKind::Inserted);
    // The chain cannot grow past it: appending names it, and works again once it is gone.
    let refused = store
        .append_journal(&[record(7, "ci", "state.write")], &[])
        .await
        .expect_err("appended past an inserted entry");
    assert!(
        refused
            .to_string()
            .contains("audit entry 7 already exists beyond the chain head (entry 6)"),
        "{refused}"
    );
    sql.execute("DELETE FROM audit_entries WHERE seq = 7").await;
    append(store.as_ref(), &[record(7, "ci", "state.write")]).await;
    assert!(verify(store.as_ref()).await.is_intact());
}

pub async fn tamper_after_pruning_is_detected_and_pruning_stays_green(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    assert_eq!(
        store
            .prune_audit(at(3_500), 100, at(10_000))
            .await
            .expect("prune"),
        3
    );
    let report = verify(store.as_ref()).await;
    assert!(
        report.is_intact(),
        "pruning keeps the chain verifiable: {report:?}"
    );
    sql.execute("DELETE FROM audit_entries WHERE seq = 4").await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
}

pub async fn tamper_entries_numbered_zero_or_below_are_detected(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    for seq in [0, -5] {
        sql.execute(&format!(
            "INSERT INTO audit_entries (seq, at, actor, action, outcome, prev_hash, hash) \
             SELECT {seq}, at, 'mallory', 'state.read', 'success', prev_hash, hash FROM audit_entries WHERE seq = 1"
        ))
        .await;
    }
    assert_eq!(
        store
            .audit_entries(&AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .expect("list")
            .len(),
        8,
        "listed"
    );
    expect_problem(&verify(store.as_ref()).await, -5, ProblemKind::Inserted);
}

/// Moves the pruned point up to entry `seq` and deletes the entries up to it, as an attacker
/// hiding recent entries would.
async fn fake_prune(sql: &impl RawSql, seq: i64) {
    sql.execute(&format!(
        "UPDATE audit_chain SET pruned_seq = {seq}, \
         pruned_hash = (SELECT hash FROM audit_entries WHERE seq = {seq}) WHERE id = 1"
    ))
    .await;
    sql.execute(&format!("DELETE FROM audit_entries WHERE seq <= {seq}"))
        .await;
}

pub async fn tamper_moved_pruned_point_is_detected(store: Arc<dyn Store>, sql: impl RawSql) {
    six_entries(store.as_ref()).await;
    fake_prune(&sql, 4).await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
}

pub async fn tamper_moved_pruned_point_after_pruning_is_detected(
    store: Arc<dyn Store>,
    sql: impl RawSql,
) {
    six_entries(store.as_ref()).await;
    assert_eq!(
        store
            .prune_audit(at(2_500), 100, at(10_000))
            .await
            .expect("prune"),
        2
    );
    assert!(verify(store.as_ref()).await.is_intact());
    fake_prune(&sql, 4).await;
    expect_problem(&verify(store.as_ref()).await, 4, ProblemKind::Removed);
    // Changing the proof itself breaks the chain at the proof.
    sql.execute(&format!(
        "UPDATE audit_entries SET detail = replace(detail, '\"through_seq\":2', '\"through_seq\":4') \
         WHERE action = '{PRUNE_ACTION}'"
    ))
    .await;
    expect_problem(&verify(store.as_ref()).await, 7, ProblemKind::Altered);
}

/// Expands to one test per tamper case, in a module named `audit_tamper`.
///
/// - `$make`: as for [`crate::conformance_tests`];
/// - `$raw`: a callable taking `&Db` and giving a future of a [`RawSql`] on that database.
#[macro_export]
macro_rules! audit_tamper_tests {
    ($make:expr, $raw:expr $(,)?) => {
        $crate::__audit_tamper_module!($make, $raw);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __audit_tamper_cases {
    ($make:expr, $raw:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((store, db)) = $crate::Fresh::into_parts($make.await) else {
                    return;
                };
                let sql = ($raw)(&db).await;
                $crate::$case(store, sql).await;
                drop(db);
            }
        )*
    };
}
