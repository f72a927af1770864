//! Pure PostgreSQL wire protocol (version 3): the streaming frame decoder, the length back-patching
//! encoder and the tag constants; typed lazy views and builders live in the submodules.
//!
//! No IO, no tokio, no logging. Every length read from the wire is checked against a limit before
//! anything is reserved, and nothing here panics on hostile input.
//!
//! Text fields are raw bytes in the connection's `client_encoding`: the pooler never transcodes, so
//! views hand out `&[u8]` and builders take anything that is `AsRef<[u8]>` (`&str` included).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod backend;
pub mod frontend;
mod reader;
pub mod startup;
pub mod walk;

#[cfg(any(fuzzing, test))]
mod fuzz;
#[cfg(any(fuzzing, test))]
pub use fuzz::{fuzz_backend, fuzz_entry, fuzz_frame_decoder, fuzz_frontend, fuzz_startup};

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes before a tagged message's body: the tag and the Int32 length.
pub const HEADER_LEN: usize = 5;

/// PgBouncer's default `max_packet_size`: the largest message (tag included) we let through.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = i32::MAX as usize;

/// How much the decoder reserves ahead for an incomplete message. Memory then grows with the
/// bytes a peer actually sends, not with the length it claims.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Message tags: the first byte of every message after the startup phase.
///
/// Frontend and backend reuse the same letters with different meanings (`C` is Close from a
/// client, CommandComplete from a server), hence two namespaces.
pub mod tag {
    /// Client → server tags ("Message Formats" in the PostgreSQL docs).
    pub mod frontend {
        /// Bind.
        pub const BIND: u8 = b'B';
        /// Close.
        pub const CLOSE: u8 = b'C';
        /// CopyData (both directions).
        pub const COPY_DATA: u8 = b'd';
        /// CopyDone (both directions).
        pub const COPY_DONE: u8 = b'c';
        /// CopyFail.
        pub const COPY_FAIL: u8 = b'f';
        /// Describe.
        pub const DESCRIBE: u8 = b'D';
        /// Execute.
        pub const EXECUTE: u8 = b'E';
        /// Flush.
        pub const FLUSH: u8 = b'H';
        /// FunctionCall.
        pub const FUNCTION_CALL: u8 = b'F';
        /// Parse.
        pub const PARSE: u8 = b'P';
        /// Query (simple query protocol).
        pub const QUERY: u8 = b'Q';
        /// Sync.
        pub const SYNC: u8 = b'S';
        /// Terminate.
        pub const TERMINATE: u8 = b'X';
        /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse all share this tag;
        /// which one it is depends on the authentication exchange in progress.
        pub const PASSWORD_MESSAGE: u8 = b'p';
        /// SASLInitialResponse (same tag as PasswordMessage).
        pub const SASL_INITIAL_RESPONSE: u8 = PASSWORD_MESSAGE;
        /// SASLResponse (same tag as PasswordMessage).
        pub const SASL_RESPONSE: u8 = PASSWORD_MESSAGE;
        /// GSSResponse (same tag as PasswordMessage).
        pub const GSS_RESPONSE: u8 = PASSWORD_MESSAGE;
    }

