//! `loupe admin org …` over a deployment's SQLite metadata: organizations
//! beyond the first are made here, and a disabled one's users, sessions and
//! API keys are refused at once, while the other organizations go on.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use loupe_services::meta::MetadataStore;
use loupe_services::{Scope, Services, ServicesConfig, SessionConfig, SigningKey};
use secrecy::SecretString;

use crate::text;

const PASSWORD: &str = "a long admin passphrase";

fn admin(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("admin")
        .args(args)
        .env("LOUPE_DATA_DIR", data)
        .env_remove("LOUPE_CONFIG")
        .env_remove("LOUPE_METADATA_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[track_caller]
fn succeeds(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The services over the same metadata, able to sign people in.
async fn services(data: &Path) -> Services {
    let store = MetadataStore::open(data.join("loupe.db").to_str().unwrap())
        .await
        .unwrap();
    let key = SigningKey::new(&SecretString::from(
        "q8Vv1rX0m3KpZ7tL2nY6wE4sA9dH5jF0gB1cN8uT".to_owned(),
    ))
    .unwrap();
    Services::new(
        store,
        loupe_connectors::registry(),
        ServicesConfig {
            sessions: Some(SessionConfig::new(key)),
            ..ServicesConfig::default()
        },
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn a_disabled_organization_cannot_sign_in_or_use_its_tokens_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let file = password_file.to_str().unwrap();
    for (name, email) in [("Acme", "ada@acme.test"), ("Globex", "hank@globex.test")] {
        let created = succeeds(admin(
            &data,
            &[
                "org",
                "create",
                "--name",
                name,
                "--admin-email",
                email,
                "--admin-password-file",
                file,
            ],
        ));
        assert!(
            created.ends_with(&format!("\tactive\t{name}\n")),
            "{created}"
        );
    }
    let listed = succeeds(admin(&data, &["org", "list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert!(lines[2].contains("\tglobex\tactive\tGlobex"), "{listed}");
    let globex_id = lines[2].split('\t').next().unwrap().to_owned();

    let services = services(&data).await;
    let password = SecretString::from(PASSWORD.to_owned());
    let login = |slug: &'static str, email: &'static str| {
        let services = services.clone();
        let password = password.clone();
        async move {
            services
                .sessions
                .login(Some(slug), email, &password, None)
                .await
        }
    };
    let session = login("globex", "hank@globex.test").await.unwrap();
    let (actor, _) = services
        .sessions
        .authenticate(&session.access_token, None)
        .await
        .unwrap();
    let key = services
        .api_keys
        .create(&actor, "etl", &[Scope::Read], None)
        .await
        .unwrap()
        .secret;

    let disabled = succeeds(admin(&data, &["org", "disable", "globex"]));
    assert!(disabled.contains("\tglobex\tdisabled\t"), "{disabled}");
    let code = |e: loupe_core::Error| e.catalogue_code().as_str();
    let refused = services
        .sessions
        .authenticate(&session.access_token, None)
        .await
        .unwrap_err();
    assert_eq!(code(refused), "auth.org_disabled");
    assert!(
        services
            .sessions
            .refresh(&session.refresh_token, None)
            .await
            .is_err()
    );
    assert_eq!(
        code(
            services
                .api_keys
                .authenticate(&key, None)
                .await
                .unwrap_err()
        ),
        "auth.invalid_key"
    );
    assert_eq!(
        code(login("globex", "hank@globex.test").await.unwrap_err()),
        "auth.invalid_credentials"
    );
    // The other organization goes on.
    login("acme", "ada@acme.test").await.unwrap();

    // Enabled again (by id), its people are back.
    succeeds(admin(&data, &["org", "enable", &globex_id]));
    login("globex", "hank@globex.test").await.unwrap();
    services.api_keys.authenticate(&key, None).await.unwrap();
    services.store().close().await;
}

#[test]
fn admin_commands_say_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = admin(&data, &["org", "disable", "nobody"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("loupe: "),
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path().join("no-such-file");
    let out = admin(
        &data,
        &[
            "org",
            "create",
            "--name",
            "Initech",
            "--admin-email",
            "bill@initech.test",
            "--admin-password-file",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read the admin password"),
        "{}",
        text(&out.stderr)
    );
}
