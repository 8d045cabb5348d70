//! Where a test works and where this package is: [`TestDir`] and [`package_dir`].

use std::path::{Path, PathBuf};

/// A test's private working area: a temp dir holding data, torrents and process logs.
///
/// The directory is removed when dropped, unless the test failed and `SHOAL_KEEP_TMP` is set,
/// in which case its path is printed so the logs and data can be inspected.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    name: String,
}

impl TestDir {
    /// Creates a fresh temp dir for the test called `name` (used in log lines and dir prefix).
    pub fn new(name: &str) -> TestDir {
        let dir =
            tempfile::Builder::new().prefix(&format!("shoal-{name}-")).tempdir().expect("cannot create a temp dir");
        TestDir { dir: Some(dir), name: name.to_string() }
    }

    /// The root of the temp dir.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// `root/rel`, with `rel`'s parent directories created.
    pub fn join(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("cannot create dir in test dir");
        }
        p
    }

    /// `root/rel` as a directory, created if needed.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(&p).expect("cannot create dir in test dir");
        p
    }

    /// The directory where process logs go.
    pub fn logs(&self) -> PathBuf {
        self.dir("logs")
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SHOAL_KEEP_TMP").is_some() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("[{}] kept test dir {}", self.name, kept.display());
            }
        }
    }
}

/// The directory of this package (`tests/`), where `scripts/` lives.
pub fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
