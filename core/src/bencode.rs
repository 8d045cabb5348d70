//! A strict structural check of bencode, run before any input reaches `bt_bencode`.
//!
//! `bt_bencode` (0.8.2) is the project's bencode crate, but on hostile input it can panic or
//! overflow the stack: it recurses once per nesting level with no limit (100k `l`s abort the
//! process), and a byte-string length near `usize::MAX` overflows its offset arithmetic
//! (`attempt to add with overflow` in debug, an out-of-range slice in release). [`check`] walks
//! the input iteratively, with checked arithmetic and a depth limit, and accepts only one
//! complete, well-formed value with nothing after it. Once it has passed, `bt_bencode` sees
//! input it handles safely. Every decoder of untrusted bencode (metainfo, tracker responses,
//! KRPC, ut_metadata) should call it first.
//!
//! It deliberately does not insist on sorted dictionary keys: real torrents with unsorted keys
//! exist and libtorrent accepts them.

/// Nesting depth accepted by default; libtorrent's default limit is 100 too.
pub const DEFAULT_MAX_DEPTH: usize = 100;

/// Why a byte sequence is not acceptable bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    /// There were no bytes at all.
    #[error("empty input")]
    Empty,
    /// The input ends in the middle of a value.
    #[error("truncated bencode: input ends at byte {offset} in the middle of a value")]
    Truncated {
        /// Length of the input.
        offset: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("not bencode: unexpected byte 0x{byte:02x} at byte {offset}")]
    Unexpected {
        /// Where the byte is.
        offset: usize,
        /// The byte itself.
        byte: u8,
    },
    /// An integer that is not `i`, an optional `-`, digits and `e`.
    #[error("not bencode: malformed integer at byte {offset}")]
    BadInteger {
        /// Where the integer starts.
        offset: usize,
    },
    /// A byte-string length prefix that is too large or not followed by `:`.
    #[error("not bencode: bad byte-string length at byte {offset}")]
    BadLength {
        /// Where the length starts.
        offset: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("not bencode: dictionary key at byte {offset} is not a byte string")]
    KeyNotString {
        /// Where the key starts.
        offset: usize,
    },
    /// Lists and dictionaries nested deeper than allowed.
    #[error("bencode nested deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Where the level that went over the limit starts.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Bytes after the end of the one top-level value.
    #[error("trailing data after the bencoded value at byte {offset}")]
    TrailingData {
        /// Where the extra bytes start.
        offset: usize,
    },
}

/// What an open container expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Inside a list: a value or `e`.
    List,
    /// Inside a dictionary: a key (byte string) or `e`.
    DictKey,
    /// Inside a dictionary after a key: its value.
    DictValue,
}

