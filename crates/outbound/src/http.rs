//! HTTP clients that obey the policy: names are resolved by the policy's resolver (so the
//! address checked is the address connected to), IP literals are checked before a request
//! leaves, proxies from the environment are not used (the policy must see the destination),
//! and redirects are not followed (a URL names its receiver).

use std::sync::Arc;

use crate::config::Purpose;
use crate::policy::{OutboundError, OutboundPolicy, Refusal, unreachable_message};

/// Resolves names for an HTTP client through the policy of one purpose. Usable with any
/// client that takes a resolver of this shape (reqwest 0.12 here; storage targets adapt it to
/// their own HTTP client).
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub policy: Arc<OutboundPolicy>,
    pub purpose: Purpose,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The client puts the URL's port on the addresses.
            let found = resolver.policy.resolve(resolver.purpose, &host, 0).await?;
            let addresses: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addresses)
        })
    }
}

/// A reqwest client for one purpose, with its policy.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    purpose: Purpose,
}

impl HttpClient {
    /// Builds the client from `builder` (timeouts, user agent …), adding the policy's resolver
    /// and turning off proxies and redirects.
    pub fn new(
        policy: Arc<OutboundPolicy>,
        purpose: Purpose,
        builder: reqwest::ClientBuilder,
    ) -> Result<HttpClient, reqwest::Error> {
        let client = builder
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
                purpose,
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpClient {
            client,
            policy,
            purpose,
        })
    }

    pub fn policy(&self) -> &Arc<OutboundPolicy> {
        &self.policy
    }

    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// Starts a request to `url` once its host may be connected to: an IP address is checked
    /// here (the client's resolver never sees one), a name when the client resolves it.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, Refusal> {
        check_literal_host(&self.policy, self.purpose, &url)?;
        Ok(self.client.request(method, url))
    }

    /// What to tell the user about a request that got no answer: the policy's refusal when
    /// the resolver refused, else the one "could not connect" message (refused, timed out,
    /// TLS, protocol: all alike).
    pub fn describe_failure(&self, url: &url::Url, error: &reqwest::Error) -> String {
        describe_failure(url, error)
    }
}

/// Checks an URL whose host is an IP address (names are left to the resolver).
pub fn check_literal_host(
    policy: &OutboundPolicy,
    purpose: Purpose,
    url: &url::Url,
) -> Result<(), Refusal> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => policy.check_ip(purpose, &ip.to_string(), ip.into()),
        Some(url::Host::Ipv6(ip)) => policy.check_ip(purpose, &format!("[{ip}]"), ip.into()),
        _ => Ok(()),
    }
}

/// The policy's refusal somewhere in an error's causes, if any.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(OutboundError::Refused(refusal)) = e.downcast_ref::<OutboundError>() {
            return Some(refusal);
        }
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        cause = e.source();
    }
    None
}

/// See [`HttpClient::describe_failure`].
pub fn describe_failure(url: &url::Url, error: &(dyn std::error::Error + 'static)) -> String {
    match refusal_in(error) {
        Some(refusal) => refusal.to_string(),
        None => unreachable_message(
            url.host_str().unwrap_or("?"),
            url.port_or_known_default().unwrap_or(0),
        ),
    }
}
