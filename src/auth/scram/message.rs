//! Parsers for the four SCRAM messages (RFC 5802 §7), shared by the server and client sides.
//!
//! Every message is checked once (length cap, no NUL), split on `,` and each field split at its
//! FIRST `=` only: the name is exactly one ASCII letter and the value is everything after, so a
//! nonce such as `r=ab=r=cd` stays whole (the bug behind other poolers' sporadic SCRAM failures).
//! Parsers borrow from the input and never panic; the state machines own the semantics.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{MAX_ITERATIONS, MAX_MESSAGE_LEN};
use crate::auth::error::escape_peer_text;
use crate::auth::{AuthError, ScramMessage};

/// The GS2 channel-binding flag of a client-first-message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gs2Flag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks we do not.
    Yes,
}

impl Gs2Flag {
    /// The `c=` value the client-final-message must carry: base64 of the GS2 header.
    pub(super) fn channel_binding(self) -> &'static [u8] {
        match self {
            Gs2Flag::No => b"biws",
            Gs2Flag::Yes => b"eSws",
        }
    }
}

/// A parsed client-first-message.
#[derive(Debug)]
pub(super) struct ClientFirst<'a> {
    /// The channel-binding flag.
    pub(super) flag: Gs2Flag,
    /// The message without its GS2 header: the first part of the AuthMessage.
    pub(super) bare: &'a [u8],
    /// The client nonce (printable, non-empty).
    pub(super) nonce: &'a str,
}

/// A parsed client-final-message.
#[derive(Debug)]
pub(super) struct ClientFinal<'a> {
    /// The raw `c=` value.
    pub(super) channel_binding: &'a [u8],
    /// The raw `r=` value.
    pub(super) nonce: &'a [u8],
    /// The decoded `p=` value.
    pub(super) proof: [u8; 32],
    /// Everything before `,p=`: the last part of the AuthMessage.
    pub(super) without_proof: &'a [u8],
}

/// A parsed server-first-message.
#[derive(Debug)]
pub(super) struct ServerFirst<'a> {
    /// The combined nonce (printable, non-empty).
    pub(super) nonce: &'a str,
    /// The decoded salt (non-empty).
    pub(super) salt: Vec<u8>,
    /// The iteration count, within `1..=MAX_ITERATIONS`.
    pub(super) iterations: u32,
}

/// A parsed server-final-message.
#[derive(Debug)]
pub(super) enum ServerFinal {
    /// `v=`: the decoded server signature.
    Verifier([u8; 32]),
    /// `e=`: the server's error, escaped for display.
    Error(String),
}

/// One `ALPHA "=" value` field.
struct Attr<'a> {
    name: u8,
    value: &'a [u8],
}

/// The checks every message gets before it is split.
fn check_envelope(msg: &[u8], which: ScramMessage) -> Result<(), AuthError> {
    if msg.is_empty() {
        return Err(AuthError::Empty(which));
    }
    if msg.len() > MAX_MESSAGE_LEN {
        return Err(AuthError::TooLong {
            message: which,
            len: msg.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    if msg.contains(&0) {
        return Err(AuthError::NulByte(which));
    }
    Ok(())
}

fn fields(msg: &[u8]) -> impl Iterator<Item = &[u8]> {
    msg.split(|&b| b == b',')
}

/// Splits a field at its first `=`; the name must be one ASCII letter.
fn attr(field: &[u8], which: ScramMessage) -> Result<Attr<'_>, AuthError> {
    match field {
        [name, b'=', value @ ..] if name.is_ascii_alphabetic() => Ok(Attr { name: *name, value }),
        _ => Err(AuthError::NotAnAttribute {
            message: which,
            found: escape_peer_text(field, 16),
        }),
    }
}

/// The next field must be attribute `name`; returns its value.
fn expect(next: Option<&[u8]>, name: u8, which: ScramMessage) -> Result<&[u8], AuthError> {
    let missing = AuthError::MissingAttribute {
        message: which,
        attr: char::from(name),
    };
    let a = attr(next.ok_or(missing.clone())?, which)?;
    if a.name == name {
        Ok(a.value)
    } else {
        Err(missing)
    }
}

/// Optional extensions (RFC 5802: unknown ones are ignored), each well formed and none repeating
/// an attribute already seen.
fn extensions<'a>(
    rest: impl Iterator<Item = &'a [u8]>,
    seen: &[u8],
    which: ScramMessage,
) -> Result<(), AuthError> {
    let mut seen = seen.to_vec();
    let first_message = matches!(which, ScramMessage::ClientFirst | ScramMessage::ServerFirst);
    for field in rest {
        let a = attr(field, which)?;
        if a.name == b'm' && first_message {
            // `m=` belongs first; anywhere else it is still a mandatory extension we lack.
            return Err(AuthError::MandatoryExtension(which));
        }
        if seen.contains(&a.name) {
            return Err(AuthError::DuplicateAttribute {
                message: which,
                attr: char::from(a.name),
            });
        }
        seen.push(a.name);
    }
    Ok(())
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E, at least one.
pub(super) fn printable_nonce(value: &[u8], which: ScramMessage) -> Result<&str, AuthError> {
    let ok = !value.is_empty()
        && value
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b',');
    if !ok {
        return Err(AuthError::InvalidNonce(which));
    }
    std::str::from_utf8(value).map_err(|_| AuthError::InvalidNonce(which))
}

fn base64_value(value: &[u8], name: u8, which: ScramMessage) -> Result<Vec<u8>, AuthError> {
    B64.decode(value)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::InvalidBase64 {
            message: which,
            attr: char::from(name),
        })
}

