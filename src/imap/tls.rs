//! TLS for IMAP and SMTP: the rustls configuration (web PKI roots plus the account's CA file,
//! or no checks at all when the user turned them off), and certificate failures in plain words
//! with the fix: an unknown authority, a self-signed certificate, an expired one, one issued
//! for another name, a CA certificate presented as the server's own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::Server;
use crate::error::{AppError, Code, Result};

/// How certificates are checked for one account.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Builds the rustls configuration: the public web PKI roots plus `ca_file`, or no checks at
/// all when the user turned them off for this account.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AppError::local("TLS setup failed", e.to_string(), "report this as a bug"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if opts.insecure_skip_verify {
        Arc::new(NoVerify(provider))
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &opts.ca_file {
            for cert in load_pem_certs(path)? {
                roots.add(cert).map_err(|e| {
                    AppError::needs_user(
                        format!(
                            "the CA file {} holds an unusable certificate",
                            path.display()
                        ),
                        e.to_string(),
                        "pass a PEM file with the CA certificate",
                    )
                    .with_code(Code::TlsCaFile)
                })?;
            }
        }
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    AppError::local("TLS setup failed", e.to_string(), "report this as a bug")
                })?;
        Arc::new(Explain(inner))
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

pub fn load_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            AppError::needs_user(
                format!("cannot read the CA file {}", path.display()),
                e.to_string(),
                "check the --ca-file path",
            )
            .with_code(Code::TlsCaFile)
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            AppError::needs_user(
                format!("the CA file {} is not valid PEM", path.display()),
                e.to_string(),
                "pass a PEM file with the CA certificate",
            )
            .with_code(Code::TlsCaFile)
        })?;
    if certs.is_empty() {
        return Err(AppError::needs_user(
            format!("the CA file {} holds no certificate", path.display()),
            "",
            "pass a PEM file with the CA certificate",
        )
        .with_code(Code::TlsCaFile));
    }
    Ok(certs)
}

/// Wraps a TCP stream in TLS within `timeout`, turning certificate failures into errors that
/// say so.
pub async fn tls_wrap(
    tcp: TcpStream,
    server: &Server,
    opts: &TlsOptions,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>> {
    let config = client_config(opts)?;
    let host = &server.host;
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        AppError::usage(
            format!("{host:?} is not a valid server name"),
            "check the host",
        )
    })?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(AppError::transient(
            format!(
                "TLS handshake with {}:{} timed out (no answer for {} s)",
                host,
                server.port,
                timeout.as_secs()
            ),
            "",
            "check that the port speaks TLS (implicit TLS: 993/465; STARTTLS: 143/587) and that the server is up",
        )
        .with_code(Code::NetTimeout)),
        Ok(Err(e)) => Err(classify_tls_error(host, opts, &e)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// A certificate that names itself as its issuer and no trusted authority vouches for.
#[derive(Debug)]
struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed certificate")
    }
}

impl std::error::Error for SelfSigned {}

/// The web PKI verifier, telling a self-signed certificate apart from one by an unknown CA.
#[derive(Debug)]
struct Explain(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for Explain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let r =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match r {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if is_self_signed(end_entity) =>
            {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(SelfSigned)),
                )))
            }
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

/// Accepts any certificate (signatures are still checked so the handshake is well-formed).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One DER element: (tag, contents, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Whether a certificate's issuer is its own subject (X.509: tbsCertificate's fields 4 and 6).
fn is_self_signed(cert: &[u8]) -> bool {
    let parse = || -> Option<bool> {
        let (_, cert, _) = der(cert)?;
        let (_, tbs, _) = der(cert)?;
        let mut rest = tbs;
        let (tag, _, r) = der(rest)?;
        if tag == 0xa0 {
            rest = r; // explicit version
        }
        let (_, _, r) = der(rest)?; // serial
        let (_, _, r) = der(r)?; // signature algorithm
        let (_, issuer, r) = der(r)?;
        let (_, _, r) = der(r)?; // validity
        let (_, subject, _) = der(r)?;
        Some(issuer == subject)
    };
    parse().unwrap_or(false)
}

/// A name a certificate presents, without rustls's wrapping (`DnsName("a.example")`).
fn plain_name(p: &str) -> &str {
    match (p.find('"'), p.rfind('"')) {
        (Some(a), Some(b)) if b > a => &p[a + 1..b],
        _ => p,
    }
}

/// A date of a certificate, as a person reads it.
fn day(t: &UnixTime) -> String {
    chrono::DateTime::from_timestamp(t.as_secs() as i64, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "an unknown date".into())
}

