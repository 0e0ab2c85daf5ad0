//! The outbound policy and the secrets around it, with the real binary:
//!
//! - the `[outbound]` configuration (environment variables here) decides where workspaces may
//!   connect: the defaults refuse this host, the refusal names the setting, nothing connects;
//! - statehouse's own PostgreSQL store is refused as a workspace's database;
//! - a change that moves where a stored secret goes needs the secret again, on the command line
//!   as through the API;
//! - at `STATEHOUSE_LOG=debug` and `trace`, a test of every storage target kind and every
//!   notifier kind, a webhook delivery, a database backup and a read-only role leave none of
//!   their secrets (nor their base64 or URL-encoded forms) in the server's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

#[path = "../../notify/tests/support/smtp.rs"]
#[allow(dead_code)] // the notifier tests use the rest
mod smtp;

use std::net::TcpListener;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{PgDatabase, Server, Store, Via, describe, pg_url, skip_e2e, unique_name};
use serde_json::{Value, json};

/// A kind to add: its name, `--set key=value` settings and secrets (name, value).
type KindSetup<Name> = (Name, Vec<String>, Vec<(String, String)>);

on_both_stores!(changing_where_a_secret_goes_needs_it_again_on_the_command_line);

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", describe(out)))
}

/// Asserts the command failed with status 1, and returns its stderr.
fn fails(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a failure\n{}",
        describe(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A listener on this host that must never be contacted.
struct Witness(TcpListener);

impl Witness {
    fn start() -> Witness {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Witness(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the listener on this host was contacted: {other:?}"),
        }
    }
}

#[test]
fn the_default_policy_refuses_this_host_and_names_the_setting() {
    if skip_e2e() {
        return;
    }
    let roots = tempfile::tempdir().unwrap();
    let roots_text = roots.path().display().to_string();
    let server = Server::start_with(
        Store::Sqlite,
        &[("STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS", &roots_text)],
    );
    let witness = Witness::start();
    let port = witness.port().to_string();
    let token = server.create_token("default", "admin", "ops");
    for via in [
        Via::Local,
        Via::Remote {
            token: Some(&token),
        },
    ] {
        let suffix = if matches!(via, Via::Local) { "l" } else { "r" };
        let run = |args: &[&str]| server.cli_output(via, args);
        let hook = format!("hook-{suffix}");
        server.cli_via(
            via,
            &[
                "notifier",
                "add",
                &hook,
                "--kind",
                "webhook",
                "--secret",
                &format!("url=http://127.1:{port}/in"),
            ],
        );
        let stderr = fails(&run(&["notifier", "test", &hook]));
        assert!(
            stderr
                .contains("refused by the outbound policy: notifiers may not connect to 127.0.0.1")
                && stderr.contains("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=notifiers"),
            "{stderr}"
        );

        let outside = format!("outside-{suffix}");
        server.cli_via(
            via,
            &[
                "target",
                "add",
                &outside,
                "--kind",
                "local",
                "--set",
                "path=/etc/statehouse",
            ],
        );
        let stderr = fails(&run(&["target", "test", &outside]));
        assert!(
            stderr.contains("the directory /etc/statehouse")
                && stderr.contains(&roots_text)
                && stderr.contains("STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS"),
            "{stderr}"
        );
        let inside = format!("inside-{suffix}");
        server.cli_via(
            via,
            &[
                "target",
                "add",
                &inside,
                "--kind",
                "local",
                "--set",
                &format!("path={roots_text}/{suffix}"),
            ],
        );
        server.cli_via(via, &["target", "test", &inside]);

        let db = format!("db-{suffix}");
        server.cli_via(
            via,
            &[
                "db",
                "add",
                &db,
                "--host",
                "0x7f000001",
                "--port",
                &port,
                "--database",
                "shop",
                "--user",
                "postgres",
                "--target",
                &inside,
            ],
        );
        let check = run(&["db", "check", &db, "--json"]);
        let text = describe(&check);
        assert!(
            text.contains("refused by the outbound policy: databases may not connect to 0x7f000001 (127.0.0.1)")
                && text.contains("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=databases"),
            "{text}"
        );
    }
    witness.assert_untouched();
}

#[test]
fn the_own_store_is_refused_as_a_workspace_database() {
    if skip_e2e() {
        return;
    }
    let temp = std::env::temp_dir().display().to_string();
    // Databases may reach this host (the test PostgreSQL runs here), nothing else may.
    let server = Server::start_with(
        Store::Postgres,
        &[
            ("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK", "databases"),
            ("STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS", &temp),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    server.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", dir.path().display()),
    ]);
    server.cli(&["db", "add", "store", "--url", &pg_url(), "--target", "nas"]);
    let out = server.cli_output(Via::Local, &["db", "backup", "store"]);
    let stderr = fails(&out);
    assert!(
        stderr.contains("statehouse's own store")
            && stderr.contains("STATEHOUSE_OUTBOUND__ALLOW_OWN_STORE=true"),
        "{stderr}"
    );
    // Another database of the same server is fine.
    let other = PgDatabase::create("own_store_other");
    server.cli(&["db", "add", "other", "--url", &other.url, "--target", "nas"]);
    server.cli(&["db", "backup", "other"]);
}

fn changing_where_a_secret_goes_needs_it_again_on_the_command_line(store: Store) {
    if skip_e2e() {
        return;
    }
    let server = Server::start(store);
    let cli = |args: &[&str]| server.cli(args);
    cli(&[
        "target",
        "add",
        "dav",
        "--kind",
        "webdav",
        "--set",
        "endpoint=https://dav.example.com/remote.php/dav",
        "--set",
        "username=backup",
        "--secret",
        "password=dav-pa55word",
    ]);
    let stderr = fails(&server.cli_output(
        Via::Local,
        &[
            "target",
            "change",
            "dav",
            "--set",
            "endpoint=https://dav.attacker.example/",
        ],
    ));
    assert!(
        stderr.contains("changing endpoint of storage target \"dav\"")
            && stderr.contains("give password again in the same change")
            && stderr.contains("--secret-stdin"),
        "{stderr}"
    );
    let shown = json_of(&cli(&["target", "show", "dav", "--json"]));
    assert_eq!(
        shown["settings"]["endpoint"], "https://dav.example.com/remote.php/dav",
        "{shown}"
    );
    let out = server.cli_with_input(
        Via::Local,
        &[
            "target",
            "change",
            "dav",
            "--set",
            "endpoint=https://dav2.example.com/",
            "--secret-stdin",
            "password",
        ],
        "new-pa55word\n",
    );
    assert!(out.status.success(), "{}", describe(&out));

    cli(&[
        "notifier",
        "add",
        "push",
        "--kind",
        "ntfy",
        "--set",
        "server=https://ntfy.example.com",
        "--secret",
        "topic=alerts",
        "--secret",
        "access_token=tk_owner",
    ]);
    let stderr = fails(&server.cli_output(
        Via::Local,
        &[
            "notifier",
            "change",
            "push",
            "--set",
            "server=https://ntfy.attacker.example",
            "--secret",
            "topic=alerts",
        ],
    ));
    assert!(
        stderr.contains("changing server of notifier \"push\"")
            && stderr.contains("give access_token again"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", dir.path().display()),
    ]);
    server.cli_with_input(
        Via::Local,
        &[
            "db",
            "add",
            "shop",
            "--host",
            "db.example.com",
            "--database",
            "shop",
            "--user",
            "backup",
            "--password-stdin",
            "--target",
            "nas",
        ],
        "db-pa55word\n",
    );
    let stderr = fails(&server.cli_output(
        Via::Local,
        &["db", "change", "shop", "--host", "db.attacker.example"],
    ));
    assert!(
        stderr.contains("would send its stored password elsewhere")
            && stderr.contains("--password-stdin"),
        "{stderr}"
    );
    let shown = json_of(&cli(&["db", "show", "shop", "--json"]));
    assert_eq!(
        shown["settings"]["connection"]["host"], "db.example.com",
        "{shown}"
    );
    cli(&[
        "db",
        "change",
        "shop",
        "--host",
        "db2.example.com",
        "--no-password",
    ]);
}

// ---- secrets in the log -----------------------------------------------------------------------

/// A test-server variable (`scripts/test-servers.sh`); missing, the kind is skipped with a note,
/// unless `CI` or `STATEHOUSE_REQUIRE_SERVERS` says the servers are part of the run.
fn server_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            let required = ["CI", "STATEHOUSE_REQUIRE_SERVERS"]
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false"));
            assert!(
                !required,
                "{name} is not set: start scripts/test-servers.sh"
            );
            eprintln!("SKIPPED part: {name} is not set (scripts/test-servers.sh)");
            None
        }
    }
}

