//! Which addresses and names a reported URL may make us connect to.
//!
//! [`classify_address`] is the heart of the crate: a pure function from an [`IpAddr`] to a
//! [`AddressVerdict`], either [`AddressVerdict::Allowed`] or [`AddressVerdict::Forbidden`] with the
//! [`ForbiddenClass`] that names why. Only globally routed unicast space is allowed; every
//! range that reaches the machine itself, the local network, a cloud provider's metadata
//! service, or that a router or translator would turn into one of those, is refused.
//! [`classify_host_name`] refuses the few names that reach a metadata service whatever they
//! resolve to.
//!
//! The ranges follow the IANA special-purpose address registries (RFC 6890 and its updates).
//! Addresses that embed an IPv4 address are refused as a whole where the embedding can only
//! mean "reach this IPv4 address through us" (IPv4-mapped, IPv4-compatible, NAT64/SIIT
//! translation), and judged by the IPv4 addresses they carry where the embedding is a tunnel
//! endpoint that is public in normal use (6to4, Teredo).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What [`classify_address`] or [`classify_host_name`] says of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressVerdict {
    /// Public unicast space (or a name that is not known to be internal): we may connect.
    Allowed,
    /// Never connected to, for the reason named.
    Forbidden(ForbiddenClass),
}

/// Why an address or a name is never connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForbiddenClass {
    /// `0.0.0.0` and `::`, which many stacks treat as "this host".
    Unspecified,
    /// `0.0.0.0/8`: "this network" (RFC 791).
    ThisNetwork,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918 space: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` and `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Space that is not routed on the Internet: `240.0.0.0/4`, the retired 6to4 relay anycast
    /// `192.88.99.0/24`, the IPv6 discard prefix `100::/64`, and all IPv6 outside the global
    /// unicast `2000::/3`.
    Reserved,
    /// Documentation examples: `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Benchmarking: `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// IETF protocol assignments: `192.0.0.0/24`, `2001::/23` (Teredo apart).
    IetfProtocol,
    /// Unique local addresses, `fc00::/7`.
    UniqueLocal,
    /// Deprecated site-local addresses, `fec0::/10`, still routed inside some networks.
    SiteLocal,
    /// A cloud provider's instance metadata service, by address or by name.
    CloudMetadata,
    /// `::ffff:0:0/96`: an IPv4 address in IPv6 form; a dual-stack socket reaches the IPv4
    /// address.
    Ipv4Mapped,
    /// `::/96` (`::a.b.c.d`), the deprecated IPv4-compatible form.
    Ipv4Compatible,
    /// Translated IPv4: NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, SIIT `::ffff:0:0:0/96`. A
    /// translator on the path would connect to the embedded IPv4 address, whatever it is.
    Ipv4Translated,
    /// 6to4 (`2002::/16`) carrying an IPv4 address that is itself forbidden.
    SixToFour,
    /// Teredo (`2001::/32`) carrying a server or client IPv4 address that is itself forbidden.
    Teredo,
}

impl fmt::Display for ForbiddenClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForbiddenClass::Unspecified => "unspecified address",
            ForbiddenClass::ThisNetwork => "\"this network\" address",
            ForbiddenClass::Loopback => "loopback address",
            ForbiddenClass::Private => "private (RFC 1918) address",
            ForbiddenClass::SharedAddressSpace => "carrier-grade NAT (shared) address",
            ForbiddenClass::LinkLocal => "link-local address",
            ForbiddenClass::Multicast => "multicast address",
            ForbiddenClass::Broadcast => "broadcast address",
            ForbiddenClass::Reserved => "reserved (unrouted) address",
            ForbiddenClass::Documentation => "documentation address",
            ForbiddenClass::Benchmarking => "benchmarking address",
            ForbiddenClass::IetfProtocol => "IETF protocol assignment",
            ForbiddenClass::UniqueLocal => "unique local address",
            ForbiddenClass::SiteLocal => "site-local address",
            ForbiddenClass::CloudMetadata => "cloud metadata service",
            ForbiddenClass::Ipv4Mapped => "IPv4-mapped IPv6 address",
            ForbiddenClass::Ipv4Compatible => "IPv4-compatible IPv6 address",
            ForbiddenClass::Ipv4Translated => "IPv4-translated (NAT64/SIIT) address",
            ForbiddenClass::SixToFour => "6to4 address embedding a forbidden IPv4 address",
            ForbiddenClass::Teredo => "Teredo address embedding a forbidden IPv4 address",
        })
    }
}

