//! The parameters every list shares (`limit`, `offset`, `sort`) and its
//! filters, with their documented bounds and allowed values read from the
//! services' [`ListSpec`]s; and the page every list answers with.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use loupe_services::limits;
use loupe_services::lists::{self, DEFAULT_LIMIT, ListSpec, MAX_LIMIT, MAX_OFFSET};
use loupe_services::meta::{ListPage, ListRequest};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};
use serde_json::Value;

use super::bounded::{Bounded, Text, integer_schema, scalar_type, whole_number};
use super::common::JsonBody;

/// A list of the services, by its [`ListSpec`].
pub(crate) trait Listed: Send + Sync + 'static {
    /// What the list sorts and filters by.
    const SPEC: &'static ListSpec;
}

macro_rules! listed {
    ($($(#[$doc:meta])* $name:ident => $spec:path;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl Listed for $name {
            const SPEC: &'static ListSpec = $spec;
        }
    )*};
}

listed! {
    /// `GET /alerts`.
    Alerts => lists::ALERTS;
    /// `GET /deliveries`.
    Deliveries => lists::DELIVERIES;
    /// `GET /destinations`.
    Destinations => lists::DESTINATIONS;
    /// `GET /subscriptions`.
    Subscriptions => lists::SUBSCRIPTIONS;
    /// `GET /audit-events`.
    AuditEvents => lists::AUDIT_EVENTS;
    /// `GET /canvases`.
    Canvases => lists::CANVASES;
    /// `GET /dashboards`.
    Dashboards => lists::DASHBOARDS;
    /// `GET /datasources`.
    Datasources => lists::DATASOURCES;
    /// `GET /groups`.
    Groups => lists::GROUPS;
    /// `GET /queries`.
    Queries => lists::QUERIES;
    /// `GET /runs`.
    Runs => lists::RUNS;
    /// `GET /schedules`.
    Schedules => lists::SCHEDULES;
    /// `GET /users`.
    Users => lists::USERS;
    /// `GET /visualizations`.
    Visualizations => lists::VISUALIZATIONS;
}

/// `offset`: rows to skip.
pub(crate) type PageOffset = Bounded<0, MAX_OFFSET>;

/// A text filter (an id, a tag, search text).
pub(crate) type FilterText = Text<0, { limits::FILTER_VALUE }>;

/// `limit`: rows per page, 1 to [`MAX_LIMIT`] ([`DEFAULT_LIMIT`] when
/// absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageLimit(u32);

impl PageLimit {
    fn check(n: u64) -> Result<Self, String> {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .map(Self)
            .ok_or_else(|| format!("{n} is not between 1 and {MAX_LIMIT}"))
    }
}

impl Type for PageLimit {
    scalar_type!("integer_uint32");

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            default: Some(Value::from(DEFAULT_LIMIT)),
            ..integer_schema("uint32", 1, u64::from(MAX_LIMIT))
        }))
    }
}

impl ParseFromParameter for PageLimit {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        whole_number(value)
            .and_then(Self::check)
            .map_err(ParseError::custom)
    }
}

/// `sort`: a field of the list's [`ListSpec`], `-` first for descending.
/// The document lists every value the service accepts; an empty value is
/// no sort (the list's default).
pub(crate) struct Sort<L>(String, PhantomData<fn() -> L>);

impl<L> fmt::Debug for Sort<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Sort").field(&self.0).finish()
    }
}

impl<L: Listed> Sort<L> {
    fn check(value: &str) -> Result<Self, String> {
        if value.is_empty() || L::SPEC.sort_values().any(|v| v == value) {
            Ok(Self(value.to_owned(), PhantomData))
        } else {
            let allowed: Vec<&str> = L::SPEC.sort_fields().collect();
            Err(format!(
                "cannot sort by {value:?}; sort by one of: {}, with `-` first for descending",
                allowed.join(", ")
            ))
        }
    }
}

impl<L: Listed> Type for Sort<L> {
    scalar_type!("string");

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            // The empty value is listed too: `?sort=` (an empty select of
            // a form) is the list's default order, not an error.
            enum_items: std::iter::once(String::new())
                .chain(L::SPEC.sort_values())
                .map(Value::from)
                .collect(),
            default: Some(Value::from(L::SPEC.default_sort())),
            ..MetaSchema::new("string")
        }))
    }
}

impl<L: Listed> ParseFromParameter for Sort<L> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::check(value).map_err(ParseError::custom)
    }
}