/// Checks that `bytes` is exactly one well-formed bencoded value nested at most `max_depth`
/// levels deep. Runs in linear time and constant stack.
pub fn check(bytes: &[u8], max_depth: usize) -> Result<(), BencodeError> {
    if bytes.is_empty() {
        return Err(BencodeError::Empty);
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut pos = 0usize;
    loop {
        let Some(&byte) = bytes.get(pos) else {
            return Err(BencodeError::Truncated { offset: bytes.len() });
        };
        let top = stack.last().copied();
        if byte == b'e' && matches!(top, Some(Open::List | Open::DictKey)) {
            stack.pop();
            pos += 1;
        } else if top == Some(Open::DictKey) {
            if !byte.is_ascii_digit() {
                return Err(BencodeError::KeyNotString { offset: pos });
            }
            pos = skip_string(bytes, pos)?;
            // The key is in; the value comes next (there is always a top here).
            if let Some(t) = stack.last_mut() {
                *t = Open::DictValue;
            }
            continue;
        } else {
            match byte {
                b'i' => pos = skip_integer(bytes, pos)?,
                b'0'..=b'9' => pos = skip_string(bytes, pos)?,
                b'l' | b'd' => {
                    if stack.len() >= max_depth {
                        return Err(BencodeError::TooDeep { offset: pos, limit: max_depth });
                    }
                    complete_value(&mut stack);
                    stack.push(if byte == b'l' { Open::List } else { Open::DictKey });
                    pos += 1;
                    continue;
                }
                _ => return Err(BencodeError::Unexpected { offset: pos, byte }),
            }
        }
        // A whole value (scalar or closed container) was just consumed.
        complete_value(&mut stack);
        if stack.is_empty() {
            return if pos == bytes.len() { Ok(()) } else { Err(BencodeError::TrailingData { offset: pos }) };
        }
    }
}

/// Records that the open dictionary (if that is what is on top) got the value it waited for.
fn complete_value(stack: &mut [Open]) {
    if let Some(top) = stack.last_mut() {
        if *top == Open::DictValue {
            *top = Open::DictKey;
        }
    }
}

/// Skips `i<digits>e` (with an optional minus) starting at `start`; returns the next offset.
fn skip_integer(bytes: &[u8], start: usize) -> Result<usize, BencodeError> {
    let mut pos = start + 1;
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    let digits_start = pos;
    while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    match bytes.get(pos) {
        None => Err(BencodeError::Truncated { offset: bytes.len() }),
        // More than 20 digits cannot fit in 64 bits; the decoder would refuse it anyway.
        Some(b'e') if pos > digits_start && pos - digits_start <= 20 => Ok(pos + 1),
        Some(_) => Err(BencodeError::BadInteger { offset: start }),
    }
}

/// Skips `<len>:<bytes>` starting at `start`; returns the next offset.
fn skip_string(bytes: &[u8], start: usize) -> Result<usize, BencodeError> {
    let mut pos = start;
    let mut len: usize = 0;
    while let Some(&d) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(d - b'0')))
            .ok_or(BencodeError::BadLength { offset: start })?;
        pos += 1;
    }
    match bytes.get(pos) {
        None => return Err(BencodeError::Truncated { offset: bytes.len() }),
        Some(b':') => pos += 1,
        Some(_) => return Err(BencodeError::BadLength { offset: start }),
    }
    let end = pos.checked_add(len).ok_or(BencodeError::BadLength { offset: start })?;
    if end > bytes.len() {
        return Err(BencodeError::Truncated { offset: bytes.len() });
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(b: &[u8]) -> bool {
        check(b, DEFAULT_MAX_DEPTH).is_ok()
    }

    #[test]
    fn accepts_well_formed_values() {
        for good in [
            &b"i0e"[..],
            b"i-42e",
            b"0:",
            b"4:spam",
            b"le",
            b"de",
            b"l4:spami3ee",
            b"d3:cow3:moo4:spam4:eggse",
            b"d4:spaml1:a1:bee",
            // Unsorted keys are fine.
            b"d1:b1:x1:a1:ye",
            b"lllleeee",
        ] {
            assert!(ok(good), "{:?}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn refuses_malformed_values_with_offsets() {
        assert_eq!(check(b"", 10), Err(BencodeError::Empty));
        assert_eq!(check(b"4:sp", 10), Err(BencodeError::Truncated { offset: 4 }));
        assert_eq!(check(b"l4:spam", 10), Err(BencodeError::Truncated { offset: 7 }));
        assert_eq!(check(b"i12", 10), Err(BencodeError::Truncated { offset: 3 }));
        assert_eq!(check(b"ie", 10), Err(BencodeError::BadInteger { offset: 0 }));
        assert_eq!(check(b"i-e", 10), Err(BencodeError::BadInteger { offset: 0 }));
        assert_eq!(check(b"i1x2e", 10), Err(BencodeError::BadInteger { offset: 0 }));
        assert_eq!(check(b"d i1e", 10), Err(BencodeError::KeyNotString { offset: 1 }));
        assert_eq!(check(b"di1ei2ee", 10), Err(BencodeError::KeyNotString { offset: 1 }));
        assert_eq!(check(b"i1ei2e", 10), Err(BencodeError::TrailingData { offset: 3 }));
        assert_eq!(check(b"x", 10), Err(BencodeError::Unexpected { offset: 0, byte: b'x' }));
        assert_eq!(check(b"4x", 10), Err(BencodeError::BadLength { offset: 0 }));
        // A dictionary whose last key has no value.
        assert_eq!(check(b"d1:ae", 10), Err(BencodeError::Unexpected { offset: 4, byte: b'e' }));
    }

    #[test]
    fn refuses_lengths_that_would_overflow() {
        assert_eq!(check(b"l18446744073709551615:ae", 10), Err(BencodeError::BadLength { offset: 1 }));
        assert_eq!(check(b"99999999999999999999999999:a", 10), Err(BencodeError::BadLength { offset: 0 }));
        assert!(check(b"l18446744073709551614:ae", 10).is_err());
        assert!(check(b"i123456789012345678901234e", 10).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = vec![b'l'; 100_000];
        assert_eq!(check(&deep, 100), Err(BencodeError::TooDeep { offset: 100, limit: 100 }));
        let mut exact = vec![b'l'; 100];
        exact.extend(vec![b'e'; 100]);
        assert!(check(&exact, 100).is_ok());
        let mut dicts = Vec::new();
        for _ in 0..100_000 {
            dicts.extend_from_slice(b"d1:a");
        }
        assert!(matches!(check(&dicts, 100), Err(BencodeError::TooDeep { .. })));
    }

    #[test]
    fn every_prefix_of_a_value_is_refused() {
        let full = b"d8:announce3:url4:infod4:name1:x6:lengthi5eee";
        assert!(ok(full));
        for cut in 0..full.len() {
            assert!(!ok(&full[..cut]), "prefix {cut} accepted");
        }
    }
}
