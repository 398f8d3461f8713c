//! Public links and signed embedding over HTTP: what a page shows and
//! hides, who may share, the refusals of links and tokens, the one
//! refresh per interval however many views, tokens signed by the
//! documentation's own Python and Node.js examples, and a bounded load
//! test of a public dashboard against a real PostgreSQL whose statement
//! counts show no SQL beyond the allowed refreshes.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use loupe_services::Role;
use serde_json::{Value, json};

use crate::harness::{ADMIN_EMAIL, Harness, Reply};
use crate::process::{pg_options, postgres_url, test_server};

/// Customers of one country, the country a text parameter.
const BY_COUNTRY: &str =
    "select name, country from customers where country = {{ country }} order by id";

/// A saved query on the sample data as `token`; returns its id.
async fn sample_query(h: &Harness, token: &str, sql: &str, parameters: Value) -> String {
    let ds = h.sample_datasource().await;
    h.bearer(token)
        .post(
            "/queries",
            json!({ "name": "Customers", "datasource_id": ds, "sql": sql, "parameters": parameters }),
        )
        .await
        .expect(201)
        .id()
}

fn country_parameter() -> Value {
    json!([{ "name": "country", "type": "text", "default": "FR" }])
}

/// `/public/<token>` with `parameters` chosen, URL-encoded.
fn public_path(token: &str, parameters: Option<Value>) -> String {
    match parameters {
        None => format!("/public/{token}"),
        Some(p) => {
            let encoded: String =
                url::form_urlencoded::byte_serialize(p.to_string().as_bytes()).collect();
            format!("/public/{token}?parameters={encoded}")
        }
    }
}

/// Polls an anonymous page until every result on it is ready.
async fn ready(h: &Harness, path: &str) -> Reply {
    for _ in 0..400 {
        let reply = h.anonymous().get(path).await.expect(200);
        let states: Vec<&Value> = reply.body["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .filter_map(|w| w.get("result"))
            .collect();
        if !states.is_empty() && states.iter().all(|r| r["state"] == "ready") {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{path} did not become ready");
}

/// The runs of query `id`, as the admin lists them.
async fn runs_of(h: &Harness, id: &str) -> Vec<Value> {
    let reply = h
        .admin()
        .get(&format!("/runs?query={id}&limit=100"))
        .await
        .expect(200);
    reply.body["items"].as_array().expect("items").clone()
}

/// Waits until no run of query `id` is queued or running.
async fn settled(h: &Harness, id: &str) -> Vec<Value> {
    for _ in 0..800 {
        let runs = runs_of(h, id).await;
        if runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the runs of query {id} did not finish");
}

fn column(rows: &Value, index: usize) -> Vec<String> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r[index].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_public_link_shows_stored_results_without_sql_and_stops_when_revoked() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let ds = h.sample_datasource().await;
    let id = sample_query(&h, &h.admin, BY_COUNTRY, country_parameter()).await;
    let made = h
        .admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 3600, "parameters": { "country": "DE" } }),
        )
        .await
        .expect(201);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let token = made.body["token"].as_str().expect("token").to_owned();
    let share_id = made.body["share"]["id"].as_str().expect("id").to_owned();
    assert_eq!(token.len(), 43, "32 random bytes, base64url");
    assert!(
        made.body["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/api/v1/public/{token}")))
    );

    let page = ready(&h, &public_path(&token, None)).await;
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-robots-tag"), Some("noindex, nofollow"));
    assert_eq!(page.body["kind"], "query");
    assert_eq!(page.body["name"], "Customers");
    assert_eq!(page.body["parameters"][0]["value"], "DE");
    assert_eq!(page.body["parameters"][0]["choices"], json!([]));
    let result = &page.body["widgets"][0]["result"];
    assert_eq!(page.body["widgets"][0]["kind"], "table");
    assert_eq!(result["columns"][1]["name"], "country");
    let countries = column(&result["rows"], 1);
    assert!(!countries.is_empty() && countries.iter().all(|c| c == "DE"));
    assert_eq!(result["total_rows"], countries.len());
    assert_eq!(result["stale"], false);
    assert!(result["finished_at"].is_string());
    // Nothing of how it was made: no SQL, owner or datasource.
    let text = page.text();
    for hidden in ["select", "customers where", ADMIN_EMAIL, &ds, "datasource"] {
        assert!(!text.contains(hidden), "{hidden:?} in {text}");
    }

    let listed = h
        .admin()
        .get(&format!("/queries/{id}/shares"))
        .await
        .expect(200);
    assert_eq!(listed.body[0]["id"], share_id.as_str());
    assert!(
        listed.body[0]["views"].as_i64().unwrap() >= 1,
        "views are counted"
    );
    assert!(listed.body[0].get("token").is_none());
    assert!(!listed.text().contains(&token));

    h.admin()
        .delete(&format!("/queries/{id}/share/{share_id}"))
        .await
        .expect(204);
    let revoked = h
        .anonymous()
        .get(&public_path(&token, None))
        .await
        .problem(404, "share.invalid");
    let unknown = h
        .anonymous()
        .get(&public_path(&"x".repeat(43), None))
        .await
        .problem(404, "share.invalid");
    assert_eq!(revoked.body["title"], unknown.body["title"]);
    let listed = h
        .admin()
        .get(&format!("/queries/{id}/shares"))
        .await
        .expect(200);
    assert_eq!(listed.body, json!([]));
    h.admin()
        .delete(&format!("/queries/{id}/share/{share_id}"))
        .await
        .problem(404, "not_found");

    for action in ["share.create", "share.revoke"] {
        let events = h
            .admin()
            .get(&format!("/audit-events?action={action}"))
            .await
            .expect(200);
        assert_eq!(
            events.body["items"][0]["resource_id"],
            share_id.as_str(),
            "{action}"
        );
    }
}

