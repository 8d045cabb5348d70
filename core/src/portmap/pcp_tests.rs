use super::*;

const NONCE: Nonce = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

/// A MAP answer as RFC 6887 §7.2 and §11.1 lay it out.
fn answer(code: u8, lifetime: u32, epoch: u32, proto: u8, internal: u16, external: u16, ip: Ipv4Addr) -> Vec<u8> {
    let mut d = vec![2, 0x81, 0, code];
    d.extend_from_slice(&lifetime.to_be_bytes());
    d.extend_from_slice(&epoch.to_be_bytes());
    d.extend_from_slice(&[0; 12]);
    d.extend_from_slice(&NONCE);
    d.extend_from_slice(&[proto, 0, 0, 0]);
    d.extend_from_slice(&internal.to_be_bytes());
    d.extend_from_slice(&external.to_be_bytes());
    d.extend_from_slice(&ip.to_ipv6_mapped().octets());
    d
}

#[test]
fn a_map_request_is_the_rfc_bytes() {
    let req = MapRequest {
        nonce: NONCE,
        protocol: Protocol::Tcp,
        internal_port: 6881,
        suggested_port: 6881,
        lifetime: 7200,
        client: Ipv4Addr::new(10, 77, 0, 2),
    };
    let d = req.encode();
    assert_eq!(d.len(), 60);
    assert_eq!(d[..8], [2, 1, 0, 0, 0, 0, 0x1c, 0x20], "version 2, MAP, lifetime 7200");
    assert_eq!(d[8..24], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 2], "client IPv4-mapped");
    assert_eq!(d[24..36], NONCE);
    assert_eq!(d[36..44], [6, 0, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1], "TCP, 6881 -> 6881");
    assert_eq!(d[44..60], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0], "any IPv4 external address");
    let delete = MapRequest { protocol: Protocol::Udp, lifetime: 0, ..req }.encode();
    assert_eq!((delete[4..8].to_vec(), delete[36]), (vec![0, 0, 0, 0], 17), "a deletion: lifetime 0, UDP");
}

#[test]
fn map_answers_are_read() {
    let ip = Ipv4Addr::new(11, 77, 0, 1);
    assert_eq!(
        parse(&answer(0, 3600, 42, 6, 6881, 6882, ip)),
        Ok(Answer::Map(MapAnswer {
            epoch: 42,
            code: ResultCode::Success,
            lifetime: Duration::from_secs(3600),
            nonce: NONCE,
            protocol: Some(Protocol::Tcp),
            internal_port: 6881,
            external_port: 6882,
            external_ip: Some(ip),
        }))
    );
    let Ok(Answer::Map(refused)) = parse(&answer(2, 30, 43, 17, 6881, 0, Ipv4Addr::UNSPECIFIED)) else {
        panic!("a refusal is a MAP answer");
    };
    assert_eq!((refused.code, refused.protocol), (ResultCode::NotAuthorized, Some(Protocol::Udp)));
    // Options after the MAP fields are skipped; an IPv6 external address is no IPv4 one.
    let mut with_option = answer(0, 3600, 44, 6, 6881, 6881, ip);
    with_option.extend_from_slice(&[1, 0, 0, 16]);
    with_option.extend_from_slice(&[0x20; 16]);
    assert!(matches!(parse(&with_option), Ok(Answer::Map(MapAnswer { epoch: 44, .. }))));
    let mut v6 = answer(0, 3600, 45, 6, 6881, 6881, ip);
    v6[44..60].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(matches!(parse(&v6), Ok(Answer::Map(MapAnswer { external_ip: None, .. }))));
}

#[test]
fn an_older_gateway_says_unsupported_version() {
    // miniupnpd's NAT-PMP-only answer to our version 2 MAP: version 0, opcode 129, result 1.
    assert_eq!(parse(&[0, 129, 0, 1, 0, 0, 0, 9]), Ok(Answer::UnsupportedVersion));
    assert_eq!(parse(&[0, 0, 0, 1, 0, 0, 0, 9]), Ok(Answer::UnsupportedVersion), "the RFC's figure");
    assert_eq!(parse(&[1, 0x81, 0, 1, 0, 0, 0, 0]), Ok(Answer::UnsupportedVersion), "a PCP version 1 server");
    assert_eq!(parse(&[0, 130, 0, 0, 0, 0, 0, 9, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0, 1]), Err(ParseError::Version(0)));
}

#[test]
fn truncated_errors_and_garbage() {
    let mut short = answer(8, 30, 7, 6, 6881, 0, Ipv4Addr::UNSPECIFIED);
    short.truncate(24);
    assert_eq!(parse(&short), Ok(Answer::Error { epoch: 7, code: ResultCode::NoResources }));
    short[3] = 0;
    assert_eq!(parse(&short), Err(ParseError::Length(24)), "a success must say which mapping");
    let request = MapRequest {
        nonce: NONCE,
        protocol: Protocol::Tcp,
        internal_port: 1,
        suggested_port: 1,
        lifetime: 1,
        client: Ipv4Addr::LOCALHOST,
    };
    assert_eq!(parse(&request.encode()), Err(ParseError::Opcode(1)), "a request echoed");
    let mut announce = answer(0, 0, 1, 6, 1, 1, Ipv4Addr::UNSPECIFIED);
    announce[1] = 0x80;
    assert_eq!(parse(&announce), Err(ParseError::Opcode(0x80)), "ANNOUNCE is not read");
    assert_eq!(parse(&[]), Err(ParseError::Length(0)));
    assert_eq!(parse(&[2, 0x81, 0, 0, 0]), Err(ParseError::Length(5)));
    assert_eq!(parse(&vec![2; MAX_MESSAGE + 4]), Err(ParseError::Length(MAX_MESSAGE + 4)));
    assert_eq!(parse(&[3, 0x81, 0, 0]), Err(ParseError::Version(3)));
    for n in 0..=64 {
        for fill in [0u8, 1, 2, 0x81, 0xff] {
            let mut d = vec![fill; n];
            if n > 1 {
                d[0] = 2;
                d[1] = 0x81;
            }
            let _ = parse(&d);
        }
    }
}
