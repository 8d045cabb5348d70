//! The network rule, checked on the repository itself: every script that starts `shoal`
//! (demo, benchmarks, test helpers) keeps it on loopback with `SHOAL_LOCAL_ONLY=1`, the one
//! switch that turns off DHT routers and LSD multicast. A benchmark once forgot it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

/// Script files under `dir` (recursively), skipping build output.
fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target" && n != "corpus") {
                scripts(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "py" || x == "sh") {
            out.push(p);
        }
    }
}

#[test]
fn every_script_that_starts_shoal_sets_the_loopback_switch() {
    let root = repo();
    let mut files = Vec::new();
    for dir in ["scripts", "benches", "tests/scripts", ".ci"] {
        scripts(&root.join(dir), &mut files);
    }
    assert!(files.len() >= 5, "found the scripts: {files:?}");
    let starts_shoal = |text: &str| {
        text.contains("release/shoal")
            || text.contains("SHOAL_BIN")
            || text.contains("\"target\" / \"release\" / \"shoal\"")
    };
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            starts_shoal(&text) && !text.contains("SHOAL_LOCAL_ONLY")
        })
        .collect();
    assert!(offenders.is_empty(), "scripts that start shoal without SHOAL_LOCAL_ONLY=1: {offenders:?}");
}
