//! Metainfo tests: torrents made by mktorrent, transmission-create and libtorrent (see
//! `tests/fixtures/README.md`), hand-made oddities, and hostile input.

use crate::bencode::BencodeError;
use std::path::Component;

use sha1::{Digest, Sha1};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $name))
    };
}

const T1: &str = "http://127.0.0.1:6969/announce";
const T2: &str = "http://127.0.0.1:6970/announce";

/// (path joined with '/', length, pad) for every file.
fn listing(m: &Metainfo) -> Vec<(String, u64, bool)> {
    m.info.files.iter().map(|f| (f.path.join("/"), f.length, f.is_pad())).collect()
}

fn owned(v: &[(&str, u64, bool)]) -> Vec<(String, u64, bool)> {
    v.iter().map(|(p, l, pad)| (p.to_string(), *l, *pad)).collect()
}

fn tiers(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter().map(|t| t.iter().map(|s| s.to_string()).collect()).collect()
}

/// Offsets must be the running sum of lengths; total_length their sum.
fn assert_layout_consistent(info: &Info) {
    let mut offset = 0;
    for f in &info.files {
        assert_eq!(f.offset, offset, "{:?}", f.path);
        offset += f.length;
    }
    assert_eq!(offset, info.total_length);
}

#[test]
fn mktorrent_single_file() {
    let m = Metainfo::from_bytes(fixture!("mktorrent-single.torrent")).unwrap();
    assert_eq!(m.info_hash.to_hex(), "6a133460cf23c276ffcb352705f18c73c66e5b51");
    assert_eq!(m.info.name, "single.bin");
    assert!(!m.info.multi_file);
    assert_eq!(listing(&m), owned(&[("single.bin", 70000, false)]));
    assert_eq!(m.info.piece_length, 32768);
    assert_eq!(m.info.piece_count(), 3);
    assert_eq!(m.info.piece_size(0), 32768);
    assert_eq!(m.info.piece_size(2), 70000 - 2 * 32768);
    assert_eq!(m.info.piece_size(3), 0);
    assert!(m.info.piece_hash(2).is_some() && m.info.piece_hash(3).is_none());
    assert_eq!(m.trackers, tiers(&[&[T1]]));
    assert!(!m.info.private);
    assert_eq!(m.comment.as_deref(), Some("shoal fixture"));
    assert_eq!(m.created_by.as_deref(), Some("mktorrent 1.1"));
    assert_eq!(m.creation_date, None);
    assert_eq!(m.info.files[0].relative_path(), std::path::PathBuf::from("single.bin"));
}

#[test]
fn mktorrent_multi_file_with_two_tiers() {
    let m = Metainfo::from_bytes(fixture!("mktorrent-multi.torrent")).unwrap();
    assert_eq!(m.info_hash.to_hex(), "595945db761ebf6a0507c28d50e97b7474b6c91e");
    assert_eq!(m.info.name, "shoal-sample");
    assert!(m.info.multi_file);
    assert_eq!(
        listing(&m),
        owned(&[
            ("shoal-sample/docs/guide.bin", 5000, false),
            ("shoal-sample/docs/nested/deep.dat", 40000, false),
            ("shoal-sample/empty.txt", 0, false),
            ("shoal-sample/one.byte", 1, false),
            ("shoal-sample/readme.txt", 3000, false),
        ])
    );
    assert_layout_consistent(&m.info);
    assert_eq!(m.info.total_length, 48001);
    assert_eq!((m.info.piece_length, m.info.piece_count()), (32768, 2));
    assert_eq!(m.info.piece_size(1), 48001 - 32768);
    assert_eq!(m.trackers, tiers(&[&[T1], &[T2]]));
    assert!(!m.info.private);
    assert_eq!(m.info.files[1].relative_path(), std::path::PathBuf::from("shoal-sample/docs/nested/deep.dat"));
}

