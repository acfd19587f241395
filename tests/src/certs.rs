//! Key material for the testbed: a CA per cluster (and one for the AWS verifier), serving
//! certificates for 127.0.0.1, the service-account key pair.
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::TestbedError;

pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A PEM certificate and its PKCS#8 PEM private key.
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> TestbedError {
    move |source| TestbedError::Cert { what, source }
}

impl Ca {
    pub fn new(common_name: &str) -> Result<Ca, TestbedError> {
        let key = KeyPair::generate().map_err(cert_err("a CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("a CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A TLS server certificate for `sans` (IP addresses or DNS names).
    pub fn server_cert(&self, common_name: &str, sans: &[&str]) -> Result<CertPair, TestbedError> {
        let key = KeyPair::generate().map_err(cert_err("a server key"))?;
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params =
            CertificateParams::new(sans).map_err(cert_err("server certificate names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(cert_err("a server certificate"))?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The service-account token signing key: (public key PEM, private key PEM).
pub fn service_account_keys() -> Result<(String, String), TestbedError> {
    let key = KeyPair::generate().map_err(cert_err("the service-account key"))?;
    Ok((key.public_key_pem(), key.serialize_pem()))
}

/// The DER bytes of the first certificate in a PEM string.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn ca_signs_a_server_certificate_that_rustls_accepts() {
        let ca = Ca::new("test-ca").unwrap();
        let pair = ca
            .server_cert("apiserver", &["127.0.0.1", "localhost"])
            .unwrap();
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.contains("PRIVATE KEY"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_to_der(&ca.cert_pem).unwrap().into()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let end_entity = pem_to_der(&pair.cert_pem).unwrap().into();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        verifier
            .verify_server_cert(
                &end_entity,
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }
}
