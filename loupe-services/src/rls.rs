//! Row-level security: user attributes, the rules a grant carries, and the
//! context a caller runs and reads in.
//!
//! A grant of a datasource to a group may carry [`GrantRules`]:
//! - `saved_only`: members run saved queries, never ad-hoc SQL;
//! - `locked`: a saved query's parameter is bound from one of the caller's
//!   attributes, and no caller may give it a value; a query that does not
//!   take the parameter cannot run under the grant, nor can ad-hoc SQL;
//! - `row_filters` (files datasources): per table, an expression over the
//!   table's columns and the caller's attributes (`region = {{ region }}`),
//!   enforced by the datasource for every reference to the table.
//!
//! A datasource may also pass every caller's attributes on as transaction
//! settings (`loupe.user.<name>`), for the database's own policies
//! (PostgreSQL's `CREATE POLICY … current_setting('loupe.user.region', true)`).
//!
//! A member of several groups gets what each group allows: a grant without
//! rules lifts the rules of the others (to run, among the grants that give
//! `run` only); among restricted grants, a query
//! must be saved only if every grant says so, a parameter is locked only if
//! every grant locks it (to the same attribute), and a table's rows are
//! visible if they pass any grant's filter (a table some grant leaves
//! unfiltered is unfiltered). Admins are never restricted by grants.
//!
//! Everything a restricted run depends on is digested into its
//! [`RunContext::key`]. The key is part of the run's cache key, and a
//! restricted caller sees, joins and reuses only runs of their own key;
//! an unrestricted caller (key `""`) sees every run of the datasources
//! their groups may see.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::actor::{Access, Actor};
use crate::meta::{Children, SqlBuilder, col};
use crate::services::Shared;
use crate::validate::Validator;
use loupe_core::codes;
use loupe_core::{Dialect, Error, ParameterDef, ParameterType, Result};
use loupe_core::{ItemType, Restrictions, RowFilter, Template};

/// A user's attributes: name -> text, number, boolean, or a list of them.
pub type Attributes = BTreeMap<String, Json>;

/// The most attributes one user may have.
pub(crate) const MAX_ATTRIBUTES: usize = 50;
/// The most values in one list attribute.
pub(crate) const MAX_ATTRIBUTE_VALUES: usize = 1_000;
/// The longest text value of an attribute, in characters.
pub(crate) const MAX_ATTRIBUTE_TEXT: usize = 1_000;

/// The prefix of the transaction settings that carry attributes.
pub(crate) const SETTING_PREFIX: &str = "loupe.user.";
/// The prefix of the settings that carry their signatures.
pub(crate) const SIGNATURE_PREFIX: &str = "loupe.signature.";

/// What a grant restricts its members to. The default restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRules {
    /// Members may run saved queries only, not ad-hoc SQL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saved_only: bool,
    /// Parameters bound from the caller's attributes: parameter -> attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locked: BTreeMap<String, String>,
    /// Row filters of a files datasource: table -> a boolean expression
    /// over its columns and the caller's attributes (`{{ attribute }}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub row_filters: BTreeMap<String, String>,
}

impl GrantRules {
    /// True when the grant restricts nothing.
    pub fn is_empty(&self) -> bool {
        !self.saved_only && self.locked.is_empty() && self.row_filters.is_empty()
    }

    /// Checks the rules' shape; `kind` is the datasource's kind (row
    /// filters are for files datasources only).
    pub(crate) fn validate(&self, v: &mut Validator, kind: &str) {
        for (parameter, attribute) in &self.locked {
            let field = format!("rules.locked.{parameter}");
            name_rule(v, &field, parameter, "parameter");
            name_rule(v, &field, attribute, "attribute");
        }
        if !self.row_filters.is_empty() && kind != "files" {
            v.push(
                "rules.row_filters",
                codes::field::INVALID,
                format!(
                    "row filters are enforced by files datasources only; on a {kind} datasource use locked parameters, or the database's own policies with user settings"
                ),
            );
        }
        for (table, expression) in &self.row_filters {
            let field = format!("rules.row_filters.{table}");
            if table.trim().is_empty() || table.len() > 200 {
                v.push(
                    &field,
                    codes::field::INVALID,
                    "a table name is 1 to 200 characters",
                );
            }
            v.text(&field, expression, 1, 2_000);
            if let Err(e) = Template::parse(expression, Dialect::DataFusion) {
                v.push(
                    &field,
                    codes::field::INVALID,
                    format!("the expression does not parse: {e}"),
                );
            }
        }
    }
}

