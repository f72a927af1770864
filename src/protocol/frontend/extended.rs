//! The extended query protocol's client messages: Parse, Bind, Describe, Close and Execute, as
//! lazy views and builders. `Bind::rewrite_statement` is the transaction-mode prepared-statement
//! rename. Pure: no IO.

use bytes::{BufMut, BytesMut};

use crate::protocol::reader::{Reader, be_i16, be_u32};
use crate::protocol::tag::frontend as tag;
use crate::protocol::{DecodeError, EncodeError, put_count, put_cstr, put_message, put_nullable};

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
