//! Which addresses the asset proxy may connect to, and the DNS hook that holds every
//! connection to that rule (so a name that resolves to a public address when checked
//! and to a private one when connecting, DNS rebinding, gets nowhere: the connection is
//! made to the addresses this hook returned, and it returns only allowed ones).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How an address counts for the asset proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// A public unicast address: always allowed.
    Public,
    /// Loopback, private (RFC 1918, unique local), link-local (169.254/16, fe80::/10,
    /// where cloud metadata services live), shared (100.64/10) and the like: only with
    /// `--asset-proxy-allow-private`.
    Private,
    /// Unspecified, multicast, broadcast, documentation and reserved ranges: never.
    Never,
}

/// The kind of `ip`, looking through IPv4-mapped, NAT64 and 6to4 IPv6 addresses to
/// the IPv4 address they carry.
pub fn address_kind(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> AddressKind {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || ip.is_documentation()
    {
        return AddressKind::Never;
    }
    if ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))
    // benchmarking
    {
        return AddressKind::Private;
    }
    AddressKind::Public
}

fn v6_kind(ip: Ipv6Addr) -> AddressKind {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return v4_kind(Ipv4Addr::new(a, b, c, d));
    }
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return v4_kind(Ipv4Addr::new(a, b, c, d));
    }
    if ip.is_unspecified() || ip.is_multicast() || (s[0] == 0x2001 && s[1] == 0x0db8) {
        return AddressKind::Never;
    }
    if ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0..6] == [0, 0, 0, 0, 0, 0])
    // IPv4-compatible (deprecated)
    {
        return AddressKind::Private;
    }
    AddressKind::Public
}

/// Whether the proxy may connect to `ip`.
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    match address_kind(ip) {
        AddressKind::Public => true,
        AddressKind::Private => allow_private,
        AddressKind::Never => false,
    }
}

/// The addresses `host` resolves to that the proxy may connect to; an error names why
/// there are none (a lookup failure, or only refused addresses).
pub async fn resolve_allowed(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| ResolveError::Lookup(e.to_string()))?
        .collect();
    let allowed: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| address_allowed(a.ip(), allow_private))
        .collect();
    if allowed.is_empty() {
        return Err(if found.is_empty() {
            ResolveError::Lookup("no address".into())
        } else {
            ResolveError::Refused
        });
    }
    Ok(allowed)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the host does not resolve: {0}")]
    Lookup(String),
    #[error("the host resolves only to addresses the asset proxy may not reach")]
    Refused,
}

/// reqwest's resolver for the proxy's client: [`resolve_allowed`] at connect time.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve_allowed(name.as_str(), allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> AddressKind {
        address_kind(s.parse().expect("an address"))
    }

    #[test]
    fn loopback_private_and_link_local_addresses_are_private() {
        for a in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
        ] {
            assert_eq!(kind(a), AddressKind::Private, "{a}");
            assert!(!address_allowed(a.parse().unwrap(), false), "{a}");
            assert!(address_allowed(a.parse().unwrap(), true), "{a}");
        }
    }

    #[test]
    fn unspecified_multicast_and_reserved_addresses_are_never_allowed() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "::",
            "ff02::1",
            "2001:db8::1",
            "::ffff:0.0.0.0",
        ] {
            assert_eq!(kind(a), AddressKind::Never, "{a}");
            assert!(!address_allowed(a.parse().unwrap(), true), "{a}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(a), AddressKind::Public, "{a}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed() {
        assert_eq!(
            resolve_allowed("localhost", false).await,
            Err(ResolveError::Refused)
        );
        assert!(resolve_allowed("localhost", true).await.is_ok());
    }
}
