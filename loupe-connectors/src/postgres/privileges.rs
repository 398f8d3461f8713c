//! What the datasource's role may do beyond reading, asked once per new
//! connection (the pool's `post_create` hook), so that creating, testing
//! and running on a datasource whose role is too powerful all fail the
//! same way.
//!
//! A READ ONLY transaction does not stop a superuser (`COPY … TO PROGRAM`,
//! `pg_read_file`), a member of `pg_execute_server_program`,
//! `pg_read_server_files` or `pg_write_server_files` (files and programs
//! on the server), of `pg_signal_backend` (`pg_terminate_backend`), nor
//! `REPLICATION` or `BYPASSRLS`. Membership counts directly or through
//! other roles, inherited or not: `SET ROLE` works in a read-only
//! transaction. The refusal itself is `server_errors::privileged_role`.

use tokio_postgres::Client;

/// The powers that make a role unfit for a datasource, one row per role
/// the login role is or belongs to (`UNION` ends at cycles).
const FIND: &str = "
WITH RECURSIVE held(oid) AS (
    SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user
    UNION
    SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN held ON m.member = held.oid
)
SELECT r.rolname::text, r.rolname = session_user, r.rolsuper, r.rolreplication, r.rolbypassrls
FROM pg_catalog.pg_roles r JOIN held USING (oid)
WHERE r.rolsuper OR r.rolreplication OR r.rolbypassrls
   OR r.rolname IN ('pg_execute_server_program', 'pg_read_server_files',
                    'pg_write_server_files', 'pg_signal_backend')
ORDER BY r.rolname = session_user DESC, r.rolname";

/// One role of the login role's closure, as [`FIND`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeldRole {
    pub(super) name: String,
    /// The login role itself, not one it belongs to.
    pub(super) own: bool,
    pub(super) superuser: bool,
    pub(super) replication: bool,
    pub(super) bypass_rls: bool,
}

/// Each power the connected role has beyond reading, in words; empty for
/// a role fit for a datasource.
pub(super) async fn found(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client.query(FIND, &[]).await?;
    let held = rows
        .iter()
        .map(|row| {
            Ok(HeldRole {
                name: row.try_get(0)?,
                own: row.try_get(1)?,
                superuser: row.try_get(2)?,
                replication: row.try_get(3)?,
                bypass_rls: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(describe(&held))
}

/// `superuser`, `REPLICATION`, `BYPASSRLS` for the login role itself;
/// `member of pg_signal_backend`, `member of admin (superuser)` for the
/// roles it belongs to.
pub(super) fn describe(held: &[HeldRole]) -> Vec<String> {
    let mut found = Vec::new();
    for role in held {
        let attributes: Vec<&str> = [
            (role.superuser, "superuser"),
            (role.replication, "REPLICATION"),
            (role.bypass_rls, "BYPASSRLS"),
        ]
        .into_iter()
        .filter_map(|(has, name)| has.then_some(name))
        .collect();
        if role.own {
            found.extend(attributes.into_iter().map(str::to_owned));
        } else if attributes.is_empty() {
            found.push(format!("member of {}", role.name));
        } else {
            found.push(format!(
                "member of {} ({})",
                role.name,
                attributes.join(", ")
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, own: bool, attributes: [bool; 3]) -> HeldRole {
        HeldRole {
            name: name.into(),
            own,
            superuser: attributes[0],
            replication: attributes[1],
            bypass_rls: attributes[2],
        }
    }

    #[test]
    fn each_power_is_named() {
        assert_eq!(
            describe(&[role("postgres", true, [true, true, true])]),
            ["superuser", "REPLICATION", "BYPASSRLS"]
        );
        assert_eq!(
            describe(&[
                role("ana", true, [false, false, true]),
                role("admin", false, [true, false, false]),
                role("pg_signal_backend", false, [false, false, false]),
            ]),
            [
                "BYPASSRLS",
                "member of admin (superuser)",
                "member of pg_signal_backend"
            ]
        );
        assert!(describe(&[]).is_empty());
    }
}
