//! The metadata store on 1,000,000 torrents with realistic names: insert rate, local search
//! (one and three words), completions and popular torrents, as percentiles.
//!
//! `cargo bench -p shoal-benches --bench store [-- N]` (N torrents, default 1,000,000). The
//! store is built in a temporary directory with the daemon's own code (the module is compiled
//! in from `api/src/daemon/store`), one signed entry at a time, exactly as the daemon adds them.
//! Issue #15's targets: search p50 < 10 ms and p99 < 50 ms, completions p50 < 5 ms, popular
//! < 20 ms, inserts >= 10,000/s.

// Compiled here as the daemon compiles it; the daemon-only parts go unused.
#[allow(dead_code, unused_imports)]
#[path = "../../api/src/daemon/store/mod.rs"]
mod store;

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use store::db::Db;
use store::entry::TorrentFacts;
use store::query::SearchParams;

/// Made-up title words: syllables combined, so the vocabulary is large and Zipf-like when
/// picked with a skew, as real names are.
fn vocabulary(rng: &mut ChaCha8Rng, n: usize) -> Vec<String> {
    const SYL: &[&str] = &[
        "ka", "lo", "mi", "ran", "tor", "el", "vi", "sun", "dar", "ne", "qua", "bel", "fi", "gro", "ur", "tan", "mor",
        "lis", "pe", "zo", "an", "ri", "co", "ver", "sa", "ty", "ho", "wen", "jo", "ex",
    ];
    (0..n)
        .map(|_| (0..rng.random_range(2..4)).map(|_| SYL[rng.random_range(0..SYL.len())]).collect::<String>())
        .collect()
}

/// A word, skewed towards the start of the vocabulary (popular words).
fn word<'a>(rng: &mut ChaCha8Rng, vocab: &'a [String]) -> &'a str {
    let r: f64 = rng.random();
    &vocab[((r * r * r) * vocab.len() as f64) as usize]
}

fn cap(w: &str) -> String {
    let mut c = w.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// A realistic torrent name: films, episodes, albums, books, software images.
fn name(rng: &mut ChaCha8Rng, vocab: &[String]) -> (String, &'static str, u64) {
    const Q: &[&str] = &["720p", "1080p", "2160p", "HDTV", "WEB-DL", "BluRay", "DVDRip"];
    const CODEC: &[&str] = &["x264", "x265", "HEVC", "AAC", "DDP5.1", "H.264"];
    const GROUP: &[&str] = &["NTb", "FLUX", "SPARKS", "RARBG", "YTS", "EVO", "GalaxyRG", "TGx"];
    let title = |rng: &mut ChaCha8Rng| (0..rng.random_range(1..5)).map(|_| cap(word(rng, vocab))).collect::<Vec<_>>();
    match rng.random_range(0..10) {
        0..=3 => {
            let t = title(rng).join(".");
            let n = format!(
                "{t}.{}.{}.{}-{}",
                rng.random_range(1950..2025),
                Q[rng.random_range(0..Q.len())],
                CODEC[rng.random_range(0..CODEC.len())],
                GROUP[rng.random_range(0..GROUP.len())]
            );
            (n, "Video", rng.random_range(700u64 << 20..20 << 30))
        }
        4..=6 => {
            let t = title(rng).join(".");
            let n = format!(
                "{t}.S{:02}E{:02}.{}.{}-{}",
                rng.random_range(1..15),
                rng.random_range(1..24),
                Q[rng.random_range(0..Q.len())],
                CODEC[rng.random_range(0..CODEC.len())],
                GROUP[rng.random_range(0..GROUP.len())]
            );
            (n, "Video", rng.random_range(200u64 << 20..3 << 30))
        }
        7 => {
            let n = format!(
                "{} - {} ({}) [{}]",
                title(rng).join(" "),
                title(rng).join(" "),
                rng.random_range(1960..2025),
                ["FLAC", "MP3 320", "24bit-96kHz"][rng.random_range(0..3)]
            );
            (n, "Audio", rng.random_range(50u64 << 20..2 << 30))
        }
        8 => {
            let n = format!("{} - {}.epub", title(rng).join(" "), title(rng).join(" "));
            (n, "Document", rng.random_range(200u64 << 10..50 << 20))
        }
        _ => {
            let n = format!(
                "{}-{}.{}.{}-{}.iso",
                word(rng, vocab),
                rng.random_range(1..30),
                rng.random_range(0..12),
                rng.random_range(0..9),
                ["amd64", "arm64", "x86_64", "i386"][rng.random_range(0..4)]
            );
            (n, "Compressed", rng.random_range(300u64 << 20..8 << 30))
        }
    }
}

fn percentiles(mut d: Vec<Duration>) -> (f64, f64, f64) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    (ms(d[d.len() / 2]), ms(d[d.len() * 99 / 100]), ms(*d.last().unwrap()))
}