fn name_rule(v: &mut Validator, field: &str, name: &str, what: &str) {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= loupe_core::MAX_PARAMETER_NAME;
    if !ok {
        v.push(
            field,
            codes::field::INVALID,
            format!(
                "{name:?} is not a valid {what} name: letters, digits and underscores, starting with a letter, at most {} characters",
                loupe_core::MAX_PARAMETER_NAME
            ),
        );
    }
}

/// Checks a user's attributes: names like parameter names; values text,
/// numbers, booleans or lists of them.
pub(crate) fn validate_attributes(v: &mut Validator, attributes: &Attributes) {
    if attributes.len() > MAX_ATTRIBUTES {
        v.push(
            "attributes",
            codes::field::TOO_LONG,
            format!("a user has at most {MAX_ATTRIBUTES} attributes"),
        );
    }
    for (name, value) in attributes {
        let field = format!("attributes.{name}");
        name_rule(v, &field, name, "attribute");
        match value {
            Json::Array(items) => {
                if items.len() > MAX_ATTRIBUTE_VALUES {
                    v.push(
                        &field,
                        codes::field::TOO_LONG,
                        format!("a list attribute has at most {MAX_ATTRIBUTE_VALUES} values"),
                    );
                }
                if items.is_empty() {
                    v.push(
                        &field,
                        codes::field::INVALID,
                        "a list attribute needs at least one value; remove the attribute instead",
                    );
                }
                if items.iter().any(|i| scalar_type(i).is_none()) {
                    v.push(
                        &field,
                        codes::field::INVALID,
                        "a list attribute holds text or numbers",
                    );
                } else if items
                    .windows(2)
                    .any(|w| scalar_type(&w[0]) != scalar_type(&w[1]))
                {
                    v.push(
                        &field,
                        codes::field::INVALID,
                        "the values of a list attribute are all of one type",
                    );
                }
                for item in items {
                    text_rule(v, &field, item);
                }
            }
            scalar => {
                if scalar_type(scalar).is_none() && !scalar.is_boolean() {
                    v.push(
                        &field,
                        codes::field::INVALID,
                        "an attribute is text, a number, a boolean, or a list of them",
                    );
                }
                text_rule(v, &field, scalar);
            }
        }
    }
}

fn text_rule(v: &mut Validator, field: &str, value: &Json) {
    if let Json::String(text) = value {
        v.text(field, text, 0, MAX_ATTRIBUTE_TEXT);
    }
}

/// The item type a value of a list attribute binds as.
fn scalar_type(value: &Json) -> Option<ItemType> {
    match value {
        Json::String(_) => Some(ItemType::Text),
        Json::Number(n) if n.is_i64() => Some(ItemType::Integer),
        Json::Number(_) => Some(ItemType::Number),
        _ => None,
    }
}

/// The parameter definition an attribute binds as in a row filter.
fn attribute_def(name: &str, value: &Json) -> ParameterDef {
    let ty = match value {
        Json::Bool(_) => ParameterType::Boolean,
        Json::Array(items) => ParameterType::list(
            items
                .first()
                .and_then(scalar_type)
                .unwrap_or(ItemType::Text),
        ),
        other => match scalar_type(other) {
            Some(ItemType::Integer) => ParameterType::Integer,
            Some(ItemType::Number) => ParameterType::Number,
            _ => ParameterType::Text,
        },
    };
    ParameterDef::new(name, ty)
}

