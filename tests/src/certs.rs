//! The test certificate: one self-signed certificate for `localhost`, in
//! memory (DER) for rustls and quinn, and as PEM files for peers that read
//! files (aioquic, the CLI).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A self-signed certificate for `localhost` and its key.
pub struct Cert {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Cert {
    pub fn localhost() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        Cert {
            cert: ck.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
            cert_pem: ck.cert.pem(),
            // PKCS#8 ("BEGIN PRIVATE KEY"), which aioquic loads.
            key_pem: ck.signing_key.serialize_pem(),
        }
    }
}

/// One certificate for the whole test binary.
pub fn shared() -> &'static Cert {
    static C: OnceLock<Cert> = OnceLock::new();
    C.get_or_init(Cert::localhost)
}

/// A fresh certificate written as `cert.pem` / `key.pem` into a directory
/// of its own, removed on drop.
pub struct PemDir {
    pub dir: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

impl PemDir {
    pub fn new(tag: &str) -> Self {
        let c = Cert::localhost();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("quicpro-test-certs-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        std::fs::write(&cert_pem, &c.cert_pem).unwrap();
        std::fs::write(&key_pem, &c.key_pem).unwrap();
        PemDir { dir, cert_pem, key_pem, cert: c.cert, key: c.key }
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