#[test]
fn transmission_multi_file() {
    let m = Metainfo::from_bytes(fixture!("transmission-multi.torrent")).unwrap();
    assert_eq!(m.info_hash.to_hex(), "624a3bdfa926807a9ce68d0a90aed013a44c5959");
    assert_eq!(m.info.name, "shoal-sample");
    // transmission-create leaves out the 0-byte file.
    assert_eq!(
        listing(&m),
        owned(&[
            ("shoal-sample/docs/guide.bin", 5000, false),
            ("shoal-sample/docs/nested/deep.dat", 40000, false),
            ("shoal-sample/one.byte", 1, false),
            ("shoal-sample/readme.txt", 3000, false),
        ])
    );
    assert_layout_consistent(&m.info);
    assert_eq!((m.info.piece_length, m.info.piece_count()), (32768, 2));
    assert_eq!(m.trackers, tiers(&[&[T1]]));
    assert!(!m.info.private);
    assert_eq!(m.comment.as_deref(), Some("made by transmission"));
    assert!(m.creation_date.is_some());
}

#[test]
fn libtorrent_v1_only() {
    let m = Metainfo::from_bytes(fixture!("libtorrent-v1.torrent")).unwrap();
    assert_eq!(m.info_hash.to_hex(), "99d4687a43bd37b56a065c06d390f67abfd9bdf9");
    assert_eq!(m.info.name, "shoal-sample");
    assert_eq!(
        listing(&m),
        owned(&[
            ("shoal-sample/readme.txt", 3000, false),
            ("shoal-sample/empty.txt", 0, false),
            ("shoal-sample/one.byte", 1, false),
            ("shoal-sample/docs/nested/deep.dat", 40000, false),
            ("shoal-sample/docs/guide.bin", 5000, false),
        ])
    );
    assert_layout_consistent(&m.info);
    assert_eq!((m.info.piece_length, m.info.piece_count()), (32768, 2));
    assert_eq!(m.trackers, tiers(&[&[T1]]));
    assert!(!m.info.private);
    assert_eq!(m.created_by.as_deref(), Some("libtorrent 2.0.8 (shoal fixture)"));
}

#[test]
fn libtorrent_hybrid_v1_side_with_pad_files() {
    let bytes = fixture!("libtorrent-hybrid.torrent");
    let m = Metainfo::from_bytes(bytes).unwrap();
    assert_eq!(m.info_hash.to_hex(), "b6c0c1e390f02aefc77b50e62cc15cbbe07afc50");
    assert_eq!(m.info.name, "shoal-sample");
    assert_eq!(
        listing(&m),
        owned(&[
            ("shoal-sample/docs/guide.bin", 5000, false),
            ("shoal-sample/.pad/11384", 11384, true),
            ("shoal-sample/docs/nested/deep.dat", 40000, false),
            ("shoal-sample/.pad/9152", 9152, true),
            ("shoal-sample/empty.txt", 0, false),
            ("shoal-sample/one.byte", 1, false),
            ("shoal-sample/.pad/16383", 16383, true),
            ("shoal-sample/readme.txt", 3000, false),
            ("shoal-sample/.pad/13384", 13384, true),
        ])
    );
    assert_layout_consistent(&m.info);
    // Every real, non-empty file starts on a piece boundary: that is what the pads are for.
    for f in m.info.files.iter().filter(|f| !f.is_pad() && f.length > 0) {
        assert_eq!(f.offset % u64::from(m.info.piece_length), 0, "{:?}", f.path);
    }
    assert_eq!(m.info.total_length, 98304);
    assert_eq!((m.info.piece_length, m.info.piece_count()), (16384, 6));
    assert_eq!(m.trackers, tiers(&[&[T1]]));
    // The raw span is the whole `info` value (a hybrid's extra keys included) and hashes right.
    assert_eq!(m.info_bytes.first(), Some(&b'd'));
    assert!(m.info_bytes.windows(9).any(|w| w == b"file tree"));
    assert_eq!(InfoHash(Sha1::digest(&m.info_bytes).into()), m.info_hash);
    assert_eq!(Info::from_bytes(&m.info_bytes).unwrap(), m.info);
}

#[test]
fn libtorrent_private_with_two_tiers() {
    let m = Metainfo::from_bytes(fixture!("libtorrent-private.torrent")).unwrap();
    assert_eq!(m.info_hash.to_hex(), "6855cb77399904b5cda09593fe50aa1c8dd46444");
    assert!(m.info.private);
    assert_eq!(m.trackers, tiers(&[&[T1, T2], &["udp://127.0.0.1:6969/announce"]]));
    assert_eq!(m.comment.as_deref(), Some("private two tiers"));
    assert_eq!(m.info.files.len(), 5);
    assert_eq!((m.info.piece_length, m.info.piece_count()), (32768, 2));
}

