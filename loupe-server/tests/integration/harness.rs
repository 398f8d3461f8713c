//! A server over a temporary data directory with an admin, and helpers to
//! call it as different users.

#![allow(dead_code)]

use std::sync::Arc;

use loupe_server::config::{Config, Secret};
use loupe_server::{AppState, Server, app};
use loupe_services::runner::{Runner, RunnerConfig, RunnerHandle};
use loupe_services::{DeploymentConfig, NewUser, Role, Services};
use poem::EndpointExt;
use poem::http::{HeaderMap, Method};
use poem::test::TestClient;
use secrecy::SecretString;
use serde_json::Value;

pub const ADMIN_EMAIL: &str = "admin@acme.test";
pub const PASSWORD: &str = "correct horse battery staple";

/// A reply: status, headers, and the body as JSON (`Null` when empty or
/// not JSON; `text` keeps it as text).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The body's `code` (problem+json).
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts the status, showing the body when it differs; returns the
    /// reply, so a call, its check and its use read as one line.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }

    /// Asserts a problem+json reply with `status` and `code` (see
    /// [`assert_problem`]); returns the reply for further checks.
    #[track_caller]
    pub fn problem(self, status: u16, code: &str) -> Self {
        assert_problem(&self, status, code);
        self
    }

    /// Asserts a problem+json reply with `status`, whatever its code
    /// (or none); returns the reply for further checks.
    #[track_caller]
    pub fn problem_json(self, status: u16) -> Self {
        assert_problem_json(&self, status);
        self
    }

    /// Asserts a 422 `validation.failed` problem whose first error names
    /// `field`; returns the reply for further checks.
    #[track_caller]
    pub fn invalid(self, field: &str) -> Self {
        let reply = self.problem(422, "validation.failed");
        assert_eq!(
            reply.body["errors"][0]["field"],
            field,
            "body: {}",
            reply.text()
        );
        reply
    }

    /// The body's `id`.
    #[track_caller]
    pub fn id(&self) -> String {
        id_of(&self.body)
    }

    /// The `id` of the first item of a list.
    #[track_caller]
    pub fn first_id(&self) -> String {
        id_of(&self.body["items"][0])
    }
}

/// Where the API is mounted; [`Caller`] paths are relative to it.
pub const API: &str = "/api/v1";

