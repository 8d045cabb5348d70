use super::*;

/// miniupnpd's rootDesc.xml layout (IGD:1), trimmed of icons and presentation.
const MINIUPNPD_DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>Debian router</friendlyName>
<manufacturer>Debian</manufacturer><UDN>uuid:e7e3a8a2-e4d2-4b2e-9c8c-000000000000</UDN>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL>
<eventSubURL>/evt/L3F</eventSubURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL>
<eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL></service></serviceList></device></deviceList></device></deviceList>
<presentationURL>http://10.77.0.1/</presentationURL></device></root>"#;

#[test]
fn finds_the_wan_ip_connection_of_miniupnpd() {
    let s = parse_description("http://10.77.0.1:5000/rootDesc.xml", MINIUPNPD_DESC.as_bytes()).unwrap();
    assert_eq!(s.service_type, "urn:schemas-upnp-org:service:WANIPConnection:1");
    assert_eq!(s.control_url, "http://10.77.0.1:5000/ctl/IPConn");
}

#[test]
fn prefers_ip_over_ppp_and_honours_urlbase() {
    let desc = r#"<root><URLBase>http://192.168.1.1:49000/</URLBase><device><serviceList>
        <service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>upnp/ppp</controlURL></service>
        <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>upnp/ip</controlURL></service>
        </serviceList></device></root>"#;
    let s = parse_description("http://192.168.1.1:5000/desc.xml", desc.as_bytes()).unwrap();
    assert_eq!(s.service_type, "urn:schemas-upnp-org:service:WANIPConnection:2");
    assert_eq!(s.control_url, "http://192.168.1.1:49000/upnp/ip");
    let ppp_only = r#"<root><device><serviceList>
        <service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>/ppp</controlURL></service>
        </serviceList></device></root>"#;
    assert_eq!(
        parse_description("http://10.0.0.1/d.xml", ppp_only.as_bytes()).unwrap().control_url,
        "http://10.0.0.1:80/ppp"
    );
}

#[test]
fn hostile_descriptions_are_errors() {
    let loc = "http://10.0.0.1/d.xml";
    assert_eq!(parse_description(loc, b"<root><device/></root>"), Err(IgdError::NoService));
    assert!(matches!(parse_description(loc, b"\xff\xfe garbage <<<"), Err(IgdError::Xml(_))));
    assert!(matches!(parse_description(loc, b""), Err(IgdError::Xml(_))));
    let huge = vec![b' '; MAX_DESCRIPTION + 1];
    assert_eq!(parse_description(loc, &huge), Err(IgdError::TooLarge(MAX_DESCRIPTION + 1)));
    // Many nodes within the size limit stop at the parser's node limit.
    let wide = format!("<root>{}</root>", "<a/>".repeat(10_000));
    assert!(matches!(parse_description(loc, wide.as_bytes()), Err(IgdError::Xml(_))));
    let deep = format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000));
    assert!(matches!(parse_description(loc, deep.as_bytes()), Err(IgdError::Xml(_))));
    let dtd = r#"<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><root>&a;</root>"#;
    assert!(matches!(parse_description(loc, dtd.as_bytes()), Err(IgdError::Xml(_))), "no entities");
    let named = r#"<root><device><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
        <controlURL>http://router.lan/ctl</controlURL></service></serviceList></device></root>"#;
    assert!(matches!(parse_description(loc, named.as_bytes()), Err(IgdError::ControlUrl(_))));
}

const V1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";

