//! What each list accepts: page sizes, and per resource the fields it
//! sorts by, its default sort and its filters. The services apply these
//! [`ListSpec`]s; hosts read them to document and check list parameters
//! (the server's `sort` enums and filter parameters, tied back here by a
//! test), so a new sort field or filter is added in one place.
//!
//! Each spec is defined next to the queries that use it (its columns are
//! those queries' aliases); this module is where everyone else finds them.

pub use crate::meta::{DEFAULT_LIMIT, ListSpec, MAX_LIMIT, MAX_OFFSET};

/// `GET /alerts`.
pub const ALERTS: &ListSpec = &crate::alerts::SPEC;
/// `GET /deliveries`.
pub const DELIVERIES: &ListSpec = &crate::deliveries::SPEC;
/// `GET /destinations`.
pub const DESTINATIONS: &ListSpec = &crate::destinations::SPEC;
/// `GET /subscriptions`.
pub const SUBSCRIPTIONS: &ListSpec = &crate::subscriptions::SPEC;
/// `GET /audit-events`.
pub const AUDIT_EVENTS: &ListSpec = &crate::audit::SPEC;
/// `GET /canvases`.
pub const CANVASES: &ListSpec = &crate::canvases::SPEC;
/// `GET /dashboards`.
pub const DASHBOARDS: &ListSpec = &crate::dashboards::SPEC;
/// `GET /datasources`.
pub const DATASOURCES: &ListSpec = &crate::datasources::SPEC;
/// `GET /groups`.
pub const GROUPS: &ListSpec = &crate::groups::SPEC;
/// `GET /queries`.
pub const QUERIES: &ListSpec = &crate::queries::SPEC;
/// `GET /runs`.
pub const RUNS: &ListSpec = &crate::runs::SPEC;
/// `GET /schedules`.
pub const SCHEDULES: &ListSpec = &crate::schedules::SPEC;
/// `GET /users`.
pub const USERS: &ListSpec = &crate::users::SPEC;
/// `GET /visualizations`.
pub const VISUALIZATIONS: &ListSpec = &crate::visualizations::SPEC;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&ListSpec; 14] = [
        ALERTS,
        DELIVERIES,
        DESTINATIONS,
        SUBSCRIPTIONS,
        AUDIT_EVENTS,
        CANVASES,
        DASHBOARDS,
        DATASOURCES,
        GROUPS,
        QUERIES,
        RUNS,
        SCHEDULES,
        USERS,
        VISUALIZATIONS,
    ];

    #[test]
    fn every_default_sort_is_one_the_list_accepts() {
        for spec in ALL {
            let values: Vec<String> = spec.sort_values().collect();
            assert!(values.iter().any(|v| v == spec.default_sort()), "{spec:?}");
        }
    }

    #[test]
    fn sort_values_go_both_ways() {
        let values: Vec<String> = GROUPS.sort_values().collect();
        assert_eq!(values, ["name", "-name", "created_at", "-created_at"]);
    }
}
