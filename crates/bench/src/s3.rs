//! `--only s3`: the S3 endpoint as Pulumi uses it, side by side with moto's S3 server (the
//! emulator from PyPI that `scripts/test.sh` installs):
//!
//! - one checkpoint cycle as Pulumi's DIY backend does it once per resource step (LIST the
//!   stack file, HEAD it, COPY it to `.bak`, PUT the new checkpoint), with 1 MB and 16 MB
//!   checkpoints, each cycle a new checkpoint (so statehouse stores a new version, durable and
//!   encrypted; moto keeps bytes in memory); the 16 MB cycle with the payload signed (Pulumi
//!   over plain HTTP) and with `UNSIGNED-PAYLOAD` (Pulumi 3.258 and later over HTTPS);
//! - `pulumi stack ls` over 1,000 stacks: LIST every page, then GET each stack, 10 at a time;
//! - the server's peak memory while a 100 MB object arrives as a multipart upload of 8 MiB
//!   parts (measured on a fresh statehouse process), once with parts that compress well and
//!   once with parts that do not compress at all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use reqwest::Method;
use tokio::runtime::Runtime;

use crate::server::{Server, Store, memory};
use crate::sigv4::S3Client;
use crate::stats::{Summary, ms};

const MIB: usize = 1024 * 1024;
const STACK: &str = ".pulumi/stacks/web/dev.json";

pub struct Plan {
    pub cycles_1mb: usize,
    pub cycles_16mb: usize,
    pub stacks: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        match quick {
            true => Plan {
                cycles_1mb: 5,
                cycles_16mb: 3,
                stacks: 200,
            },
            false => Plan {
                cycles_1mb: 30,
                cycles_16mb: 12,
                stacks: 1000,
            },
        }
    }
}

/// The figures of one S3 server.
pub struct Figures {
    pub label: String,
    pub cycle_1mb: Option<Summary>,
    pub cycle_16mb: Option<Summary>,
    /// The 16 MB cycle with `UNSIGNED-PAYLOAD` (Pulumi 3.258 and later over HTTPS).
    pub cycle_16mb_unsigned: Option<Summary>,
    pub stack_ls: Option<Duration>,
    /// statehouse only: peak RSS growth during the 100 MB multipart upload, with parts that
    /// compress well and with parts that do not compress.
    pub multipart_peak: Option<(u64, u64)>,
}

/// A Pulumi checkpoint of about `size` bytes; `marker` makes each one differ as two
/// consecutive checkpoints of one `pulumi up` do: in the step's resource (`marker` modulo the
/// resource count) and the stack's outputs, the rest as before.
fn checkpoint(size: usize, marker: usize) -> Vec<u8> {
    let per = 1024;
    let count = size / (per + 420);
    let mut resources = vec![serde_json::json!({
        "urn": "urn:pulumi:dev::web::pulumi:pulumi:Stack::web-dev",
        "custom": false,
        "type": "pulumi:pulumi:Stack",
        "outputs": {"marker": marker},
    })];
    let step = marker % count.max(1);
    for i in 0..count {
        let version = if i == step { marker } else { 0 };
        resources.push(serde_json::json!({
            "urn": format!("urn:pulumi:dev::web::aws:s3/bucket:Bucket::bucket-{i}"),
            "custom": true,
            "id": format!("bucket-{i}-{version}"),
            "type": "aws:s3/bucket:Bucket",
            "inputs": {"bucket": format!("bucket-{i}"), "padding": "x".repeat(per)},
            "outputs": {"arn": format!("arn:aws:s3:::bucket-{i}")},
        }));
    }
    let doc = serde_json::json!({"version": 3, "checkpoint": {
        "stack": "organization/web/dev",
        "latest": {"manifest": {"time": "2026-12-03T10:00:00Z", "magic": "m", "version": "v3.259.0"},
                   "resources": resources}}});
    serde_json::to_vec(&doc).unwrap_or_default()
}

async fn cycle(s3: &S3Client, body: Vec<u8>) -> Result<Duration> {
    let started = Instant::now();
    s3.send(
        Method::GET,
        "",
        &[("list-type", "2"), ("prefix", STACK), ("delimiter", "/")],
        &[],
        Vec::new(),
    )
    .await?;
    s3.send(Method::HEAD, STACK, &[], &[], Vec::new()).await?;
    let source = format!("{}/{STACK}", s3.bucket);
    s3.send(
        Method::PUT,
        &format!("{STACK}.bak"),
        &[],
        &[("x-amz-copy-source", source)],
        Vec::new(),
    )
    .await?;
    s3.send(Method::PUT, STACK, &[], &[], body).await?;
    Ok(started.elapsed())
}

