//! The mapper driven through whole exchanges with a virtual clock.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::*;
use crate::types::Instant;

pub(super) const GW: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub(super) const PORT: u16 = 6881;
pub(super) const WANTED: [(Protocol, u16); 2] = [(Protocol::Tcp, PORT), (Protocol::Udp, PORT)];

pub(super) fn at(secs: f64) -> Instant {
    Instant::from_micros((secs * 1e6) as u64)
}

pub(super) fn drain(m: &mut PortMapper) -> Vec<PortMapOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

pub(super) fn events(out: &[PortMapOutput]) -> Vec<PortMapEvent> {
    out.iter().filter_map(|o| if let PortMapOutput::Event(e) = o { Some(e.clone()) } else { None }).collect()
}

pub(super) fn natpmp_sent(out: &[PortMapOutput]) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| if let PortMapOutput::NatPmp { data, .. } = o { Some(data.clone()) } else { None })
        .collect()
}

fn mapper(upnp: bool, natpmp: bool) -> PortMapper {
    let config = PortMapConfig { upnp, natpmp, gateway: Some(GW), ..PortMapConfig::default() };
    PortMapper::new(config, &WANTED)
}

pub(super) fn gw() -> SocketAddr {
    SocketAddr::from((GW, natpmp::PORT))
}

pub(super) fn map_answer(op: u8, epoch: u32, port: u16, external: u16, life: u32) -> Vec<u8> {
    let mut d = vec![0, op, 0, 0];
    d.extend_from_slice(&epoch.to_be_bytes());
    d.extend_from_slice(&port.to_be_bytes());
    d.extend_from_slice(&external.to_be_bytes());
    d.extend_from_slice(&life.to_be_bytes());
    d
}

#[test]
fn natpmp_maps_renews_halfway_and_removes_at_shutdown() {
    let mut m = mapper(false, true);
    m.start(at(0.0));
    let out = drain(&mut m);
    assert_eq!(
        natpmp_sent(&out),
        vec![
            vec![0, 0],
            vec![0, 2, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x1c, 0x20],
            vec![0, 1, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x1c, 0x20]
        ]
    );
    assert!(out.iter().all(|o| !matches!(o, PortMapOutput::NatPmp { to, .. } if *to != SocketAddrV4::new(GW, 5351))));
    // An answer from anyone but the gateway's port 5351 is ignored.
    m.handle_natpmp("10.77.0.9:5351".parse().unwrap(), &map_answer(130, 1, PORT, 7000, 7200), at(0.1));
    assert!(drain(&mut m).is_empty());
    m.handle_natpmp(gw(), &[0, 128, 0, 0, 0, 0, 0, 1, 203, 0, 113, 7], at(0.1));
    m.handle_natpmp(gw(), &map_answer(130, 1, PORT, 7000, 7200), at(0.1));
    m.handle_natpmp(gw(), &map_answer(129, 1, PORT, 7000, 7200), at(0.1));
    let ev = events(&drain(&mut m));
    assert_eq!(ev[0], PortMapEvent::ExternalIp { via: Via::NatPmp, ip: Ipv4Addr::new(203, 0, 113, 7), usable: true });
    assert_eq!(
        ev[1],
        PortMapEvent::Mapped {
            via: Via::NatPmp,
            protocol: Protocol::Tcp,
            internal_port: PORT,
            external_port: 7000,
            renewal: false
        }
    );
    assert_eq!(m.external(Protocol::Tcp, PORT), Some((Some(Ipv4Addr::new(203, 0, 113, 7)), 7000)));
    assert!(m.all_mapped());
    // A duplicate answer changes nothing.
    m.handle_natpmp(gw(), &map_answer(130, 1, PORT, 7000, 7200), at(0.2));
    assert!(drain(&mut m).is_empty());
    // Renewal halfway through the 7200 s lease, asking for the port we have.
    assert_eq!(m.poll_timeout(), Some(at(3600.1)));
    m.handle_timeout(at(3600.1));
    let sent = natpmp_sent(&drain(&mut m));
    assert_eq!(sent.len(), 2);
    assert_eq!(&sent[0][4..8], &[0x1a, 0xe1, 0x1b, 0x58], "internal 6881, external 7000");
    m.handle_natpmp(gw(), &map_answer(130, 3150, PORT, 7000, 7200), at(3600.2));
    let ev = events(&drain(&mut m));
    assert!(matches!(ev[0], PortMapEvent::Mapped { renewal: true, external_port: 7000, .. }), "{ev:?}");
    // Shutdown: deletions (external port 0, lifetime 0), then done when both are answered.
    m.shutdown(at(4000.0), Duration::from_secs(5));
    let sent = natpmp_sent(&drain(&mut m));
    assert_eq!(
        sent,
        vec![vec![0, 2, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0], vec![0, 1, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]]
    );
    assert!(!m.is_done());
    m.handle_natpmp(gw(), &map_answer(130, 3500, PORT, 0, 0), at(4000.1));
    m.handle_natpmp(gw(), &map_answer(129, 3500, PORT, 0, 0), at(4000.1));
    let ev = events(&drain(&mut m));
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| matches!(e, PortMapEvent::Removed { via: Via::NatPmp, error: None, .. })), "{ev:?}");
    assert!(m.is_done());
    assert!(m.status().iter().all(|s| s.state == MappingState::Removed));
}

