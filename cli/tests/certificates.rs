//! Certificate checks (issue 15): `quicpro get` verifies servers against the
//! platform's trust store (here pointed at a test CA with `SSL_CERT_FILE`,
//! which rustls-platform-verifier honours on Linux) or `--cacert`, refuses
//! untrusted, expired and wrong-name certificates with an error that says
//! which, and mutual TLS works both ways (`serve --client-ca`,
//! `get --client-cert`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{start_server, Guard};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// A CA, and certificates for the server and clients, as PEM files.
struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("quicpro-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ours = ca("quicpro test CA");
        std::fs::write(dir.join("ca.pem"), ours.0.pem()).unwrap();
        let issuer = Issuer::new(ours.1, ours.2);
        let rogue = ca("someone else's CA");
        let rogue_issuer = Issuer::new(rogue.1, rogue.2);

        let leaf = |name: &str, sans: &[&str], expired: bool, client: bool, by: &Issuer<'_, KeyPair>| {
            let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.distinguished_name.push(DnType::OrganizationName, "Example");
            p.extended_key_usages = vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
            if expired {
                p.not_before = rcgen::date_time_ymd(2019, 1, 1);
                p.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, by).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let write = |file: &str, (cert, key): (String, String)| {
            std::fs::write(dir.join(format!("{file}.pem")), cert).unwrap();
            std::fs::write(dir.join(format!("{file}.key")), key).unwrap();
        };
        write("good", leaf("localhost", &["localhost", "127.0.0.1"], false, false, &issuer));
        write("expired", leaf("localhost", &["localhost", "127.0.0.1"], true, false, &issuer));
        write("wrongname", leaf("example.com", &["example.com"], false, false, &issuer));
        write("untrusted", leaf("localhost", &["localhost", "127.0.0.1"], false, false, &rogue_issuer));
        write("alice", leaf("alice", &["alice.example"], false, true, &issuer));
        write("mallory", leaf("mallory", &["mallory.example"], false, true, &rogue_issuer));
        Self { dir }
    }
}

fn ca(name: &str) -> (rcgen::Certificate, CertificateParams, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert, p, key)
}

/// A one-worker server with this certificate; returns it and its port.
fn serve(pki: &Pki, cert: &str, extra: &[&str]) -> (Guard, u16) {
    let (cert, key) = (pki.path(&format!("{cert}.pem")), pki.path(&format!("{cert}.key")));
    let mut args = vec!["--cert", &cert, "--key", &key];
    args.extend_from_slice(extra);
    start_server(&args)
}

/// `quicpro get` (no -k) with `SSL_CERT_FILE` set as given; (success, stdout, stderr).
fn get(port: u16, ssl_cert_file: Option<&Path>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quicpro"));
    cmd.args(["get", "--timeout", "10"]).args(args).arg(format!("https://127.0.0.1:{port}/hello"));
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(f) = ssl_cert_file {
        cmd.env("SSL_CERT_FILE", f);
    }
    let out = cmd.output().expect("run quicpro get");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn platform_trust_store_and_cacert() {
    let pki = Pki::new("platform");
    let (_s, port) = serve(&pki, "good", &[]);
    let ca = pki.dir.join("ca.pem");
    // Through the platform verifier, whose store SSL_CERT_FILE replaces.
    let (ok, out, err) = get(port, Some(&ca), &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "echo from worker 0: /hello\n");
    // The system's own roots do not include our test CA.
    let (ok, _, err) = get(port, None, &[]);
    assert!(!ok);
    assert!(err.contains("certificate not trusted: unknown issuer"), "{err}");
    // --cacert replaces the platform store.
    let (ok, out, err) = get(port, None, &["--cacert", &pki.path("ca.pem")]);
    assert!(ok, "{err}");
    assert_eq!(out, "echo from worker 0: /hello\n");
}

#[test]
fn untrusted_expired_and_wrong_name_certificates_are_refused() {
    let pki = Pki::new("refused");
    let cacert = pki.path("ca.pem");
    for (cert, why) in [
        ("untrusted", "certificate not trusted: unknown issuer"),
        ("expired", "certificate expired"),
        ("wrongname", "certificate not valid for the server name"),
    ] {
        let (_s, port) = serve(&pki, cert, &[]);
        let (ok, out, err) = get(port, None, &["--cacert", &cacert]);
        assert!(!ok, "{cert}: accepted ({out})");
        assert!(out.is_empty(), "{cert}: {out}");
        assert!(err.contains(why), "{cert}: expected {why:?} in: {err}");
        // -k still connects: the failure was the certificate, nothing else.
        let (ok, out, err) = get(port, None, &["-k"]);
        assert!(ok, "{cert} with -k: {err}");
        assert_eq!(out, "echo from worker 0: /hello\n");
    }
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new("mtls");
    let cacert = pki.path("ca.pem");
    let (_s, port) = serve(&pki, "good", &["--client-ca", &cacert]);
    let (ok, out, err) = get(port, None, &["--cacert", &cacert, "--client-cert", &pki.path("alice.pem"), "--client-key", &pki.path("alice.key")]);
    assert!(ok, "{err}");
    assert_eq!(out, "echo from worker 0: /hello\n");

    let (ok, out, err) = get(port, None, &["--cacert", &cacert]);
    assert!(!ok && out.is_empty(), "served without a client certificate: {out}");
    assert!(err.contains("peer presented no certificate"), "{err}");

    let (ok, out, err) = get(port, None, &["--cacert", &cacert, "--client-cert", &pki.path("mallory.pem"), "--client-key", &pki.path("mallory.key")]);
    assert!(!ok && out.is_empty(), "served a client from another CA: {out}");
    assert!(err.contains("unknown issuer"), "{err}");

    // Optional: no certificate is fine, a bad one is not.
    let (_s2, port2) = serve(&pki, "good", &["--client-ca", &cacert, "--client-cert-optional"]);
    let (ok, out, err) = get(port2, None, &["--cacert", &cacert]);
    assert!(ok, "{err}");
    assert_eq!(out, "echo from worker 0: /hello\n");
    let (ok, _, err) = get(port2, None, &["--cacert", &cacert, "--client-cert", &pki.path("mallory.pem"), "--client-key", &pki.path("mallory.key")]);
    assert!(!ok, "optional client auth accepted an untrusted certificate: {err}");
}
