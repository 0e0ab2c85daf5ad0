//! Where a request comes from when statehouse runs behind a reverse proxy: the client's address
//! (audit entries, login limits) and whether it spoke HTTPS (the addresses pages show).
//!
//! Forwarding headers are believed only from `trusted_proxies`; from anyone else they are
//! ignored, as a client can write them. The chain in `X-Forwarded-For` (or, when a request has
//! none, RFC 7239 `Forwarded`) is read from the right — each trusted proxy appends the address
//! it received the request from — and the first address that is not a trusted proxy is the
//! client. Entries further left were written by that client and prove nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;

/// The most hops of a forwarding chain looked at (from the right); a longer chain is a
/// client's invention, and reading it costs work.
const MAX_HOPS: usize = 32;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Where one request comes from, as far as statehouse can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOrigin {
    /// The client's address: the connection's peer, or what trusted proxies say.
    pub ip: IpAddr,
    /// The client spoke HTTPS: to statehouse's TLS listener, or to a trusted proxy that says so.
    pub https: bool,
}

/// The proxies whose forwarding headers are believed (`trusted_proxies`); none by default.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Parses `trusted_proxies` entries: CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single
    /// addresses (`127.0.0.1`, `::1`).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!(
                            "trusted_proxies: {entry:?} is neither an address nor a CIDR block \
                             (write e.g. 10.0.0.0/8, 192.168.1.10 or fd00::/8)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(nets.into()))
    }

    /// The blocks, as configured (normalised), for the start-up log.
    pub fn blocks(&self) -> impl Iterator<Item = &IpNet> {
        self.0.iter()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Where a request that arrived from `peer` (over TLS when `tls`) with `headers` comes from.
    pub fn origin(&self, peer: IpAddr, tls: bool, headers: &HeaderMap) -> ClientOrigin {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return ClientOrigin {
                ip: peer,
                https: tls,
            };
        }
        let mut client = peer;
        for hop in forwarded_chain(headers).into_iter().rev() {
            // An entry that is no address (`unknown`, an obfuscated name, garbage): the last
            // trusted proxy is as far as the chain can be followed.
            let Some(ip) = hop else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        ClientOrigin {
            ip: client,
            https: forwarded_proto(headers).unwrap_or(tls),
        }
    }
}

/// The hops of the forwarding chain, nearest last, at most [`MAX_HOPS`] of them; `None` for an
/// entry that is no address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff = header_list(headers, &X_FORWARDED_FOR);
    let entries: Vec<Option<IpAddr>> = if xff.is_empty() {
        header_list(headers, &header::FORWARDED)
            .iter()
            .filter_map(|element| forwarded_param(element, "for"))
            .map(|node| parse_node(&node))
            .collect()
    } else {
        xff.iter().map(|entry| parse_node(entry)).collect()
    };
    let skip = entries.len().saturating_sub(MAX_HOPS);
    entries.into_iter().skip(skip).collect()
}

/// The scheme the nearest trusted proxy reports: `X-Forwarded-Proto`, else `proto=` of
/// `Forwarded`; `None` when neither says `http` or `https`.
fn forwarded_proto(headers: &HeaderMap) -> Option<bool> {
    let proto = header_list(headers, &X_FORWARDED_PROTO).pop().or_else(|| {
        header_list(headers, &header::FORWARDED)
            .iter()
            .rev()
            .find_map(|element| forwarded_param(element, "proto"))
    })?;
    match proto.to_ascii_lowercase().as_str() {
        "https" => Some(true),
        "http" => Some(false),
        _ => None,
    }
}

/// Every comma-separated entry of every `name` header, in order (commas inside quoted strings
/// do not separate).
fn header_list(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    let mut entries = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            // Not text: an entry that is no address.
            entries.push(String::new());
            continue;
        };
        let mut current = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                ',' if !quoted => entries.push(std::mem::take(&mut current).trim().to_owned()),
                _ => current.push(c),
            }
        }
        entries.push(current.trim().to_owned());
    }
    entries
}

