//! Embedding Shoal in an application that already runs tokio: start a session on the app's
//! runtime, add a torrent, follow its events next to the app's own work, shut down cleanly.
//!
//! ```text
//! cargo run -p shoal-tokio --example embed -- FILE.torrent OUT_DIR [PEER_IP:PORT]...
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::Metainfo;
use shoal_core::{Config, Event};
use shoal_tokio::{AddOptions, Session, SessionConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [torrent, out, peers @ ..] = args.as_slice() else {
        return Err("usage: embed FILE.torrent OUT_DIR [PEER_IP:PORT]...".into());
    };
    let peers = peers.iter().map(|p| p.parse()).collect::<Result<Vec<SocketAddr>, _>>()?;
    let meta = Metainfo::from_bytes(&tokio::fs::read(torrent).await.map_err(|e| format!("{torrent}: {e}"))?)?;

    // The session's tasks run on this very runtime, next to the application's own.
    let config = SessionConfig { engine: Config { listen_port: 0, ..Config::default() }, ..SessionConfig::default() };
    let session = Session::start(config).await?;
    println!("listening on {:?}", session.listen_addrs());
    let handle = session.handle();
    let events = handle.subscribe().await;
    let mut opts = AddOptions::new(meta, out.into());
    opts.peers = peers;
    let id = handle.add(opts).await?;

    // Some other work of the application's, unaware of Shoal.
    let heartbeat = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            println!("(the application is still doing its own work)");
        }
    });

    let mut progress = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Finished { .. }) => break Ok(()),
                Ok(Event::Error { error, .. }) => break Err(error.to_string()),
                Ok(event) => println!("event: {event:?}"),
                Err(_) => break Err("the session stopped".to_string()),
            },
            _ = progress.tick() => {
                if let Some(s) = handle.stats(id).await {
                    println!("{}: {}/{} pieces, {} peers, {} B/s", s.name, s.pieces_have, s.pieces_total, s.peers, s.download_rate);
                }
            }
        }
    };

    // A clean stop: `stopped` to the trackers, pending writes done, files flushed.
    heartbeat.abort();
    handle.shutdown().await;
    session.join().await;
    match result {
        Ok(()) => println!("complete: {out}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
