//! Client → server messages: lazy borrowing views over a frame body, and builders.
//!
//! Views check the layout once when built (every count and length against the bytes present, no
//! allocation) and then hand out fields and infallible iterators. Builders append one message to a
//! `BytesMut`. Pure: no IO.

#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};

use super::reader::{Reader, be_i16, be_u32};
use super::tag::frontend as tag;
use super::{DecodeError, EncodeError, put_count, put_cstr, put_fixed, put_message, put_nullable};

/// What Describe and Close act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prepared statement (`S`).
    Statement,
    /// A portal (`P`).
    Portal,
}

impl Target {
    /// The wire byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            _ => Err(r.invalid("target")),
        }
    }
}

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

/// Parse: create a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name; empty for the unnamed statement.
    pub name: &'a [u8],
    /// The SQL text.
    pub query: &'a [u8],
    param_types: &'a [u8],
}

impl<'a> Parse<'a> {
    /// Parses a Parse body.
    // Every view's constructor is `parse`; this message happens to be named Parse too.
    #[allow(clippy::self_named_constructors)]
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Parse");
        let name = r.cstr()?;
        let query = r.cstr()?;
        let n = r.u16()?;
        let param_types = r.items(usize::from(n), 4)?;
        r.finish()?;
        Ok(Self {
            name,
            query,
            param_types,
        })
    }

    /// The parameter type OIDs the client specified (0 = let the server infer).
    pub fn param_types(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.param_types.chunks_exact(4).map(be_u32)
    }
}

/// Bind: create a portal from a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Source statement name; empty for the unnamed statement.
    pub statement: &'a [u8],
    /// Everything after the statement name, kept verbatim for [`Bind::rewrite_statement`].
    after_names: &'a [u8],
    param_formats: &'a [u8],
    param_count: u16,
    params: &'a [u8],
    result_formats: &'a [u8],
}

impl<'a> Bind<'a> {
    /// Parses a Bind body, checking every count and length once.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Bind");
        let portal = r.cstr()?;
        let statement = r.cstr()?;
        let after_names = r.remaining();
        let n = r.u16()?;
        let param_formats = r.items(usize::from(n), 2)?;
        let param_count = r.u16()?;
        let params_start = r.remaining();
        for _ in 0..param_count {
            r.nullable()?;
        }
        let params = params_start
            .get(..params_start.len() - r.remaining().len())
            .unwrap_or_default();
        let n = r.u16()?;
        let result_formats = r.items(usize::from(n), 2)?;
        r.finish()?;
        Ok(Self {
            portal,
            statement,
            after_names,
            param_formats,
            param_count,
            params,
            result_formats,
        })
    }

    /// Parameter format codes (0 text, 1 binary): none, one for all, or one per parameter.
    pub fn param_formats(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.param_formats.chunks_exact(2).map(be_i16)
    }

    /// Number of parameter values.
    pub fn param_count(&self) -> usize {
        usize::from(self.param_count)
    }

    /// Parameter values; `None` is SQL NULL.
    pub fn params(&self) -> Values<'a> {
        Values {
            reader: Reader::new(self.params, "Bind"),
            remaining: self.param_count,
        }
    }

    /// Result column format codes.
    pub fn result_formats(&self) -> impl ExactSizeIterator<Item = i16> + 'a {
        self.result_formats.chunks_exact(2).map(be_i16)
    }

    /// Writes this Bind with the statement name replaced, copying the rest of the body as is
    /// (the transaction-mode prepared-statement rename).
    pub fn rewrite_statement(
        &self,
        buf: &mut BytesMut,
        statement: impl AsRef<[u8]>,
    ) -> Result<(), EncodeError> {
        put_message(buf, tag::BIND, |b| {
            put_cstr(b, self.portal, "portal name")?;
            put_cstr(b, statement.as_ref(), "statement name")?;
            b.put_slice(self.after_names);
            Ok(())
        })
    }
}

/// Length-prefixed values (Bind parameters, DataRow cells), already checked; `None` is NULL.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    pub(crate) reader: Reader<'a>,
    pub(crate) remaining: u16,
}

