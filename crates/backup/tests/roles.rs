//! The read-only backup role and the privilege check, against a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use age::secrecy::SecretString;
use common::*;
use statehouse_backup::{
    Encryption, PgConnection, PrivilegeWarning, check_privileges, create_readonly_role,
    generate_key_pair,
};

fn psql_try(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Every privilege in the database (tables, sequences, schemas, the database itself, default
/// privileges), one line each, except those granted to `except`.
fn privileges_except(url: &str, except: &str) -> String {
    psql(
        url,
        &format!(
            "WITH acls AS (
               SELECT 'relation ' || c.oid::regclass::text AS obj,
                      (aclexplode(coalesce(c.relacl, acldefault(
                          (CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner)))).*
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
             UNION ALL
               SELECT 'schema ' || n.nspname,
                      (aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner)))).*
               FROM pg_namespace n
             UNION ALL
               SELECT 'database ' || d.datname,
                      (aclexplode(coalesce(d.datacl, acldefault('d', d.datdba)))).*
               FROM pg_database d WHERE d.datname = current_database()
             UNION ALL
               SELECT 'default ' || pg_get_userbyid(d.defaclrole) || ' '
                        || d.defaclnamespace::regnamespace::text || ' ' || d.defaclobjtype::text,
                      (aclexplode(d.defaclacl)).*
               FROM pg_default_acl d
             ), named AS (
               SELECT obj, CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(grantee) END
                        AS who, privilege_type, is_grantable, pg_get_userbyid(grantor) AS grantor
               FROM acls
             )
             SELECT coalesce(string_agg(obj || ' ' || who || ' ' || privilege_type || ' '
                                        || is_grantable || ' by ' || grantor, E'\\n'
                                        ORDER BY obj, who, privilege_type), '')
             FROM named WHERE who <> '{except}'"
        ),
    )
}

