//! Replays the committed fuzz corpora (`core/fuzz/corpus/<target>/*`) through the same checks
//! the cargo-fuzz targets run, so every corpus input is exercised by a plain `cargo test`, without
//! cargo-fuzz or a nightly compiler.

// The fuzz crate exports these checks; this test binary uses them privately.
#[allow(unreachable_pub)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .collect();
    entries.sort();
    entries
}

#[test]
fn every_target_has_a_check_and_a_corpus() {
    let targets: Vec<String> = sorted_entries(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.strip_suffix(".rs")?.to_owned()))
        .collect();
    assert!(!targets.is_empty());
    for t in &targets {
        assert!(checks::TARGETS.iter().any(|(name, _)| name == t), "fuzz target {t} has no replay check");
        let corpus = fuzz_dir().join("corpus").join(t);
        assert!(corpus.is_dir() && !sorted_entries(&corpus).is_empty(), "fuzz target {t} has no corpus");
    }
    assert_eq!(targets.len(), checks::TARGETS.len(), "replay checks for targets that do not exist");
}

#[test]
fn corpora_replay_without_failures() {
    let mut total = 0;
    for (name, check) in checks::TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        for path in sorted_entries(&dir) {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Name the input in the failure message: the check's own panic says what broke.
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{name}: corpus input {} fails its check", path.display());
            total += 1;
        }
    }
    assert!(total > 0);
}