#[test]
fn natpmp_resends_on_the_rfc_schedule_then_backs_off() {
    let mut m = PortMapper::new(
        PortMapConfig { upnp: false, gateway: Some(GW), ..PortMapConfig::default() },
        &[(Protocol::Tcp, PORT)],
    );
    m.start(at(0.0));
    assert_eq!(natpmp_sent(&drain(&mut m)).len(), 2);
    let mut sends = vec![];
    let mut failed_at = None;
    while let Some(t) = m.poll_timeout() {
        m.handle_timeout(t);
        let out = drain(&mut m);
        if events(&out).iter().any(|e| matches!(e, PortMapEvent::Failed { .. })) {
            failed_at = Some(t);
            break;
        }
        sends.push((t.as_micros() / 1000, natpmp_sent(&out).len()));
    }
    // 250 ms doubled: resends at 0.25, 0.75, 1.75, ... s; nine sends in all, then failure at 127.75 s.
    let times: Vec<u64> = sends.iter().map(|s| s.0).collect();
    assert_eq!(times, [250, 750, 1750, 3750, 7750, 15750, 31750, 63750]);
    assert_eq!(failed_at, Some(at(127.75)));
    assert_eq!(m.status()[0].state, MappingState::Failed { error: "no answer from the gateway".into() });
    // Retried after 30 s.
    assert_eq!(m.poll_timeout(), Some(at(157.75)));
    m.handle_timeout(at(157.75));
    assert_eq!(natpmp_sent(&drain(&mut m)).len(), 2, "the address and the mapping again");
}

#[test]
fn natpmp_lies_garbage_and_refusals() {
    let mut m = mapper(false, true);
    m.start(at(0.0));
    drain(&mut m);
    for garbage in [&[][..], &[0xff; 3000][..], &[0, 130, 0, 0][..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]] {
        m.handle_natpmp(gw(), garbage, at(0.1));
    }
    assert!(drain(&mut m).is_empty(), "garbage is dropped");
    // A gateway that claims a private external address is reported, not believed.
    m.handle_natpmp(gw(), &[0, 128, 0, 0, 0, 0, 0, 1, 192, 168, 1, 1], at(0.1));
    m.handle_natpmp(gw(), &map_answer(130, 1, PORT, PORT, 7200), at(0.1));
    let mut refused = map_answer(129, 1, PORT, 0, 0);
    refused[3] = 2;
    m.handle_natpmp(gw(), &refused, at(0.1));
    let ev = events(&drain(&mut m));
    assert_eq!(ev[0], PortMapEvent::ExternalIp { via: Via::NatPmp, ip: Ipv4Addr::new(192, 168, 1, 1), usable: false });
    assert_eq!(m.external(Protocol::Tcp, PORT), Some((None, PORT)), "the port is used, the lie is not");
    assert_eq!(
        ev[2],
        PortMapEvent::Failed {
            via: Via::NatPmp,
            protocol: Protocol::Udp,
            internal_port: PORT,
            error: "not authorized or refused".into()
        }
    );
    for ip in
        ["0.0.0.0", "127.0.0.1", "10.1.2.3", "172.16.0.1", "169.254.1.1", "100.64.0.1", "255.255.255.255", "224.0.0.1"]
    {
        assert!(!usable_external_ip(ip.parse().unwrap()), "{ip}");
    }
    assert!(usable_external_ip(Ipv4Addr::new(203, 0, 113, 7)));
    assert!(usable_external_ip(Ipv4Addr::new(100, 128, 0, 1)));
}

