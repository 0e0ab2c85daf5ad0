//! How remote targets reach their service under the outbound policy.
//!
//! - HTTP services (S3, Azure Blob, GCS, WebDAV, Google Drive): OpenDAL's HTTP client resolves
//!   names through the policy ([`PolicyResolver`]), so the checked address is the one connected
//!   to; requests (and redirects) to IP addresses are checked before they leave; proxies from
//!   the environment are not used.
//! - SFTP and FTP: the host is resolved and checked here, and the service is given the
//!   address ([`pinned_host`]).
//! - S3: the query goes out encoded as SigV4's canonical query encodes it ([`s3_wire_query`]).

use std::net::IpAddr;
use std::sync::Arc;

use opendal::{Buffer, ErrorKind, HttpBody, HttpTransport, HttpTransporter};
use statehouse_outbound::{
    OutboundError, OutboundPolicy, PolicyResolver, Purpose, check_literal_host, refusal_in,
};

use crate::pipeline::BackupError;

/// Redirects followed by a target's HTTP client (OpenDAL expects its transport to follow them).
const MAX_REDIRECTS: usize = 5;

/// OpenDAL's HTTP client for one target: resolution and IP addresses checked by `policy`,
/// Google API requests sent to `google_endpoint` when set, S3 queries as signed when `s3`.
pub(crate) fn http_transporter(
    policy: &Arc<OutboundPolicy>,
    google_endpoint: Option<&str>,
    s3: bool,
) -> Result<HttpTransporter, BackupError> {
    let resolver = PolicyResolver {
        policy: policy.clone(),
        purpose: Purpose::Targets,
    };
    let redirect_policy = policy.clone();
    let client = reqwest013::Client::builder()
        .dns_resolver(Arc::new(Resolver013(resolver)))
        .no_proxy()
        .redirect(reqwest013::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_literal_host(&redirect_policy, Purpose::Targets, attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        }))
        .build()
        .map_err(|e| BackupError::Config(format!("cannot set up the HTTP client: {e}")))?;
    let google = match google_endpoint {
        None => None,
        Some(endpoint) => {
            let uri: http::Uri = endpoint.parse().map_err(|e| {
                BackupError::Config(format!("the endpoint {endpoint:?} is not a URL: {e}"))
            })?;
            let parts = uri.into_parts();
            match (parts.scheme, parts.authority) {
                (Some(scheme), Some(authority)) => Some((scheme, authority)),
                _ => {
                    return Err(BackupError::Config(format!(
                        "the endpoint {endpoint:?} needs a scheme and a host"
                    )));
                }
            }
        }
    };
    Ok(HttpTransporter::new(PolicyTransport {
        inner: opendal_http_transport_reqwest::ReqwestTransport::new(client),
        policy: policy.clone(),
        google,
        s3,
    }))
}

/// Characters OpenDAL leaves raw in a query value (`prefix=a/b/`) that SigV4's canonical query
/// percent-encodes.
const RAW_IN_QUERY: [(char, &str); 6] = [
    ('/', "%2F"),
    ('!', "%21"),
    ('*', "%2A"),
    ('\'', "%27"),
    ('(', "%28"),
    (')', "%29"),
];

/// The URI with its query encoded as the signature's canonical query encodes it, as the AWS
/// SDKs and boto3 send it; `None` when it already is. Same meaning (the server decodes query
/// values), but a server that checks the signature against the query as received (moto does)
/// would otherwise reject every listing of a folder with `SignatureDoesNotMatch`.
fn s3_wire_query(uri: &http::Uri) -> Option<http::Uri> {
    let query = uri.query()?;
    if !query.contains(|c| RAW_IN_QUERY.iter().any(|(raw, _)| *raw == c)) {
        return None;
    }
    let mut encoded = String::with_capacity(query.len() + 16);
    for c in query.chars() {
        match RAW_IN_QUERY.iter().find(|(raw, _)| *raw == c) {
            Some((_, escaped)) => encoded.push_str(escaped),
            None => encoded.push(c),
        }
    }
    let path_and_query = format!("{}?{encoded}", uri.path()).parse().ok()?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    http::Uri::from_parts(parts).ok()
}

