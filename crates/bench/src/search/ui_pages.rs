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
    let target_dir = tempfile::tempdir()?;
    backed_up_database(services, &backups, ws, target_dir.path()).await?;
    let app = router(AppState {
        services: services.clone(),
        backups,
        max_state_bytes: 64 << 20,
        oidc: None,
        s3_endpoint: None,
        s3_tls: false,
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
        (
            "backups (databases)",
            format!("/ui/backups?ws={ws}"),
            Some(format!("/api/v1/workspaces/{ws}/databases")),
        ),
        (
            "database page (history, charts)",
            format!("/ui/database/{ws}/shop"),
            Some(format!(
                "/api/v1/workspaces/{ws}/backups?database=shop&limit=30"
            )),
        ),
        (
            "database settings (retention preview)",
            format!("/ui/database/{ws}/shop/settings"),
            None,
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

/// Backups kept for the database pages: two months of daily backups.
const BACKUPS: i64 = 60;

/// A registered database `shop` (never connected to: its pages read the store only) on a local
/// target, with [`BACKUPS`] succeeded daily backups of growing size.
async fn backed_up_database(
    services: &Services,
    backups: &BackupService,
    ws: &str,
    dir: &std::path::Path,
) -> Result<()> {
    use statehouse_backup::service::{DatabaseSpec, TargetInput};
    use statehouse_backup::settings::{ConnectionSettings, DatabaseSettings};
    use statehouse_backup::targets::{LocalSpec, TargetSpec};
    use statehouse_core::backups::{BackupKind, BackupRecord, BackupStatus, BackupTrigger};

    let operator = Principal::local_operator();
    let input = TargetInput {
        name: "nas".into(),
        spec: TargetSpec::Local(LocalSpec {
            path: dir.display().to_string(),
        }),
    };
    backups
        .create_target(&operator, ws, input)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let (connection, _) = ConnectionSettings::from_url("postgres://backup@db.invalid:5432/shop")
        .map_err(|e| anyhow!("{e}"))?;
    let mut settings = DatabaseSettings::new(connection);
    settings.retention.keep_days = Some(7);
    settings.retention.keep_weekly = Some(4);
    settings.retention.keep_monthly = Some(6);
    let spec = DatabaseSpec {
        name: "shop".into(),
        target: "nas".into(),
        settings,
        password: None,
        enabled: false,
    };
    let db = backups
        .create_database(&operator, ws, spec)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let store = services.backup_store();
    let workspace_id = db_workspace_id(services, ws).await?;
    let record = store
        .database(&workspace_id, &db.id)
        .await?
        .ok_or_else(|| anyhow!("the registered database is gone"))?;
    let now = services.now();
    for day in 0..BACKUPS {
        let at = now.plus_millis(-(BACKUPS - day) * 86_400_000);
        let bytes = 40_000_000 + day * 250_000;
        let backup = BackupRecord {
            id: format!("bench-backup-{day:03}"),
            workspace_id: workspace_id.clone(),
            database_id: db.id.clone(),
            db_name: Some("shop".into()),
            kind: BackupKind::Database,
            server_run: None,
            target_id: record.target_id.clone(),
            object: Some(format!("shop/shop-{day:03}.dump.zst.age")),
            status: BackupStatus::Succeeded,
            trigger: BackupTrigger::Schedule,
            attempt: 1,
            requested_by: "schedule".into(),
            queued_at: at,
            not_before: at,
            started_at: Some(at),
            finished_at: Some(at.plus_millis(30_000 + day * 200)),
            lease_owner: None,
            lease_until: None,
            stored_bytes: Some(bytes),
            dump_bytes: Some(bytes * 4),
            sha256: Some(format!("{day:064x}")),
            server_version: Some("15.18".into()),
            error: None,
            detail: serde_json::json!({}),
            verification: None,
        };
        store.insert_backup(&backup).await?;
    }
    Ok(())
}

async fn db_workspace_id(services: &Services, ws: &str) -> Result<String> {
    let (workspace, _) = services
        .workspace_for(&Principal::local_operator(), ws)
        .await?;
    Ok(workspace.id)
}
