//! Certificates made at test time with rcgen, written as PEM files: a CA, a server certificate
//! for `localhost` and `127.0.0.1`, a client certificate with CN `tls_user`, and a second,
//! unrelated CA. Shared by the integration tests and (through `#[path]`) the `tls` unit tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The CN of the client certificate.
pub const CLIENT_CN: &str = "tls_user";

/// PEM files in a temporary directory, removed on drop.
pub struct TestCerts {
    /// The directory holding every file.
    pub dir: tempfile::TempDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// Server certificate (SANs `localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// Client certificate with CN [`CLIENT_CN`].
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, cn: &str, sans: &[&str]) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

impl TestCerts {
    /// Generates everything into a new temporary directory.
    pub fn generate() -> TestCerts {
        let dir = tempfile::tempdir().unwrap();
        let root = ca("bouncectl test CA");
        let other = ca("unrelated CA");
        let (server_cert, server_key) = leaf(&root, "localhost", &["localhost", "127.0.0.1"]);
        let (client_cert, client_key) = leaf(&root, CLIENT_CN, &[]);
        let d = dir.path();
        TestCerts {
            ca: write(d, "ca.crt", &root.pem()),
            server_cert: write(d, "server.crt", &server_cert),
            server_key: write(d, "server.key", &server_key),
            client_cert: write(d, "client.crt", &client_cert),
            client_key: write(d, "client.key", &client_key),
            other_ca: write(d, "other-ca.crt", &other.pem()),
            dir,
        }
    }

    /// Writes `text` as a file in the directory (for bad-PEM cases).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write(self.dir.path(), name, text)
    }
}
