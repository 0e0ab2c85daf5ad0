//! What an IP address is, as far as the outbound policy cares, and networks written as CIDR.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The kinds of addresses the policy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Anything routable on the internet.
    Public,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), shared CGNAT space (100.64/10), benchmarking
    /// (198.18/15), unique local IPv6 (fc00::/7) and site-local IPv6 (fec0::/10).
    Private,
    /// This host: 127/8, ::1, and the unspecified 0.0.0.0 and :: (a connection to them reaches
    /// this host on Linux).
    Loopback,
    /// 169.254/16 and fe80::/10: never a server a user means, and where cloud metadata lives.
    LinkLocal,
    /// A cloud provider's metadata or host service: instance credentials live there.
    Metadata,
    /// Not a unicast destination: multicast, broadcast, "this network", reserved and
    /// documentation ranges.
    Reserved,
}

impl AddressClass {
    /// "a loopback address", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Private => "a private address",
            AddressClass::Loopback => "a loopback address (this host)",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Reserved => "a reserved address that is no server's",
        }
    }
}

/// Metadata and host services of cloud providers (AWS, GCP, Azure, Oracle, OpenStack use
/// 169.254.169.254, which link-local covers too).
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254),
    // AWS ECS task credentials, EKS pod identity.
    Ipv4Addr::new(169, 254, 170, 2),
    // Alibaba Cloud.
    Ipv4Addr::new(100, 100, 100, 200),
    // Azure's wire server (host agent), reachable from every VM.
    Ipv4Addr::new(168, 63, 129, 16),
];
/// AWS's instance metadata over IPv6.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Classifies `ip`. IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by that IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if METADATA_V4.contains(&ip) {
        return AddressClass::Metadata;
    }
    if ip.is_unspecified() || ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if ip.is_link_local() {
        return AddressClass::LinkLocal;
    }
    let private = [
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([100, 64, 0, 0], 10),
        ([198, 18, 0, 0], 15),
    ];
    if private.iter().any(|(n, p)| in_v4(ip, *n, *p)) {
        return AddressClass::Private;
    }
    let reserved = [
        ([0, 0, 0, 0], 8),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    if reserved.iter().any(|(n, p)| in_v4(ip, *n, *p)) {
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // Mapped (::ffff:a.b.c.d) and compatible (::a.b.c.d, but not :: and ::1).
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(v4(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(v4(hi, lo)),
        // NAT64: a gateway turns it into a connection to the IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // 6to4.
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    if ip == METADATA_V6 {
        return AddressClass::Metadata;
    }
    if ip.is_unspecified() || ip.is_loopback() {
        return AddressClass::Loopback;
    }
    let s = ip.segments();
    if s[0] & 0xffc0 == 0xfe80 {
        return AddressClass::LinkLocal;
    }
    // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
    if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        return AddressClass::Private;
    }
    // Multicast, the discard prefix, documentation.
    if s[0] & 0xff00 == 0xff00 || s[..4] == [0x100, 0, 0, 0] || s[..2] == [0x2001, 0xdb8] {
        return AddressClass::Reserved;
    }
    AddressClass::Public
}

/// A network written as CIDR (`10.0.5.0/24`, `fd12:3456::/48`) or a single address.
#[derive(Clone, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(self.prefix)),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let prefix = u32::from(self.prefix);
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a network: write an address with a prefix length, e.g. \
                 10.0.5.0/24 or fd12:3456::/48, or a single address"
            )
        };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Network { address, prefix })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use AddressClass::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn every_spelling_of_this_host_is_loopback() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert_eq!(class(ip), Loopback, "{ip}");
        }
    }

    #[test]
    fn metadata_and_link_local_are_told_apart_from_private_ranges() {
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "168.63.129.16",
            "169.254.170.2",
        ] {
            assert_eq!(class(ip), Metadata, "{ip}");
        }
        for ip in ["169.254.1.1", "fe80::1", "febf::1"] {
            assert_eq!(class(ip), LinkLocal, "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "fc00::1",
            "fec0::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(class(ip), Private, "{ip}");
        }
        for ip in ["172.32.0.1", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(class(ip), Public, "{ip}");
        }
        for ip in [
            "224.0.0.1",
            "255.255.255.255",
            "0.1.2.3",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert_eq!(class(ip), Reserved, "{ip}");
        }
    }

    #[test]
    fn networks_parse_and_contain() {
        let net: Network = "10.0.5.0/24".parse().unwrap();
        assert!(net.contains("10.0.5.77".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.5.1".parse().unwrap()));
        assert!(!net.contains("10.0.6.1".parse().unwrap()));
        let host: Network = "192.168.1.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.168.1.7/32");
        assert!(host.contains("192.168.1.7".parse().unwrap()));
        assert!(!host.contains("192.168.1.8".parse().unwrap()));
        let v6: Network = "fd12:3456::/32".parse().unwrap();
        assert!(v6.contains("fd12:3456:1::9".parse().unwrap()));
        assert!(!v6.contains("fd12:3457::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "db.internal", "10.0.0/8", "::/129"] {
            let err = bad.parse::<Network>().unwrap_err();
            assert!(err.contains("10.0.5.0/24"), "{err}");
        }
    }
}
