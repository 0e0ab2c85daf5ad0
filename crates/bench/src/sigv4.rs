//! A small S3 client for the benchmark: SigV4-signed requests (payload hashed, as the Go SDK
//! sends over plain HTTP, or `UNSIGNED-PAYLOAD`, as Pulumi 3.258 and later send over HTTPS)
//! through reqwest, the same for statehouse and for the S3 emulator it is compared with.

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use reqwest::{Client, Method, Response};
use sha2::{Digest, Sha256};

/// An S3 endpoint with a key.
#[derive(Clone)]
pub struct S3Client {
    http: Client,
    /// `http://host:port`, no trailing slash.
    pub endpoint: String,
    pub bucket: String,
    key_id: String,
    secret: String,
    unsigned_payload: bool,
}

fn hmac(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// S3's URI encoding: unreserved characters stay, everything else is `%XX` (and `/` too in
/// query values).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl S3Client {
    pub fn new(http: Client, endpoint: &str, bucket: &str, key_id: &str, secret: &str) -> Self {
        S3Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
            unsigned_payload: false,
        }
    }

    /// The same client sending `x-amz-content-sha256: UNSIGNED-PAYLOAD` (no payload hash on
    /// either side).
    pub fn with_unsigned_payload(&self) -> Self {
        S3Client {
            unsigned_payload: true,
            ..self.clone()
        }
    }

    /// Sends a signed request for `key` (empty: the bucket) with `query` pairs and extra
    /// `x-amz-*` headers; fails on a non-2xx answer.
    pub async fn send(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        amz_headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response> {
        let path = if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, encode(key, true))
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (encode(k, false), encode(v, false)))
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let now = sigv4_now();
        let (stamp, day) = (now.0, now.1);
        let payload_hash = match self.unsigned_payload {
            true => "UNSIGNED-PAYLOAD".to_owned(),
            false => hex::encode(Sha256::digest(&body)),
        };
        let host = self
            .endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
            ("x-amz-date".into(), stamp.clone()),
        ];
        headers.extend(
            amz_headers
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone())),
        );
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}"
        );
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), &day);
        for part in ["us-east-1", "s3", "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex::encode(hmac(&key, &to_sign));
        let url = if canonical_query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{canonical_query}", self.endpoint)
        };
        let mut request = self.http.request(method.clone(), &url).header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.key_id
            ),
        );
        for (k, v) in &headers {
            if k != "host" {
                request = request.header(k, v);
            }
        }
        let response = request
            .body(body)
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {url}: {status}: {text}");
        }
        Ok(response)
    }
}

/// The time now as SigV4 writes it: `YYYYMMDDTHHMMSSZ` and `YYYYMMDD`.
fn sigv4_now() -> (String, String) {
    let millis = statehouse_core::clock::Clock::now(&statehouse_core::clock::SystemClock).millis();
    let now = chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default();
    (
        now.format("%Y%m%dT%H%M%SZ").to_string(),
        now.format("%Y%m%d").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encoding() {
        assert_eq!(encode("a b/c+", true), "a%20b/c%2B");
        assert_eq!(encode("a/b", false), "a%2Fb");
    }
}
