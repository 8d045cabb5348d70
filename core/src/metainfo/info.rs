//! The `info` dictionary: name, pieces, and the files laid end to end.

use std::path::PathBuf;

use bt_bencode::value::Number;
use bt_bencode::Value;

use super::error::{MetainfoError, MAX_FILES, MAX_PIECES, MAX_PIECE_LENGTH};
use super::path::{decode, sanitise_name, sanitise_path};
use super::value::{decode_value, int_as_i64, Dict};
use crate::types::PieceHash;

/// The v1 `info` dictionary of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name (file name or top directory), sanitised.
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// SHA-1 of each piece.
    pub pieces: Vec<PieceHash>,
    /// Files in torrent order, pad files included (and flagged).
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths, pad files included.
    pub total_length: u64,
    /// BEP 27 private flag: peers only from the torrent's trackers.
    pub private: bool,
    /// Whether the torrent has a `files` list (a directory) rather than one `length`.
    pub multi_file: bool,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Safe components relative to the download directory, torrent name first.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's concatenated data.
    pub offset: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
}

/// BEP 47 file attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileAttr {
    /// `p`: padding to align the next file to a piece boundary; never written to disk.
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l` with `symlink path`: the link target, safe components relative to the torrent's root
    /// (as stored in the torrent).
    pub symlink: Option<Vec<String>>,
}

impl FileEntry {
    /// Whether this is a BEP 47 pad file.
    pub fn is_pad(&self) -> bool {
        self.attr.pad
    }

    /// The path relative to the download directory; only `Normal` components, by construction.
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }
}

impl Info {
    /// Parses a raw `info` dictionary (e.g. one received over ut_metadata).
    pub fn from_bytes(info_bytes: &[u8]) -> Result<Info, MetainfoError> {
        Info::from_value(&decode_value(info_bytes)?)
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        // Bounded by MAX_PIECES at parse time, so it fits.
        self.pieces.len() as u32
    }

    /// Length of `piece` in bytes: `piece_length` except for a shorter last piece; 0 past the end.
    pub fn piece_size(&self, piece: u32) -> u32 {
        let count = self.piece_count();
        if piece >= count {
            return 0;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        // Parse-time checks make start < total_length and the rest at most piece_length.
        self.total_length.saturating_sub(start).min(u64::from(self.piece_length)) as u32
    }

    /// The SHA-1 of `piece`, if it exists.
    pub fn piece_hash(&self, piece: u32) -> Option<&PieceHash> {
        self.pieces.get(piece as usize)
    }

    /// Builds an `Info` from an already decoded `info` value.
    pub(crate) fn from_value(v: &Value) -> Result<Info, MetainfoError> {
        let Value::Dict(d) = v else {
            return Err(MetainfoError::WrongType { field: "info", expected: "dictionary" });
        };
        let name = match d.get(&b"name.utf-8"[..]) {
            Some(Value::ByteStr(s)) => decode(s),
            _ => decode(bytes_field(d, "name")?),
        };
        let name = sanitise_name(name)?;

        let piece_length = uint_field(d, "piece length")?;
        if piece_length == 0 || piece_length > u64::from(MAX_PIECE_LENGTH) {
            return Err(MetainfoError::BadPieceLength(piece_length));
        }
        let piece_length = piece_length as u32; // range-checked just above

        let pieces = match d.get(&b"pieces"[..]) {
            None if matches!(d.get(&b"meta version"[..]), Some(Value::Int(Number::Unsigned(2)))) => {
                return Err(MetainfoError::V2Only)
            }
            _ => bytes_field(d, "pieces")?,
        };
        if pieces.len() % 20 != 0 {
            return Err(MetainfoError::BadPiecesLength(pieces.len()));
        }
        if pieces.len() / 20 > MAX_PIECES {
            return Err(MetainfoError::TooManyPieces(pieces.len() / 20));
        }
        let pieces: Vec<PieceHash> = pieces
            .chunks_exact(20)
            .map(|c| {
                let mut h = [0u8; 20];
                h.copy_from_slice(c);
                h
            })
            .collect();

        let multi_file = d.contains_key(&b"files"[..]);
        let files = if multi_file {
            multi_files(d, &name)?
        } else {
            let length = uint_field(d, "length")?;
            vec![FileEntry { path: vec![name.clone()], length, offset: 0, attr: file_attr(d)? }]
        };
        let total_length = files.last().map_or(0, |f| f.offset.saturating_add(f.length));
        // multi_files / the single entry never overflow: offsets are checked_add'ed below.
        if total_length == 0 {
            return Err(MetainfoError::NoData);
        }
        let expected = total_length.div_ceil(u64::from(piece_length));
        if expected != pieces.len() as u64 {
            return Err(MetainfoError::PieceCountMismatch { got: pieces.len(), expected, total_length, piece_length });
        }
        let private = d.get(&b"private"[..]).and_then(int_as_i64).is_some_and(|p| p != 0);
        Ok(Info { name, piece_length, pieces, files, total_length, private, multi_file })
    }
}

/// The `files` list of a multi-file torrent, with offsets.
fn multi_files(d: &Dict, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
    let Some(Value::List(list)) = d.get(&b"files"[..]) else {
        return Err(MetainfoError::WrongType { field: "files", expected: "list" });
    };
    if list.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles(list.len()));
    }
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for entry in list {
        let Value::Dict(f) = entry else {
            return Err(MetainfoError::WrongType { field: "files", expected: "list of dictionaries" });
        };
        let length = uint_field(f, "length")?;
        let components = match f.get(&b"path.utf-8"[..]) {
            Some(p @ Value::List(_)) => string_list(p, "path.utf-8")?,
            _ => string_list(f.get(&b"path"[..]).ok_or(MetainfoError::MissingField("path"))?, "path")?,
        };
        let mut path = vec![name.to_string()];
        path.extend(sanitise_path(components)?);
        files.push(FileEntry { path, length, offset, attr: file_attr(f)? });
        offset = offset.checked_add(length).ok_or(MetainfoError::LengthOverflow)?;
    }
    Ok(files)
}

/// BEP 47 `attr` (and `symlink path`) of a file dictionary (or of `info` for single-file).
fn file_attr(d: &Dict) -> Result<FileAttr, MetainfoError> {
    let flags: &[u8] = match d.get(&b"attr"[..]) {
        Some(Value::ByteStr(s)) => s,
        _ => b"",
    };
    let symlink = match d.get(&b"symlink path"[..]) {
        Some(target) if flags.contains(&b'l') => Some(sanitise_path(string_list(target, "symlink path")?)?),
        // A link without a target is treated as a regular file, as libtorrent does.
        _ => None,
    };
    Ok(FileAttr {
        pad: flags.contains(&b'p'),
        executable: flags.contains(&b'x'),
        hidden: flags.contains(&b'h'),
        symlink,
    })
}

/// A required byte-string field.
fn bytes_field<'a>(d: &'a Dict, field: &'static str) -> Result<&'a [u8], MetainfoError> {
    match d.get(field.as_bytes()) {
        Some(Value::ByteStr(s)) => Ok(s),
        Some(_) => Err(MetainfoError::WrongType { field, expected: "byte string" }),
        None => Err(MetainfoError::MissingField(field)),
    }
}

/// A required non-negative integer field.
fn uint_field(d: &Dict, field: &'static str) -> Result<u64, MetainfoError> {
    match d.get(field.as_bytes()) {
        Some(Value::Int(Number::Unsigned(n))) => Ok(*n),
        Some(Value::Int(Number::Signed(n))) if *n >= 0 => Ok(*n as u64),
        Some(_) => Err(MetainfoError::WrongType { field, expected: "non-negative integer" }),
        None => Err(MetainfoError::MissingField(field)),
    }
}

/// A list of byte strings, decoded lossily.
fn string_list(v: &Value, field: &'static str) -> Result<Vec<String>, MetainfoError> {
    let wrong = MetainfoError::WrongType { field, expected: "list of byte strings" };
    let Value::List(items) = v else {
        return Err(wrong);
    };
    items
        .iter()
        .map(|c| match c {
            Value::ByteStr(s) => Ok(decode(s)),
            _ => Err(wrong.clone()),
        })
        .collect()
}
