//! Where Loupe may connect to on its own initiative: the rules every
//! outbound connection that a user's settings point somewhere (a webhook,
//! an SMTP server, a Slack URL, later a datasource's host) passes before
//! a socket is opened.
//!
//! Whoever may define a destination must not be able to make the server
//! talk to itself or to its private network (a metadata service at
//! 169.254.169.254, an admin port on loopback, a database on 10.x). So an
//! address on loopback, a private or shared network, link-local or
//! unique-local is refused unless the operator allows private networks
//! (`egress.allow_private = true`, for installations whose mail server or
//! webhook receiver is on their own network). Addresses that are not a
//! single host at all (unspecified, multicast, broadcast, `0.0.0.0/8`,
//! reserved `240.0.0.0/4`) are refused always. IPv6 forms that carry an
//! IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//! `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by that IPv4
//! address.
//!
//! A name is resolved once and every address it resolves to must pass
//! ([`Egress::resolve`]); the caller then connects to those addresses,
//! never to the name again, so a second lookup cannot answer differently
//! (DNS rebinding). This module only decides; it opens no connection and
//! knows nothing of what is being sent.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The configuration key that allows private networks, as messages name it.
const ALLOW_PRIVATE: &str = "egress.allow_private = true";

/// The outbound connection rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Egress {
    allow_private: bool,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// On this host or a network only this installation reaches: refused
    /// unless private networks are allowed.
    Private(&'static str),
    /// Not the address of one host: refused always.
    NotUnicast(&'static str),
}

/// Why a name could not be turned into addresses to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// The name did not resolve (a retry may succeed).
    Unresolved(String),
    /// An address is refused by the rules (retrying will not help).
    Refused(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unresolved(message) | Self::Refused(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ResolveError {}

impl Egress {
    /// Rules that refuse private networks unless `allow_private`.
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether loopback and private networks are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Whether Loupe may connect to `ip`.
    ///
    /// # Errors
    ///
    /// A message that names the address, the rule that refuses it and,
    /// where a setting allows it, that setting.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        self.check(ip, &ip.to_string())
    }

    /// [`check_ip`](Self::check_ip), with `subject` naming the address in
    /// the message.
    fn check(&self, ip: IpAddr, subject: &str) -> Result<(), String> {
        match rule_for(ip) {
            None => Ok(()),
            Some(Rule::Private(_)) if self.allow_private => Ok(()),
            Some(Rule::Private(what)) => Err(format!(
                "{subject} is {what}: Loupe does not connect to loopback or private networks unless the operator sets {ALLOW_PRIVATE}"
            )),
            Some(Rule::NotUnicast(what)) => Err(format!(
                "{subject} is {what}, not the address of one host: no setting allows connecting to it"
            )),
        }
    }

    /// The addresses of `host` (a name or an IP address, IPv6 with or
    /// without brackets) with `port`, each of which passes
    /// [`check_ip`](Self::check_ip). Connect to these, not to the name.
    ///
    /// # Errors
    ///
    /// When the name does not resolve, or when any of its addresses is
    /// refused: a name that resolves to one public and one private
    /// address is refused as a whole, since the connection could go to
    /// either.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        self.lookup(host, port).await.map_err(|e| e.to_string())
    }

    /// [`resolve`](Self::resolve), telling a name that does not resolve
    /// from one that is refused.
    pub(crate) async fn lookup(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() {
            return Err(ResolveError::Refused(
                "no host name to connect to".to_owned(),
            ));
        }
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| ResolveError::Unresolved(format!("could not resolve {bare}: {e}")))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(ResolveError::Unresolved(format!(
                "{bare} resolves to no address"
            )));
        }
        self.check_all(bare, addresses)
    }

    /// `addresses`, the lookup of `name`, when every one of them passes.
    fn check_all(
        &self,
        name: &str,
        addresses: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let literal = name.parse::<IpAddr>().is_ok();
        let mut checked: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
        for address in addresses {
            let ip = address.ip();
            if literal {
                self.check_ip(ip)
            } else {
                self.check(ip, &format!("{name} resolves to {ip}, which"))
            }
            .map_err(ResolveError::Refused)?;
            if !checked.contains(&address) {
                checked.push(address);
            }
        }
        Ok(checked)
    }
}

/// The rule that refuses `ip`, if one does.
fn rule_for(ip: IpAddr) -> Option<Rule> {
    match ip {
        IpAddr::V4(v4) => rule_for_v4(v4),
        IpAddr::V6(v6) => rule_for_v6(v6),
    }
}

fn rule_for_v4(ip: Ipv4Addr) -> Option<Rule> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() {
        Some(Rule::NotUnicast("the unspecified address"))
    } else if a == 0 {
        Some(Rule::NotUnicast("in \"this network\" (0.0.0.0/8)"))
    } else if ip.is_broadcast() {
        Some(Rule::NotUnicast("the broadcast address"))
    } else if ip.is_multicast() {
        Some(Rule::NotUnicast("a multicast address (224.0.0.0/4)"))
    } else if a >= 240 {
        Some(Rule::NotUnicast("a reserved address (240.0.0.0/4)"))
    } else if ip.is_loopback() {
        Some(Rule::Private("a loopback address (127.0.0.0/8)"))
    } else if a == 10 {
        Some(Rule::Private("a private address (10.0.0.0/8)"))
    } else if a == 172 && (16..32).contains(&b) {
        Some(Rule::Private("a private address (172.16.0.0/12)"))
    } else if a == 192 && b == 168 {
        Some(Rule::Private("a private address (192.168.0.0/16)"))
    } else if ip.is_link_local() {
        Some(Rule::Private("a link-local address (169.254.0.0/16)"))
    } else if a == 100 && (64..128).contains(&b) {
        Some(Rule::Private(
            "a shared address of carrier-grade NAT (100.64.0.0/10)",
        ))
    } else {
        None
    }
}