async fn cycles(s3: &S3Client, size: usize, reps: usize) -> Result<Option<Summary>> {
    s3.send(Method::PUT, STACK, &[], &[], checkpoint(size, 0))
        .await?;
    let mut samples = Vec::with_capacity(reps);
    for rep in 1..=reps {
        // Built before the clock starts: Pulumi has its checkpoint in memory.
        let body = checkpoint(size, rep);
        samples.push(cycle(s3, body).await?);
    }
    Ok(Summary::of(&samples))
}

async fn stack_ls(s3: &S3Client, stacks: usize) -> Result<Duration> {
    for i in 0..stacks {
        let key = format!(".pulumi/stacks/ls/s{i:04}.json");
        s3.send(Method::PUT, &key, &[], &[], checkpoint(2048, i))
            .await?;
    }
    let started = Instant::now();
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("list-type", "2"), ("prefix", ".pulumi/stacks/ls/")];
        if let Some(t) = token.as_deref() {
            query.push(("continuation-token", t));
        }
        let text = s3
            .send(Method::GET, "", &query, &[], Vec::new())
            .await?
            .text()
            .await?;
        keys.extend(tag_values(&text, "Key"));
        token = tag_values(&text, "NextContinuationToken")
            .into_iter()
            .next();
        if token.is_none() {
            break;
        }
    }
    if keys.len() != stacks {
        bail!("stack ls listed {} stacks, not {stacks}", keys.len());
    }
    let reads = futures::stream::iter(keys.into_iter().map(|key| {
        let s3 = s3.clone();
        async move {
            let response = s3.send(Method::GET, &key, &[], &[], Vec::new()).await?;
            response.bytes().await.map_err(anyhow::Error::from)
        }
    }))
    .buffer_unordered(10)
    .collect::<Vec<_>>()
    .await;
    for read in reads {
        read?;
    }
    Ok(started.elapsed())
}

/// The texts of `<tag>…</tag>` in an XML answer (keys here need no unescaping).
fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next().map(str::to_owned))
        .collect()
}

const PART: usize = 8 * MIB;

/// An 8 MiB part: one byte repeated, or bytes that do not compress (xorshift).
fn part_bytes(compressible: bool) -> Vec<u8> {
    if compressible {
        return vec![7u8; PART];
    }
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..PART)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Peak RSS growth of the server while 100 MB arrive in 8 MiB parts.
async fn multipart_peak(s3: &S3Client, pid: u32, part: Vec<u8>) -> Result<u64> {
    let before = memory(pid)?.hwm;
    let key = "big/object";
    let created = s3
        .send(Method::POST, key, &[("uploads", "")], &[], Vec::new())
        .await?
        .text()
        .await?;
    let upload = tag_values(&created, "UploadId")
        .into_iter()
        .next()
        .context("no UploadId")?;
    let mut completed = String::from("<CompleteMultipartUpload>");
    let parts = (100 * MIB).div_ceil(part.len());
    for n in 1..=parts {
        let number = n.to_string();
        let response = s3
            .send(
                Method::PUT,
                key,
                &[
                    ("partNumber", number.as_str()),
                    ("uploadId", upload.as_str()),
                ],
                &[],
                part.clone(),
            )
            .await?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        completed.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    completed.push_str("</CompleteMultipartUpload>");
    s3.send(
        Method::POST,
        key,
        &[("uploadId", upload.as_str())],
        &[],
        completed.into_bytes(),
    )
    .await?;
    Ok(memory(pid)?.hwm.saturating_sub(before))
}

async fn statehouse_key(server: &Server) -> Result<(String, String)> {
    let client = crate::http::client()?;
    let response = client
        .post(format!("{}/api/v1/workspaces/default/s3-keys", server.url))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"name": "bench", "role": "editor"}))
        .send()
        .await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    if !status.is_success() {
        bail!("creating an S3 key: {status}: {body}");
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in {body}"))
    };
    Ok((field("access_key_id")?, field("secret_access_key")?))
}

