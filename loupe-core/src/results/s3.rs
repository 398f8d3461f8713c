//! Results in an S3-compatible object store (`s3://bucket/prefix`): how to
//! reach it ([`S3Options`]) and the `object_store` client built from that.
//!
//! Whatever is not set here comes from the standard `AWS_*` environment
//! variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...), then from
//! `object_store`'s defaults (region `us-east-1`, instance credentials).
//! This module builds clients only; it reads and writes nothing.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::error::{Error, Result};

/// How to reach an S3-compatible object store. `None` fields fall back to
/// the `AWS_*` environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// The server's URL (`https://minio.internal:9000`); default: AWS.
    pub endpoint: Option<String>,
    /// The region (`eu-west-1`); default `us-east-1`.
    pub region: Option<String>,
    /// Access key id; set together with `secret_access_key`.
    pub access_key_id: Option<String>,
    /// Secret access key; never printed.
    pub secret_access_key: Option<String>,
    /// Plain HTTP to an endpoint that is not on loopback. Off by default:
    /// credentials and results would cross the network in clear text. An
    /// endpoint on loopback may always use HTTP.
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`), which S3-compatible
    /// servers expect, rather than virtual-hosted style
    /// (`bucket.endpoint/key`). Default: path-style, unless
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
    pub path_style: Option<bool>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "********"),
            )
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Options {
    /// The endpoint, when it is plain HTTP to another machine and
    /// `allow_http` is off: such an endpoint is refused.
    pub fn refused_http_endpoint(&self) -> Option<&str> {
        self.endpoint
            .as_deref()
            .filter(|e| e.starts_with("http://") && !self.allow_http && !is_loopback_http(e))
    }
}

/// True when `endpoint` is an `http://` URL whose host is this machine.
pub(crate) fn is_loopback_http(endpoint: &str) -> bool {
    let Ok(url) = Url::parse(endpoint) else {
        return false;
    };
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
}

/// The bucket and the prefix of an `s3://bucket/prefix` URL.
///
/// # Errors
/// [`Error::Config`] when `location` is not such a URL.
pub fn parse_s3_url(location: &str) -> Result<(String, String)> {
    let url = Url::parse(location)
        .map_err(|e| Error::config(format!("result store URL {location:?}: {e}")))?;
    if url.scheme() != "s3" {
        return Err(Error::config(format!(
            "result store URL {location:?}: expected s3://bucket/prefix"
        )));
    }
    let bucket = url.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(Error::config(format!(
            "result store URL {location:?}: no bucket; write s3://bucket/prefix"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Error::config(format!(
            "result store URL {location:?}: only s3://bucket/prefix; give credentials and the endpoint as settings"
        )));
    }
    let prefix = url.path().trim_matches('/').to_owned();
    Ok((bucket.to_owned(), prefix))
}

#[cfg(feature = "s3")]
pub(crate) use client::store;

#[cfg(feature = "s3")]
mod client {
    use std::sync::Arc;

    use object_store::ObjectStore;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::client::ClientConfigKey;
    use object_store::path::Path;

    use super::{S3Options, is_loopback_http, parse_s3_url};
    use crate::error::{Error, Result};

    /// The client and the prefix for `location` (`s3://bucket/prefix`).
    pub(crate) fn store(
        location: &str,
        options: &S3Options,
    ) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let (bucket, prefix) = parse_s3_url(location)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        match (&options.access_key_id, &options.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "S3 access_key_id and secret_access_key go together; set both or neither",
                ));
            }
        }
        if let Some(path_style) = options.path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        if let Some(endpoint) = endpoint.as_deref().filter(|e| e.starts_with("http://")) {
            let allowed_by_env = builder
                .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if options.allow_http || is_loopback_http(endpoint) {
                builder = builder.with_allow_http(true);
            } else if !allowed_by_env {
                return Err(Error::config(format!(
                    "S3 endpoint {endpoint}: plain HTTP would send credentials and results in clear text; use https://, or set allow_http"
                )));
            }
        }
        let store = builder
            .build()
            .map_err(|e| Error::config(format!("result store {location}: {e}")))?;
        Ok((Arc::new(store), Path::from(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            parse_s3_url("s3://results/team/a/").ok(),
            Some(("results".to_owned(), "team/a".to_owned()))
        );
        assert_eq!(
            parse_s3_url("s3://results").ok(),
            Some(("results".to_owned(), String::new()))
        );
        for bad in [
            "s3:///prefix",
            "https://results/x",
            "s3://key:secret@results/x",
            "s3://results/x?region=eu",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_loopback_endpoints_count_as_local() {
        for local in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
            "http://127.8.0.1",
        ] {
            assert!(is_loopback_http(local), "{local}");
        }
        for remote in [
            "http://minio.internal:9000",
            "http://10.0.0.1",
            "https://127.0.0.1:9000",
            "http://localhost.example.com",
        ] {
            assert!(!is_loopback_http(remote), "{remote}");
        }
    }

    #[test]
    fn the_secret_key_is_not_printed() {
        let options = S3Options {
            access_key_id: Some("AKIDEXAMPLE".to_owned()),
            secret_access_key: Some("wJalrXUtnFEMI".to_owned()),
            ..S3Options::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn plain_http_to_another_host_is_refused_unless_allowed() {
        let remote = S3Options {
            endpoint: Some("http://minio.internal:9000".to_owned()),
            access_key_id: Some("id".to_owned()),
            secret_access_key: Some("secret".to_owned()),
            ..S3Options::default()
        };
        let e = client::store("s3://results/x", &remote)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("allow_http"), "{e}");
        let allowed = S3Options {
            allow_http: true,
            ..remote.clone()
        };
        assert!(client::store("s3://results/x", &allowed).is_ok());
        let local = S3Options {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            ..remote
        };
        assert!(client::store("s3://results/x", &local).is_ok());
    }
}
