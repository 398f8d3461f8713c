//! `/setup`, `/auth`, `/api-keys`: signing in, tokens, back-off, rate
//! limits and API keys.

use loupe_services::Role;
use serde_json::{Value, json};

use crate::harness::{ADMIN_EMAIL, Harness, PASSWORD, Reply};

async fn login(h: &Harness, email: &str, password: &str) -> Reply {
    h.anonymous()
        .post(
            "/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
}

/// `POST /auth/refresh` with `token`.
pub(crate) async fn refresh(h: &Harness, token: &str) -> Reply {
    h.anonymous()
        .post("/auth/refresh", json!({ "refresh_token": token }))
        .await
}

/// `GET /auth/me` with a bearer `token`.
async fn me(h: &Harness, token: &str) -> Reply {
    h.bearer(token).get("/auth/me").await
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn login_gives_tokens_that_work_until_logout() {
    let h = Harness::new().await;
    let reply = login(&h, ADMIN_EMAIL, PASSWORD).await.expect(200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["token_type"], "Bearer");
    let expires_in = reply.body["expires_in"].as_i64().unwrap_or(0);
    assert!((890..=900).contains(&expires_in), "{expires_in}");
    let access = text(&reply.body, "access_token");

    let me_now = me(&h, &access).await.expect(200);
    assert_eq!(me_now.body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me_now.body["effective_role"], "admin");
    assert_eq!(me_now.body["via"], "session");
    assert!(me_now.body["user"].get("password_hash").is_none());

    h.bearer(&access)
        .post_empty("/auth/logout")
        .await
        .expect(204);
    me(&h, &access).await.problem(401, "auth.session_ended");
}

#[tokio::test]
async fn missing_invalid_and_expired_credentials_answer_401() {
    let h = Harness::new().await;
    h.assert_sign_in_required("/auth/me").await;
    me(&h, "not.a.jwt").await.problem(401, "auth.invalid_token");
    h.key("loupe_nope")
        .get("/auth/me")
        .await
        .problem(401, "auth.invalid_key");

    // A token signed with the server's own key but expired.
    let secret = std::fs::read_to_string(h.dir.path().join("data/signing.key")).unwrap();
    let (actor, sid) = h
        .services()
        .sessions
        .authenticate(&h.admin, None)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": actor.user_id, "org": actor.org_id, "sid": sid, "iat": now - 3600, "exp": now - 600 });
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap();
    me(&h, &expired).await.problem(401, "auth.token_expired");

    // The same claims signed with another key are not valid.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": actor.user_id, "org": actor.org_id, "sid": sid, "iat": now, "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(b"another key entirely, 32 bytes long!!"),
    )
    .unwrap();
    me(&h, &forged).await.problem(401, "auth.invalid_token");
}

#[tokio::test]
async fn reusing_a_refresh_token_ends_the_session() {
    let h = Harness::new().await;
    let first = login(&h, ADMIN_EMAIL, PASSWORD).await;
    let old_refresh = text(&first.body, "refresh_token");

    let second = refresh(&h, &old_refresh).await.expect(200);
    let new_refresh = text(&second.body, "refresh_token");
    let new_access = text(&second.body, "access_token");
    assert_ne!(new_refresh, old_refresh);
    me(&h, &new_access).await.expect(200);

    // The old token again, past the grace in which a retry gets the same
    // new tokens (`auth_hardening.rs`): someone copied it. The whole
    // family ends.
    let store =
        loupe_services::meta::MetadataStore::connect(&h.state.deployment.config.metadata_url())
            .await
            .unwrap();
    sqlx::query("UPDATE refresh_tokens SET revoked_at = revoked_at - 60000000")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    refresh(&h, &old_refresh)
        .await
        .problem(401, "auth.refresh_token_reused");
    refresh(&h, &new_refresh)
        .await
        .problem(401, "auth.invalid_refresh_token");
    me(&h, &new_access).await.problem(401, "auth.session_ended");
    // Another session of the same user is untouched.
    me(&h, &h.admin).await.expect(200);
}

#[tokio::test]
async fn repeated_failures_back_the_address_off_without_saying_so() {
    let h = Harness::with(|c| c.deployment.login_backoff_threshold = 3).await;
    for _ in 0..3 {
        login(&h, ADMIN_EMAIL, "not the password at all")
            .await
            .problem(401, "auth.invalid_credentials");
    }
    // Even the right password waits, answered like a wrong one
    // (`auth_hardening.rs` has the rest).
    login(&h, ADMIN_EMAIL, PASSWORD)
        .await
        .problem(401, "auth.invalid_credentials");
    // The answer for an unknown email is the same as for a wrong password.
    login(&h, "nobody@acme.test", "whatever it is here")
        .await
        .problem(401, "auth.invalid_credentials");
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_address() {
    let h = Harness::with(|c| c.server.rate_limit.auth_per_minute = 3).await;
    for _ in 0..3 {
        login(&h, ADMIN_EMAIL, PASSWORD).await.expect(200);
    }
    let limited = login(&h, ADMIN_EMAIL, PASSWORD)
        .await
        .problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn api_calls_are_rate_limited_per_caller() {
    let h = Harness::with(|c| {
        c.server.rate_limit.api_per_second = 1;
        c.server.rate_limit.api_burst = 2;
    })
    .await;
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let reply = me(&h, &viewer).await;
        statuses.push(reply.status);
        if reply.status == 429 {
            assert!(reply.header("retry-after").is_some());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    // Another caller has their own bucket.
    me(&h, &h.admin).await.expect(200);
}

#[tokio::test]
async fn api_keys_are_shown_once_and_limited_by_scope() {
    let h = Harness::new().await;
    let created = h
        .admin()
        .post(
            "/api-keys",
            json!({ "name": "reporting", "scopes": ["read"] }),
        )
        .await
        .expect(201);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let secret = text(&created.body, "secret");
    let id = text(&created.body["key"], "id");
    assert!(secret.starts_with(created.body["key"]["prefix"].as_str().unwrap()));

    let listed = h.admin().get("/api-keys").await.expect(200);
    assert!(!listed.text().contains(&secret), "secret listed");
    assert_eq!(listed.body[0]["prefix"], created.body["key"]["prefix"]);

    let key = h.key(&secret);
    let me_by_key = key.get("/auth/me").await.expect(200);
    assert_eq!(me_by_key.body["via"], "api_key");
    assert_eq!(me_by_key.body["effective_role"], "viewer");

    // A read-only key cannot run anything, even for an admin.
    let ds = h.sample_datasource().await;
    let run = key
        .post("/runs", json!({ "datasource_id": ds, "sql": "select 1" }))
        .await;
    assert_eq!(run.status, 403, "{}", run.text());
    // A key cannot make keys.
    key.post("/api-keys", json!({ "name": "nested", "scopes": ["read"] }))
        .await
        .problem(403, "access.key");

    h.admin()
        .delete(&format!("/api-keys/{id}"))
        .await
        .expect(204);
    key.get("/auth/me").await.problem(401, "auth.invalid_key");
}

#[tokio::test]
async fn a_password_change_ends_other_sessions() {
    let h = Harness::new().await;
    let (_, editor) = h.user("editor@acme.test", Role::Editor).await;
    let other = h.login("editor@acme.test", PASSWORD).await;
    let change =
        |new_password: &str| json!({ "current_password": PASSWORD, "new_password": new_password });
    h.bearer(&editor)
        .post("/auth/password", change("short"))
        .await
        .problem(422, "validation.failed");
    h.bearer(&editor)
        .post("/auth/password", change("a new and longer passphrase"))
        .await
        .expect(204);
    me(&h, &editor).await.expect(200);
    me(&h, &other).await.problem(401, "auth.session_ended");
    login(&h, "editor@acme.test", "a new and longer passphrase")
        .await
        .expect(200);
}

#[tokio::test]
async fn first_start_set_up_works_once_with_the_printed_token() {
    let h = Harness::bare(|c| {
        c.deployment.admin_email = None;
        c.deployment.admin_password = None;
    })
    .await;
    assert!(h.state.setup.is_open());
    // The token printed at start is not readable here; open a new one.
    let token = h.state.setup.open().unwrap();
    let set_up = |token: &str, password: &str| {
        let body = json!({
            "token": token, "org_name": "Acme", "email": "first@acme.test",
            "name": "First", "password": password
        });
        let h = &h;
        async move { h.anonymous().post("/setup", body).await }
    };
    set_up("nope", PASSWORD).await.problem(403, "setup.closed");
    // Bad input does not burn the token.
    set_up(&token, "short")
        .await
        .problem(422, "validation.failed");
    let done = set_up(&token, PASSWORD).await.expect(201);
    assert_eq!(done.body["admin"]["role"], "admin");
    set_up(&token, PASSWORD).await.problem(403, "setup.closed");
    login(&h, "first@acme.test", PASSWORD).await.expect(200);
}

#[tokio::test]
async fn behind_a_proxy_the_address_the_proxy_saw_is_limited() {
    let h = Harness::with(|c| {
        c.server.rate_limit.auth_per_minute = 2;
        c.server.trust_forwarded_for = true;
    })
    .await;
    forwarded_login(&h, "1.1.1.1, 10.0.0.1").await.expect(200);
    forwarded_login(&h, "2.2.2.2, 10.0.0.1").await.expect(200);
    // A made-up first entry does not make a new client.
    forwarded_login(&h, "3.3.3.3, 10.0.0.1")
        .await
        .problem(429, "rate_limited");
    forwarded_login(&h, "10.0.0.2").await.expect(200);
}

async fn forwarded_login(h: &Harness, forwarded: &str) -> Reply {
    h.anonymous()
        .header("X-Forwarded-For", forwarded)
        .post(
            "/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": PASSWORD }),
        )
        .await
}
