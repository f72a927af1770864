//! Server → client query results: RowDescription, DataRow, CommandComplete, ParameterDescription
//! and the bodiless completion messages. The builders serve the admin console and pooler-made
//! replies; the views let the relay and tests look inside. Pure: no IO.

use bytes::{BufMut, BytesMut};

use crate::protocol::frontend::Values;
use crate::protocol::reader::{Reader, be_u32};
use crate::protocol::tag::backend as tag;
use crate::protocol::{
    DecodeError, EncodeError, put_count, put_cstr, put_fixed, put_message, put_nullable,
};

/// Well-known type OIDs (`pg_type.oid`) the pooler's own result sets use.
pub mod type_oid {
    /// `bool`.
    pub const BOOL: u32 = 16;
    /// `bytea`.
    pub const BYTEA: u32 = 17;
    /// `int8`.
    pub const INT8: u32 = 20;
    /// `int2`.
    pub const INT2: u32 = 21;
    /// `int4`.
    pub const INT4: u32 = 23;
    /// `text`.
    pub const TEXT: u32 = 25;
    /// `oid`.
    pub const OID: u32 = 26;
    /// `float4`.
    pub const FLOAT4: u32 = 700;
    /// `float8`.
    pub const FLOAT8: u32 = 701;
    /// `timestamp`.
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`.
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `numeric`.
    pub const NUMERIC: u32 = 1700;
}

/// Text format code.
pub const FORMAT_TEXT: i16 = 0;
/// Binary format code.
pub const FORMAT_BINARY: i16 = 1;

/// Bytes of a RowDescription field after its name.
const FIELD_FIXED_LEN: usize = 18;

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowField<'a> {
    /// Column name.
    pub name: &'a [u8],
    /// Source table OID, 0 if none.
    pub table_oid: u32,
    /// Source column number, 0 if none.
    pub column_id: i16,
    /// Type OID.
    pub type_oid: u32,
    /// `pg_type.typlen`; negative for variable width.
    pub type_size: i16,
    /// Type modifier (`atttypmod`), -1 if none.
    pub type_modifier: i32,
    /// Format code, [`FORMAT_TEXT`] or [`FORMAT_BINARY`].
    pub format: i16,
}

impl<'a> RowField<'a> {
    /// A computed text-format column of type `type_oid`, as the admin console sends them.
    pub fn text(name: &'a [u8], type_oid: u32) -> Self {
        let type_size = match type_oid {
            type_oid::BOOL => 1,
            type_oid::INT2 => 2,
            type_oid::INT4 | type_oid::OID | type_oid::FLOAT4 => 4,
            type_oid::INT8 | type_oid::FLOAT8 | type_oid::TIMESTAMP | type_oid::TIMESTAMPTZ => 8,
            _ => -1,
        };
        Self {
            name,
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_size,
            type_modifier: -1,
            format: FORMAT_TEXT,
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self {
            name: r.cstr()?,
            table_oid: r.u32()?,
            column_id: r.i16()?,
            type_oid: r.u32()?,
            type_size: r.i16()?,
            type_modifier: r.i32()?,
            format: r.i16()?,
        })
    }
}

/// RowDescription: the columns of the rows that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDescription<'a> {
    count: u16,
    fields: &'a [u8],
}

impl<'a> RowDescription<'a> {
    /// Parses a RowDescription body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "RowDescription");
        let count = r.u16()?;
        let fields = r.remaining();
        for _ in 0..count {
            r.cstr()?;
            r.bytes(FIELD_FIXED_LEN)?;
        }
        r.finish()?;
        Ok(Self { count, fields })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The columns in order.
    pub fn fields(&self) -> impl Iterator<Item = RowField<'a>> + 'a {
        let mut r = Reader::new(self.fields, "RowDescription");
        (0..self.count).map_while(move |_| RowField::read(&mut r).ok())
    }
}

/// DataRow: one row's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRow<'a> {
    count: u16,
    cells: &'a [u8],
}

impl<'a> DataRow<'a> {
    /// Parses a DataRow body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "DataRow");
        let count = r.u16()?;
        let cells = r.remaining();
        for _ in 0..count {
            r.nullable()?;
        }
        r.finish()?;
        Ok(Self { count, cells })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values; `None` is SQL NULL.
    pub fn values(&self) -> Values<'a> {
        Values {
            reader: Reader::new(self.cells, "DataRow"),
            remaining: self.count,
        }
    }
}

/// CommandComplete: the command tag, e.g. `SELECT 3` or `INSERT 0 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    /// The command tag.
    pub tag: &'a [u8],
}

