//! Who is asking, and the rules every service applies to them.
//!
//! Every operation takes an [`Actor`]. Nothing crosses organizations: an
//! object of another organization answers not-found, never forbidden, so
//! its existence is not revealed. Within an organization, roles and
//! datasource grants decide.

use loupe_core::codes;
use serde::{Deserialize, Serialize};

use loupe_core::{Error, Result};

/// A role in an organization, from least to most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads what their groups may see.
    Viewer,
    /// Also creates and edits their own and shared objects.
    Editor,
    /// Also manages users, groups, grants and datasources.
    Admin,
}

impl Role {
    /// The role's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "viewer" => Self::Viewer,
            "editor" => Self::Editor,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// What an API key may do; a key never does more than its owner's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read objects and results.
    Read,
    /// Also run queries.
    Run,
    /// Also create and change objects.
    Write,
    /// Also administer (if the owner is an admin).
    Admin,
}

impl Scope {
    /// The role a key with this scope acts as, at most.
    fn ceiling(self) -> Role {
        match self {
            Self::Read | Self::Run => Role::Viewer,
            Self::Write => Role::Editor,
            Self::Admin => Role::Admin,
        }
    }
}

/// Access a group's members have to a datasource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// See results, schema and queries; do not run or edit.
    View,
    /// Also run queries on it (and so edit queries that use it).
    Run,
}

impl Access {
    /// The access's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Run => "run",
        }
    }

    /// Parses a stored access name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "view" => Some(Self::View),
            "run" => Some(Self::Run),
            _ => None,
        }
    }
}

/// How the actor authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Via {
    /// A signed-in user.
    Session,
    /// An API key, with its scopes.
    ApiKey {
        /// The key's id.
        key_id: String,
        /// What the key may do.
        scopes: Vec<Scope>,
        /// The one saved query the key is scoped to, if it is: it then
        /// reads that query's latest results and nothing else.
        #[serde(skip_serializing_if = "Option::is_none")]
        query_id: Option<String>,
    },
    /// The system itself (the scheduler, set-up): no person behind it.
    System,
}

/// The person or key behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The user, or the key's owner.
    pub user_id: String,
    /// Their organization.
    pub org_id: String,
    /// Their role.
    pub role: Role,
    /// The groups they belong to.
    pub groups: Vec<String>,
    /// How they authenticated.
    pub via: Via,
    /// Where the request came from, for the audit trail.
    pub ip: Option<String>,
    /// Their attributes, for row-level security (an embedding token's,
    /// when it names them).
    pub attributes: crate::rls::Attributes,
}

