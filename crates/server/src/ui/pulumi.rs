//! What the pages tell Pulumi users: where the S3 endpoint is as the browser's side can reach
//! it, and the `pulumi login` line of a workspace (a bucket is a workspace).

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};

/// Shown for the host when the browser sent none statehouse would repeat on a page.
const PLACEHOLDER_HOST: &str = "statehouse.example.com";

/// The host (with its port, if any) the browser reached statehouse at, when the `Host` header
/// is a plain host name or address; anything else is not repeated on a page.
pub fn browser_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
}

/// `host` without its port: `[::1]:8080` → `[::1]`, `sh.example:8080` → `sh.example`.
fn without_port(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(host, |end| &host[..end + 2]),
        None => match host.split_once(':') {
            Some((name, _)) => name,
            None => host,
        },
    }
}

/// The S3 endpoint's `host:port` for a client: the address it listens on, or — when that is
/// every interface (`0.0.0.0`, `[::]`) — the host the browser used, with the endpoint's port.
pub fn s3_host_port(endpoint: SocketAddr, headers: &HeaderMap) -> String {
    if !endpoint.ip().is_unspecified() {
        return endpoint.to_string();
    }
    let host = browser_host(headers).map_or(PLACEHOLDER_HOST, without_port);
    format!("{host}:{}", endpoint.port())
}

/// How a page shows the way to a workspace's stacks.
pub struct PulumiLogin {
    /// `pulumi login 's3://…'` straight to the endpoint (plain HTTP: statehouse's listeners
    /// speak no TLS); empty when the S3 endpoint is off.
    pub line: String,
}

impl PulumiLogin {
    pub fn new(endpoint: Option<SocketAddr>, headers: &HeaderMap, ws: &str) -> PulumiLogin {
        match endpoint {
            Some(addr) => {
                let host_port = s3_host_port(addr, headers);
                PulumiLogin {
                    line: format!(
                        "pulumi login 's3://{ws}?endpoint={host_port}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'"
                    ),
                }
            }
            None => PulumiLogin {
                line: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn host(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn the_endpoint_is_its_address_or_the_browsers_host_with_its_port() {
        let local: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            s3_host_port(local, &host("sh.example:8080")),
            "127.0.0.1:8081"
        );
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(
            s3_host_port(any, &host("sh.example:8080")),
            "sh.example:8081"
        );
        assert_eq!(s3_host_port(any, &host("sh.example")), "sh.example:8081");
        let any6: SocketAddr = "[::]:8081".parse().unwrap();
        assert_eq!(s3_host_port(any6, &host("[::1]:8080")), "[::1]:8081");
        assert_eq!(
            s3_host_port(any, &host("evil\"<x>")),
            "statehouse.example.com:8081"
        );
        assert_eq!(
            s3_host_port(any, &HeaderMap::new()),
            "statehouse.example.com:8081"
        );
    }

    #[test]
    fn the_login_line_is_plain_http_path_style() {
        let login = PulumiLogin::new(
            Some("127.0.0.1:8081".parse().unwrap()),
            &HeaderMap::new(),
            "platform",
        );
        assert_eq!(
            login.line,
            "pulumi login 's3://platform?endpoint=127.0.0.1:8081&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'"
        );
        assert!(
            PulumiLogin::new(None, &HeaderMap::new(), "platform")
                .line
                .is_empty()
        );
    }
}
