//! Deterministic test data and byte-for-byte tree comparison.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A file to generate: its path relative to the torrent root and its size.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// `/`-separated path inside the torrent's top directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

impl FileSpec {
    /// A spec from a path and a size.
    pub fn new(path: &str, size: u64) -> FileSpec {
        FileSpec { path: path.to_string(), size }
    }
}

/// xorshift64* — fast, deterministic, and plenty for incompressible test bytes.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Mix the seed so that small seeds (0, 1, 2) give unrelated streams; never zero.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Writes `size` pseudo-random bytes derived from `seed` to `path` (parents created).
pub fn write_file(path: &Path, size: u64, seed: u64) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("cannot create parent dir");
    }
    let mut rng = XorShift::new(seed);
    let mut out = BufWriter::new(File::create(path).expect("cannot create data file"));
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n]).expect("cannot write data file");
        left -= n as u64;
    }
    out.flush().expect("cannot flush data file");
}

/// Creates a single-file torrent payload `<root>/<name>` of `size` bytes; returns its path.
pub fn single_file(root: &Path, name: &str, size: u64, seed: u64) -> PathBuf {
    let path = root.join(name);
    write_file(&path, size, seed);
    path
}

/// Creates a multi-file payload `<root>/<name>/<spec.path>...`; returns `<root>/<name>`.
///
/// Each file gets its own seed derived from `seed` and its index.
pub fn tree(root: &Path, name: &str, files: &[FileSpec], seed: u64) -> PathBuf {
    let top = root.join(name);
    std::fs::create_dir_all(&top).expect("cannot create tree root");
    for (i, f) in files.iter().enumerate() {
        write_file(&top.join(&f.path), f.size, seed.wrapping_add(i as u64 * 7919));
    }
    top
}

/// A nested tree with the awkward cases: empty files, 1-byte files, sizes that are not
/// multiples of anything, files much smaller and larger than a piece, and deep directories.
pub fn awkward_tree() -> Vec<FileSpec> {
    vec![
        FileSpec::new("README.txt", 1),
        FileSpec::new("empty-at-start", 0),
        FileSpec::new("a/one-byte", 1),
        FileSpec::new("a/empty", 0),
        FileSpec::new("a/b/c/deep.bin", 1_234_567),
        FileSpec::new("a/b/c/d/e/f/deeper.bin", 70_001),
        FileSpec::new("a/b/small", 16_383),
        FileSpec::new("a/b/exact-block", 16_384),
        FileSpec::new("a/b/block-plus-one", 16_385),
        FileSpec::new("big/part1.dat", 2_500_000),
        FileSpec::new("big/part2.dat", 3_000_017),
        FileSpec::new("big/zz-one", 1),
        FileSpec::new("with space/and-üñíçødé.txt", 4_321),
        FileSpec::new("z-empty-at-end", 0),
    ]
}

/// A tree like [`awkward_tree`] but without empty files (transmission never creates them).
pub fn awkward_tree_without_empty() -> Vec<FileSpec> {
    awkward_tree().into_iter().filter(|f| f.size > 0).collect()
}

/// Options of [`compare_trees`].
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    /// Fail if the actual tree has a BEP 47 pad file (any path with a `.pad` component).
    pub forbid_pad_files: bool,
    /// Accept that empty files of the expected tree are missing from the actual one.
    pub missing_empty_ok: bool,
}

impl Default for Compare {
    fn default() -> Compare {
        Compare { forbid_pad_files: true, missing_empty_ok: false }
    }
}

