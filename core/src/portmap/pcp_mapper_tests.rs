//! The mapper over PCP: mapping, renewal, deletion, the nonce, and the fallback to NAT-PMP.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::pcp::Nonce;
use super::tests::{at, drain, events, gw, map_answer, natpmp_sent, GW, PORT, WANTED};
use super::*;

const ME: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const NONCE: Nonce = *b"shoal-nonce!";
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

fn mapper(natpmp: bool) -> PortMapper {
    let config = PortMapConfig {
        upnp: false,
        natpmp,
        pcp: true,
        gateway: Some(GW),
        client_ip: Some(ME),
        pcp_nonce: NONCE,
        ..PortMapConfig::default()
    };
    PortMapper::new(config, &WANTED)
}

/// A MAP answer for `proto` (6 TCP, 17 UDP) to our nonce.
fn pcp_answer(code: u8, epoch: u32, proto: u8, external: u16, life: u32, nonce: Nonce) -> Vec<u8> {
    let mut d = vec![2, 0x81, 0, code];
    d.extend_from_slice(&life.to_be_bytes());
    d.extend_from_slice(&epoch.to_be_bytes());
    d.extend_from_slice(&[0; 12]);
    d.extend_from_slice(&nonce);
    d.extend_from_slice(&[proto, 0, 0, 0]);
    d.extend_from_slice(&PORT.to_be_bytes());
    d.extend_from_slice(&external.to_be_bytes());
    d.extend_from_slice(&EXTERNAL.to_ipv6_mapped().octets());
    d
}

/// (lifetime, protocol number, suggested port) of each PCP request sent.
fn requests(out: &[PortMapOutput]) -> Vec<(u32, u8, u16)> {
    natpmp_sent(out)
        .iter()
        .map(|d| {
            assert_eq!((d.len(), d[0], d[1]), (60, 2, 1), "a PCP MAP request");
            assert_eq!(d[24..36], NONCE, "every request carries the nonce");
            assert_eq!(d[20..24], ME.octets(), "and our address");
            (u32::from_be_bytes([d[4], d[5], d[6], d[7]]), d[36], u16::from_be_bytes([d[42], d[43]]))
        })
        .collect()
}

#[test]
fn pcp_maps_renews_halfway_and_deletes_at_shutdown() {
    let mut m = mapper(true);
    m.start(at(0.0));
    assert_eq!(requests(&drain(&mut m)), [(7200, 6, PORT), (7200, 17, PORT)], "PCP first, no NAT-PMP yet");
    // Another nonce is someone else's mapping; the right one maps.
    m.handle_natpmp(gw(), &pcp_answer(0, 10, 6, 7000, 7200, *b"not-our-nonc"), at(0.1));
    assert!(drain(&mut m).is_empty());
    m.handle_natpmp(gw(), &pcp_answer(0, 10, 6, 7000, 7200, NONCE), at(0.1));
    m.handle_natpmp(gw(), &pcp_answer(0, 10, 17, 7000, 3600, NONCE), at(0.1));
    let ev = events(&drain(&mut m));
    let mapped = |protocol, renewal| PortMapEvent::Mapped {
        via: Via::Pcp,
        protocol,
        internal_port: PORT,
        external_port: 7000,
        renewal,
    };
    assert_eq!(
        ev,
        [
            mapped(Protocol::Tcp, false),
            PortMapEvent::ExternalIp { via: Via::Pcp, ip: EXTERNAL, usable: true },
            mapped(Protocol::Udp, false)
        ]
    );
    assert_eq!(m.external(Protocol::Tcp, PORT), Some((Some(EXTERNAL), 7000)));
    assert!(m.status().iter().all(|s| s.via == Via::Pcp), "NAT-PMP is not running: {:?}", m.status());
    // The UDP lease was 3600 s: renewed first, at half, asking for the port it has.
    assert_eq!(m.poll_timeout(), Some(at(1800.1)));
    m.handle_timeout(at(1800.1));
    assert_eq!(requests(&drain(&mut m)), [(7200, 17, 7000)]);
    m.handle_natpmp(gw(), &pcp_answer(0, 1585, 17, 7000, 7200, NONCE), at(1800.2));
    assert_eq!(events(&drain(&mut m)), [mapped(Protocol::Udp, true)]);
    // Shutdown: lifetime 0 with the same nonce; done when both are confirmed.
    m.shutdown(at(2000.0), Duration::from_secs(3));
    assert_eq!(requests(&drain(&mut m)), [(0, 6, 7000), (0, 17, 7000)]);
    assert!(!m.is_done());
    m.handle_natpmp(gw(), &pcp_answer(0, 1760, 6, 0, 0, NONCE), at(2000.1));
    m.handle_natpmp(gw(), &pcp_answer(0, 1760, 17, 0, 0, NONCE), at(2000.1));
    let ev = events(&drain(&mut m));
    assert!(ev.iter().all(|e| matches!(e, PortMapEvent::Removed { via: Via::Pcp, error: None, .. })), "{ev:?}");
    assert!(m.is_done());
}

