//! Decoding bencode into `bt_bencode` values, checked first, and reading typed fields.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};

use super::error::MetainfoError;
use crate::bencode;

/// A bencoded dictionary as `bt_bencode` decodes it.
pub(crate) type Dict = BTreeMap<ByteString, Value>;

/// Structurally checks `bytes`, then decodes them into a `Value`.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, MetainfoError> {
    bencode::check(bytes, bencode::DEFAULT_MAX_DEPTH)?;
    bt_bencode::from_slice(bytes).map_err(decode_error)
}

pub(super) fn decode_error(e: bt_bencode::Error) -> MetainfoError {
    MetainfoError::Decode { offset: e.byte_offset(), reason: e.kind().to_string() }
}

/// An integer value as i64, if it is one and fits.
pub(crate) fn int_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(bt_bencode::value::Number::Signed(n)) => Some(*n),
        Value::Int(bt_bencode::value::Number::Unsigned(n)) => i64::try_from(*n).ok(),
        _ => None,
    }
}