#[tokio::test]
async fn the_read_only_role_reads_and_dumps_everything_and_changes_nothing_else() {
    let Some(admin) = test_url() else { return };
    require_password_group(&admin);
    let db = TestDb::create(&admin, "rl_db");
    let mut owner = password_role(&admin, "rl_owner", "owner-pw");
    owner.databases.push(db.name.clone());
    let mut other = password_role(&admin, "rl_other", "other-pw");
    other.databases.push(db.name.clone());
    psql(
        &db.url,
        &format!(
            "CREATE TABLE t1 (id serial PRIMARY KEY, v text);
             INSERT INTO t1 (v) SELECT 'v' || i FROM generate_series(1, 10) i;
             GRANT INSERT ON t1 TO {other};
             CREATE SCHEMA \"App Data\" AUTHORIZATION {owner};
             SET ROLE {owner};
             CREATE TABLE \"App Data\".\"T 2\" (id int);
             INSERT INTO \"App Data\".\"T 2\" VALUES (1), (2);
             RESET ROLE;",
            other = other.name,
            owner = owner.name
        ),
    );
    let role = unique("rl_reader");
    let _guard = TestRole {
        admin_url: admin.clone(),
        name: role.clone(),
        databases: vec![db.name.clone()],
    };
    let before = privileges_except(&db.url, &role);
    assert!(
        before.contains(&format!("relation t1 {} INSERT", other.name)),
        "{before}"
    );

    let admin_connection = PgConnection::from_url(&admin).unwrap();
    let password = SecretString::from("reader-password-3f9".to_owned());
    create_readonly_role(
        &admin_connection,
        &role,
        &password,
        std::slice::from_ref(&db.name),
    )
    .await
    .unwrap();

    // Nothing granted to PUBLIC or any other role changed.
    assert_eq!(privileges_except(&db.url, &role), before);
    assert_eq!(
        psql(
            &admin,
            &format!(
                "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls
                 FROM pg_roles WHERE rolname = '{role}'"
            )
        ),
        "t|f|f|f|f"
    );

    // Its password works (the role now needs it) and it reads everything...
    psql(&admin, &format!("GRANT {PASSWORD_GROUP} TO {role}"));
    let reader_url = url_as(&db.url, &role, "reader-password-3f9");
    assert!(psql_try(&url_as(&db.url, &role, "nope"), "SELECT 1").is_err());
    assert_eq!(psql(&reader_url, "SELECT count(*) FROM t1"), "10");
    assert_eq!(
        psql(&reader_url, "SELECT count(*) FROM \"App Data\".\"T 2\""),
        "2"
    );
    assert_eq!(psql(&reader_url, "SELECT last_value FROM t1_id_seq"), "10");
    // ...and nothing else.
    for sql in [
        "INSERT INTO t1 (v) VALUES ('x')",
        "UPDATE t1 SET v = 'y'",
        "DELETE FROM \"App Data\".\"T 2\"",
        "TRUNCATE t1",
        "CREATE TABLE mine (x int)",
        "CREATE TABLE \"App Data\".mine (x int)",
        "CREATE SCHEMA mine",
        "SELECT nextval('t1_id_seq')",
    ] {
        let err = psql_try(&reader_url, sql).expect_err(sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }

    // Tables and sequences created later by the owners are readable too.
    psql(
        &db.url,
        &format!(
            "CREATE TABLE t4 (id bigserial, x int); INSERT INTO t4 (x) VALUES (1);
             SET ROLE {owner};
             CREATE TABLE \"App Data\".later (x int); INSERT INTO \"App Data\".later VALUES (7);
             RESET ROLE;",
            owner = owner.name
        ),
    );
    assert_eq!(psql(&reader_url, "SELECT count(*) FROM t4"), "1");
    assert_eq!(psql(&reader_url, "SELECT x FROM \"App Data\".later"), "7");
    assert_eq!(psql(&reader_url, "SELECT last_value FROM t4_id_seq"), "1");

    // The privilege check finds nothing to complain about, and pg_dump works as the role.
    let reader = PgConnection::from_url(&reader_url).unwrap();
    assert_eq!(check_privileges(&reader).await.unwrap(), vec![]);
    let (pg_dump, _) = pg_dump_for(&admin).await;
    let (_, recipient) = generate_key_pair();
    let mut options = dump_options(
        pg_dump,
        &reader_url,
        Encryption::from_config(&[recipient], None).unwrap(),
    );
    options.total_timeout = Duration::from_secs(60);
    let outcome = statehouse_backup::dump_to(&options, &mut tokio::io::sink())
        .await
        .unwrap();
    let counts = outcome.row_counts.unwrap();
    assert_eq!(counts.get("public.t1"), Some(&10));
    assert_eq!(counts.get("App Data.T 2"), Some(&2));
    assert_eq!(counts.get("App Data.later"), Some(&1));

    // The same name again is refused, and so are bad names and unknown databases.
    let err = create_readonly_role(
        &admin_connection,
        &role,
        &password,
        std::slice::from_ref(&db.name),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = create_readonly_role(
        &admin_connection,
        "Bad\"Name",
        &password,
        std::slice::from_ref(&db.name),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("lowercase letters"), "{err}");
    let fresh = unique("rl_never");
    let err = create_readonly_role(
        &admin_connection,
        &fresh,
        &password,
        &["no_such_database_for_roles".to_owned()],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(
        psql(
            &admin,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{fresh}'")
        ),
        "0"
    );
}

#[tokio::test]
async fn the_privilege_check_warns_about_too_much_and_too_little() {
    let Some(admin) = test_url() else { return };
    let db = TestDb::create(&admin, "rl_chk");
    psql(
        &db.url,
        "CREATE TABLE open_t (id serial, x int); CREATE SCHEMA hidden;
         CREATE TABLE hidden.secret (x int); CREATE TABLE public.locked (x int);",
    );
    let superuser = PgConnection::from_url(&db.url).unwrap();
    assert_eq!(
        check_privileges(&superuser).await.unwrap(),
        vec![PrivilegeWarning::Superuser {
            role: "postgres".to_owned()
        }]
    );

    let mut writer = password_role(&admin, "rl_writer", "writer-pw");
    writer.databases.push(db.name.clone());
    psql(
        &db.url,
        &format!(
            "GRANT SELECT, INSERT ON open_t TO {w}; GRANT SELECT ON open_t_id_seq TO {w};
             GRANT CREATE ON SCHEMA public TO {w};",
            w = writer.name
        ),
    );
    let connection = PgConnection::from_url(&url_as(&db.url, &writer.name, "writer-pw")).unwrap();
    let warnings = check_privileges(&connection).await.unwrap();
    assert_eq!(
        warnings,
        vec![
            PrivilegeWarning::CanWrite {
                tables: vec!["public.open_t".to_owned()]
            },
            PrivilegeWarning::CanCreate {
                places: vec!["schema public".to_owned()]
            },
            PrivilegeWarning::MissingSchemaUsage {
                schemas: vec!["hidden".to_owned()]
            },
            PrivilegeWarning::MissingSelect {
                objects: vec!["hidden.secret".to_owned(), "public.locked".to_owned()]
            },
        ]
    );
    assert!(!warnings[0].blocks_backup() && warnings[3].blocks_backup());
    let text = warnings[3].to_string();
    assert!(
        text.contains("hidden.secret, public.locked") && text.contains("pg_dump will fail"),
        "{text}"
    );
}
