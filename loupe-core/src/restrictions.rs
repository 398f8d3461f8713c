//! What a run is restricted to, for the datasource to enforce: the part of
//! row-level security that travels with a statement.
//!
//! The services decide a caller's restrictions from their grants and
//! attributes; a connector applies them, or refuses the statement when it
//! cannot (never runs it unrestricted):
//! - [`settings`](Restrictions::settings): transaction-local settings that
//!   the database's own policies read (PostgreSQL:
//!   `set_config(name, value, true)`, read with `current_setting(name, true)`);
//! - [`row_filters`](Restrictions::row_filters): a predicate per table that
//!   every reference to the table passes through (the files datasource).
//!
//! Which connector enforces what: `postgres` settings only, `files` row
//! filters only, `mysql` neither; each refuses the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::template::BoundParam;
use crate::{Error, Result};

/// Restrictions a statement runs under. Empty for most runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Restrictions {
    /// Transaction-local settings, by name (such as `loupe.user.region`).
    /// Names are custom settings, `prefix.name`: the postgres datasource
    /// refuses a server setting (`statement_timeout`, `role`), which could
    /// undo the limits it sets. Values are bound, never spliced into SQL,
    /// and end with the statement's transaction. The statement itself runs
    /// in that transaction, and SQL that calls `set_config` can change a
    /// setting: the services therefore sign each value in a companion
    /// setting that the database checks with a key the caller never sees
    /// (`loupe_rls.attribute`, see `docs/row-level-security.md`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// Row filters: only rows that pass a table's predicate are visible.
    /// Filters for different tables all apply. Several filters for one
    /// table (from different groups' grants) each add rows: a row is
    /// visible when it passes any of them. A table with no filter is not
    /// restricted by this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filters: Vec<RowFilter>,
}

/// A predicate every row of one table must pass to be seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowFilter {
    /// The table, as the datasource names it (`name` or `schema.name`).
    /// For the files datasource: the table's name exactly as the schema
    /// browser lists it (no case folding, no quotes), optionally
    /// qualified as `public.name`.
    pub table: String,
    /// A boolean SQL expression over the table's columns, in the
    /// datasource's dialect, with positional placeholders (`$1`) for
    /// [`params`](Self::params), each used. It may use the row's columns,
    /// literals and scalar functions; no subqueries, aggregates, window
    /// functions or session variables. A row whose predicate is NULL is
    /// hidden.
    pub predicate: String,
    /// The values of the placeholders, in order.
    #[serde(default)]
    pub params: Vec<BoundParam>,
}

impl Restrictions {
    /// True when nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty() && self.row_filters.is_empty()
    }

    /// Fails with `datasource.restrictions_unsupported` when the statement
    /// carries a kind of restriction a connector of `kind` cannot enforce:
    /// such a statement must not run at all.
    pub fn require_supported(&self, kind: &str, settings: bool, row_filters: bool) -> Result<()> {
        let unsupported = if !settings && !self.settings.is_empty() {
            Some("transaction settings")
        } else if !row_filters && !self.row_filters.is_empty() {
            Some("row filters")
        } else {
            None
        };
        match unsupported {
            None => Ok(()),
            Some(what) => Err(Error::refused(
                codes::DATASOURCE_RESTRICTIONS_UNSUPPORTED,
                format!(
                    "{kind} datasources cannot enforce {what}, which the caller's access requires; an admin can change the grant"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn filtered() -> Restrictions {
        Restrictions {
            settings: BTreeMap::new(),
            row_filters: vec![RowFilter {
                table: "sales".into(),
                predicate: "region = $1".into(),
                params: vec![BoundParam {
                    name: "user.region".into(),
                    value: Value::Text("EU".into()),
                }],
            }],
        }
    }

    #[test]
    fn empty_restrictions_are_left_out_of_json() {
        let json = serde_json::to_string(&Restrictions::default()).unwrap_or_default();
        assert_eq!(json, "{}");
    }

    #[test]
    fn restrictions_round_trip_through_json() {
        let json = serde_json::to_string(&filtered()).unwrap_or_default();
        let back: Restrictions = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, filtered());
    }

    #[test]
    fn a_kind_of_restriction_a_connector_lacks_is_refused() {
        let refused = filtered().require_supported("mysql", true, false);
        assert!(
            matches!(&refused, Err(e) if e.code() == codes::DATASOURCE_RESTRICTIONS_UNSUPPORTED.as_str()),
            "{refused:?}"
        );
        assert!(filtered().require_supported("files", false, true).is_ok());
        let mut settings = Restrictions::default();
        settings
            .settings
            .insert("loupe.user.region".into(), "EU".into());
        assert!(settings.require_supported("files", false, true).is_err());
        assert!(settings.require_supported("postgres", true, false).is_ok());
    }
}
