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
