//! Client → server messages: lazy borrowing views over a frame body, and builders; the extended
//! query protocol's messages are in [`extended`] and re-exported here.
//!
//! Views check the layout once when built (every count and length against the bytes present, no
//! allocation) and then hand out fields and infallible iterators. Builders append one message to a
//! `BytesMut`. Pure: no IO.

pub mod extended;
use bytes::{BufMut, BytesMut};

use super::reader::Reader;
use super::tag::frontend as tag;
use super::{DecodeError, EncodeError, put_cstr, put_fixed, put_message, put_nullable};

pub use extended::{
    Bind, Close, Describe, Execute, Parse, Target, Values, bind, close, describe, execute, parse,
};

/// Query: one simple-protocol query string (possibly several statements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The SQL text.
    pub query: &'a [u8],
}

impl<'a> Query<'a> {
    /// Parses a Query body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Query");
        let query = r.cstr()?;
        r.finish()?;
        Ok(Self { query })
    }
}

/// A body that is one NUL-terminated string: CopyFail's error message, PasswordMessage's password.
fn single_cstr<'a>(body: &'a [u8], message: &'static str) -> Result<&'a [u8], DecodeError> {
    let mut r = Reader::new(body, message);
    let s = r.cstr()?;
    r.finish()?;
    Ok(s)
}

/// CopyFail: abort a COPY FROM STDIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFail<'a> {
    /// Why the client gave up.
    pub message: &'a [u8],
}

impl<'a> CopyFail<'a> {
    /// Parses a CopyFail body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        single_cstr(body, "CopyFail").map(|message| Self { message })
    }
}

/// PasswordMessage: cleartext password or `md5...` hash. Never log it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordMessage<'a> {
    /// The password or md5 response.
    pub password: &'a [u8],
}

impl std::fmt::Debug for PasswordMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordMessage { password: <redacted> }")
    }
}

impl<'a> PasswordMessage<'a> {
    /// Parses a PasswordMessage body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        single_cstr(body, "PasswordMessage").map(|password| Self { password })
    }
}

/// SASLInitialResponse: the chosen mechanism and the client-first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// Mechanism name, e.g. `SCRAM-SHA-256`.
    pub mechanism: &'a [u8],
    /// Initial response; `None` when the length is -1.
    pub data: Option<&'a [u8]>,
}

impl<'a> SaslInitialResponse<'a> {
    /// Parses a SASLInitialResponse body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "SASLInitialResponse");
        let mechanism = r.cstr()?;
        let data = r.nullable()?;
        r.finish()?;
        Ok(Self { mechanism, data })
    }
}

/// SASLResponse: mechanism-specific data (SCRAM client-final), the whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslResponse<'a> {
    /// The SASL payload.
    pub data: &'a [u8],
}

impl<'a> SaslResponse<'a> {
    /// Wraps a SASLResponse body (any bytes are valid).
    pub fn parse(body: &'a [u8]) -> Self {
        Self { data: body }
    }
}

/// Any client message, dispatched on its tag (what a fuzzer or a protocol trace wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// Query.
    Query(Query<'a>),
    /// Parse.
    Parse(Parse<'a>),
    /// Bind.
    Bind(Bind<'a>),
    /// Describe.
    Describe(Describe<'a>),
    /// Close.
    Close(Close<'a>),
    /// Execute.
    Execute(Execute<'a>),
    /// Sync.
    Sync,
    /// Flush.
    Flush,
    /// Terminate.
    Terminate,
    /// CopyData payload.
    CopyData(&'a [u8]),
    /// CopyDone.
    CopyDone,
    /// CopyFail.
    CopyFail(CopyFail<'a>),
    /// FunctionCall, not inspected.
    FunctionCall(&'a [u8]),
    /// A `p` message: PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse,
    /// depending on the authentication exchange; parse it with the matching view.
    AuthResponse(&'a [u8]),
}

impl<'a> FrontendMessage<'a> {
    /// Parses `body` as the message `tag` names.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, DecodeError> {
        let empty = |message| Reader::new(body, message).finish();
        Ok(match tag {
            tag::QUERY => Self::Query(Query::parse(body)?),
            tag::PARSE => Self::Parse(Parse::parse(body)?),
            tag::BIND => Self::Bind(Bind::parse(body)?),
            tag::DESCRIBE => Self::Describe(Describe::parse(body)?),
            tag::CLOSE => Self::Close(Close::parse(body)?),
            tag::EXECUTE => Self::Execute(Execute::parse(body)?),
            tag::SYNC => empty("Sync").map(|()| Self::Sync)?,
            tag::FLUSH => empty("Flush").map(|()| Self::Flush)?,
            tag::TERMINATE => empty("Terminate").map(|()| Self::Terminate)?,
            tag::COPY_DATA => Self::CopyData(body),
            tag::COPY_DONE => empty("CopyDone").map(|()| Self::CopyDone)?,
            tag::COPY_FAIL => Self::CopyFail(CopyFail::parse(body)?),
            tag::FUNCTION_CALL => Self::FunctionCall(body),
            tag::PASSWORD_MESSAGE => Self::AuthResponse(body),
            tag => return Err(DecodeError::UnknownTag { tag }),
        })
    }
}

/// Writes a Query.
pub fn query(buf: &mut BytesMut, sql: impl AsRef<[u8]>) -> Result<(), EncodeError> {
    put_message(buf, tag::QUERY, |b| put_cstr(b, sql.as_ref(), "query"))
}

/// Writes a Sync.
pub fn sync(buf: &mut BytesMut) {
    put_fixed(buf, tag::SYNC, &[]);
}

/// Writes a Flush.
pub fn flush(buf: &mut BytesMut) {
    put_fixed(buf, tag::FLUSH, &[]);
}

/// Writes a Terminate.
pub fn terminate(buf: &mut BytesMut) {
    put_fixed(buf, tag::TERMINATE, &[]);
}

/// Writes a CopyData.
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    put_message(buf, tag::COPY_DATA, |b| {
        b.put_slice(data);
        Ok(())
    })
}

/// Writes a CopyDone.
pub fn copy_done(buf: &mut BytesMut) {
    put_fixed(buf, tag::COPY_DONE, &[]);
}

/// Writes a CopyFail.
pub fn copy_fail(buf: &mut BytesMut, message: impl AsRef<[u8]>) -> Result<(), EncodeError> {
    put_message(buf, tag::COPY_FAIL, |b| {
        put_cstr(b, message.as_ref(), "message")
    })
}

/// Writes a PasswordMessage (cleartext password or `md5...` response).
pub fn password_message(buf: &mut BytesMut, password: &[u8]) -> Result<(), EncodeError> {
    put_message(buf, tag::PASSWORD_MESSAGE, |b| {
        put_cstr(b, password, "password")
    })
}

/// Writes a SASLInitialResponse; `data` `None` is sent as length -1.
pub fn sasl_initial_response(
    buf: &mut BytesMut,
    mechanism: impl AsRef<[u8]>,
    data: Option<&[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::SASL_INITIAL_RESPONSE, |b| {
        put_cstr(b, mechanism.as_ref(), "mechanism")?;
        put_nullable(b, data)
    })
}

/// Writes a SASLResponse.
pub fn sasl_response(buf: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    put_message(buf, tag::SASL_RESPONSE, |b| {
        b.put_slice(data);
        Ok(())
    })
}

#[cfg(test)]
mod tests;
