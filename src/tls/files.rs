//! Reading PEM certificate chains, private keys and CA bundles named by config keys, with errors
//! that name the key, the file and the problem. No TLS logic here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;
use crate::config::{Key, Settings};

/// The path in `key`, or `None` when unset.
pub(super) fn path(settings: &Settings, key: Key) -> Option<PathBuf> {
    settings.text(key).map(PathBuf::from)
}

/// The path in `key`, or an error saying `needed_by` needs it.
pub(super) fn required(
    settings: &Settings,
    key: Key,
    needed_by: impl FnOnce() -> String,
) -> Result<PathBuf, TlsError> {
    path(settings, key).ok_or_else(|| TlsError::Missing {
        key: key.name(),
        needed_by: needed_by(),
    })
}

fn read(key: Key, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::ReadFile {
        key: key.name(),
        path: path.to_owned(),
        source,
    })
}

fn bad(key: Key, path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::BadFile {
        key: key.name(),
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Every certificate in the PEM file, in order (leaf first for a chain); at least one.
pub(super) fn certificates(
    key: Key,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(key, path, "no certificate in PEM"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file.
pub(super) fn private_key(key: Key, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => bad(key, path, "no private key in PEM"),
        e => bad(key, path, format!("invalid PEM: {e}")),
    })
}

/// A CA bundle (one or many certificates, like the RDS global bundle) as trust anchors;
/// certificates rustls cannot use as anchors are skipped, but at least one must remain.
pub(super) fn roots(key: Key, path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let certs = certificates(key, path)?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad(key, path, "no usable CA certificate"));
    }
    Ok(Arc::new(store))
}

/// The certificate chain and private key named by `cert_key` and `key_key`, checked to belong
/// together (a key that does not match its certificate is the usual rotation mistake).
pub(super) fn certified_key(
    settings: &Settings,
    cert_key: Key,
    key_key: Key,
    provider: &CryptoProvider,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    let (Some(cert_path), Some(key_path)) = (path(settings, cert_key), path(settings, key_key))
    else {
        return Ok(None);
    };
    let chain = certificates(cert_key, &cert_path)?;
    let key = private_key(key_key, &key_path)?;
    CertifiedKey::from_der(chain.clone(), key.clone_key(), provider).map_err(|source| {
        TlsError::Rustls {
            what: format!(
                "{} {} and {} {}",
                key_key.name(),
                key_path.display(),
                cert_key.name(),
                cert_path.display()
            ),
            source,
        }
    })?;
    Ok(Some((chain, key)))
}