#[tokio::test]
async fn an_expired_link_answers_404_like_an_unknown_one() {
    let h = Harness::new().await;
    let id = sample_query(&h, &h.admin, BY_COUNTRY, country_parameter()).await;
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let made = h
        .admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60, "expires_at": expires.to_rfc3339() }),
        )
        .await
        .expect(201);
    let token = made.body["token"].as_str().unwrap().to_owned();
    let before = h
        .anonymous()
        .get(&public_path(&token, None))
        .await
        .expect(200);
    assert!(before.body["expires_at"].is_string());
    tokio::time::sleep(Duration::from_millis(1600)).await;
    h.anonymous()
        .get(&public_path(&token, None))
        .await
        .problem(404, "share.invalid");
    // A past expiry is refused when the link is made.
    h.admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60, "expires_at": "2001-01-01T00:00:00Z" }),
        )
        .await
        .invalid("expires_at");
}

#[tokio::test]
async fn a_link_whose_sharer_is_disabled_answers_404() {
    let h = Harness::new().await;
    let (editor_id, editor) = h.user("erin@acme.test", Role::Editor).await;
    let id = sample_query(&h, &editor, BY_COUNTRY, country_parameter()).await;
    let made = h
        .bearer(&editor)
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60 }),
        )
        .await
        .expect(201);
    let token = made.body["token"].as_str().unwrap().to_owned();
    h.anonymous()
        .get(&public_path(&token, None))
        .await
        .expect(200);
    let path = format!("/users/{editor_id}");
    let current = h.admin().get(&path).await.expect(200);
    let etag = current.header("etag").unwrap().to_owned();
    h.admin()
        .if_match(&etag)
        .patch(&path, json!({ "disabled": true }))
        .await
        .expect(200);
    h.anonymous()
        .get(&public_path(&token, None))
        .await
        .problem(404, "share.invalid");
}