/// The test language's verbs: one caller (admin, a token, a key, nobody)
/// sending requests under [`API`], with optional headers.
///
/// `h.admin().post("/queries", body).await.expect(201)`
#[derive(Clone)]
pub struct Caller<'a> {
    h: &'a Harness,
    who: As<'a>,
    prefix: &'static str,
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Caller<'a> {
    /// The same caller, sending a header as well.
    pub fn header(&self, name: &'a str, value: &'a str) -> Self {
        let mut with = self.clone();
        with.headers.push((name, value));
        with
    }

    /// The same caller, sending `If-Match: etag`, as updates need.
    pub fn if_match(&self, etag: &'a str) -> Self {
        self.header("If-Match", etag)
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let path = format!("{}{path}", self.prefix);
        self.h
            .call_with(method, &path, self.who, body, &self.headers)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    /// A POST without a body (actions such as `/test` or `/cancel`).
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// A PUT without a body (memberships).
    pub async fn put_empty(&self, path: &str) -> Reply {
        self.send(Method::PUT, path, None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// The optimistic-locking contract of an object at revision 1:
    /// `change` sent without `If-Match` is refused (428) and with `"1"`
    /// applied; `stale`, sent with `"1"` after that, is refused (412).
    /// Returns the reply that applied `change`.
    pub async fn update_guarded_by_etag(
        &self,
        method: Method,
        path: &str,
        change: Value,
        stale: Value,
    ) -> Reply {
        self.send(method.clone(), path, Some(change.clone()))
            .await
            .problem(428, "precondition.required");
        let applied = self
            .if_match("\"1\"")
            .send(method.clone(), path, Some(change))
            .await
            .expect(200);
        self.if_match("\"1\"")
            .send(method, path, Some(stale))
            .await
            .problem(412, "conflict.revision");
        applied
    }
}

pub struct Harness {
    pub state: Arc<AppState>,
    pub client: TestClient<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
    pub dir: tempfile::TempDir,
    /// The admin's access token.
    pub admin: String,
}

/// Who calls: nobody, a bearer token, or an API key.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Anonymous,
    Bearer(&'a str),
    Key(&'a str),
}

impl Harness {
    /// Calls the API as the admin.
    pub fn admin(&self) -> Caller<'_> {
        self.caller(As::Bearer(&self.admin), API)
    }

    /// Calls the API with a bearer `token`.
    pub fn bearer<'a>(&'a self, token: &'a str) -> Caller<'a> {
        self.caller(As::Bearer(token), API)
    }

    /// Calls the API with an API key.
    pub fn key<'a>(&'a self, secret: &'a str) -> Caller<'a> {
        self.caller(As::Key(secret), API)
    }

    /// Calls the API signed in as nobody.
    pub fn anonymous(&self) -> Caller<'_> {
        self.caller(As::Anonymous, API)
    }

    /// Asserts that `GET path` needs a signed-in caller.
    pub async fn assert_sign_in_required(&self, path: &str) {
        self.anonymous()
            .get(path)
            .await
            .problem(401, "auth.missing");
    }

    /// The services behind the API, for setup and checks it does not offer.
    pub fn services(&self) -> &Services {
        &self.state.deployment.services
    }

    /// Calls outside the API (health, metrics, docs), signed in as nobody.
    pub fn site(&self) -> Caller<'_> {
        self.caller(As::Anonymous, "")
    }

    fn caller<'a>(&'a self, who: As<'a>, prefix: &'static str) -> Caller<'a> {
        Caller {
            h: self,
            who,
            prefix,
            headers: Vec::new(),
        }
    }

    /// A server with an admin and the sample datasource.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A server with a changed configuration, its admin signed in.
    pub async fn with(change: impl FnOnce(&mut Config)) -> Self {
        let mut h = Self::bare(change).await;
        h.admin = h.login(ADMIN_EMAIL, PASSWORD).await;
        h
    }

    /// A server with a changed configuration; nobody signed in.
    pub async fn bare(change: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            deployment: DeploymentConfig {
                data_dir: dir.path().join("data"),
                admin_email: Some(ADMIN_EMAIL.to_owned()),
                admin_password: Some(Secret(SecretString::from(PASSWORD.to_owned()))),
                org_name: "Acme".to_owned(),
                sample_data_dir: Some(
                    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-data"),
                ),
                ..DeploymentConfig::default()
            },
            ..Config::default()
        };
        config.server.rate_limit.auth_per_minute = 1000;
        config.server.rate_limit.api_per_second = 1000;
        config.server.rate_limit.api_burst = 1000;
        change(&mut config);
        let server = Server::prepare(config).await.expect("server prepares");
        let state = server.state().clone();
        let client = TestClient::new(app(state.clone()).boxed());
        Self {
            state,
            client,
            dir,
            admin: String::new(),
        }
    }

    /// Signs in (through core; `auth.rs` tests the HTTP sign-in) and
    /// returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        self.login_in(None, email, password).await
    }

    /// Signs in to the organization with `slug`.
    pub async fn login_in(&self, slug: Option<&str>, email: &str, password: &str) -> String {
        self.services()
            .sessions
            .login(slug, email, &SecretString::from(password.to_owned()), None)
            .await
            .expect("login")
            .access_token
    }

    /// The access token of the admin of a second organization.
    pub async fn other_org_admin(&self) -> String {
        let (org, admin) = self
            .services()
            .organizations
            .create_with_admin(loupe_services::Setup {
                org_name: "Other".to_owned(),
                admin_email: "boss@other.test".to_owned(),
                admin_name: "Boss".to_owned(),
                admin_password: SecretString::from(PASSWORD.to_owned()),
            })
            .await
            .expect("second organization");
        self.login_in(Some(&org.slug), &admin.email, PASSWORD).await
    }

    /// Creates a user with `role` (through core, as the admin) and signs
    /// them in; returns (user id, access token).
    pub async fn user(&self, email: &str, role: Role) -> (String, String) {
        let admin = self.admin_actor().await;
        let (user, _) = self
            .services()
            .users
            .create(
                &admin,
                NewUser {
                    email: email.to_owned(),
                    name: email.split('@').next().unwrap_or("user").to_owned(),
                    role,
                    password: Some(SecretString::from(PASSWORD.to_owned())),
                },
            )
            .await
            .expect("user created");
        let token = self.login(email, PASSWORD).await;
        (user.id, token)
    }

    /// The admin as a core actor.
    pub async fn admin_actor(&self) -> loupe_services::Actor {
        let (actor, _) = self
            .services()
            .sessions
            .authenticate(&self.admin, None)
            .await
            .expect("admin token valid");
        actor
    }

    /// The sample datasource's id.
    pub async fn sample_datasource(&self) -> String {
        let reply = self.admin().get("/datasources").await.expect(200);
        reply.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|d| d["name"] == "Sample data"))
            .and_then(|d| d["id"].as_str())
            .expect("sample datasource listed")
            .to_owned()
    }

    /// The id of the built-in `everyone` group, as `token` lists it.
    pub async fn everyone_group(&self, token: &str) -> String {
        let groups = self.bearer(token).get("/groups?q=everyone").await;
        groups.body["items"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Starts a runner over this server's state.
    pub fn runner(&self) -> RunnerHandle {
        self.runner_with(|_| {})
    }

    /// Starts a runner over this server's state with a changed
    /// configuration.
    pub fn runner_with(&self, change: impl FnOnce(&mut RunnerConfig)) -> RunnerHandle {
        let mut config = RunnerConfig {
            poll: std::time::Duration::from_millis(50),
            ..RunnerConfig::default()
        };
        change(&mut config);
        Runner::new(
            self.services(),
            self.state.deployment.results.clone(),
            config,
        )
        .start()
    }

    /// Calls the server as `who`, with extra headers ([`Caller`] is the
    /// short way).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, path);
        match who {
            As::Anonymous => {}
            As::Bearer(token) => {
                request = request.header("Authorization", format!("Bearer {token}"))
            }
            As::Key(key) => request = request.header("Authorization", format!("Key {key}")),
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        let response = request.send().await.0;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().into_vec().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            bytes,
        }
    }

    /// Polls a run until it finishes; returns its JSON.
    pub async fn wait_run(&self, token: &str, run_id: &str) -> Value {
        for _ in 0..400 {
            let reply = self
                .bearer(token)
                .get(&format!("/runs/{run_id}"))
                .await
                .expect(200);
            let status = reply.body["status"].as_str().unwrap_or("");
            if matches!(status, "succeeded" | "failed" | "cancelled") {
                return reply.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("run {run_id} did not finish");
    }
}

/// The `id` of an object's JSON.
#[track_caller]
pub fn id_of(object: &Value) -> String {
    match object["id"].as_str() {
        Some(id) => id.to_owned(),
        None => panic!("no id in {object}"),
    }
}

/// Asserts a problem+json body: the fields, the status and the code.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_problem_json(reply, status);
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(
            !reply.body[field].is_null(),
            "{field} missing: {}",
            reply.text()
        );
    }
    assert_eq!(reply.body["status"], status);
    assert_eq!(reply.code(), code, "body: {}", reply.text());
    assert!(
        reply.body["request_id"].is_string(),
        "request id missing: {}",
        reply.text()
    );
}

/// Asserts the status and that the body is problem+json.
#[track_caller]
fn assert_problem_json(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "body: {}",
        reply.text()
    );
}