fn rule_for_v6(ip: Ipv6Addr) -> Option<Rule> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(Rule::NotUnicast("the unspecified address"));
    }
    if ip.is_loopback() {
        return Some(Rule::Private("the loopback address (::1)"));
    }
    if let Some(v4) = embedded_v4(ip) {
        return rule_for_v4(v4);
    }
    if ip.is_multicast() {
        Some(Rule::NotUnicast("a multicast address (ff00::/8)"))
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some(Rule::Private("a link-local address (fe80::/10)"))
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Some(Rule::Private("a site-local address (fec0::/10)"))
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some(Rule::Private("a unique-local address (fc00::/7)"))
    } else {
        None
    }
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach
/// an IPv4 host: mapped, compatible (deprecated, but still routed by some
/// stacks), the NAT64 well-known prefix and 6to4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn refused(ip: &str) -> String {
        Egress::default().check_ip(ip.parse().unwrap()).unwrap_err()
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(
                Egress::default().check_ip(ip.parse().unwrap()),
                Ok(()),
                "{ip}"
            );
        }
    }

    #[test]
    fn each_private_range_is_refused_with_its_rule_and_the_setting() {
        for (ip, rule) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("fe80::1", "fe80::/10"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fec0::1", "fec0::/10"),
        ] {
            let message = refused(ip);
            assert!(message.contains(rule), "{ip}: {message}");
            assert!(message.contains(ALLOW_PRIVATE), "{ip}: {message}");
        }
    }

    #[test]
    fn addresses_that_are_not_one_host_are_refused_even_when_private_is_allowed() {
        let open = Egress::new(true);
        for (ip, rule) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("240.0.0.1", "240.0.0.0/4"),
        ] {
            let message = open.check_ip(ip.parse().unwrap()).unwrap_err();
            assert!(message.contains(rule), "{ip}: {message}");
            assert!(message.contains("no setting allows"), "{ip}: {message}");
        }
    }

    #[test]
    fn allow_private_lets_private_ranges_through() {
        let open = Egress::new(true);
        for ip in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "169.254.1.1",
            "fd00::1",
            "100.64.0.1",
        ] {
            assert_eq!(open.check_ip(ip.parse().unwrap()), Ok(()), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_an_ipv4_address_are_judged_by_it() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(refused(ip).contains(ALLOW_PRIVATE), "{ip}");
        }
        assert_eq!(
            Egress::default().check_ip("::ffff:93.184.215.14".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            Egress::default().check_ip("64:ff9b::5db8:d70e".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn a_name_is_refused_when_any_one_of_its_addresses_is() {
        let public: SocketAddr = "93.184.215.14:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.7:443".parse().unwrap();
        let refusal = Egress::default()
            .check_all("mixed.example", vec![public, private])
            .unwrap_err();
        assert_eq!(
            refusal,
            ResolveError::Refused(format!(
                "mixed.example resolves to 10.0.0.7, which is a private address (10.0.0.0/8): Loupe does not connect to loopback or private networks unless the operator sets {ALLOW_PRIVATE}"
            ))
        );
        assert_eq!(
            Egress::default().check_all("public.example", vec![public, public]),
            Ok(vec![public])
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let message = Egress::default()
            .resolve("localhost", 25)
            .await
            .unwrap_err();
        assert!(message.starts_with("localhost resolves to "), "{message}");
        assert!(message.contains("loopback"), "{message}");
        let addresses = Egress::new(true).resolve("localhost", 25).await.unwrap();
        assert!(!addresses.is_empty());
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 25)
        );
    }

    #[tokio::test]
    async fn ip_literals_are_checked_without_a_lookup() {
        let message = Egress::default().resolve("[::1]", 443).await.unwrap_err();
        assert!(
            message.starts_with("::1 is the loopback address"),
            "{message}"
        );
        assert_eq!(
            Egress::default()
                .resolve("93.184.215.14", 443)
                .await
                .unwrap(),
            vec!["93.184.215.14:443".parse().unwrap()]
        );
        assert_eq!(
            Egress::default().resolve("", 443).await.unwrap_err(),
            "no host name to connect to"
        );
    }

    proptest! {
        #[test]
        fn an_ipv4_mapped_address_gets_the_same_answer_as_its_ipv4(bits: u32, allow: bool) {
            let egress = Egress::new(allow);
            let v4 = Ipv4Addr::from(bits);
            let expected = egress.check_ip(IpAddr::V4(v4)).is_ok();
            prop_assert_eq!(egress.check_ip(IpAddr::V6(v4.to_ipv6_mapped())).is_ok(), expected);
            let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits));
            prop_assert_eq!(egress.check_ip(IpAddr::V6(nat64)).is_ok(), expected);
            // The compatible form of 0.0.0.0/8 overlaps :: and ::1, which
            // are IPv6's own unspecified and loopback addresses.
            if v4.octets()[0] != 0 {
                prop_assert_eq!(egress.check_ip(IpAddr::V6(v4.to_ipv6_compatible())).is_ok(), expected);
            }
        }
    }
}
