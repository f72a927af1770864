//! ErrorResponse and NoticeResponse: the typed-field messages, their view and their builders.
//!
//! `error_response` writes exactly the fields PgBouncer sends (`S`, `V`, `C`, `M`); the SQLSTATE
//! and wording themselves are chosen in `crate::error`. Pure: no IO.

use bytes::{BufMut, BytesMut};

use crate::protocol::reader::Reader;
use crate::protocol::tag::backend as tag;
use crate::protocol::{DecodeError, EncodeError, put_cstr, put_message};

/// Field type bytes of ErrorResponse and NoticeResponse ("Error and Notice Message Fields").
pub mod error_field {
    /// Severity, possibly localized.
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (PostgreSQL 9.6+).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Detail.
    pub const DETAIL: u8 = b'D';
    /// Hint.
    pub const HINT: u8 = b'H';
    /// Cursor position in the query.
    pub const POSITION: u8 = b'P';
    /// Position in an internal query.
    pub const INTERNAL_POSITION: u8 = b'p';
    /// Internal query text.
    pub const INTERNAL_QUERY: u8 = b'q';
    /// Context (call stack).
    pub const WHERE: u8 = b'W';
    /// Schema name.
    pub const SCHEMA_NAME: u8 = b's';
    /// Table name.
    pub const TABLE_NAME: u8 = b't';
    /// Column name.
    pub const COLUMN_NAME: u8 = b'c';
    /// Data type name.
    pub const DATA_TYPE_NAME: u8 = b'd';
    /// Constraint name.
    pub const CONSTRAINT_NAME: u8 = b'n';
    /// Source file.
    pub const FILE: u8 = b'F';
    /// Source line.
    pub const LINE: u8 = b'L';
    /// Source routine.
    pub const ROUTINE: u8 = b'R';
}

/// Message severities, as sent in the `S` and `V` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// ERROR: the command failed; the session continues.
    Error,
    /// FATAL: the session ends.
    Fatal,
    /// PANIC: the server restarts.
    Panic,
    /// WARNING notice.
    Warning,
    /// NOTICE notice.
    Notice,
    /// INFO notice.
    Info,
    /// LOG notice.
    Log,
    /// DEBUG notice.
    Debug,
}

impl Severity {
    /// The non-localized wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Panic => "PANIC",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Info => "INFO",
            Severity::Log => "LOG",
            Severity::Debug => "DEBUG",
        }
    }
}

/// One field of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorField<'a> {
    /// Field type, one of [`error_field`].
    pub code: u8,
    /// Field value.
    pub value: &'a [u8],
}

/// The body of an ErrorResponse or NoticeResponse: typed fields up to a zero byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    fields: &'a [u8],
}

impl<'a> ErrorFields<'a> {
    /// Parses an ErrorResponse or NoticeResponse body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "ErrorResponse");
        while r.u8()? != 0 {
            r.cstr()?;
        }
        r.finish()?;
        Ok(Self { fields: body })
    }

    /// The fields in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = ErrorField<'a>> + 'a {
        let mut r = Reader::new(self.fields, "ErrorResponse");
        std::iter::from_fn(move || {
            let code = r.u8().ok().filter(|&c| c != 0)?;
            r.cstr().ok().map(|value| ErrorField { code, value })
        })
    }

    /// The first field of type `code`.
    pub fn get(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|f| f.code == code).map(|f| f.value)
    }

    /// The non-localized severity if sent, else the localized one.
    pub fn severity(&self) -> Option<&'a [u8]> {
        self.get(error_field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(error_field::SEVERITY))
    }

    /// The SQLSTATE code.
    pub fn code(&self) -> Option<&'a [u8]> {
        self.get(error_field::CODE)
    }

    /// The primary message.
    pub fn message(&self) -> Option<&'a [u8]> {
        self.get(error_field::MESSAGE)
    }
}

/// Writes an ErrorResponse as PgBouncer sends them: `S` and `V` severity, `C` code, `M` message.
pub fn error_response(
    buf: &mut BytesMut,
    severity: Severity,
    sqlstate: &str,
    message: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    severity_code_message(
        buf,
        tag::ERROR_RESPONSE,
        severity,
        sqlstate,
        message.as_ref(),
    )
}

/// Writes a NoticeResponse with `S`, `V`, `C` and `M` fields.
pub fn notice_response(
    buf: &mut BytesMut,
    severity: Severity,
    sqlstate: &str,
    message: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    severity_code_message(
        buf,
        tag::NOTICE_RESPONSE,
        severity,
        sqlstate,
        message.as_ref(),
    )
}

fn severity_code_message(
    buf: &mut BytesMut,
    tag: u8,
    severity: Severity,
    sqlstate: &str,
    message: &[u8],
) -> Result<(), EncodeError> {
    let severity = severity.as_str().as_bytes();
    error_fields(
        buf,
        tag,
        [
            ErrorField {
                code: error_field::SEVERITY,
                value: severity,
            },
            ErrorField {
                code: error_field::SEVERITY_NONLOCALIZED,
                value: severity,
            },
            ErrorField {
                code: error_field::CODE,
                value: sqlstate.as_bytes(),
            },
            ErrorField {
                code: error_field::MESSAGE,
                value: message,
            },
        ],
    )
}

/// Writes an ErrorResponse (`tag::ERROR_RESPONSE`) or NoticeResponse (`tag::NOTICE_RESPONSE`)
/// with arbitrary fields, e.g. to add DETAIL or HINT.
pub fn error_fields<'f>(
    buf: &mut BytesMut,
    tag: u8,
    fields: impl IntoIterator<Item = ErrorField<'f>>,
) -> Result<(), EncodeError> {
    put_message(buf, tag, |b| {
        for f in fields {
            if f.code == 0 {
                return Err(EncodeError::InvalidField {
                    field: "error field type",
                });
            }
            b.put_u8(f.code);
            put_cstr(b, f.value, "error field")?;
        }
        b.put_u8(0);
        Ok(())
    })
}
