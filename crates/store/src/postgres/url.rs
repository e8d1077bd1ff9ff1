//! The connection string: parsing it into the client's configuration, the
//! `sslmode`/`sslrootcert` parameters the client does not know itself
//! (verification through rustls), and showing it without its password.

use std::path::Path;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::{Result, StoreError};

/// How the connection is protected (libpq's `sslmode` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                    "unknown sslmode \"{other}\" in the database URL (expected disable, prefer, \
                     require, verify-ca or verify-full)"
                )));
            }
        })
    }
}

/// A parsed connection string.
pub(crate) struct Target {
    pub(crate) config: postgres::Config,
    pub(crate) tls: tokio_postgres_rustls::MakeRustlsConnect,
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((user, hosts)) => match user.split_once(':') {
                    Some((name, _)) => format!("{name}:***@{hosts}"),
                    None => format!("{user}@{hosts}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Parses `url` (`postgresql://user@host1,host2:port/db?...`).
pub(crate) fn parse(url: &str) -> Result<Target> {
    let shown = redact_url(url);
    let malformed =
        |why: String| StoreError::Config(format!("malformed database URL {shown}: {why}"));
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return Err(malformed("it must start with postgresql://".into()));
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert: Option<String> = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| malformed(format!("the value of {k} is not UTF-8")))?;
        match k {
            "sslmode" => ssl_mode = SslMode::parse(&value)?,
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = rebuilt.parse().map_err(|e: postgres::Error| {
        // The client's parse errors name the option, never its value.
        malformed(e.to_string())
    })?;
    config.ssl_mode(match ssl_mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    let tls = tls_config(ssl_mode, root_cert.as_deref().map(Path::new))?;
    Ok(Target {
        config,
        tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
    })
}

/// The ring provider: pure Rust and assembly, no C tool chain to build
/// (the alternative provider needs one). It lacks the post-quantum key
/// exchange, which PostgreSQL servers do not offer yet either.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `mode`: `verify-ca` checks the chain up to
/// `sslrootcert`, `verify-full` the host name too; `require` and `prefer`
/// encrypt without checking who answers (as libpq without a root file).
fn tls_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("cannot set up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(NoVerification {
            algorithms: provider().signature_verification_algorithms,
        }),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let path = root_cert.ok_or_else(|| {
                StoreError::Config(
                    "sslmode verify-ca and verify-full need sslrootcert=FILE in the database URL"
                        .into(),
                )
            })?;
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                StoreError::Config(format!("cannot read sslrootcert {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    StoreError::Config(format!("cannot read sslrootcert {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Config(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::Config(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| StoreError::Config(format!("cannot set up TLS: {e}")))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `require`/`prefer`: encryption without authentication of the server.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgresql://tf:s3cret@db1,db2:5433/tf?sslmode=require"),
            "postgresql://tf:***@db1,db2:5433/tf?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://tf@db/tf?password=s3cret&x=1"),
            "postgresql://tf@db/tf?password=***&x=1"
        );
        assert_eq!(redact_url("postgresql://db/tf"), "postgresql://db/tf");
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let err = |u: &str| parse(u).err().map(|e| e.to_string()).unwrap_or_default();
        let e = err("mysql://tf:s3cret@db/tf");
        assert!(
            e.contains("malformed database URL") && !e.contains("s3cret"),
            "{e}"
        );
        let e = err("postgresql://tf:s3cret@db/tf?sslmode=bogus");
        assert!(e.contains("unknown sslmode \"bogus\""), "{e}");
        let e = err("postgresql://tf:s3cret@db/tf?nonsense=1");
        assert!(
            e.contains("malformed database URL") && !e.contains("s3cret"),
            "{e}"
        );
        let e = err("postgresql://tf@db/tf?sslmode=verify-full");
        assert!(e.contains("sslrootcert"), "{e}");
        let ok =
            parse("postgresql://tf@db1,db2/tf?target_session_attrs=read-write&sslmode=disable")
                .map(|t| t.config.get_ssl_mode());
        assert_eq!(ok.ok(), Some(postgres::config::SslMode::Disable));
    }
}
