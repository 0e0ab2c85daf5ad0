//! Peak memory of one big write: a fresh server, its `VmRSS` before one POST and its `VmHWM`
//! (peak RSS) after it, then a GET of the same state.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use reqwest::StatusCode;

use crate::http::{client, post_state};
use crate::server::{self, Memory, Server};
use crate::state::{Payload, StateTemplate};

pub struct MemoryFigures {
    pub payload: Payload,
    pub body: usize,
    /// Before the write: current and peak.
    pub before: Memory,
    pub after_post: Memory,
    pub post_time: Duration,
    pub after_get: Memory,
    pub get_time: Duration,
}

impl MemoryFigures {
    /// Peak growth caused by the write, per byte of body.
    pub fn post_factor(&self) -> f64 {
        self.after_post.hwm.saturating_sub(self.before.rss) as f64 / self.body as f64
    }

    /// Peak growth over the start, after a GET of the same state, per byte of body.
    pub fn get_factor(&self) -> f64 {
        self.after_get.hwm.saturating_sub(self.before.rss) as f64 / self.body as f64
    }
}

/// One big POST on a fresh server, with the process's memory before and after; then a GET.
pub async fn big_write(server: &Server, payload: Payload, size: usize) -> Result<MemoryFigures> {
    let client = client()?;
    let template = StateTemplate::new(payload, size, "big")?;
    let body = template.body(1);
    let body_len = body.len();
    drop(template);
    let url = server.tf_address("bench/big");
    let before = server::memory(server.pid())?;
    let post_time = post_state(&client, &url, &server.token, body).await?;
    let after_post = server::memory(server.pid())?;

    let started = Instant::now();
    let r = client.get(&url).bearer_auth(&server.token).send().await?;
    let status = r.status();
    let got = r.bytes().await?;
    let get_time = started.elapsed();
    if status != StatusCode::OK || got.len() != body_len {
        bail!(
            "GET {url} answered {status} with {} bytes, expected {body_len}",
            got.len()
        );
    }
    drop(got);
    let after_get = server::memory(server.pid())?;
    Ok(MemoryFigures {
        payload,
        body: body_len,
        before,
        after_post,
        post_time,
        after_get,
        get_time,
    })
}
