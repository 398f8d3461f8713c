//! What the datasource's user may do beyond reading, read from
//! `SHOW GRANTS` once per new connection, so that creating, testing and
//! running on a datasource whose user is too powerful all fail the same
//! way.
//!
//! Administrative privileges (`SUPER`, `FILE`, `PROCESS`, `SHUTDOWN`,
//! `RELOAD`, `CONNECTION ADMIN`, `BINLOG ADMIN`, MySQL's `*_ADMIN`, grant
//! options, anything on `*.*` beyond reading, and any privilege this
//! module does not know) are refused always; write grants (`INSERT`,
//! `CREATE`, `ALL` on a database…) are refused when the datasource is
//! read-only, since MySQL's READ ONLY transaction is a weaker wall than
//! PostgreSQL's (DDL commits implicitly, routines run as their definer),
//! and a datasource that is meant to write says `read_only=false`.
//!
//! Roles count, enabled or not: a statement can `SET ROLE` to any role
//! granted. MariaDB shows a role's grants only while it is enabled, so
//! each granted role is enabled in turn and the current one restored;
//! MySQL expands them with `SHOW GRANTS … USING`. A user without roles
//! costs one query per connection. Grants to MariaDB's `PUBLIC` come with
//! `SHOW GRANTS`.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::execute::Flavor;

/// Privileges that only read, wherever they are granted.
const READ: &[&str] = &[
    "USAGE",
    "SELECT",
    "SHOW VIEW",
    "SHOW DATABASES",
    "EXECUTE",
    "REFERENCES",
    "CREATE TEMPORARY TABLES",
];

/// Privileges that change data or schema: refused on a read-only
/// datasource; administrative on `*.*` or a system schema.
const WRITE: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "CREATE VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "TRIGGER",
    "EVENT",
    "DELETE HISTORY",
    "LOCK TABLES",
    "ALL",
    "ALL PRIVILEGES",
];

/// Schemas whose tables are the server's own settings and accounts:
/// writing there is administering the server.
const SYSTEM_SCHEMAS: &[&str] = &["mysql", "performance_schema"];

/// Each power the connected user has beyond reading (and, when
/// `read_only`, beyond what a read-only datasource needs), in words;
/// empty for a user fit for a datasource.
pub(super) async fn found(
    conn: &mut Conn,
    flavor: Flavor,
    read_only: bool,
) -> Result<Vec<String>, mysql_async::Error> {
    let mut lines = show(conn, "SHOW GRANTS").await?;
    let roles: Vec<String> = lines
        .iter()
        .filter_map(|line| match parse(line) {
            Some(Grant::Roles { roles, grantee, .. }) if is_user(&grantee) => Some(roles),
            _ => None,
        })
        .flatten()
        .collect();
    if !roles.is_empty() {
        match flavor {
            Flavor::MariaDb => {
                let current = conn
                    .query_first::<Row, _>("SELECT CURRENT_ROLE()")
                    .await?
                    .and_then(|row| text(&row));
                for role in &roles {
                    // The role as the server printed it, quotes and all.
                    conn.query_drop(format!("SET ROLE {role}")).await?;
                    lines.extend(show(conn, "SHOW GRANTS").await?);
                }
                conn.query_drop(match current {
                    Some(role) => format!("SET ROLE `{}`", role.replace('`', "``")),
                    None => "SET ROLE NONE".to_owned(),
                })
                .await?;
            }
            Flavor::MySql => {
                let using = format!("SHOW GRANTS FOR CURRENT_USER() USING {}", roles.join(", "));
                lines.extend(show(conn, &using).await?);
            }
        }
    }
    Ok(describe(&lines, read_only))
}

/// The first column of each row of `sql`, as text.
async fn show(conn: &mut Conn, sql: &str) -> Result<Vec<String>, mysql_async::Error> {
    let rows: Vec<Row> = conn.query(sql).await?;
    Ok(rows.iter().filter_map(text).collect())
}

/// The first value of `row` as text; `None` for NULL.
fn text(row: &Row) -> Option<String> {
    match row.as_ref(0)? {
        Value::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::NULL => None,
        other => Some(other.as_sql(true)),
    }
}

/// One line of `SHOW GRANTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// `GRANT <privileges> ON <object> TO <grantee> [WITH GRANT OPTION]`.
    Privileges {
        /// Upper case, without column lists: `SELECT`, `ALL PRIVILEGES`.
        privileges: Vec<String>,
        /// As printed: `*.*`, `` `db`.* ``, `` PROCEDURE `db`.`p` ``.
        object: String,
        grantee: String,
        grant_option: bool,
    },
    /// `GRANT <roles> TO <grantee> [WITH ADMIN OPTION]`.
    Roles {
        /// As printed, quotes and all.
        roles: Vec<String>,
        grantee: String,
        admin_option: bool,
    },
    /// A `GRANT` line this module cannot read, so cannot call harmless.
    Unreadable,
}

