//! The test PKI, made at test time with rcgen: a certificate authority, and a certificate
//! it signs for `localhost` and `127.0.0.1` that the HTTPS servers present, all ECDSA P-256.
//! Nothing is committed: the CA's key lives in this process's memory only, and each test
//! process makes its own.
//!
//! Servers and clients take paths (the forking models run the binary; curl, openssl and the
//! others read files), so the PEM files are written into a folder of this process,
//! `TMP/bingfa-test-pki-PID/`. It must outlive every test, so it is never removed by this
//! process; the next test process removes those whose process is gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use base64::prelude::{Engine, BASE64_STANDARD};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, PKCS_ECDSA_P256_SHA256,
};

/// What the PKI folder of a test process is named, before its process id.
const FOLDER_PREFIX: &str = "bingfa-test-pki-";

/// The names of the server's certificate, `cert.pem`.
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A file of the test PKI: `ca.pem` (the CA's certificate, for clients to trust), `cert.pem`
/// and `key.pem` (the certificate it signed for `localhost` and `127.0.0.1`, and its key).
pub fn tls_fixture(name: &str) -> PathBuf {
    let path = pki().dir.join(name);
    assert!(path.is_file(), "no {name} in the test PKI");
    path
}

/// A new certificate signed by the test CA for `names` (DNS names, wildcards, or IP
/// addresses), the first also its common name; returns the paths of the certificate and
/// its key (PEM). Each call makes a new key and new files.
pub fn issue_cert(names: &[&str]) -> (PathBuf, PathBuf) {
    let pki = pki();
    let n = pki.issued.fetch_add(1, Ordering::Relaxed);
    let (cert, key) = (format!("issued-{n}.pem"), format!("issued-{n}.key"));
    pki.issue(names, &cert, &key);
    (pki.dir.join(cert), pki.dir.join(key))
}

/// The base64 of the SHA-256 of `cert.pem`'s SubjectPublicKeyInfo (DER): how Chromium's
/// `--ignore-certificate-errors-spki-list` names a certificate to accept.
pub fn server_spki_sha256() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &pki().server_spki);
    BASE64_STANDARD.encode(digest)
}

struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    /// How many certificates `issue_cert` made, to name their files.
    issued: AtomicUsize,
    /// `cert.pem`'s public key, as a SubjectPublicKeyInfo (DER).
    server_spki: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::new)
}

impl Pki {
    fn new() -> Pki {
        let dir = fresh_folder(&std::env::temp_dir());
        let key = new_key();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "bingfa test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        write(&dir.join("ca.pem"), &cert.pem());
        let mut pki = Pki {
            ca: Issuer::new(params, key),
            dir,
            issued: AtomicUsize::new(0),
            server_spki: Vec::new(),
        };
        pki.server_spki = pki
            .issue(&SERVER_NAMES, "cert.pem", "key.pem")
            .subject_public_key_info();
        pki
    }

    /// Signs a certificate for `names` with a new key; writes both as PEM into the files
    /// `cert_file` and `key_file` of the PKI folder, and returns the key.
    fn issue(&self, names: &[&str], cert_file: &str, key_file: &str) -> KeyPair {
        let first = names.first().expect("a certificate names at least one host");
        let key = new_key();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("names a certificate can hold");
        params.distinguished_name.push(DnType::CommonName, *first);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.ca).expect("sign with the test CA");
        write(&self.dir.join(cert_file), &cert.pem());
        write(&self.dir.join(key_file), &key.serialize_pem());
        key
    }
}

fn new_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate an ECDSA P-256 key")
}

fn write(path: &Path, pem: &str) {
    fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
}

/// An empty `TMP/bingfa-test-pki-PID/` for this process, after removing the folders under
/// `tmp` of test processes that have exited (and one left by an earlier process that had
/// this one's id).
fn fresh_folder(tmp: &Path) -> PathBuf {
    let own = std::process::id();
    if let Ok(entries) = fs::read_dir(tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|name| name.strip_prefix(FOLDER_PREFIX))
                .and_then(|pid| pid.parse().ok());
            if pid.is_some_and(|pid| pid == own || !alive(pid)) {
                // Another test process may be removing it too.
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{FOLDER_PREFIX}{own}"));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH))
}
