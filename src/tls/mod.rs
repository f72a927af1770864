//! TLS on both sides of the pooler, with rustls: configs built from `pgbouncer.ini`, the SSLRequest
//! negotiation, and stream enums that are plain or encrypted.
//!
//! - [`TlsSettings`] turns the `client_tls_*` keys into a rustls [`ServerConfig`] (clients connect
//!   to us) and the `server_tls_*` keys into a rustls [`ClientConfig`] (we connect to PostgreSQL).
//!   Certificate, key and CA files are read here, so a reload re-reads them ([`TlsSettings::reload`]).
//! - [`client`]: our side as a TLS client of PostgreSQL ([`connect_server_tls`], [`MaybeTls`]).
//! - [`server`]: our side as a TLS server for clients ([`accept_client_tls`], [`ClientStream`]).
//!
//! Layer L1: tokio and files, no pool or session knowledge; the proxy decides when to answer `S`
//! or `N`, and the pool when to call [`connect_server_tls`]. Nothing here logs secrets or keys.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

/// Implements `AsyncRead` and `AsyncWrite` for a `Plain(S)`/`Tls(Box<_>)` enum by delegating to
/// the variant; every inner type is `Unpin`, so `Pin::new` suffices and no unsafe code is needed.
macro_rules! delegate_io {
    ($name:ident) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for $name<S> {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $name::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    $name::Tls(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }

        impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for $name<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                match self.get_mut() {
                    $name::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    $name::Tls(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> Poll<std::io::Result<usize>> {
                match self.get_mut() {
                    $name::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    $name::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $name::Plain(s) => s.is_write_vectored(),
                    $name::Tls(s) => s.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $name::Plain(s) => Pin::new(s).poll_flush(cx),
                    $name::Tls(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $name::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    $name::Tls(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

mod ciphers;
pub mod client;
mod files;
pub mod server;
mod verify;
mod x509;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConfig, CommonState, ServerConfig, SupportedProtocolVersion};

use crate::config::{Config, Key, SslMode};
use crate::error::Fault;

pub use client::{MaybeTls, connect_server_tls};
pub use server::{
    ClientStream, ServerTlsStream, accept_client_tls, peek_direct_tls, stream_for_handshake,
};

/// The ALPN protocol name PostgreSQL 17 requires on direct TLS connections.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Why TLS could not be set up or negotiated.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("{key} {path}: cannot read: {source}")]
    ReadFile {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid PEM, or holds none of what the key needs.
    #[error("{key} {path}: {problem}")]
    BadFile {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "no certificate in PEM".
        problem: String,
    },
    /// A key is required by another setting and is unset.
    #[error("{needed_by} needs {key}")]
    Missing {
        /// The unset key.
        key: &'static str,
        /// The setting that needs it, as `key = value`.
        needed_by: String,
    },
    /// `*_tls_protocols` names no version rustls supports, or an unknown word.
    #[error("{key} = {value}: {problem}")]
    Protocols {
        /// `client_tls_protocols` or `server_tls_protocols`.
        key: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// `*_tls_ciphers`, `*_tls13_ciphers` or `client_tls_ecdhcurve` leaves nothing rustls has.
    #[error("{key} = {value}: {problem}")]
    Ciphers {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the certificates or keys (a key that does not match its certificate...).
    #[error("{what}: {source}")]
    Rustls {
        /// Which keys were being combined.
        what: String,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// A verifier could not be built from the CA file (no usable trust anchor...).
    #[error("{key}: {source}")]
    Verifier {
        /// The CA file's key.
        key: &'static str,
        /// rustls' reason.
        source: rustls::server::VerifierBuilderError,
    },
    /// The server answered `N` to our SSLRequest and the mode needs TLS.
    #[error("server does not support SSL, but SSL was required")]
    ServerRefusedTls,
    /// The server answered the SSLRequest with something other than `S` or `N` (`E`: an error,
    /// e.g. a server too old for SSLRequest).
    #[error("server answered the SSLRequest with byte {0:#04x}, expected 'S' or 'N'")]
    UnexpectedResponse(u8),
    /// The host name cannot be used as a TLS server name.
    #[error("host {0:?} is not a valid TLS server name")]
    InvalidHostName(String),
    /// Bytes arrived after the SSLRequest and before the handshake; they were not encrypted
    /// and could have been injected (CVE-2021-23222).
    #[error("{0} unencrypted bytes received before the TLS handshake")]
    BufferedPlaintext(usize),
    /// Bytes were queued for the peer but not flushed before the handshake (a pooler bug).
    #[error("{0} bytes queued but not flushed before the TLS handshake")]
    UnflushedWrite(usize),
    /// The socket failed, or the handshake failed (certificate rejected, protocol mismatch...).
    #[error("{stage}: {source}")]
    Io {
        /// The step that failed.
        stage: Stage,
        /// The IO error; for a handshake, it wraps rustls' reason.
        source: std::io::Error,
    },
}

/// The step of a TLS negotiation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Sending our SSLRequest to PostgreSQL or reading its one-byte answer.
    SslRequest,
    /// Our handshake as a client of PostgreSQL.
    ServerHandshake,
    /// Our handshake as the server of a client.
    ClientHandshake,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::SslRequest => "SSLRequest",
            Stage::ServerHandshake => "TLS handshake with server",
            Stage::ClientHandshake => "TLS handshake with client",
        })
    }
}

impl TlsError {
    /// Whose fault this was: files and settings are the operator's (internal), handshakes the
    /// peer's.
    pub fn fault(&self) -> Fault {
        match self {
            TlsError::ServerRefusedTls | TlsError::UnexpectedResponse(_) => Fault::Server,
            TlsError::BufferedPlaintext(_) => Fault::Client,
            TlsError::Io {
                stage: Stage::ClientHandshake,
                ..
            } => Fault::Client,
            TlsError::Io { .. } => Fault::Server,
            _ => Fault::Internal,
        }
    }
}

/// The TLS configuration of both sides, built from one [`Config`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// `client_tls_sslmode`.
    pub client_mode: SslMode,
    /// For clients connecting to us; `None` when `client_tls_sslmode = disable` (answer `N`).
    pub client: Option<Arc<ServerConfig>>,
    /// `server_tls_sslmode`.
    pub server_mode: SslMode,
    /// For our connections to PostgreSQL; `None` when `server_tls_sslmode = disable`.
    pub server: Option<Arc<ClientConfig>>,
}

impl TlsSettings {
    /// Reads the `client_tls_*` and `server_tls_*` keys and the files they name.
    ///
    /// Errors name the key, the file and the problem (missing file, no certificate in the PEM,
    /// a key that does not match its certificate...).
    pub fn from_config(config: &Config) -> Result<TlsSettings, TlsError> {
        let s = &config.pgbouncer;
        let client_mode = s.client_tls_sslmode();
        let server_mode = s.server_tls_sslmode();
        Ok(TlsSettings {
            client_mode,
            client: server::server_config(s)?.map(Arc::new),
            server_mode,
            server: client::client_config(s)?.map(Arc::new),
        })
    }

    /// Builds the settings of a reloaded config, re-reading every file (renewed certificates
    /// take effect for new connections; open ones keep theirs).
    ///
    /// On error the caller keeps using `self`, as PgBouncer keeps its old TLS context when a
    /// reload fails, and reports the error.
    pub fn reload(&self, config: &Config) -> Result<TlsSettings, TlsError> {
        Self::from_config(config)
    }

    /// [`connect_server_tls`] with `server_tls_sslmode` and its config; plaintext under
    /// `disable`. The pool's entry point for a new TCP connection to PostgreSQL.
    pub async fn connect_server<S>(&self, stream: S, host: &str) -> Result<MaybeTls<S>, TlsError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match &self.server {
            Some(config) => connect_server_tls(stream, host, self.server_mode, config).await,
            None => Ok(MaybeTls::Plain(stream)),
        }
    }

    /// True when `client_tls_sslmode` lets a client log in without TLS (below `require`).
    pub fn client_may_skip_tls(&self) -> bool {
        self.client_mode < SslMode::Require
    }
}

/// Parses `client_tls_protocols`/`server_tls_protocols` (PgBouncer's words: `tlsv1.0` to
/// `tlsv1.3`, `all`, `secure`, `legacy`, separated by commas or spaces) into the versions rustls
/// has. rustls has no TLS 1.0 or 1.1, so `all` and `legacy` mean TLS 1.2 and 1.3.
pub fn protocol_versions(
    key: Key,
    value: &str,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let (mut v12, mut v13) = (false, false);
    let fail = |problem: String| TlsError::Protocols {
        key: key.name(),
        value: value.to_owned(),
        problem,
    };
    for word in value.split([',', ' ', ':']).filter(|w| !w.is_empty()) {
        match word.to_ascii_lowercase().as_str() {
            "all" | "secure" | "legacy" | "default" => (v12, v13) = (true, true),
            "tlsv1.2" => v12 = true,
            "tlsv1.3" => v13 = true,
            "tlsv1" | "tlsv1.0" | "tlsv1.1" => {}
            _ => return Err(fail(format!("unknown TLS protocol {word:?}"))),
        }
    }
    let mut versions = Vec::new();
    if v12 {
        versions.push(&rustls::version::TLS12);
    }
    if v13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(fail("rustls supports only tlsv1.2 and tlsv1.3".to_owned()));
    }
    Ok(versions)
}

/// Access to the TLS state of a stream that may or may not be encrypted.
pub trait TlsInfo {
    /// The rustls connection state, `None` for a plaintext stream.
    fn tls_state(&self) -> Option<&CommonState>;
}

/// "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519": protocol version, cipher suite and key exchange
/// in PgBouncer's format (OpenSSL's names), for logs and the `tls` column of SHOW
/// CLIENTS/SERVERS; `None` for a plaintext stream.
pub fn describe(stream: &impl TlsInfo) -> Option<String> {
    let state = stream.tls_state()?;
    let version = match state.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        other => format!("{other:?}"),
    };
    let suite = ciphers::openssl_suite_name(state.negotiated_cipher_suite()?.suite());
    Some(match state.negotiated_key_exchange_group() {
        Some(group) => {
            let group = ciphers::openssl_group_name(group.name());
            format!("{version}/{suite}/ECDH={group}")
        }
        None => format!("{version}/{suite}"),
    })
}

/// The common name (CN) of the peer's certificate: the client's, for `auth_type = cert`. `None`
/// for plaintext, no certificate, or no CN. Only meaningful when the certificate was verified
/// (`client_tls_sslmode` ≥ verify-ca, or a `client_tls_ca_file` with an optional certificate).
pub fn client_cert_common_name(stream: &impl TlsInfo) -> Option<String> {
    let cert = stream.tls_state()?.peer_certificates()?.first()?;
    x509::subject_common_name(cert.as_ref())
}

/// True when the client negotiated the `postgresql` ALPN protocol, which PostgreSQL 17 demands
/// on direct TLS connections.
pub fn negotiated_postgresql_alpn(stream: &impl TlsInfo) -> bool {
    stream
        .tls_state()
        .and_then(CommonState::alpn_protocol)
        .is_some_and(|p| p == ALPN_POSTGRESQL)
}

#[cfg(test)]
mod tests;