#[test]
fn pcp_resends_then_fails_and_refusals_fail_one_mapping() {
    let mut m = mapper(true);
    m.start(at(0.0));
    drain(&mut m);
    // RFC 6887 §8.1.1: 3 s, doubled: resends at 3, 9 and 21 s, failure at 45 s.
    let mut t = 0.0;
    for (wait, resent) in [(3.0, true), (6.0, true), (12.0, true), (24.0, false)] {
        t += wait;
        assert_eq!(m.poll_timeout(), Some(at(t)));
        m.handle_timeout(at(t));
        let out = drain(&mut m);
        assert_eq!(requests(&out).len(), if resent { 2 } else { 0 }, "at {t}");
        if !resent {
            assert!(events(&out).iter().all(|e| matches!(e, PortMapEvent::Failed { via: Via::Pcp, .. })));
        }
    }
    // The retry after the backoff; the gateway refuses TCP (not authorized) and maps UDP.
    m.handle_timeout(at(t + 30.0));
    assert_eq!(requests(&drain(&mut m)).len(), 2);
    m.handle_natpmp(gw(), &pcp_answer(2, 50, 6, 0, 0, NONCE), at(t + 30.1));
    m.handle_natpmp(gw(), &pcp_answer(0, 50, 17, 6881, 7200, NONCE), at(t + 30.1));
    let ev = events(&drain(&mut m));
    assert!(
        matches!(&ev[0], PortMapEvent::Failed { via: Via::Pcp, protocol: Protocol::Tcp, error, .. } if error == "not authorized"),
        "{ev:?}"
    );
    assert_eq!(m.external(Protocol::Udp, PORT), Some((Some(EXTERNAL), 6881)));
    assert_eq!(m.external(Protocol::Tcp, PORT), None);
}

#[test]
fn a_natpmp_only_gateway_sends_pcp_back_to_natpmp() {
    let mut m = mapper(true);
    m.start(at(0.0));
    assert_eq!(requests(&drain(&mut m)).len(), 2);
    // RFC 6886 §3.5, as miniupnpd without PCP answers a version-2 request.
    m.handle_natpmp(gw(), &[0, 129, 0, 1, 0, 0, 0, 5], at(0.1));
    let out = drain(&mut m);
    assert_eq!(events(&out), [PortMapEvent::Unsupported { via: Via::Pcp, fallback: Some(Via::NatPmp) }]);
    assert_eq!(natpmp_sent(&out).len(), 3, "NAT-PMP's address request and two mappings");
    assert!(natpmp_sent(&out).iter().all(|d| d[0] == 0));
    m.handle_natpmp(gw(), &map_answer(130, 6, PORT, 6881, 7200), at(0.2));
    let ev = events(&drain(&mut m));
    assert!(matches!(ev[..], [PortMapEvent::Mapped { via: Via::NatPmp, external_port: 6881, .. }]), "{ev:?}");
    assert!(m.status().iter().all(|s| s.via == Via::NatPmp), "{:?}", m.status());
    // Without NAT-PMP switched on there is nothing to fall back to: said once, nothing sent.
    let mut m = mapper(false);
    m.start(at(0.0));
    drain(&mut m);
    m.handle_natpmp(gw(), &[2, 0x81, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9], at(0.1));
    let out = drain(&mut m);
    assert_eq!(events(&out), [PortMapEvent::Unsupported { via: Via::Pcp, fallback: None }]);
    assert!(natpmp_sent(&out).is_empty());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_gateway_reboot_seen_in_the_epoch_remaps() {
    let mut m = mapper(false);
    m.start(at(0.0));
    drain(&mut m);
    m.handle_natpmp(gw(), &pcp_answer(0, 1000, 6, 7000, 7200, NONCE), at(1.0));
    m.handle_natpmp(gw(), &pcp_answer(0, 1000, 17, 7000, 3600, NONCE), at(1.0));
    drain(&mut m);
    // The UDP renewal comes back with an epoch that went backwards: TCP is made again too.
    m.handle_timeout(at(1801.0));
    assert_eq!(requests(&drain(&mut m)), [(7200, 17, 7000)]);
    m.handle_natpmp(gw(), &pcp_answer(0, 3, 17, 7001, 7200, NONCE), at(1801.5));
    assert_eq!(requests(&drain(&mut m)), [(7200, 6, 7000)]);
    assert_eq!(m.external(Protocol::Udp, PORT), Some((Some(EXTERNAL), 7001)));
}
