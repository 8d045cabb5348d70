//! `shoal`: download, seed, create and inspect torrents.

/// mimalloc reuses freed large buffers (piece and read buffers) instead of returning them
/// to the kernel: with glibc malloc, a 1 GiB download spent most of its CPU in page faults.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod create;
mod daemon;
mod failure;
mod info;
mod logging;
mod output;
mod progress;
mod proxy;
mod rt;
mod run;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use failure::Failure;

/// Shoal: a BitTorrent client (download, seed, create and inspect torrents) and a daemon that
/// speaks Tribler's 7.x REST API.
///
/// Errors are one line on stderr and exit 1; Ctrl-C or SIGTERM before a download completes
/// exits 130. `RUST_LOG` (for example `RUST_LOG=debug`) adds log lines on stderr.
#[derive(Parser)]
#[command(name = "shoal", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download a torrent or a magnet link; exits once every file is verified on disk (unless --seed).
    Download {
        /// The .torrent file, or a magnet link (`magnet:?xt=urn:btih:...`, BEP 9 and 53).
        torrent: PathBuf,
        /// Directory to download into.
        #[arg(short, long, default_value = ".")]
        output: PathBuf,
        #[command(flatten)]
        net: run::NetArgs,
        /// Keep seeding after the download completes, until interrupted.
        #[arg(long)]
        seed: bool,
    },
    /// Check existing data, then seed it until Ctrl-C or SIGTERM; prints what it uploaded.
    ///
    /// Refuses when none of the torrent's files is under DIR. Missing or damaged pieces of
    /// data that is only partly there are downloaded from peers before they are seeded.
    Seed {
        /// The .torrent file.
        torrent: PathBuf,
        /// Directory holding the data (the torrent's name is looked up inside it).
        dir: PathBuf,
        #[command(flatten)]
        net: run::NetArgs,
    },
    /// Create a .torrent file from a file or a directory; prints its info-hash and magnet link.
    Create {
        /// File or directory to share.
        path: PathBuf,
        /// Where to write the .torrent file.
        #[arg(short, long)]
        output: PathBuf,
        /// Tracker announce URL (repeat for several; each becomes its own tier).
        #[arg(short, long = "tracker")]
        trackers: Vec<String>,
        /// Piece size in bytes (a power of two, at least 16384); chosen from the size if absent.
        #[arg(long)]
        piece_size: Option<u32>,
        /// Mark the torrent private (BEP 27: trackers only, no DHT or PEX).
        #[arg(long)]
        private: bool,
        /// A comment stored in the torrent.
        #[arg(long)]
        comment: Option<String>,
        /// Web seed URL (BEP 19; repeatable).
        #[arg(long = "web-seed")]
        web_seeds: Vec<String>,
    },
    /// Run the daemon: a session driven over the Tribler-compatible REST API until stopped.
    Daemon(daemon::DaemonArgs),
    /// Show what a .torrent file contains, with its magnet link.
    Info {
        /// The .torrent file.
        torrent: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SHOAL_LOCAL_ONLY is read once, here, so a wrong `netns` stops Shoal before anything runs.
    run::net_policy();
    let log = logging::init(matches!(cli.command, Cmd::Daemon(_)));
    let result = match cli.command {
        Cmd::Download { torrent, output, net, seed } => run::download(&torrent, &output, &net, seed),
        Cmd::Seed { torrent, dir, net } => run::seed(&torrent, &dir, &net),
        Cmd::Create { path, output, trackers, piece_size, private, comment, web_seeds } => {
            create::create(&path, &output, trackers, piece_size, private, comment, web_seeds).map_err(Failure::from)
        }
        Cmd::Info { torrent, json } => info::info(&torrent, json).map_err(Failure::from),
        Cmd::Daemon(args) => daemon::run(args, log).map_err(Failure::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(e)) => {
            progress::eprint_line(&format!("shoal: error: {e}"));
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted(what)) => {
            progress::eprint_line(&format!("shoal: interrupted: {what}"));
            ExitCode::from(EXIT_INTERRUPTED)
        }
    }
}
