//! Shared checks of the `shoal-core` fuzz targets: each target in `fuzz_targets/` is one call
//! into [`checks`], and `core/tests/fuzz_corpus.rs` replays the committed corpora through the
//! same functions (it includes `checks.rs` by path), so the corpora are exercised by a plain
//! `cargo test` too.

pub mod checks;