#[test]
fn unsorted_keys_hash_the_raw_span() {
    let bytes = fixture!("handmade-unsorted.torrent");
    let m = Metainfo::from_bytes(bytes).unwrap();
    // The hash libtorrent reports for this file.
    assert_eq!(m.info_hash.to_hex(), "6792e2ce3a941d1bc2c0f49c239a5a9f59ea1287");
    let start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    let span = &bytes[start..start + m.info_bytes.len()];
    assert_eq!(span, &m.info_bytes[..]);
    assert_eq!(InfoHash(Sha1::digest(span).into()), m.info_hash);
    assert_eq!(listing(&m), owned(&[("unsorted.bin", 20000, false)]));
    assert_eq!(m.info.piece_count(), 2);
    assert_eq!(m.comment.as_deref(), Some("unsorted keys"));
}

#[test]
fn hostile_fixtures_are_refused() {
    for bytes in [&fixture!("hostile-dotdot.torrent")[..], &fixture!("hostile-absolute.torrent")[..]] {
        let err = Metainfo::from_bytes(bytes).unwrap_err();
        assert!(matches!(err, MetainfoError::UnsafePath { .. }), "{err}");
    }
}

// ---- hand-built torrents -------------------------------------------------------------------

/// Bencodes a byte string.
fn s(b: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", b.len()).into_bytes();
    v.extend_from_slice(b);
    v
}

/// A multi-file torrent with one 10-byte file at `path` (one piece of 16 KiB).
fn multi_with_path(name: &[u8], path: &[&[u8]]) -> Vec<u8> {
    let mut p = b"l".to_vec();
    for c in path {
        p.extend(s(c));
    }
    p.push(b'e');
    let mut v = b"d4:infod5:filesld6:lengthi10e4:path".to_vec();
    v.extend(p);
    v.extend(b"ee4:name");
    v.extend(s(name));
    v.extend(b"12:piece lengthi16384e6:pieces20:");
    v.extend([7u8; 20]);
    v.extend(b"ee");
    v
}

/// A single-file torrent with the given extra info keys (inserted raw, keep them sorted).
fn single(name: &[u8], length: &str, piece_length: &str, pieces: usize) -> Vec<u8> {
    let mut v = b"d4:infod6:length".to_vec();
    v.extend(length.as_bytes());
    v.extend(b"4:name");
    v.extend(s(name));
    v.extend(b"12:piece length");
    v.extend(piece_length.as_bytes());
    v.extend(b"6:pieces");
    v.extend(s(&vec![1u8; pieces]));
    v.extend(b"ee");
    v
}

#[test]
fn hostile_paths_never_escape() {
    let hostile: &[&[&[u8]]] = &[
        &[b"..", b"x"],
        &[b"/etc", b"passwd"],
        &[b"a", b"..", b"..", b"b"],
        &[b"a/../../b"],
        &[b"C:\\x"],
        &[b"C:", b"x"],
        &[b"..\\x"],
        &[b"a\0b"],
        &[b"\\windows"],
        &[b"."],
        &[b"", b""],
        &[],
    ];
    for path in hostile {
        match Metainfo::from_bytes(&multi_with_path(b"ok", path)) {
            Err(MetainfoError::UnsafePath { .. }) => {}
            Err(e) => panic!("{path:?}: unexpected error {e}"),
            Ok(m) => {
                for f in &m.info.files {
                    assert!(
                        f.relative_path().components().all(|c| matches!(c, Component::Normal(_))),
                        "{path:?} gave {:?}",
                        f.relative_path()
                    );
                }
            }
        }
    }
    for name in [&b".."[..], b"/etc", b"C:", b"", b".", b"a/b", b"a\0"] {
        assert!(
            matches!(Metainfo::from_bytes(&multi_with_path(name, &[b"f"])), Err(MetainfoError::UnsafePath { .. })),
            "name {name:?}"
        );
        assert!(Metainfo::from_bytes(&single(name, "i10e", "i16384e", 20)).is_err());
    }
    // Empty components are dropped, not refused; non-UTF-8 is decoded lossily.
    let m = Metainfo::from_bytes(&multi_with_path(b"ok", &[b"", b"d", b"", b"f\xff"])).unwrap();
    assert_eq!(m.info.files[0].path, vec!["ok", "d", "f\u{fffd}"]);
}