#[tokio::test]
async fn a_viewer_chooses_only_offered_values_of_offered_parameters() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let sql = "select name, country from customers where country = {{ country }} and id <= {{ n }} order by id";
    let parameters = json!([
        { "name": "country", "type": "text", "default": "FR" },
        { "name": "n", "type": "integer", "default": 1000 },
    ]);
    let id = sample_query(&h, &h.admin, sql, parameters).await;
    let made = h
        .admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({
                "max_age_seconds": 3600,
                "parameters": { "country": "FR" },
                "options": { "country": ["FR", "DE"] },
            }),
        )
        .await
        .expect(201);
    let token = made.body["token"].as_str().unwrap().to_owned();

    let fr = ready(&h, &public_path(&token, None)).await;
    assert!(
        column(&fr.body["widgets"][0]["result"]["rows"], 1)
            .iter()
            .all(|c| c == "FR")
    );
    assert_eq!(fr.body["parameters"][0]["choices"], json!(["FR", "DE"]));
    let de = ready(&h, &public_path(&token, Some(json!({ "country": "DE" })))).await;
    let countries = column(&de.body["widgets"][0]["result"]["rows"], 1);
    assert!(!countries.is_empty() && countries.iter().all(|c| c == "DE"));
    assert_eq!(de.body["parameters"][0]["value"], "DE");

    // A value not offered, a parameter not offered, a malformed object:
    // each names the parameter, and nothing is queued for them.
    let before = runs_of(&h, &id).await.len();
    let not_offered = h
        .anonymous()
        .get(&public_path(&token, Some(json!({ "country": "US" }))))
        .await
        .invalid("parameters.country");
    assert_eq!(not_offered.body["errors"][0]["code"], "invalid_option");
    let fixed = h
        .anonymous()
        .get(&public_path(&token, Some(json!({ "n": 3 }))))
        .await
        .invalid("parameters.n");
    assert_eq!(fixed.body["errors"][0]["code"], "not_choosable");
    h.anonymous()
        .get(&format!("/public/{token}?parameters=not-json"))
        .await
        .invalid("parameters");
    assert_eq!(runs_of(&h, &id).await.len(), before);

    // What the sharer offers must fit the query.
    h.admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60, "options": { "n": ["many"] } }),
        )
        .await
        .invalid("options.n[0]");
    h.admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60, "parameters": { "region": "EU" } }),
        )
        .await
        .invalid("parameters.region");
}

