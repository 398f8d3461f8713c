//! The certificate files a server connector reads (`sslrootcert`,
//! `ssl_ca`). The path comes from a datasource's options, and whoever
//! defines datasources is not meant to read the host's files through it:
//! `/dev/zero` would be read forever, and an error that says "no such
//! file" for one path and "holds no certificates" for another maps the
//! file system.
//!
//! So a path is read only when it is a regular file (symbolic links
//! resolved; no device, fifo or directory), inside the directories the
//! factory allows when it was given some, and through a size cap; and
//! every refusal has the same words, whatever the reason. Only a file
//! that passed all that may be told apart by its content (not PEM, no
//! certificate), and never by quoting it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_core::{Error, Result};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The largest certificate file read. A CA bundle is a few kilobytes; the
/// whole system bundle is a few hundred.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;

/// Where a factory's datasources may read certificate files from.
#[derive(Debug, Clone, Default)]
pub(crate) struct CertificateDirs {
    /// Directories a file must be inside; `None` allows any path (still a
    /// regular file, still capped).
    allowed: Option<Arc<[PathBuf]>>,
}

impl CertificateDirs {
    /// Files inside one of `dirs` only; with none, no file at all.
    pub(crate) fn within(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            allowed: Some(dirs.into_iter().collect()),
        }
    }

    /// The certificates of the PEM file at `path`, named by datasource
    /// option `option` of a `kind` datasource, each one usable as a trust
    /// anchor.
    ///
    /// # Errors
    ///
    /// A configuration error, the same one whether the file is missing,
    /// not a regular file, outside the allowed directories, larger than
    /// [`MAX_BYTES`] or unreadable; another one when it is read but holds
    /// no usable certificate.
    pub(crate) fn trusted_roots(
        &self,
        kind: &str,
        option: &str,
        path: &Path,
    ) -> Result<Vec<CertificateDer<'static>>> {
        let Some(bytes) = self.read(path) else {
            let inside = if self.allowed.is_some() {
                " inside the directories this host allows certificates in"
            } else {
                ""
            };
            return Err(Error::config(format!(
                "{kind} datasource: {option} {} is not a readable regular file of at most 1 MiB{inside}",
                path.display()
            )));
        };
        // The parser's own errors may quote a line of the file: never
        // passed on.
        let not_pem = || {
            Error::config(format!(
                "{kind} datasource: {option} {} holds no PEM certificate that can be trusted",
                path.display()
            ))
        };
        let mut certificates = Vec::new();
        let mut check = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(&bytes) {
            let certificate = certificate.map_err(|_| not_pem())?;
            check.add(certificate.clone()).map_err(|_| not_pem())?;
            certificates.push(certificate);
        }
        if certificates.is_empty() {
            return Err(not_pem());
        }
        Ok(certificates)
    }

    /// The bytes of `path`, or `None` for any reason not to read it (the
    /// reasons are not told apart, on purpose).
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let real = std::fs::canonicalize(path).ok()?;
        if let Some(allowed) = &self.allowed {
            let inside = allowed
                .iter()
                .filter_map(|dir| std::fs::canonicalize(dir).ok())
                .any(|dir| real.starts_with(dir));
            if !inside {
                return None;
            }
        }
        // Opening a fifo waits for a writer, and a device never ends:
        // look before opening, then again at what was opened, in case the
        // path was swapped in between.
        if !std::fs::metadata(&real).ok()?.is_file() {
            return None;
        }
        let file = File::open(&real).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(MAX_BYTES + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= MAX_BYTES).then_some(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A self-signed CA certificate, made once with openssl for this test.
    const CA: &str = include_str!("../../tests/data/test-ca.pem");

    /// The refusal of `path`; a read that blocks (a fifo) fails the test
    /// instead of hanging it.
    fn refusal(dirs: &CertificateDirs, path: &Path) -> String {
        let (dirs, path) = (dirs.clone(), path.to_path_buf());
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = send.send(dirs.trusted_roots("postgres", "sslrootcert", &path));
        });
        match receive.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(Ok(_)) => panic!("the file was read"),
            Ok(Err(e)) => e.to_string(),
            Err(_) => panic!("reading the file did not end"),
        }
    }

    #[test]
    fn a_ca_file_inside_the_allowed_directories_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, CA).unwrap();
        let dirs = CertificateDirs::within([dir.path().to_path_buf()]);
        assert_eq!(
            dirs.trusted_roots("postgres", "sslrootcert", &path)
                .unwrap()
                .len(),
            1
        );
        let any = CertificateDirs::default();
        assert_eq!(
            any.trusted_roots("postgres", "sslrootcert", &path)
                .unwrap()
                .len(),
            1
        );
    }

    /// Acceptance (issue 12): every path that must not be read gets the
    /// same answer, so the answer tells nothing about the file system;
    /// and `/dev/zero` is not read forever.
    #[test]
    fn every_refused_path_gets_the_same_answer() {
        let allowed = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let good_outside = outside.path().join("ca.pem");
        std::fs::write(&good_outside, CA).unwrap();
        let large = allowed.path().join("large.pem");
        let mut bytes = CA.repeat(1 + (MAX_BYTES as usize) / CA.len());
        bytes.truncate(MAX_BYTES as usize + 1);
        std::fs::write(&large, bytes).unwrap();
        let fifo = allowed.path().join("fifo.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let link_out = allowed.path().join("link.pem");
        std::os::unix::fs::symlink(&good_outside, &link_out).unwrap();
        let link_dev = allowed.path().join("zero.pem");
        std::os::unix::fs::symlink("/dev/zero", &link_dev).unwrap();

        let dirs = CertificateDirs::within([allowed.path().to_path_buf(), "/dev".into()]);
        let answer = |path: &Path| refusal(&dirs, path).replace(&path.display().to_string(), "P");
        let expected = "invalid configuration: postgres datasource: sslrootcert P is not a readable \
                        regular file of at most 1 MiB inside the directories this host allows \
                        certificates in";
        for path in [
            Path::new("/dev/zero"),
            allowed.path(),
            &fifo,
            &allowed.path().join("missing.pem"),
            &good_outside,
            &large,
            &link_out,
            &link_dev,
        ] {
            assert_eq!(answer(path), expected, "{}", path.display());
        }

        // Without allowed directories, only the rule on what is read
        // stays: a regular file, at most 1 MiB.
        let any = CertificateDirs::default();
        for path in [Path::new("/dev/zero"), allowed.path(), &fifo, &large] {
            assert!(
                refusal(&any, path).contains("is not a readable regular file of at most 1 MiB"),
                "{}",
                path.display()
            );
        }
        assert!(
            any.trusted_roots("postgres", "sslrootcert", &link_out)
                .is_ok()
        );
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nTOP-SECRET\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let dirs = CertificateDirs::within([dir.path().to_path_buf()]);
        let message = refusal(&dirs, &path);
        assert!(message.contains("holds no PEM certificate"), "{message}");
        assert!(!message.contains("TOP-SECRET"), "{message}");
        std::fs::write(&path, "TOP-SECRET").unwrap();
        let message = refusal(&dirs, &path);
        assert!(message.contains("holds no PEM certificate"), "{message}");
        assert!(!message.contains("TOP-SECRET"), "{message}");
    }

    #[test]
    fn no_directories_allow_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, CA).unwrap();
        let none = CertificateDirs::within([]);
        assert!(refusal(&none, &path).contains("is not a readable regular file"));
    }
}