#[test]
fn natpmp_gateway_reboot_remaps() {
    let mut m = mapper(false, true);
    m.start(at(0.0));
    drain(&mut m);
    m.handle_natpmp(gw(), &map_answer(130, 1000, PORT, PORT, 7200), at(0.1));
    m.handle_natpmp(gw(), &map_answer(129, 1000, PORT, PORT, 7200), at(0.1));
    drain(&mut m);
    // 100 s later the epoch is 5: the gateway restarted and forgot the mappings.
    m.handle_natpmp(gw(), &[0, 128, 0, 0, 0, 0, 0, 5, 203, 0, 113, 7], at(100.0));
    let sent = natpmp_sent(&drain(&mut m));
    assert_eq!(sent.len(), 2, "both mappings asked again: {sent:?}");
}

fn http(out: &[PortMapOutput]) -> Vec<HttpRequest> {
    out.iter().filter_map(|o| if let PortMapOutput::Http(r) = o { Some(r.clone()) } else { None }).collect()
}

const SSDP: &[u8] = b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
    LOCATION: http://10.77.0.1:5000/rootDesc.xml\r\n\r\n";
const DESC: &[u8] = b"<root><device><serviceList><service>\
    <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>/ctl/IPConn</controlURL>\
    </service></serviceList></device></root>";

fn ok(body: &str) -> Result<HttpAnswer, String> {
    Ok(HttpAnswer { status: 200, body: body.as_bytes().to_vec(), local_ip: Some(Ipv4Addr::new(10, 77, 0, 2)) })
}

fn answer_all(m: &mut PortMapper, reqs: &[HttpRequest], now: Instant, fault: Option<u16>) {
    for r in reqs {
        let (action, _) = r.soap.as_ref().unwrap();
        let name = action.rsplit('#').next().unwrap().trim_end_matches('"');
        let answer = match (name, fault) {
            ("GetExternalIPAddress", _) => ok("<r><NewExternalIPAddress>203.0.113.7</NewExternalIPAddress></r>"),
            (_, Some(code)) => Ok(HttpAnswer {
                status: 500,
                body: format!("<e><errorCode>{code}</errorCode><errorDescription>x</errorDescription></e>")
                    .into_bytes(),
                local_ip: None,
            }),
            (name, None) => ok(&format!("<r><u:{name}Response xmlns:u=\"x\"/></r>")),
        };
        m.handle_http(r.id, answer, now);
    }
}

/// Discovers the gateway: returns the three SOAP requests (address, TCP, UDP).
fn discover(m: &mut PortMapper) -> Vec<HttpRequest> {
    m.start(at(0.0));
    let out = drain(m);
    let searches: Vec<_> = out.iter().filter(|o| matches!(o, PortMapOutput::Ssdp { .. })).collect();
    assert!(matches!(&searches[..], [PortMapOutput::Ssdp { data }] if data.starts_with(b"M-SEARCH")));
    m.handle_ssdp(SSDP, at(0.5));
    m.handle_ssdp(SSDP, at(0.5));
    let get = http(&drain(m));
    assert_eq!(get.len(), 1, "the same device once");
    assert_eq!((get[0].url.as_str(), get[0].soap.is_none()), ("http://10.77.0.1:5000/rootDesc.xml", true));
    m.handle_http(
        get[0].id,
        Ok(HttpAnswer { status: 200, body: DESC.to_vec(), local_ip: Some(Ipv4Addr::new(10, 77, 0, 2)) }),
        at(0.6),
    );
    let soap = http(&drain(m));
    let upnp = m.status().iter().filter(|s| s.via == Via::Upnp).count();
    assert_eq!(soap.len(), 1 + upnp, "the external address and every mapping");
    assert!(soap.iter().all(|r| r.url == "http://10.77.0.1:5000/ctl/IPConn"));
    soap
}

