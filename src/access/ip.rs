//! IP rules (nginx's `allow` and `deny`): an ordered list of networks, each
//! allowing or denying, tried against the client address (the one left
//! after `trusted_proxies`) until one matches; no match allows.
//!
//! The two ways of writing them compile to the same list: `allow = [...]`
//! and `deny = [...]` are the allow list followed by the deny list, and
//! `access = [{ deny = ... }, { allow = ... }]` is taken as written.
//! Compiled once at load: checking a request walks a boxed slice of
//! masks, with no allocation.

use std::net::IpAddr;

/// One network: an address and a mask, both in host order, IPv4 kept as
/// IPv4 (an IPv4-mapped IPv6 network is turned into one at load, and an
/// IPv4-mapped client address at check time, so the two always meet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    All,
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
    /// `"all"`, `"10.0.0.0/8"`, `"2001:db8::/32"` or a single address.
    /// The error says what to write instead.
    pub fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(Net::All);
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u32 = l
                    .parse()
                    .map_err(|_| format!("{s:?}: the prefix length after `/` is not a number"))?;
                (a, Some(len))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an address or network: write \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" or \"all\"")
        })?;
        let net = match addr {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(format!("{s:?}: an IPv4 prefix is at most /32"));
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Net::V4 {
                    addr: u32::from(a),
                    mask,
                }
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(format!("{s:?}: an IPv6 prefix is at most /128"));
                }
                let bits = u128::from(a);
                // ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n.
                if len >= 96 && a.to_ipv4_mapped().is_some() {
                    let len = len - 96;
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    Net::V4 {
                        addr: bits as u32,
                        mask,
                    }
                } else {
                    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
                    Net::V6 { addr: bits, mask }
                }
            }
        };
        // As written, the low bits would be ignored: say so rather than
        // guess whether a network or a single address was meant.
        match net {
            Net::V4 { addr, mask } if addr & !mask != 0 => Err(format!(
                "{s:?} has bits set past its prefix: write the network {:?}",
                format!("{}/{}", std::net::Ipv4Addr::from(addr & mask), mask.count_ones())
            )),
            Net::V6 { addr, mask } if addr & !mask != 0 => Err(format!(
                "{s:?} has bits set past its prefix: write the network {:?}",
                format!("{}/{}", std::net::Ipv6Addr::from(addr & mask), mask.count_ones())
            )),
            n => Ok(n),
        }
    }

    #[inline]
    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Net::All, _) => true,
            (Net::V4 { addr, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *addr,
            (Net::V6 { addr, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *addr,
            _ => false,
        }
    }
}

/// One rule: a network and whether it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub net: Net,
    pub allow: bool,
}

/// A block's rules, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules(pub Box<[Rule]>);

impl Rules {
    /// Whether `client` may go on: the first rule that matches decides,
    /// and an address no rule matches is allowed.
    #[inline]
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.0
            .iter()
            .find(|r| r.net.contains(client))
            .is_none_or(|r| r.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(&str, bool)]) -> Rules {
        Rules(
            list.iter()
                .map(|(n, allow)| Rule {
                    net: Net::parse(n).unwrap(),
                    allow: *allow,
                })
                .collect(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_match_wins_and_no_match_allows() {
        // nginx's `deny 10.0.0.5; allow 10.0.0.0/8; deny all;`
        let r = rules(&[("10.0.0.5", false), ("10.0.0.0/8", true), ("all", false)]);
        assert!(!r.allows(ip("10.0.0.5")));
        assert!(r.allows(ip("10.9.8.7")));
        assert!(!r.allows(ip("192.0.2.1")));
        assert!(!r.allows(ip("2001:db8::1")));
        let open = rules(&[("192.0.2.0/24", false)]);
        assert!(open.allows(ip("198.51.100.1")));
        assert!(!open.allows(ip("192.0.2.200")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let r = rules(&[("10.0.0.0/8", true), ("all", false)]);
        assert!(r.allows(ip("::ffff:10.1.2.3")));
        assert!(!r.allows(ip("::ffff:11.1.2.3")));
        assert_eq!(
            Net::parse("::ffff:10.0.0.0/104").unwrap(),
            Net::parse("10.0.0.0/8").unwrap()
        );
        let v6 = rules(&[("2001:db8::/32", false)]);
        assert!(!v6.allows(ip("2001:db8:1::1")));
        assert!(v6.allows(ip("2001:db9::1")));
    }

    #[test]
    fn bad_networks() {
        for (bad, says) in [
            ("10.0.0.1/8", "write the network \"10.0.0.0/8\""),
            ("10.0.0.0/33", "at most /32"),
            ("2001:db8::1/32", "\"2001:db8::/32\""),
            ("10.0.0.0/x", "not a number"),
            ("localhost", "is not an address or network"),
            ("", "is not an address"),
        ] {
            let e = Net::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(Net::parse("0.0.0.0/0").unwrap(), Net::V4 { addr: 0, mask: 0 });
        assert_eq!(Net::parse("::/0").unwrap(), Net::V6 { addr: 0, mask: 0 });
    }
}
