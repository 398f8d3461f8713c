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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::template::BoundParam;
use crate::{Error, Result};

/// Restrictions a statement runs under. Empty for most runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Restrictions {
    /// Transaction-local settings, by name (such as `loupe.user.region`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// Row filters: only rows that pass a table's predicate are visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_filters: Vec<RowFilter>,
}

/// A predicate every row of one table must pass to be seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowFilter {
    /// The table, as the datasource names it (`name` or `schema.name`).
    pub table: String,
    /// A boolean SQL expression over the table's columns, in the
    /// datasource's dialect, with positional placeholders (`$1`) for
    /// [`params`](Self::params).
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
