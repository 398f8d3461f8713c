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
//! rules lifts the rules of the others; among restricted grants, a query
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
                "{name:?} is not a {what} name: letters, digits and underscores, starting with a letter, at most {} characters",
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
        let settings = with_settings.get(id).copied().unwrap_or(false);
        let key = match resolve(held, &actor.attributes, settings) {
            Ok(context) if context.key.is_empty() => None,
            Ok(context) => Some(context.key),
            Err(e) if e.code() == codes::ACCESS_MISSING_ATTRIBUTE.as_str() => {
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
    rules: GrantRules,
}

/// The caller's context on `datasource_id`, from their grants' rules,
/// their attributes, and whether the datasource passes attributes on.
pub(crate) async fn context(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
) -> Result<RunContext> {
    let ids = [datasource_id.to_owned()];
    let mut contexts = contexts(shared, actor, &ids).await?;
    Ok(contexts.remove(datasource_id).unwrap_or_default())
}

/// The caller's contexts on each of `datasource_ids` (unrestricted ones
/// included, with an empty key).
pub(crate) async fn contexts(
    shared: &Shared,
    actor: &Actor,
    datasource_ids: &[String],
) -> Result<HashMap<String, RunContext>> {
    let grants = if actor.is_admin() {
        HashMap::new()
    } else {
        held_grants(shared, actor, datasource_ids).await?
    };
    let with_settings = user_settings(shared, datasource_ids).await?;
    let mut out = HashMap::new();
    for id in datasource_ids {
        let held = grants.get(id).map(Vec::as_slice).unwrap_or_default();
        let settings = with_settings.get(id).copied().unwrap_or(false);
        out.insert(id.clone(), resolve(held, &actor.attributes, settings)?);
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
            if Access::parse(&col::<String>(row, "access")?).is_none() {
                continue;
            }
            let text: String = col(row, "rules")?;
            let rules = serde_json::from_str(&text)
                .map_err(|e| Error::internal_from("a grant's stored rules", e))?;
            out.entry(id.clone()).or_default().push(Held { rules });
        }
    }
    Ok(out)
}

/// Which of the datasources pass attributes on as settings.
async fn user_settings(
    shared: &Shared,
    datasource_ids: &[String],
) -> Result<HashMap<String, bool>> {
    let select = SqlBuilder::new("SELECT id, user_settings FROM datasources WHERE id");
    let rows = Children::load(&shared.store, select, datasource_ids, "", "id").await?;
    let mut out = HashMap::new();
    for id in datasource_ids {
        for row in rows.get(id) {
            out.insert(id.clone(), crate::meta::flag(row, "user_settings")?);
        }
    }
    Ok(out)
}

/// Merges the grants' rules (what each group allows) and binds them to
/// the caller's attributes.
fn resolve(held: &[Held], attributes: &Attributes, settings: bool) -> Result<RunContext> {
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
    if settings {
        for (name, value) in attributes {
            context
                .restrictions
                .settings
                .insert(format!("{SETTING_PREFIX}{name}"), setting_text(value));
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
