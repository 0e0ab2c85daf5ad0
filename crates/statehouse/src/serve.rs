//! `statehouse serve`.

use anyhow::Result;
use statehouse_backup::service::{BackupOptions, BackupService};
use statehouse_server::maintenance::run_maintenance;
use statehouse_server::metrics::MetricsEndpoint;
use statehouse_server::webhook_sender::{
    HttpTransport, Retention, run_retention, run_webhook_worker,
};
use statehouse_server::{AppState, DRAIN_TIMEOUT, router, serve};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::instance;

pub async fn run(config: Config) -> Result<()> {
    crate::logging::init(&config.log_format);
    // First, so that nothing counted during the start is lost.
    let recorder = match config.metrics.enabled {
        true => Some(statehouse_server::metrics::install().map_err(anyhow::Error::msg)?),
        false => None,
    };
    let metrics_token = config.metrics.token()?;
    // Read before anything else is opened: a certificate that cannot be served stops the start.
    let certificate = match config.tls.files()? {
        Some(files) => {
            Some(statehouse_server::tls::Certificate::load(files).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let acceptor = certificate
        .as_ref()
        .map(|c| c.acceptor().map_err(anyhow::Error::msg))
        .transpose()?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let limits =
        crate::open_files::fit(config.http.limits()?, crate::open_files::raise_soft_limit());
    let proxies = config.trusted_proxies()?;
    let instance = instance::open(&config, instance::Access::CreateIfMissing).await?;
    let services = instance
        .services
        .clone()
        .with_state_metric_labels(config.metrics.state_labels);
    // Before the one-time admin token is shown: a bad [oidc] section stops the start first.
    let oidc = crate::oidc::login(&config, &services)?;
    if instance.key_created {
        say(format_args!(
            "created master key file {} — back it up now, separately from the database: without it no state can be read",
            instance.key_file.path().display()
        ));
    }
    // Listen before the one-time admin token is minted and shown: a start that fails here
    // (address in use) leaves the token unclaimed, and the next start shows it.
    let listener = bind(&config.listen, "STATEHOUSE_LISTEN").await?;
    let addr = listener.local_addr()?;
    let s3_listener = match config.s3_listen.as_str() {
        "off" | "" => None,
        s3_listen => Some(
            bind(
                s3_listen,
                "STATEHOUSE_S3_LISTEN; `off` turns the S3 endpoint off",
            )
            .await?,
        ),
    };
    let metrics_listener = match (&recorder, config.metrics.listen.trim()) {
        (Some(_), listen) if !listen.is_empty() => Some(
            bind(
                listen,
                "STATEHOUSE_METRICS__LISTEN; empty serves /metrics on the main listener",
            )
            .await?,
        ),
        _ => None,
    };
    if let Some(secret) = services.claim_bootstrap_token().await? {
        say(format_args!(
            "admin token (shown once): {}",
            secret.expose()
        ));
        say(format_args!(
            "it belongs to the instance admin user \"admin\", which has no password yet: \
             open {scheme}://{addr}/ui/setup and set one with this token, or run `statehouse user passwd admin`"
        ));
    }
    tracing::info!(store = services.store_kind(), %addr, "statehouse started");
    let blocks: Vec<String> = proxies.blocks().map(ToString::to_string).collect();
    if !blocks.is_empty() {
        say(format_args!(
            "trusting X-Forwarded-For/Forwarded/X-Forwarded-Proto from {}",
            blocks.join(", ")
        ));
    }
    say(format_args!("statehouse listening on {scheme}://{addr}"));
    say(format_args!("web UI: {scheme}://{addr}/"));
    let outbound = config.outbound_policy();
    let backups = BackupService::new(
        services.clone(),
        BackupOptions {
            self_backup: crate::self_backup::setup(&config)?,
            outbound: outbound.clone(),
            ..BackupOptions::default()
        },
    )?;
    let s3_addr = s3_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut app = router(AppState {
        services: services.clone().with_shutdown(stop_rx.clone()),
        backups: backups.clone(),
        max_state_bytes: usize::try_from(config.max_state_bytes).unwrap_or(usize::MAX),
        oidc,
        s3_endpoint: s3_addr,
        s3_tls: acceptor.is_some(),
    });
    let metrics_endpoint =
        recorder.map(|handle| MetricsEndpoint::new(handle, backups.clone(), metrics_token));
    let mut metrics_server = None;
    match (metrics_endpoint, metrics_listener) {
        (Some(endpoint), Some(listener)) => {
            let metrics_addr = listener.local_addr()?;
            say(format_args!("metrics: http://{metrics_addr}/metrics"));
            // Plain HTTP: scrapers reach it on a private address (see README, Metrics).
            metrics_server = Some(tokio::spawn(serve(
                listener,
                statehouse_server::metrics::routes(endpoint),
                limits,
                None,
                Default::default(),
                stop_rx.clone(),
            )));
        }
        (Some(endpoint), None) => {
            say(format_args!("metrics: {scheme}://{addr}/metrics"));
            app = app.merge(statehouse_server::metrics::routes(endpoint));
        }
        (None, _) => {}
    }
    // Audit entries a previous run committed but did not seal (killed) go into the chain now.
    services.flush_journal().await;
    let background = [
        tokio::spawn(run_maintenance(services.clone(), stop_rx.clone())),
        tokio::spawn(services.clone().run_key_checks(stop_rx.clone())),
        tokio::spawn(run_webhook_worker(
            services.clone(),
            HttpTransport::new(outbound)?,
            stop_rx.clone(),
        )),
        tokio::spawn(backups.clone().run_scheduler(stop_rx.clone())),
        tokio::spawn(backups.clone().run_notifications(stop_rx.clone())),
        tokio::spawn(run_retention(
            services.clone(),
            Retention {
                audit: config.audit_retention.0,
                events: config.event_retention.0,
            },
            stop_rx.clone(),
        )),
    ];
    let s3_server = match (s3_listener, s3_addr) {
        (Some(s3_listener), Some(s3_addr)) => {
            let s3_app = statehouse_server::s3::router(
                services.clone(),
                &statehouse_server::s3::S3Options {
                    max_object_bytes: usize::try_from(config.max_state_bytes).unwrap_or(usize::MAX),
                    domains: config.s3_domains.clone(),
                },
            )
            .map_err(anyhow::Error::msg)?;
            say(format_args!("S3 endpoint (Pulumi): {scheme}://{s3_addr}"));
            Some(tokio::spawn(serve(
                s3_listener,
                s3_app,
                limits,
                acceptor.clone(),
                proxies.clone(),
                stop_rx.clone(),
            )))
        }
        _ => None,
    };
    if let Some(certificate) = certificate {
        tokio::spawn(certificate.watch(stop_rx.clone()));
    }
    let server = serve(listener, app, limits, acceptor, proxies, stop_rx.clone());
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
    });

    let mut stop_rx = stop_rx;
    tokio::select! {
        () = server => {}
        _ = async {
            let _ = stop_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => tracing::warn!("drain timeout reached; exiting with requests still in flight"),
    }
    // The shutdown signal also stopped the background work (a webhook POST in flight finishes
    // or times out); then every audit entry and event still queued is stored before exiting.
    for task in background {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
    }
    if let Some(s3_server) = s3_server {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, s3_server).await;
    }
    if let Some(metrics_server) = metrics_server {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, metrics_server).await;
    }
    services.flush_journal().await;
    tracing::info!("stopped");
    Ok(())
}

/// A line for the operator on stdout. A closed stdout does not stop the server.
/// Listens on `address`; when it cannot, says why and what to do (`setting` names where the
/// address comes from).
async fn bind(address: &str, setting: &str) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                ": another program listens there (`ss -ltnp` shows which; `statehouse doctor` checks every address): stop it or choose another port"
            }
            std::io::ErrorKind::PermissionDenied => {
                ": ports below 1024 need privileges; use a higher port, or a reverse proxy in front"
            }
            std::io::ErrorKind::AddrNotAvailable => ": that address is not one of this host's",
            _ => "",
        };
        anyhow::anyhow!("cannot listen on {address} ({setting}): {e}{hint}")
    })
}

fn say(args: std::fmt::Arguments<'_>) {
    let _ = crate::output::stdout_line(args);
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
