//! `*_tls_ciphers`, `*_tls13_ciphers` and `client_tls_ecdhcurve` as a rustls crypto provider
//! holding only the suites and curves they allow.
//!
//! PgBouncer hands these strings to OpenSSL. rustls has far fewer suites: for TLS 1.2 only
//! ECDHE with AES-GCM or ChaCha20-Poly1305, all of OpenSSL's `HIGH`. So the OpenSSL syntax is
//! evaluated against those six: `:`-separated items, `+` joining aliases that must all match,
//! `!` (remove for good), `-` (remove) and `+` (move to the end) prefixes, and PgBouncer's
//! shortcuts (`default`, `secure`, `fast`, `normal`, `all`, `legacy`...) expanded as libusual
//! does. An alias that names nothing rustls has (`3DES`, `aNULL`, `kRSA`...) matches nothing,
//! as it would match nothing OpenSSL offers here; a list that leaves no suite is an error.

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, SupportedCipherSuite};

use super::TlsError;
use crate::config::{Key, Settings};

/// Which end of the pooler a provider is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Side {
    /// Toward clients: `client_tls_*`.
    Clients,
    /// Toward servers: `server_tls_*`.
    Servers,
}

/// The ring provider cut down to what `s` allows on `side`.
pub(super) fn provider(s: &Settings, side: Side) -> Result<Arc<CryptoProvider>, TlsError> {
    let (tls12_key, tls13_key) = match side {
        Side::Clients => (Key::ClientTlsCiphers, Key::ClientTls13Ciphers),
        Side::Servers => (Key::ServerTlsCiphers, Key::ServerTls13Ciphers),
    };
    let mut provider = rustls::crypto::ring::default_provider();
    let all = std::mem::take(&mut provider.cipher_suites);
    let (tls13, tls12): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| s.tls13().is_some());
    let list = s.text(tls12_key).unwrap_or("default");
    let mut suites = tls12_suites(&tls12, list).map_err(refused(tls12_key, list))?;
    let tls13 = match s.text(tls13_key) {
        None => tls13,
        Some(list) => tls13_suites(&tls13, list).map_err(refused(tls13_key, list))?,
    };
    // TLS 1.3 first, as rustls orders them.
    suites.splice(0..0, tls13);
    provider.cipher_suites = suites;
    if let Side::Clients = side {
        let curves = s.text(Key::ClientTlsEcdhcurve).unwrap_or("auto");
        provider.kx_groups = kx_groups(std::mem::take(&mut provider.kx_groups), curves)
            .map_err(refused(Key::ClientTlsEcdhcurve, curves))?;
    }
    Ok(Arc::new(provider))
}

/// The error for `key = value` leaving nothing rustls has, saying why.
fn refused(key: Key, value: &str) -> impl FnOnce(String) -> TlsError + '_ {
    move |problem| TlsError::Ciphers {
        key: key.name(),
        value: value.to_owned(),
        problem,
    }
}

/// What OpenSSL knows about one of rustls' TLS 1.2 suites.
struct Tls12 {
    suite: CipherSuite,
    openssl: &'static str,
    /// Authentication: `RSA` or `ECDSA`.
    auth: &'static str,
    /// Encryption: `AES128GCM`, `AES256GCM` or `CHACHA20`.
    enc: &'static str,
}

const TLS12: &[Tls12] = &[
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        auth: "ECDSA",
        enc: "AES256GCM",
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        auth: "ECDSA",
        enc: "AES128GCM",
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        auth: "ECDSA",
        enc: "CHACHA20",
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        auth: "RSA",
        enc: "AES256GCM",
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        auth: "RSA",
        enc: "AES128GCM",
    },
    Tls12 {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        auth: "RSA",
        enc: "CHACHA20",
    },
];

/// A suite's name as OpenSSL (and so PgBouncer's `tls=` and SHOW's `tls` column) spells it:
/// `ECDHE-RSA-AES256-GCM-SHA384` for TLS 1.2, `TLS_AES_256_GCM_SHA384` for TLS 1.3 (rustls
/// says `TLS13_AES_256_GCM_SHA384`).
pub(super) fn openssl_suite_name(suite: CipherSuite) -> String {
    match TLS12.iter().find(|t| t.suite == suite) {
        Some(t) => t.openssl.to_owned(),
        None => format!("{suite:?}").replacen("TLS13_", "TLS_", 1),
    }
}

/// A key exchange group's OpenSSL short name (`X25519`, `prime256v1`, `secp384r1`).
pub(super) fn openssl_group_name(group: rustls::NamedGroup) -> String {
    match group {
        rustls::NamedGroup::secp256r1 => "prime256v1".to_owned(),
        other => format!("{other:?}"),
    }
}

