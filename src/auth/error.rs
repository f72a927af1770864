//! [`AuthError`]: why an authentication exchange failed, naming the message and attribute at
//! fault but never echoing secret material (proofs, keys, passwords) or raw client bytes.

use crate::error::Fault;

/// Which SCRAM message (or stored secret) an error is about; decides whose fault it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMessage {
    /// `client-first-message`, from a client to us.
    ClientFirst,
    /// `client-final-message`, from a client to us.
    ClientFinal,
    /// `server-first-message`, from a server to us.
    ServerFirst,
    /// `server-final-message`, from a server to us.
    ServerFinal,
}

impl ScramMessage {
    /// The RFC 5802 name of the message.
    pub fn name(self) -> &'static str {
        match self {
            ScramMessage::ClientFirst => "client-first-message",
            ScramMessage::ClientFinal => "client-final-message",
            ScramMessage::ServerFirst => "server-first-message",
            ScramMessage::ServerFinal => "server-final-message",
        }
    }

    /// Who sent it: clients send the `Client*` messages, servers the `Server*` ones.
    pub fn fault(self) -> Fault {
        match self {
            ScramMessage::ClientFirst | ScramMessage::ClientFinal => Fault::Client,
            ScramMessage::ServerFirst | ScramMessage::ServerFinal => Fault::Server,
        }
    }
}

impl std::fmt::Display for ScramMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why authentication failed. Texts follow PostgreSQL's `auth-scram.c` and libpq's
/// `fe-auth-scram.c` where they have one; none contains a secret or unescaped peer bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The message was empty.
    #[error("malformed SCRAM message (empty {0})")]
    Empty(ScramMessage),
    /// The message was longer than [`crate::auth::scram::MAX_MESSAGE_LEN`].
    #[error("malformed SCRAM message ({message} of {len} bytes exceeds {max})")]
    TooLong {
        /// The message.
        message: ScramMessage,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A NUL byte inside the message (PostgreSQL: "length mismatch").
    #[error("malformed SCRAM message (NUL byte in {0})")]
    NulByte(ScramMessage),
    /// Not an `ALPHA "=" value` attribute where one was expected.
    #[error("malformed SCRAM message (attribute expected in {message}, found {found})")]
    NotAnAttribute {
        /// The message.
        message: ScramMessage,
        /// What was found instead, escaped.
        found: String,
    },
    /// A required attribute is missing or out of order.
    #[error("malformed SCRAM message (attribute '{attr}' expected in {message})")]
    MissingAttribute {
        /// The message.
        message: ScramMessage,
        /// The attribute letter.
        attr: char,
    },
    /// An attribute appears twice.
    #[error("malformed SCRAM message (duplicate attribute '{attr}' in {message})")]
    DuplicateAttribute {
        /// The message.
        message: ScramMessage,
        /// The attribute letter.
        attr: char,
    },
    /// An attribute's value is not valid base64 or has the wrong length.
    #[error(
        "malformed SCRAM message (invalid base64 or length in attribute '{attr}' of {message})"
    )]
    InvalidBase64 {
        /// The message.
        message: ScramMessage,
        /// The attribute letter.
        attr: char,
    },
    /// Something follows the attribute that must come last.
    #[error("malformed SCRAM message (garbage at end of {0})")]
    TrailingData(ScramMessage),
    /// A nonce is empty or has a character outside RFC 5802's `printable`.
    #[error("non-printable characters in SCRAM nonce ({0})")]
    InvalidNonce(ScramMessage),
    /// The GS2 header is not `n,,` or `y,,` (bad channel-binding flag or missing commas).
    #[error("malformed SCRAM message (malformed GS2 header in client-first-message)")]
    MalformedGs2Header,
    /// The client requires channel binding (`p=`); we do not offer SCRAM-SHA-256-PLUS.
    #[error("client requires SCRAM channel binding, but it is not supported")]
    ChannelBindingNotSupported,
    /// `c=` in the client-final-message does not match the GS2 header sent first.
    #[error("unexpected SCRAM channel-binding attribute in client-final-message")]
    ChannelBindingMismatch,
    /// The client sent an authorization identity (`a=`), which PostgreSQL does not support.
    #[error("client uses authorization identity, but it is not supported")]
    AuthzidNotSupported,
    /// A mandatory extension (`m=`) was requested.
    #[error("{0} requires mandatory SCRAM extension")]
    MandatoryExtension(ScramMessage),
    /// The nonce does not continue (server-first) or repeat (client-final) the exchange's nonce.
    #[error("invalid SCRAM response (nonce mismatch in {0})")]
    NonceMismatch(ScramMessage),
    /// The iteration count is not a positive number within bounds.
    #[error("invalid SCRAM iteration count in server-first-message (must be 1..={max})")]
    InvalidIterations {
        /// The largest count we run, to bound the PBKDF2 work a server can ask for.
        max: u32,
    },
    /// The client's proof is wrong: wrong password, unknown user (mock exchange) or a replay.
    #[error("password authentication failed (invalid SCRAM proof)")]
    InvalidProof,
    /// The server's signature is wrong: it does not know our secret.
    #[error("incorrect server signature in SCRAM server-final-message")]
    InvalidServerSignature,
    /// The server ended the exchange with `e=`.
    #[error("error received from server in SCRAM exchange: {0}")]
    ServerError(String),
    /// The client chose a SASL mechanism other than SCRAM-SHA-256.
    #[error("client selected an invalid SASL authentication mechanism")]
    UnsupportedMechanism,
    /// A message was handed to a state machine not expecting it (or after the exchange ended).
    #[error("SCRAM {0} out of order or after the exchange ended")]
    OutOfOrder(ScramMessage),
    /// A nonce given for a test or by the caller is not a valid nonce.
    #[error("invalid SCRAM nonce supplied by the caller")]
    InvalidCallerNonce,
    /// The OS random source failed.
    #[error("could not generate random bytes: {0}")]
    Randomness(getrandom::Error),
}

impl AuthError {
    /// Whose fault the failure was: the peer that sent the bad message, or us.
    pub fn fault(&self) -> Fault {
        match self {
            AuthError::Empty(m)
            | AuthError::NulByte(m)
            | AuthError::InvalidNonce(m)
            | AuthError::TrailingData(m)
            | AuthError::MandatoryExtension(m)
            | AuthError::NonceMismatch(m) => m.fault(),
            AuthError::TooLong { message, .. }
            | AuthError::NotAnAttribute { message, .. }
            | AuthError::MissingAttribute { message, .. }
            | AuthError::DuplicateAttribute { message, .. }
            | AuthError::InvalidBase64 { message, .. } => message.fault(),
            AuthError::MalformedGs2Header
            | AuthError::ChannelBindingNotSupported
            | AuthError::ChannelBindingMismatch
            | AuthError::AuthzidNotSupported
            | AuthError::InvalidProof
            | AuthError::UnsupportedMechanism => Fault::Client,
            AuthError::InvalidIterations { .. }
            | AuthError::InvalidServerSignature
            | AuthError::ServerError(_) => Fault::Server,
            AuthError::OutOfOrder(_) | AuthError::InvalidCallerNonce | AuthError::Randomness(_) => {
                Fault::Internal
            }
        }
    }
}

/// Escapes peer-supplied bytes for an error text: printable ASCII as is, the rest as `\xNN`,
/// cut at `max` input bytes so a peer cannot flood logs through us.
pub(crate) fn escape_peer_text(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}
