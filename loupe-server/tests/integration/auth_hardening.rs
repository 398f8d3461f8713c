//! Issue 12's findings 4 to 7 through HTTP: a sign-in back-off that says
//! nothing and an admin unlock, sessions and keys that end with what
//! ended them, idempotent refreshes, weak passwords, and what non-admins
//! see of other users.

use loupe_services::Role;
use loupe_services::meta::MetadataStore;
use serde_json::{Value, json};

use crate::auth::refresh;
use crate::harness::{ADMIN_EMAIL, Harness, PASSWORD, Reply};

const ATTACKER: &str = "203.0.113.9";
const HOME: &str = "198.51.100.4";
const WRONG: &str = "not the password at all";

/// The tokens of a session signed in through HTTP.
struct Signed {
    access: String,
    refresh: String,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

async fn sign_in(h: &Harness, email: &str, password: &str) -> Signed {
    let reply = h
        .anonymous()
        .post(
            "/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
        .expect(200);
    Signed {
        access: text(&reply.body, "access_token"),
        refresh: text(&reply.body, "refresh_token"),
    }
}

async fn sign_in_from(h: &Harness, ip: &str, email: &str, password: &str) -> Reply {
    h.anonymous()
        .header("X-Forwarded-For", ip)
        .post(
            "/auth/login",
            json!({ "email": email, "password": password }),
        )
        .await
}

/// A read-only API key of the user signed in with `access`.
async fn key_of(h: &Harness, access: &str) -> String {
    let created = h
        .bearer(access)
        .post("/api-keys", json!({ "name": "script", "scopes": ["read"] }))
        .await
        .expect(201);
    text(&created.body, "secret")
}

/// Asserts that neither token of `session` works any more.
async fn assert_signed_out(h: &Harness, session: &Signed) {
    h.bearer(&session.access)
        .get("/auth/me")
        .await
        .problem(401, "auth.session_ended");
    refresh(h, &session.refresh)
        .await
        .problem(401, "auth.invalid_refresh_token");
}

async fn assert_key_revoked(h: &Harness, key: &str) {
    h.key(key)
        .get("/auth/me")
        .await
        .problem(401, "auth.invalid_key");
}

/// Changes user `id` as the admin, at its current revision.
async fn change_user(h: &Harness, id: &str, change: Value) {
    let path = format!("/users/{id}");
    let current = h.admin().get(&path).await.expect(200);
    let etag = current.header("etag").expect("ETag").to_owned();
    h.admin()
        .if_match(&etag)
        .patch(&path, change)
        .await
        .expect(200);
}

/// Finding 4: failures used to lock the account with `auth.locked` (so
/// an attacker learned which emails exist, and kept the admin out with a
/// few requests). Now only the failing address waits, and is answered
/// exactly like a wrong password; the admin signs in from elsewhere, and
/// an admin lifts the wait.
#[tokio::test]
async fn a_backed_off_address_is_answered_like_a_wrong_password_until_unlocked() {
    let h = Harness::with(|c| {
        c.server.trust_forwarded_for = true;
        c.deployment.login_backoff_threshold = 3;
    })
    .await;
    let wrong = sign_in_from(&h, ATTACKER, ADMIN_EMAIL, WRONG)
        .await
        .problem(401, "auth.invalid_credentials");
    for _ in 0..2 {
        sign_in_from(&h, ATTACKER, ADMIN_EMAIL, WRONG)
            .await
            .problem(401, "auth.invalid_credentials");
    }
    let backed_off = sign_in_from(&h, ATTACKER, ADMIN_EMAIL, PASSWORD)
        .await
        .problem(401, "auth.invalid_credentials");
    let unknown = sign_in_from(&h, ATTACKER, "nobody@acme.test", PASSWORD)
        .await
        .problem(401, "auth.invalid_credentials");
    for reply in [&backed_off, &unknown] {
        assert_eq!(reply.body["detail"], wrong.body["detail"]);
        assert_eq!(reply.body["title"], wrong.body["title"]);
    }
    sign_in_from(&h, HOME, ADMIN_EMAIL, PASSWORD)
        .await
        .expect(200);

    let me = h.admin().get("/auth/me").await.expect(200);
    let admin_id = text(&me.body["user"], "id");
    let unlock = format!("/users/{admin_id}/unlock");
    let (_, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    h.bearer(&viewer)
        .post_empty(&unlock)
        .await
        .problem(403, "access.role");
    h.admin().post_empty(&unlock).await.expect(204);
    sign_in_from(&h, ATTACKER, ADMIN_EMAIL, PASSWORD)
        .await
        .expect(200);
    let trail = h
        .admin()
        .get("/audit-events?action=user.unlock")
        .await
        .expect(200);
    assert_eq!(trail.body["total"], 1);
}

/// Finding 5: a disabled and re-enabled user's old tokens and keys used
/// to work again.
#[tokio::test]
async fn disabling_and_enabling_a_user_ends_their_sessions_and_keys() {
    let h = Harness::new().await;
    let (id, _) = h.user("vera@acme.test", Role::Viewer).await;
    let session = sign_in(&h, "vera@acme.test", PASSWORD).await;
    let key = key_of(&h, &session.access).await;

    change_user(&h, &id, json!({ "disabled": true })).await;
    change_user(&h, &id, json!({ "disabled": false })).await;
    assert_signed_out(&h, &session).await;
    assert_key_revoked(&h, &key).await;
    sign_in(&h, "vera@acme.test", PASSWORD).await;
}

/// Finding 5: a role change used to leave old sessions running. Keys
/// follow the owner's role as it is now, so they stay.
#[tokio::test]
async fn a_role_change_ends_sessions_but_keeps_keys() {
    let h = Harness::new().await;
    let (id, _) = h.user("rory@acme.test", Role::Editor).await;
    let session = sign_in(&h, "rory@acme.test", PASSWORD).await;
    let key = key_of(&h, &session.access).await;

    change_user(&h, &id, json!({ "role": "viewer" })).await;
    assert_signed_out(&h, &session).await;
    h.key(&key).get("/auth/me").await.expect(200);
}

/// Finding 5: a new password ends every other session and every key;
/// the session that changed it (and proved the old one) goes on.
#[tokio::test]
async fn a_password_change_ends_other_sessions_and_every_key() {
    let h = Harness::new().await;
    h.user("pia@acme.test", Role::Editor).await;
    let here = sign_in(&h, "pia@acme.test", PASSWORD).await;
    let elsewhere = sign_in(&h, "pia@acme.test", PASSWORD).await;
    let key = key_of(&h, &elsewhere.access).await;

    let change = json!({ "current_password": PASSWORD, "new_password": "a whole new passphrase" });
    h.bearer(&here.access)
        .post("/auth/password", change)
        .await
        .expect(204);
    h.bearer(&here.access).get("/auth/me").await.expect(200);
    assert_signed_out(&h, &elsewhere).await;
    assert_key_revoked(&h, &key).await;
}

/// Finding 5: an admin reset ends every session and key once the new
/// password is set.
#[tokio::test]
async fn an_admin_reset_ends_every_session_and_key() {
    let h = Harness::new().await;
    let (id, _) = h.user("rex@acme.test", Role::Editor).await;
    let session = sign_in(&h, "rex@acme.test", PASSWORD).await;
    let key = key_of(&h, &session.access).await;

    let reset = h
        .admin()
        .post_empty(&format!("/users/{id}/password-reset"))
        .await
        .expect(201);
    let token = text(&reset.body, "token");
    h.anonymous()
        .post(
            "/auth/password-reset",
            json!({ "token": token, "password": "a whole new passphrase" }),
        )
        .await
        .expect(204);
    assert_signed_out(&h, &session).await;
    assert_key_revoked(&h, &key).await;
}

/// Finding 5: two refreshes at once with one token (two tabs, a retry)
/// used to end the session for both. Within the grace they get the same
/// new tokens; the old token presented after the grace still ends the
/// session, as a copy would.
#[tokio::test]
async fn parallel_refreshes_get_the_same_tokens_and_a_late_reuse_ends_the_session() {
    let h = Harness::new().await;
    let session = sign_in(&h, ADMIN_EMAIL, PASSWORD).await;
    let (first, second) =
        tokio::join!(refresh(&h, &session.refresh), refresh(&h, &session.refresh));
    let (first, second) = (first.expect(200), second.expect(200));
    for key in ["access_token", "refresh_token"] {
        assert_eq!(first.body[key], second.body[key], "{key}");
    }
    let next = Signed {
        access: text(&first.body, "access_token"),
        refresh: text(&first.body, "refresh_token"),
    };
    assert_ne!(next.refresh, session.refresh);
    h.bearer(&next.access).get("/auth/me").await.expect(200);

    // The grace is over: the old token was traded more than 30 s ago.
    let store = MetadataStore::connect(&h.state.deployment.config.metadata_url())
        .await
        .unwrap();
    let grace = i64::try_from(loupe_services::REFRESH_GRACE.as_micros()).unwrap();
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = revoked_at - $1 WHERE replaced_by IS NOT NULL",
    )
    .bind(grace + 1_000_000)
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    refresh(&h, &session.refresh)
        .await
        .problem(401, "auth.refresh_token_reused");
    assert_signed_out(&h, &next).await;
}

/// Finding 6: weak passwords were accepted; the answer names the field
/// and says why.
#[tokio::test]
async fn weak_passwords_are_refused_with_the_reason() {
    let h = Harness::new().await;
    for (i, password) in [
        "            ",
        "password1234",
        "aaaaaaaaaaaa",
        "123456789012",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({
            "email": format!("weak{i}@acme.test"), "name": "Weak",
            "role": "viewer", "password": password,
        });
        let refused = h.admin().post("/users", body).await.invalid("password");
        assert_eq!(refused.body["errors"][0]["code"], "weak_password");
        let why = refused.body["errors"][0]["message"].as_str().unwrap_or("");
        assert!(
            why.starts_with("a password") || why.starts_with("this"),
            "{why}"
        );
    }
    let strong = json!({
        "email": "strong@acme.test", "name": "Strong", "role": "viewer",
        "password": "mauve elephant ladder 42",
    });
    h.admin().post("/users", strong).await.expect(201);
}

/// Finding 7: a viewer listed every user's email, role and last login.
/// Viewers and editors now see each other user's id and name, and all of
/// their own record; admins see everything.
#[tokio::test]
async fn viewers_and_editors_see_names_but_no_emails() {
    let h = Harness::new().await;
    let (viewer_id, viewer) = h.user("viewer@acme.test", Role::Viewer).await;
    let (editor_id, editor) = h.user("editor@acme.test", Role::Editor).await;
    for (me_id, token) in [(&viewer_id, &viewer), (&editor_id, &editor)] {
        let caller = h.bearer(token);
        let list = caller.get("/users").await.expect(200);
        assert_eq!(list.body["total"], 3);
        for user in list.body["items"].as_array().unwrap() {
            assert!(user["name"].is_string());
            let own = user["id"] == me_id.as_str();
            for hidden in ["email", "role", "last_login_at", "disabled", "revision"] {
                assert_eq!(user.get(hidden).is_some(), own, "{hidden} of {user}");
            }
        }
        let other = if me_id == &viewer_id {
            &editor_id
        } else {
            &viewer_id
        };
        let one = caller.get(&format!("/users/{other}")).await.expect(200);
        assert!(one.body.get("email").is_none(), "{}", one.text());
        assert_eq!(one.header("etag"), None);
        let mine = caller.get(&format!("/users/{me_id}")).await.expect(200);
        assert!(mine.body["email"].is_string());
        assert!(mine.header("etag").is_some());

        for query in [
            "?email=admin",
            "?role=admin",
            "?disabled=false",
            "?sort=email",
        ] {
            caller
                .get(&format!("/users{query}"))
                .await
                .problem(403, "access.role");
        }
        let by_name = caller.get("/users?q=viewer").await.expect(200);
        assert_eq!(by_name.body["total"], 1);
    }
    let all = h.admin().get("/users").await.expect(200);
    for user in all.body["items"].as_array().unwrap() {
        assert!(user["email"].is_string(), "{user}");
    }
}