/// A value a list's filter parameter takes, written as the services read
/// it.
pub(crate) trait FilterValue {
    /// The value for [`ListRequest::filter`].
    fn filter_value(&self) -> String;
}

impl<const MIN: usize, const MAX: usize> FilterValue for Text<MIN, MAX> {
    fn filter_value(&self) -> String {
        self.as_str().to_owned()
    }
}

impl FilterValue for bool {
    fn filter_value(&self) -> String {
        self.to_string()
    }
}

impl FilterValue for DateTime<Utc> {
    fn filter_value(&self) -> String {
        self.to_rfc3339()
    }
}

/// A filter parameter of a list, given or not: what
/// [`list_request`] takes, so a handler passes its parameters as they
/// came (`("q", &q)`).
pub(crate) trait Filter {
    /// The value, when the parameter was given.
    fn value(&self) -> Option<String>;
}

impl<T: FilterValue> Filter for Query<Option<T>> {
    fn value(&self) -> Option<String> {
        self.0.as_ref().map(FilterValue::filter_value)
    }
}

/// A list request from the shared parameters and the list's filters
/// (those given; an empty one, such as `?q=`, is not given).
pub(crate) fn list_request<L: Listed>(
    limit: Option<PageLimit>,
    offset: Option<PageOffset>,
    sort: Option<Sort<L>>,
    filters: &[(&str, &dyn Filter)],
) -> ListRequest {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let mut request = ListRequest {
        limit: limit.map(|l| l.0),
        offset: offset.map(Bounded::get),
        sort: given(sort.map(|s| s.0)),
        ..ListRequest::default()
    };
    for (name, filter) in filters {
        debug_assert!(
            L::SPEC.filter_names().any(|n| n == *name),
            "{name} is not a filter of this list"
        );
        if let Some(value) = given(filter.value()) {
            request = request.filter(name, value);
        }
    }
    request
}

/// One page of a list.
#[derive(Debug, poem_openapi::Object)]
pub(crate) struct Page<T: JsonBody> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows in the whole list.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

/// A page of a list, each row as `D`.
pub(crate) fn page<T, D: JsonBody + From<T>>(page: ListPage<T>) -> Json<Page<D>> {
    Json(Page {
        items: page.items.into_iter().map(D::from).collect(),
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn sorts_are_the_lists_fields_both_ways_or_nothing() {
        assert!(Sort::<Groups>::parse_from_parameter("-name").is_ok());
        assert!(Sort::<Groups>::parse_from_parameter("").is_ok());
        assert!(Sort::<Groups>::parse_from_parameter("password_hash").is_err());
        assert!(Sort::<Groups>::parse_from_parameter("--name").is_err());
        let MetaSchemaRef::Inline(schema) = Sort::<Groups>::schema_ref() else {
            panic!("inline schema");
        };
        // The empty value is listed first: `?sort=` is the default order.
        assert_eq!(
            schema.enum_items,
            ["", "name", "-name", "created_at", "-created_at"].map(Value::from)
        );
    }

    #[test]
    fn empty_parameters_are_not_given() {
        let text = |v: &str| Query(Some(Text::<0, 10>(v.to_owned())));
        let request = list_request::<Queries>(
            None,
            None,
            Sort::<Queries>::parse_from_parameter("").ok(),
            &[("q", &text(" ")), ("owner", &text("u1"))],
        );
        assert_eq!(request.sort, None);
        assert_eq!(request.filters.len(), 1);
    }

    #[test]
    fn filters_are_written_as_the_services_read_them() {
        let at = Utc.timestamp_opt(1_767_323_045, 0).unwrap();
        let request = list_request::<Schedules>(
            None,
            None,
            None,
            &[
                ("enabled", &Query(Some(false))),
                ("created_after", &Query(Some(at))),
                ("owner", &Query(None::<FilterText>)),
            ],
        );
        let filters: Vec<(&str, &str)> = request
            .filters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            filters,
            [
                ("created_after", "2026-01-02T03:04:05+00:00"),
                ("enabled", "false")
            ]
        );
    }

    #[test]
    fn page_limits_are_the_services() {
        assert!(PageLimit::parse_from_parameter("0").is_err());
        assert!(PageLimit::parse_from_parameter(&MAX_LIMIT.to_string()).is_ok());
        assert!(PageLimit::parse_from_parameter(&(MAX_LIMIT + 1).to_string()).is_err());
    }
}