/// An attribute as the text of a transaction setting: scalars as they
/// read, lists as a JSON array.
fn setting_text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What one caller is restricted to on one datasource.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunContext {
    /// `""` when unrestricted, else the digest of everything below.
    pub(crate) key: String,
    /// Ad-hoc SQL is refused.
    pub(crate) saved_only: bool,
    /// Locked parameters: name -> the caller's value.
    pub(crate) locked: BTreeMap<String, Json>,
    /// What the datasource enforces.
    pub(crate) restrictions: Restrictions,
}

/// The context keys of the runs the caller may see on each datasource
/// they have a grant on: `None` for every run, `Some(key)` for runs of that
/// context only. A caller who lacks an attribute their rules need sees no
/// run of the datasource (a key no run has).
pub(crate) async fn visible_contexts(
    shared: &Shared,
    actor: &Actor,
    datasource_ids: &[String],
) -> Result<HashMap<String, Option<String>>> {
    let grants = if actor.is_admin() {
        return Ok(datasource_ids.iter().map(|id| (id.clone(), None)).collect());
    } else {
        held_grants(shared, actor, datasource_ids).await?
    };
    let with_settings = user_settings(shared, datasource_ids).await?;
    let mut out = HashMap::new();
    for id in datasource_ids {
        let held = grants.get(id).map(Vec::as_slice).unwrap_or_default();
        let passing = with_settings.get(id).cloned().flatten();
        let key = match resolve(held, &actor.attributes, &passing) {
            Ok(context) if context.key.is_empty() => None,
            Ok(context) => Some(context.key),
            Err(e)
                if e.code() == codes::ACCESS_MISSING_ATTRIBUTE.as_str()
                    || e.code() == codes::DATASOURCE_SETTINGS_KEY.as_str() =>
            {
                Some(NO_RUN.to_owned())
            }
            Err(e) => return Err(e),
        };
        out.insert(id.clone(), key);
    }
    Ok(out)
}

/// A context key no run has.
const NO_RUN: &str = "-";

/// Whether the caller may see a run of context `key` on `datasource_id`
/// (their grant on it was checked already).
pub(crate) async fn may_see_run(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
    key: &str,
) -> Result<bool> {
    let ids = [datasource_id.to_owned()];
    let visible = visible_contexts(shared, actor, &ids).await?;
    Ok(match visible.get(datasource_id) {
        Some(Some(mine)) => mine == key,
        Some(None) | None => true,
    })
}

/// Adds to a list's `WHERE` that its runs (`alias.datasource_id`,
/// `alias.context`) are ones the caller may see: on each datasource where
/// they are restricted, runs of their own context only.
pub(crate) async fn visible_runs(
    shared: &Shared,
    actor: &Actor,
    sql: &mut SqlBuilder,
    alias: &str,
) -> Result<()> {
    if actor.is_admin() {
        return Ok(());
    }
    let ids = granted_datasources(shared, actor).await?;
    let visible = visible_contexts(shared, actor, &ids).await?;
    let mut restricted: Vec<(&String, &String)> = visible
        .iter()
        .filter_map(|(id, key)| key.as_ref().map(|k| (id, k)))
        .collect();
    if restricted.is_empty() {
        return Ok(());
    }
    restricted.sort();
    sql.push(&format!(" AND ({alias}.datasource_id NOT IN ("));
    for (i, (id, _)) in restricted.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_text(id.as_str());
    }
    sql.push(")");
    for (id, key) in restricted {
        sql.push(&format!(" OR ({alias}.datasource_id = "));
        sql.bind_text(id.as_str());
        sql.push(&format!(" AND {alias}.context = "));
        sql.bind_text(key.as_str());
        sql.push(")");
    }
    sql.push(")");
    Ok(())
}

/// The datasources the caller's groups have grants on.
async fn granted_datasources(shared: &Shared, actor: &Actor) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT g.datasource_id FROM datasource_grants g \
         JOIN group_members m ON m.group_id = g.group_id WHERE m.user_id = $1",
    )
    .bind(actor.user_id.clone())
    .fetch_all(shared.store.pool())
    .await
    .map_err(crate::meta::db_error)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// One grant of the caller on a datasource, with its rules.
