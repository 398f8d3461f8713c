//! The catalogue of stable error codes: what clients match on (the `code`
//! of an API problem, a run's `error_code`). Every error Loupe raises, in
//! any crate, names its code with one of these constants, so a code is
//! spelled once and the whole set can be listed ([`ALL`]). A code never
//! changes meaning; what a host does with an error follows its
//! [`ErrorKind`](crate::ErrorKind), never its code.
//!
//! Codes are `family.reason`, lowercase. Field-level codes (the `code` of
//! one invalid field of an input) are in [`field`].

use std::fmt;

/// A stable error code from this catalogue. Only the catalogue makes
/// codes, so an error cannot carry a code that is not listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(&'static str);

impl Code {
    /// The code as clients see it, such as `conflict.revision`.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// Declares the codes and the list of them all.
macro_rules! catalogue {
    ($($(#[doc = $doc:literal])+ $name:ident = $code:literal;)+) => {
        $($(#[doc = $doc])+ pub const $name: Code = Code($code);)+

        /// Every code of the catalogue.
        pub const ALL: &[Code] = &[$($name),+];
    };
}

catalogue! {
    /// The caller's role does not allow this.
    ACCESS_ROLE = "access.role";
    /// None of the caller's groups has access to the datasource.
    ACCESS_NO_GRANT = "access.no_grant";
    /// The caller's groups may view results of the datasource, not run on it.
    ACCESS_VIEW_ONLY = "access.view_only";
    /// The API key's scopes do not allow this.
    ACCESS_SCOPE = "access.scope";
    /// Only the owner (or an admin) may do this.
    ACCESS_OWNER = "access.owner";
    /// API keys cannot manage API keys.
    ACCESS_KEY = "access.key";
    /// A value was given for a parameter that the caller's grant locks to
    /// one of their attributes.
    ACCESS_LOCKED_PARAMETER = "access.locked_parameter";
    /// The caller's grant allows saved queries only, not ad-hoc SQL.
    ACCESS_SAVED_ONLY = "access.saved_only";
    /// The caller's grant needs a user attribute they do not have.
    ACCESS_MISSING_ATTRIBUTE = "access.missing_attribute";

    /// No credentials were sent.
    AUTH_MISSING = "auth.missing";
    /// The email or password is wrong.
    AUTH_INVALID_CREDENTIALS = "auth.invalid_credentials";
    /// The account is disabled.
    AUTH_DISABLED = "auth.disabled";
    /// The caller's organization is disabled by the instance's operator.
    AUTH_ORG_DISABLED = "auth.org_disabled";
    /// The user no longer exists.
    AUTH_UNKNOWN_USER = "auth.unknown_user";
    /// The access token is not valid.
    AUTH_INVALID_TOKEN = "auth.invalid_token";
    /// The access token has expired.
    AUTH_TOKEN_EXPIRED = "auth.token_expired";
    /// The session behind the token has ended.
    AUTH_SESSION_ENDED = "auth.session_ended";
    /// The refresh token is not valid.
    AUTH_INVALID_REFRESH_TOKEN = "auth.invalid_refresh_token";
    /// A rotated refresh token was presented again; its family is revoked.
    AUTH_REFRESH_TOKEN_REUSED = "auth.refresh_token_reused";
    /// The API key is not valid.
    AUTH_INVALID_KEY = "auth.invalid_key";

    /// A datasource, store or limit setting is invalid.
    CONFIG_INVALID = "config.invalid";

    /// An object with the same name already exists.
    CONFLICT_EXISTS = "conflict.exists";
    /// The object is referenced by others, or refers to one that is gone.
    CONFLICT_IN_USE = "conflict.in_use";
    /// The object changed since the caller read it (a stale revision).
    CONFLICT_REVISION = "conflict.revision";
    /// The run has already finished.
    CONFLICT_FINISHED = "conflict.finished";
    /// The datasource is paused.
    CONFLICT_PAUSED = "conflict.paused";
    /// The organization's last admin cannot be removed or demoted.
    CONFLICT_LAST_ADMIN = "conflict.last_admin";
    /// A built-in object (the `everyone` group) cannot be changed this way.
    CONFLICT_BUILTIN = "conflict.builtin";
    /// The dashboard slug is taken in the organization.
    DASHBOARD_SLUG_TAKEN = "dashboard.slug_taken";

    /// No connector is compiled in for the kind or URL scheme.
    DATASOURCE_UNKNOWN_KIND = "datasource.unknown_kind";
    /// The datasource's server could not be reached.
    DATASOURCE_UNREACHABLE = "datasource.unreachable";
    /// The datasource is not available now.
    DATASOURCE_UNAVAILABLE = "datasource.unavailable";
    /// The datasource refused the connection.
    DATASOURCE_CONNECTION_REFUSED = "datasource.connection_refused";
    /// The datasource refused the credentials.
    DATASOURCE_AUTH_FAILED = "datasource.auth_failed";
    /// The datasource's database does not exist.
    DATASOURCE_DATABASE_MISSING = "datasource.database_missing";
    /// TLS with the datasource failed.
    DATASOURCE_TLS_FAILED = "datasource.tls_failed";
    /// Connecting to the datasource took too long.
    DATASOURCE_CONNECT_TIMEOUT = "datasource.connect_timeout";
    /// Every connection of the datasource's pool is busy.
    DATASOURCE_POOL_EXHAUSTED = "datasource.pool_exhausted";
    /// The connection to the datasource was lost.
    DATASOURCE_CONNECTION_LOST = "datasource.connection_lost";
    /// The datasource refused a write: it is read-only.
    DATASOURCE_READ_ONLY = "datasource.read_only";
    /// The datasource's database role may do more than read (a superuser,
    /// server file or program access, signalling other sessions...).
    DATASOURCE_PRIVILEGED_ROLE = "datasource.privileged_role";

    /// A files datasource refused a write or DDL statement.
    FILES_READ_ONLY = "files.read_only";
    /// A path outside the datasource's root.
    FILES_OUTSIDE_ROOT = "files.outside_root";
    /// A directory entry the files datasource will not read.
    FILES_REFUSED_ENTRY = "files.refused_entry";
    /// A table function that reads files by path.
    FILES_TABLE_FUNCTION = "files.table_function";
    /// A file could not be read.
    FILES_UNREADABLE = "files.unreadable";

    /// The query template is malformed: an unterminated string, comment
    /// or placeholder.
    TEMPLATE_UNTERMINATED = "template.unterminated";
    /// A placeholder's name is not valid.
    TEMPLATE_INVALID_PLACEHOLDER = "template.invalid_placeholder";
    /// A placeholder inside a string literal.
    TEMPLATE_PLACEHOLDER_IN_LITERAL = "template.placeholder_in_literal";
    /// A placeholder inside a comment.
    TEMPLATE_PLACEHOLDER_IN_COMMENT = "template.placeholder_in_comment";
    /// A positional parameter (`$1`, `?`) written in the template.
    TEMPLATE_POSITIONAL_PARAMETER = "template.positional_parameter";
    /// The statement is not in the datasource's dialect.
    STATEMENT_DIALECT = "statement.dialect";

    /// A parameter is not defined.
    PARAM_UNDEFINED = "param.undefined";
    /// A value was given for no parameter.
    PARAM_UNKNOWN = "param.unknown";
    /// A required parameter has no value.
    PARAM_MISSING = "param.missing";
    /// A value is not of the parameter's type.
    PARAM_WRONG_TYPE = "param.wrong_type";
    /// A value is not one of the parameter's options.
    PARAM_NOT_AN_OPTION = "param.not_an_option";
    /// A list parameter was given no value.
    PARAM_EMPTY_LIST = "param.empty_list";
    /// A list parameter was given too many values.
    PARAM_TOO_MANY_VALUES = "param.too_many_values";
    /// A parameter is defined twice.
    PARAM_DUPLICATE = "param.duplicate";
    /// A parameter definition is not valid.
    PARAM_INVALID_DEFINITION = "param.invalid_definition";
    /// A field of a parameter value (a range's end) is not valid.
    PARAM_INVALID_FIELD = "param.invalid_field";

    /// The datasource ran the statement and reported an error.
    QUERY_FAILED = "query.failed";
    /// The datasource reported an error that a retry may get past.
    QUERY_RETRIABLE = "query.retriable";
    /// The statement ran longer than its time limit.
    QUERY_TIMEOUT = "query.timeout";
    /// The statement was cancelled.
    QUERY_CANCELLED = "query.cancelled";

    /// The run has not finished yet.
    RUN_NOT_FINISHED = "run.not_finished";
    /// The run failed, so it has no result.
    RUN_FAILED = "run.failed";
    /// The run was cancelled.
    RUN_CANCELLED = "run.cancelled";
    /// The run was given up after its runner stopped too often.
    RUN_ABANDONED = "run.abandoned";
    /// The user has as many queued runs as a user may have; a start that
    /// would queue another waits until some finish.
    RUN_TOO_MANY_QUEUED = "run.too_many_queued";
    /// The user has as many enabled schedules as a user may have.
    SCHEDULE_TOO_MANY_ENABLED = "schedule.too_many_enabled";

    /// A signed link was changed or has expired.
    LINK_INVALID = "link.invalid";
    /// A datasource was asked to enforce a restriction (row filters,
    /// transaction settings) it cannot: the statement does not run.
    DATASOURCE_RESTRICTIONS_UNSUPPORTED = "datasource.restrictions_unsupported";
    /// A datasource passes attributes on as settings but has no key to
    /// sign them with.
    DATASOURCE_SETTINGS_KEY = "datasource.settings_key";
    /// A public link is unknown, revoked or expired.
    SHARE_INVALID = "share.invalid";
    /// An embedding token is malformed, or its signature does not match.
    EMBED_INVALID = "embed.invalid";
    /// An embedding token has expired, or lives longer than allowed.
    EMBED_EXPIRED = "embed.expired";
    /// An embedding token is signed with a secret that was rotated out.
    EMBED_RETIRED_SECRET = "embed.retired_secret";
    /// A visualization cannot be drawn from its query's result (a column
    /// its options name is missing, or is not a number).
    CHART_UNDRAWABLE = "chart.undrawable";

    /// The stored result does not exist.
    RESULT_NOT_FOUND = "result.not_found";
    /// A saved query has no stored result for these parameter values
    /// (under the caller's restrictions) yet.
    RESULT_NONE_YET = "result.none_yet";
    /// A result with this id is stored already.
    RESULTS_EXISTS = "results.exists";
    /// A result id is not valid.
    RESULTS_INVALID_ID = "results.invalid_id";
    /// A page asks for more rows than a page may have.
    RESULTS_PAGE_TOO_LARGE = "results.page_too_large";
    /// A page starts past the result's end.
    RESULTS_OUT_OF_RANGE = "results.out_of_range";
    /// A column asked for is not in the result.
    RESULTS_UNKNOWN_COLUMN = "results.unknown_column";
    /// A column is asked for twice.
    RESULTS_DUPLICATE_COLUMN = "results.duplicate_column";
    /// A column's type has no form a result can be stored in (a union).
    RESULTS_UNSUPPORTED_TYPE = "results.unsupported_type";
    /// A result has more columns than the format asked for holds (an
    /// XLSX sheet: 16,384).
    RESULTS_TOO_WIDE = "results.too_wide";
    /// A table does not exist.
    TABLE_NOT_FOUND = "table.not_found";
    /// A column does not exist.
    COLUMN_NOT_FOUND = "column.not_found";
    /// Something asked for does not exist.
    NOT_FOUND = "not_found";

    /// Input failed validation; each invalid field is listed.
    VALIDATION_FAILED = "validation.failed";
    /// The value breaks a rule of the metadata store.
    METADATA_CONSTRAINT = "metadata.constraint";
    /// The metadata database cannot be opened.
    METADATA_UNREACHABLE = "metadata.unreachable";
    /// The metadata database is not available.
    METADATA_UNAVAILABLE = "metadata.unavailable";
    /// The metadata schema has migrations this build does not know: a newer
    /// release migrated it.
    METADATA_SCHEMA_NEWER = "metadata.schema_newer";
    /// The metadata schema lacks migrations, and this process may not apply
    /// them (`migrate = never`).
    METADATA_SCHEMA_OUTDATED = "metadata.schema_outdated";
    /// A migration stopped part-way and left the schema marked failed.
    METADATA_SCHEMA_DIRTY = "metadata.schema_dirty";
    /// More migrations were asked to be reverted than are applied.
    METADATA_REVERT_TOO_FAR = "metadata.revert_too_far";
    /// The result store failed.
    STORE_FAILED = "store.failed";
    /// Reading or writing a file or stream failed.
    IO_FAILED = "io.failed";
    /// A bug or unexpected state in Loupe.
    INTERNAL = "internal";

    /// The request is malformed.
    REQUEST_INVALID = "request.invalid";
    /// The request body is larger than the server accepts.
    REQUEST_TOO_LARGE = "request.too_large";
    /// The body is not `application/json`.
    REQUEST_UNSUPPORTED_MEDIA_TYPE = "request.unsupported_media_type";
    /// The request is not valid HTTP (its request line, a header, or its
    /// `Content-Length`), so it was refused before routing.
    REQUEST_MALFORMED = "request.malformed";
    /// The request's headers are larger than the server accepts.
    REQUEST_HEADERS_TOO_LARGE = "request.headers_too_large";
    /// The request's URI is longer than the server accepts.
    REQUEST_URI_TOO_LONG = "request.uri_too_long";
    /// A browser on an origin the server does not allow (`cors.allowed_origins`).
    REQUEST_ORIGIN_NOT_ALLOWED = "request.origin_not_allowed";
    /// A browser's preflight asked to send a method or request headers
    /// the API does not take from other origins.
    REQUEST_PREFLIGHT_REFUSED = "request.preflight_refused";
    /// An update without `If-Match`.
    PRECONDITION_REQUIRED = "precondition.required";
    /// No such route.
    ROUTE_NOT_FOUND = "route.not_found";
    /// The route does not accept the method.
    ROUTE_METHOD_NOT_ALLOWED = "route.method_not_allowed";
    /// Too many requests.
    RATE_LIMITED = "rate_limited";
    /// First-start set-up is closed, or the token is not the printed one.
    SETUP_CLOSED = "setup.closed";
}

/// The codes of one invalid field of an input (`FieldError::code`).
pub mod field {
    use super::Code;

    catalogue! {
        /// The field is required and was empty or missing.
        REQUIRED = "required";
        /// The text is shorter than its minimum.
        TOO_SHORT = "too_short";
        /// The text or list is longer than its maximum.
        TOO_LONG = "too_long";
        /// The list has too many items.
        TOO_MANY = "too_many";
        /// The text holds control characters.
        CONTROL_CHARACTERS = "control_characters";
        /// The number or time is out of its range.
        OUT_OF_RANGE = "out_of_range";
        /// The value is not valid for the field.
        INVALID = "invalid";
        /// A sort names no known field.
        UNKNOWN_FIELD = "unknown_field";
        /// A filter names no known filter.
        UNKNOWN_FILTER = "unknown_filter";
        /// The value appears twice where it must be unique.
        DUPLICATE = "duplicate";
        /// The name or slug is already taken.
        TAKEN = "taken";
        /// The object named does not exist (or is not visible).
        NOT_FOUND = "not_found";
        /// The value names something unknown (a scope, a kind).
        UNKNOWN = "unknown";
        /// The field cannot change once set.
        IMMUTABLE = "immutable";
        /// A role above the caller's own.
        ABOVE_ROLE = "above_role";
        /// A time that has already passed.
        IN_THE_PAST = "in_the_past";
        /// A time too far ahead.
        TOO_FAR = "too_far";
        /// The password is too weak.
        WEAK_PASSWORD = "weak_password";
        /// The current password given is not the account's.
        WRONG_PASSWORD = "wrong_password";
        /// Not an email address.
        INVALID_EMAIL = "invalid_email";
        /// Not an identifier.
        INVALID_ID = "invalid_id";
        /// Not a valid slug.
        INVALID_SLUG = "invalid_slug";
        /// Not a valid tag.
        INVALID_TAG = "invalid_tag";
        /// Not a valid time.
        INVALID_TIME = "invalid_time";
        /// Not a valid option.
        INVALID_OPTION = "invalid_option";
        /// A value for a parameter whose value whoever shared the page
        /// fixed: viewers choose only among the values they were offered.
        NOT_CHOOSABLE = "not_choosable";
        /// Not a cron expression.
        INVALID_CRON = "invalid_cron";
        /// Not a time zone.
        INVALID_TIMEZONE = "invalid_timezone";
        /// Not a boolean flag.
        INVALID_FLAG = "invalid_flag";
        /// A schedule that would never fire.
        NEVER_FIRES = "never_fires";
        /// A schedule that would fire more often than the deployment allows.
        TOO_FREQUENT = "too_frequent";
        /// A widget outside the dashboard's grid.
        OUT_OF_GRID = "out_of_grid";
        /// Widgets that overlap.
        OVERLAP = "overlap";
        /// An edge from a node to itself.
        SELF_LOOP = "self_loop";
        /// An edge to a node the canvas does not have.
        UNKNOWN_NODE = "unknown_node";
        /// A parameter mapping to a parameter the query does not have.
        UNKNOWN_PARAMETER = "unknown_parameter";
        /// A placeholder the query's parameters do not define.
        UNDEFINED_PARAMETER = "undefined_parameter";
        /// A value whose type does not match.
        TYPE_MISMATCH = "type_mismatch";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        for list in [ALL, field::ALL] {
            let mut seen = std::collections::BTreeSet::new();
            for code in list {
                assert!(seen.insert(code), "{code} is listed twice");
                assert!(
                    code.as_str()
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'),
                    "{code} is not lowercase family.reason"
                );
            }
        }
    }
}