#[test]
fn utf8_name_and_path_are_preferred() {
    let mut v = multi_with_path(b"latin", &[b"old"]);
    // Insert path.utf-8 into the file dict and name.utf-8 into info (key order does not matter).
    let at = v.windows(4).position(|w| w == b"4:pa").unwrap();
    v.splice(at..at, b"10:path.utf-8l3:newe".iter().copied());
    let at = v.windows(6).position(|w| w == b"4:name").unwrap();
    v.splice(at..at, b"10:name.utf-85:utf8!".iter().copied());
    let m = Metainfo::from_bytes(&v).unwrap();
    assert_eq!(m.info.name, "utf8!");
    assert_eq!(m.info.files[0].path, vec!["utf8!", "new"]);
}

#[test]
fn validation_errors() {
    use MetainfoError as E;
    let ok = single(b"f", "i10e", "i16384e", 20);
    assert!(Metainfo::from_bytes(&ok).is_ok());
    type Check = fn(&E) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (single(b"f", "i0e", "i16384e", 0), |e| *e == E::NoData),
        (single(b"f", "i10e", "i0e", 20), |e| *e == E::BadPieceLength(0)),
        (single(b"f", "i10e", "i134217729e", 20), |e| matches!(e, E::BadPieceLength(_))),
        (single(b"f", "i10e", "i16384e", 21), |e| *e == E::BadPiecesLength(21)),
        (single(b"f", "i10e", "i16384e", 40), |e| matches!(e, E::PieceCountMismatch { .. })),
        (single(b"f", "i16385e", "i16384e", 20), |e| matches!(e, E::PieceCountMismatch { .. })),
        (single(b"f", "i-1e", "i16384e", 20), |e| matches!(e, E::WrongType { field: "length", .. })),
        (single(b"f", "3:ten", "i16384e", 20), |e| matches!(e, E::WrongType { field: "length", .. })),
        (b"d4:infoi1ee".to_vec(), |e| matches!(e, E::WrongType { field: "info", .. })),
        (b"d4:info4:dxxee".to_vec(), |e| matches!(e, E::WrongType { field: "info", .. })),
        (b"d8:announce3:urle".to_vec(), |e| *e == E::MissingField("info")),
        (b"d4:infod4:name1:xee".to_vec(), |e| *e == E::MissingField("piece length")),
        (b"d4:infod12:piece lengthi1eee".to_vec(), |e| *e == E::MissingField("name")),
        (b"d4:infod12:meta versioni2e4:name1:x12:piece lengthi1eee".to_vec(), |e| *e == E::V2Only),
        (b"li1ee".to_vec(), |e| *e == E::NotADictionary),
        // Two `info` keys: which one would be the torrent? Refused.
        (b"d4:infod4:name1:xe4:infod4:name1:yee".to_vec(), |e| matches!(e, E::Decode { .. })),
    ];
    for (bytes, check) in cases {
        let err = Metainfo::from_bytes(&bytes).unwrap_err();
        assert!(check(&err), "{}: {err}", String::from_utf8_lossy(&bytes));
    }
    // Lengths that overflow u64 when added.
    let mut v = b"d4:infod5:filesl".to_vec();
    for _ in 0..2 {
        v.extend(b"d6:lengthi18446744073709551615e4:pathl1:aee");
    }
    v.extend(b"e4:name1:x12:piece lengthi16384e6:pieces20:");
    v.extend([0u8; 20]);
    v.extend(b"ee");
    assert_eq!(Metainfo::from_bytes(&v).unwrap_err(), E::LengthOverflow);
}

#[test]
fn error_messages_are_readable() {
    let e = Metainfo::from_bytes(b"d4:infod4:name1:xee").unwrap_err();
    assert_eq!(e.to_string(), "missing field `piece length`");
    let e = Metainfo::from_bytes(b"d4:info").unwrap_err();
    assert_eq!(e.to_string(), "truncated bencode: input ends at byte 7 in the middle of a value");
    let e = Metainfo::from_bytes(b"hello").unwrap_err();
    assert_eq!(e.to_string(), "not bencode: unexpected byte 0x68 at byte 0");
}

