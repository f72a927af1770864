//! Server → client messages the pooler inspects or produces: ParameterStatus, BackendKeyData,
//! ReadyForQuery, NegotiateProtocolVersion and NotificationResponse, plus the tag dispatcher.
//! Authentication* is in [`authentication`], ErrorResponse/NoticeResponse in [`error_notice`]
//! and query results in [`results`]; all are re-exported here.
//!
//! Servers are untrusted input too: views check the layout once, without allocating, then hand out
//! borrowed fields. Builders append one message to a `BytesMut`. Pure: no IO.

pub mod authentication;
pub mod error_notice;
pub mod results;

use bytes::{BufMut, BytesMut};

use super::reader::Reader;
use super::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};
use super::tag::backend as tag;
use super::{DecodeError, EncodeError, put_cstr, put_fixed, put_message};

pub use authentication::{
    Authentication, SaslMechanisms, auth_code, authentication_cleartext_password,
    authentication_md5_password, authentication_ok, authentication_sasl,
    authentication_sasl_continue, authentication_sasl_final,
};
pub use error_notice::{
    ErrorField, ErrorFields, Severity, error_field, error_fields, error_response, notice_response,
};
pub use results::{
    CommandComplete, DataRow, FORMAT_BINARY, FORMAT_TEXT, ParameterDescription, RowDescription,
    RowField, bind_complete, close_complete, command_complete, data_row, empty_query_response,
    no_data, parameter_description, parse_complete, portal_suspended, row_description, type_oid,
};

/// The transaction status in ReadyForQuery: what the pool modes decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (queries rejected until it ends).
    InFailedTransaction,
}

impl TxStatus {
    /// The status byte.
    pub fn as_byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::InFailedTransaction => b'E',
        }
    }

    /// The status for a byte, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::InFailedTransaction),
            _ => None,
        }
    }
}

/// ParameterStatus: a run-time parameter's current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    /// Parameter name, e.g. `client_encoding`.
    pub name: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
}

impl<'a> ParameterStatus<'a> {
    /// Parses a ParameterStatus body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "ParameterStatus");
        let name = r.cstr()?;
        let value = r.cstr()?;
        r.finish()?;
        Ok(Self { name, value })
    }
}

/// BackendKeyData: what a CancelRequest must quote. The key is 4 bytes in protocol 3.0 and up
/// to 256 in 3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData<'a> {
    /// Backend process id.
    pub process_id: i32,
    /// Secret key.
    pub secret_key: &'a [u8],
}

impl<'a> BackendKeyData<'a> {
    /// Parses a BackendKeyData body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "BackendKeyData");
        let process_id = r.i32()?;
        let secret_key = r.rest();
        if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
            return Err(r.invalid("secret key length"));
        }
        Ok(Self {
            process_id,
            secret_key,
        })
    }
}

/// ReadyForQuery: the server is idle; the status byte marks transaction boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// Transaction status.
    pub status: TxStatus,
}

impl ReadyForQuery {
    /// Parses a ReadyForQuery body.
    pub fn parse(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "ReadyForQuery");
        let status = TxStatus::from_byte(r.u8()?).ok_or_else(|| r.invalid("status"))?;
        r.finish()?;
        Ok(Self { status })
    }
}

/// NegotiateProtocolVersion: the server's newest minor version and the options it ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiateProtocolVersion<'a> {
    /// Newest minor protocol version the server supports for the requested major.
    pub newest_minor: i32,
    options: &'a [u8],
    count: u32,
}

impl<'a> NegotiateProtocolVersion<'a> {
    /// Parses a NegotiateProtocolVersion body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "NegotiateProtocolVersion");
        let newest_minor = r.i32()?;
        let count = r.u32()?;
        let options = r.remaining();
        for _ in 0..count {
            r.cstr()?;
        }
        r.finish()?;
        Ok(Self {
            newest_minor,
            options,
            count,
        })
    }

    /// The protocol options (`_pq_.*`) the server did not recognize.
    pub fn unrecognized_options(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader::new(self.options, "NegotiateProtocolVersion");
        (0..self.count).map_while(move |_| r.cstr().ok())
    }
}

/// NotificationResponse: a NOTIFY delivered to this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationResponse<'a> {
    /// Process id of the notifying backend.
    pub process_id: i32,
    /// Channel name.
    pub channel: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> NotificationResponse<'a> {
    /// Parses a NotificationResponse body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "NotificationResponse");
        let process_id = r.i32()?;
        let channel = r.cstr()?;
        let payload = r.cstr()?;
        r.finish()?;
        Ok(Self {
            process_id,
            channel,
            payload,
        })
    }
}

/// Writes ParameterStatus.
pub fn parameter_status(
    buf: &mut BytesMut,
    name: impl AsRef<[u8]>,
    value: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::PARAMETER_STATUS, |b| {
        put_cstr(b, name.as_ref(), "parameter name")?;
        put_cstr(b, value.as_ref(), "parameter value")
    })
}

/// Writes BackendKeyData; the key must be 4 to 256 bytes.
pub fn backend_key_data(
    buf: &mut BytesMut,
    process_id: i32,
    secret_key: &[u8],
) -> Result<(), EncodeError> {
    if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&secret_key.len()) {
        return Err(EncodeError::InvalidField {
            field: "secret key length",
        });
    }
    put_message(buf, tag::BACKEND_KEY_DATA, |b| {
        b.put_i32(process_id);
        b.put_slice(secret_key);
        Ok(())
    })
}

