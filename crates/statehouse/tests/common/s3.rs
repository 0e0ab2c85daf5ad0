//! The S3 endpoint's tests: boto3 from the venv `scripts/test.sh` fills, the Python scripts
//! in `tests/s3/`, and S3 keys made with the CLI.

use std::path::PathBuf;

use super::Server;

/// The venv `scripts/test.sh` installs boto3 into.
pub fn python() -> PathBuf {
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.tools/venv/bin/python"
    ));
    assert!(
        venv.exists(),
        "boto3 is missing: run the suite through `bash scripts/test.sh` (it installs boto3 into .tools/venv)"
    );
    venv
}

pub fn script(name: &str) -> String {
    format!("{}/tests/s3/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `statehouse s3-key create`: the access key id and secret it prints once.
pub fn s3_key(server: &Server, workspace: &str, role: &str, name: &str) -> (String, String) {
    let out = server.cli(&[
        "s3-key",
        "create",
        "--workspace",
        workspace,
        "--role",
        role,
        "--name",
        name,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = |var: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {var}=")))
            .map(|v| v.trim_matches('\'').to_owned())
            .unwrap_or_else(|| panic!("`s3-key create` printed no {var} line:\n{stdout}"))
    };
    (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
}

/// A setting of `scripts/test-servers.sh` (`STATEHOUSE_TEST_S3_…`). Unset: `None`, and the
/// test skips its part, unless `CI` or `STATEHOUSE_REQUIRE_SERVERS` says the servers must run.
pub fn test_server_var(name: &str) -> Option<String> {
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

/// `tests/s3/ui_stack.py` (the stack `pulumi/shop/dev`: `checkpoint N` or `lock`) in the
/// bucket, signed with the key `(access key id, secret)`: `Ok`, or the refusal as
/// `"<S3 error code> <HTTP status>"`.
pub fn ui_stack(
    server: &Server,
    bucket: &str,
    (key_id, secret): (&str, &str),
    args: &[&str],
) -> Result<(), String> {
    let out = std::process::Command::new(python())
        .arg(script("ui_stack.py"))
        .args(args)
        .env("S3_ENDPOINT", &server.s3_url)
        .env("S3_BUCKET", bucket)
        .env("S3_KEY_ID", key_id)
        .env("S3_SECRET", secret)
        .output()
        .expect("running ui_stack.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) => Err(stdout
            .trim()
            .strip_prefix("REFUSED ")
            .unwrap_or(&stdout)
            .to_owned()),
        _ => panic!(
            "ui_stack.py {args:?} failed: {}\n{}",
            super::describe(&out),
            server.log_text()
        ),
    }
}
