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

/// The S3 endpoint's `host:port` for a client over TLS: the host the browser used (the name
/// its certificate is for) with the endpoint's port, or [`s3_host_port`] without one.
pub fn s3_tls_host_port(endpoint: SocketAddr, headers: &HeaderMap) -> String {
    match browser_host(headers) {
        Some(host) => format!("{}:{}", without_port(host), endpoint.port()),
        None => s3_host_port(endpoint, headers),
    }
}

/// How a page shows the way to a workspace's stacks.
pub struct PulumiLogin {
    /// `pulumi login 's3://…'` straight to the endpoint; empty when the S3 endpoint is off.
    pub line: String,
    /// The endpoint speaks HTTPS (`[tls]`): the line has no `disableSSL`.
    pub tls: bool,
}

impl PulumiLogin {
    pub fn new(
        endpoint: Option<SocketAddr>,
        tls: bool,
        headers: &HeaderMap,
        ws: &str,
    ) -> PulumiLogin {
        let line = match (endpoint, tls) {
            (Some(addr), true) => format!(
                "pulumi login 's3://{ws}?endpoint={}&s3ForcePathStyle=true&region=us-east-1'",
                s3_tls_host_port(addr, headers)
            ),
            (Some(addr), false) => format!(
                "pulumi login 's3://{ws}?endpoint={}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'",
                s3_host_port(addr, headers)
            ),
            (None, _) => String::new(),
        };
        PulumiLogin { line, tls }
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
    fn the_login_line_is_path_style_over_http_or_https() {
        let login = PulumiLogin::new(
            Some("127.0.0.1:8081".parse().unwrap()),
            false,
            &HeaderMap::new(),
            "platform",
        );
        assert_eq!(
            login.line,
            "pulumi login 's3://platform?endpoint=127.0.0.1:8081&disableSSL=true&s3ForcePathStyle=true&region=us-east-1'"
        );
        // Over TLS: the name the browser used (the certificate's), no disableSSL.
        let login = PulumiLogin::new(
            Some("127.0.0.1:8081".parse().unwrap()),
            true,
            &host("sh.example:8443"),
            "platform",
        );
        assert_eq!(
            login.line,
            "pulumi login 's3://platform?endpoint=sh.example:8081&s3ForcePathStyle=true&region=us-east-1'"
        );
        assert!(
            PulumiLogin::new(None, true, &HeaderMap::new(), "platform")
                .line
                .is_empty()
        );
    }
}
