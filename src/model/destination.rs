//! Where webhooks never go: link-local addresses, where clouds serve instance
//! metadata and credentials, and the metadata services' other addresses and
//! names. Loopback and private ranges stay allowed: internal receivers are common.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Host names of cloud metadata services: GCP (`metadata.google.internal`,
/// `metadata.goog`, `metadata`), AWS (`instance-data`, `instance-data.ec2.internal`)
/// and Tencent Cloud (`metadata.tencentyun.com`).
pub const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

/// Metadata and platform services outside the link-local ranges: Alibaba
/// Cloud's 100.100.100.200, Azure's WireServer 168.63.129.16, AWS's
/// fd00:ec2::254, GCP's fd20:ce::254 and Oracle Cloud's fd00:c1::a9fe:a9fe.
const METADATA_V4: &[Ipv4Addr] = &[
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: &[Ipv6Addr] = &[
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0xc1, 0, 0, 0, 0, 0xa9fe, 0xa9fe),
];

/// The IPv4 address an IPv6 address carries, if it carries one: IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (but not `::` or `::1`), and
/// the NAT64 prefixes `64:ff9b::/96` and `64:ff9b:1::/48` (RFC 6052, RFC 8215;
/// the address is the last 32 bits).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let last = Ipv4Addr::from(v6.to_bits() as u32);
    let compatible = s[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1];
    v6.to_ipv4_mapped()
        .or((compatible || nat64).then_some(last))
}

/// Why a webhook may not go to `ip`, if it may not. An IPv6 address that
/// carries an IPv4 address (`::ffff:169.254.169.254`, `64:ff9b::a9fe:a9fe`)
/// counts as that IPv4 address.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (169.254.0.0/16)"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("a link-local address (fe80::/10)")
        }
        IpAddr::V4(v4) if METADATA_V4.contains(&v4) => Some("a cloud metadata service's address"),
        IpAddr::V6(v6) if METADATA_V6.contains(&v6) => Some("a cloud metadata service's address"),
        _ => None,
    }
}

/// Why a webhook may not go to `host` (a name or a literal address), if it may
/// not. Names are compared without case and without a trailing dot.
pub fn refused_host(host: &url::Host<&str>) -> Option<&'static str> {
    match host {
        url::Host::Ipv4(a) => refused_ip(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => refused_ip(IpAddr::V6(*a)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            METADATA_NAMES
                .contains(&name.as_str())
                .then_some("a cloud metadata service's name")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Option<&'static str> {
        let url = url::Url::parse(url).unwrap();
        refused_host(&url.host().unwrap())
    }

    #[test]
    fn link_local_and_metadata_are_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.0.1/",
            "http://0xa9fea9fe/",
            "http://[fe80::1]/",
            "http://[febf:ffff::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.Google.Internal./",
            "http://metadata/",
            "http://instance-data/",
            "http://168.63.129.16/machine?comp=goalstate",
            "http://[fd20:ce::254]/computeMetadata/v1/",
            "http://[fd00:c1::a9fe:a9fe]/opc/v2/instance/",
            "http://[::169.254.169.254]/",
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::169.254.169.254]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[64:ff9b:1:ffff::a9fe:a9fe]/",
            "http://[64:ff9b::a83f:8110]/",
            "http://[::ffff:100.100.100.200]/",
        ] {
            assert!(host(url).is_some(), "{url}");
        }
    }

    #[test]
    fn loopback_private_and_public_are_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://[fd00::1]/",
            "http://[fec0::1]/",
            "http://100.100.100.201/",
            "https://hooks.acme.test/segd",
            "http://localhost/",
            "http://metadata.acme.test/",
            "http://168.63.129.17/",
            "http://[fd20:ce::255]/",
            "http://[::]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::8.8.8.8]/",
            "http://[64:ff9c::a9fe:a9fe]/",
        ] {
            assert_eq!(host(url), None, "{url}");
        }
    }
}