#[test]
fn soap_requests() {
    let add = Action::AddPortMapping {
        protocol: Protocol::Tcp,
        external_port: 6881,
        internal_port: 6881,
        client: Ipv4Addr::new(10, 77, 0, 2),
        lease_secs: 3600,
        description: "Shoal <6881>".into(),
    };
    assert_eq!(add.soap_action(V1), "\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\"");
    let body = add.body(V1);
    assert!(body.contains("<u:AddPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">"), "{body}");
    assert!(body.contains("<NewExternalPort>6881</NewExternalPort><NewProtocol>TCP</NewProtocol>"), "{body}");
    assert!(body.contains("<NewInternalClient>10.77.0.2</NewInternalClient>"), "{body}");
    assert!(body.contains("<NewPortMappingDescription>Shoal &lt;6881&gt;</NewPortMappingDescription>"), "{body}");
    assert!(body.contains("<NewLeaseDuration>3600</NewLeaseDuration>"), "{body}");
    // The body is XML a parser reads back.
    assert!(roxmltree::Document::parse(&body).is_ok());
    let del = Action::DeletePortMapping { protocol: Protocol::Udp, external_port: 6881 }.body(V1);
    assert!(del.contains("<u:DeletePortMapping") && del.contains("<NewProtocol>UDP</NewProtocol>"), "{del}");
    assert!(Action::GetExternalIpAddress.body(V1).contains("<u:GetExternalIPAddress xmlns:u="));
}

#[test]
fn answers_and_faults() {
    let ip = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:GetExternalIPAddressResponse \
         xmlns:u=\"{V1}\"><NewExternalIPAddress>203.0.113.7</NewExternalIPAddress></u:GetExternalIPAddressResponse>\
         </s:Body></s:Envelope>\r\n"
    );
    assert_eq!(
        parse_answer(&Action::GetExternalIpAddress, 200, ip.as_bytes()),
        Ok(Answer::ExternalIp(Ipv4Addr::new(203, 0, 113, 7)))
    );
    let add = Action::DeletePortMapping { protocol: Protocol::Tcp, external_port: 1 };
    let ok = format!(
        "<s:Envelope xmlns:s=\"x\"><s:Body><u:DeletePortMappingResponse xmlns:u=\"{V1}\"/></s:Body></s:Envelope>"
    );
    assert_eq!(parse_answer(&add, 200, ok.as_bytes()), Ok(Answer::Done));
    // miniupnpd's SoapError layout.
    let fault = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
        s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode>\
        <faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\">\
        <errorCode>725</errorCode><errorDescription>OnlyPermanentLeasesSupported</errorDescription></UPnPError>\
        </detail></s:Fault></s:Body></s:Envelope>\r\n";
    assert_eq!(
        parse_answer(&add, 500, fault.as_bytes()),
        Err(IgdError::Upnp { code: ONLY_PERMANENT_LEASES, description: "OnlyPermanentLeasesSupported".into() })
    );
    assert_eq!(parse_answer(&add, 404, b"<html>not found"), Err(IgdError::Status(404)));
    assert!(matches!(parse_answer(&add, 200, b"garbage"), Err(IgdError::Xml(_))));
    assert_eq!(parse_answer(&add, 200, b"<a/>"), Err(IgdError::Missing("the action's Response element")));
    let empty = b"<r><NewExternalIPAddress></NewExternalIPAddress></r>";
    assert_eq!(parse_answer(&Action::GetExternalIpAddress, 200, empty), Err(IgdError::Missing("NewExternalIPAddress")));
    let huge = vec![b'a'; MAX_ANSWER + 1];
    assert_eq!(parse_answer(&add, 200, &huge), Err(IgdError::TooLarge(MAX_ANSWER + 1)));
}

/// Captured from Debian bookworm's miniupnpd 2.3.1 (IGD:2) in a test namespace.
const REAL_DESC: &[u8] = include_bytes!("fixtures/miniupnpd-rootDesc.xml");
const REAL_DELETE_OK: &[u8] = include_bytes!("fixtures/miniupnpd-delete-ok.xml");

#[test]
fn real_miniupnpd_documents() {
    let s = parse_description("http://10.77.0.1:5000/rootDesc.xml", REAL_DESC).unwrap();
    assert_eq!(s.service_type, "urn:schemas-upnp-org:service:WANIPConnection:2");
    assert_eq!(s.control_url, "http://10.77.0.1:5000/ctl/IPConn");
    let del = Action::DeletePortMapping { protocol: Protocol::Tcp, external_port: 6881 };
    assert_eq!(parse_answer(&del, 200, REAL_DELETE_OK), Ok(Answer::Done));
}