/// Runs `f` once per input and prints the latency percentiles.
fn timed<T>(what: &str, inputs: &[T], mut f: impl FnMut(&T) -> usize) {
    let mut times = Vec::new();
    let mut hits = 0;
    for input in inputs {
        let t = Instant::now();
        hits += f(input);
        times.push(t.elapsed());
    }
    let n = times.len();
    let (p50, p99, max) = percentiles(times);
    println!("{what:<34} n={n:<5} p50 {p50:7.2} ms   p99 {p99:7.2} ms   max {max:7.2} ms   (results {hits})");
}

fn params(q: &[(&str, &str)]) -> SearchParams {
    SearchParams::parse(&q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()).unwrap()
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("shoal-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let vocab = vocabulary(&mut rng, 40_000);
    // Inserts go through the daemon's store: its thread, its batching, one signed entry each.
    let store = store::Store::open(&dir).unwrap();
    let mut names = Vec::with_capacity(1000);
    let mut checked = Vec::with_capacity(n / 10);
    let t = Instant::now();
    for i in 0..n {
        let (title, category, size) = name(&mut rng, &vocab);
        if i % (n / 1000).max(1) == 0 {
            names.push(title.clone());
        }
        let mut infohash = [0u8; 20];
        rng.fill(&mut infohash[..]);
        if i % 10 == 0 {
            checked.push(infohash);
        }
        let facts = TorrentFacts {
            infohash,
            title,
            size,
            torrent_date: 1_600_000_000 + i as u64,
            tracker_info: String::new(),
            category,
            xxx: false,
        };
        store.record(facts);
    }
    // The jobs run in order: when this answers, every entry is in.
    let (_, stored) = futures_lite::future::block_on(store.stats()).unwrap();
    assert_eq!(stored as usize, n);
    drop(store);
    let secs = t.elapsed().as_secs_f64();
    println!("inserts: {n} signed entries through the store's thread in {secs:.1} s = {:.0}/s", n as f64 / secs);
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let db = Db::open(&store::db_path(&dir), key).unwrap();
    // Health for a tenth of the store, a third of it checked within the last day.
    let now = 1_800_000_000;
    for ih in &checked {
        db.set_health(ih, rng.random_range(0..5000), rng.random_range(0..500), now - rng.random_range(0..3 * 86_400))
            .unwrap();
    }
    let size = std::fs::metadata(store::db_path(&dir)).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.join("sqlite/metadata.db-wal")).map(|m| m.len()).unwrap_or(0);
    println!("store: {:.0} MiB on disk", size as f64 / (1 << 20) as f64);

    let db = &db;
    let one: Vec<String> = (0..300).map(|_| word(&mut rng, &vocab).to_string()).collect();
    let three: Vec<String> = names
        .iter()
        .take(300)
        .map(|n| n.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let gui = |w: &str| w.split(' ').map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ");
    let page = |q: &str, total: bool, popular: Option<i64>| {
        let mut p = vec![("first", "1"), ("last", "50")];
        if !q.is_empty() {
            p.push(("txt_filter", q));
        }
        if total {
            p.push(("include_total", "1"));
        }
        db.search(&params(&p), popular).unwrap().entries.len()
    };
    timed("search, one word", &one, |w| page(&gui(w), false, None));
    timed("search, one word, include_total", &one, |w| page(&gui(w), true, None));
    timed("search, three words", &three, |w| page(&gui(w), false, None));
    timed("completions (3-letter prefix)", &one, |w| db.completions(&w[..3.min(w.len())]).unwrap().len());
    let hundred = vec![(); 100];
    timed("popular (first page)", &hundred, |_| page("", false, Some(now)));
    timed("listing, newest first (no text)", &hundred, |_| page("", false, None));
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