    /// Server → client tags ("Message Formats" in the PostgreSQL docs).
    pub mod backend {
        /// Authentication* (the Int32 code that follows says which).
        pub const AUTHENTICATION: u8 = b'R';
        /// BackendKeyData.
        pub const BACKEND_KEY_DATA: u8 = b'K';
        /// BindComplete.
        pub const BIND_COMPLETE: u8 = b'2';
        /// CloseComplete.
        pub const CLOSE_COMPLETE: u8 = b'3';
        /// CommandComplete.
        pub const COMMAND_COMPLETE: u8 = b'C';
        /// CopyData (both directions).
        pub const COPY_DATA: u8 = b'd';
        /// CopyDone (both directions).
        pub const COPY_DONE: u8 = b'c';
        /// CopyInResponse.
        pub const COPY_IN_RESPONSE: u8 = b'G';
        /// CopyOutResponse.
        pub const COPY_OUT_RESPONSE: u8 = b'H';
        /// CopyBothResponse (replication).
        pub const COPY_BOTH_RESPONSE: u8 = b'W';
        /// DataRow.
        pub const DATA_ROW: u8 = b'D';
        /// EmptyQueryResponse.
        pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
        /// ErrorResponse.
        pub const ERROR_RESPONSE: u8 = b'E';
        /// FunctionCallResponse.
        pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
        /// NegotiateProtocolVersion.
        pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
        /// NoData.
        pub const NO_DATA: u8 = b'n';
        /// NoticeResponse.
        pub const NOTICE_RESPONSE: u8 = b'N';
        /// NotificationResponse (LISTEN/NOTIFY).
        pub const NOTIFICATION_RESPONSE: u8 = b'A';
        /// ParameterDescription.
        pub const PARAMETER_DESCRIPTION: u8 = b't';
        /// ParameterStatus.
        pub const PARAMETER_STATUS: u8 = b'S';
        /// ParseComplete.
        pub const PARSE_COMPLETE: u8 = b'1';
        /// PortalSuspended.
        pub const PORTAL_SUSPENDED: u8 = b's';
        /// ReadyForQuery: the transaction boundary the pool modes act on.
        pub const READY_FOR_QUERY: u8 = b'Z';
        /// RowDescription.
        pub const ROW_DESCRIPTION: u8 = b'T';
    }
}

/// Why bytes from a peer are not a valid message. Produced only for input that came off a socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A length field smaller than the bytes it must at least cover.
    #[error("invalid message length {len} (tag {tag:?})")]
    LengthTooShort {
        /// The message tag, `None` for startup-phase messages.
        tag: Option<u8>,
        /// The length field as sent.
        len: u32,
    },
    /// A message larger than the configured limit (checked before any allocation).
    #[error("message of {len} bytes exceeds the limit of {max} (tag {tag:?})")]
    TooLarge {
        /// The message tag, `None` for startup-phase messages.
        tag: Option<u8>,
        /// The claimed size.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The body ended in the middle of a field.
    #[error("{message} message is truncated")]
    Truncated {
        /// The message kind being parsed.
        message: &'static str,
    },
    /// The body has bytes after its last field.
    #[error("{message} message has trailing bytes")]
    TrailingBytes {
        /// The message kind being parsed.
        message: &'static str,
    },
    /// A field that must be UTF-8 is not.
    #[error("{message} message has a field that is not valid UTF-8")]
    InvalidUtf8 {
        /// The message kind being parsed.
        message: &'static str,
    },
    /// A field holds a value the protocol does not allow (unknown code, negative count, ...).
    #[error("{message} message has an invalid {field}")]
    InvalidField {
        /// The message kind being parsed.
        message: &'static str,
        /// The offending field.
        field: &'static str,
    },
    /// A tag this direction of the protocol does not define.
    #[error("unknown message tag {tag:#04x}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
    },
    /// A startup packet asking for a protocol major version other than 3.
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol {
        /// Requested major version.
        major: u16,
        /// Requested minor version.
        minor: u16,
    },
}

/// Why a builder refused to write a message. The buffer is left as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A NUL byte inside a value sent as a NUL-terminated string.
    #[error("{field} contains a NUL byte")]
    NulInString {
        /// The field that held it.
        field: &'static str,
    },
    /// The message would not fit its length field or a protocol limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The size it would have had.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A count or value outside what the protocol can carry.
    #[error("invalid {field}")]
    InvalidField {
        /// The offending field.
        field: &'static str,
    },
}

/// One tagged message: its tag and its body (the length word stripped). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message tag, one of the [`tag`] constants.
    pub tag: u8,
    /// The body after the length word.
    pub body: Bytes,
}

impl Frame {
    /// A frame from its parts.
    pub fn new(tag: u8, body: impl Into<Bytes>) -> Self {
        Self {
            tag,
            body: body.into(),
        }
    }

    /// Bytes this frame takes on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Writes the frame back in wire format, byte-identical to what was decoded.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_message(buf, self.tag, |b| {
            b.put_slice(&self.body);
            Ok(())
        })
    }
}

