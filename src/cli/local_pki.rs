//! The keys of `ketch cluster --secure`: a CA of its own, one certificate per node, and a
//! client password, under `DATA_DIR/secure/`.
//!
//! | file                         | what                                                    |
//! |------------------------------|---------------------------------------------------------|
//! | `ca.pem`                     | the cluster's CA certificate (clients: `--cacert`)      |
//! | `ca.key`                     | its private key (mode 0600)                             |
//! | `node-N.pem`, `node-N.key`   | node N's certificate and key (0600)                     |
//! | `password`                   | user `default`'s password (0600)                        |
//!
//! A node's certificate names it `node-N` (what peers check, see `node::peer_tls`) and
//! `localhost` / `127.0.0.1` (what clients dial), and is good for both server and client
//! authentication, so one certificate serves the peer port (both directions) and the TLS
//! client port. The files are made once and reused on the next start, so clients keep their
//! `ca.pem` and password; a missing file makes the whole set (and a new password) again.
//! The password is 32 hex digits from the OS generator.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Where one node's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFiles {
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The files of a secure local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The password file.
    pub password_file: PathBuf,
    /// The password itself (printed for the user).
    pub password: String,
    /// Node N's files at index N - 1.
    pub nodes: Vec<NodeFiles>,
}

/// The files for `nodes` nodes under `dir`, made if any is missing (module docs).
pub fn ensure(dir: &Path, nodes: u64) -> Result<LocalPki, String> {
    let pki = LocalPki {
        ca: dir.join("ca.pem"),
        password_file: dir.join("password"),
        password: String::new(),
        nodes: (1..=nodes)
            .map(|id| NodeFiles {
                cert: dir.join(format!("node-{id}.pem")),
                key: dir.join(format!("node-{id}.key")),
            })
            .collect(),
    };
    let complete = [&pki.ca, &pki.password_file, &dir.join("ca.key")]
        .into_iter()
        .chain(pki.nodes.iter().flat_map(|n| [&n.cert, &n.key]))
        .all(|path| path.is_file());
    if !complete {
        make(dir, &pki)?;
    }
    let password = fs::read_to_string(&pki.password_file)
        .map_err(|e| format!("cannot read {}: {e}", pki.password_file.display()))?;
    Ok(LocalPki {
        password: password.trim_end().to_string(),
        ..pki
    })
}

fn make(dir: &Path, pki: &LocalPki) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fail = |what: &str, e: rcgen::Error| format!("cannot make the {what}: {e}");
    let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ketch local cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = params.self_signed(&ca_key).map_err(|e| fail("CA", e))?;
    write_file(&pki.ca, ca.pem().as_bytes(), false)?;
    write_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?;
    for (index, files) in pki.nodes.iter().enumerate() {
        let id = index + 1;
        let names = vec![
            format!("node-{id}"),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let key = KeyPair::generate().map_err(|e| fail("node key", e))?;
        let mut params = CertificateParams::new(names).map_err(|e| fail("node certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("node-{id}"));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(|e| fail("node certificate", e))?;
        write_file(&files.cert, cert.pem().as_bytes(), false)?;
        write_file(&files.key, key.serialize_pem().as_bytes(), true)?;
    }
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| format!("cannot draw a password: {e}"))?;
    let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&pki.password_file, format!("{password}\n").as_bytes(), true)
}

/// Writes `bytes` to `path` (replacing it), readable only by its owner if `private`, and
/// syncs it: a node started next must find it whole.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_files_are_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let secure = dir.path().join("secure");
        let first = ensure(&secure, 2).unwrap();
        assert_eq!(first.password.len(), 32);
        assert!(first.password.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(first.nodes[1].cert, secure.join("node-2.pem"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.nodes[0].key), 0o600);
        assert_eq!(mode(&first.password_file), 0o600);
        let cert = fs::read_to_string(&first.nodes[0].cert).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        // Reused as they are.
        let again = ensure(&secure, 2).unwrap();
        assert_eq!(again, first);
        assert_eq!(fs::read_to_string(&again.nodes[0].cert).unwrap(), cert);
        // One more node: the set is made again, with a new password.
        let grown = ensure(&secure, 3).unwrap();
        assert_ne!(grown.password, first.password);
        assert_ne!(fs::read_to_string(&grown.nodes[0].cert).unwrap(), cert);
    }
}
