//! Client authentication exchanges on the wire: cleartext, md5 (upgraded to SCRAM when the stored
//! secret is SCRAM, as PgBouncer does) and SCRAM-SHA-256, with a mock exchange for unknown users
//! so that a missing user looks and costs the same as a wrong password.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::scram::{self, Nonce, ScramKeys, ScramServer, ServerSecret};
use crate::auth::{self, Md5Credential};
use crate::config::AuthType;
use crate::config::userlist::Secret;
use crate::conn::Conn;
use crate::error::ClientError;
use crate::protocol::backend::authentication as authmsg;
use crate::protocol::frontend::{PasswordMessage, SaslInitialResponse, SaslResponse};
use crate::protocol::tag::frontend as tag;

/// What a successful exchange leaves the pooler with, for its own server logins.
pub enum Proof {
    /// Nothing learned (trust, any).
    Nothing,
    /// The client sent its cleartext password.
    Password(String),
    /// The client passed md5 against a stored md5 secret.
    Md5,
    /// The client passed SCRAM: its ClientKey enables pass-through to the server.
    Scram(ScramKeys),
}

/// What the pooler's side of SCRAM uses where it makes up the salt.
#[derive(Clone, Copy)]
pub struct ScramPolicy<'a> {
    /// The per-process key behind unknown users' mock salts.
    pub mock_key: &'a [u8],
    /// `scram_iterations`: for verifiers derived from a cleartext password, and mock ones.
    pub iterations: u32,
}

/// Runs the exchange `method` asks for against `secret` (`None`: unknown user, which fails after
/// a mock exchange).
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    method: AuthType,
    user: &str,
    secret: Option<&Secret>,
    scram: ScramPolicy<'_>,
) -> Result<Proof, ClientError> {
    match method {
        AuthType::Trust | AuthType::Any => Ok(Proof::Nothing),
        AuthType::Plain | AuthType::Passthrough => {
            let password = ask_cleartext(conn).await?;
            match secret {
                _ if method == AuthType::Passthrough => Ok(Proof::Password(password)),
                Some(s) if cleartext_matches(s, user, &password) => Ok(Proof::Password(password)),
                Some(_) => Err(ClientError::PasswordFailed),
                None => {
                    // An unknown user costs what a SCRAM secret (PostgreSQL's default) costs:
                    // the time of the refusal must not tell whether the user exists.
                    let salt = scram::mock_salt(user, scram.mock_key);
                    let derived = scram::Verifier::derive(&password, &salt, scram.iterations);
                    std::hint::black_box(derived);
                    Err(ClientError::PasswordFailed)
                }
            }
        }
        AuthType::Md5 => match secret {
            Some(Secret::Scram(_)) => scram_exchange(conn, user, secret, scram).await,
            _ => md5_exchange(conn, user, secret).await,
        },
        AuthType::ScramSha256 => scram_exchange(conn, user, secret, scram).await,
        other => Err(ClientError::Config(format!(
            "auth_type {} is not supported yet",
            other.as_str()
        ))),
    }
}

fn cleartext_matches(secret: &Secret, user: &str, password: &str) -> bool {
    match secret {
        Secret::Plain(p) => auth::constant_time_eq(p.as_bytes(), password.as_bytes()),
        Secret::Md5(s) => {
            auth::constant_time_eq(auth::md5_secret(user, password).as_bytes(), s.as_bytes())
        }
        Secret::Scram(v) => {
            let derived = scram::Verifier::derive(password, &v.salt, v.iterations);
            auth::constant_time_eq(&derived.stored_key, &v.stored_key)
        }
    }
}

async fn ask_cleartext<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
) -> Result<String, ClientError> {
    authmsg::authentication_cleartext_password(conn.write_buf_mut());
    let body = exchange(conn).await?;
    let msg = PasswordMessage::parse(&body).map_err(protocol)?;
    String::from_utf8(msg.password.to_vec()).map_err(|_| ClientError::PasswordFailed)
}

async fn md5_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    user: &str,
    secret: Option<&Secret>,
) -> Result<Proof, ClientError> {
    let mut salt = [0u8; 4];
    crate::auth::random::fill(&mut salt)
        .map_err(|e| ClientError::Config(format!("no randomness: {e}")))?;
    authmsg::authentication_md5_password(conn.write_buf_mut(), salt);
    let body = exchange(conn).await?;
    let response = PasswordMessage::parse(&body).map_err(protocol)?;
    let stored = match secret {
        Some(Secret::Plain(p)) => Some(Md5Credential::Password(p)),
        Some(Secret::Md5(s)) => Some(Md5Credential::Secret(s)),
        _ => None,
    };
    // Unknown users and SCRAM-only secrets are checked against a dummy so the timing matches.
    let ok = auth::verify_md5_response(
        stored.unwrap_or(Md5Credential::Password("\u{0}no such user")),
        user,
        salt,
        response.password,
    ) && stored.is_some();
    match (ok, secret) {
        (true, Some(Secret::Plain(p))) => Ok(Proof::Password(p.clone())),
        (true, _) => Ok(Proof::Md5),
        (false, _) => Err(ClientError::PasswordFailed),
    }
}

async fn scram_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    user: &str,
    secret: Option<&Secret>,
    policy: ScramPolicy<'_>,
) -> Result<Proof, ClientError> {
    let nonce = Nonce::random().map_err(|_| ClientError::SaslFailed)?;
    let mut server = match secret {
        Some(Secret::Plain(p)) => {
            ScramServer::new(ServerSecret::Password(p, policy.iterations), nonce)
        }
        Some(Secret::Scram(v)) => ScramServer::new(ServerSecret::Verifier(v), nonce),
        _ => Ok(ScramServer::mock(
            user,
            policy.mock_key,
            policy.iterations,
            nonce,
        )),
    }
    .map_err(|_| ClientError::SaslFailed)?;
    authmsg::authentication_sasl(conn.write_buf_mut(), [scram::MECHANISM]).map_err(encode)?;
    let body = exchange(conn).await?;
    let initial = SaslInitialResponse::parse(&body).map_err(protocol)?;
    scram::check_mechanism(initial.mechanism).map_err(|_| ClientError::InvalidSaslMechanism)?;
    let server_first = server
        .handle_client_first(initial.data.unwrap_or_default())
        .map_err(|_| ClientError::SaslFailed)?;
    authmsg::authentication_sasl_continue(conn.write_buf_mut(), &server_first).map_err(encode)?;
    let body = exchange(conn).await?;
    let response = SaslResponse::parse(&body);
    let success = server
        .handle_client_final(response.data)
        .map_err(|_| ClientError::SaslFailed)?;
    authmsg::authentication_sasl_final(conn.write_buf_mut(), &success.server_final)
        .map_err(encode)?;
    match secret {
        Some(Secret::Plain(p)) => Ok(Proof::Password(p.clone())),
        _ => Ok(Proof::Scram(success.keys)),
    }
}

/// Flushes what was queued and reads the client's `p` answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
) -> Result<bytes::Bytes, ClientError> {
    conn.flush().await?;
    match conn.read_frame().await {
        Ok(Some(frame)) if frame.tag == tag::PASSWORD_MESSAGE => Ok(frame.body),
        Ok(Some(_)) => Err(ClientError::Protocol("expected a password message".into())),
        Ok(None) => Err(ClientError::ClientGone(
            "closed the connection during login".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

fn protocol(e: crate::protocol::DecodeError) -> ClientError {
    ClientError::Protocol(e.to_string())
}

fn encode(e: crate::protocol::EncodeError) -> ClientError {
    ClientError::Protocol(e.to_string())
}
