//! A SHOW result as PgBouncer sends it: columns with PgBouncer's wire types (its `pktbuf` codes
//! `s`, `i`, `q`, `N`, `T`, `b`), text cells, then RowDescription, DataRows and `CommandComplete SHOW`.

use bytes::BytesMut;

use crate::protocol::EncodeError;
use crate::protocol::backend::results::{
    RowField, command_complete, data_row, row_description, type_oid,
};

/// A column's wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// `s`: text.
    Text,
    /// `i`: int4.
    Int4,
    /// `q`: int8.
    Int8,
    /// `N`: numeric (counters).
    Numeric,
    /// `T`: a timestamp, sent as text.
    Time,
    /// `b`: bytea.
    Bytea,
}

impl Col {
    /// The type OID in RowDescription.
    pub fn oid(self) -> u32 {
        match self {
            Col::Text | Col::Time => type_oid::TEXT,
            Col::Int4 => type_oid::INT4,
            Col::Int8 => type_oid::INT8,
            Col::Numeric => type_oid::NUMERIC,
            Col::Bytea => type_oid::BYTEA,
        }
    }
}

/// A column list: names in PgBouncer's order with their types.
pub type Columns = &'static [(&'static str, Col)];

/// A result set being built.
#[derive(Debug)]
pub struct Table {
    columns: Columns,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// An empty result with `columns`.
    pub fn new(columns: Columns) -> Self {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells in column order; `None` is NULL).
    pub fn row(&mut self, cells: Vec<Option<String>>) {
        self.rows.push(cells);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The position of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| *n == name)
    }

    /// The rows, cells in column order (`None` is NULL).
    pub fn rows(&self) -> &[Vec<Option<String>>] {
        &self.rows
    }

    /// Writes RowDescription, the DataRows and `CommandComplete SHOW`.
    pub fn write(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        row_description(
            out,
            self.columns
                .iter()
                .map(|(name, col)| RowField::text(name.as_bytes(), col.oid())),
        )?;
        for row in &self.rows {
            data_row(out, row.iter().map(|c| c.as_deref().map(str::as_bytes)))?;
        }
        command_complete(out, "SHOW")
    }
}

/// A value cell.
pub fn v(x: impl ToString) -> Option<String> {
    Some(x.to_string())
}

/// A timestamp cell from µs since the epoch, as `YYYY-MM-DD HH:MM:SS UTC` (PgBouncer prints
/// local time with its zone; the pooler's logs are UTC, so is this).
pub fn time(us: u64) -> Option<String> {
    if us == 0 {
        return None;
    }
    let secs = us / 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