/// Checks a URL whose host is an IP address (names go through the resolver), read the way the
/// HTTP client reads it: `http://127.1/` is 127.0.0.1 to it.
fn check_url(policy: &OutboundPolicy, url: &str) -> Result<(), statehouse_outbound::Refusal> {
    match url::Url::parse(url) {
        Ok(parsed) => check_literal_host(policy, Purpose::Targets, &parsed),
        // The client refuses it too.
        Err(_) => Ok(()),
    }
}

/// The policy's resolver for reqwest 0.13 (OpenDAL's HTTP client).
struct Resolver013(PolicyResolver);

impl reqwest013::dns::Resolve for Resolver013 {
    fn resolve(&self, name: reqwest013::dns::Name) -> reqwest013::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = resolver.policy.resolve(resolver.purpose, &host, 0).await?;
            let addresses: reqwest013::dns::Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

/// Checks each request's host, sends Google API requests to the configured endpoint, and
/// turns a refusal into an error that is not retried.
struct PolicyTransport {
    inner: opendal_http_transport_reqwest::ReqwestTransport,
    policy: Arc<OutboundPolicy>,
    /// Scheme and host that `https://*.googleapis.com` requests (the GCS token exchange, every
    /// Google Drive call) go to instead: a proxy, an emulator, or a test server.
    google: Option<(http::uri::Scheme, http::uri::Authority)>,
    /// An S3 target: queries are sent as signed ([`s3_wire_query`]).
    s3: bool,
}

fn refused(refusal: statehouse_outbound::Refusal) -> opendal::Error {
    opendal::Error::new(
        ErrorKind::PermissionDenied,
        "refused by the outbound policy",
    )
    .set_source(refusal)
}

impl HttpTransport for PolicyTransport {
    async fn fetch(
        &self,
        mut req: http::Request<Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        if let Some((scheme, authority)) = &self.google {
            let google = req
                .uri()
                .host()
                .is_some_and(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"));
            if google {
                let mut parts = req.uri().clone().into_parts();
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(authority.clone());
                let uri = http::Uri::from_parts(parts).map_err(|e| {
                    opendal::Error::new(
                        ErrorKind::Unexpected,
                        "cannot redirect a Google API request",
                    )
                    .set_source(e)
                })?;
                *req.uri_mut() = uri;
            }
        }
        if self.s3
            && let Some(uri) = s3_wire_query(req.uri())
        {
            *req.uri_mut() = uri;
        }
        check_url(&self.policy, &req.uri().to_string()).map_err(refused)?;
        self.inner
            .fetch(req)
            .await
            .map_err(|e| match refusal_in(&e) {
                Some(refusal) => refused(refusal.clone()),
                None => e,
            })
    }
}

/// Resolves `host` once through the policy and returns the address to give a service that
/// resolves names itself (SFTP's `ssh`, FTP), so it connects to exactly the checked address.
pub(crate) async fn pinned_host(
    policy: &OutboundPolicy,
    host: &str,
    port: u16,
) -> Result<IpAddr, BackupError> {
    let found = policy
        .resolve(Purpose::Targets, host, port)
        .await
        .map_err(|e| match e {
            OutboundError::Refused(refusal) => BackupError::from(refusal),
            unreachable => BackupError::Target(unreachable.to_string()),
        })?;
    found
        .first()
        .map(|address| address.ip())
        .ok_or_else(|| BackupError::Target(statehouse_outbound::unreachable_message(host, port)))
}

/// `ip` as the host part of a URL (`[…]` around IPv6).
pub(crate) fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn s3_queries_go_out_as_signed() {
        let uri: http::Uri = "http://127.0.0.1:9000/bucket?list-type=2&prefix=team/.pulumi/(x)"
            .parse()
            .unwrap();
        assert_eq!(
            s3_wire_query(&uri).unwrap().to_string(),
            "http://127.0.0.1:9000/bucket?list-type=2&prefix=team%2F.pulumi%2F%28x%29"
        );
        let plain: http::Uri = "http://h/bucket/a/b?x-id=GetObject".parse().unwrap();
        assert_eq!(s3_wire_query(&plain), None, "the path keeps its slashes");
    }
}
