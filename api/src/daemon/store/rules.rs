//! Our rules for what a torrent's name says about it, as Tribler's knowledge rules processor
//! extracts it: content items (`ubuntu-22.04.3-desktop-amd64.iso` is "Ubuntu 22.04") and
//! general tags (the words in `[…]` and `(…)`, and the file extension), stored as
//! auto-generated statements.
//!
//! The rules are our own: each distribution's version is read the way that distribution
//! numbers its releases (Ubuntu's `YY.MM`, Debian's major number, …), and a name only counts
//! as a whole word (`kubuntu` is Kubuntu, never Ubuntu).

use std::sync::LazyLock;

use regex::Regex;

use super::statement::{MAX_RESOURCE_LENGTH, MIN_RESOURCE_LENGTH};

/// The version of these rules, shown as an entry's `tag_processor_version`. Raise it when a
/// rule changes: entries processed by an older version are processed again on start.
pub const VERSION: i64 = 1;

/// A content-item rule: a pattern whose first group is the version, and the item's name.
struct ContentRule {
    pattern: Regex,
    name: &'static str,
}

/// Separators between a name and its version, as release files spell them.
const SEP: &str = r"[-._\s]*";

/// `(name pattern, display name, version pattern)`: the version pattern is the part that names
/// the release (point releases and build numbers are left out).
const CONTENT: &[(&str, &str, &str)] = &[
    ("ubuntu", "Ubuntu", r"(\d{1,2}\.\d{2})"),
    ("kubuntu", "Kubuntu", r"(\d{1,2}\.\d{2})"),
    ("xubuntu", "Xubuntu", r"(\d{1,2}\.\d{2})"),
    ("lubuntu", "Lubuntu", r"(\d{1,2}\.\d{2})"),
    ("debian", "Debian", r"(\d{1,2})"),
    (r"linux[-._\s]*mint", "Linux Mint", r"(\d{1,2}(?:\.\d)?)"),
    ("fedora", "Fedora", r"(\d{2})"),
    (r"opensuse[-._\s]*leap", "openSUSE Leap", r"(\d{2}\.\d)"),
    ("freebsd", "FreeBSD", r"(\d{1,2}\.\d)"),
    ("centos", "CentOS", r"(\d{1,2})"),
    (r"rocky[-._\s]*linux", "Rocky Linux", r"(\d{1,2}(?:\.\d{1,2})?)"),
];

static CONTENT_RULES: LazyLock<Vec<ContentRule>> = LazyLock::new(|| {
    CONTENT
        .iter()
        .map(|(name, display, version)| ContentRule {
            // A whole word: no letter before the name, no digit after the version.
            pattern: Regex::new(&format!(r"(?i)(?:^|[^\p{{L}}]){name}{SEP}{version}(?:\D|$)"))
                .expect("the content rules are valid regexes"),
            name: display,
        })
        .collect()
});

static BRACKETS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[([^\[\]]+)\]").expect("valid regex"));
static PARENTHESES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\(([^()]+)\)").expect("valid regex"));
static EXTENSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\.(\w{3,4})$").expect("valid regex"));

/// Whether a statement's object has a length Tribler accepts (2–50 characters).
pub fn valid_length(object: &str) -> bool {
    (MIN_RESOURCE_LENGTH..=MAX_RESOURCE_LENGTH).contains(&object.chars().count())
}

/// Any name a content rule looks for: most names hold none, and one scan rules them out.
static ANY_CONTENT: LazyLock<Regex> = LazyLock::new(|| {
    let names: Vec<&str> = CONTENT.iter().map(|(name, _, _)| *name).collect();
    Regex::new(&format!("(?i){}", names.join("|"))).expect("valid regex")
});

