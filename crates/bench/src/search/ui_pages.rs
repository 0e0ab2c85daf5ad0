//! The web UI's pages on the search section's seeded store (10,000 states, 1,000,000 indexed
//! resource instances): each page rendered through the server's router in-process (route →
//! service → store → template, no network), signed in with a browser session, timed per
//! request. Baseline: the page's REST API twin (the same services, JSON instead of a template)
//! where it has one.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use statehouse_backup::service::{BackupOptions, BackupService};
use statehouse_core::access::Principal;
use statehouse_core::model::Workspace;
use statehouse_core::service::Services;
use statehouse_server::{AppState, router};
use tower::ServiceExt;

use crate::stats::Summary;

pub struct PageResult {
    pub label: &'static str,
    pub path: String,
    pub page: Summary,
    pub bytes: usize,
    /// The REST API twin, when the page has one.
    pub api: Option<(String, Summary)>,
}

const PASSWORD: &str = "bench page password";

/// A state written through the real write path (so its page, outputs and diff have a real
/// body): `instances` aws_instance-like resources and three outputs, version `serial`.
fn real_state(serial: i64, instances: usize) -> Vec<u8> {
    let resources: Vec<serde_json::Value> = (0..instances)
        .map(|i| {
            serde_json::json!({
                "mode": "managed", "type": "aws_instance", "name": format!("web{i}"),
                "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
                "instances": [{"schema_version": 1, "attributes": {
                    "id": format!("i-{serial:04}{i:08x}"),
                    "arn": format!("arn:aws:ec2:eu-west-1:123456789012:instance/i-{i:08x}"),
                    "instance_type": if serial % 2 == 0 { "t3.small" } else { "t3.medium" },
                    "tags": {"Name": format!("web-{i}"), "serial": serial.to_string()}
                }}]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": "bench-ui",
        "outputs": {
            "region": {"value": "eu-west-1", "type": "string"},
            "replicas": {"value": serial, "type": "number"},
            "db_password": {"value": "hunter2", "type": "string", "sensitive": true}
        },
        "resources": resources
    }))
    .unwrap_or_default()
}

async fn get(app: &axum::Router, path: &str, cookie: &str) -> Result<(Duration, usize)> {
    let request = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())?;
    let started = Instant::now();
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    let elapsed = started.elapsed();
    if status != StatusCode::OK {
        return Err(anyhow!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    Ok((elapsed, body.len()))
}

async fn time(
    app: &axum::Router,
    path: &str,
    cookie: &str,
    samples: usize,
) -> Result<(Summary, usize)> {
    // One untimed request first: statement caches and the page's first allocation.
    let (_, bytes) = get(app, path, cookie).await?;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        times.push(get(app, path, cookie).await?.0);
    }
    Ok((Summary::of(&times).context("no samples")?, bytes))
}

/// Times every main page `samples` times on the seeded store behind `services`.
pub async fn measure(
    services: &Services,
    workspaces: &[Workspace],
    samples: usize,
) -> Result<Vec<PageResult>> {
    let operator = Principal::local_operator();
    services
        .create_user(&operator, "bench-admin", Some(PASSWORD), true)
        .await?;
    let ws = &workspaces[0].name;
    // Two real versions of one state, and a held lock on another, for the state page, the
    // diff and the overview's lock list.
    for serial in 1..=2 {
        services
            .write_state(&operator, ws, "ui/app", real_state(serial, 200), None, None)
            .await?;
    }
    let logged_in = services.login("bench-admin", PASSWORD, None).await?;
    let cookie = format!("statehouse_session={}", logged_in.secret.expose());
    let backups = BackupService::new(services.clone(), BackupOptions::default())
        .map_err(|e| anyhow!("{e}"))?;
    let app = router(AppState {
        services: services.clone(),
        backups,
        max_state_bytes: 64 << 20,
        oidc: None,
    });

    let pages: Vec<(&'static str, String, Option<String>)> = vec![
        ("overview", "/".into(), None),
        (
            "states list",
            format!("/ui/states?ws={ws}"),
            Some(format!("/api/v1/workspaces/{ws}/states?limit=50")),
        ),
        (
            "states list, by last change",
            format!("/ui/states?ws={ws}&sort=changed"),
            Some(format!(
                "/api/v1/workspaces/{ws}/states?limit=50&sort=changed"
            )),
        ),
        (
            "states list, prefix + changed 30 d",
            format!("/ui/states?ws={ws}&prefix=env%2Fsvc-01&changed=30d"),
            None,
        ),
        (
            "state page (200 resources)",
            format!("/ui/state/{ws}/ui/app"),
            Some(format!("/api/v1/workspaces/{ws}/states/ui%2Fapp")),
        ),
        (
            "state page of a seeded state",
            format!("/ui/state/{ws}/env/svc-00000"),
            None,
        ),
        (
            "diff of two versions",
            format!("/ui/diff/{ws}/ui/app?from=1&to=2"),
            Some(format!(
                "/api/v1/workspaces/{ws}/states/ui%2Fapp/diff?from=1&to=2"
            )),
        ),
        (
            "search by type (prefix)",
            "/ui/search?type=aws_&match=prefix".into(),
            Some("/api/v1/search/resources?type=aws_&match=prefix&limit=50".into()),
        ),
        (
            "search by identifier",
            "/ui/search?q=i-0000".into(),
            Some("/api/v1/search/resources?q=i-0000&limit=50".into()),
        ),
        (
            "audit log",
            "/ui/audit".into(),
            Some("/api/v1/audit?limit=50".into()),
        ),
    ];
    let mut results = Vec::new();
    for (label, path, api) in pages {
        eprintln!("  page: {label}");
        let (page, bytes) = time(&app, &path, &cookie, samples).await?;
        let api = match api {
            Some(api_path) => Some((
                api_path.clone(),
                time(&app, &api_path, &cookie, samples).await?.0,
            )),
            None => None,
        };
        results.push(PageResult {
            label,
            path,
            page,
            bytes,
            api,
        });
    }
    Ok(results)
}
