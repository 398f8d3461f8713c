//! TLS to a PostgreSQL metadata store, with libpq's meaning of `sslmode`
//! and `sslrootcert` in the URL, over sqlx's rustls:
//!
//! - `disable`, `allow`, `prefer` (the default), `require`: as libpq;
//!   `prefer` and `require` encrypt without checking the certificate.
//! - `verify-ca` checks the chain, `verify-full` the chain and the host
//!   name; the roots are the system's plus `sslrootcert`.
//! - `require` with an `sslrootcert` file checks the chain, as libpq does
//!   when a root certificate is there (so it becomes `verify-ca`).
//! - `sslrootcert=system` trusts the system's roots and asks for
//!   `verify-full`, as libpq 16 does.
//!
//! A mistyped mode and an unreadable `sslrootcert` are refused here, with
//! a message that names them, before anything is sent. This module only
//! rewrites the URL; sqlx connects.

use loupe_core::{Error, Result};

/// The `sslmode` values libpq knows.
const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// `location` (a `postgres://` URL) as sqlx must read it to do what libpq
/// would; the same URL when nothing needs to change.
///
/// # Errors
/// [`Error::Config`] naming the parameter at fault.
pub(super) fn libpq_url(location: &str) -> Result<String> {
    let shown = super::redact(location);
    let mut url = url::Url::parse(location).map_err(|e| {
        Error::config(format!(
            "metadata_url {shown}: not a postgres://user@host/database URL: {e}"
        ))
    })?;
    // As in a libpq connection string, the last of a repeated key wins.
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let last = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mode = last("sslmode");
    let root = last("sslrootcert");
    if let Some(mode) = &mode
        && !MODES.contains(&mode.as_str())
    {
        return Err(Error::config(format!(
            "metadata_url {shown}: sslmode={mode:?} is not one of {}",
            MODES.join(", ")
        )));
    }
    let (new_mode, keep_root) = match (mode.as_deref(), root.as_deref()) {
        (_, None) => return Ok(location.to_owned()),
        (None | Some("verify-full"), Some("system")) => (Some("verify-full"), false),
        (Some(other), Some("system")) => {
            return Err(Error::config(format!(
                "metadata_url {shown}: sslrootcert=system trusts the system's roots and needs sslmode=verify-full, not {other}"
            )));
        }
        (mode, Some(file)) => {
            readable_root(&shown, file)?;
            match mode {
                Some("require") => (Some("verify-ca"), true),
                _ => return Ok(location.to_owned()),
            }
        }
    };
    let kept: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| k != "sslmode" && (keep_root || k != "sslrootcert"))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        if let Some(mode) = new_mode {
            query.append_pair("sslmode", mode);
        }
    }
    Ok(url.to_string())
}

/// Makes ring the process's rustls provider unless one is chosen already.
/// sqlx's `verify-ca` check asks rustls for the process's provider, and
/// rustls panics when the build holds two (poem brings aws-lc-rs beside
/// ring) and none was chosen. Loupe uses ring everywhere.
pub(super) fn choose_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Refuses an `sslrootcert` that cannot be read, naming it.
fn readable_root(shown: &str, file: &str) -> Result<()> {
    if file.starts_with("-----BEGIN") {
        return Ok(());
    }
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::config(format!(
            "metadata_url {shown}: sslrootcert {file} is not a file"
        ))),
        Err(e) => Err(Error::config(format!(
            "metadata_url {shown}: sslrootcert {file} cannot be read: {e}"
        ))),
    }
}

/// What a failed connection says, for the operator: the cause, and for a
/// certificate that was refused, what to check.
pub(super) fn connect_failure(e: &sqlx::Error) -> String {
    // A refused certificate reaches sqlx as an I/O error of the handshake.
    let refused = match e {
        sqlx::Error::Tls(cause) => Some(cause.to_string()),
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(ToString::to_string),
        _ => None,
    };
    match refused {
        Some(cause) => format!(
            "the TLS handshake failed: {cause}; sslrootcert must name the CA that signed the server's certificate, and with sslmode=verify-full the certificate must be issued for the host in the URL"
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "postgres://loupe:pw@db.example.com:5432/loupe";

    fn query_of(url: &str) -> Vec<(String, String)> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn a_url_without_a_root_certificate_passes_unchanged() {
        for url in [
            BASE.to_owned(),
            format!("{BASE}?sslmode=require"),
            format!("{BASE}?sslmode=verify-full&options[search_path]=t_1"),
        ] {
            assert_eq!(libpq_url(&url).ok(), Some(url.clone()));
        }
    }

    #[test]
    fn a_mistyped_sslmode_is_refused_by_name_without_the_password() {
        let e = libpq_url(&format!("{BASE}?sslmode=verify_full"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=\"verify_full\""), "{e}");
        assert!(e.contains("verify-ca, verify-full"), "{e}");
        assert!(!e.contains(":pw@"), "{e}");
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "not checked here").unwrap();
        let url = format!(
            "{BASE}?options[search_path]=t_1&sslmode=require&sslrootcert={}",
            ca.display()
        );
        let pairs = query_of(&libpq_url(&url).unwrap());
        assert!(
            pairs.contains(&("sslmode".into(), "verify-ca".into())),
            "{pairs:?}"
        );
        assert!(pairs.contains(&("options[search_path]".into(), "t_1".into())));
        assert!(pairs.iter().any(|(k, _)| k == "sslrootcert"));
        // verify-full stays as it is.
        let full = url.replace("sslmode=require", "sslmode=verify-full");
        assert_eq!(libpq_url(&full).ok(), Some(full.clone()));
    }

    #[test]
    fn a_missing_root_certificate_is_named() {
        let e = libpq_url(&format!(
            "{BASE}?sslmode=verify-full&sslrootcert=/no/such/loupe-ca.crt"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("/no/such/loupe-ca.crt cannot be read"), "{e}");
    }

    #[test]
    fn sslrootcert_system_means_the_system_roots_and_verify_full() {
        let pairs = query_of(&libpq_url(&format!("{BASE}?sslrootcert=system")).unwrap());
        assert_eq!(pairs, [("sslmode".to_owned(), "verify-full".to_owned())]);
        assert!(libpq_url(&format!("{BASE}?sslrootcert=system&sslmode=require")).is_err());
    }
}