#[tokio::test]
async fn views_of_a_link_queue_at_most_one_refresh_per_interval() {
    let every = Duration::from_secs(4);
    let h = Harness::with(|c| c.deployment.sharing.refresh_every = every).await;
    let _runner = h.runner();
    let id = sample_query(&h, &h.admin, BY_COUNTRY, country_parameter()).await;
    let made = h
        .admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 1 }),
        )
        .await
        .expect(201);
    let token = made.body["token"].as_str().unwrap().to_owned();
    let path = public_path(&token, None);
    let burst = || async {
        let anonymous = h.anonymous();
        let replies = futures::future::join_all((0..16).map(|_| anonymous.get(&path))).await;
        for reply in &replies {
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        replies
    };

    // The first views queue one run between them.
    let first = Instant::now();
    let pending = burst().await;
    assert!(
        pending
            .iter()
            .all(|r| r.body["widgets"][0]["result"]["state"] != "unavailable")
    );
    ready(&h, &path).await;
    assert_eq!(settled(&h, &id).await.len(), 1);

    // Stale within the interval: shown as it is, nothing queued.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = burst().await;
    let runs = settled(&h, &id).await.len();
    if first.elapsed() < every - Duration::from_millis(500) {
        assert_eq!(
            runs, 1,
            "a stale result within the interval is not refreshed"
        );
        for reply in &stale {
            let result = &reply.body["widgets"][0]["result"];
            assert_eq!(result["state"], "ready");
            assert_eq!(result["stale"], true);
            assert_eq!(result["refreshing"], false);
        }
    }

    // Past the interval: one refresh for the whole burst.
    let wait = (every + Duration::from_millis(200)).saturating_sub(first.elapsed());
    tokio::time::sleep(wait).await;
    burst().await;
    burst().await;
    let runs = settled(&h, &id).await;
    assert_eq!(runs.len(), 2, "one refresh per interval: {runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
}

#[tokio::test]
async fn sharing_needs_the_right_to_change_the_object_and_run_its_queries() {
    let h = Harness::new().await;
    let (_, viewer) = h.user("vic@acme.test", Role::Viewer).await;
    let (_, editor) = h.user("erin@acme.test", Role::Editor).await;
    let id = sample_query(&h, &h.admin, BY_COUNTRY, country_parameter()).await;
    let body = json!({ "max_age_seconds": 60 });
    h.bearer(&viewer)
        .post(&format!("/queries/{id}/share"), body.clone())
        .await
        .problem(403, "access.role");
    h.bearer(&editor)
        .post(&format!("/queries/{id}/share"), body.clone())
        .await
        .problem(403, "access.owner");
    h.bearer(&editor)
        .get(&format!("/queries/{id}/shares"))
        .await
        .problem(403, "access.owner");

    // A dashboard whose widget is on a datasource the sharer may not run.
    let ds = h.sample_datasource().await;
    let everyone = h.everyone_group(&h.admin).await;
    let own = sample_query(&h, &editor, BY_COUNTRY, country_parameter()).await;
    let chart = h
        .bearer(&editor)
        .post(
            "/visualizations",
            json!({ "query_id": own, "type": "table", "name": "Rows" }),
        )
        .await
        .expect(201)
        .id();
    h.admin()
        .put(
            &format!("/groups/{everyone}/grants/{ds}"),
            json!({ "access": "view" }),
        )
        .await
        .expect(200);
    h.bearer(&editor)
        .post(&format!("/visualizations/{chart}/share"), body)
        .await
        .problem(403, "access.view_only");
}

#[tokio::test]
async fn another_organizations_links_and_secrets_are_not_found() {
    let h = Harness::new().await;
    let other = h.other_org_admin().await;
    let id = sample_query(&h, &h.admin, BY_COUNTRY, country_parameter()).await;
    let made = h
        .admin()
        .post(
            &format!("/queries/{id}/share"),
            json!({ "max_age_seconds": 60 }),
        )
        .await
        .expect(201);
    let share_id = made.body["share"]["id"].as_str().unwrap().to_owned();
    let secret = h.admin().post_empty("/embedding/secrets").await.expect(201);
    let secret_id = secret.body["secret"]["id"].as_str().unwrap().to_owned();

    let them = h.bearer(&other);
    them.get(&format!("/queries/{id}/shares"))
        .await
        .problem(404, "not_found");
    them.delete(&format!("/queries/{id}/share/{share_id}"))
        .await
        .problem(404, "not_found");
    them.delete(&format!("/embedding/secrets/{secret_id}"))
        .await
        .problem(404, "not_found");
    let listed = them.get("/embedding/secrets").await.expect(200);
    assert_eq!(listed.body, json!([]));
    // Still working for their own organization.
    let token = made.body["token"].as_str().unwrap();
    h.anonymous()
        .get(&public_path(token, None))
        .await
        .expect(200);
}

#[tokio::test]
async fn the_document_lists_public_pages_without_a_security_requirement() {
    let h = Harness::new().await;
    let doc = h.anonymous().get("/openapi.json").await.expect(200).body;
    for path in ["/public/{token}", "/embed/{token}"] {
        let operation = &doc["paths"][path]["get"];
        assert!(operation.is_object(), "{path} is documented");
        assert!(
            operation["security"]
                .as_array()
                .is_none_or(|s| s.is_empty()),
            "{path} needs no sign-in"
        );
    }
    let share = &doc["paths"]["/dashboards/{id}/share"]["post"];
    assert!(share["security"].as_array().is_some_and(|s| !s.is_empty()));
}

// Signed embedding.

/// The HS256 key of an embedding secret: its text, as it is.
struct Secret {
    id: String,
    value: String,
}

async fn new_secret(h: &Harness, admin: &str) -> (Secret, Reply) {
    let made = h
        .bearer(admin)
        .post_empty("/embedding/secrets")
        .await
        .expect(201);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let secret = Secret {
        id: made.body["secret"]["id"].as_str().unwrap().to_owned(),
        value: made.body["value"].as_str().unwrap().to_owned(),
    };
    (secret, made)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token signed by `jsonwebtoken` with `secret`, `claims` as given.
fn sign(secret: &Secret, claims: &Value) -> String {
    let header = Header {
        kid: Some(secret.id.clone()),
        ..Header::new(Algorithm::HS256)
    };
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.value.as_bytes()),
    )
    .unwrap()
}

/// A token put together by hand: base64url JSON header and claims, and
/// `signature` as given.
fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A dashboard owned by an editor whose access binds the query parameter
/// `country` to the attribute `region` (every member of `everyone` is
/// restricted so), with a dashboard parameter `segment`.
struct Embedded {
    dashboard: String,
    admin_secret: Secret,
}

