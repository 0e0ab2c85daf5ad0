//! What PostgreSQL backups must not do behind a DBA's back, through the REST API against the
//! test PostgreSQL (`STATEHOUSE_TEST_PG_URL`) with the real pg_dump/pg_restore: a restore never
//! replaces a database that has objects unless asked (`"overwrite": true`); exclusions leave
//! out exactly what pg_dump leaves out, and full verification counts rows the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
mod common;

use backup_support::{Setup, contents, psql, setup, source_db, verify, with_db};
use serde_json::{Value, json};

async fn restore(t: &Setup, id: &str, body: Value) -> (u16, Value) {
    t.s.api(
        "POST",
        &format!("/workspaces/default/backups/{id}/restore"),
        Some(&t.admin),
        Some(body),
    )
    .await
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn restores_over_databases_with_objects_need_overwrite() {
    let Some(t) = setup(json!({})).await else {
        return;
    };
    let run = t.backup_now().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let source = with_db(&t.url, &t.db);
    let backed_up = contents(&source);
    // The live database moves on after the backup.
    psql(
        &source,
        "UPDATE customers SET name = 'changed since' WHERE id <= 10",
    );
    let live = contents(&source);
    assert_ne!(live, backed_up);
    let port = url::Url::parse(&t.url).unwrap().port().unwrap_or(5432);

    // Over its own database (no destination given): refused, saying what and how to confirm.
    let (status, body) = restore(&t, &id, json!({})).await;
    assert_eq!(status, 400, "{body}");
    let text = message(&body);
    for expected in [
        format!("database \"{}\"", t.db),
        format!(":{port}"),
        "is not empty (3 tables, views or sequences)".to_owned(),
        "\"overwrite\": true".to_owned(),
        "--force".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing in: {text}");
    }
    assert_eq!(contents(&source), live, "a refused restore changes nothing");

    // The same for another database with objects, named or given by URL.
    let other = source_db(&t.url, "other");
    let (status, body) = restore(&t, &id, json!({"database": other})).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains(&other), "{body}");
    let (status, body) = restore(&t, &id, json!({"url": with_db(&t.url, &other)})).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("\"overwrite\": true"), "{body}");

    // A new database, or an existing empty one, needs no confirmation.
    let empty = format!("empty_{}", uuid::Uuid::new_v4().simple());
    psql(&t.url, &format!("CREATE DATABASE {empty}"));
    let (status, body) = restore(&t, &id, json!({"database": empty})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created_database"], false, "{body}");
    assert_eq!(contents(&with_db(&t.url, &empty)), backed_up);

    // Confirmed: the live database is replaced by the backup.
    let (status, body) = restore(&t, &id, json!({"overwrite": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&source), backed_up);

    // Both attempts are in the audit log: the refusal as failed, with its reason.
    let (status, audit) =
        t.s.api(
            "GET",
            "/audit?action=backup.restore&order=oldest",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "failed")
        .unwrap_or_else(|| panic!("no refused restore in {audit}"));
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("\"overwrite\": true"),
        "{refused}"
    );
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "success"),
        "{audit}"
    );
}

#[tokio::test]
async fn exclusions_leave_out_schemas_tables_and_rows_and_verification_agrees() {
    let Some(t) = setup(json!({
        "exclude": {
            "schemas": ["scratch"],
            "tables": ["cache_*"],
            "table_data": ["public.audit_log"],
        }
    }))
    .await
    else {
        return;
    };
    let source = with_db(&t.url, &t.db);
    psql(
        &source,
        "CREATE SCHEMA scratch;
         CREATE TABLE scratch.tmp (id int); INSERT INTO scratch.tmp SELECT generate_series(1, 50);
         CREATE TABLE audit_log (id int, what text);
         INSERT INTO audit_log SELECT g, 'event ' || g FROM generate_series(1, 300) g;
         CREATE TABLE cache_pages (id int); INSERT INTO cache_pages VALUES (1), (2);",
    );
    let (_, shown) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        shown["settings"]["exclude"],
        json!({"schemas": ["scratch"], "tables": ["cache_*"], "table_data": ["public.audit_log"]}),
        "{shown}"
    );

    // Counted the way pg_dump dumps: with a verification server set, backups count rows.
    let (status, body) =
        t.s.api(
            "PATCH",
            "/workspaces/default/backup-encryption",
            Some(&t.admin),
            Some(json!({"verification_server_url": t.url})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = t.backup_now().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let counts = &run["detail"]["row_counts"];
    assert_eq!(counts["public.customers"], 2000, "{run}");
    assert_eq!(
        counts["public.audit_log"], 0,
        "rows left out count as none: {run}"
    );
    assert!(counts.get("public.cache_pages").is_none(), "{run}");
    assert!(counts.get("scratch.tmp").is_none(), "{run}");
    let id = run["id"].as_str().unwrap();
    let (status, verification) = verify(&t.s, &t.admin, id).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["level"], "restore", "{verification}");
    assert_eq!(verification["ok"], true, "{verification}");

    // Restored: the schema and the excluded table are absent, the table without rows empty.
    let restored = format!("excl_{}", uuid::Uuid::new_v4().simple());
    let (status, body) = restore(&t, id, json!({"database": restored})).await;
    assert_eq!(status, 200, "{body}");
    let restored_url = with_db(&t.url, &restored);
    assert_eq!(
        psql(
            &restored_url,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'scratch'"
        ),
        "0"
    );
    assert_eq!(
        psql(
            &restored_url,
            "SELECT count(*) FROM pg_class WHERE relname = 'cache_pages'"
        ),
        "0"
    );
    assert_eq!(psql(&restored_url, "SELECT count(*) FROM audit_log"), "0");
    assert_eq!(
        psql(&restored_url, "SELECT count(*) FROM customers"),
        "2000"
    );

    // Hostile patterns are refused and change nothing; {} leaves nothing out.
    for bad in [
        json!({"tables": ["a\u{0}b"]}),
        json!({"table_data": ["x\ny"]}),
        json!({"schemas": ["a.b"]}),
        json!({"tables": ["x"], "views": ["y"]}),
    ] {
        let (status, body) =
            t.s.api(
                "PATCH",
                "/workspaces/default/databases/shop",
                Some(&t.admin),
                Some(json!({"exclude": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    let (_, unchanged) =
        t.s.api(
            "GET",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(
        unchanged["settings"]["exclude"],
        shown["settings"]["exclude"]
    );
    let (status, cleared) =
        t.s.api(
            "PATCH",
            "/workspaces/default/databases/shop",
            Some(&t.admin),
            Some(json!({"exclude": {}})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["settings"]["exclude"].is_null(), "{cleared}");
}