/// Reads a `SHOW GRANTS` line; `None` for a line that grants nothing
/// (`SET DEFAULT ROLE`, MySQL's partial `REVOKE`s, which only take away).
fn parse(line: &str) -> Option<Grant> {
    let starts_with_grant = line
        .trim_start()
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("GRANT "));
    if !starts_with_grant {
        return None;
    }
    Some(parse_grant(line).unwrap_or(Grant::Unreadable))
}

fn parse_grant(line: &str) -> Option<Grant> {
    let tokens = tokens(line)?;
    let is = |token: &str, word: &str| token.eq_ignore_ascii_case(word);
    let to = tokens.iter().position(|t| is(t, "TO"))?;
    let grantee = tokens.get(to + 1)?.clone();
    let rest = &tokens[to + 2..];
    let with = |word: &str| {
        rest.windows(2)
            .any(|w| is(&w[0], word) && is(&w[1], "OPTION"))
    };
    let head = tokens.get(1..to)?;
    let groups: Vec<&[String]> = head.split(|t| t == ",").collect();
    if groups.iter().any(|g| g.is_empty()) {
        return None;
    }
    match head.iter().position(|t| is(t, "ON")) {
        Some(on) => {
            let privileges = head[..on]
                .split(|t| t == ",")
                .map(|group| {
                    let words: Vec<String> = group
                        .iter()
                        .map(|t| t.split('(').next().unwrap_or_default().to_ascii_uppercase())
                        .filter(|w| !w.is_empty())
                        .collect();
                    (!words.is_empty()).then(|| words.join(" "))
                })
                .collect::<Option<Vec<_>>>()?;
            let object = head[on + 1..].join(" ");
            if privileges.is_empty() || object.is_empty() {
                return None;
            }
            Some(Grant::Privileges {
                privileges,
                object,
                grantee,
                grant_option: with("GRANT"),
            })
        }
        None => {
            let roles = groups
                .iter()
                .map(|group| match group {
                    [role] => Some(role.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Grant::Roles {
                roles,
                grantee,
                admin_option: with("ADMIN"),
            })
        }
    }
}

/// Splits a line at spaces and commas (each comma a token of its own),
/// keeping quoted names and parenthesized column lists whole; `None` when
/// a quote or a parenthesis is left open.
fn tokens(line: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = line.chars().peekable();
    let flush = |current: &mut String, tokens: &mut Vec<String>| {
        if !current.is_empty() {
            tokens.push(std::mem::take(current));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '`' | '\'' | '"' => {
                current.push(c);
                loop {
                    let next = chars.next()?;
                    current.push(next);
                    if next == '\\' && c != '`' {
                        current.push(chars.next()?);
                    } else if next == c {
                        // A doubled quote is a quote inside the name.
                        if chars.peek() == Some(&c) {
                            current.push(chars.next()?);
                        } else {
                            break;
                        }
                    }
                }
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.checked_sub(1)?;
                current.push(c);
            }
            ',' if depth == 0 => {
                flush(&mut current, &mut tokens);
                tokens.push(",".to_owned());
            }
            c if c.is_whitespace() && depth == 0 => flush(&mut current, &mut tokens),
            c => current.push(c),
        }
    }
    if depth != 0 {
        return None;
    }
    flush(&mut current, &mut tokens);
    Some(tokens)
}

/// A grantee that is an account (`` `u`@`h` ``), not a role or `PUBLIC`.
fn is_user(grantee: &str) -> bool {
    grantee.contains("`@`") || grantee.contains("'@'")
}

/// What `lines` grant beyond reading, one entry per line that does, each
/// once: `FILE, SUPER on *.*`, `INSERT on `shop`.* (granted to PUBLIC)`.
fn describe(lines: &[String], read_only: bool) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for grant in lines.iter().filter_map(|line| parse(line)) {
        let (mut powers, grantee) = match grant {
            Grant::Privileges {
                privileges,
                object,
                grantee,
                grant_option,
            } => {
                let refused: Vec<String> = privileges
                    .into_iter()
                    .filter(|p| match power(p, &object) {
                        Power::Read => false,
                        Power::Write => read_only,
                        Power::Admin => true,
                    })
                    .collect();
                let mut powers = Vec::new();
                if !refused.is_empty() {
                    powers.push(format!("{} on {object}", refused.join(", ")));
                }
                if grant_option {
                    powers.push(format!("GRANT OPTION on {object}"));
                }
                (powers, grantee)
            }
            Grant::Roles {
                roles,
                grantee,
                admin_option,
            } => {
                let powers = if admin_option {
                    vec![format!("ADMIN OPTION on role {}", roles.join(", "))]
                } else {
                    Vec::new()
                };
                (powers, grantee)
            }
            Grant::Unreadable => (vec!["a grant Loupe cannot read".to_owned()], String::new()),
        };
        if !grantee.is_empty() && !is_user(&grantee) {
            for power in &mut powers {
                power.push_str(&format!(" (granted to {grantee})"));
            }
        }
        for power in powers {
            if !found.contains(&power) {
                found.push(power);
            }
        }
    }
    found
}

/// What a privilege lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Read,
    Write,
    Admin,
}

