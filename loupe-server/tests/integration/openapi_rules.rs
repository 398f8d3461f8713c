//! The OpenAPI document is a copy of the services' rules: what each list
//! sorts and filters by, page sizes, and how long each field may be. These
//! tests read the served document and compare it with the definitions
//! (`loupe_services::lists`, `loupe_services::limits`, the engine's page
//! size), so a copy that drifts from its rule fails here.

use std::collections::BTreeSet;

use loupe_core::{DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS};
use loupe_services::limits;
use loupe_services::lists::{self, DEFAULT_LIMIT, ListSpec, MAX_LIMIT, MAX_OFFSET};
use serde_json::{Value, json};

use crate::harness::Harness;

/// Every list of the API and the spec its service applies.
const LISTS: [(&str, &str, &ListSpec); 14] = [
    ("/alerts", "listAlerts", lists::ALERTS),
    ("/audit-events", "listAuditEvents", lists::AUDIT_EVENTS),
    ("/canvases", "listCanvases", lists::CANVASES),
    ("/dashboards", "listDashboards", lists::DASHBOARDS),
    ("/datasources", "listDatasources", lists::DATASOURCES),
    ("/deliveries", "listDeliveries", lists::DELIVERIES),
    ("/destinations", "listDestinations", lists::DESTINATIONS),
    ("/groups", "listGroups", lists::GROUPS),
    ("/queries", "listQueries", lists::QUERIES),
    ("/runs", "listRuns", lists::RUNS),
    ("/schedules", "listSchedules", lists::SCHEDULES),
    ("/subscriptions", "listSubscriptions", lists::SUBSCRIPTIONS),
    ("/users", "listUsers", lists::USERS),
    (
        "/visualizations",
        "listVisualizations",
        lists::VISUALIZATIONS,
    ),
];

/// Every bounded text field of a request body: schema, property, and the
/// services' shortest and longest (a shortest of 0 is not documented).
const FIELDS: &[(&str, &str, usize, usize)] = &[
    ("AlertInputDto", "name", 1, limits::NAME),
    ("DestinationInputDto", "name", 1, limits::NAME),
    ("SubscriptionInputDto", "name", 1, limits::NAME),
    ("CanvasInputDto", "name", 1, limits::NAME),
    ("DashboardInputDto", "name", 1, limits::NAME),
    ("DatasourceUpdateDto", "name", 1, limits::NAME),
    ("LoginDto", "email", 0, limits::EMAIL),
    ("LoginDto", "organization", 0, limits::SLUG),
    ("LoginDto", "password", 0, limits::PASSWORD),
    ("NewApiKeyDto", "name", 1, limits::NAME),
    ("NewDatasourceDto", "kind", 1, limits::KIND),
    ("NewDatasourceDto", "name", 1, limits::NAME),
    ("NewGroupDto", "name", 1, limits::NAME),
    ("NewQueryDto", "description", 0, limits::DESCRIPTION),
    ("NewQueryDto", "name", 1, limits::NAME),
    ("NewQueryDto", "sql", 1, limits::SQL),
    ("NewRunDto", "sql", 1, limits::SQL),
    ("NewUserDto", "email", limits::EMAIL_MIN, limits::EMAIL),
    ("NewUserDto", "name", 1, limits::NAME),
    ("NewUserDto", "password", 0, limits::PASSWORD),
    ("OrganizationRenameDto", "name", 1, limits::NAME),
    ("ParameterDto", "name", 1, limits::PARAMETER_NAME),
    ("PasswordChangeDto", "current_password", 0, limits::PASSWORD),
    ("PasswordChangeDto", "new_password", 0, limits::PASSWORD),
    ("QueryUpdateDto", "description", 0, limits::DESCRIPTION),
    ("QueryUpdateDto", "name", 1, limits::NAME),
    ("QueryUpdateDto", "sql", 1, limits::SQL),
    ("RedeemDto", "password", 0, limits::PASSWORD),
    ("RedeemDto", "token", 0, limits::TOKEN),
    ("RefreshDto", "refresh_token", 0, limits::TOKEN),
    ("SetupDto", "email", limits::EMAIL_MIN, limits::EMAIL),
    ("SetupDto", "name", 1, limits::NAME),
    ("SetupDto", "org_name", 1, limits::NAME),
    ("SetupDto", "password", 0, limits::PASSWORD),
    ("SetupDto", "token", 1, limits::TOKEN),
    ("UserUpdateDto", "name", 1, limits::NAME),
    ("VisualizationInputDto", "name", 1, limits::NAME),
];

async fn document() -> Value {
    let h = Harness::bare(|_| {}).await;
    h.anonymous().get("/openapi.json").await.expect(200).body
}

fn query_param<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .and_then(|params| {
            params
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == name)
        })
        .unwrap_or_else(|| panic!("no query parameter {name}"))
}

