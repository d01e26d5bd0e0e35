//! The rustls client configuration for `icaps://` servers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::{Roots, TlsOptions};
use crate::error::{Error, escaped_path};

const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the rustls configuration from the options.
pub(crate) fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("TLS setup").with_source(e))?;
    let builder = if opts.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
    } else {
        builder.with_root_certificates(roots(&opts.roots)?)
    };
    let pem = match (&opts.client_cert, &opts.client_cert_pem) {
        (Some((cert, key)), _) => Some((
            std::fs::read(cert).map_err(|e| {
                Error::config(format!("client certificate {}", escaped_path(cert))).with_source(e)
            })?,
            std::fs::read(key).map_err(|e| {
                Error::config(format!("client key {}", escaped_path(key))).with_source(e)
            })?,
        )),
        (None, Some((c, k))) => Some((c.clone().into_bytes(), k.clone().into_bytes())),
        (None, None) => None,
    };
    let config = match pem {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::config(format!("client certificate PEM: {e}")))?;
            if chain.is_empty() {
                return Err(Error::config("client certificate PEM holds no certificate"));
            }
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| Error::config(format!("client key PEM: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config("client certificate").with_source(e))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots(roots: &Roots) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    let add_pem = |store: &mut RootCertStore, pem: &[u8], what: &str| -> Result<(), Error> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::config(format!("{what}: {e}")))?;
            store
                .add(cert)
                .map_err(|e| Error::config(what).with_source(e))?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::config(format!("{what}: no certificate found")));
        }
        Ok(())
    };
    match roots {
        Roots::System => {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Ok(pem) = std::fs::read(SYSTEM_BUNDLE) {
                for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                    // A bundle entry rustls cannot use is skipped, as browsers do.
                    let _ = store.add(cert);
                }
            }
        }
        Roots::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::config(format!("CA file {}", escaped_path(path))).with_source(e)
            })?;
            add_pem(&mut store, &pem, &format!("CA file {}", escaped_path(path)))?;
        }
        Roots::CaPem(pem) => add_pem(&mut store, pem.as_bytes(), "CA PEM")?,
    }
    Ok(store)
}

/// The verifier behind `danger_accept_invalid_certs`: checks signatures of the handshake
/// (so the session is still encrypted to whoever holds the key) but not who that is.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        tracing::warn!(
            server = ?server_name,
            "TLS certificate NOT verified (danger_accept_invalid_certs is on): \
             anyone on the path can read and change scans"
        );
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
