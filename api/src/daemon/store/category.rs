//! Our own rules for a torrent's category (Tribler's names) and its adult-content flag.
//!
//! The category goes by bytes: each file counts towards the kind its extension names, and the
//! kind holding most of the torrent's bytes wins. Video splits in two, as in Tribler: a torrent
//! whose largest video file is under [`CLIP_BYTES`] is `VideoClips`, a longer one `Video`.
//! A name or file name that holds a term of [`XXX_TERMS`] makes the torrent `xxx`.

/// Below this, the largest video file of a torrent is a clip rather than a film or an episode.
pub const CLIP_BYTES: u64 = 100 << 20;

const VIDEO: &[&str] = &[
    "avi", "mkv", "mp4", "m4v", "mov", "wmv", "flv", "webm", "mpg", "mpeg", "ts", "m2ts", "vob", "ogv", "3gp", "divx",
    "rmvb",
];
const AUDIO: &[&str] =
    &["mp3", "flac", "ogg", "oga", "opus", "wav", "aac", "m4a", "wma", "ape", "alac", "aiff", "mka", "mid"];
const DOCUMENT: &[&str] = &[
    "pdf", "epub", "mobi", "azw3", "djvu", "doc", "docx", "odt", "rtf", "txt", "chm", "ps", "tex", "cbz", "cbr", "xls",
    "xlsx", "ppt", "pptx",
];
const COMPRESSED: &[&str] =
    &["zip", "rar", "7z", "gz", "tgz", "bz2", "xz", "zst", "tar", "iso", "img", "dmg", "cab", "lz", "lzma"];
const PICTURE: &[&str] =
    &["jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp", "svg", "heic", "raw", "cr2", "nef", "psd"];

/// Words that mark adult content (whole words of a name, compared in lower case).
pub const XXX_TERMS: &[&str] = &[
    "xxx",
    "porn",
    "porno",
    "pornhub",
    "hentai",
    "nsfw",
    "erotic",
    "erotica",
    "milf",
    "brazzers",
    "bangbros",
    "onlyfans",
    "playboy",
    "penthouse",
    "hustler",
    "bukkake",
    "gangbang",
    "blowjob",
    "cumshot",
    "creampie",
    "anal",
    "threesome",
    "fetish",
    "bdsm",
    "camgirl",
    "stripper",
    "nude",
    "nudes",
    "sextape",
];

/// The kind of one file, by its extension.
fn kind(file_name: &str) -> &'static str {
    let Some((_, ext)) = file_name.rsplit_once('.') else { return "Other" };
    let ext = ext.to_ascii_lowercase();
    let e = ext.as_str();
    if VIDEO.contains(&e) {
        "Video"
    } else if AUDIO.contains(&e) {
        "Audio"
    } else if DOCUMENT.contains(&e) {
        "Document"
    } else if COMPRESSED.contains(&e) {
        "Compressed"
    } else if PICTURE.contains(&e) {
        "Picture"
    } else {
        "Other"
    }
}

/// Whether a text (a torrent or file name) holds an adult term as a whole word.
pub fn is_xxx(text: &str) -> bool {
    text.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|w| XXX_TERMS.contains(&w))
}

/// The category of a torrent named `name` with these files (path inside the torrent, length).
pub fn categorize<'a>(name: &str, files: impl IntoIterator<Item = (&'a str, u64)>) -> &'static str {
    let mut bytes: Vec<(&'static str, u64)> = Vec::new();
    let mut largest_video = 0u64;
    let mut xxx = is_xxx(name);
    for (path, len) in files {
        xxx = xxx || is_xxx(path);
        let k = kind(path);
        if k == "Video" {
            largest_video = largest_video.max(len);
        }
        match bytes.iter_mut().find(|(kk, _)| *kk == k) {
            Some((_, b)) => *b += len,
            None => bytes.push((k, len)),
        }
    }
    if xxx {
        return "xxx";
    }
    // Ties go to the kind seen first, so the result never depends on hash order.
    let best = bytes.iter().fold(None::<(&str, u64)>, |acc, &(k, b)| match acc {
        Some((_, ab)) if ab >= b => acc,
        _ => Some((k, b)),
    });
    match best {
        Some(("Video", _)) if largest_video < CLIP_BYTES => "VideoClips",
        Some((k, _)) => k,
        None => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_bytes_and_clip_size() {
        assert_eq!(categorize("Movie", [("Movie/movie.mkv", 2 << 30), ("Movie/subs.srt", 50_000)]), "Video");
        assert_eq!(categorize("clip", [("clip.mp4", 3 << 20)]), "VideoClips");
        assert_eq!(categorize("album", [("a/01.flac", 30 << 20), ("a/cover.jpg", 1 << 20)]), "Audio");
        assert_eq!(
            categorize("ubuntu-22.04.3-desktop-amd64.iso", [("ubuntu-22.04.3-desktop-amd64.iso", 5 << 30)]),
            "Compressed"
        );
        assert_eq!(categorize("book", [("book.EPUB", 1 << 20)]), "Document");
        assert_eq!(categorize("pics", [("p/1.jpg", 1 << 20), ("p/2.png", 1 << 20)]), "Picture");
        assert_eq!(categorize("noext", [("README", 10)]), "Other");
        assert_eq!(categorize("empty", []), "Other");
    }

    #[test]
    fn adult_terms_are_whole_words() {
        assert!(is_xxx("Some.XXX.Video.mp4"));
        assert!(!is_xxx("Essex county"), "a term inside a word does not count");
        assert_eq!(categorize("holiday", [("holiday/porn_clip.mp4", 1 << 20)]), "xxx");
    }
}
