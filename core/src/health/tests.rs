use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::tracker::udp::{Request, Response};

const IH: InfoHash = InfoHash([0x11; 20]);

fn secs(s: u64) -> Instant {
    Instant::from_micros(s * 1_000_000)
}

/// An HTTP scrape answer for `ih` with the given entry dictionary body (already bencoded).
fn http_answer(ih: &InfoHash, entry: &[u8]) -> Vec<u8> {
    let mut b = b"d5:filesd20:".to_vec();
    b.extend_from_slice(&ih.0);
    b.extend_from_slice(entry);
    b.extend_from_slice(b"ee");
    b
}

#[test]
fn http_answers_are_read() {
    let body = http_answer(&IH, b"d8:completei5e10:downloadedi9e10:incompletei7ee");
    assert_eq!(parse_http_scrape(&body, &IH), Ok(Figures { seeders: 5, leechers: 7 }));
    // The largest believable count passes.
    let body = http_answer(&IH, format!("d8:completei{MAX_FIGURE}e10:incompletei0ee").as_bytes());
    assert_eq!(parse_http_scrape(&body, &IH).unwrap().seeders, MAX_FIGURE);
}

#[test]
fn http_lies_are_rejected() {
    let lies: [&[u8]; 7] = [
        b"d8:completei2147483648e10:incompletei1ee",              // 2^31 seeders
        b"d8:completei1e10:incompletei4294967296ee",              // 2^32 leechers
        b"d8:completei-1e10:incompletei1ee",                      // negative
        b"d8:completei99999999999999999999999e10:incompletei1ee", // beyond 64 bits
        b"d8:complete3:abc10:incompletei1ee",                     // not an integer
        b"d8:completei1ee",                                       // no leechers at all
        b"i5e",                                                   // not a dictionary
    ];
    for lie in lies {
        let body = http_answer(&IH, lie);
        let r = parse_http_scrape(&body, &IH);
        assert!(r.is_err(), "{} was believed: {r:?}", String::from_utf8_lossy(lie));
    }
    assert!(matches!(
        parse_http_scrape(&http_answer(&IH, b"d8:completei2147483648e10:incompletei1ee"), &IH),
        Err(HealthError::Implausible { field: "seeders", value: 2147483648 })
    ));
}

#[test]
fn http_garbage_and_other_torrents_are_rejected() {
    let other = InfoHash([0x22; 20]);
    // A multi-scrape answer about another torrent only.
    let body = http_answer(&other, b"d8:completei5e10:incompletei7ee");
    assert!(matches!(parse_http_scrape(&body, &IH), Err(HealthError::Tracker(TrackerError::Malformed(_)))));
    // Several torrents, ours among them: ours is taken, the others ignored.
    let mut both = b"d5:filesd20:".to_vec();
    both.extend_from_slice(&IH.0);
    both.extend_from_slice(b"d8:completei1e10:incompletei2ee20:");
    both.extend_from_slice(&other.0);
    both.extend_from_slice(b"d8:completei900e10:incompletei900eeee");
    assert_eq!(parse_http_scrape(&both, &IH), Ok(Figures { seeders: 1, leechers: 2 }));
    for garbage in [&b""[..], b"<html>502</html>", b"d5:files", b"d5:filesi3ee", b"d14:failure reason4:nopee"] {
        assert!(parse_http_scrape(garbage, &IH).is_err(), "{garbage:?}");
    }
    // Deeply nested bencode is refused before decoding.
    let deep = [b"d5:files".to_vec(), vec![b'l'; 100_000], vec![b'e'; 100_001]].concat();
    assert!(parse_http_scrape(&deep, &IH).is_err());
}

/// Drains a check's requests.
fn drain(c: &mut HealthCheck) -> Vec<HealthRequest> {
    std::iter::from_fn(|| c.poll_request()).collect()
}

/// Answers the UDP slot's connect and returns the scrape request's transaction id.
fn udp_connect(c: &mut HealthCheck, slot: usize, rng: &mut ChaCha8Rng, reqs: &[HealthRequest]) -> u32 {
    let data = reqs
        .iter()
        .find_map(|r| match r {
            HealthRequest::UdpSend { slot: s, data, .. } if *s == slot => Some(data.clone()),
            _ => None,
        })
        .expect("a connect request");
    let Request::Connect { transaction_id } = Request::decode(&data).unwrap() else { panic!("connect first") };
    let answer = Response::Connect { transaction_id, connection_id: 42 }.encode();
    c.handle_udp(slot, secs(1), Ok(&answer), rng);
    let sent = drain(c);
    let [HealthRequest::UdpSend { data, .. }] = sent.as_slice() else { panic!("{sent:?}") };
    let Request::Scrape { transaction_id, info_hashes, .. } = Request::decode(data).unwrap() else { panic!("scrape") };
    assert_eq!(info_hashes, vec![IH]);
    transaction_id
}

fn udp_scrape_answer(tid: u32, stats: Vec<ScrapeStats>) -> Vec<u8> {
    Response::Scrape { transaction_id: tid, stats }.encode()
}

