//! The optional https listener: PEM parsing and the rustls server configuration.

use std::io::{Error, ErrorKind};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its private key, both PEM, as given to the builder.
#[derive(Clone)]
pub(crate) struct TlsPem {
    pub cert_chain: Vec<u8>,
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    /// The key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field(
                "cert_chain",
                &format_args!("{} bytes", self.cert_chain.len()),
            )
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn invalid(what: String) -> Error {
    Error::new(ErrorKind::InvalidInput, what)
}

/// Parse the PEM and build an acceptor; every problem is an `InvalidInput` error.
pub(crate) fn acceptor(pem: &TlsPem) -> std::io::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_slice_iter(&pem.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("tls certificate chain: invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            "tls certificate chain: no CERTIFICATE block in the PEM".to_string(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.private_key)
        .map_err(|e| invalid(format!("tls private key: {e}")))?;
    // The provider is named explicitly so the result does not depend on which rustls
    // crypto features other crates of the build happen to enable.
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("tls certificate or key rejected: {e}")))?;
    // Only HTTP/1.1 is served.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A throwaway certificate authority and a server certificate it signed, all PEM, for
/// https tests: start a server with `TestServer::builder().tls(pki.cert_pem.clone(),
/// pki.key_pem.clone())` and make the client trust `ca_pem`.
#[derive(Clone)]
pub struct TestPki {
    /// The CA's certificate: what a client must trust.
    pub ca_pem: String,
    /// The server certificate, signed by the CA.
    pub cert_pem: String,
    /// The server certificate's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TestPki {
    /// The key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl TestPki {
    /// A new CA with a unique name (so a client trusting another test CA sees an unknown
    /// issuer, not a bad signature) and a server certificate for `names` (IP addresses or
    /// DNS names, e.g. `["127.0.0.1", "localhost"]`; the first is also the common name).
    pub fn generate(names: &[&str]) -> Result<TestPki, Error> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        use std::sync::atomic::{AtomicUsize, Ordering};
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let bad = |e: rcgen::Error| Error::new(ErrorKind::InvalidInput, e.to_string());
        let Some(first) = names.first() else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a server certificate needs at least one name",
            ));
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        ca.distinguished_name.push(
            DnType::CommonName,
            format!("apolloconf test CA {} {n}", std::process::id()),
        );
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(bad)?).map_err(bad)?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut leaf = CertificateParams::new(names).map_err(bad)?;
        leaf.distinguished_name.push(DnType::CommonName, *first);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(bad)?;
        let cert = leaf.signed_by(&key, &ca).map_err(bad)?;
        Ok(TestPki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
