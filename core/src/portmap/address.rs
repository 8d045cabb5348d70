//! Which external addresses a gateway reports are believed.

use std::net::Ipv4Addr;

/// Whether `ip`, claimed by a gateway as its external address, could be one peers reach:
/// not unspecified, loopback, private, link-local, shared (100.64/10, carrier-grade NAT),
/// broadcast or multicast. A gateway behind another NAT, or a broken or lying one, says such
/// things.
pub fn usable_external_ip(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    let shared = o[0] == 100 && (o[1] & 0xc0) == 64;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || shared
        || o[0] == 0)
}