#[test]
fn upnp_discovers_maps_renews_and_deletes() {
    let mut m = mapper(true, false);
    let soap = discover(&mut m);
    let body = &soap[1].soap.as_ref().unwrap().1;
    assert!(
        body.contains("<NewInternalClient>10.77.0.2</NewInternalClient>") && body.contains("<NewLeaseDuration>7200<")
    );
    answer_all(&mut m, &soap, at(0.7), None);
    let ev = events(&drain(&mut m));
    assert_eq!(ev[0], PortMapEvent::ExternalIp { via: Via::Upnp, ip: Ipv4Addr::new(203, 0, 113, 7), usable: true });
    assert_eq!(ev.len(), 3);
    assert_eq!(m.external(Protocol::Udp, PORT), Some((Some(Ipv4Addr::new(203, 0, 113, 7)), PORT)));
    // Renewed halfway.
    assert_eq!(m.poll_timeout(), Some(at(3600.7)));
    m.handle_timeout(at(3600.7));
    let renew = http(&drain(&mut m));
    assert_eq!(renew.len(), 2);
    answer_all(&mut m, &renew, at(3601.0), None);
    assert!(events(&drain(&mut m)).iter().all(|e| matches!(e, PortMapEvent::Mapped { renewal: true, .. })));
    // An answer for an id we never gave is ignored.
    m.handle_http(999, ok("<x/>"), at(3601.0));
    assert!(drain(&mut m).is_empty());
    m.shutdown(at(4000.0), Duration::from_secs(5));
    let del = http(&drain(&mut m));
    assert_eq!(del.len(), 2);
    assert!(del.iter().all(|r| r.soap.as_ref().unwrap().0.ends_with("#DeletePortMapping\"")));
    answer_all(&mut m, &del, at(4000.1), None);
    let ev = events(&drain(&mut m));
    assert!(ev.iter().all(|e| matches!(e, PortMapEvent::Removed { via: Via::Upnp, error: None, .. })), "{ev:?}");
    assert!(m.is_done());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn upnp_falls_back_to_permanent_leases_on_725() {
    let mut m = mapper(true, false);
    let soap = discover(&mut m);
    answer_all(&mut m, &soap, at(0.7), Some(igd::ONLY_PERMANENT_LEASES));
    let again = http(&drain(&mut m));
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|r| r.soap.as_ref().unwrap().1.contains("<NewLeaseDuration>0</NewLeaseDuration>")));
    answer_all(&mut m, &again, at(0.8), None);
    drain(&mut m);
    assert!(matches!(m.status()[0].state, MappingState::Mapped { expires: None, .. }));
    assert_eq!(m.poll_timeout(), None, "a permanent mapping needs no renewal");
}

/// The `NewExternalPort` a SOAP AddPortMapping asks for.
fn asked_port(r: &HttpRequest) -> u16 {
    let body = &r.soap.as_ref().unwrap().1;
    let from = body.find("<NewExternalPort>").unwrap() + "<NewExternalPort>".len();
    body[from..from + body[from..].find('<').unwrap()].parse().unwrap()
}

#[test]
fn upnp_tries_other_ports_on_conflict_718_a_few_times() {
    let mut m = PortMapper::new(PortMapConfig { natpmp: false, ..PortMapConfig::default() }, &[(Protocol::Tcp, PORT)]);
    let mut soap = discover(&mut m);
    answer_all(&mut m, &soap[..1], at(0.7), None); // the external address
    soap.remove(0);
    // Taken, taken, then free: 6881, 6882, 6883 asked in turn; mapped to 6883.
    for (t, port) in [(0.8, PORT), (0.9, PORT + 1)] {
        assert_eq!(asked_port(&soap[0]), port);
        answer_all(&mut m, &soap, at(t), Some(igd::CONFLICT_IN_MAPPING_ENTRY));
        soap = http(&drain(&mut m));
        assert_eq!(soap.len(), 1, "asked again at once");
    }
    assert_eq!(asked_port(&soap[0]), PORT + 2);
    answer_all(&mut m, &soap, at(1.0), None);
    let ev = events(&drain(&mut m));
    assert!(matches!(ev[..], [PortMapEvent::Mapped { external_port: 6883, .. }]), "{ev:?}");
    assert_eq!(m.external(Protocol::Tcp, PORT), Some((Some(Ipv4Addr::new(203, 0, 113, 7)), PORT + 2)));
    // A router that is full: four more ports, then a failure (and a retry after the backoff).
    let mut m = PortMapper::new(PortMapConfig { natpmp: false, ..PortMapConfig::default() }, &[(Protocol::Tcp, 65534)]);
    let mut soap = discover(&mut m);
    answer_all(&mut m, &soap[..1], at(0.7), None);
    soap.remove(0);
    let mut asked = vec![];
    while let Some(r) = soap.first() {
        asked.push(asked_port(r));
        answer_all(&mut m, &soap, at(1.0), Some(igd::CONFLICT_IN_MAPPING_ENTRY));
        soap = http(&drain(&mut m));
        assert!(asked.len() <= 5, "bounded: {asked:?}");
    }
    assert_eq!(asked, [65534, 65535, 1024, 1025, 1026], "wrapping past 65535 above the system's ports");
    assert!(matches!(&m.status()[0].state, MappingState::Failed { error } if error.contains("718")));
    assert_eq!(m.poll_timeout(), Some(at(31.0)));
}