/// Writes ReadyForQuery.
pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    put_fixed(buf, tag::READY_FOR_QUERY, &[status.as_byte()]);
}

/// Writes a NegotiateProtocolVersion.
pub fn negotiate_protocol_version(
    buf: &mut BytesMut,
    newest_minor: i32,
    unrecognized_options: &[&str],
) -> Result<(), EncodeError> {
    put_message(buf, tag::NEGOTIATE_PROTOCOL_VERSION, |b| {
        b.put_i32(newest_minor);
        let n =
            u32::try_from(unrecognized_options.len()).map_err(|_| EncodeError::InvalidField {
                field: "option count",
            })?;
        b.put_u32(n);
        unrecognized_options
            .iter()
            .try_for_each(|o| put_cstr(b, o.as_bytes(), "option"))
    })
}

/// Writes a NotificationResponse.
pub fn notification_response(
    buf: &mut BytesMut,
    process_id: i32,
    channel: impl AsRef<[u8]>,
    payload: impl AsRef<[u8]>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::NOTIFICATION_RESPONSE, |b| {
        b.put_i32(process_id);
        put_cstr(b, channel.as_ref(), "channel")?;
        put_cstr(b, payload.as_ref(), "payload")
    })
}

/// Any server message, dispatched on its tag (what a fuzzer or a protocol trace wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// Authentication*.
    Authentication(Authentication<'a>),
    /// ParameterStatus.
    ParameterStatus(ParameterStatus<'a>),
    /// BackendKeyData.
    BackendKeyData(BackendKeyData<'a>),
    /// ReadyForQuery.
    ReadyForQuery(ReadyForQuery),
    /// ErrorResponse.
    ErrorResponse(ErrorFields<'a>),
    /// NoticeResponse.
    NoticeResponse(ErrorFields<'a>),
    /// NegotiateProtocolVersion.
    NegotiateProtocolVersion(NegotiateProtocolVersion<'a>),
    /// NotificationResponse.
    NotificationResponse(NotificationResponse<'a>),
    /// RowDescription.
    RowDescription(RowDescription<'a>),
    /// DataRow.
    DataRow(DataRow<'a>),
    /// CommandComplete.
    CommandComplete(CommandComplete<'a>),
    /// ParameterDescription.
    ParameterDescription(ParameterDescription<'a>),
    /// A message with an empty body: EmptyQueryResponse, ParseComplete, BindComplete,
    /// CloseComplete, NoData, PortalSuspended or CopyDone; the tag says which.
    Empty(u8),
    /// A message the pooler forwards without looking inside: CopyData, Copy*Response,
    /// FunctionCallResponse.
    Opaque {
        /// The tag.
        tag: u8,
        /// The body.
        body: &'a [u8],
    },
}

impl<'a> BackendMessage<'a> {
    /// Parses `body` as the message `tag` names.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, DecodeError> {
        Ok(match tag {
            tag::AUTHENTICATION => Self::Authentication(Authentication::parse(body)?),
            tag::PARAMETER_STATUS => Self::ParameterStatus(ParameterStatus::parse(body)?),
            tag::BACKEND_KEY_DATA => Self::BackendKeyData(BackendKeyData::parse(body)?),
            tag::READY_FOR_QUERY => Self::ReadyForQuery(ReadyForQuery::parse(body)?),
            tag::ERROR_RESPONSE => Self::ErrorResponse(ErrorFields::parse(body)?),
            tag::NOTICE_RESPONSE => Self::NoticeResponse(ErrorFields::parse(body)?),
            tag::NEGOTIATE_PROTOCOL_VERSION => {
                Self::NegotiateProtocolVersion(NegotiateProtocolVersion::parse(body)?)
            }
            tag::NOTIFICATION_RESPONSE => {
                Self::NotificationResponse(NotificationResponse::parse(body)?)
            }
            tag::ROW_DESCRIPTION => Self::RowDescription(RowDescription::parse(body)?),
            tag::DATA_ROW => Self::DataRow(DataRow::parse(body)?),
            tag::COMMAND_COMPLETE => Self::CommandComplete(CommandComplete::parse(body)?),
            tag::PARAMETER_DESCRIPTION => {
                Self::ParameterDescription(ParameterDescription::parse(body)?)
            }
            tag::EMPTY_QUERY_RESPONSE
            | tag::PARSE_COMPLETE
            | tag::BIND_COMPLETE
            | tag::CLOSE_COMPLETE
            | tag::NO_DATA
            | tag::PORTAL_SUSPENDED
            | tag::COPY_DONE => {
                Reader::new(body, "empty message").finish()?;
                Self::Empty(tag)
            }
            tag::COPY_DATA
            | tag::COPY_IN_RESPONSE
            | tag::COPY_OUT_RESPONSE
            | tag::COPY_BOTH_RESPONSE
            | tag::FUNCTION_CALL_RESPONSE => Self::Opaque { tag, body },
            tag => return Err(DecodeError::UnknownTag { tag }),
        })
    }
}

#[cfg(test)]
mod tests;
