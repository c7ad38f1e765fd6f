//! The ACME state directory: the account's credentials and the issued
//! certificate with its key, kept so that a restart serves the certificate
//! it has instead of asking the CA again.
//!
//! ```text
//! state_dir/                      0700, created if missing
//!   account-<sha256(directory)>.json   0600, one account per ACME directory
//!   certs/<first domain>/fullchain.pem
//!   certs/<first domain>/key.pem       0600
//! ```
//!
//! Files are written whole to a temporary file in the same folder, synced
//! and renamed over the old one, so a crash leaves the old or the new file,
//! never half of one. A state directory others can read or enter is
//! refused: it holds private keys (ssh refuses such key files too).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

/// Largest file read from the state directory or as a CA root.
const MAX_FILE: u64 = 1024 * 1024;

/// Reads a CA root PEM file (for `tls.acme.ca_root`): at least one certificate.
///
/// # Errors
///
/// The file cannot be read or holds no certificate.
pub fn read_ca_root(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_small(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block in it", path.display()));
    }
    Ok(certs)
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{}: too large ({} bytes)",
            path.display(),
            meta.len()
        ));
    }
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks an existing state directory's type and permissions; a missing one
/// is fine (it is created at start-up).
///
/// # Errors
///
/// Not a directory, or readable, writable or searchable by others.
pub fn check_state_dir(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => Err(format!("{} is not a directory", dir.display())),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(format!(
                    "{} holds private keys but others may access it (mode {mode:03o}): chmod 700 it",
                    dir.display()
                ));
            }
            Ok(())
        }
    }
}

/// The state directory of one ACME set-up.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens `dir`, creating it (mode 0700) when missing.
    ///
    /// # Errors
    ///
    /// It cannot be created, or [`check_state_dir`] refuses it.
    pub fn open(dir: &Path) -> Result<Store, String> {
        check_state_dir(dir)?;
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if let Ok(m) = fs::metadata(dir)
            && m.permissions().mode() & 0o070 != 0
        {
            tracing::warn!(
                dir = %dir.display(),
                "the ACME state directory is open to its group (mode {:03o}); 0700 is safer",
                m.permissions().mode() & 0o777
            );
        }
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    fn account_path(&self, directory: &str) -> PathBuf {
        let digest = Sha256::digest(directory.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("account-{hex}.json"))
    }

    fn cert_dir(&self, domains: &[String]) -> PathBuf {
        // Validated host names: safe as a file name.
        let first = domains.first().map_or("default", String::as_str);
        self.dir.join("certs").join(first)
    }

    /// The saved account for `directory`, as JSON.
    #[must_use]
    pub fn load_account(&self, directory: &str) -> Option<Vec<u8>> {
        read_small(&self.account_path(directory)).ok()
    }

    /// Drops the saved account for `directory` (the CA does not know it).
    pub fn forget_account(&self, directory: &str) {
        let _ = fs::remove_file(self.account_path(directory));
    }

    /// Saves the account for `directory` (mode 0600).
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn save_account(&self, directory: &str, json: &[u8]) -> Result<(), String> {
        write_private(&self.account_path(directory), json)
    }

    /// The saved certificate chain and key for `domains`, as PEM (chain,
    /// key): both from `bundle.pem` when it is there (each parser takes its
    /// own blocks), else from `fullchain.pem` and `key.pem` (state
    /// directories written before the bundle).
    #[must_use]
    pub fn load_cert(&self, domains: &[String]) -> Option<(Vec<u8>, Vec<u8>)> {
        let dir = self.cert_dir(domains);
        if let Ok(bundle) = read_small(&dir.join(BUNDLE)) {
            return Some((bundle.clone(), bundle));
        }
        let cert = read_small(&dir.join("fullchain.pem")).ok()?;
        let key = read_small(&dir.join("key.pem")).ok()?;
        Some((cert, key))
    }

    /// Saves a certificate chain and its key for `domains`: first both in
    /// one file, `bundle.pem`, which one rename replaces whole (what
    /// [`Store::load_cert`] reads: a crash never leaves a key beside
    /// another certificate), then `key.pem` and `fullchain.pem` for other
    /// tools.
    ///
    /// # Errors
    ///
    /// A file cannot be written.
    pub fn save_cert(&self, domains: &[String], cert: &[u8], key: &[u8]) -> Result<(), String> {
        let dir = self.cert_dir(domains);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut bundle = key.to_vec();
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(cert);
        write_private(&dir.join(BUNDLE), &bundle)?;
        // The renames reach the disk (the directory's entries).
        if let Err(e) = fs::File::open(&dir).and_then(|d| d.sync_all()) {
            tracing::warn!("ACME: cannot sync {}: {e}", dir.display());
        }
        write_private(&dir.join("key.pem"), key)?;
        write_private(&dir.join("fullchain.pem"), cert)
    }
}

/// The key and its chain in one file (see [`Store::save_cert`]).
const BUNDLE: &str = "bundle.pem";

/// Writes `data` to `path` with mode 0600 through a temporary file and a rename.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory_and_private_files() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("acme");
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let domains = vec!["a.example".to_owned()];
        assert!(store.load_cert(&domains).is_none());
        store.save_cert(&domains, b"CERT", b"KEY").unwrap();
        let bundle = b"KEY\nCERT".to_vec();
        assert_eq!(
            store.load_cert(&domains),
            Some((bundle.clone(), bundle.clone()))
        );
        // A key.pem replaced alone (a crash between two renames of the
        // earlier layout) changes nothing of what is loaded.
        fs::write(dir.join("certs/a.example/key.pem"), b"OTHER").unwrap();
        assert_eq!(store.load_cert(&domains), Some((bundle.clone(), bundle)));
        // A state directory from before the bundle: the two files.
        fs::remove_file(dir.join("certs/a.example/bundle.pem")).unwrap();
        assert_eq!(
            store.load_cert(&domains),
            Some((b"CERT".to_vec(), b"OTHER".to_vec()))
        );
        let key = dir.join("certs/a.example/key.pem");
        assert_eq!(
            fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        store.save_account("https://ca/dir", b"{}").unwrap();
        assert_eq!(store.load_account("https://ca/dir"), Some(b"{}".to_vec()));
        assert_eq!(store.load_account("https://other/dir"), None);
    }

    #[test]
    fn refuses_a_directory_others_can_read() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("open");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Store::open(&dir).unwrap_err();
        assert!(err.contains("chmod 700"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(Store::open(&dir).is_ok());
    }
}
