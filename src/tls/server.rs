//! The pooler as a TLS server for its clients: the `client_tls_*` keys as a rustls
//! [`ServerConfig`], the handshake after the proxy answered `S`, and [`ClientStream`], the
//! client connection's stream.
//!
//! `client_tls_sslmode`: `disable` answers `N` (no config); `allow` and `prefer` offer TLS;
//! `require` and above make the proxy refuse plaintext logins ([`super::TlsSettings::client_may_skip_tls`]).
//! With `client_tls_ca_file`, client certificates are checked against it: required under
//! `verify-ca`/`verify-full`, optional below. Matching the certificate's CN against the user
//! (`verify-full`, `auth_type = cert`) is the proxy's job, with [`super::client_cert_common_name`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::server::WebPkiClientVerifier;
use rustls::{CommonState, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;

use super::ciphers::{self, Side};
use super::{ALPN_POSTGRESQL, Stage, TlsError, TlsInfo, files, protocol_versions};
use crate::config::{Key, Settings, SslMode};
use crate::conn::ConnParts;

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A client's TLS stream on our side.
pub type ServerTlsStream<S> = tokio_rustls::server::TlsStream<S>;

/// The stream of a client connection: plaintext or TLS.
#[derive(Debug)]
pub enum ClientStream<S> {
    /// No TLS.
    Plain(S),
    /// TLS over the socket.
    Tls(Box<ServerTlsStream<S>>),
}

delegate_io!(ClientStream);

impl<S> ClientStream<S> {
    /// True when encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// The socket underneath (for its addresses or socket options).
    pub fn get_ref(&self) -> &S {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(t) => t.get_ref().0,
        }
    }
}

impl<S> From<ServerTlsStream<S>> for ClientStream<S> {
    fn from(tls: ServerTlsStream<S>) -> Self {
        ClientStream::Tls(Box::new(tls))
    }
}

impl<S> TlsInfo for ClientStream<S> {
    fn tls_state(&self) -> Option<&CommonState> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(t) => Some(t.get_ref().1),
        }
    }
}

impl<S> TlsInfo for ServerTlsStream<S> {
    fn tls_state(&self) -> Option<&CommonState> {
        Some(self.get_ref().1)
    }
}

impl<S> TlsInfo for tokio_rustls::client::TlsStream<S> {
    fn tls_state(&self) -> Option<&CommonState> {
        Some(self.get_ref().1)
    }
}

/// True when a new connection's first byte starts a TLS ClientHello: PostgreSQL 17's direct
/// TLS (`sslnegotiation=direct`), with no SSLRequest before it. Look at the byte with
/// `TcpStream::peek`, so it is still there for [`accept_client_tls`]; a startup packet's
/// first byte is the high byte of its length, which is never 0x16 under the 10,000-byte cap.
pub fn peek_direct_tls(first_byte: u8) -> bool {
    first_byte == TLS_HANDSHAKE_RECORD
}

/// The socket of a connection about to start a TLS handshake, taken out of its [`ConnParts`].
///
/// Fails when the client sent bytes after its SSLRequest that are already buffered: they were
/// not encrypted and may have been injected (CVE-2021-23222); close the connection. Also fails
/// when the `S` answer was queued but not flushed.
pub fn stream_for_handshake<S>(parts: ConnParts<S>) -> Result<S, TlsError> {
    if !parts.read_buf.is_empty() {
        return Err(TlsError::BufferedPlaintext(parts.read_buf.len()));
    }
    if !parts.write_buf.is_empty() {
        return Err(TlsError::UnflushedWrite(parts.write_buf.len()));
    }
    Ok(parts.stream)
}

/// Runs the server side of the TLS handshake with a client, after the proxy answered `S` to its
/// SSLRequest (and flushed it), or after [`peek_direct_tls`] saw a ClientHello.
///
/// No timeout here: the caller bounds it like the rest of the login (`client_login_timeout`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn accept_client_tls<S>(
    stream: S,
    config: &Arc<ServerConfig>,
) -> Result<ServerTlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    TlsAcceptor::from(Arc::clone(config))
        .accept(stream)
        .await
        .map_err(|source| TlsError::Io {
            stage: Stage::ClientHandshake,
            source,
        })
}

/// The `client_tls_*` keys as a rustls server config; `None` under `disable`.
pub(super) fn server_config(s: &Settings) -> Result<Option<ServerConfig>, TlsError> {
    let mode = s.client_tls_sslmode();
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let needed_by = || format!("client_tls_sslmode = {}", s.render(Key::ClientTlsSslmode));
    let provider = ciphers::provider(s, Side::Clients)?;
    files::required(s, Key::ClientTlsCertFile, needed_by)?;
    let (chain, key) =
        files::certified_key(s, Key::ClientTlsCertFile, Key::ClientTlsKeyFile, &provider)?
            .ok_or_else(|| TlsError::Missing {
                key: Key::ClientTlsKeyFile.name(),
                needed_by: needed_by(),
            })?;
    let protocols = s.text(Key::ClientTlsProtocols).unwrap_or("secure");
    let versions = protocol_versions(Key::ClientTlsProtocols, protocols)?;
    let rustls_error = |what: &'static str| {
        move |source| TlsError::Rustls {
            what: what.to_owned(),
            source,
        }
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(rustls_error(Key::ClientTlsProtocols.name()))?;
    let builder = match files::path(s, Key::ClientTlsCaFile) {
        Some(ca) => {
            let roots = files::roots(Key::ClientTlsCaFile, &ca)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
            let verifier = if mode >= SslMode::VerifyCa {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|source| TlsError::Verifier {
                key: Key::ClientTlsCaFile.name(),
                source,
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None if mode >= SslMode::VerifyCa => {
            return Err(TlsError::Missing {
                key: Key::ClientTlsCaFile.name(),
                needed_by: needed_by(),
            });
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(rustls_error(Key::ClientTlsCertFile.name()))?;
    // PostgreSQL 17 clients send it, and must for direct TLS; a different name is refused.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(config))
}