/// Instance metadata services, which hand out credentials to whoever asks from inside the
/// instance. Most sit in link-local space and are refused as such too; they are named so the
/// error says what was at stake, and the public-looking ones are only caught here.
const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, DigitalOcean, Hetzner, OpenStack
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(169, 254, 0, 23),    // Tencent Cloud
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure WireServer: a public address, reachable only inside Azure
];

const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // AWS EKS pod identity over IPv6
];

/// Names of metadata services. Some resolve to public addresses that serve instance data only
/// to the instance asking (Equinix Metal), so the name itself has to be refused.
const METADATA_NAMES: [&str; 8] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
    "metadata.packet.net",
];

/// Whether we may connect to `address`.
pub fn classify_address(address: IpAddr) -> AddressVerdict {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether a host name may be resolved at all. `name` is compared without case and without a
/// trailing dot. Names not refused here are still refused if they resolve to a forbidden
/// address.
pub fn classify_host_name(name: &str) -> AddressVerdict {
    let name = name.strip_suffix('.').unwrap_or(name);
    if METADATA_NAMES.iter().any(|known| known.eq_ignore_ascii_case(name)) {
        AddressVerdict::Forbidden(ForbiddenClass::CloudMetadata)
    } else {
        AddressVerdict::Allowed
    }
}

fn in_v4(address: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(address) & mask == u32::from_be_bytes(network) & mask
}

fn in_v6(address: Ipv6Addr, network: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(address) & mask == u128::from(network) & mask
}

fn classify_v4(address: Ipv4Addr) -> AddressVerdict {
    use ForbiddenClass::*;
    const RANGES: &[([u8; 4], u32, ForbiddenClass)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, ThisNetwork),
        ([127, 0, 0, 0], 8, Loopback),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([100, 64, 0, 0], 10, SharedAddressSpace),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([192, 0, 0, 0], 24, IetfProtocol),
        ([192, 0, 2, 0], 24, Documentation),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([192, 88, 99, 0], 24, Reserved),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    if METADATA_V4.contains(&address) {
        return AddressVerdict::Forbidden(CloudMetadata);
    }
    // The table is ordered so that a more specific range comes before one containing it.
    match RANGES.iter().find(|(network, prefix, _)| in_v4(address, *network, *prefix)) {
        Some((_, _, class)) => AddressVerdict::Forbidden(*class),
        None => AddressVerdict::Allowed,
    }
}

fn classify_v6(address: Ipv6Addr) -> AddressVerdict {
    use ForbiddenClass::*;
    const fn v6(segments: [u16; 8]) -> Ipv6Addr {
        Ipv6Addr::new(
            segments[0],
            segments[1],
            segments[2],
            segments[3],
            segments[4],
            segments[5],
            segments[6],
            segments[7],
        )
    }
    const RANGES: &[(Ipv6Addr, u32, ForbiddenClass)] = &[
        (Ipv6Addr::UNSPECIFIED, 128, Unspecified),
        (Ipv6Addr::LOCALHOST, 128, Loopback),
        (v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96, Ipv4Mapped),
        (v6([0, 0, 0, 0, 0xffff, 0, 0, 0]), 96, Ipv4Translated),
        (Ipv6Addr::UNSPECIFIED, 96, Ipv4Compatible),
        (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96, Ipv4Translated),
        (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, Ipv4Translated),
        (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, Reserved),
        (v6([0x2001, 0x2, 0, 0, 0, 0, 0, 0]), 48, Benchmarking),
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, Documentation),
        (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, Documentation),
        (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, IetfProtocol),
        (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, UniqueLocal),
        (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, LinkLocal),
        (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, SiteLocal),
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, Multicast),
    ];
    if METADATA_V6.contains(&address) {
        return AddressVerdict::Forbidden(CloudMetadata);
    }
    let segments = address.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // Teredo sits inside 2001::/23, so it is judged before the table: the server address is
    // bits 32..64, the client's (obfuscated by inverting every bit) the last 32.
    if in_v6(address, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32) {
        let server = embedded(segments[2], segments[3]);
        let client = embedded(!segments[6], !segments[7]);
        return match (classify_v4(server), classify_v4(client)) {
            (AddressVerdict::Allowed, AddressVerdict::Allowed) => AddressVerdict::Allowed,
            _ => AddressVerdict::Forbidden(Teredo),
        };
    }
    if in_v6(address, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        return match classify_v4(embedded(segments[1], segments[2])) {
            AddressVerdict::Allowed => AddressVerdict::Allowed,
            AddressVerdict::Forbidden(_) => AddressVerdict::Forbidden(SixToFour),
        };
    }
    if let Some((_, _, class)) = RANGES.iter().find(|(network, prefix, _)| in_v6(address, *network, *prefix))
    {
        return AddressVerdict::Forbidden(*class);
    }
    if in_v6(address, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        AddressVerdict::Allowed
    } else {
        AddressVerdict::Forbidden(Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForbiddenClass::*;

    fn check(cases: &[(&str, AddressVerdict)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(text, expected)| {
                let address: IpAddr = text.parse().unwrap_or_else(|_| panic!("{text} is no address"));
                let got = classify_address(address);
                (got != *expected).then(|| format!("{text}: expected {expected:?}, got {got:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    fn forbidden(class: ForbiddenClass) -> AddressVerdict {
        AddressVerdict::Forbidden(class)
    }

    #[test]
    fn ipv4_ranges_are_refused_from_first_to_last_address() {
        check(&[
            ("0.0.0.0", forbidden(Unspecified)),
            ("0.0.0.1", forbidden(ThisNetwork)),
            ("0.255.255.255", forbidden(ThisNetwork)),
            ("127.0.0.0", forbidden(Loopback)),
            ("127.0.0.1", forbidden(Loopback)),
            ("127.255.255.255", forbidden(Loopback)),
            ("10.0.0.0", forbidden(Private)),
            ("10.255.255.255", forbidden(Private)),
            ("172.16.0.0", forbidden(Private)),
            ("172.31.255.255", forbidden(Private)),
            ("192.168.0.0", forbidden(Private)),
            ("192.168.255.255", forbidden(Private)),
            ("100.64.0.0", forbidden(SharedAddressSpace)),
            ("100.127.255.255", forbidden(SharedAddressSpace)),
            ("169.254.0.0", forbidden(LinkLocal)),
            ("169.254.255.255", forbidden(LinkLocal)),
            ("192.0.0.0", forbidden(IetfProtocol)),
            ("192.0.0.255", forbidden(IetfProtocol)),
            ("192.0.2.0", forbidden(Documentation)),
            ("192.0.2.255", forbidden(Documentation)),
            ("198.51.100.0", forbidden(Documentation)),
            ("198.51.100.255", forbidden(Documentation)),
            ("203.0.113.0", forbidden(Documentation)),
            ("203.0.113.255", forbidden(Documentation)),
            ("198.18.0.0", forbidden(Benchmarking)),
            ("198.19.255.255", forbidden(Benchmarking)),
            ("192.88.99.0", forbidden(Reserved)),
            ("192.88.99.255", forbidden(Reserved)),
            ("224.0.0.0", forbidden(Multicast)),
            ("239.255.255.255", forbidden(Multicast)),
            ("240.0.0.0", forbidden(Reserved)),
            ("255.255.255.254", forbidden(Reserved)),
            ("255.255.255.255", forbidden(Broadcast)),
        ]);
    }

    #[test]
    fn ipv4_public_neighbours_of_refused_ranges_are_allowed() {
        let allowed: Vec<(&str, AddressVerdict)> = [
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "8.8.8.8",
            "93.184.216.34",
            "168.63.129.15",
        ]
        .into_iter()
        .map(|text| (text, AddressVerdict::Allowed))
        .collect();
        check(&allowed);
    }

    #[test]
    fn cloud_metadata_addresses_are_named_as_such() {
        check(&[
            ("169.254.169.254", forbidden(CloudMetadata)),
            ("169.254.170.2", forbidden(CloudMetadata)),
            ("169.254.170.23", forbidden(CloudMetadata)),
            ("169.254.0.23", forbidden(CloudMetadata)),
            ("100.100.100.200", forbidden(CloudMetadata)),
            ("168.63.129.16", forbidden(CloudMetadata)),
            ("fd00:ec2::254", forbidden(CloudMetadata)),
            ("fd00:ec2::23", forbidden(CloudMetadata)),
            // A neighbour is still refused, for its own class.
            ("169.254.169.253", forbidden(LinkLocal)),
            ("fd00:ec2::255", forbidden(UniqueLocal)),
        ]);
    }

    #[test]
    fn ipv6_ranges_are_refused_from_first_to_last_address() {
        check(&[
            ("::", forbidden(Unspecified)),
            ("::1", forbidden(Loopback)),
            ("::2", forbidden(Ipv4Compatible)),
            ("::7f00:1", forbidden(Ipv4Compatible)),
            ("::808:808", forbidden(Ipv4Compatible)),
            ("::ffff:ffff", forbidden(Ipv4Compatible)),
            ("::ffff:0:0", forbidden(Ipv4Mapped)),
            ("::ffff:127.0.0.1", forbidden(Ipv4Mapped)),
            ("::ffff:8.8.8.8", forbidden(Ipv4Mapped)),
            ("::ffff:ffff:ffff", forbidden(Ipv4Mapped)),
            ("::ffff:0:0:0", forbidden(Ipv4Translated)),
            ("::ffff:0:a00:1", forbidden(Ipv4Translated)),
            ("::ffff:0:ffff:ffff", forbidden(Ipv4Translated)),
            ("64:ff9b::", forbidden(Ipv4Translated)),
            ("64:ff9b::7f00:1", forbidden(Ipv4Translated)),
            ("64:ff9b::808:808", forbidden(Ipv4Translated)),
            ("64:ff9b::ffff:ffff", forbidden(Ipv4Translated)),
            ("64:ff9b:1::", forbidden(Ipv4Translated)),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", forbidden(Ipv4Translated)),
            ("100::", forbidden(Reserved)),
            ("100::ffff:ffff:ffff:ffff", forbidden(Reserved)),
            ("2001:2::", forbidden(Benchmarking)),
            ("2001:2:0:ffff:ffff:ffff:ffff:ffff", forbidden(Benchmarking)),
            ("2001:db8::", forbidden(Documentation)),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Documentation)),
            ("3fff::", forbidden(Documentation)),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Documentation)),
            ("2001:1::1", forbidden(IetfProtocol)),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(IetfProtocol)),
            ("fc00::", forbidden(UniqueLocal)),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(UniqueLocal)),
            ("fe80::", forbidden(LinkLocal)),
            ("fe80::1", forbidden(LinkLocal)),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(LinkLocal)),
            ("fec0::", forbidden(SiteLocal)),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(SiteLocal)),
            ("ff00::", forbidden(Multicast)),
            ("ff02::1", forbidden(Multicast)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Multicast)),
            // Outside global unicast 2000::/3.
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Reserved)),
            ("4000::", forbidden(Reserved)),
            ("5f00::1", forbidden(Reserved)),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Reserved)),
            ("1::", forbidden(Reserved)),
            ("64:ff9b:2::", forbidden(Reserved)),
            ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", forbidden(Reserved)),
        ]);
    }

    #[test]
    fn ipv6_public_neighbours_of_refused_ranges_are_allowed() {
        let allowed: Vec<(&str, AddressVerdict)> = [
            "2000::",
            "2001:200::",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff:1000::",
        ]
        .into_iter()
        .map(|text| (text, AddressVerdict::Allowed))
        .collect();
        check(&allowed);
    }

    #[test]
    fn tunnels_are_judged_by_the_ipv4_addresses_they_embed() {
        check(&[
            // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
            ("2002:7f00:1::", forbidden(SixToFour)),
            ("2002:a00:1::1", forbidden(SixToFour)),
            ("2002:c0a8:101::", forbidden(SixToFour)),
            ("2002:a9fe:a9fe::", forbidden(SixToFour)),
            ("2002::", forbidden(SixToFour)),
            ("2002:808:808::1", AddressVerdict::Allowed),
            // Teredo: 2001:0:SERVER:flags:port:~CLIENT.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", AddressVerdict::Allowed), // client 8.8.8.8
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", forbidden(Teredo)),       // client 192.0.2.45
            ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", forbidden(Teredo)),          // server 127.0.0.1
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", forbidden(Teredo)),       // client 10.0.0.1
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", forbidden(Teredo)),       // client 127.0.0.1
            ("2001:0:a9fe:a9fe::", forbidden(Teredo)),
        ]);
    }

    #[test]
    fn metadata_names_are_refused_whatever_their_case_or_trailing_dot() {
        for name in ["metadata.google.internal", "METADATA.Google.Internal.", "metadata", "instance-data"] {
            assert_eq!(classify_host_name(name), forbidden(CloudMetadata), "{name}");
        }
        for name in ["example.com", "metadata.example.com", "google.internal", "localhost"] {
            assert_eq!(classify_host_name(name), AddressVerdict::Allowed, "{name}");
        }
    }
}