async fn embedded(h: &Harness) -> Embedded {
    let ds = h.sample_datasource().await;
    let everyone = h.everyone_group(&h.admin).await;
    h.admin()
        .put(
            &format!("/groups/{everyone}/grants/{ds}"),
            json!({ "access": "run", "rules": { "locked": { "country": "region" } } }),
        )
        .await
        .expect(200);
    let (_, owner) = h.user("owner@acme.test", Role::Editor).await;
    let sql = "select name, country, segment from customers \
               where country = {{ country }} and segment = {{ segment }} order by id";
    let parameters = json!([
        { "name": "country", "type": "text" },
        { "name": "segment", "type": "text", "default": "corporate" },
    ]);
    let query = sample_query(h, &owner, sql, parameters).await;
    let chart = h
        .bearer(&owner)
        .post(
            "/visualizations",
            json!({ "query_id": query, "type": "table", "name": "Customers" }),
        )
        .await
        .expect(201)
        .id();
    let dashboard = h
        .bearer(&owner)
        .post(
            "/dashboards",
            json!({
                "name": "Customers by segment",
                "parameters": [{ "name": "segment", "type": "text", "default": "corporate" }],
                "widgets": [
                    { "kind": "text", "text": "# Customers", "x": 0, "y": 0, "w": 24, "h": 1 },
                    {
                        "kind": "visualization", "visualization_id": chart,
                        "x": 0, "y": 1, "w": 24, "h": 6,
                        "parameter_mappings": { "segment": "segment" },
                    },
                ],
            }),
        )
        .await
        .expect(201)
        .id();
    let (admin_secret, _) = new_secret(h, &h.admin).await;
    Embedded {
        dashboard,
        admin_secret,
    }
}

fn claims(dashboard: &str, region: &str) -> Value {
    json!({
        "resource": { "dashboard": dashboard },
        "params": { "segment": "small_business" },
        "attributes": { "region": region },
        "iat": now(),
        "exp": now() + 300,
    })
}