#[derive(Debug, Clone)]
struct Held {
    access: Access,
    rules: GrantRules,
}

/// The caller's context on `datasource_id` for `need`: from the rules of
/// the grants that give that access (to run, only `run` grants count, so
/// an unrestricted `view` grant never lifts the rules of a `run` grant),
/// their attributes, and whether the datasource passes attributes on.
pub(crate) async fn context(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
    need: Access,
) -> Result<RunContext> {
    let ids = [datasource_id.to_owned()];
    let mut contexts = contexts(shared, actor, &ids, need).await?;
    Ok(contexts.remove(datasource_id).unwrap_or_default())
}

/// The caller's contexts on each of `datasource_ids` for `need`
/// (unrestricted ones included, with an empty key).
async fn contexts(
    shared: &Shared,
    actor: &Actor,
    datasource_ids: &[String],
    need: Access,
) -> Result<HashMap<String, RunContext>> {
    let grants = if actor.is_admin() {
        HashMap::new()
    } else {
        held_grants(shared, actor, datasource_ids).await?
    };
    let with_settings = user_settings(shared, datasource_ids).await?;
    let mut out = HashMap::new();
    for id in datasource_ids {
        let held: Vec<Held> = grants
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|h| h.access >= need)
            .cloned()
            .collect();
        let passing = with_settings.get(id).cloned().flatten();
        out.insert(id.clone(), resolve(&held, &actor.attributes, &passing)?);
    }
    Ok(out)
}

/// The grants the actor holds through their groups, by datasource.
async fn held_grants(
    shared: &Shared,
    actor: &Actor,
    datasource_ids: &[String],
) -> Result<HashMap<String, Vec<Held>>> {
    let mut select = SqlBuilder::new(
        "SELECT g.datasource_id, g.access, g.rules FROM datasource_grants g \
         JOIN group_members m ON m.group_id = g.group_id WHERE m.user_id = ",
    );
    select
        .bind_text(&actor.user_id)
        .push(" AND g.datasource_id");
    let rows = Children::load(&shared.store, select, datasource_ids, "", "datasource_id").await?;
    let mut out: HashMap<String, Vec<Held>> = HashMap::new();
    for id in datasource_ids {
        for row in rows.get(id) {
            let Some(access) = Access::parse(&col::<String>(row, "access")?) else {
                continue;
            };
            let text: String = col(row, "rules")?;
            let rules = serde_json::from_str(&text)
                .map_err(|e| Error::internal_from("a grant's stored rules", e))?;
            out.entry(id.clone())
                .or_default()
                .push(Held { access, rules });
        }
    }
    Ok(out)
}

/// How a datasource passes attributes on: `None` when it does not, else
/// with the key that signs them (`None` when none was made yet).
type Passing = Option<Option<Vec<u8>>>;

/// Which of the datasources pass attributes on as settings, with their
/// signing keys.
async fn user_settings(
    shared: &Shared,
    datasource_ids: &[String],
) -> Result<HashMap<String, Passing>> {
    let select =
        SqlBuilder::new("SELECT id, user_settings, settings_key FROM datasources WHERE id");
    let rows = Children::load(&shared.store, select, datasource_ids, "", "id").await?;
    let mut out = HashMap::new();
    for id in datasource_ids {
        for row in rows.get(id) {
            let passing = match crate::meta::flag(row, "user_settings")? {
                false => None,
                true => Some(match col::<Option<String>>(row, "settings_key")? {
                    Some(sealed) => Some(open_settings_key(shared, id, &sealed)?),
                    None => None,
                }),
            };
            out.insert(id.clone(), passing);
        }
    }
    Ok(out)
}

/// The associated data a datasource's settings key is sealed with.
pub(crate) fn settings_key_associated(datasource_id: &str) -> Vec<u8> {
    format!("settings-key:{datasource_id}").into_bytes()
}

