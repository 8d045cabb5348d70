//! The LAN facts port mapping needs from the system: the default gateway, and our address on
//! the way to a device.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The IPv4 default gateway from Linux's `/proc/net/route` (`None` elsewhere, or without one).
pub fn default_gateway() -> Option<Ipv4Addr> {
    parse_route(&std::fs::read_to_string("/proc/net/route").ok()?)
}

/// The gateway of the first default route (destination 0, flag RTF_GATEWAY) in the text of
/// `/proc/net/route`, whose addresses are hexadecimal in host (little-endian) byte order.
fn parse_route(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dest, gw, flags) = (f.get(1)?, f.get(2)?, u32::from_str_radix(f.get(3)?, 16).ok()?);
        if *dest != "00000000" || flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY {
            return None;
        }
        let gw = u32::from_str_radix(gw, 16).ok()?;
        Some(Ipv4Addr::from(gw.swap_bytes())).filter(|g| !g.is_unspecified())
    })
}

/// Our IPv4 address on the route to `to` (a connected UDP socket sends nothing: the kernel
/// only picks the route and the source address).
pub(crate) fn local_ip_toward(to: SocketAddr) -> Option<Ipv4Addr> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    crate::device::apply(&s).ok()?;
    s.connect(&to.into()).ok()?;
    match s.local_addr().ok()?.as_socket()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t014DA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(parse_route(table), Some(Ipv4Addr::new(192, 168, 77, 1)));
        assert_eq!(parse_route("Iface\tDestination\n"), None);
        assert_eq!(parse_route("h\neth0 00000000 zz 0003\n"), None);
        let no_gw = "h\neth0\t00000000\t014DA8C0\t0001\n";
        assert_eq!(parse_route(no_gw), None, "a default route without RTF_GATEWAY");
    }

    #[test]
    fn our_address_toward_loopback() {
        assert_eq!(local_ip_toward("127.0.0.1:5000".parse().unwrap()), Some(Ipv4Addr::LOCALHOST));
    }
}