/// The value of `key` in one `Forwarded` element (`for=192.0.2.1;proto=https`), unquoted.
fn forwarded_param(element: &str, key: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            node.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<IpAddr>().ok())
        })
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let none = TrustedProxies::default();
        assert_eq!(
            none.origin(ip("10.1.2.3"), false, &h),
            ClientOrigin {
                ip: ip("10.1.2.3"),
                https: false
            }
        );
        let other = proxies(&["192.168.0.0/16"]);
        assert_eq!(other.origin(ip("10.1.2.3"), true, &h).ip, ip("10.1.2.3"));
        assert!(other.origin(ip("10.1.2.3"), true, &h).https);
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_no_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        // A client's own invention (left) is not believed past the first untrusted hop.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.7")]);
        let origin = trusted.origin(ip("10.0.0.2"), false, &h);
        assert_eq!(origin.ip, ip("203.0.113.9"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        assert_eq!(trusted.origin(ip("::1"), false, &h).ip, ip("203.0.113.9"));
        // Every hop trusted: the leftmost one.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.7")]);
        assert_eq!(trusted.origin(ip("10.0.0.2"), false, &h).ip, ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(
            trusted.origin(ip("10.0.0.2"), false, &HeaderMap::new()).ip,
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_entry_that_is_no_address_stops_the_walk_at_the_last_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for bad in ["unknown", "_hidden", "", "1.2.3.4.5", "<b>x</b>"] {
            let value = format!("203.0.113.9, {bad}, 10.0.0.7");
            let h = headers(&[("x-forwarded-for", &value)]);
            assert_eq!(
                trusted.origin(ip("10.0.0.2"), false, &h).ip,
                ip("10.0.0.7"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn addresses_are_read_with_ports_brackets_and_ipv4_mapped() {
        let trusted = proxies(&["127.0.0.1"]);
        for (written, expected) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            let h = headers(&[("x-forwarded-for", written)]);
            assert_eq!(
                trusted.origin(ip("::ffff:127.0.0.1"), false, &h).ip,
                ip(expected),
                "{written}"
            );
        }
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.2, for=10.0.0.7"#,
        )]);
        let origin = trusted.origin(ip("10.0.0.2"), false, &h);
        assert_eq!(origin.ip, ip("2001:db8:cafe::17"));
        assert!(origin.https);
        // X-Forwarded-For wins when both are there.
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            trusted.origin(ip("10.0.0.2"), false, &h).ip,
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_scheme_is_the_trusted_proxys() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let https = |value: &str, tls: bool| {
            trusted
                .origin(
                    ip("10.0.0.2"),
                    tls,
                    &headers(&[("x-forwarded-proto", value)]),
                )
                .https
        };
        assert!(https("https", false));
        assert!(https("HTTPS", false));
        assert!(!https("http", true));
        assert!(
            https("http, https", false),
            "the nearest proxy's word counts"
        );
        assert!(
            !https("gopher", false),
            "nonsense leaves the connection's own scheme"
        );
        assert!(https("gopher", true));
    }

    #[test]
    fn a_chain_longer_than_the_cap_is_read_from_its_right_end_only() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut chain = vec!["203.0.113.9".to_owned()];
        chain.extend((0..100).map(|i| format!("10.0.{}.{}", i / 250, i % 250)));
        let h = headers(&[("x-forwarded-for", &chain.join(", "))]);
        // 100 trusted hops: the walk stops at the cap, on a trusted address.
        let origin = trusted.origin(ip("10.0.0.2"), false, &h);
        assert!(trusted.trusts(origin.ip));
    }

    #[test]
    fn entries_are_addresses_or_cidr_blocks() {
        let parsed = proxies(&["10.1.2.3/8", " 192.168.1.10 ", "fd00::/8", "::1"]);
        let blocks: Vec<String> = parsed.blocks().map(ToString::to_string).collect();
        assert_eq!(
            blocks,
            ["10.0.0.0/8", "192.168.1.10/32", "fd00::/8", "::1/128"]
        );
        for bad in ["10.0.0.0/33", "proxy.example", "", "10.0.0.0/8/8"] {
            let err = TrustedProxies::parse(&[bad.to_owned()]).unwrap_err();
            assert!(err.contains("trusted_proxies"), "{err}");
        }
    }
}