#[test]
fn garbage_truncation_and_nesting_never_panic() {
    assert_eq!(Metainfo::from_bytes(b""), Err(MetainfoError::Bencode(BencodeError::Empty)));
    let deep = vec![b'l'; 100_000];
    assert!(matches!(Metainfo::from_bytes(&deep), Err(MetainfoError::Bencode(BencodeError::TooDeep { .. }))));
    // Deep but within the limit goes through bt_bencode without trouble.
    let mut nested = b"d4:infod4:name1:x12:piece lengthi1e1:z".to_vec();
    nested.extend(vec![b'l'; 95]);
    nested.extend(vec![b'e'; 95]);
    nested.extend(b"ee");
    assert!(matches!(Metainfo::from_bytes(&nested), Err(MetainfoError::MissingField("pieces"))));
    assert!(Metainfo::from_bytes(b"l18446744073709551615:ae").is_err());
    // Every truncation of every real fixture is refused.
    let fixtures: [&[u8]; 3] = [
        fixture!("libtorrent-hybrid.torrent"),
        fixture!("mktorrent-multi.torrent"),
        fixture!("handmade-unsorted.torrent"),
    ];
    for f in fixtures {
        for cut in 0..f.len() {
            assert!(Metainfo::from_bytes(&f[..cut]).is_err(), "cut at {cut}");
        }
    }
    // Deterministic pseudo-random byte flips of a real torrent: any result, but no panic.
    let base = fixture!("libtorrent-private.torrent");
    let mut x: u32 = 12345;
    for _ in 0..3000 {
        let mut b = base.to_vec();
        for _ in 0..3 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize >> 8) % b.len();
            b[i] = (x >> 3) as u8;
        }
        let _ = Metainfo::from_bytes(&b);
        let _ = Info::from_bytes(&b);
    }
}

#[test]
fn trackers_and_web_seeds_are_cleaned() {
    let mut v = b"d8:announce9:udp://a:1".to_vec();
    v.extend(b"13:announce-listll9:udp://a:10:4:junkel9:udp://a:1ei5el12:http://b:2/ae");
    v.extend(b"e4:info");
    let info = single(b"f", "i10e", "i16384e", 20);
    // Reuse the info dict of `single` (strip its outer "d4:info" and final "e").
    v.extend(&info[7..info.len() - 1]);
    v.extend(b"8:url-listl9:http://w/9:http://w/0:e");
    v.push(b'e');
    let m = Metainfo::from_bytes(&v).unwrap();
    assert_eq!(m.trackers, tiers(&[&["udp://a:1"], &["http://b:2/a"]]));
    assert_eq!(m.url_list, vec!["http://w/".to_string()]);

    // Without announce-list, announce alone; a single url-list string is accepted.
    let mut v = b"d8:announce9:udp://a:14:info".to_vec();
    v.extend(&info[7..info.len() - 1]);
    v.extend(b"8:url-list9:http://w/e");
    let m = Metainfo::from_bytes(&v).unwrap();
    assert_eq!(m.trackers, tiers(&[&["udp://a:1"]]));
    assert_eq!(m.url_list, vec!["http://w/".to_string()]);
}

#[test]
fn bep47_attributes() {
    let v = b"d4:infod5:filesld4:attr2:xh6:lengthi10e4:pathl1:aeed4:attr1:l6:lengthi0e4:pathl1:be12:symlink pathl1:aeee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    let m = Metainfo::from_bytes(v).unwrap();
    let a = &m.info.files[0].attr;
    assert!(a.executable && a.hidden && !a.pad && a.symlink.is_none());
    assert_eq!(m.info.files[1].attr.symlink, Some(vec!["a".to_string()]));
    // A symlink pointing outside is refused like any other path.
    let bad = String::from_utf8_lossy(v).replace("l1:aeee4:name", "l2:..eee4:name");
    assert!(matches!(Metainfo::from_bytes(bad.as_bytes()), Err(MetainfoError::UnsafePath { .. })));
}