#[test]
fn upnp_failures_back_off_and_garbage_is_ignored() {
    let mut m = mapper(true, false);
    m.start(at(0.0));
    drain(&mut m);
    m.handle_ssdp(b"\xff\x00garbage", at(0.1));
    m.handle_ssdp(&[b'x'; 100_000], at(0.1));
    assert!(drain(&mut m).is_empty());
    // Three searches 3 s apart, then every mapping fails and the search waits 30 s.
    for t in [3.0, 6.0] {
        assert_eq!(m.poll_timeout(), Some(at(t)));
        m.handle_timeout(at(t));
        assert!(matches!(&drain(&mut m)[..], [PortMapOutput::Ssdp { .. }]));
    }
    m.handle_timeout(at(9.0));
    let ev = events(&drain(&mut m));
    assert_eq!(ev.len(), 2);
    assert!(
        matches!(&ev[0], PortMapEvent::Failed { via: Via::Upnp, error, .. } if error == "no UPnP gateway answered")
    );
    assert_eq!(m.poll_timeout(), Some(at(39.0)));
    // A device whose description is garbage, then a mapping error that is not 725.
    m.handle_timeout(at(39.0));
    drain(&mut m);
    m.handle_ssdp(SSDP, at(39.1));
    let get = http(&drain(&mut m));
    m.handle_http(get[0].id, ok("<<<not xml"), at(39.2));
    let ev = events(&drain(&mut m));
    assert!(matches!(&ev[0], PortMapEvent::Failed { error, .. } if error.contains("malformed XML")), "{ev:?}");
    assert_eq!(m.poll_timeout(), Some(at(39.2 + 60.0)), "the second failure waits twice as long");
    // A transport failure while mapping is a failure with a retry.
    let mut m = mapper(true, false);
    let soap = discover(&mut m);
    for r in &soap {
        m.handle_http(r.id, Err("connection refused".into()), at(1.0));
    }
    let ev = events(&drain(&mut m));
    assert!(matches!(&ev[0], PortMapEvent::ExternalIpFailed { via: Via::Upnp, .. }));
    assert!(matches!(&ev[1], PortMapEvent::Failed { error, .. } if error == "connection refused"));
    assert_eq!(m.poll_timeout(), Some(at(31.0)));
    m.handle_timeout(at(31.0));
    assert_eq!(http(&drain(&mut m)).len(), 2, "both mappings asked again");
}

#[test]
fn shutdown_gives_up_on_a_silent_gateway() {
    let mut m = mapper(true, true);
    let soap = discover(&mut m);
    answer_all(&mut m, &soap, at(0.7), None);
    drain(&mut m);
    m.shutdown(at(10.0), Duration::from_secs(2));
    let out = drain(&mut m);
    assert_eq!(http(&out).len(), 2, "UPnP deletions");
    assert_eq!(natpmp_sent(&out).len(), 2, "NAT-PMP deletions of the requests out");
    assert!(!m.is_done());
    while let Some(t) = m.poll_timeout() {
        m.handle_timeout(t);
        drain(&mut m);
    }
    assert!(m.is_done());
    // Nothing starts again after shutdown.
    m.handle_ssdp(SSDP, at(20.0));
    assert!(drain(&mut m).is_empty());
}
