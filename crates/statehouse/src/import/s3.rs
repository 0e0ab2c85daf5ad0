//! `statehouse import s3`: copy the objects a Pulumi DIY backend keeps in a bucket (AWS S3 or
//! any S3-compatible server) into a workspace, as if Pulumi had PUT each one to the S3
//! endpoint.
//!
//! The bucket is read with the S3 backup target's OpenDAL operator
//! (`statehouse_backup::targets::BucketReader`): every connection goes through the instance's
//! outbound policy, so an endpoint on this host or a private network needs the `[outbound]`
//! setting that allows storage targets there. `s3://BUCKET/sub/dir` in Pulumi's URL is
//! `--prefix sub/dir`; the objects land at the workspace's root.

use anyhow::{Result, bail};
use clap::Args;
use statehouse_backup::targets::{BucketReader, S3Spec, Secret};
use statehouse_core::access::Principal;

use super::pulumi_objects::{self, PULUMI_DIR, SourceObject};
use crate::config::Config;
use crate::instance;

#[derive(Args)]
#[command(
    after_help = "Credentials are read from the environment: AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary credentials), the keys Pulumi \
    used for the bucket. Nothing else of the AWS environment (profiles, instance roles) is used.\n\n\
    The endpoint is reached under the instance's outbound policy: one on this host \
    (127.0.0.1, localhost) needs `outbound.allow_loopback = [\"targets\"]` in the configuration, \
    or STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK=targets in this command's environment; private \
    addresses are allowed for storage targets by default."
)]
pub struct S3Args {
    /// The S3 server, e.g. https://minio.example.com:9000 (Pulumi's `endpoint=`; with its
    /// `disableSSL=true` the scheme is http://). Without it: AWS S3 in --region.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The bucket Pulumi logged in to (`s3://BUCKET`).
    #[arg(long)]
    bucket: String,
    /// Folder in the bucket the backend lives in: `s3://BUCKET/PREFIX` keeps its objects
    /// under `PREFIX/.pulumi/`.
    #[arg(long)]
    prefix: Option<String>,
    /// The bucket's region (Pulumi's `region=`; R2 takes `auto`).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Path-style requests (ENDPOINT/BUCKET/KEY), Pulumi's `s3ForcePathStyle=true`; most
    /// S3-compatible servers (MinIO, Ceph, moto) need it.
    #[arg(long)]
    path_style: bool,
    /// statehouse workspace to import into: the bucket Pulumi logs in to afterwards.
    #[arg(long)]
    workspace: String,
}

pub async fn s3(config: &Config, args: S3Args) -> Result<()> {
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    services.workspace(&args.workspace).await?;

    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) else {
        bail!(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to credentials that may list and read the bucket {:?}",
            args.bucket
        );
    };
    let prefix = args
        .prefix
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let spec = S3Spec {
        bucket: args.bucket.clone(),
        region: args.region,
        endpoint: args.endpoint,
        access_key_id: Some(id),
        secret_access_key: Some(Secret::new(secret)),
        session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
        path_style: args.path_style,
        prefix: prefix.clone(),
    };
    let reader = BucketReader::s3(spec, config.outbound_policy())?;
    let shown_prefix = prefix.as_deref().map_or(String::new(), |p| format!("{p}/"));
    let listed = reader.list_all(PULUMI_DIR).await?;
    if listed.is_empty() {
        bail!(
            "found no objects under {shown_prefix}{PULUMI_DIR} in the {}: check --bucket and --prefix \
             (Pulumi's s3://BUCKET/PREFIX); nothing was imported",
            reader.label()
        );
    }
    errln!(
        "found {} objects under {shown_prefix}{PULUMI_DIR} in the {}",
        listed.len(),
        reader.label()
    );

    let mut objects = Vec::with_capacity(listed.len());
    let mut problems = Vec::new();
    for found in listed {
        let origin = format!("{shown_prefix}{}", found.key);
        // A key that could not be stored is not read at all.
        if let Some(why) = pulumi_objects::key_problem(&found.key) {
            problems.push(format!("{origin}: {why}"));
            continue;
        }
        let bytes = reader.read(&found.key).await?;
        objects.push(SourceObject {
            origin,
            key: found.key,
            bytes,
            modified_ms: found.modified_ms,
        });
    }
    let plan = pulumi_objects::check(objects, problems)?;
    let operator = Principal {
        token_name: "import-s3".into(),
        ..Principal::local_operator()
    };
    pulumi_objects::write(services, &operator, &args.workspace, plan).await
}
