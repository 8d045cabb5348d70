//! Health checks combining sources in a simulated world: the DHT's count (BEP 33) of a torrent
//! the asking engine does not have, next to a tracker whose answer is not a scrape. The best
//! believable answer wins, as in Tribler's checker.

mod support;

use std::time::Duration;

use shoal_core::health::{Figures, HealthReport, Source};
use shoal_core::Event;
use support::{file, NodeId, TestTorrent, World, TRACKER};

/// The report of node `node`'s health check `id`, once it ended.
fn report(w: &World, node: NodeId, id: shoal_core::health::HealthCheckId) -> Option<HealthReport> {
    w.nodes[node].events.iter().find_map(|(_, e)| match e {
        Event::HealthChecked { check, report } if *check == id => Some(report.clone()),
        _ => None,
    })
}

#[test]
fn a_health_check_counts_the_dht_swarm_and_takes_the_best_source() {
    let tt = TestTorrent::new(31, 32 * 1024, &[file("a.bin", 700_001)]);
    let hash = tt.meta.info_hash;
    let mut w = World::new(31);
    let (seeder, leecher, router, asker) = (w.add_node(), w.add_node(), w.add_node(), w.add_node());
    // The seeder sends slowly: the leecher stays a leecher throughout.
    w.nodes[seeder].uplink.rate = Some(2_000);
    w.join_dht(&[(seeder, router), (leecher, router), (router, seeder), (asker, router)]);

    // Before the asker's DHT has reached anyone, it is not waited for: the check ends with the
    // tracker alone, which answers an announce body to the scrape (not believed).
    let early = w.command(asker, |e, now| e.check_health(hash, &[TRACKER.to_owned()], Duration::from_secs(60), now));
    let early = early.expect("a check starts");
    w.run_until(Duration::from_secs(5), |w| report(w, asker, early).is_some());
    let r = report(&w, asker, early).unwrap();
    assert_eq!(r.figures, None, "{r:?}");
    assert_eq!(r.sources.len(), 2, "{r:?}");
    assert!(r.sources.iter().all(|s| s.result.is_err()), "{r:?}");
    assert_eq!(r.sources[1].source, Source::Dht);

    w.seed(seeder, &tt);
    let l = w.leech(leecher, &tt);
    w.run_until(Duration::from_secs(180), |w| w.nodes[leecher].stats(l).dht.is_some_and(|d| d.peers >= 1));

    // The leecher's own announce follows its lookup: ask again (a few times at most) until
    // the DHT counts both.
    let mut last = None;
    for _ in 0..5 {
        let id = w
            .command(asker, |e, now| e.check_health(hash, &[TRACKER.to_owned()], Duration::from_secs(60), now))
            .expect("a check starts");
        w.run_until(Duration::from_secs(120), |w| report(w, asker, id).is_some());
        let r = report(&w, asker, id).unwrap();
        let done = r.figures == Some(Figures { seeders: 1, leechers: 1 });
        last = Some(r);
        if done {
            break;
        }
    }
    let r = last.unwrap();
    assert_eq!(r.figures, Some(Figures { seeders: 1, leechers: 1 }), "{r:?}");
    assert!(r.sources[0].result.is_err(), "the tracker's announce body is no scrape: {r:?}");
    assert_eq!(
        (r.sources[1].source.clone(), r.sources[1].result.clone()),
        (Source::Dht, Ok(Figures { seeders: 1, leechers: 1 }))
    );
    assert!(!w.nodes[leecher].finished(l), "the leecher was still a leecher");
}
