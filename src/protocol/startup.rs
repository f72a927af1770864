//! Untagged startup-phase messages: StartupMessage, SSLRequest, GSSENCRequest and CancelRequest.
//!
//! They share one shape (Int32 length, Int32 code, body) and the same 10,000-byte cap PostgreSQL
//! enforces (`MAX_STARTUP_PACKET_LENGTH`), checked before anything is buffered. Pure: no IO.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::reader::Reader;
use super::{DecodeError, EncodeError, put_cstr, put_untagged};

/// PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`: the largest startup packet body after the length word.
pub const MAX_STARTUP_PACKET_LENGTH: usize = 10_000;

/// Protocol 3.0, the version every supported client speaks.
pub const PROTOCOL_3_0: u32 = 3 << 16;
/// Protocol 3.2 (PostgreSQL 18): longer cancel keys.
pub const PROTOCOL_3_2: u32 = (3 << 16) | 2;

/// The code of an SSLRequest (`1234 << 16 | 5679`).
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// The code of a GSSENCRequest (`1234 << 16 | 5680`).
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// The code of a CancelRequest (`1234 << 16 | 5678`).
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;

/// Shortest cancel key: the 4 bytes of protocol 3.0.
pub const MIN_CANCEL_KEY_LEN: usize = 4;
/// Longest cancel key protocol 3.2 allows.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

const REQUEST_LEN: u32 = 8;
const MESSAGE: &str = "StartupMessage";

/// A decoded startup-phase message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Client asks for TLS; answer one byte `S` or `N`.
    SslRequest,
    /// Client asks for GSSAPI encryption; answer one byte `G` or `N`.
    GssEncRequest,
    /// Cancel the query running on another connection.
    CancelRequest(CancelRequest),
    /// Start a session.
    StartupMessage(StartupMessage),
}

/// A CancelRequest: the target's BackendKeyData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Process id from BackendKeyData.
    pub process_id: i32,
    /// Secret key, 4 bytes in protocol 3.0 and up to 256 in 3.2.
    pub secret_key: Bytes,
}

/// A StartupMessage: protocol version and the session parameters, in the client's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    /// Requested protocol version (major in the high 16 bits); the major is always 3.
    pub protocol_version: u32,
    /// The name/value pairs as the packet carries them, each NUL-terminated, without the list's
    /// final empty name; checked (shape and UTF-8) once, when decoded, then read in place: a
    /// login costs no allocation per parameter.
    params: Box<str>,
}

impl StartupMessage {
    /// A message carrying `params` (`user`, `database`, ...): names must be non-empty and
    /// nothing may contain NUL.
    pub fn new<'p>(
        protocol_version: u32,
        params: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Result<Self, EncodeError> {
        // Encoded as a client would send it, so the same checks apply; the length word, the
        // version and the list's final NUL are then dropped.
        let mut packet = BytesMut::new();
        startup_message(&mut packet, protocol_version, params)?;
        let area = packet
            .get(8..packet.len().saturating_sub(1))
            .unwrap_or_default();
        Ok(StartupMessage {
            protocol_version,
            // Built from `&str`s and NULs: always UTF-8, so nothing is ever replaced.
            params: String::from_utf8_lossy(area).into(),
        })
    }

    /// The parameters (`user`, `database`, `options`, `replication`, `application_name`, ...)
    /// in the client's order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        // Plain byte searches, as the parts are a few bytes each (a `str::split` on NUL cost
        // several times more per login, `memchr` no less): NUL is ASCII, so every cut is a char
        // boundary.
        let mut rest: &str = &self.params;
        let mut next = move || {
            let end = rest.bytes().position(|b| b == 0)?;
            let part = rest.get(..end)?;
            rest = rest.get(end + 1..)?;
            Some(part)
        };
        std::iter::from_fn(move || Some((next()?, next()?)))
    }

    /// The value of parameter `name`, if the client sent it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The `user` parameter (required by PostgreSQL).
    pub fn user(&self) -> Option<&str> {
        self.param("user")
    }

    /// The `user` and `database` parameters, read in one pass (the first of each, as
    /// [`StartupMessage::param`]); PostgreSQL defaults the database to the user name.
    pub fn user_and_database(&self) -> (Option<&str>, Option<&str>) {
        let (mut user, mut database) = (None, None);
        for (name, value) in self.params() {
            match name {
                "user" => user = user.or(Some(value)),
                "database" => database = database.or(Some(value)),
                _ => {}
            }
        }
        (user, database)
    }

    /// Writes this message, e.g. to forward a login to a server.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        startup_message(buf, self.protocol_version, self.params())
    }
}