fn open_settings_key(shared: &Shared, datasource_id: &str, sealed: &str) -> Result<Vec<u8>> {
    let keys = shared.config.secret_keys.as_ref().ok_or_else(|| {
        Error::config("a datasource's settings key is sealed but no encryption key is configured (LOUPE_SECRET_KEY)")
    })?;
    let sealed = crate::crypto::Sealed::from_text(sealed)?;
    keys.open(&sealed, &settings_key_associated(datasource_id))
}

/// The signature of one setting: HMAC-SHA-256 of `name=value` under the
/// datasource's key, hex; what `loupe_rls.attribute(name)` checks in the
/// database (see [`setup_sql`]).
pub(crate) fn setting_signature(key: &[u8], name: &str, value: &str) -> Result<String> {
    let mac = crate::crypto::hmac_sha256(key, format!("{name}={value}").as_bytes())?;
    Ok(crate::crypto::hex(&mac))
}

/// The SQL an admin runs (as a superuser) in a PostgreSQL database once
/// per datasource, so that policies can read signed attributes with
/// `loupe_rls.attribute('region')`: a private table of keys (one per
/// datasource that reads the database), and a function that answers a
/// setting only when its signature matches one of them, so a statement
/// that changes its own settings sees no value at all. `reader_role` is
/// quoted already.
pub(crate) fn setup_sql(key: &[u8], datasource_id: &str, reader_role: &str) -> String {
    format!(
        "CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA IF NOT EXISTS loupe_rls;
REVOKE ALL ON SCHEMA loupe_rls FROM PUBLIC;
CREATE TABLE IF NOT EXISTS loupe_rls.settings_keys (datasource text PRIMARY KEY, key bytea NOT NULL);
REVOKE ALL ON loupe_rls.settings_keys FROM PUBLIC;
INSERT INTO loupe_rls.settings_keys VALUES ('{datasource}', decode('{hex}', 'hex'))
    ON CONFLICT (datasource) DO UPDATE SET key = excluded.key;
CREATE OR REPLACE FUNCTION loupe_rls.attribute(name text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT s.value
    FROM (SELECT current_setting('loupe.user.' || name, true) AS value,
                 current_setting('loupe.signature.' || name, true) AS signature) s
    WHERE EXISTS (
        SELECT 1 FROM loupe_rls.settings_keys k
        WHERE s.signature = encode(hmac(convert_to(name || '=' || s.value, 'UTF8'), k.key, 'sha256'), 'hex'))
$$;
REVOKE ALL ON FUNCTION loupe_rls.attribute(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA loupe_rls TO {reader_role};
GRANT EXECUTE ON FUNCTION loupe_rls.attribute(text) TO {reader_role};
",
        datasource = datasource_id.replace('\'', "''"),
        hex = crate::crypto::hex(key),
    )
}

/// Merges the grants' rules (what each group allows) and binds them to
/// the caller's attributes.
fn resolve(held: &[Held], attributes: &Attributes, passing: &Passing) -> Result<RunContext> {
    let settings = passing.is_some();
    let restricted: Vec<&GrantRules> = if held.iter().any(|h| h.rules.is_empty()) {
        Vec::new()
    } else {
        held.iter().map(|h| &h.rules).collect()
    };
    let mut context = RunContext::default();
    if let Some((first, rest)) = restricted.split_first() {
        context.saved_only = restricted.iter().all(|r| r.saved_only);
        for (parameter, attribute) in &first.locked {
            if rest
                .iter()
                .all(|r| r.locked.get(parameter) == Some(attribute))
            {
                let value = attributes.get(attribute).ok_or_else(|| {
                    Error::refused(
                        codes::ACCESS_MISSING_ATTRIBUTE,
                        format!(
                            "your access to this datasource binds the parameter {parameter:?} to your attribute {attribute:?}, which your account does not have; ask an admin to set it"
                        ),
                    )
                })?;
                context.locked.insert(parameter.clone(), value.clone());
            }
        }
        for table in first.row_filters.keys() {
            if !restricted.iter().all(|r| r.row_filters.contains_key(table)) {
                continue;
            }
            for rules in &restricted {
                if let Some(expression) = rules.row_filters.get(table) {
                    context
                        .restrictions
                        .row_filters
                        .push(row_filter(table, expression, attributes)?);
                }
            }
        }
    }
    if let Some(key) = passing {
        let key = key.as_deref().ok_or_else(|| {
            Error::conflict(
                codes::DATASOURCE_SETTINGS_KEY,
                "this datasource passes attributes on as settings but has no key to sign them; an admin makes one (POST /datasources/{id}/settings-key) and installs it in the database",
            )
        })?;
        let settings = &mut context.restrictions.settings;
        for (name, value) in attributes {
            let text = setting_text(value);
            settings.insert(
                format!("{SIGNATURE_PREFIX}{name}"),
                setting_signature(key, name, &text)?,
            );
            settings.insert(format!("{SETTING_PREFIX}{name}"), text);
        }
    }
    let restricted = context.saved_only
        || !context.locked.is_empty()
        || !context.restrictions.is_empty()
        || settings;
    if restricted {
        context.key = digest(&context, settings)?;
    }
    Ok(context)
}

/// Binds a row filter's `{{ attribute }}` placeholders (row filters are
/// for files datasources, whose dialect is DataFusion's).
fn row_filter(table: &str, expression: &str, attributes: &Attributes) -> Result<RowFilter> {
    let template = Template::parse(expression, Dialect::DataFusion)?;
    let mut defs = Vec::new();
    let mut values = loupe_core::ParameterValues::new();
    for name in template.parameter_names() {
        let value = attributes.get(name).ok_or_else(|| {
            Error::refused(
                codes::ACCESS_MISSING_ATTRIBUTE,
                format!(
                    "your access to this datasource filters the table {table:?} by your attribute {name:?}, which your account does not have; ask an admin to set it"
                ),
            )
        })?;
        defs.push(attribute_def(name, value));
        values.insert(name.to_owned(), value.clone());
    }
    let bound = template.bind(&defs, &values)?;
    Ok(RowFilter {
        table: table.to_owned(),
        predicate: bound.sql,
        params: bound.params,
    })
}

/// The digest of what a restricted run depends on.
fn digest(context: &RunContext, settings: bool) -> Result<String> {
    let described = serde_json::json!({
        "settings": settings,
        "saved_only": context.saved_only,
        "locked": context.locked,
        "restrictions": context.restrictions,
    });
    let text =
        serde_json::to_string(&described).map_err(|e| Error::internal_from("a run context", e))?;
    let hash = Sha256::digest(text.as_bytes());
    Ok(hash.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(rules: Json) -> Held {
        Held {
            access: Access::Run,
            rules: serde_json::from_value(rules).unwrap_or_default(),
        }
    }

    fn attributes(value: Json) -> Attributes {
        serde_json::from_value(value).unwrap_or_default()
    }

    #[test]
    fn a_grant_without_rules_lifts_the_others() {
        let grants = [held(json!({"saved_only": true})), held(json!({}))];
        let context = resolve(&grants, &Attributes::new(), &None).unwrap_or_default();
        assert_eq!(context, RunContext::default());
        assert!(context.key.is_empty());
    }

    #[test]
    fn locked_parameters_take_the_callers_attribute() {
        let grants = [held(json!({"locked": {"region": "home"}}))];
        let eu = resolve(&grants, &attributes(json!({"home": "EU"})), &None).unwrap_or_default();
        let us = resolve(&grants, &attributes(json!({"home": "US"})), &None).unwrap_or_default();
        assert_eq!(eu.locked.get("region"), Some(&json!("EU")));
        assert!(!eu.key.is_empty());
        assert_ne!(eu.key, us.key, "contexts of different values differ");
    }

    #[test]
    fn a_missing_attribute_is_refused_by_name() {
        let grants = [held(json!({"locked": {"region": "home"}}))];
        match resolve(&grants, &Attributes::new(), &None) {
            Err(e) => {
                assert_eq!(e.code(), codes::ACCESS_MISSING_ATTRIBUTE.as_str());
                assert!(e.to_string().contains("\"home\""), "{e}");
            }
            Ok(context) => panic!("resolved without the attribute: {context:?}"),
        }
    }

    #[test]
    fn restricted_grants_combine_to_what_each_allows() {
        let grants = [
            held(
                json!({"saved_only": true, "locked": {"region": "home", "team": "team"},
                        "row_filters": {"sales": "region = {{ home }}", "costs": "team = {{ team }}"}}),
            ),
            held(json!({"locked": {"region": "home"},
                        "row_filters": {"sales": "country = {{ country }}"}})),
        ];
        let who = attributes(json!({"home": "EU", "team": 7, "country": "FR"}));
        let context = resolve(&grants, &who, &None).unwrap_or_default();
        // Saved only in one grant, not the other: ad-hoc SQL is allowed.
        assert!(!context.saved_only);
        // Locked in both: locked; `team` in one only: free.
        assert_eq!(context.locked.keys().collect::<Vec<_>>(), ["region"]);
        // `sales` filtered by both: either filter lets a row through;
        // `costs` left unfiltered by the second grant.
        let tables: Vec<&str> = context
            .restrictions
            .row_filters
            .iter()
            .map(|f| f.table.as_str())
            .collect();
        assert_eq!(tables, ["sales", "sales"]);
        let first = &context.restrictions.row_filters[0];
        assert_eq!(first.predicate, "region = $1");
        assert_eq!(first.params[0].value, loupe_core::Value::Text("EU".into()));
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn settings_are_signed_and_refused_without_a_key() {
        let who = attributes(json!({"region": "EU"}));
        let context = resolve(&[], &who, &Some(Some(KEY.to_vec()))).unwrap_or_default();
        let expected = setting_signature(KEY, "region", "EU").unwrap_or_default();
        assert_eq!(
            context.restrictions.settings.get("loupe.signature.region"),
            Some(&expected)
        );
        assert_ne!(
            expected,
            setting_signature(KEY, "region", "US").unwrap_or_default()
        );
        match resolve(&[], &who, &Some(None)) {
            Err(e) => assert_eq!(e.code(), codes::DATASOURCE_SETTINGS_KEY.as_str()),
            Ok(context) => panic!("settings without a key: {context:?}"),
        }
    }

    #[test]
    fn settings_carry_every_attribute_and_always_restrict() {
        let who = attributes(json!({"region": "EU", "levels": [1, 2]}));
        let context = resolve(&[], &who, &Some(Some(KEY.to_vec()))).unwrap_or_default();
        assert_eq!(
            context.restrictions.settings.get("loupe.user.region"),
            Some(&"EU".to_owned())
        );
        assert_eq!(
            context.restrictions.settings.get("loupe.user.levels"),
            Some(&"[1,2]".to_owned())
        );
        // Even a caller without attributes is restricted on such a
        // datasource: the database's policies decide what they see.
        let nobody =
            resolve(&[], &Attributes::new(), &Some(Some(KEY.to_vec()))).unwrap_or_default();
        assert!(!nobody.key.is_empty());
        assert_ne!(nobody.key, context.key);
    }

    #[test]
    fn attributes_are_checked_by_field() {
        let mut v = Validator::new();
        validate_attributes(
            &mut v,
            &attributes(
                json!({"ok": "EU", "bad name": 1, "nested": {"a": 1}, "mixed": [1, "a"], "empty": []}),
            ),
        );
        let fields = v.fields();
        for field in [
            "attributes.bad name",
            "attributes.nested",
            "attributes.mixed",
            "attributes.empty",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
        }
        assert!(!fields.iter().any(|f| f == "attributes.ok"), "{fields:?}");
    }
}
