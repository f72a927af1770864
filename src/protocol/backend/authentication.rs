//! Authentication* requests (the `R` messages): the codes, a view and the builders the pooler
//! uses when it authenticates clients. Pure: no IO.

use bytes::{BufMut, BytesMut};

use crate::protocol::reader::Reader;
use crate::protocol::tag::backend as tag;
use crate::protocol::{DecodeError, EncodeError, put_cstr, put_fixed, put_message};

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
