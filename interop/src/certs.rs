//! Certificates as the interop runner's `certs.sh` makes them: a root CA,
//! and a chain of `chain_len` certificates below it ending in an ECDSA
//! P-256 leaf for `server`, `server4`, `server6`, `server46` (plus
//! `localhost` and the loopback addresses, since everything here runs on
//! loopback). The amplificationlimit case uses a chain of 9 whose leaf
//! carries 20 long fake names, so the server's first flight is far larger
//! than three times the client's Initial (the anti-amplification limit of
//! RFC 9000 §8.1 must hold it back).
//!
//! Files written: `cert.pem` (leaf first, then the intermediates),
//! `priv.key` (the leaf's key, PKCS#8), `ca.pem` (the root).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// What went wrong while making or writing certificates.
#[derive(Debug)]
pub enum CertError {
    Generate(rcgen::Error),
    Write(std::io::Error),
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertError::Generate(e) => write!(f, "certificate generation: {e}"),
            CertError::Write(e) => write!(f, "writing certificates: {e}"),
        }
    }
}

impl std::error::Error for CertError {}

/// The names every leaf carries.
fn leaf_names() -> Vec<String> {
    ["server", "server4", "server6", "server46", "localhost", "127.0.0.1", "::1"].iter().map(|s| s.to_string()).collect()
}

fn ca_params(cn: &str) -> Result<CertificateParams, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(CertError::Generate)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

/// Writes `cert.pem`, `priv.key` and `ca.pem` into `dir`. `chain_len`
/// counts the certificates the server sends (leaf + intermediates, at
/// least 1); `big_leaf` adds 20 fake 250-character DNS names.
pub fn write(dir: &Path, chain_len: usize, big_leaf: bool) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(CertError::Write)?;
    let root_key = KeyPair::generate().map_err(CertError::Generate)?;
    let root = CertifiedIssuer::self_signed(ca_params("quicpro interop root")?, root_key).map_err(CertError::Generate)?;
    let ca_pem = root.pem();
    let mut chain_pems: Vec<String> = Vec::new();
    let mut issuer = root;
    for i in 1..chain_len.max(1) {
        let key = KeyPair::generate().map_err(CertError::Generate)?;
        let next = CertifiedIssuer::signed_by(ca_params(&format!("quicpro interop intermediate {i}"))?, key, &issuer).map_err(CertError::Generate)?;
        // Sent leaf first: each intermediate goes before the one that signed it.
        chain_pems.insert(0, next.pem());
        issuer = next;
    }
    let mut names = leaf_names();
    if big_leaf {
        for i in 0..20u8 {
            let label: String = std::iter::repeat_n(char::from(b'a' + i), 60).collect();
            // Four 60-character labels and a suffix: 250 characters, each
            // label within DNS's 63-character limit.
            names.push(format!("{label}.{label}.{label}.{label}.example"));
        }
    }
    let mut leaf = CertificateParams::new(names).map_err(CertError::Generate)?;
    leaf.distinguished_name.push(DnType::CommonName, "server");
    let leaf_key = KeyPair::generate().map_err(CertError::Generate)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(CertError::Generate)?;
    let mut cert_pem = leaf_cert.pem();
    for p in chain_pems {
        cert_pem.push_str(&p);
    }
    std::fs::write(dir.join("cert.pem"), cert_pem).map_err(CertError::Write)?;
    std::fs::write(dir.join("priv.key"), leaf_key.serialize_pem()).map_err(CertError::Write)?;
    std::fs::write(dir.join("ca.pem"), ca_pem).map_err(CertError::Write)?;
    Ok(())
}

/// Base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo: what
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
pub fn leaf_spki_sha256_base64(dir: &Path) -> Result<String, String> {
    let pem = std::fs::read(dir.join("cert.pem")).map_err(|e| e.to_string())?;
    let mut rd = &pem[..];
    let der = rustls_pemfile_first_cert(&mut rd).ok_or("no certificate in cert.pem")?;
    let spki = spki_of(&der).ok_or("cannot find the SubjectPublicKeyInfo")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(base64(digest.as_ref()))
}

/// The first `CERTIFICATE` block of a PEM file, decoded.
fn rustls_pemfile_first_cert(rd: &mut &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(rd).ok()?;
    let start = text.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = text[start..].find("-----END CERTIFICATE-----")? + start;
    let b64: String = text[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    unbase64(&b64)
}

/// Reads a DER TLV header at `d`: (tag, header length, content length).
fn tlv(d: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *d.first()?;
    let l0 = *d.get(1)?;
    if l0 < 0x80 {
        return Some((tag, 2, usize::from(l0)));
    }
    let n = usize::from(l0 & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | usize::from(*d.get(2 + i)?);
    }
    Some((tag, 2 + n, len))
}

/// The SubjectPublicKeyInfo inside a DER certificate (RFC 5280 §4.1):
/// Certificate → TBSCertificate → [version], serial, signature, issuer,
/// validity, subject, subjectPublicKeyInfo.
fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    let (_, h, _) = tlv(cert)?;
    let tbs = cert.get(h..)?;
    let (_, th, tlen) = tlv(tbs)?;
    let mut body = tbs.get(th..th + tlen)?;
    // Optional explicit version [0].
    if body.first() == Some(&0xa0) {
        let (_, hh, l) = tlv(body)?;
        body = body.get(hh + l..)?;
    }
    for _ in 0..5 {
        let (_, hh, l) = tlv(body)?;
        body = body.get(hh + l..)?;
    }
    let (_, hh, l) = tlv(body)?;
    body.get(..hh + l)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chains_verify_with_rustls() {
        for (len, big) in [(1usize, false), (9, true)] {
            let dir = std::env::temp_dir().join(format!("quicpro-interop-certs-{}-{len}", std::process::id()));
            write(&dir, len, big).unwrap();
            let chain = quic_core::tls::config::load_certs(&dir.join("cert.pem")).unwrap();
            assert_eq!(chain.len(), len);
            let roots = quic_core::tls::config::load_certs(&dir.join("ca.pem")).unwrap();
            let mut store = rustls::RootCertStore::empty();
            store.add(roots[0].clone()).unwrap();
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(store.into(), quic_core::tls::provider::crypto_provider()).build().unwrap();
            let name = rustls::pki_types::ServerName::try_from("server4").unwrap();
            let now = rustls::pki_types::UnixTime::now();
            use rustls::client::danger::ServerCertVerifier;
            let verdict = verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], now);
            if len == 1 {
                verdict.unwrap();
            } else {
                // webpki refuses paths this deep; the interop runner's
                // clients skip verification. Only the depth may fail.
                let e = format!("{:?}", verdict.unwrap_err());
                assert!(e.contains("MaximumPathDepthExceeded"), "{e}");
            }
            if big {
                let total: usize = chain.iter().map(|c| c.len()).sum();
                assert!(total > 7500, "a chain of 9 with a big leaf exceeds 7500 bytes ({total})");
            }
            let spki = leaf_spki_sha256_base64(&dir).unwrap();
            assert_eq!(spki.len(), 44);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn base64_round_trip() {
        for v in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(unbase64(&base64(v)).unwrap(), v);
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
    }
}