/// The rows (name, country, segment) an embedded page shows.
fn embedded_rows(page: &Reply) -> Vec<(String, String)> {
    page.body["widgets"][1]["result"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[1].as_str().unwrap_or_default().to_owned(),
                r[2].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn embedding_attributes_drive_locked_parameters_and_the_token_locks_the_rest() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let e = embedded(&h).await;
    let fr = sign(&e.admin_secret, &claims(&e.dashboard, "FR"));
    let de = sign(&e.admin_secret, &claims(&e.dashboard, "DE"));
    let fr_page = ready(&h, &format!("/embed/{fr}")).await;
    let de_page = ready(&h, &format!("/embed/{de}")).await;
    assert_eq!(fr_page.header("cache-control"), Some("no-store"));
    assert_eq!(fr_page.header("x-robots-tag"), Some("noindex, nofollow"));
    assert_eq!(fr_page.body["kind"], "dashboard");
    assert_eq!(fr_page.body["widgets"][0]["text"], "# Customers");
    assert_eq!(fr_page.body["parameters"][0]["value"], "small_business");
    assert_eq!(fr_page.body["parameters"][0]["choices"], json!([]));
    let (fr_rows, de_rows) = (embedded_rows(&fr_page), embedded_rows(&de_page));
    assert!(!fr_rows.is_empty() && !de_rows.is_empty());
    assert!(
        fr_rows
            .iter()
            .all(|r| *r == ("FR".into(), "small_business".into()))
    );
    assert!(
        de_rows
            .iter()
            .all(|r| *r == ("DE".into(), "small_business".into()))
    );

    // The query string cannot change what the token locked.
    let encoded: String =
        url::form_urlencoded::byte_serialize(br#"{"segment":"corporate"}"#).collect();
    h.anonymous()
        .get(&format!("/embed/{fr}?parameters={encoded}"))
        .await
        .invalid("parameters");
    let again = ready(&h, &format!("/embed/{fr}")).await;
    assert_eq!(embedded_rows(&again), fr_rows);

    // Without attributes, the owner's access needs one: nothing shows.
    let mut bare = claims(&e.dashboard, "FR");
    bare.as_object_mut().unwrap().remove("attributes");
    let page = h
        .anonymous()
        .get(&format!("/embed/{}", sign(&e.admin_secret, &bare)))
        .await
        .expect(200);
    assert_eq!(page.body["widgets"][1]["result"]["state"], "unavailable");
    assert_eq!(page.body["widgets"][1]["result"]["rows"], json!([]));

    // Params the dashboard does not have are the token's mistake.
    let mut unknown = claims(&e.dashboard, "FR");
    unknown["params"] = json!({ "country": "US" });
    h.anonymous()
        .get(&format!("/embed/{}", sign(&e.admin_secret, &unknown)))
        .await
        .problem(401, "embed.invalid");
}

#[tokio::test]
async fn embedding_tokens_that_do_not_hold_are_refused_with_their_reason() {
    let h = Harness::new().await;
    let e = embedded(&h).await;
    let secret = &e.admin_secret;
    let good = claims(&e.dashboard, "FR");
    let page = |token: String| {
        let h = &h;
        async move { h.anonymous().get(&format!("/embed/{token}")).await }
    };
    page(sign(secret, &good)).await.expect(200);
    // Secrets are the admins'.
    let (_, editor) = h.user("erin@acme.test", Role::Editor).await;
    h.bearer(&editor)
        .post_empty("/embedding/secrets")
        .await
        .problem(403, "access.role");

    // Tampered: other claims under the original signature.
    let signed = sign(secret, &good);
    let signature = signed.rsplit('.').next().unwrap();
    let mut changed = good.clone();
    changed["attributes"]["region"] = json!("DE");
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": secret.id });
    page(assemble(&header, &changed, signature))
        .await
        .problem(401, "embed.invalid");
    page("not-a-token".to_owned())
        .await
        .problem(401, "embed.invalid");
    // `alg: none`, and another algorithm with the same key.
    let none = json!({ "alg": "none", "typ": "JWT", "kid": secret.id });
    page(assemble(&none, &good, ""))
        .await
        .problem(401, "embed.invalid");
    let hs512 = Header {
        kid: Some(secret.id.clone()),
        ..Header::new(Algorithm::HS512)
    };
    let strong = jsonwebtoken::encode(
        &hs512,
        &good,
        &EncodingKey::from_secret(secret.value.as_bytes()),
    )
    .unwrap();
    page(strong).await.problem(401, "embed.invalid");
    // Unknown `kid`; no `kid`; a claim missing.
    let stranger = Secret {
        id: "no-such-secret".to_owned(),
        value: secret.value.clone(),
    };
    page(sign(&stranger, &good))
        .await
        .problem(401, "embed.invalid");
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(secret.value.as_bytes()),
    )
    .unwrap();
    page(no_kid).await.problem(401, "embed.invalid");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    page(sign(secret, &no_exp))
        .await
        .problem(401, "embed.invalid");

    // Expired, and signed to live longer than allowed (10 minutes).
    let mut old = good.clone();
    old["iat"] = json!(now() - 400);
    old["exp"] = json!(now() - 100);
    let expired = page(sign(secret, &old)).await.problem(401, "embed.expired");
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"));
    let mut long = good.clone();
    long["exp"] = json!(now() + 3600);
    page(sign(secret, &long))
        .await
        .problem(401, "embed.expired");

    // Another organization's secret does not reach this one's objects,
    // and gives no hint that they exist.
    let other = h.other_org_admin().await;
    let (theirs, _) = new_secret(&h, &other).await;
    let cross = page(sign(&theirs, &good)).await.problem(404, "not_found");
    let mut missing = good.clone();
    missing["resource"] = json!({ "dashboard": "no-such-dashboard" });
    let nothing = page(sign(&theirs, &missing))
        .await
        .problem(404, "not_found");
    assert_eq!(cross.body["title"], nothing.body["title"]);

    // Rotation: a third secret retires the oldest, whose tokens (even
    // ones signed before) are refused from then; the others still work.
    let before_rotation = sign(secret, &good);
    let (second, _) = new_secret(&h, &h.admin).await;
    let (third, made) = new_secret(&h, &h.admin).await;
    assert_eq!(made.body["retired"], json!([secret.id]));
    page(before_rotation)
        .await
        .problem(401, "embed.retired_secret");
    page(sign(&second, &good)).await.expect(200);
    page(sign(&third, &good)).await.expect(200);
    let listed = h.admin().get("/embedding/secrets").await.expect(200);
    let active: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(active, [third.id.as_str(), second.id.as_str()]);
    assert!(!listed.text().contains(&third.value));
    // Retired by hand.
    h.admin()
        .delete(&format!("/embedding/secrets/{}", second.id))
        .await
        .expect(204);
    page(sign(&second, &good))
        .await
        .problem(401, "embed.retired_secret");
}

/// The first fenced block of `language` in docs/sharing.md.
fn documented(language: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sharing.md");
    let text = std::fs::read_to_string(path).expect("docs/sharing.md");
    let start = format!("```{language}\n");
    let from = text.find(&start).expect("the example") + start.len();
    let to = from + text[from..].find("```").expect("the example's end");
    text[from..to].to_owned()
}

/// The first of `candidates` that runs `probe` successfully. Without one
/// the test is skipped, except under `CI=true`, where it fails.
fn interpreter(candidates: &[&str], probe: &[&str], what: &str) -> Option<String> {
    for candidate in candidates {
        let ok = std::process::Command::new(candidate)
            .args(probe)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some((*candidate).to_owned());
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing: CI installs it (see .github/workflows/ci.yml)");
    }
    eprintln!("skipped: {what} is missing");
    None
}

/// Runs a documented example with the secret and dashboard in its
/// environment; returns the token of the URL it prints.
fn run_example(program: &str, args: &[&str], secret: &Secret, dashboard: &str) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env("LOUPE_EMBED_SECRET_ID", &secret.id)
        .env("LOUPE_EMBED_SECRET", &secret.value)
        .env("LOUPE_DASHBOARD_ID", dashboard)
        .output()
        .expect("the example runs");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program}: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
        .trim()
        .rsplit("/embed/")
        .next()
        .expect("a URL that ends with the token")
        .to_owned()
}