impl<'a> CommandComplete<'a> {
    /// Parses a CommandComplete body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "CommandComplete");
        let tag = r.cstr()?;
        r.finish()?;
        Ok(Self { tag })
    }
}

/// ParameterDescription: the parameter types of a described statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterDescription<'a> {
    types: &'a [u8],
}

impl<'a> ParameterDescription<'a> {
    /// Parses a ParameterDescription body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "ParameterDescription");
        let n = r.u16()?;
        let types = r.items(usize::from(n), 4)?;
        r.finish()?;
        Ok(Self { types })
    }

    /// The parameter type OIDs.
    pub fn types(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.types.chunks_exact(4).map(be_u32)
    }
}

/// Writes a u16 count placeholder, lets `items` write the items and return how many, then
/// back-patches the count.
fn counted<F>(b: &mut BytesMut, field: &'static str, items: F) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<usize, EncodeError>,
{
    let pos = b.len();
    b.put_u16(0);
    let n = items(b)?;
    let n = u16::try_from(n).map_err(|_| EncodeError::InvalidField { field })?;
    if let Some(slot) = b.get_mut(pos..pos + 2) {
        slot.copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// Writes a RowDescription; use [`RowField::text`] for computed text columns.
pub fn row_description<'c>(
    buf: &mut BytesMut,
    fields: impl IntoIterator<Item = RowField<'c>>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::ROW_DESCRIPTION, |b| {
        counted(b, "column count", |b| {
            let mut n = 0;
            for f in fields {
                put_cstr(b, f.name, "column name")?;
                b.put_u32(f.table_oid);
                b.put_i16(f.column_id);
                b.put_u32(f.type_oid);
                b.put_i16(f.type_size);
                b.put_i32(f.type_modifier);
                b.put_i16(f.format);
                n += 1;
            }
            Ok(n)
        })
    })
}

/// Writes a DataRow; `None` cells are SQL NULL.
pub fn data_row<'c>(
    buf: &mut BytesMut,
    cells: impl IntoIterator<Item = Option<&'c [u8]>>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::DATA_ROW, |b| {
        counted(b, "column count", |b| {
            let mut n = 0;
            for cell in cells {
                put_nullable(b, cell)?;
                n += 1;
            }
            Ok(n)
        })
    })
}

/// Writes a CommandComplete with `command_tag` (e.g. `SHOW`, `SELECT 1`).
pub fn command_complete(
    buf: &mut BytesMut,
    command_tag: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::COMMAND_COMPLETE, |b| {
        put_cstr(b, command_tag.as_ref(), "command tag")
    })
}

/// Writes a ParameterDescription.
pub fn parameter_description(buf: &mut BytesMut, types: &[u32]) -> Result<(), EncodeError> {
    put_message(buf, tag::PARAMETER_DESCRIPTION, |b| {
        put_count(b, types.len(), "parameter count")?;
        types.iter().for_each(|&t| b.put_u32(t));
        Ok(())
    })
}

/// Writes an EmptyQueryResponse.
pub fn empty_query_response(buf: &mut BytesMut) {
    put_fixed(buf, tag::EMPTY_QUERY_RESPONSE, &[]);
}

/// Writes a ParseComplete.
pub fn parse_complete(buf: &mut BytesMut) {
    put_fixed(buf, tag::PARSE_COMPLETE, &[]);
}

/// Writes a BindComplete.
pub fn bind_complete(buf: &mut BytesMut) {
    put_fixed(buf, tag::BIND_COMPLETE, &[]);
}

/// Writes a CloseComplete.
pub fn close_complete(buf: &mut BytesMut) {
    put_fixed(buf, tag::CLOSE_COMPLETE, &[]);
}

/// Writes a NoData.
pub fn no_data(buf: &mut BytesMut) {
    put_fixed(buf, tag::NO_DATA, &[]);
}

/// Writes a PortalSuspended.
pub fn portal_suspended(buf: &mut BytesMut) {
    put_fixed(buf, tag::PORTAL_SUSPENDED, &[]);
}