/// PgBouncer's shortcuts, as libusual expands them.
fn expand(list: &str) -> &str {
    match list.to_ascii_lowercase().as_str() {
        "default" | "secure" => "HIGH+EECDH:HIGH+EDH:!SSLv3:!SHA384:!SHA256:!DSS:!aNULL",
        "compat" | "legacy" => "HIGH:+3DES:!aNULL",
        "insecure" | "all" => "ALL:!aNULL:!eNULL",
        "normal" => {
            "HIGH+EECDH:HIGH+EDH:HIGH+RSA:+SHA384:+SHA256:+SSLv3:+EDH:+RSA:-3DES:3DES+RSA:\
             !CAMELLIA:!DSS:!aNULL"
        }
        "fast" => {
            "HIGH+EECDH:HIGH+EDH:HIGH+RSA:+AES256:+SHA256:+SHA384:+SSLv3:+EDH:+RSA:-3DES:\
             3DES+RSA:!CAMELLIA:!DSS:!aNULL"
        }
        _ => list,
    }
}

/// Whether one OpenSSL alias (or a suite's own name) takes in `suite`. SHA256 and SHA384 name
/// a MAC, which AEAD suites do not have, so they match nothing here, as in OpenSSL.
fn alias_matches(alias: &str, suite: &Tls12) -> bool {
    let iana = format!("{:?}", suite.suite);
    match alias {
        "ALL" | "DEFAULT" | "HIGH" | "EECDH" | "ECDHE" | "kECDHE" | "kEECDH" | "ECDH" | "AEAD"
        | "TLSv1.2" => true,
        "RSA" | "aRSA" => suite.auth == "RSA",
        "ECDSA" | "aECDSA" => suite.auth == "ECDSA",
        "AES" | "AESGCM" => suite.enc.starts_with("AES"),
        "AES128" => suite.enc == "AES128GCM",
        "AES256" => suite.enc == "AES256GCM",
        "CHACHA20" => suite.enc == "CHACHA20",
        name => name == suite.openssl || name == iana,
    }
}

/// Evaluates an OpenSSL cipher list against rustls' TLS 1.2 suites.
fn tls12_suites(
    available: &[SupportedCipherSuite],
    list: &str,
) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut chosen: Vec<CipherSuite> = Vec::new();
    let mut banned: Vec<CipherSuite> = Vec::new();
    for item in expand(list)
        .split([':', ',', ' '])
        .filter(|i| !i.is_empty())
    {
        let (op, body) = match item.as_bytes().first() {
            Some(b'!' | b'-' | b'+') => item.split_at(1),
            _ => ("", item),
        };
        if body.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering and levels, nothing to choose here
        }
        let matching: Vec<CipherSuite> = TLS12
            .iter()
            .filter(|s| body.split('+').all(|alias| alias_matches(alias, s)))
            .map(|s| s.suite)
            .collect();
        match op {
            "!" => {
                chosen.retain(|s| !matching.contains(s));
                banned.extend(matching);
            }
            "-" => chosen.retain(|s| !matching.contains(s)),
            "+" => {
                let (moved, kept): (Vec<_>, Vec<_>) =
                    chosen.iter().partition(|s| matching.contains(s));
                chosen = kept.into_iter().chain(moved).collect();
            }
            _ => {
                for suite in matching {
                    if !chosen.contains(&suite) && !banned.contains(&suite) {
                        chosen.push(suite);
                    }
                }
            }
        }
    }
    let suites: Vec<SupportedCipherSuite> = chosen
        .iter()
        .filter_map(|c| available.iter().find(|s| s.suite() == *c).copied())
        .collect();
    if suites.is_empty() {
        return Err(format!(
            "no TLS 1.2 cipher rustls supports (it has {})",
            TLS12
                .iter()
                .map(|s| s.openssl)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(suites)
}

/// A `:`-separated list of TLS 1.3 suite names, as OpenSSL's `SSL_CTX_set_ciphersuites`.
fn tls13_suites(
    available: &[SupportedCipherSuite],
    list: &str,
) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut suites = Vec::new();
    for name in list.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let found = available
            .iter()
            .find(|s| openssl_suite_name(s.suite()) == name);
        if let Some(suite) = found.filter(|s| !suites.contains(*s)) {
            suites.push(*suite);
        }
    }
    if suites.is_empty() {
        return Err(
            "no TLS 1.3 suite rustls supports (it has TLS_AES_256_GCM_SHA384, \
                    TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256)"
                .to_owned(),
        );
    }
    Ok(suites)
}