/// What is wrong with a certificate and how to fix it, in plain words.
pub fn certificate_words(host: &str, e: &CertificateError, ca_file: bool) -> (String, String) {
    let skip = "or, only if you trust this network, turn checks off for this account with --insecure-skip-verify (shown as insecure)";
    let other = format!("{e:?}");
    match e {
        CertificateError::UnknownIssuer if ca_file => (
            "it is signed by an authority that the CA file given (--ca-file) does not vouch for".into(),
            format!("pass the CA that signed the server's certificate with --ca-file PEM (`mailroom account edit NAME --ca-file …`), {skip}"),
        ),
        CertificateError::UnknownIssuer => (
            "it is signed by an authority this machine does not trust (a private or unknown CA)".into(),
            format!("pass that CA's certificate with --ca-file PEM (`mailroom account edit NAME --ca-file …`), {skip}"),
        ),
        CertificateError::Other(o) if o.0.downcast_ref::<SelfSigned>().is_some() => (
            "it is self-signed: it vouches for itself and no authority this machine trusts signed it".into(),
            format!("if this is the server you mean, pass that very certificate with --ca-file PEM (mailroom then trusts exactly it), {skip}"),
        ),
        CertificateError::Expired => (
            "it has expired".into(),
            format!("the server's administrator must renew it (check this machine's clock too); until then, {skip}"),
        ),
        CertificateError::ExpiredContext { not_after, .. } => (
            format!("it expired on {}", day(not_after)),
            format!("the server's administrator must renew it (check this machine's clock too); until then, {skip}"),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "it is not valid yet".into(),
            format!("check this machine's date and time; {skip}"),
        ),
        CertificateError::NotValidForName => (
            format!("it is not issued for {host}"),
            format!("connect with a name the certificate lists (`mailroom account edit NAME --imap HOST:PORT`), or ask the administrator for a certificate that names {host}"),
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            format!(
                "it is issued for {}, not for {host}",
                presented.iter().map(|p| plain_name(p)).collect::<Vec<_>>().join(", ")
            ),
            format!("connect with a name the certificate lists (`mailroom account edit NAME --imap HOST:PORT`), or ask the administrator for a certificate that names {host}"),
        ),
        _ if other.contains("CaUsedAsEndEntity") => (
            "the server presents a CA certificate (basicConstraints CA:TRUE) as its own, which TLS does not allow".into(),
            format!("the server's administrator must install a server certificate (CA:FALSE, naming {host}) signed by that CA; until then, {skip}"),
        ),
        CertificateError::Revoked => (
            "it has been revoked".into(),
            "the server's administrator must replace it; do not turn checks off for a revoked certificate".into(),
        ),
        _ => (
            format!("it could not be verified ({})", crate::error::short_detail(&other)),
            format!("pass the server's CA with --ca-file PEM, {skip}"),
        ),
    }
}

/// The code of a certificate that failed the check.
pub fn certificate_code(e: &CertificateError) -> Code {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => Code::TlsExpired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Code::TlsNotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Code::TlsNameMismatch
        }
        CertificateError::Revoked => Code::TlsRevoked,
        _ => Code::TlsUntrusted,
    }
}

pub fn classify_tls_error(host: &str, opts: &TlsOptions, e: &std::io::Error) -> AppError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert_err)) => {
            let (why, fix) = certificate_words(host, cert_err, opts.ca_file.is_some());
            // rustls's own words (`Other(OtherError(CaUsedAsEndEntity))`) help nobody on screen.
            tracing::debug!("certificate of {host} refused: {e}");
            AppError::needs_user(
                format!("the server's TLS certificate is not trusted: {why}"),
                format!("the certificate {host} presented failed the check"),
                fix,
            )
            .with_code(certificate_code(cert_err))
        }
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            AppError::needs_user(
                format!("the server at {host} did not answer with TLS"),
                "its first bytes were not a TLS record: this port speaks plain IMAP (STARTTLS) or another protocol",
                "use --imap-security starttls for port 143, tls for 993 (`mailroom account edit NAME --imap-security …`)",
            )
            .with_code(Code::TlsNotTls)
        }
        Some(other) => AppError::transient(
            format!("TLS handshake with {host} failed"),
            crate::error::short_detail(&other.to_string()),
            "check that the port speaks TLS and the security setting (tls for 993/465, starttls for 143/587)",
        )
        .with_code(Code::TlsHandshake),
        None => AppError::transient(
            format!("TLS handshake with {host} failed"),
            crate::error::network_detail(&e.to_string(), None),
            "check that the port speaks TLS: use --imap-security starttls for port 143, tls for 993",
        )
        .with_code(Code::TlsHandshake),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_walk_reads_lengths_and_refuses_garbage() {
        assert_eq!(
            der(&[0x30, 0x02, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        let long = [&[0x04u8, 0x81, 0x03][..], &[7, 7, 7]].concat();
        assert_eq!(der(&long).map(|d| d.1.len()), Some(3));
        assert_eq!(der(&[0x30, 0x05, 1]), None);
        assert!(!is_self_signed(b"not a certificate"));
        assert_eq!(plain_name("DnsName(\"a.example\")"), "a.example");
        assert_eq!(plain_name("10.0.0.1"), "10.0.0.1");
    }
}
