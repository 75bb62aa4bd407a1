//! Which network addresses outbound requests may reach: the rules behind the guard on
//! webhook targets (`integrations::guard`), and the networks an operator allows
//! despite them (`STAGEFLOW_WEBHOOK_ALLOWED_NETWORKS`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Networks an operator allows despite the rules above.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Networks {
    /// Parses `"127.0.0.0/8, ::1/128"`; an address without `/len` is one host.
    pub fn parse(text: &str) -> Result<Networks, String> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, len) = part.split_once('/').unwrap_or((part, ""));
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("{part:?} is not an address or CIDR network"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = if len.is_empty() {
                max
            } else {
                len.parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("{part:?} has an invalid prefix length"))?
            };
            // A network written as IPv4-mapped IPv6 is that IPv4 network.
            let (ip, len) = match ip {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                    let v4 = v6.to_ipv4_mapped().map_or(ip, IpAddr::V4);
                    let len = len.checked_sub(96).ok_or_else(|| {
                        format!("{part:?}: a mapped network needs a prefix of at least 96")
                    })?;
                    (v4, len)
                }
                _ => (ip, len),
            };
            out.push((ip, len));
        }
        Ok(Networks(out))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|(net, len)| match (canonical(*net), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *len),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let len = usize::from(len).min(a.len() * 8);
    let (whole, rest) = (len / 8, len % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let first = seg[0];
    // IPv4 carried in IPv6 is judged as that IPv4 address: IPv4-compatible
    // (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d) and 6to4 (2002:a.b.c.d::/48).
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return forbidden_v4(v4(seg[6], seg[7]));
    }
    if seg[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return forbidden_v4(v4(seg[6], seg[7]));
    }
    if first == 0x2002 {
        return forbidden_v4(v4(seg[1], seg[2]));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata among them)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && seg[1] == 0x0db8) // documentation
        || (first == 0x64 && seg[1] == 0xff9b) // NAT64 of any IPv4
}

/// Whether a delivery may connect to `ip`.
pub fn allowed(ip: IpAddr, networks: &Networks) -> bool {
    if networks.contains(ip) {
        return true;
    }
    match canonical(ip) {
        IpAddr::V4(v4) => !forbidden_v4(v4),
        IpAddr::V6(v6) => !forbidden_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let none = Networks::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "::ffff:0:10.0.0.1",
            "2002:c0a8:0101::1",
            "198.18.0.1",
            "192.0.0.8",
        ] {
            assert!(!allowed(ip(bad), &none), "{bad} should be refused");
        }
        for good in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(allowed(ip(good), &none), "{good} should be allowed");
        }
        let loopback = Networks::parse("127.0.0.0/8").unwrap();
        assert!(allowed(ip("127.0.0.1"), &loopback));
        assert!(allowed(ip("::ffff:127.0.0.2"), &loopback));
        assert!(!allowed(ip("10.0.0.1"), &loopback));
        assert!(!allowed(ip("::1"), &loopback));
    }

    #[test]
    fn networks_parse_and_match_prefixes() {
        let n = Networks::parse("10.0.0.0/9, 192.168.1.7, fd00::/8").unwrap();
        assert!(n.contains(ip("10.127.255.255")));
        assert!(!n.contains(ip("10.128.0.0")));
        assert!(n.contains(ip("192.168.1.7")));
        assert!(!n.contains(ip("192.168.1.8")));
        assert!(n.contains(ip("fd12::1")));
        assert!(Networks::parse("10.0.0.0/33").is_err());
        assert!(Networks::parse("nonsense").is_err());
        assert_eq!(Networks::parse(" ").unwrap(), Networks::default());
        let mapped = Networks::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.1.2.3")) && !mapped.contains(ip("11.0.0.1")));
        assert!(Networks::parse("::ffff:10.0.0.0/64").is_err());
    }
}
