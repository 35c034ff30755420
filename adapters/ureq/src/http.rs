//! Performing the core's requests with ureq, and the client's TLS trust settings.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apolloconf_core::{HttpRequest, TransportError, TransportErrorKind};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::Error;

/// The largest body accepted (anything bigger is `TooLarge`).
pub(crate) const MAX_BODY: u64 = 16 * 1024 * 1024;

/// Extra trust given to the builder, checked at `build()`.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsOptions {
    /// Extra root certificates, in the order given.
    pub roots: Vec<RootSource>,
    /// Verify with the operating system's verifier instead of the bundled roots.
    #[cfg(feature = "platform-verifier")]
    pub platform_verifier: bool,
}

/// Where an extra root certificate comes from.
#[derive(Clone)]
pub(crate) enum RootSource {
    /// PEM bytes given directly; the number counts the calls of `tls_root_pem` from 1.
    Pem(usize, Vec<u8>),
    /// A PEM file, read at `build()`.
    File(PathBuf),
}

impl std::fmt::Debug for RootSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.origin())
    }
}

impl RootSource {
    fn origin(&self) -> String {
        match self {
            RootSource::Pem(n, _) => format!("PEM #{n} given to tls_root_pem"),
            RootSource::File(p) => format!("file {}", p.display()),
        }
    }
}

fn root_error(source: &RootSource, message: impl Into<String>) -> Error {
    Error::TlsRoot {
        origin: source.origin(),
        message: message.into(),
    }
}

/// Every `CERTIFICATE` block of one source, each checked to be usable as a trust anchor.
fn load_roots(source: &RootSource) -> Result<Vec<Certificate<'static>>, Error> {
    let file;
    let pem: &[u8] = match source {
        RootSource::Pem(_, pem) => pem,
        RootSource::File(path) => {
            file = std::fs::read(path).map_err(|e| root_error(source, e.to_string()))?;
            &file
        }
    };
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => {
                // rustls would silently skip a certificate it cannot use as a root; check
                // it here so the mistake is reported when the client is built.
                let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
                rustls::RootCertStore::empty().add(der).map_err(|e| {
                    root_error(source, format!("certificate #{}: {e}", certs.len() + 1))
                })?;
                certs.push(cert);
            }
            Ok(_) => {}
            Err(e) => return Err(root_error(source, format!("invalid PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(root_error(
            source,
            "no PEM CERTIFICATE block (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The roots ureq verifies with: its bundled Mozilla roots alone (the default), or the
/// same Mozilla roots plus every extra root (ureq's `Specific` roots replace the bundled
/// ones, so they are handed over together), or the platform verifier.
fn root_certs(tls: &TlsOptions) -> Result<RootCerts, Error> {
    let mut extra = Vec::new();
    for source in &tls.roots {
        extra.extend(load_roots(source)?);
    }
    #[cfg(feature = "platform-verifier")]
    if tls.platform_verifier {
        if !extra.is_empty() {
            return Err(Error::TlsRoot {
                origin: "tls_platform_verifier".to_string(),
                message: "the platform verifier cannot be combined with extra roots: \
                          install the CA in the system's trust store instead"
                    .to_string(),
            });
        }
        return Ok(RootCerts::PlatformVerifier);
    }
    if extra.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    let public = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()));
    let all: Vec<Certificate<'static>> = public.chain(extra).collect();
    Ok(RootCerts::Specific(Arc::new(all)))
}

/// The agent every request of one client goes through.
pub(crate) fn agent(tls: &TlsOptions) -> Result<ureq::Agent, Error> {
    let tls_config = TlsConfig::builder().root_certs(root_certs(tls)?).build();
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("apolloconf/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls_config)
        .build()
        .new_agent())
}

/// A TLS failure found in a ureq error, if it is one: rustls' errors reach ureq either
/// directly or wrapped in the `io::Error` of the handshake.
fn tls_failure(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Rustls(r) => Some(describe_tls(r)),
        ureq::Error::Tls(msg) => Some((*msg).to_string()),
        ureq::Error::Pem(p) => Some(format!("PEM: {p:?}")),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(describe_tls),
        _ => None,
    }
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError;
    let hint = match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            " (the server's certificate is not signed by a trusted CA; trust a private CA \
             with ClientBuilder::tls_root_pem / tls_root_file, or --ca-file on the command line)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// The kind the core sees. A TLS failure while the request is being sent (the handshake:
/// an untrusted certificate, a wrong host name, no common protocol) is `Tls`: no usable
/// connection to the server was made, and the core retries it like a refused connection;
/// one while the answer is read is `Io`. Either way the message
/// starts with `TLS error:` and keeps rustls' description.
fn classify(e: &ureq::Error, sending: bool) -> TransportErrorKind {
    if tls_failure(e).is_some() {
        return if sending {
            TransportErrorKind::Tls
        } else {
            TransportErrorKind::Io
        };
    }
    match e {
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => TransportErrorKind::Connect,
        ureq::Error::BodyExceedsLimit(_) => TransportErrorKind::TooLarge,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotFound => {
                TransportErrorKind::Connect
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => TransportErrorKind::Timeout,
            _ => TransportErrorKind::Io,
        },
        ureq::Error::Protocol(_) => TransportErrorKind::Io,
        _ => TransportErrorKind::Other,
    }
}

fn fail(e: &ureq::Error, sending: bool) -> TransportError {
    let message = match tls_failure(e) {
        Some(tls) => format!("TLS error: {tls}"),
        None => e.to_string(),
    };
    // Some of ureq's errors quote the URL (a bad URI, a redirect).
    let message = crate::settings::redact_credentials(&message).into_owned();
    TransportError::new(classify(e, sending), message)
}

/// The longest timeout handed to ureq, which adds timeouts to instants and would
/// overflow on `Duration::MAX`: a year is "never" for a request.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Run one GET to completion: `(status, body)` or the transport failure.
pub(crate) fn perform(
    agent: &ureq::Agent,
    req: &HttpRequest,
) -> Result<(u16, Vec<u8>), TransportError> {
    let connect = req.connect_timeout.min(MAX_TIMEOUT);
    let total = req
        .connect_timeout
        .saturating_add(req.timeout)
        .min(MAX_TIMEOUT);
    let mut builder = agent
        .get(&req.url)
        .config()
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .timeout_global(Some(total))
        .build();
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder.call().map_err(|e| fail(&e, true))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .into_with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| fail(&e, false))?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("ca").pem()
    }

    #[test]
    fn extra_roots_are_added_to_the_public_ones() {
        assert!(matches!(
            root_certs(&TlsOptions::default()),
            Ok(RootCerts::WebPki)
        ));
        let public = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert!(public > 100, "{public}");
        let two = format!("{}{}", ca_pem(), ca_pem());
        let mut tls = TlsOptions::default();
        tls.roots.push(RootSource::Pem(1, two.into_bytes()));
        tls.roots.push(RootSource::Pem(2, ca_pem().into_bytes()));
        match root_certs(&tls) {
            Ok(RootCerts::Specific(all)) => {
                assert_eq!(all.len(), public + 3);
                // The public roots come first, unchanged.
                for (ours, theirs) in all.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
                    assert_eq!(ours.der(), theirs.as_ref());
                }
            }
            other => panic!("expected Specific roots, got {other:?}"),
        }
    }
}
