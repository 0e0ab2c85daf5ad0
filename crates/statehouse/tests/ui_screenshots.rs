//! Screenshots of the web UI's main pages in both themes, for the README: run by
//! `scripts/screenshots.sh`, which writes them to `docs/screenshots/`. Not part of the test
//! run (it changes files in the repository).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::PathBuf;

use common::browser::Browser;
use common::s3::{s3_key, ui_stack};
use common::{PgDatabase, Server, Store, Terraform, pg_execute};
use serde_json::json;

const APPLY: &[&str] = &["apply", "-input=false", "-no-color", "-auto-approve"];
const PASSWORD: &str = "screenshot password";

#[test]
#[ignore = "writes docs/screenshots; run by scripts/screenshots.sh"]
fn screenshots() {
    let out = PathBuf::from(
        std::env::var("STATEHOUSE_SCREENSHOTS").expect("STATEHOUSE_SCREENSHOTS (output directory)"),
    );
    std::fs::create_dir_all(&out).expect("output directory");
    let server = Server::start(Store::Sqlite);
    let response = common::http_client()
        .patch(format!("{}/api/v1/users/admin", server.url))
        .bearer_auth(&server.admin_token)
        .json(&json!({"password": PASSWORD}))
        .send()
        .expect("set password");
    assert_eq!(response.status(), 200);
    let token = server.create_token("default", "editor", "ci-deploy");
    let base = server.tf_address("default", "shared/base");
    let base_dir = tempfile::tempdir().expect("temp dir");
    let mut tf = Terraform::new(base_dir.path());
    tf.set_env("TF_HTTP_USERNAME", "ci");
    tf.set_env("TF_HTTP_PASSWORD", &token);
    tf.write_config(&format!(
        r#"
terraform {{
  backend "http" {{
    address = "{base}"
  }}
}}
output "vpc_id" {{
  value = "vpc-0a1b2c3d"
}}
"#
    ));
    tf.ok(&["init", "-input=false", "-no-color"]);
    tf.ok(APPLY);
    let dirs: Vec<tempfile::TempDir> = ["prod/network", "prod/app", "staging/app"]
        .iter()
        .map(|name| {
            let dir = tempfile::tempdir().expect("temp dir");
            let address = server.tf_address("default", name);
            let mut tf = Terraform::new(dir.path());
            tf.set_env("TF_HTTP_USERNAME", "ci");
            tf.set_env("TF_HTTP_PASSWORD", &token);
            tf.write_config(&format!(
                r#"
terraform {{
  backend "http" {{
    address        = "{address}"
    lock_address   = "{address}"
    unlock_address = "{address}"
  }}
}}
variable "replicas" {{
  default = 2
}}
locals {{
  region = "eu-central-1"
}}
data "terraform_remote_state" "base" {{
  backend = "http"
  config = {{
    address  = "{base}"
    username = "ci"
    password = "{token}"
  }}
}}
output "replicas" {{
  value = var.replicas
}}
output "region" {{
  value = local.region
}}
output "db_password" {{
  value     = "hunter2-${{var.replicas}}"
  sensitive = true
}}
"#
            ));
            tf.ok(&["init", "-input=false", "-no-color"]);
            tf.ok(APPLY);
            tf.ok(&[APPLY, &["-var", "replicas=3"]].concat());
            dir
        })
        .collect();
    drop(dirs);
    let lock = json!({"ID": "8d1c5e7a-2f1b-4d7e-9a51-3f0c2b6e9d11", "Operation": "OperationTypeApply",
        "Info": "", "Who": "runner@ci-42", "Version": "1.0.3", "Created": "2026-12-03T10:00:00Z", "Path": ""});
    let response = server.request(
        "LOCK",
        &server.tf_address("default", "prod/app"),
        &token,
        serde_json::to_vec(&lock).expect("lock"),
    );
    assert_eq!(response.status(), 200);

    // A Pulumi stack, written over the S3 endpoint with a key of the workspace, and locked.
    let (id, secret) = s3_key(&server, "default", "editor", "laptop");
    for args in [&["checkpoint", "1"][..], &["checkpoint", "2"], &["lock"]] {
        ui_stack(&server, "default", (&id, &secret), args).expect("the stack");
    }

    let _source = backed_up_database(&server);

    let browser = Browser::start();
    browser.set_window_size(1280, 900);
    let pages = [
        ("login", "/ui/login"),
        ("overview", "/"),
        ("states", "/ui/states"),
        ("state", "/ui/state/default/prod/app"),
        ("diff", "/ui/diff/default/prod/network?from=1&to=2"),
        ("rollback", "/ui/rollback/default/prod/network?version=1"),
        ("search", "/ui/search?type=terraform_remote_state"),
        ("tokens", "/ui/tokens"),
        ("s3-keys", "/ui/s3-keys"),
        ("pulumi-state", "/ui/state/default/pulumi/shop/dev"),
        ("audit", "/ui/audit?action=state.write"),
        ("backups", "/ui/backups"),
        ("database", "/ui/database/default/shop"),
        ("database-settings", "/ui/database/default/shop/settings"),
        ("targets", "/ui/workspaces/default/targets"),
        ("notifiers", "/ui/workspaces/default/notifiers"),
        ("encryption", "/ui/workspaces/default/backup-encryption"),
        ("users", "/ui/users"),
    ];
    for theme in ["light", "dark"] {
        browser.goto(&format!("{}/ui/login", server.url));
        browser.execute(
            &format!("document.cookie = 'statehouse_theme={theme}; path=/'; return null;"),
            vec![],
        );
        for (name, path) in pages {
            if name == "overview" && browser.try_find("#signed-in-user").is_none() {
                browser.goto(&format!("{}/ui/login", server.url));
                browser.fill("#name", "admin");
                browser.fill("#password", PASSWORD);
                browser.click("#sign-in");
                browser.find("#signed-in-user");
            }
            browser.goto(&format!("{}{path}", server.url));
            browser.find("main");
            browser.screenshot_png(out.join(format!("{name}-{theme}.png")));
        }
        browser.click("#sign-out");
        browser.wait_for_url(|u| u.contains("signed_out"));
    }
}

/// A PostgreSQL database `shop` with a few backups of growing size on a local target, for the
/// backup pages.
fn backed_up_database(server: &Server) -> (PgDatabase, tempfile::TempDir) {
    let source = PgDatabase::create("shots");
    pg_execute(
        &source.url,
        "CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)",
    )
    .unwrap();
    let target = tempfile::tempdir().expect("temp dir");
    server.cli(&[
        "target",
        "add",
        "nas",
        "--kind",
        "local",
        "--set",
        &format!("path={}", target.path().display()),
    ]);
    server.cli(&[
        "db",
        "add",
        "shop",
        "--url",
        &source.url,
        "--target",
        "nas",
        "--schedule",
        "daily 02:30",
        "--keep-days",
        "7",
        "--keep-weekly",
        "4",
    ]);
    for rows in [20_000, 35_000, 50_000] {
        pg_execute(
            &source.url,
            &format!(
                "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, {rows}) g \
                 ON CONFLICT DO NOTHING"
            ),
        )
        .unwrap();
        server.cli(&["db", "backup", "shop"]);
    }
    server.cli(&["db", "check", "shop"]);
    server.cli(&[
        "notifier",
        "add",
        "ops-chat",
        "--kind",
        "webhook",
        "--secret",
        "url=https://chat.example.com/hooks/statehouse",
        "--events",
        "backup.failed,verification.failed,database.down",
    ]);
    (source, target)
}