/// Compares two payloads (a file with a file, or a directory tree with a directory tree):
/// the same set of files with identical bytes. Directories without files are not compared.
pub fn compare_trees(expected: &Path, actual: &Path, opts: Compare) -> Result<(), String> {
    let exp_meta = std::fs::metadata(expected).map_err(|e| format!("expected {}: {e}", expected.display()))?;
    let act_meta = std::fs::metadata(actual).map_err(|e| format!("actual {}: {e}", actual.display()))?;
    if exp_meta.is_file() {
        if !act_meta.is_file() {
            return Err(format!("{} is not a file", actual.display()));
        }
        return compare_files(expected, actual);
    }
    if !act_meta.is_dir() {
        return Err(format!("{} is not a directory", actual.display()));
    }
    let exp_files = list_files(expected)?;
    let act_files = list_files(actual)?;
    let mut problems = Vec::new();
    if opts.forbid_pad_files {
        for f in &act_files {
            if is_pad_path(f) {
                problems.push(format!("pad file written to disk: {f}"));
            }
        }
    }
    let act_set: BTreeSet<&String> = act_files.iter().filter(|f| !is_pad_path(f)).collect();
    let exp_set: BTreeSet<&String> = exp_files.iter().collect();
    for missing in exp_set.difference(&act_set) {
        let empty = std::fs::metadata(expected.join(missing)).map(|m| m.len() == 0);
        if !(opts.missing_empty_ok && empty.unwrap_or(false)) {
            problems.push(format!("missing file: {missing}"));
        }
    }
    for extra in act_set.difference(&exp_set) {
        problems.push(format!("unexpected file: {extra}"));
    }
    for common in exp_set.intersection(&act_set) {
        if let Err(e) = compare_files(&expected.join(common), &actual.join(common)) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} differs from {}:\n  {}", actual.display(), expected.display(), problems.join("\n  ")))
    }
}

/// [`compare_trees`] that panics with the differences.
pub fn assert_same_tree(expected: &Path, actual: &Path, opts: Compare) {
    if let Err(e) = compare_trees(expected, actual, opts) {
        panic!("{e}");
    }
}

/// True for paths of BEP 47 pad files (a `.pad` directory component).
pub fn is_pad_path(rel: &str) -> bool {
    rel.split('/').any(|c| c == ".pad")
}

/// All regular files under `root`, as sorted `/`-separated relative paths.
pub fn list_files(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let ty = entry.file_type().map_err(|e| e.to_string())?;
            let path = entry.path();
            if ty.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("entry is under root");
                let parts: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push(parts.join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn compare_files(expected: &Path, actual: &Path) -> Result<(), String> {
    let open = |p: &Path| File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()));
    let (mut a, mut b) = (open(expected)?, open(actual)?);
    let (la, lb) = (a.metadata().map_err(|e| e.to_string())?.len(), b.metadata().map_err(|e| e.to_string())?.len());
    if la != lb {
        return Err(format!("{}: size {lb}, expected {la}", actual.display()));
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba).map_err(|e| e.to_string())?;
        let m = read_full(&mut b, &mut bb).map_err(|e| e.to_string())?;
        if n != m {
            return Err(format!("{}: short read at {offset}", actual.display()));
        }
        if n == 0 {
            return Ok(());
        }
        if ba[..n] != bb[..n] {
            let i = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y).expect("slices differ");
            return Err(format!("{}: content differs at byte {}", actual.display(), offset + i as u64));
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let d = tempfile::tempdir().unwrap();
        write_file(&d.path().join("a"), 100_003, 5);
        write_file(&d.path().join("b"), 100_003, 5);
        write_file(&d.path().join("c"), 100_003, 6);
        let read = |n: &str| std::fs::read(d.path().join(n)).unwrap();
        assert_eq!(read("a"), read("b"));
        assert_ne!(read("a"), read("c"));
        assert_eq!(read("a").len(), 100_003);
    }

    #[test]
    fn comparison_finds_differences() {
        let d = tempfile::tempdir().unwrap();
        let files = awkward_tree();
        let a = tree(&d.path().join("x"), "t", &files, 1);
        let b = tree(&d.path().join("y"), "t", &files, 1);
        compare_trees(&a, &b, Compare::default()).unwrap();

        std::fs::create_dir_all(b.join(".pad")).unwrap();
        std::fs::write(b.join(".pad/3"), [0u8; 3]).unwrap();
        assert!(compare_trees(&a, &b, Compare::default()).is_err());
        let lenient = Compare { forbid_pad_files: false, ..Compare::default() };
        compare_trees(&a, &b, lenient).unwrap();

        std::fs::remove_file(b.join("a/empty")).unwrap();
        assert!(compare_trees(&a, &b, lenient).is_err());
        let no_empty = Compare { missing_empty_ok: true, ..lenient };
        compare_trees(&a, &b, no_empty).unwrap();

        let mut bytes = std::fs::read(b.join("big/part2.dat")).unwrap();
        bytes[3_000_000] ^= 1;
        std::fs::write(b.join("big/part2.dat"), bytes).unwrap();
        let err = compare_trees(&a, &b, no_empty).unwrap_err();
        assert!(err.contains("differs at byte 3000000"), "{err}");
    }
}
