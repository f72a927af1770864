//! The pooler as a TLS client of PostgreSQL: the `server_tls_*` keys as a rustls
//! [`ClientConfig`], the SSLRequest exchange, and [`MaybeTls`], the server connection's stream.
//!
//! `server_tls_sslmode` follows libpq: `disable` sends no SSLRequest; `allow` and `prefer` use TLS
//! when the server offers it and plaintext when it answers `N` (as PgBouncer, `allow` does not
//! first try plaintext); `require` insists on TLS without checking the certificate;
//! `verify-ca` checks the chain against `server_tls_ca_file`; `verify-full` the host name too.
//! TLS is for TCP: the caller skips it on Unix sockets, as PgBouncer does.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, CommonState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsConnector;

use super::ciphers::{self, Side};
use super::verify::{AcceptAnyCertificate, ChainOnly};
use super::{ALPN_POSTGRESQL, Stage, TlsError, TlsInfo, files, protocol_versions};
use crate::config::{Key, Settings, SslMode};
use crate::protocol::startup::ssl_request;

/// The stream of a connection to PostgreSQL: plaintext or TLS.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// No TLS (`disable`, or `allow`/`prefer` and the server said `N`).
    Plain(S),
    /// TLS over the socket.
    Tls(Box<tokio_rustls::client::TlsStream<S>>),
}

delegate_io!(MaybeTls);

impl<S> MaybeTls<S> {
    /// True when encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The socket underneath (for its addresses or socket options).
    pub fn get_ref(&self) -> &S {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(t) => t.get_ref().0,
        }
    }
}

impl<S> TlsInfo for MaybeTls<S> {
    fn tls_state(&self) -> Option<&CommonState> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(t) => Some(t.get_ref().1),
        }
    }
}

/// Negotiates TLS on a fresh connection to PostgreSQL, before the StartupMessage.
///
/// Sends an SSLRequest and reads the one-byte answer: `S` starts the handshake (SNI and, under
/// `verify-full`, the certificate's names are checked against `host`, an IP address or a DNS
/// name); `N` continues in plaintext under `allow`/`prefer` and fails under `require` and
/// above; anything else fails. Under `disable` nothing is sent. Exactly one byte is read
/// before the handshake, so nothing unencrypted is left buffered (CVE-2021-23222).
///
/// Under TLS 1.3 the handshake completes on our side before the server has checked our
/// client certificate (`server_tls_cert_file`): a rejection arrives as an alert on the first
/// read, so the caller must treat a read error during login as a failed connection.
///
/// No timeout here: the caller wraps this in `server_connect_timeout`.
#[tracing::instrument(level = "debug", skip(stream, config))]
pub async fn connect_server_tls<S>(
    mut stream: S,
    host: &str,
    mode: SslMode,
    config: &Arc<ClientConfig>,
) -> Result<MaybeTls<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if mode == SslMode::Disable {
        return Ok(MaybeTls::Plain(stream));
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| TlsError::InvalidHostName(host.to_owned()))?;
    let io = |source| TlsError::Io {
        stage: Stage::SslRequest,
        source,
    };
    let mut request = BytesMut::with_capacity(8);
    ssl_request(&mut request);
    stream.write_all(&request).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(io)?;
    let [answer] = answer;
    match answer {
        b'S' => {
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .map_err(|source| TlsError::Io {
                    stage: Stage::ServerHandshake,
                    source,
                })?;
            Ok(MaybeTls::Tls(Box::new(tls)))
        }
        b'N' if mode <= SslMode::Prefer => Ok(MaybeTls::Plain(stream)),
        b'N' => Err(TlsError::ServerRefusedTls),
        other => Err(TlsError::UnexpectedResponse(other)),
    }
}

/// The `server_tls_*` keys as a rustls client config; `None` under `disable`.
pub(super) fn client_config(s: &Settings) -> Result<Option<ClientConfig>, TlsError> {
    let mode = s.server_tls_sslmode();
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = ciphers::provider(s, Side::Servers)?;
    let protocols = s.text(Key::ServerTlsProtocols).unwrap_or("secure");
    let versions = protocol_versions(Key::ServerTlsProtocols, protocols)?;
    let verifier: Arc<dyn ServerCertVerifier> = if mode >= SslMode::VerifyCa {
        let ca = files::required(s, Key::ServerTlsCaFile, || {
            format!("server_tls_sslmode = {}", s.render(Key::ServerTlsSslmode))
        })?;
        let roots = files::roots(Key::ServerTlsCaFile, &ca)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|source| TlsError::Verifier {
                key: Key::ServerTlsCaFile.name(),
                source,
            })?;
        if mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(ChainOnly::new(webpki))
        }
    } else {
        Arc::new(AcceptAnyCertificate::new(Arc::clone(&provider)))
    };
    let rustls_error = |what: &str| {
        let what = what.to_owned();
        move |source| TlsError::Rustls { what, source }
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(rustls_error(Key::ServerTlsProtocols.name()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let own = files::certified_key(s, Key::ServerTlsCertFile, Key::ServerTlsKeyFile, &provider)?;
    let mut config = match own {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(rustls_error(Key::ServerTlsCertFile.name()))?,
        None => builder.with_no_client_auth(),
    };
    // PostgreSQL 17 checks the ALPN name when one is sent; older servers ignore it.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(config))
}