/// `client_tls_ecdhcurve`: `auto` (every curve rustls has), or curve names in OpenSSL's or the
/// IANA spelling.
fn kx_groups(
    available: Vec<&'static dyn SupportedKxGroup>,
    curves: &str,
) -> Result<Vec<&'static dyn SupportedKxGroup>, String> {
    if curves.eq_ignore_ascii_case("auto") {
        return Ok(available);
    }
    let mut chosen: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in curves.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let iana = match name.to_ascii_lowercase().as_str() {
            "prime256v1" | "secp256r1" | "p-256" => "secp256r1",
            "secp384r1" | "p-384" => "secp384r1",
            "x25519" => "X25519",
            "none" => return Err("rustls offers only ECDHE key exchange: a curve is needed".into()),
            _ => return Err(format!("unknown or unsupported curve {name:?}")),
        };
        let group = available
            .iter()
            .find(|g| format!("{:?}", g.name()) == iana)
            .ok_or_else(|| format!("curve {name:?} is not available"))?;
        chosen.push(*group);
    }
    if chosen.is_empty() {
        return Err("no curve named".to_owned());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls12() -> Vec<SupportedCipherSuite> {
        rustls::crypto::ring::default_provider()
            .cipher_suites
            .into_iter()
            .filter(|s| s.tls13().is_none())
            .collect()
    }

    fn names(list: &str) -> Result<Vec<&'static str>, String> {
        let suites = tls12_suites(&tls12(), list)?;
        Ok(suites
            .iter()
            .map(|s| {
                TLS12
                    .iter()
                    .find(|t| t.suite == s.suite())
                    .map_or("?", |t| t.openssl)
            })
            .collect())
    }

    #[test]
    fn pgbouncers_shortcuts_keep_every_rustls_suite() {
        for shortcut in [
            "default", "secure", "fast", "normal", "all", "legacy", "FAST",
        ] {
            assert_eq!(names(shortcut).unwrap().len(), 6, "{shortcut}");
        }
    }

    #[test]
    fn openssl_lists_choose_remove_and_reorder() {
        assert_eq!(
            names("ECDHE-RSA-AES256-GCM-SHA384").unwrap(),
            ["ECDHE-RSA-AES256-GCM-SHA384"]
        );
        assert_eq!(
            names("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").unwrap(),
            ["ECDHE-ECDSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("HIGH+ECDSA:!CHACHA20").unwrap(),
            [
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256"
            ]
        );
        assert_eq!(
            names("AES128:AES256:-aRSA").unwrap(),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384"
            ]
        );
        // `!` bans for good, `-` only until named again.
        assert_eq!(
            names("!AES256:-CHACHA20:HIGH+ECDSA").unwrap(),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
        assert_eq!(
            names("CHACHA20+ECDSA:AES128+ECDSA:+CHACHA20").unwrap(),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
        // SHA384 names a MAC: the AEAD suites survive `!SHA384`, as in OpenSSL.
        assert_eq!(names("ECDHE:!SHA384:!SHA256").unwrap().len(), 6);
    }

    #[test]
    fn a_list_that_leaves_nothing_is_refused() {
        for list in [
            "3DES:RC4",
            "kRSA",
            "HIGH:!ECDHE",
            "DHE-RSA-AES256-GCM-SHA384",
        ] {
            let e = names(list).unwrap_err();
            assert!(
                e.starts_with("no TLS 1.2 cipher rustls supports"),
                "{list}: {e}"
            );
        }
    }

    #[test]
    fn tls13_names_are_openssls() {
        let all: Vec<_> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .into_iter()
            .filter(|s| s.tls13().is_some())
            .collect();
        let chosen =
            tls13_suites(&all, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256").unwrap();
        assert_eq!(
            chosen.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            [CipherSuite::TLS13_CHACHA20_POLY1305_SHA256]
        );
        assert!(tls13_suites(&all, "TLS_AES_128_CCM_SHA256").is_err());
    }

    #[test]
    fn names_are_spelled_as_openssl_spells_them() {
        assert_eq!(
            openssl_suite_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_suite_name(CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
            "ECDHE-RSA-CHACHA20-POLY1305"
        );
        assert_eq!(
            openssl_group_name(rustls::NamedGroup::secp256r1),
            "prime256v1"
        );
        assert_eq!(openssl_group_name(rustls::NamedGroup::X25519), "X25519");
    }

    #[test]
    fn curves_by_openssl_name() {
        let all = rustls::crypto::ring::default_provider().kx_groups;
        assert_eq!(kx_groups(all.clone(), "auto").unwrap().len(), all.len());
        let one = kx_groups(all.clone(), "prime256v1").unwrap();
        assert_eq!(format!("{:?}", one[0].name()), "secp256r1");
        assert_eq!(kx_groups(all.clone(), "X25519:secp384r1").unwrap().len(), 2);
        assert!(kx_groups(all.clone(), "none").is_err());
        assert!(kx_groups(all, "brainpoolP256r1").is_err());
    }
}