/// The content items a name describes, e.g. "Ubuntu 22.04"; each at most once.
pub fn content_items(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if !ANY_CONTENT.is_match(title) {
        return out;
    }
    for rule in CONTENT_RULES.iter() {
        for c in rule.pattern.captures_iter(title) {
            let item = format!("{} {}", rule.name, &c[1]);
            if valid_length(&item) && !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// The general tags of a name, lower case: each word inside `[…]` or `(…)` and the extension.
pub fn general_tags(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |tag: &str| {
        let tag = tag.to_lowercase();
        if valid_length(&tag) && !out.contains(&tag) {
            out.push(tag);
        }
    };
    for group in [&*BRACKETS, &*PARENTHESES] {
        for c in group.captures_iter(title) {
            for word in c[1].split(|ch: char| ch.is_whitespace() || ".,/|".contains(ch)).filter(|w| !w.is_empty()) {
                push(word);
            }
        }
    }
    if let Some(c) = EXTENSION.captures(title) {
        push(&c[1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_and_their_releases() {
        for (name, item) in [
            ("ubuntu-22.04.3-desktop-amd64.iso", "Ubuntu 22.04"),
            ("Some text with ubuntu_22.04 in it", "Ubuntu 22.04"),
            ("Ubuntu  9.10", "Ubuntu 9.10"),
            ("Ubuntu 9.1", ""),
            ("Ubuntu 24.10 Oracular", "Ubuntu 24.10"),
            ("kubuntu-24.04-desktop-amd64.iso", "Kubuntu 24.04"),
            ("debian-12.4.0-amd64-netinst.iso", "Debian 12"),
            ("Debian 6.0.4 DVD", "Debian 6"),
            ("Linux mint-21.2 cinnamon", "Linux Mint 21.2"),
            ("linuxmint-20-xfce-64bit.iso", "Linux Mint 20"),
            ("Fedora 39 Workstation", "Fedora 39"),
            ("openSUSE-Leap-15.5-DVD-x86_64-Media.iso", "openSUSE Leap 15.5"),
            ("FreeBSD-14.0-RELEASE-amd64-disc1.iso", "FreeBSD 14.0"),
            ("Rocky-Linux-9.3-x86_64-dvd.iso", "Rocky Linux 9.3"),
        ] {
            let want: Vec<String> = if item.is_empty() { vec![] } else { vec![item.to_string()] };
            assert_eq!(content_items(name), want, "{name}");
        }
    }

    #[test]
    fn a_name_counts_only_as_a_whole_word() {
        assert_eq!(content_items("kubuntu-22.04"), vec!["Kubuntu 22.04"], "not also Ubuntu");
        assert!(content_items("notdebian-12").is_empty());
        assert!(content_items("ubuntu-220.04").is_empty(), "no digit may follow the version");
        assert!(content_items("Ubuntu Server Guide").is_empty());
        assert!(content_items("Big Buck Bunny 1080p").is_empty());
        assert_eq!(content_items("ubuntu 22.04 and ubuntu-22.04.1"), vec!["Ubuntu 22.04"], "once");
        assert_eq!(content_items("debian 11 vs ubuntu 22.04"), vec!["Ubuntu 22.04", "Debian 11"]);
    }

    #[test]
    fn brackets_parentheses_and_extension() {
        assert_eq!(
            general_tags("[YTS] Some Movie (2019) [1080p, BluRay].mkv"),
            ["yts", "1080p", "bluray", "2019", "mkv"]
        );
        assert_eq!(general_tags("ubuntu-22.04.3-desktop-amd64.iso"), ["iso"]);
        assert!(general_tags("Holiday Clips 2023").is_empty());
        // Tags outside 2..50 characters are dropped: one letter, and a 51-letter word.
        let long = "x".repeat(51);
        assert!(general_tags(&format!("[a] ({long}).x")).is_empty());
        assert_eq!(general_tags("[a/bc|de.fg]"), ["bc", "de", "fg"]);
        assert!(general_tags("unbalanced [bracket").is_empty());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(valid_length("éé"));
        assert!(!valid_length("é"));
        assert!(valid_length(&"é".repeat(50)));
        assert!(!valid_length(&"é".repeat(51)));
    }
}