fn power(privilege: &str, object: &str) -> Power {
    if READ.contains(&privilege) {
        Power::Read
    } else if WRITE.contains(&privilege) && !server_wide(object) {
        Power::Write
    } else {
        Power::Admin
    }
}

/// Whether `object` is every database, or a pattern that covers a system
/// schema (`` `%`.* ``; `_` and `%` are wildcards in a database grant).
fn server_wide(object: &str) -> bool {
    // `PROCEDURE `db`.`p``: the kind of routine does not matter here.
    let name = ["PROCEDURE ", "FUNCTION ", "PACKAGE BODY ", "PACKAGE "]
        .iter()
        .find_map(|kind| object.strip_prefix(kind))
        .unwrap_or(object);
    if name == "*.*" || name == "*" {
        return true;
    }
    let Some(schema) = name.strip_prefix('`').and_then(|n| n.split_once("`.")) else {
        // Not the usual `db`.x: treat as everything, to be safe.
        return true;
    };
    let pattern = schema.0.replace("``", "`");
    SYSTEM_SCHEMAS
        .iter()
        .any(|system| like(pattern.as_bytes(), system.as_bytes()))
}

/// SQL `LIKE`: `%` any run, `_` any one character, `\` escapes.
fn like(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|skip| like(rest, &text[skip..])),
        Some((b'_', rest)) => !text.is_empty() && like(rest, &text[1..]),
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && like(&rest[1..], &text[1..])
        }
        Some((c, rest)) => {
            text.first().is_some_and(|t| t.eq_ignore_ascii_case(c)) && like(rest, &text[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn grants_are_read_with_their_columns_objects_and_options() {
        assert_eq!(
            parse("GRANT SELECT (`a`), UPDATE (`a`, `b`) ON `shop`.`t 1` TO `u`@`%`"),
            Some(Grant::Privileges {
                privileges: vec!["SELECT".into(), "UPDATE".into()],
                object: "`shop`.`t 1`".into(),
                grantee: "`u`@`%`".into(),
                grant_option: false,
            })
        );
        assert_eq!(
            parse(
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION"
            ),
            Some(Grant::Privileges {
                privileges: vec!["ALL PRIVILEGES".into()],
                object: "*.*".into(),
                grantee: "`root`@`localhost`".into(),
                grant_option: true,
            })
        );
        // MySQL 8 prints dynamic privileges without spaces.
        assert_eq!(
            parse("GRANT APPLICATION_PASSWORD_ADMIN,XA_RECOVER_ADMIN ON *.* TO `root`@`localhost`"),
            Some(Grant::Privileges {
                privileges: vec![
                    "APPLICATION_PASSWORD_ADMIN".into(),
                    "XA_RECOVER_ADMIN".into()
                ],
                object: "*.*".into(),
                grantee: "`root`@`localhost`".into(),
                grant_option: false,
            })
        );
        assert_eq!(
            parse("GRANT `r1`@`%`,`on` TO `u`@`h` WITH ADMIN OPTION"),
            Some(Grant::Roles {
                roles: vec!["`r1`@`%`".into(), "`on`".into()],
                grantee: "`u`@`h`".into(),
                admin_option: true,
            })
        );
        assert_eq!(
            parse("GRANT EXECUTE ON PROCEDURE `db`.`p` TO `u`@`h`"),
            Some(Grant::Privileges {
                privileges: vec!["EXECUTE".into()],
                object: "PROCEDURE `db`.`p`".into(),
                grantee: "`u`@`h`".into(),
                grant_option: false,
            })
        );
        assert_eq!(parse("SET DEFAULT ROLE `r` FOR `u`@`h`"), None);
        assert_eq!(parse("REVOKE INSERT ON `mysql`.* FROM `u`@`h`"), None);
        assert_eq!(
            parse("GRANT SELECT ON `unterminated TO `u`@`h`"),
            Some(Grant::Unreadable)
        );
        assert_eq!(parse("GRANT SELECT ON *.*"), Some(Grant::Unreadable));
    }

    #[test]
    fn a_reader_is_fit() {
        let grants = lines(
            "GRANT USAGE ON *.* TO `r`@`127.0.0.1` IDENTIFIED BY PASSWORD '*AB'\n\
             GRANT SELECT, SHOW VIEW, EXECUTE ON `loupe_test`.* TO `r`@`127.0.0.1`\n\
             GRANT SELECT (`a`) ON `loupe_test`.`t` TO `r`@`127.0.0.1`",
        );
        assert!(describe(&grants, true).is_empty());
    }

    #[test]
    fn administrative_privileges_are_named_always() {
        let grants = lines(
            "GRANT RELOAD, SHUTDOWN, PROCESS, FILE, SUPER, CONNECTION ADMIN, BINLOG ADMIN ON *.* TO `a`@`h`\n\
             GRANT SELECT ON `loupe_test`.* TO `a`@`h`",
        );
        let expected =
            ["RELOAD, SHUTDOWN, PROCESS, FILE, SUPER, CONNECTION ADMIN, BINLOG ADMIN on *.*"];
        assert_eq!(describe(&grants, true), expected);
        assert_eq!(describe(&grants, false), expected);
        assert_eq!(
            describe(&lines("GRANT SELECT, INSERT ON *.* TO `a`@`h`"), false),
            ["INSERT on *.*"],
            "writing everywhere is writing the grant tables"
        );
        assert_eq!(
            describe(&lines("GRANT INSERT ON `%`.* TO `a`@`h`"), false),
            ["INSERT on `%`.*"],
            "a pattern that covers the mysql schema"
        );
        assert_eq!(
            describe(
                &lines("GRANT SELECT ON `d`.* TO `a`@`h` WITH GRANT OPTION"),
                true
            ),
            ["GRANT OPTION on `d`.*"]
        );
        assert_eq!(
            describe(&lines("GRANT INSERT ON `shop`.`t 1` TO `a`@`h`"), false),
            Vec::<String>::new(),
            "a table name with a space is still one table"
        );
        assert_eq!(
            describe(&lines("GRANT SOMETHING_NEW ON `d`.* TO `a`@`h`"), true),
            ["SOMETHING_NEW on `d`.*"],
            "a privilege Loupe does not know is not assumed harmless"
        );
        assert_eq!(
            describe(&lines("GRANT SELECT ON `d TO `a`@`h`"), true),
            ["a grant Loupe cannot read"]
        );
    }

    #[test]
    fn write_grants_are_named_on_a_read_only_datasource() {
        let grants = lines(
            "GRANT USAGE ON *.* TO `loupe`@`127.0.0.1`\n\
             GRANT ALL PRIVILEGES ON `loupe_%`.* TO `loupe`@`127.0.0.1`\n\
             GRANT SELECT, INSERT (`a`) ON `shop`.`t` TO `loupe`@`127.0.0.1`",
        );
        assert_eq!(
            describe(&grants, true),
            ["ALL PRIVILEGES on `loupe_%`.*", "INSERT on `shop`.`t`"]
        );
        assert!(
            describe(&grants, false).is_empty(),
            "read_only=false writes"
        );
    }

    #[test]
    fn grants_of_roles_and_public_say_where_they_come_from() {
        let grants = lines(
            "GRANT `outer` TO `u`@`h`\n\
             GRANT USAGE ON *.* TO `u`@`h`\n\
             GRANT `inner` TO `outer`\n\
             GRANT FILE ON *.* TO `inner`\n\
             GRANT INSERT ON `d`.* TO PUBLIC\n\
             GRANT FILE ON *.* TO `inner`",
        );
        assert_eq!(
            describe(&grants, true),
            [
                "FILE on *.* (granted to `inner`)",
                "INSERT on `d`.* (granted to PUBLIC)"
            ]
        );
    }

    #[test]
    fn like_matches_as_sql_does() {
        assert!(like(b"%", b"mysql"));
        assert!(like(b"my_ql", b"mysql"));
        assert!(like(b"MY%", b"mysql"));
        assert!(!like(b"loupe_%", b"mysql"));
        assert!(!like(b"my\\_ql", b"mysql"));
        assert!(like(b"per%schema", b"performance_schema"));
    }
}