/// Decodes one startup-phase message from the front of `buf`; `Ok(None)` means incomplete.
///
/// The length is checked against [`MAX_STARTUP_PACKET_LENGTH`] before anything is reserved.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<Startup>, DecodeError> {
    let Some(&[a, b, c, d]) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    if len < REQUEST_LEN {
        return Err(DecodeError::LengthTooShort { tag: None, len });
    }
    // u32 → usize cannot truncate on the targets we build for.
    let total = len as usize;
    if total - 4 > MAX_STARTUP_PACKET_LENGTH {
        return Err(DecodeError::TooLarge {
            tag: None,
            len: total,
            max: MAX_STARTUP_PACKET_LENGTH + 4,
        });
    }
    let Some(packet) = buf.get(4..total) else {
        buf.reserve(total - buf.len());
        return Ok(None);
    };
    // What is kept (a few dozen bytes as a rule, 10,000 at most) is copied out rather than
    // split off: a split turns the connection's read buffer into a shared one, whose every later
    // split and drop is an atomic reference count (and the first an allocation).
    let startup = parse_startup(packet);
    buf.advance(total);
    startup.map(Some)
}

fn parse_startup(body: &[u8]) -> Result<Startup, DecodeError> {
    let mut r = Reader::new(body, MESSAGE);
    match r.u32()? {
        SSL_REQUEST_CODE => r.finish().map(|()| Startup::SslRequest),
        GSSENC_REQUEST_CODE => r.finish().map(|()| Startup::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let process_id = r.i32()?;
            let key = r.rest();
            if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
                return Err(DecodeError::InvalidField {
                    message: "CancelRequest",
                    field: "secret key length",
                });
            }
            let secret_key = Bytes::copy_from_slice(key);
            Ok(Startup::CancelRequest(CancelRequest {
                process_id,
                secret_key,
            }))
        }
        version => {
            let (major, minor) = ((version >> 16) as u16, version as u16);
            if major != 3 {
                return Err(DecodeError::UnsupportedProtocol { major, minor });
            }
            let area = r.rest();
            check_params(area)?;
            // Without the terminating empty name (check_params saw it is there).
            let params = pairs_text(area.split_last().map_or(&[][..], |(_, pairs)| pairs))?;
            Ok(Startup::StartupMessage(StartupMessage {
                protocol_version: version,
                params,
            }))
        }
    }
}

/// Checks name/value pairs up to the empty name, which must be the packet's last byte (as
/// PostgreSQL's "expected terminator as last byte" check).
fn check_params(area: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(area, MESSAGE);
    loop {
        if r.cstr()?.is_empty() {
            break;
        }
        r.cstr()?;
    }
    r.finish()
}

/// The checked pairs as text, every one of them UTF-8. One check covers them all:
/// NUL-separated parts of valid UTF-8 are valid UTF-8 each, as a NUL byte is never inside a
/// multi-byte character.
fn pairs_text(pairs: &[u8]) -> Result<Box<str>, DecodeError> {
    match std::str::from_utf8(pairs) {
        Ok(text) => Ok(text.into()),
        Err(_) => Err(DecodeError::InvalidUtf8 { message: MESSAGE }),
    }
}

/// Writes a StartupMessage. Names must be non-empty and nothing may contain NUL; the packet
/// must fit [`MAX_STARTUP_PACKET_LENGTH`].
pub fn startup_message<'p>(
    buf: &mut BytesMut,
    protocol_version: u32,
    params: impl IntoIterator<Item = (&'p str, &'p str)>,
) -> Result<(), EncodeError> {
    put_untagged(buf, MAX_STARTUP_PACKET_LENGTH + 4, |b| {
        b.put_u32(protocol_version);
        for (name, value) in params {
            if name.is_empty() {
                return Err(EncodeError::InvalidField {
                    field: "parameter name",
                });
            }
            put_cstr(b, name.as_bytes(), "parameter name")?;
            put_cstr(b, value.as_bytes(), "parameter value")?;
        }
        b.put_u8(0);
        Ok(())
    })
}

/// Writes an SSLRequest.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_u32(REQUEST_LEN);
    buf.put_u32(SSL_REQUEST_CODE);
}

/// Writes a GSSENCRequest.
pub fn gssenc_request(buf: &mut BytesMut) {
    buf.put_u32(REQUEST_LEN);
    buf.put_u32(GSSENC_REQUEST_CODE);
}

/// Writes a CancelRequest; the key must be 4 to 256 bytes.
pub fn cancel_request(
    buf: &mut BytesMut,
    process_id: i32,
    secret_key: &[u8],
) -> Result<(), EncodeError> {
    if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
        return Err(EncodeError::InvalidField {
            field: "secret key length",
        });
    }
    put_untagged(buf, MAX_STARTUP_PACKET_LENGTH + 4, |b| {
        b.put_u32(CANCEL_REQUEST_CODE);
        b.put_i32(process_id);
        b.put_slice(secret_key);
        Ok(())
    })
}

impl Startup {
    /// Writes this message back in wire format.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Startup::SslRequest => ssl_request(buf),
            Startup::GssEncRequest => gssenc_request(buf),
            Startup::CancelRequest(c) => cancel_request(buf, c.process_id, &c.secret_key)?,
            Startup::StartupMessage(m) => m.encode(buf)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