/// An HTTP receiver that answers 200 to everything and records the bodies.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = got.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(body);
            "{\"ok\":true}"
        }
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// The forms of a secret that must not appear either: base64 and URL-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    ];
    out.sort();
    out.dedup();
    out
}

#[test]
fn no_secret_reaches_the_log_at_debug_or_trace() {
    if skip_e2e() {
        return;
    }
    for level in ["debug", "trace"] {
        secrets_stay_out_of_the_log(level);
    }
}

fn secrets_stay_out_of_the_log(level: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let temp = std::env::temp_dir().display().to_string();
    let server = Server::start_with(
        Store::Sqlite,
        &[
            ("STATEHOUSE_LOG", level),
            ("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK", "true"),
            ("STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS", &temp),
        ],
    );
    let token = server.create_token("default", "admin", "ops");
    let remote = Via::Remote {
        token: Some(&token),
    };
    // Everything runs in the server, so that its log is where it happens.
    let run = |args: &[&str]| server.cli_output(remote, args);
    let run_with = |args: &[&str], input: &str| server.cli_with_input(remote, args, input);
    let mut secrets: Vec<String> = Vec::new();
    let tag = unique_name("s");

    // Storage targets: each kind's test, with its secrets.
    let (http_base, _) = receiver(&rt);
    let mut targets: Vec<KindSetup<String>> = Vec::new();
    if let (Some(endpoint), Some(bucket), Some(id), Some(key)) = (
        server_var("STATEHOUSE_TEST_S3_ENDPOINT"),
        server_var("STATEHOUSE_TEST_S3_BUCKET"),
        server_var("STATEHOUSE_TEST_S3_ACCESS_KEY_ID"),
        server_var("STATEHOUSE_TEST_S3_SECRET_ACCESS_KEY"),
    ) {
        targets.push((
            "s3".into(),
            vec![
                format!("bucket={bucket}"),
                "region=us-east-1".into(),
                format!("endpoint={endpoint}"),
                "path_style=true".into(),
                format!("access_key_id={id}"),
                format!("prefix={tag}"),
            ],
            vec![("secret_access_key".into(), key)],
        ));
    }
    if let (Some(endpoint), Some(container), Some(account), Some(key)) = (
        server_var("STATEHOUSE_TEST_AZBLOB_ENDPOINT"),
        server_var("STATEHOUSE_TEST_AZBLOB_CONTAINER"),
        server_var("STATEHOUSE_TEST_AZBLOB_ACCOUNT_NAME"),
        server_var("STATEHOUSE_TEST_AZBLOB_ACCOUNT_KEY"),
    ) {
        targets.push((
            "azblob".into(),
            vec![
                format!("container={container}"),
                format!("account_name={account}"),
                format!("endpoint={endpoint}"),
                format!("prefix={tag}"),
            ],
            vec![("account_key".into(), key)],
        ));
    }
    if let (Some(host), Some(port), Some(user), Some(key_file), Some(root)) = (
        server_var("STATEHOUSE_TEST_SFTP_HOST"),
        server_var("STATEHOUSE_TEST_SFTP_PORT"),
        server_var("STATEHOUSE_TEST_SFTP_USER"),
        server_var("STATEHOUSE_TEST_SFTP_KEY_FILE"),
        server_var("STATEHOUSE_TEST_SFTP_ROOT"),
    ) {
        targets.push((
            "sftp".into(),
            vec![
                format!("host={host}"),
                format!("port={port}"),
                format!("user={user}"),
                format!("root={root}/{tag}"),
                "known_hosts_strategy=accept".into(),
            ],
            vec![(
                "private_key".into(),
                std::fs::read_to_string(key_file).unwrap(),
            )],
        ));
    }
    if let (Some(endpoint), Some(user), Some(password)) = (
        server_var("STATEHOUSE_TEST_FTP_ENDPOINT"),
        server_var("STATEHOUSE_TEST_FTP_USER"),
        server_var("STATEHOUSE_TEST_FTP_PASSWORD"),
    ) {
        targets.push((
            "ftp".into(),
            vec![format!("endpoint={endpoint}"), format!("username={user}")],
            vec![("password".into(), password)],
        ));
    }
    if let (Some(endpoint), Some(user), Some(password)) = (
        server_var("STATEHOUSE_TEST_WEBDAV_ENDPOINT"),
        server_var("STATEHOUSE_TEST_WEBDAV_USER"),
        server_var("STATEHOUSE_TEST_WEBDAV_PASSWORD"),
    ) {
        targets.push((
            "webdav".into(),
            vec![
                format!("endpoint={endpoint}"),
                format!("username={user}"),
                format!("root={tag}"),
            ],
            vec![("password".into(), password)],
        ));
    }
    // Google's services answer at a local receiver: the credentials go through the same code.
    let gcs_key = {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    };
    let credential = json!({
        "type": "service_account",
        "client_email": "backup@statehouse-test.iam.gserviceaccount.com",
        "private_key": gcs_key,
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string();
    secrets.extend(
        gcs_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    targets.push((
        "gcs".into(),
        vec!["bucket=bkt".into(), format!("endpoint={http_base}")],
        vec![("credential".into(), credential)],
    ));
    targets.push((
        "gdrive".into(),
        vec![
            "root=backups".into(),
            "client_id=statehouse-client".into(),
            format!("endpoint={http_base}"),
        ],
        vec![
            ("refresh_token".into(), format!("1//refresh-{tag}")),
            ("client_secret".into(), format!("GOCSPX-{tag}")),
        ],
    ));
    let local_dir = tempfile::tempdir().unwrap();
    targets.push((
        "local".into(),
        vec![format!("path={}", local_dir.path().display())],
        Vec::new(),
    ));
    for (kind, settings, target_secrets) in &targets {
        let mut args: Vec<String> = vec![
            "target".into(),
            "add".into(),
            format!("t-{kind}"),
            "--kind".into(),
            kind.clone(),
        ];
        for setting in settings {
            args.extend(["--set".into(), setting.clone()]);
        }
        // Keys and JSON files go through stdin, as people pass them.
        let by_stdin = |value: &str| value.contains('\n') || value.starts_with('{');
        for (name, value) in target_secrets {
            if !by_stdin(value) {
                args.extend(["--secret".into(), format!("{name}={value}")]);
                secrets.push(value.clone());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let multiline: Vec<&(String, String)> =
            target_secrets.iter().filter(|(_, v)| by_stdin(v)).collect();
        let out = match multiline.as_slice() {
            [] => run(&args),
            [(name, value)] => {
                secrets.extend(
                    value
                        .lines()
                        .filter(|l| !l.starts_with("-----") && l.len() > 20)
                        .map(str::to_owned),
                );
                let mut with_stdin = args.clone();
                with_stdin.extend(["--secret-stdin", name.as_str()]);
                run_with(&with_stdin, value)
            }
            _ => unreachable!(),
        };
        assert!(
            out.status.success(),
            "target add {kind}: {}",
            describe(&out)
        );
        // The test's outcome does not matter here (Google's are answered by a stand-in).
        run(&["target", "test", &format!("t-{kind}")]);
    }

    // Notifiers: each kind's test, against local receivers.
    let (notify_base, _) = receiver(&rt);
    let smtp_server = rt.block_on(smtp::SmtpServer::start(smtp::Config {
        security: smtp::Security::Plain {
            offer_starttls: true,
        },
        mechanisms: vec!["PLAIN"],
        login: Some(("alice".to_owned(), format!("smtp-{tag}"))),
        refuse_auth: false,
    }));
    let notifiers: Vec<KindSetup<&str>> = vec![
        (
            "slack",
            vec![],
            vec![(
                "webhook_url".into(),
                format!("{notify_base}/services/T0/B0/slack-{tag}"),
            )],
        ),
        (
            "discord",
            vec![],
            vec![(
                "webhook_url".into(),
                format!("{notify_base}/api/webhooks/1/discord-{tag}"),
            )],
        ),
        (
            "teams",
            vec![],
            vec![(
                "webhook_url".into(),
                format!("{notify_base}/webhookb2/teams-{tag}"),
            )],
        ),
        (
            "mattermost",
            vec![],
            vec![(
                "webhook_url".into(),
                format!("{notify_base}/hooks/mm-{tag}"),
            )],
        ),
        (
            "telegram",
            vec!["chat_id=-1001".into(), format!("api_base={notify_base}")],
            vec![("bot_token".into(), format!("123456:tg-{tag}"))],
        ),
        (
            "ntfy",
            vec![format!("server={notify_base}")],
            vec![
                ("topic".into(), format!("topic-{tag}")),
                ("access_token".into(), format!("tk_{tag}")),
            ],
        ),
        (
            "webhook",
            vec![],
            vec![
                ("url".into(), format!("{notify_base}/in?key=url-{tag}")),
                (
                    "headers".into(),
                    json!({"Authorization": format!("Bearer hdr-{tag}")}).to_string(),
                ),
            ],
        ),
        (
            "email",
            vec![
                "host=127.0.0.1".into(),
                format!("port={}", smtp_server.port),
                "security=starttls".into(),
                "username=alice".into(),
                "from=statehouse@example.com".into(),
                "to=ops@example.com".into(),
                format!("ca_certificate_pem={}", json!(smtp_server.ca_pem)),
            ],
            vec![("password".into(), format!("smtp-{tag}"))],
        ),
    ];
    secrets.extend([
        format!("Bearer hdr-{tag}"),
        format!("hdr-{tag}"),
        format!("url-{tag}"),
        format!("tg-{tag}"),
    ]);
    for (kind, settings, notifier_secrets) in &notifiers {
        let mut args: Vec<String> = vec![
            "notifier".into(),
            "add".into(),
            format!("n-{kind}"),
            "--kind".into(),
            (*kind).to_owned(),
        ];
        for setting in settings {
            args.extend(["--set".into(), setting.clone()]);
        }
        for (name, value) in notifier_secrets {
            args.extend(["--secret".into(), format!("{name}={value}")]);
            if name != "headers" {
                secrets.push(value.clone());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert!(
            out.status.success(),
            "notifier add {kind}: {}",
            describe(&out)
        );
        let tested = run(&["notifier", "test", &format!("n-{kind}"), "--json"]);
        assert_eq!(
            json_of(&tested)["ok"],
            true,
            "notifier {kind}: {}",
            describe(&tested)
        );
    }

    // A webhook delivery, signed with the webhook's secret.
    let (hook_base, hook_got) = receiver(&rt);
    let created: Value = common::http_client()
        .post(format!("{}/api/v1/workspaces/default/webhooks", server.url))
        .bearer_auth(&token)
        .json(&json!({"url": format!("{hook_base}/events"), "events": ["*"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let webhook_secret = created["secret"].as_str().unwrap().to_owned();
    secrets.push(webhook_secret);
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    common::http_client()
        .post(format!(
            "{}/api/v1/workspaces/default/webhooks/{id}/ping",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook_got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the webhook was not delivered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A database: its password, a backup, and a read-only role created through an admin URL.
    let source = PgDatabase::create("logsecrets");
    let db_password = format!("db-{tag}");
    secrets.push(db_password.clone());
    let out = run_with(
        &[
            "db",
            "add",
            "shop",
            "--url",
            &source.url,
            "--password-stdin",
            "--target",
            "t-local",
        ],
        &format!("{db_password}\n"),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(&["db", "backup", "shop"]);
    assert!(out.status.success(), "{}", describe(&out));
    let role = unique_name("log_reader");
    let admin_password = format!("adm-{tag}");
    secrets.push(admin_password.clone());
    let admin_url = source
        .url
        .replacen("://", &format!("://postgres:{admin_password}@"), 1)
        .replacen("@postgres@", "@", 1);
    let out = run_with(
        &[
            "db",
            "readonly-role",
            "shop",
            "--role",
            &role,
            "--admin-url-stdin",
        ],
        &format!("{admin_url}\n"),
    );
    let role_password = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if out.status.success() && role_password.len() >= 16 {
        secrets.push(role_password);
    } else {
        panic!("readonly-role failed: {}", describe(&out));
    }
    let _ = common::pg_execute(
        &pg_url(),
        &format!("DROP OWNED BY \"{role}\" CASCADE; DROP ROLE IF EXISTS \"{role}\""),
    );

    // The whole log, at this level.
    let log = server.log_text();
    assert!(
        log.contains(" DEBUG "),
        "the server logs at {level}: expected debug lines in\n{log}"
    );
    for secret in &secrets {
        for form in forms(secret) {
            assert!(
                !log.contains(&form),
                "a secret ({form:?}) is in the log at {level}:\n{log}"
            );
        }
    }
}