/// Decodes one tagged message from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` is then untouched apart from capacity reserved
/// for the rest of the message. `max_len` limits the whole message, tag byte included, as
/// PgBouncer's `max_packet_size` does. The length is checked before anything is reserved.
pub fn decode_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, DecodeError> {
    let Some(&[tag, a, b, c, d]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    if len < 4 {
        return Err(DecodeError::LengthTooShort {
            tag: Some(tag),
            len,
        });
    }
    // u32 → usize cannot truncate on the 32/64-bit targets we build for. The wire length is an
    // Int32, so anything above i32::MAX is a negative length and never acceptable.
    let total = len as usize + 1;
    let max_len = max_len.min(i32::MAX as usize + 1);
    if total > max_len {
        return Err(DecodeError::TooLarge {
            tag: Some(tag),
            len: total,
            max: max_len,
        });
    }
    let Some(body) = buf.get(HEADER_LEN..total) else {
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    };
    // Copied out rather than split off, as a startup packet is (`startup::decode_startup`):
    // the frames decoded here are a login's and the admin console's, small and few.
    let body = Bytes::copy_from_slice(body);
    buf.advance(total);
    Ok(Some(Frame { tag, body }))
}

/// Appends one tagged message: writes the tag and a placeholder length, lets `body` write the
/// body, then back-patches the length. On error the buffer is truncated back to where it was.
pub fn put_message<F>(buf: &mut BytesMut, tag: u8, body: F) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    let start = buf.len();
    buf.put_u8(tag);
    put_length_prefixed(buf, start, start + 1, i32::MAX as usize, body)
}

/// Appends one untagged (startup-phase) message whose length word may not exceed `max`.
pub(crate) fn put_untagged<F>(buf: &mut BytesMut, max: usize, body: F) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    let start = buf.len();
    put_length_prefixed(buf, start, start, max, body)
}

/// Appends a message that cannot fail: fixed layout, no strings.
pub(crate) fn put_fixed(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    buf.reserve(HEADER_LEN + body.len());
    buf.put_u8(tag);
    // Bodies passed here are a few bytes long; the sum always fits an i32.
    buf.put_u32(4 + body.len() as u32);
    buf.put_slice(body);
}

fn put_length_prefixed<F>(
    buf: &mut BytesMut,
    start: usize,
    len_pos: usize,
    max: usize,
    body: F,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    buf.put_u32(0);
    let written = body(buf).and_then(|()| {
        let len = buf.len() - len_pos;
        match u32::try_from(len) {
            Ok(len32) if len <= max => Ok(len32),
            _ => Err(EncodeError::TooLarge { len, max }),
        }
    });
    match written {
        Ok(len) => {
            if let Some(slot) = buf.get_mut(len_pos..len_pos + 4) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Writes `value` followed by a NUL terminator; refuses values with an embedded NUL.
pub(crate) fn put_cstr(
    buf: &mut BytesMut,
    value: &[u8],
    field: &'static str,
) -> Result<(), EncodeError> {
    if value.contains(&0) {
        return Err(EncodeError::NulInString { field });
    }
    buf.put_slice(value);
    buf.put_u8(0);
    Ok(())
}

/// A count written as the protocol's Int16 (read back as unsigned, as PostgreSQL does).
pub(crate) fn put_count(
    buf: &mut BytesMut,
    n: usize,
    field: &'static str,
) -> Result<(), EncodeError> {
    let n = u16::try_from(n).map_err(|_| EncodeError::InvalidField { field })?;
    buf.put_u16(n);
    Ok(())
}

/// Writes an Int32 length and the bytes, or -1 for NULL (Bind parameters, DataRow cells).
pub(crate) fn put_nullable(buf: &mut BytesMut, value: Option<&[u8]>) -> Result<(), EncodeError> {
    match value {
        None => buf.put_i32(-1),
        Some(v) => {
            let len = i32::try_from(v.len()).map_err(|_| EncodeError::TooLarge {
                len: v.len(),
                max: i32::MAX as usize,
            })?;
            buf.put_i32(len);
            buf.put_slice(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
