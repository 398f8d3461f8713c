//! A stored password never follows a changed connection target (issue 12,
//! finding 2): an admin, or whoever holds an admin's token, who points a
//! datasource at a server of their own and keeps the masked password must
//! not have `POST /datasources/{id}/test` deliver the stored password there.
//!
//! The server of their own is a trap on loopback that speaks enough of the
//! PostgreSQL protocol to ask for the password in clear text and records
//! what it is sent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{Harness, Reply};

const SECRET: &str = "the-stored-s3cret";

/// A PostgreSQL server on loopback that asks every client for its password
/// in clear text (AuthenticationCleartextPassword), records the password
/// messages it is sent, and refuses the login.
struct PasswordTrap {
    port: u16,
    heard: Arc<Mutex<Vec<String>>>,
}

impl PasswordTrap {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        // A thread of its own, blocking: the trap lives as long as the
        // test binary, and a client that gives up just ends its session.
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = Self::session(socket, &log);
                });
            }
        });
        Self { port, heard }
    }

    /// One client: startup (refusing TLS), the password request, the
    /// password, then an authentication failure.
    fn session(mut socket: TcpStream, heard: &Mutex<Vec<String>>) -> std::io::Result<()> {
        const SSL_REQUEST: u32 = 80_877_103;
        const GSSENC_REQUEST: u32 = 80_877_104;
        loop {
            let length = read_u32(&mut socket)?;
            let code = read_u32(&mut socket)?;
            let mut rest = vec![0; (length as usize).saturating_sub(8)];
            socket.read_exact(&mut rest)?;
            if code == SSL_REQUEST || code == GSSENC_REQUEST {
                socket.write_all(b"N")?;
                continue;
            }
            break;
        }
        // AuthenticationCleartextPassword: 'R', length 8, code 3.
        socket.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
        let mut tag = [0; 1];
        socket.read_exact(&mut tag)?;
        let length = read_u32(&mut socket)?;
        let mut body = vec![0; (length as usize).saturating_sub(4)];
        socket.read_exact(&mut body)?;
        if tag[0] == b'p' {
            let password = String::from_utf8_lossy(&body);
            heard
                .lock()
                .unwrap()
                .push(password.trim_end_matches('\0').to_owned());
        }
        let fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0";
        let mut error = vec![b'E'];
        error.extend_from_slice(&u32::try_from(4 + fields.len()).unwrap().to_be_bytes());
        error.extend_from_slice(fields);
        socket.write_all(&error)
    }

    /// The passwords sent so far.
    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }
}

fn read_u32(socket: &mut TcpStream) -> std::io::Result<u32> {
    let mut bytes = [0; 4];
    socket.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

/// Options of a PostgreSQL datasource at `port` on loopback (nothing
/// listens on port 1), with `password` unless it is `None`.
fn options(port: u16, password: Option<&str>) -> Value {
    let mut options = json!({
        "host": "127.0.0.1", "port": port, "user": "loupe",
        "database": "warehouse", "sslmode": "disable",
    });
    if let Some(password) = password {
        options["password"] = password.into();
    }
    options
}

/// Changes the datasource at `path` to `options` as the admin; returns the
/// changed datasource.
async fn change(h: &Harness, path: &str, options: Value) -> Reply {
    let read = h.admin().get(path).await.expect(200);
    let etag = read.header("etag").unwrap().to_owned();
    let body = json!({ "options": options });
    h.admin()
        .if_match(&etag)
        .patch(path, body)
        .await
        .expect(200)
}

/// A PostgreSQL datasource whose stored password is [`SECRET`], on a
/// server that does not listen; returns its path.
async fn warehouse(h: &Harness) -> String {
    let body = json!({
        "name": "warehouse", "kind": "postgres",
        "options": options(1, Some(SECRET)),
    });
    let created = h.admin().post("/datasources", body).await.expect(201);
    assert_eq!(created.body["secret_options"], json!(["password"]));
    format!("/datasources/{}", created.id())
}

#[tokio::test]
async fn a_changed_host_and_port_do_not_get_the_stored_password() {
    let h = Harness::new().await;
    let trap = PasswordTrap::start();
    let path = warehouse(&h).await;

    // The attack: the host and port move to the trap, the password stays
    // masked as it was read.
    let moved = change(&h, &path, options(trap.port, Some("********"))).await;
    let tested = h.admin().post_empty(&format!("{path}/test")).await;
    assert!(
        !trap.heard().iter().any(|p| p == SECRET),
        "the stored password reached the new target: {:?}",
        trap.heard()
    );
    assert!(tested.status >= 400, "{}", tested.text());
    assert!(
        tested.text().to_lowercase().contains("password"),
        "the test fails for want of a password: {}",
        tested.text()
    );
    assert_eq!(
        moved.body["secret_options"],
        json!([]),
        "the stored password is dropped with the old target: {}",
        moved.text()
    );

    // Moving back does not bring it back either: it is gone.
    let back = change(&h, &path, options(1, Some("********"))).await;
    assert_eq!(back.body["secret_options"], json!([]));
}

#[tokio::test]
async fn a_password_given_with_the_new_target_is_used_there() {
    let h = Harness::new().await;
    let trap = PasswordTrap::start();
    let path = warehouse(&h).await;

    let moved = change(&h, &path, options(trap.port, Some("the-new-one"))).await;
    assert_eq!(moved.body["secret_options"], json!(["password"]));
    let tested = h.admin().post_empty(&format!("{path}/test")).await;
    assert!(
        tested.status >= 400,
        "the trap refuses it: {}",
        tested.text()
    );
    let heard = trap.heard();
    assert!(
        !heard.is_empty() && heard.iter().all(|p| p == "the-new-one"),
        "{heard:?}"
    );
}

#[tokio::test]
async fn options_that_are_not_targets_keep_the_stored_password() {
    let h = Harness::new().await;
    let trap = PasswordTrap::start();
    // Made at the trap, so that the test shows which password it keeps.
    let body = json!({
        "name": "warehouse", "kind": "postgres",
        "options": options(trap.port, Some(SECRET)),
    });
    let created = h.admin().post("/datasources", body).await.expect(201);
    let path = format!("/datasources/{}", created.id());

    // The pool size, timeouts and how statements run are not where the
    // datasource connects.
    let mut tuned = options(trap.port, Some("********"));
    tuned["pool_size"] = 2.into();
    tuned["connect_timeout"] = "5s".into();
    tuned["read_only"] = true.into();
    let kept = change(&h, &path, tuned).await;
    assert_eq!(kept.body["secret_options"], json!(["password"]));
    // Leaving the password out keeps it as well.
    let mut without = options(trap.port, None);
    without["pool_size"] = 3.into();
    change(&h, &path, without).await;

    h.admin().post_empty(&format!("{path}/test")).await;
    let heard = trap.heard();
    assert!(
        !heard.is_empty() && heard.iter().all(|p| p == SECRET),
        "{heard:?}"
    );

    // Each target option on its own drops it: the user, the database, TLS.
    for (name, value) in [
        ("user", json!("postgres")),
        ("database", json!("postgres")),
        ("sslmode", json!("prefer")),
    ] {
        let stored = change(&h, &path, options(trap.port, Some(SECRET))).await;
        assert_eq!(stored.body["secret_options"], json!(["password"]));
        let mut moved = options(trap.port, Some("********"));
        moved[name] = value;
        let moved = change(&h, &path, moved).await;
        assert_eq!(moved.body["secret_options"], json!([]), "{name}");
    }
}