/// statehouse on one store: the cycles and stack ls on one server, the multipart memory on a
/// fresh one.
pub fn run_statehouse(rt: &Runtime, bin: &Path, store: &Store, plan: &Plan) -> Result<Figures> {
    let http = crate::http::client()?;
    let server = Server::start(rt, bin, store)?;
    if server.s3_url.is_empty() {
        bail!("{} has no S3 endpoint", bin.display());
    }
    let (id, secret) = rt.block_on(statehouse_key(&server))?;
    let s3 = S3Client::new(http.clone(), &server.s3_url, "default", &id, &secret);
    let cycle_1mb = rt.block_on(cycles(&s3, MIB, plan.cycles_1mb))?;
    let cycle_16mb = rt.block_on(cycles(&s3, 16 * MIB, plan.cycles_16mb))?;
    let cycle_16mb_unsigned = rt.block_on(cycles(
        &s3.with_unsigned_payload(),
        16 * MIB,
        plan.cycles_16mb,
    ))?;
    let stack_ls = rt.block_on(stack_ls(&s3, plan.stacks))?;
    drop(server);
    let mut peaks = [0_u64; 2];
    for (peak, compressible) in peaks.iter_mut().zip([true, false]) {
        let fresh = Server::start(rt, bin, store)?;
        let (id, secret) = rt.block_on(statehouse_key(&fresh))?;
        let s3 = S3Client::new(http.clone(), &fresh.s3_url, "default", &id, &secret);
        *peak = rt.block_on(multipart_peak(&s3, fresh.pid(), part_bytes(compressible)))?;
    }
    Ok(Figures {
        label: format!("statehouse, {}", store.label()),
        cycle_1mb,
        cycle_16mb,
        cycle_16mb_unsigned,
        stack_ls: Some(stack_ls),
        multipart_peak: Some((peaks[0], peaks[1])),
    })
}

/// moto's S3 server (`moto_server` from `.tools/venv`), killed on drop.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run_moto(rt: &Runtime, venv: &Path, plan: &Plan) -> Result<Figures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin: PathBuf = venv.join("bin/moto_server");
    let _moto = Moto(
        Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (installed by scripts/test.sh)", bin.display())
            })?,
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let s3 = S3Client::new(crate::http::client()?, &endpoint, "bench", "test", "test");
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt
        .block_on(s3.send(Method::PUT, "", &[], &[], Vec::new()))
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("moto did not start on {endpoint}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Figures {
        label: "moto 5.2.5 (in memory)".into(),
        cycle_1mb: rt.block_on(cycles(&s3, MIB, plan.cycles_1mb))?,
        cycle_16mb: rt.block_on(cycles(&s3, 16 * MIB, plan.cycles_16mb))?,
        cycle_16mb_unsigned: rt.block_on(cycles(
            &s3.with_unsigned_payload(),
            16 * MIB,
            plan.cycles_16mb,
        ))?,
        stack_ls: Some(rt.block_on(stack_ls(&s3, plan.stacks))?),
        multipart_peak: None,
    })
}

pub fn render(figures: &[Figures], plan: &Plan) -> String {
    let summary = |s: &Option<Summary>| match s {
        Some(s) => format!("{} / {}", ms(s.p50), ms(s.p95)),
        None => "–".into(),
    };
    let mut out = format!(
        "| server | cycle, 1 MB checkpoint: p50 / p95 ({} cycles) | cycle, 16 MB: p50 / p95 ({} cycles) | cycle, 16 MB, UNSIGNED-PAYLOAD | stack ls, {} stacks | peak memory, 100 MB multipart upload in 8 MiB parts: compressible / incompressible |\n|---|---|---|---|---|---|\n",
        plan.cycles_1mb, plan.cycles_16mb, plan.stacks
    );
    for f in figures {
        let growth = |bytes: u64| {
            format!(
                "+{:.1} MiB ({:.1}× the part)",
                bytes as f64 / MIB as f64,
                bytes as f64 / PART as f64
            )
        };
        let peak = match f.multipart_peak {
            Some((compressible, random)) => {
                format!("{} / {}", growth(compressible), growth(random))
            }
            None => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {peak} |\n",
            f.label,
            summary(&f.cycle_1mb),
            summary(&f.cycle_16mb),
            summary(&f.cycle_16mb_unsigned),
            f.stack_ls.map(ms).unwrap_or_else(|| "–".into()),
        ));
    }
    out
}