fn key_value(value: &[u8], name: u8, which: ScramMessage) -> Result<[u8; 32], AuthError> {
    base64_value(value, name, which)?
        .try_into()
        .map_err(|_| AuthError::InvalidBase64 {
            message: which,
            attr: char::from(name),
        })
}

/// Parses `gs2-header client-first-message-bare` as PostgreSQL's `read_client_first_message`:
/// `p=` is refused (no SCRAM-SHA-256-PLUS yet), `a=` and `m=` are refused, the user name is
/// read but ignored (the startup packet's user counts).
pub(super) fn parse_client_first(msg: &[u8]) -> Result<ClientFirst<'_>, AuthError> {
    const WHICH: ScramMessage = ScramMessage::ClientFirst;
    check_envelope(msg, WHICH)?;
    let mut header = msg.splitn(3, |&b| b == b',');
    let flag = match header.next() {
        Some(b"n") => Gs2Flag::No,
        Some(b"y") => Gs2Flag::Yes,
        Some([b'p', ..]) => return Err(AuthError::ChannelBindingNotSupported),
        _ => return Err(AuthError::MalformedGs2Header),
    };
    match header.next() {
        Some([]) => {}
        Some([b'a', b'=', ..]) => return Err(AuthError::AuthzidNotSupported),
        _ => return Err(AuthError::MalformedGs2Header),
    }
    let bare = header.next().ok_or(AuthError::MalformedGs2Header)?;
    let mut it = fields(bare);
    let first = it.next();
    if let Some(field) = first {
        if attr(field, WHICH)?.name == b'm' {
            return Err(AuthError::MandatoryExtension(WHICH));
        }
    }
    expect(first, b'n', WHICH)?;
    let nonce = printable_nonce(expect(it.next(), b'r', WHICH)?, WHICH)?;
    extensions(it, b"nr", WHICH)?;
    Ok(ClientFirst { flag, bare, nonce })
}

/// Parses `c=.., r=.., [extensions,] p=..`; `p` must be last and appear once.
pub(super) fn parse_client_final(msg: &[u8]) -> Result<ClientFinal<'_>, AuthError> {
    const WHICH: ScramMessage = ScramMessage::ClientFinal;
    check_envelope(msg, WHICH)?;
    let mut it = fields(msg);
    let channel_binding = expect(it.next(), b'c', WHICH)?;
    let nonce = expect(it.next(), b'r', WHICH)?;
    let mut seen = b"cr".to_vec();
    // Where the next field starts: after `c=..,r=..,`.
    let mut offset = channel_binding.len() + nonce.len() + 6;
    let mut proof = None;
    for field in it {
        if proof.is_some() {
            return Err(AuthError::TrailingData(WHICH));
        }
        let a = attr(field, WHICH)?;
        if seen.contains(&a.name) {
            return Err(AuthError::DuplicateAttribute {
                message: WHICH,
                attr: char::from(a.name),
            });
        }
        seen.push(a.name);
        if a.name == b'p' {
            let without_proof = msg.get(..offset.saturating_sub(1)).unwrap_or_default();
            proof = Some((key_value(a.value, b'p', WHICH)?, without_proof));
        }
        offset += field.len() + 1;
    }
    let (proof, without_proof) = proof.ok_or(AuthError::MissingAttribute {
        message: WHICH,
        attr: 'p',
    })?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof,
    })
}

/// Parses `[m=..,] r=.., s=.., i=.. [,extensions]` as sent by a server.
pub(super) fn parse_server_first(msg: &[u8]) -> Result<ServerFirst<'_>, AuthError> {
    const WHICH: ScramMessage = ScramMessage::ServerFirst;
    check_envelope(msg, WHICH)?;
    let mut it = fields(msg);
    let first = it.next();
    if let Some(field) = first {
        if attr(field, WHICH)?.name == b'm' {
            return Err(AuthError::MandatoryExtension(WHICH));
        }
    }
    let nonce = printable_nonce(expect(first, b'r', WHICH)?, WHICH)?;
    let salt = base64_value(expect(it.next(), b's', WHICH)?, b's', WHICH)?;
    let iterations = iterations(expect(it.next(), b'i', WHICH)?)?;
    extensions(it, b"rsi", WHICH)?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// RFC 5802 `posit-number` (no sign, no leading zero), bounded to cap the PBKDF2 work.
fn iterations(value: &[u8]) -> Result<u32, AuthError> {
    let bad = AuthError::InvalidIterations {
        max: MAX_ITERATIONS,
    };
    let well_formed = matches!(value.first(), Some(b'1'..=b'9'))
        && value.len() <= 10
        && value.iter().all(u8::is_ascii_digit);
    if !well_formed {
        return Err(bad);
    }
    let n = value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_ITERATIONS)
        .ok_or(bad)
}

/// Parses `v=..` or `e=..`, optionally followed by extensions.
pub(super) fn parse_server_final(msg: &[u8]) -> Result<ServerFinal, AuthError> {
    const WHICH: ScramMessage = ScramMessage::ServerFinal;
    check_envelope(msg, WHICH)?;
    let mut it = fields(msg);
    let first = it.next().ok_or(AuthError::Empty(WHICH))?;
    let a = attr(first, WHICH)?;
    let parsed = match a.name {
        b'e' => return Ok(ServerFinal::Error(escape_peer_text(a.value, 200))),
        b'v' => ServerFinal::Verifier(key_value(a.value, b'v', WHICH)?),
        _ => {
            return Err(AuthError::MissingAttribute {
                message: WHICH,
                attr: 'v',
            });
        }
    };
    extensions(it, b"ve", WHICH)?;
    Ok(parsed)
}
