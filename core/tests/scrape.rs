//! Scrape through the engine: the request it emits and the counts it reports.

use shoal_core::create::TorrentBuilder;
use shoal_core::{AddTorrent, Config, Engine, Input, Output};
use shoal_core::{Instant, Metainfo};

fn torrent(tracker: &str) -> Metainfo {
    let mut b = TorrentBuilder::new("f".into());
    b.set_single_file(true).set_piece_length(16384).set_trackers(vec![vec![tracker.into()]]);
    b.add_file(vec!["f".into()], 1000);
    let mut h = b.piece_hasher();
    h.update(&[7u8; 1000]);
    Metainfo::from_bytes(&b.build(h.finish()).unwrap()).unwrap()
}

#[test]
fn http_scrape_fills_seeder_and_leecher_counts() {
    let meta = torrent("http://127.0.0.1:1/announce");
    let hash = meta.info_hash;
    let mut e = Engine::new(Config::default(), 1, Instant::ZERO);
    let mut params = AddTorrent::new(meta);
    params.check_existing = false;
    let t = e.add_torrent(params, Instant::ZERO).unwrap();
    while e.poll_output().is_some() {}
    e.scrape(t, Instant::ZERO).unwrap();
    let mut job = None;
    while let Some(o) = e.poll_output() {
        if let Output::Http { id, url } = o {
            if url.starts_with("http://127.0.0.1:1/scrape?info_hash=") {
                job = Some(id);
            }
        }
    }
    let job = job.expect("a scrape request to the tracker's /scrape URL");
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&hash.0);
    body.extend_from_slice(b"d8:completei5e10:downloadedi7e10:incompletei3eeee");
    e.handle(Input::Http(job, Ok(body)), Instant::ZERO);
    let status = &e.stats(t).unwrap().trackers[0];
    assert_eq!((status.seeders, status.leechers), (Some(5), Some(3)));
    // A garbage answer changes nothing and breaks nothing.
    e.scrape(t, Instant::ZERO).unwrap();
    let mut ids = Vec::new();
    while let Some(o) = e.poll_output() {
        if let Output::Http { id, .. } = o {
            ids.push(id);
        }
    }
    for id in ids {
        e.handle(Input::Http(id, Ok(b"garbage".to_vec())), Instant::ZERO);
    }
    assert_eq!(e.stats(t).unwrap().trackers[0].seeders, Some(5));
}