#[test]
fn best_answer_wins_over_http_and_udp() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let trackers = vec!["http://127.0.0.1:1/announce".to_owned(), "udp://127.0.0.1:2".to_owned()];
    let mut c = HealthCheck::new(IH, &trackers, secs(0), Duration::from_secs(20), &mut rng);
    let reqs = drain(&mut c);
    assert!(
        matches!(&reqs[0], HealthRequest::HttpGet { slot: 0, url } if url.starts_with("http://127.0.0.1:1/scrape?info_hash=%11"))
    );
    let tid = udp_connect(&mut c, 1, &mut rng, &reqs);
    c.handle_http(0, Ok(http_answer(&IH, b"d8:completei3e10:incompletei9ee")));
    assert!(!c.is_finished());
    assert_eq!(c.report(), None);
    c.handle_udp(
        1,
        secs(2),
        Ok(&udp_scrape_answer(tid, vec![ScrapeStats { complete: 5, incomplete: 0, downloaded: 1 }])),
        &mut rng,
    );
    assert_eq!(drain(&mut c), vec![HealthRequest::UdpClose { slot: 1 }]);
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
    let report = c.report().unwrap();
    assert_eq!(report.figures, Some(Figures { seeders: 5, leechers: 0 }));
    assert_eq!(report.sources.len(), 2);
    assert_eq!(report.sources[0].result, Ok(Figures { seeders: 3, leechers: 9 }));
}

#[test]
fn udp_lies_are_rejected_and_do_not_win() {
    let lies = [
        vec![ScrapeStats { complete: 1 << 31, incomplete: 0, downloaded: 0 }],
        vec![ScrapeStats { complete: 0, incomplete: u32::MAX, downloaded: 0 }],
        // Two entries for a scrape of one torrent: which one would be ours?
        vec![ScrapeStats { complete: 1, incomplete: 1, downloaded: 0 }; 2],
        vec![],
    ];
    for (i, lie) in lies.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let trackers = vec!["udp://127.0.0.1:2".to_owned(), "http://127.0.0.1:1/announce".to_owned()];
        let mut c = HealthCheck::new(IH, &trackers, secs(0), Duration::from_secs(20), &mut rng);
        let reqs = drain(&mut c);
        let tid = udp_connect(&mut c, 0, &mut rng, &reqs);
        c.handle_udp(0, secs(2), Ok(&udp_scrape_answer(tid, lie.clone())), &mut rng);
        c.handle_http(1, Ok(http_answer(&IH, b"d8:completei2e10:incompletei1ee")));
        let report = c.report().expect("finished");
        assert!(report.sources[0].result.is_err(), "{lie:?} believed");
        assert_eq!(report.figures, Some(Figures { seeders: 2, leechers: 1 }), "{lie:?}");
    }
    // Garbage datagrams with our transaction id end the exchange; never a panic.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut c = HealthCheck::new(IH, &["udp://127.0.0.1:2".to_owned()], secs(0), Duration::from_secs(20), &mut rng);
    let reqs = drain(&mut c);
    let tid = udp_connect(&mut c, 0, &mut rng, &reqs);
    let mut garbage = 2u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&tid.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 13]);
    c.handle_udp(0, secs(2), Ok(&garbage), &mut rng);
    let report = c.report().expect("finished");
    assert_eq!(report.figures, None);
}

#[test]
fn silence_ends_at_the_deadline_with_nothing_invented() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let trackers = vec!["udp://127.0.0.1:2".to_owned(), "http://127.0.0.1:1/announce".to_owned()];
    let mut c = HealthCheck::new(IH, &trackers, secs(0), Duration::from_secs(6), &mut rng);
    drain(&mut c);
    // Retransmissions before the deadline (base timeout 2 s)...
    let mut resent = 0;
    while let Some(t) = c.poll_timeout() {
        assert!(t <= secs(6));
        c.handle_timeout(t);
        resent += drain(&mut c).iter().filter(|r| matches!(r, HealthRequest::UdpSend { .. })).count();
    }
    assert!(resent >= 1, "retransmitted before giving up");
    let report = c.report().unwrap();
    assert_eq!(report.figures, None);
    assert!(report.sources.iter().all(|s| s.result.is_err()));
    // A late HTTP answer changes nothing.
    c.handle_http(1, Ok(http_answer(&IH, b"d8:completei2e10:incompletei1ee")));
    assert_eq!(c.report().unwrap().figures, None);
}

#[test]
fn unusable_trackers_fail_at_once() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let trackers: Vec<String> =
        ["wss://t.example", "http://t.example/a", "udp://t.example", "", "garbage", "garbage"].map(String::from).into();
    let mut c = HealthCheck::new(IH, &trackers, secs(0), Duration::from_secs(20), &mut rng);
    assert!(drain(&mut c).is_empty());
    assert!(c.is_finished());
    let report = c.report().unwrap();
    assert_eq!(report.sources.len(), 4, "blank and repeated URLs are dropped");
    assert_eq!(report.figures, None);
    // No tracker at all: finished at once, with nothing.
    let c = HealthCheck::new(IH, &[], secs(0), Duration::from_secs(20), &mut rng);
    assert_eq!(c.report(), Some(HealthReport { info_hash: IH, figures: None, sources: vec![] }));
}

#[test]
fn tracker_lists_are_bounded() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let trackers: Vec<String> = (0..1000).map(|i| format!("http://127.0.0.1:{}/announce", i + 1)).collect();
    let mut c = HealthCheck::new(IH, &trackers, secs(0), Duration::from_secs(20), &mut rng);
    assert_eq!(drain(&mut c).len(), MAX_TRACKERS_PER_CHECK);
}
