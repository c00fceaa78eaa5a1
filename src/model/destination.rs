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

/// Metadata services outside the link-local ranges: Alibaba Cloud's
/// 100.100.100.200 and AWS's IPv6 fd00:ec2::254.
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// Why a webhook may not go to `ip`, if it may not. An IPv4-mapped IPv6 address
/// (`::ffff:169.254.169.254`) counts as its IPv4 address.
pub fn refused_ip(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (169.254.0.0/16)"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("a link-local address (fe80::/10)")
        }
        IpAddr::V4(METADATA_V4) | IpAddr::V6(METADATA_V6) => {
            Some("a cloud metadata service's address")
        }
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
        ] {
            assert_eq!(host(url), None, "{url}");
        }
    }
}
