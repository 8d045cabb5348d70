//! Turning hostile file names from a .torrent into path components that stay inside the
//! download directory.
//!
//! The rule is: refuse rather than repair. A torrent whose names try to climb out (`..`), jump
//! to the root (`/etc`), smuggle a separator (`a/b`, `a\b`), name a Windows drive (`C:`) or hide
//! a NUL is refused with [`MetainfoError::UnsafePath`]; only empty components inside a
//! multi-file path are dropped, as libtorrent does.

use super::error::MetainfoError;

/// Why one component is unsafe, or `None` if it may be used as a file or directory name.
pub(crate) fn component_problem(c: &str) -> Option<&'static str> {
    if c.is_empty() {
        return Some("empty name");
    }
    if c == "." || c == ".." {
        return Some("`.` or `..` component");
    }
    if c.contains(['/', '\\']) {
        return Some("contains a path separator");
    }
    if c.contains('\0') {
        return Some("contains a NUL byte");
    }
    let b = c.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Some("Windows drive prefix");
    }
    None
}

/// Decodes a name from the file: lossy UTF-8, so odd encodings still give a usable name.
pub(crate) fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks the torrent's `name`: it becomes the file name (single-file) or the top directory.
pub(crate) fn sanitise_name(name: String) -> Result<String, MetainfoError> {
    match component_problem(&name) {
        None => Ok(name),
        Some(reason) => Err(MetainfoError::UnsafePath { path: name, reason }),
    }
}

/// Checks a multi-file `path` list: drops empty components, refuses unsafe ones and paths that
/// end up empty.
pub(crate) fn sanitise_path(components: Vec<String>) -> Result<Vec<String>, MetainfoError> {
    // The joined path is only built for the error message, so the common case allocates less.
    let refuse = |reason| MetainfoError::UnsafePath { path: components.join("/"), reason };
    if let Some(reason) = components.iter().filter(|c| !c.is_empty()).find_map(|c| component_problem(c)) {
        return Err(refuse(reason));
    }
    if components.iter().all(String::is_empty) {
        return Err(refuse("empty path"));
    }
    Ok(components.into_iter().filter(|c| !c.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ordinary_names_pass() {
        for ok in ["a", "file.txt", "..hidden", "a..b", "...", "ñandú ü.mkv", "ab:c", ".pad"] {
            assert_eq!(component_problem(ok), None, "{ok}");
        }
        assert_eq!(sanitise_path(strs(&["", "dir", "", "f"])).unwrap(), strs(&["dir", "f"]));
    }

    #[test]
    fn hostile_components_are_refused() {
        for bad in ["", ".", "..", "/etc", "\\x", "a/b", "a\\b", "a\0b", "C:", "c:x", "Z:\\x"] {
            assert!(component_problem(bad).is_some(), "{bad:?}");
        }
        assert!(sanitise_name("..".into()).is_err());
        assert!(sanitise_path(strs(&["", ""])).is_err());
        assert!(sanitise_path(strs(&[])).is_err());
        assert!(sanitise_path(strs(&["a", "..", "..", "b"])).is_err());
        let err = sanitise_path(strs(&["..", "x"])).unwrap_err();
        assert_eq!(err.to_string(), "unsafe file path \"../x\": `.` or `..` component");
    }
}
