//! Expiring signed links: a notification can point at a result's download
//! or a chart's image without the reader signing in, for a while.
//!
//! A link names one thing (a run's download in one format, a
//! visualization's image of one run), when it expires, and an
//! HMAC-SHA-256 over both under a key derived from the signing secret (a
//! key of its own: the secret's other uses never meet this one). Changing
//! any part of the link, or using it after it expires, is refused; the
//! signature is compared in constant time.

use std::fmt::Write as _;

use loupe_core::{Error, Result, codes};
use subtle::ConstantTimeEq;

use crate::crypto::hmac_sha256;

/// The key links are signed with.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// The link key derived from a signing secret.
    pub fn derive(signing_secret: &[u8]) -> Result<Self> {
        hmac_sha256(signing_secret, b"loupe signed links v1").map(Self)
    }

    /// The signature of `resource` until `expires` (Unix seconds), hex.
    pub fn sign(&self, resource: &Resource<'_>, expires: i64) -> Result<String> {
        let mac = hmac_sha256(&self.0, resource.message(expires).as_bytes())?;
        let mut hex = String::with_capacity(64);
        for b in mac {
            let _ = write!(hex, "{b:02x}");
        }
        Ok(hex)
    }

    /// Checks a link's signature and expiry at `now` (Unix seconds).
    ///
    /// # Errors
    /// Refused (`link.invalid`) when the signature does not match or the
    /// link has expired; the message does not say which part was wrong.
    pub fn verify(
        &self,
        resource: &Resource<'_>,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> Result<()> {
        let expected = self.sign(resource, expires)?;
        let same: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
        if !same {
            return Err(invalid("this link's signature does not match it"));
        }
        if expires < now {
            return Err(invalid("this link has expired; ask for a new one"));
        }
        Ok(())
    }
}

fn invalid(message: &str) -> Error {
    Error::refused(codes::LINK_INVALID, message.to_owned())
}

/// What a signed link gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A run's result, downloaded in one format.
    Download {
        /// The run.
        run_id: &'a str,
        /// The format's name (`csv`, `xlsx`, ...).
        format: &'a str,
    },
    /// A visualization's image of one run's result.
    Image {
        /// The visualization.
        visualization_id: &'a str,
        /// The run whose result it shows.
        run_id: &'a str,
        /// `png` or `svg`.
        format: &'a str,
    },
}

impl Resource<'_> {
    /// What is signed: every part, each tagged, separated by a byte that
    /// ids and format names cannot hold.
    fn message(&self, expires: i64) -> String {
        match self {
            Self::Download { run_id, format } => {
                format!("download\n{run_id}\n{format}\n{expires}")
            }
            Self::Image {
                visualization_id,
                run_id,
                format,
            } => format!("image\n{visualization_id}\n{run_id}\n{format}\n{expires}"),
        }
    }

    /// The link's path and query below the API root (`/api/v1`).
    pub fn path(&self, expires: i64, signature: &str) -> String {
        match self {
            Self::Download { run_id, format } => format!(
                "/api/v1/links/runs/{run_id}/download?format={format}&expires={expires}&signature={signature}"
            ),
            Self::Image {
                visualization_id,
                run_id,
                format,
            } => format!(
                "/api/v1/links/visualizations/{visualization_id}/image?format={format}&run={run_id}&expires={expires}&signature={signature}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::derive(b"a signing secret that is long enough").unwrap()
    }

    #[test]
    fn a_link_is_accepted_until_it_expires_and_only_as_signed() {
        let key = key();
        let csv = Resource::Download {
            run_id: "r1",
            format: "csv",
        };
        let signature = key.sign(&csv, 1_000).unwrap();
        assert!(key.verify(&csv, 1_000, &signature, 999).is_ok());
        assert!(key.verify(&csv, 1_000, &signature, 1_000).is_ok());
        let expired = key.verify(&csv, 1_000, &signature, 1_001).unwrap_err();
        assert!(expired.to_string().contains("expired"), "{expired}");
        // Any other part: another run, format, expiry, or kind of link.
        let other_run = Resource::Download {
            run_id: "r2",
            format: "csv",
        };
        let other_format = Resource::Download {
            run_id: "r1",
            format: "parquet",
        };
        let image = Resource::Image {
            visualization_id: "r1",
            run_id: "csv",
            format: "png",
        };
        for (resource, expires) in [
            (other_run, 1_000),
            (other_format, 1_000),
            (csv, 2_000),
            (image, 1_000),
        ] {
            let refused = key.verify(&resource, expires, &signature, 0).unwrap_err();
            assert_eq!(refused.code(), codes::LINK_INVALID.as_str());
        }
        let other_key = LinkKey::derive(b"another signing secret, also long").unwrap();
        assert!(other_key.verify(&csv, 1_000, &signature, 0).is_err());
        assert!(key.verify(&csv, 1_000, "", 0).is_err());
    }
}