impl<'a> Iterator for Values<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        self.remaining = self.remaining.checked_sub(1)?;
        self.reader.nullable().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            usize::from(self.remaining),
            Some(usize::from(self.remaining)),
        )
    }
}

impl ExactSizeIterator for Values<'_> {}

/// Describe: ask for a statement's or portal's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    /// Statement or portal.
    pub target: Target,
    /// Its name; empty for the unnamed one.
    pub name: &'a [u8],
}

impl<'a> Describe<'a> {
    /// Parses a Describe body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (target, name) = target_and_name(body, "Describe")?;
        Ok(Self { target, name })
    }
}

/// Close: drop a statement or portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// Statement or portal.
    pub target: Target,
    /// Its name; empty for the unnamed one.
    pub name: &'a [u8],
}

impl<'a> Close<'a> {
    /// Parses a Close body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (target, name) = target_and_name(body, "Close")?;
        Ok(Self { target, name })
    }
}

fn target_and_name<'a>(
    body: &'a [u8],
    message: &'static str,
) -> Result<(Target, &'a [u8]), DecodeError> {
    let mut r = Reader::new(body, message);
    let target = Target::read(&mut r)?;
    let name = r.cstr()?;
    r.finish()?;
    Ok((target, name))
}

/// Execute: run a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Row limit; 0 means no limit.
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    /// Parses an Execute body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Execute");
        let portal = r.cstr()?;
        let max_rows = r.i32()?;
        r.finish()?;
        Ok(Self { portal, max_rows })
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

/// Writes a Parse; `param_types` are type OIDs (0 = unspecified).
pub fn parse(
    buf: &mut BytesMut,
    name: impl AsRef<[u8]>,
    sql: impl AsRef<[u8]>,
    param_types: &[u32],
) -> Result<(), EncodeError> {
    put_message(buf, tag::PARSE, |b| {
        put_cstr(b, name.as_ref(), "statement name")?;
        put_cstr(b, sql.as_ref(), "query")?;
        put_count(b, param_types.len(), "parameter type count")?;
        param_types.iter().for_each(|&oid| b.put_u32(oid));
        Ok(())
    })
}

/// Writes a Bind.
pub fn bind(
    buf: &mut BytesMut,
    portal: impl AsRef<[u8]>,
    statement: impl AsRef<[u8]>,
    param_formats: &[i16],
    params: &[Option<&[u8]>],
    result_formats: &[i16],
) -> Result<(), EncodeError> {
    put_message(buf, tag::BIND, |b| {
        put_cstr(b, portal.as_ref(), "portal name")?;
        put_cstr(b, statement.as_ref(), "statement name")?;
        put_count(b, param_formats.len(), "parameter format count")?;
        param_formats.iter().for_each(|&f| b.put_i16(f));
        put_count(b, params.len(), "parameter count")?;
        params.iter().try_for_each(|&p| put_nullable(b, p))?;
        put_count(b, result_formats.len(), "result format count")?;
        result_formats.iter().for_each(|&f| b.put_i16(f));
        Ok(())
    })
}

/// Writes a Describe.
pub fn describe(
    buf: &mut BytesMut,
    target: Target,
    name: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::DESCRIBE, |b| {
        b.put_u8(target.as_byte());
        put_cstr(b, name.as_ref(), "name")
    })
}

/// Writes a Close.
pub fn close(
    buf: &mut BytesMut,
    target: Target,
    name: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::CLOSE, |b| {
        b.put_u8(target.as_byte());
        put_cstr(b, name.as_ref(), "name")
    })
}

/// Writes an Execute; `max_rows` 0 means all rows.
pub fn execute(
    buf: &mut BytesMut,
    portal: impl AsRef<[u8]>,
    max_rows: i32,
) -> Result<(), EncodeError> {
    put_message(buf, tag::EXECUTE, |b| {
        put_cstr(b, portal.as_ref(), "portal name")?;
        b.put_i32(max_rows);
        Ok(())
    })
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