#[tokio::test]
async fn tokens_signed_by_the_documented_python_and_node_examples_open_the_page() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let e = embedded(&h).await;
    let mut ran = 0;
    if let Some(python) = interpreter(
        &["python3", "/usr/bin/python3"],
        &["-c", "import jwt"],
        "python3 with PyJWT (Debian: python3-jwt)",
    ) {
        let script = documented("python");
        let token = run_example(&python, &["-c", &script], &e.admin_secret, &e.dashboard);
        let page = ready(&h, &format!("/embed/{token}")).await;
        let rows = embedded_rows(&page);
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|(country, _)| country == "FR"), "{rows:?}");
        ran += 1;
    }
    if let Some(node) = interpreter(&["node", "nodejs"], &["--version"], "Node.js") {
        let script = documented("js");
        let token = run_example(&node, &["-e", &script], &e.admin_secret, &e.dashboard);
        let page = ready(&h, &format!("/embed/{token}")).await;
        assert!(
            embedded_rows(&page)
                .iter()
                .all(|(country, _)| country == "FR")
        );
        ran += 1;
    }
    eprintln!("{ran} documented examples signed tokens Loupe accepted");
}

/// Bounded load on a public dashboard of two widgets over a PostgreSQL
/// table, through the real HTTP server on loopback: PostgreSQL's own
/// statement counts (`pg_stat_statements`) must equal the runs Loupe
/// made, one per widget plus at most one refresh per widget and interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_public_dashboard_under_load_sends_no_sql_beyond_its_refreshes() {
    let Some(pg) = postgres_url() else { return };
    let Some(superuser) = test_server("LOUPE_TEST_POSTGRES_SUPERUSER_URL", "PostgreSQL") else {
        return;
    };
    let requests: usize = env_number("LOUPE_LOAD_REQUESTS", 2_000);
    let concurrency: usize = env_number("LOUPE_LOAD_CONCURRENCY", 32);
    let stats = sqlx::PgPool::connect(&superuser).await.expect("superuser");
    // The extension can be made without the library loaded; reading its
    // view cannot.
    let loaded = match sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&stats)
        .await
    {
        Ok(_) => {
            sqlx::query("SELECT count(*) FROM pg_stat_statements")
                .execute(&stats)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = loaded {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "pg_stat_statements is not loaded ({e}): start PostgreSQL with scripts/databases.sh, which preloads it"
            );
        }
        eprintln!(
            "skipped: pg_stat_statements is not loaded ({e}); scripts/databases.sh preloads it"
        );
        return;
    }

    let table = format!("share_load_{}", uuid::Uuid::now_v7().simple());
    let db = sqlx::PgPool::connect(&pg).await.expect("postgres");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, region text NOT NULL, amount numeric(10,2) NOT NULL);
         INSERT INTO {table} SELECT g, (ARRAY['EU','US','APAC'])[1 + g % 3], g * 0.5 FROM generate_series(1, 3000) g;"
    )))
    .execute(&db)
    .await
    .expect("test table");

    let every = Duration::from_secs(2);
    let h = Harness::with(|c| c.deployment.sharing.refresh_every = every).await;
    let _runner = h.runner();
    let ds = h
        .admin()
        .post(
            "/datasources",
            json!({ "name": "warehouse", "kind": "postgres", "options": pg_options(&pg) }),
        )
        .await
        .expect(201)
        .id();
    let sqls = [
        format!("select region, sum(amount) as total from {table} group by region order by region"),
        format!("select count(*) as n from {table}"),
    ];
    let mut queries = Vec::new();
    let mut widgets = Vec::new();
    for (i, sql) in sqls.iter().enumerate() {
        let query = h
            .admin()
            .post(
                "/queries",
                json!({ "name": format!("load {i}"), "datasource_id": ds, "sql": sql }),
            )
            .await
            .expect(201)
            .id();
        let chart = h
            .admin()
            .post(
                "/visualizations",
                json!({ "query_id": query, "type": "table", "name": format!("load {i}") }),
            )
            .await
            .expect(201)
            .id();
        widgets.push(json!({
            "kind": "visualization", "visualization_id": chart,
            "x": 12 * i, "y": 0, "w": 12, "h": 6,
        }));
        queries.push(query);
    }
    let dashboard = h
        .admin()
        .post("/dashboards", json!({ "name": "Load", "widgets": widgets }))
        .await
        .expect(201)
        .id();
    let made = h
        .admin()
        .post(
            &format!("/dashboards/{dashboard}/share"),
            json!({ "max_age_seconds": 1 }),
        )
        .await
        .expect(201);
    let token = made.body["token"].as_str().unwrap().to_owned();

    // The real server on loopback.
    let port = crate::process::free_port();
    let app = loupe_server::app(h.state.clone());
    let server = tokio::spawn(
        poem::Server::new(poem::listener::TcpListener::bind(format!(
            "127.0.0.1:{port}"
        )))
        .run(app),
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/public/{token}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    for _ in 0..200 {
        if http.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            // `requests` in all, spread over the tasks.
            let per_task = requests / concurrency + usize::from(i < requests % concurrency);
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let sent = Instant::now();
                    let reply = http.get(&url).send().await.expect("request");
                    let status = reply.status().as_u16();
                    let body = reply.bytes().await.expect("body");
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];

    let mut made_runs = Vec::new();
    for (query, sql) in queries.iter().zip(&sqls) {
        let runs = settled(&h, query).await;
        assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
        let marker = if sql.contains("sum(") {
            "sum(amount)"
        } else {
            "count(*)"
        };
        let (calls,): (i64,) = sqlx::query_as(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE query LIKE '%' || $1 || '%' AND query LIKE '%' || $2 || '%'",
        )
        .bind(&table)
        .bind(marker)
        .fetch_one(&stats)
        .await
        .expect("statement counts");
        // One first fill, then at most one refresh per interval.
        let allowed = 1 + (elapsed.as_secs_f64() / every.as_secs_f64()).ceil() as usize;
        assert!(
            (1..=allowed).contains(&runs.len()),
            "{} runs of {query} in {elapsed:?} (at most {allowed})",
            runs.len()
        );
        assert_eq!(
            calls,
            runs.len() as i64,
            "statements PostgreSQL ran for {marker} against the runs Loupe made"
        );
        made_runs.push(runs.len());
    }
    let page = ready(&h, &format!("/public/{token}")).await;
    assert_eq!(page.body["widgets"].as_array().unwrap().len(), 2);
    eprintln!(
        "public dashboard load: {requests} GETs at {concurrency} concurrency in {:.2} s: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms; runs per widget {made_runs:?} (refresh every {every:?})",
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        quantile(0.5).as_secs_f64() * 1000.0,
        quantile(0.99).as_secs_f64() * 1000.0,
    );
    server.abort();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&db)
        .await
        .expect("drop");
}

fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
