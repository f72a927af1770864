//! Server → client messages the pooler inspects or produces: Authentication*, ParameterStatus,
//! BackendKeyData, ReadyForQuery, ErrorResponse/NoticeResponse, NegotiateProtocolVersion and
//! NotificationResponse; query results are in [`results`].
//!
//! Servers are untrusted input too: views check the layout once, without allocating, then hand out
//! borrowed fields. Builders append one message to a `BytesMut`. Pure: no IO.

#[cfg(test)]
mod tests;

pub mod error_response;
pub mod results;

use bytes::{BufMut, BytesMut};

use super::reader::Reader;
use super::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};
use super::tag::backend as tag;
use super::{DecodeError, EncodeError, put_cstr, put_fixed, put_message};

pub use error_response::{
    ErrorField, ErrorFields, Severity, error_field, error_fields, error_response, notice_response,
};
pub use results::{
    CommandComplete, DataRow, FORMAT_BINARY, FORMAT_TEXT, ParameterDescription, RowDescription,
    RowField, bind_complete, close_complete, command_complete, data_row, empty_query_response,
    no_data, parameter_description, parse_complete, portal_suspended, row_description, type_oid,
};

/// Authentication request codes: the Int32 after the `R` tag.
pub mod auth_code {
    /// AuthenticationOk.
    pub const OK: i32 = 0;
    /// AuthenticationKerberosV5 (unsupported since PostgreSQL 9.4).
    pub const KERBEROS_V5: i32 = 2;
    /// AuthenticationCleartextPassword.
    pub const CLEARTEXT_PASSWORD: i32 = 3;
    /// AuthenticationMD5Password.
    pub const MD5_PASSWORD: i32 = 5;
    /// AuthenticationGSS.
    pub const GSS: i32 = 7;
    /// AuthenticationGSSContinue.
    pub const GSS_CONTINUE: i32 = 8;
    /// AuthenticationSSPI.
    pub const SSPI: i32 = 9;
    /// AuthenticationSASL.
    pub const SASL: i32 = 10;
    /// AuthenticationSASLContinue.
    pub const SASL_CONTINUE: i32 = 11;
    /// AuthenticationSASLFinal.
    pub const SASL_FINAL: i32 = 12;
}

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

/// An Authentication* request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationKerberosV5.
    KerberosV5,
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password.
    Md5Password {
        /// Salt for `md5(md5(password || user) || salt)`.
        salt: [u8; 4],
    },
    /// AuthenticationGSS.
    Gss,
    /// AuthenticationGSSContinue.
    GssContinue(&'a [u8]),
    /// AuthenticationSSPI.
    Sspi,
    /// AuthenticationSASL with the offered mechanisms.
    Sasl(SaslMechanisms<'a>),
    /// AuthenticationSASLContinue (SCRAM server-first).
    SaslContinue(&'a [u8]),
    /// AuthenticationSASLFinal (SCRAM server-final).
    SaslFinal(&'a [u8]),
}

impl<'a> Authentication<'a> {
    /// Parses an Authentication body.
    pub fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, "Authentication");
        let auth = match r.i32()? {
            auth_code::OK => Self::Ok,
            auth_code::KERBEROS_V5 => Self::KerberosV5,
            auth_code::CLEARTEXT_PASSWORD => Self::CleartextPassword,
            auth_code::MD5_PASSWORD => {
                let salt = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
                Self::Md5Password { salt }
            }
            auth_code::GSS => Self::Gss,
            auth_code::GSS_CONTINUE => Self::GssContinue(r.rest()),
            auth_code::SSPI => Self::Sspi,
            auth_code::SASL => Self::Sasl(SaslMechanisms::parse(&mut r)?),
            auth_code::SASL_CONTINUE => Self::SaslContinue(r.rest()),
            auth_code::SASL_FINAL => Self::SaslFinal(r.rest()),
            _ => return Err(r.invalid("authentication code")),
        };
        r.finish()?;
        Ok(auth)
    }
}

/// The mechanism names of AuthenticationSASL, checked; iterate with [`SaslMechanisms::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslMechanisms<'a> {
    list: &'a [u8],
}

impl<'a> SaslMechanisms<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let start = r.remaining();
        while !r.cstr()?.is_empty() {}
        let list = start
            .get(..start.len() - r.remaining().len())
            .unwrap_or_default();
        Ok(Self { list })
    }

    /// The mechanism names, in the server's order of preference.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader::new(self.list, "AuthenticationSASL");
        std::iter::from_fn(move || r.cstr().ok().filter(|m| !m.is_empty()))
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

fn put_auth(buf: &mut BytesMut, code: i32, data: &[u8]) -> Result<(), EncodeError> {
    put_message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(code);
        b.put_slice(data);
        Ok(())
    })
}

/// Writes AuthenticationOk.
pub fn authentication_ok(buf: &mut BytesMut) {
    put_fixed(buf, tag::AUTHENTICATION, &auth_code::OK.to_be_bytes());
}

/// Writes AuthenticationCleartextPassword.
pub fn authentication_cleartext_password(buf: &mut BytesMut) {
    put_fixed(
        buf,
        tag::AUTHENTICATION,
        &auth_code::CLEARTEXT_PASSWORD.to_be_bytes(),
    );
}

/// Writes AuthenticationMD5Password.
pub fn authentication_md5_password(buf: &mut BytesMut, salt: [u8; 4]) {
    let [a, b, c, d] = auth_code::MD5_PASSWORD.to_be_bytes();
    let [s0, s1, s2, s3] = salt;
    put_fixed(buf, tag::AUTHENTICATION, &[a, b, c, d, s0, s1, s2, s3]);
}

/// Writes AuthenticationSASL offering `mechanisms` (e.g. `["SCRAM-SHA-256"]`).
pub fn authentication_sasl<'m>(
    buf: &mut BytesMut,
    mechanisms: impl IntoIterator<Item = &'m str>,
) -> Result<(), EncodeError> {
    put_message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(auth_code::SASL);
        for m in mechanisms {
            if m.is_empty() {
                return Err(EncodeError::InvalidField { field: "mechanism" });
            }
            put_cstr(b, m.as_bytes(), "mechanism")?;
        }
        b.put_u8(0);
        Ok(())
    })
}

/// Writes AuthenticationSASLContinue (SCRAM server-first).
pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    put_auth(buf, auth_code::SASL_CONTINUE, data)
}

/// Writes AuthenticationSASLFinal (SCRAM server-final).
pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    put_auth(buf, auth_code::SASL_FINAL, data)
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