fn number(schema: &Value, key: &str) -> u64 {
    let n = schema[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {schema}"));
    n as u64
}

#[tokio::test]
async fn every_list_documents_the_sorts_filters_and_page_sizes_its_service_applies() {
    let doc = document().await;
    let paths = doc["paths"].as_object().expect("paths");
    // A list the table does not name would go unchecked: every operation
    // with a `sort` is one of them.
    let sorted: BTreeSet<&str> = paths
        .iter()
        .filter(|(_, item)| {
            item["get"]["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "sort"))
        })
        .map(|(path, _)| path.as_str())
        .collect();
    let named: BTreeSet<&str> = LISTS.iter().map(|(path, _, _)| *path).collect();
    assert_eq!(sorted, named, "lists of the document and of this table");

    for (path, id, spec) in LISTS {
        let operation = &doc["paths"][path]["get"];
        assert_eq!(operation["operationId"], id, "{path}");

        let sort = &query_param(operation, "sort")["schema"];
        // The empty value is the default order (`?sort=` from a form).
        let values: Vec<String> = std::iter::once(String::new())
            .chain(spec.sort_values())
            .collect();
        assert_eq!(sort["enum"], json!(values), "{path}: sort values");
        assert_eq!(sort["default"], spec.default_sort(), "{path}: default sort");

        let limit = &query_param(operation, "limit")["schema"];
        assert_eq!(number(limit, "minimum"), 1, "{path}");
        assert_eq!(number(limit, "maximum"), u64::from(MAX_LIMIT), "{path}");
        assert_eq!(limit["default"], DEFAULT_LIMIT, "{path}");
        let offset = &query_param(operation, "offset")["schema"];
        assert_eq!(number(offset, "maximum"), MAX_OFFSET, "{path}");

        let params = operation["parameters"].as_array().expect("parameters");
        let filters: Vec<&Value> = params
            .iter()
            .filter(|p| p["in"] == "query")
            .filter(|p| !["limit", "offset", "sort"].contains(&p["name"].as_str().unwrap_or("")))
            .collect();
        let documented: BTreeSet<&str> =
            filters.iter().filter_map(|p| p["name"].as_str()).collect();
        let applied: BTreeSet<&str> = spec.filter_names().collect();
        assert_eq!(documented, applied, "{path}: filters");
        // Free-text filters (not enums, times or flags) carry the one
        // bound every filter value has.
        for filter in filters {
            let schema = &filter["schema"];
            if schema["type"] == "string" && schema["format"].is_null() && schema["enum"].is_null()
            {
                assert_eq!(
                    number(schema, "maxLength"),
                    limits::FILTER_VALUE as u64,
                    "{path}: {}",
                    filter["name"]
                );
            }
        }
    }
}

#[tokio::test]
async fn result_pages_and_reuse_ages_are_the_engines_and_the_services() {
    let doc = document().await;
    let results = &doc["paths"]["/runs/{id}/results"]["get"];
    let limit = &query_param(results, "limit")["schema"];
    assert_eq!(number(limit, "minimum"), 1);
    assert_eq!(number(limit, "maximum"), MAX_PAGE_ROWS);
    assert_eq!(limit["default"], DEFAULT_PAGE_ROWS);
    let offset = &query_param(results, "offset")["schema"];
    assert_eq!(number(offset, "maximum"), MAX_OFFSET);

    let schemas = &doc["components"]["schemas"];
    for body in ["NewRunDto", "RunQueryDto", "RunDashboardDto"] {
        let age = &schemas[body]["properties"]["max_age_seconds"];
        assert_eq!(number(age, "maximum"), limits::MAX_AGE_SECONDS, "{body}");
    }
    for body in ["NewDatasourceDto", "DatasourceUpdateDto"] {
        let options = &schemas[body]["properties"]["options"];
        assert_eq!(
            number(options, "maxProperties"),
            limits::OPTIONS as u64,
            "{body}"
        );
    }
}

#[tokio::test]
async fn every_bounded_body_field_has_the_services_limit() {
    let doc = document().await;
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (schema, property, min, max) in FIELDS {
        let field = &schemas[*schema]["properties"][*property];
        assert_eq!(
            number(field, "maxLength"),
            *max as u64,
            "{schema}.{property}"
        );
        let documented_min = field["minLength"].as_u64().unwrap_or(0);
        assert_eq!(documented_min, *min as u64, "{schema}.{property} minLength");
    }
    // And no bound without a rule: every maxLength in a body is one of the
    // table's, so a literal added later fails here.
    let listed: BTreeSet<(&str, &str)> = FIELDS.iter().map(|(s, p, _, _)| (*s, *p)).collect();
    for (name, schema) in schemas {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        for (property, field) in properties {
            if !field["maxLength"].is_null() || !field["minLength"].is_null() {
                assert!(
                    listed.contains(&(name.as_str(), property.as_str())),
                    "{name}.{property} has a length bound this table does not tie to a rule"
                );
            }
        }
    }
    // Every body a client sends with a `name` bounds it like the services.
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let Some(target) =
                operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let body = target.trim_start_matches("#/components/schemas/");
            let name = &schemas[body]["properties"]["name"];
            if name["type"] == "string" {
                assert_eq!(
                    number(name, "maxLength"),
                    limits::NAME as u64,
                    "{body}.name"
                );
            }
        }
    }
}