impl Actor {
    /// The id of the API key behind this actor, if any.
    pub fn key_id(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { key_id, .. } => Some(key_id),
            Via::Session | Via::System => None,
        }
    }

    /// The saved query the API key behind this actor is scoped to, if it
    /// is. Such a key reads that query's latest results and nothing else:
    /// hosts refuse it every other operation where they authenticate it
    /// (the server's `caller` module), and the latest-result service
    /// refuses it any other query.
    pub fn key_query(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { query_id, .. } => query_id.as_deref(),
            Via::Session | Via::System => None,
        }
    }

    /// Fails with `access.scope` when the actor's API key is scoped to a
    /// saved query other than `query_id`.
    pub fn require_key_query(&self, query_id: &str) -> Result<()> {
        match self.key_query() {
            Some(scoped) if scoped != query_id => Err(Error::refused(
                codes::ACCESS_SCOPE,
                format!(
                    "this API key reads only the latest results of query {scoped}, not of query {query_id}"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The role in effect: an API key lowers it to what its scopes allow.
    pub fn effective_role(&self) -> Role {
        match &self.via {
            Via::ApiKey { scopes, .. } => {
                let ceiling = scopes
                    .iter()
                    .map(|s| s.ceiling())
                    .max()
                    .unwrap_or(Role::Viewer);
                self.role.min(ceiling)
            }
            Via::Session | Via::System => self.role,
        }
    }

    /// Whether the actor may run queries at all (a read-only key may not).
    pub fn may_run(&self) -> bool {
        match &self.via {
            Via::ApiKey { scopes, .. } => scopes.iter().any(|s| *s >= Scope::Run),
            Via::Session | Via::System => true,
        }
    }

    /// True for an admin (through a key with the admin scope too).
    pub fn is_admin(&self) -> bool {
        self.effective_role() == Role::Admin
    }

    /// Fails unless the actor has at least `role`.
    pub fn require(&self, role: Role, doing: &str) -> Result<()> {
        if self.effective_role() >= role {
            Ok(())
        } else {
            Err(Error::refused(
                codes::ACCESS_ROLE,
                format!("{doing} needs the {} role", role.as_str()),
            ))
        }
    }

    /// Fails with not-found unless `org_id` is the actor's organization.
    pub fn same_org(&self, org_id: &str, what: &'static str, id: &str) -> Result<()> {
        if self.org_id == org_id {
            Ok(())
        } else {
            Err(Error::not_found(what, id))
        }
    }

    /// Whether the actor may change an object owned by `owner_id`: admins
    /// may change anything, editors their own objects and shared ones.
    pub fn may_edit(&self, owner_id: &str, shared: bool) -> bool {
        match self.effective_role() {
            Role::Admin => true,
            Role::Editor => owner_id == self.user_id || shared,
            Role::Viewer => false,
        }
    }

    /// Fails unless [`may_edit`](Self::may_edit).
    pub fn require_edit(&self, owner_id: &str, shared: bool, what: &str) -> Result<()> {
        if self.may_edit(owner_id, shared) {
            Ok(())
        } else if self.effective_role() < Role::Editor {
            Err(Error::refused(
                codes::ACCESS_ROLE,
                format!("changing a {what} needs the editor role"),
            ))
        } else {
            Err(Error::refused(
                codes::ACCESS_OWNER,
                format!("only its owner or an admin may change this {what} (it is not shared)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, via: Via) -> Actor {
        Actor {
            user_id: "u".into(),
            org_id: "o".into(),
            role,
            groups: vec![],
            via,
            ip: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn keys_never_exceed_their_scopes_or_their_owner() {
        let key = |scopes: Vec<Scope>| Via::ApiKey {
            key_id: "k".into(),
            scopes,
            query_id: None,
        };
        assert_eq!(
            actor(Role::Admin, key(vec![Scope::Read])).effective_role(),
            Role::Viewer
        );
        assert_eq!(
            actor(Role::Viewer, key(vec![Scope::Admin])).effective_role(),
            Role::Viewer
        );
        assert_eq!(
            actor(Role::Admin, key(vec![Scope::Write])).effective_role(),
            Role::Editor
        );
        assert!(!actor(Role::Admin, key(vec![Scope::Read])).may_run());
        assert!(actor(Role::Viewer, key(vec![Scope::Run])).may_run());
    }

    #[test]
    fn a_query_scoped_key_reaches_its_own_query_only() {
        let scoped = actor(
            Role::Admin,
            Via::ApiKey {
                key_id: "k".into(),
                scopes: vec![Scope::Read],
                query_id: Some("q1".into()),
            },
        );
        assert_eq!(scoped.key_query(), Some("q1"));
        assert!(scoped.require_key_query("q1").is_ok());
        let refused = scoped.require_key_query("q2").unwrap_err();
        assert_eq!(refused.code(), "access.scope");
        let session = actor(Role::Viewer, Via::Session);
        assert_eq!(session.key_query(), None);
        assert!(session.require_key_query("q2").is_ok());
    }

    #[test]
    fn editors_edit_their_own_and_shared_objects() {
        let editor = actor(Role::Editor, Via::Session);
        assert!(editor.may_edit("u", false));
        assert!(editor.may_edit("other", true));
        assert!(!editor.may_edit("other", false));
        assert!(!actor(Role::Viewer, Via::Session).may_edit("u", true));
        assert!(actor(Role::Admin, Via::Session).may_edit("other", false));
    }
}
