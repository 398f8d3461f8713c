//! TLS to a PostgreSQL metadata store, against the test server (TLS on,
//! its certificate issued by the CA in `LOUPE_TEST_POSTGRES_CA` for
//! `localhost` and 127.0.0.1): `sslmode` and `sslrootcert` in the URL mean
//! what they mean to libpq, and a certificate that does not check out is
//! refused with the reason.

use std::path::Path;
use std::process::Command;

use loupe_core::ErrorKind;
use loupe_services::meta::MetadataStore;

/// The test server's URL with `params` instead of its TLS settings, and
/// its CA, if there is a test server.
fn server() -> Option<(url::Url, String)> {
    let base = super::postgres_url()?;
    let ca = super::env_url("LOUPE_TEST_POSTGRES_CA")?;
    let mut url = url::Url::parse(&base).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("ssl"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    Some((url, ca))
}

fn with(url: &url::Url, params: &[(&str, &str)]) -> String {
    let mut url = url.clone();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// Whether the store's connections are encrypted, as the server sees it.
async fn encrypted(store: &MetadataStore) -> bool {
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    ssl
}

/// A CA that signed nothing the server holds, made with openssl.
fn other_ca(dir: &Path) -> String {
    let ca = dir.join("other-ca.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=Not the Loupe test CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    ca.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_ca_connects_over_tls() {
    let Some((url, ca)) = server() else { return };
    for host in ["127.0.0.1", "localhost"] {
        let mut url = url.clone();
        url.set_host(Some(host)).unwrap();
        let store = MetadataStore::connect(&with(
            &url,
            &[("sslmode", "verify-full"), ("sslrootcert", &ca)],
        ))
        .await
        .unwrap();
        assert!(encrypted(&store).await, "{host}");
        store.close().await;
    }
    // `disable` is plain TCP, as in libpq.
    let plain = MetadataStore::connect(&with(&url, &[("sslmode", "disable")]))
        .await
        .unwrap();
    assert!(!encrypted(&plain).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_with_the_reason() {
    let Some((url, _)) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong = other_ca(dir.path());
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = MetadataStore::connect(&with(&url, &[("sslmode", mode), ("sslrootcert", &wrong)]))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{mode}: {e}");
        let message = e.to_string();
        assert!(
            message.contains("the TLS handshake failed")
                && message.contains("invalid peer certificate: UnknownIssuer")
                && message.contains("sslrootcert must name the CA"),
            "{mode}: {message}"
        );
        assert!(!message.contains("loupe-test-pw"), "{message}");
    }
    // `require` without a root certificate encrypts and checks nothing.
    let unchecked = MetadataStore::connect(&with(&url, &[("sslmode", "require")]))
        .await
        .unwrap();
    assert!(encrypted(&unchecked).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_mode_or_a_missing_ca_file_is_refused_before_connecting() {
    let Some((url, _)) = server() else { return };
    let e = MetadataStore::connect(&with(&url, &[("sslmode", "verify")]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("sslmode=\"verify\""), "{e}");
    let e = MetadataStore::connect(&with(
        &url,
        &[
            ("sslmode", "verify-full"),
            ("sslrootcert", "/no/such/ca.crt"),
        ],
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("sslrootcert /no/such/ca.crt"), "{e}");
}
