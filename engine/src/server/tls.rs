//! TLS for `serve` (rustls, the ring provider reqwest already brings): a certificate chain
//! and a private key in PEM files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read the TLS {what} from {path}: {reason}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// A loaded certificate and key, ready to accept connections.
#[derive(Clone)]
pub struct TlsSettings {
    acceptor: TlsAcceptor,
    /// The certificate file, for messages.
    pub cert_path: PathBuf,
    /// Certificates in the chain.
    pub chain_len: usize,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_path", &self.cert_path)
            .field("chain_len", &self.chain_len)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Loads the certificate chain and the private key (PEM) and checks that they match.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        use pki_types::pem::PemObject;
        let read_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e: pki_types::pem::Error| TlsError::Read {
                what,
                path,
                reason: e.to_string(),
            }
        };
        let chain: Vec<pki_types::CertificateDer<'static>> =
            pki_types::CertificateDer::pem_file_iter(cert_path)
                .map_err(read_err("certificate", cert_path))?
                .collect::<Result<_, _>>()
                .map_err(read_err("certificate", cert_path))?;
        if chain.is_empty() {
            return Err(TlsError::Read {
                what: "certificate",
                path: cert_path.to_path_buf(),
                reason: "no CERTIFICATE block in the file".into(),
            });
        }
        let key = pki_types::PrivateKeyDer::from_pem_file(key_path)
            .map_err(read_err("private key", key_path))?;
        let chain_len = chain.len();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsSettings {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_path: cert_path.to_path_buf(),
            chain_len,
        })
    }

    /// The acceptor that performs the handshake.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
