//! Errors as `application/problem+json` (RFC 9457): one place maps a core
//! error kind to an HTTP status, and keeps internal detail in the log.

use loupe_core::{Code, Error, ErrorKind, codes};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

tokio::task_local! {
    /// The id of the request being served, for error bodies and logs.
    pub(crate) static REQUEST_ID: String;
}

/// The current request's id, if inside a request.
pub(crate) fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A problem with a request (RFC 9457).
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:loupe:problem:<code>`.
    #[oai(rename = "type")]
    pub type_: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request, and what would fix it.
    pub detail: String,
    /// A stable machine code, such as `validation.failed` or `auth.token_expired`.
    pub code: String,
    /// The request's id (also in the `X-Request-Id` header and the server log).
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    /// One entry per invalid field, for validation failures.
    #[oai(default, skip_serializing_if_is_empty)]
    pub errors: Vec<FieldProblem>,
}

/// What is wrong with one field of the input.
#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    /// The field's path, such as `name` or `widgets[2].w`.
    pub field: String,
    /// A stable code, such as `too_long` or `required`.
    pub code: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// An error response. Every variant is `application/problem+json`.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Credentials are missing, invalid or expired.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The caller may not do this.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// Not found, or not visible to the caller.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The request clashes with the current state.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `If-Match` does not match the current revision; reload and retry.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not `application/json` (or is missing).
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The input is well-formed but not valid; `errors` lists each field.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Updates need `If-Match` with the `ETag` from a GET.
    #[oai(status = 428, content_type = "application/problem+json")]
    PreconditionRequired(Json<Problem>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// A bug in Loupe; the request id names it in the server log.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// A dependency is unavailable or the server is shutting down; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
    /// A time limit was reached.
    #[oai(status = 504, content_type = "application/problem+json")]
    Timeout(Json<Problem>),
}

/// The result of a handler.
pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    /// A problem with a status, a stable code and a detail.
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Self {
        let problem = problem(status, code, detail.into(), Vec::new());
        Self::from_problem(problem, 1)
    }

    /// 429 with a `Retry-After` of `seconds`.
    pub fn too_many(seconds: u64) -> Self {
        let problem = problem(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("too many requests; retry in {seconds} s"),
            Vec::new(),
        );
        Self::TooManyRequests(Json(problem), seconds)
    }

    /// The body of this error.
    pub fn problem(&self) -> &Problem {
        match self {
            Self::BadRequest(p)
            | Self::Unauthorized(p)
            | Self::Forbidden(p)
            | Self::NotFound(p)
            | Self::Conflict(p)
            | Self::PreconditionFailed(p)
            | Self::PayloadTooLarge(p)
            | Self::UnsupportedMediaType(p)
            | Self::Unprocessable(p)
            | Self::PreconditionRequired(p)
            | Self::TooManyRequests(p, _)
            | Self::Internal(p)
            | Self::Unavailable(p)
            | Self::Timeout(p) => p,
        }
    }

    fn from_problem(problem: Problem, retry_after: u64) -> Self {
        let p = Json(problem);
        match p.0.status {
            400 => Self::BadRequest(p),
            401 => Self::Unauthorized(p),
            403 => Self::Forbidden(p),
            404 => Self::NotFound(p),
            409 => Self::Conflict(p),
            412 => Self::PreconditionFailed(p),
            413 => Self::PayloadTooLarge(p),
            415 => Self::UnsupportedMediaType(p),
            422 => Self::Unprocessable(p),
            428 => Self::PreconditionRequired(p),
            429 => Self::TooManyRequests(p, retry_after),
            503 => Self::Unavailable(p),
            504 => Self::Timeout(p),
            _ => Self::Internal(p),
        }
    }
}

/// The HTTP status for a core error: by its kind, never its code.
pub(crate) fn status_of(error: &Error) -> StatusCode {
    match error.kind() {
        ErrorKind::InvalidInput if !error.field_errors().is_empty() => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Stale => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = status_of(&error);
        let code = error.catalogue_code();
        loupe_services::error_tracking::capture_error(&error);
        // Store, I/O and internal errors can carry paths and other
        // internals: the log gets them, the caller gets the request id.
        let detail = if error.hides_detail() || error.kind() == ErrorKind::Internal {
            tracing::error!(code = %code, error = %error, "request failed");
            "the server could not complete the request; the request id names it in the server log"
                .to_owned()
        } else {
            if status.is_server_error() {
                tracing::warn!(code = %code, error = %error, "request failed");
            }
            error.to_string()
        };
        let fields = error
            .field_errors()
            .iter()
            .map(|f| FieldProblem {
                field: f.field.clone(),
                code: f.code.to_string(),
                message: f.message.clone(),
            })
            .collect();
        Self::from_problem(problem(status, code, detail, fields), 1)
    }
}

pub(crate) fn problem(
    status: StatusCode,
    code: Code,
    detail: String,
    errors: Vec<FieldProblem>,
) -> Problem {
    Problem {
        type_: format!("urn:loupe:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        request_id: request_id(),
        errors,
    }
}

/// The error a body without a length ends with when it passes the limit.
pub(crate) const BODY_TOO_LARGE: &str = "request body too large";

/// Turns an error that did not come from a handler's own response (a
/// parse, validation or authorization failure inside poem-openapi, a body
/// over the size limit, an unknown route) into problem+json; errors that
/// came from an [`ApiError`] keep their body.
pub(crate) fn to_problem_response(error: poem::Error) -> poem::Response {
    if error.is_from_response() {
        return error.into_response();
    }
    let mut status = error.status();
    if error.to_string().contains(BODY_TOO_LARGE) {
        // The body had no length and was cut off by the limit.
        status = StatusCode::PAYLOAD_TOO_LARGE;
    }
    if let Some(param) = error.downcast_ref::<poem_openapi::error::ParseParamError>() {
        // A parameter outside its documented form is a validation failure,
        // answered like core's: 422 naming the field.
        let message = format!("parameter `{}`: {}", param.name, param.reason);
        return problem_response(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::VALIDATION_FAILED,
            format!("invalid input: {message}"),
            vec![FieldProblem {
                field: param.name.to_owned(),
                code: codes::field::INVALID.to_string(),
                message,
            }],
        ));
    }
    if let Some(cors) = error.downcast_ref::<poem::error::CorsError>() {
        // Only a browser on another origin gets here: its own origin
        // passes (see `middleware::SameOrigin`).
        let (code, detail) = match cors {
            poem::error::CorsError::OriginNotAllowed => (
                codes::REQUEST_ORIGIN_NOT_ALLOWED,
                format!(
                    "{cors}: a browser on this origin may not call the API; \
                     the server's operator can list it in cors.allowed_origins"
                ),
            ),
            _ => (
                codes::REQUEST_PREFLIGHT_REFUSED,
                format!(
                    "{cors}: the API takes {} from other origins, with the request headers {}",
                    crate::middleware::ALLOWED_METHODS
                        .map(|m| m.to_string())
                        .join(", "),
                    crate::middleware::ALLOWED_HEADERS.join(", ")
                ),
            ),
        };
        return problem_response(problem(StatusCode::FORBIDDEN, code, detail, Vec::new()));
    }
    if error.is::<poem::error::ParsePathError>() {
        return problem_response(problem(
            StatusCode::BAD_REQUEST,
            codes::REQUEST_INVALID,
            "a path segment is not valid: once percent-decoded it must be UTF-8".to_owned(),
            Vec::new(),
        ));
    }
    let (code, detail) = match status {
        StatusCode::UNAUTHORIZED => (
            codes::AUTH_MISSING,
            "this needs `Authorization: Bearer <access token>` or `Authorization: Key <API key>`"
                .to_owned(),
        ),
        StatusCode::NOT_FOUND => (codes::ROUTE_NOT_FOUND, "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            codes::ROUTE_METHOD_NOT_ALLOWED,
            "this route does not accept that method".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            codes::REQUEST_TOO_LARGE,
            "the request body is larger than the server accepts".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            codes::REQUEST_UNSUPPORTED_MEDIA_TYPE,
            "send the body as application/json".to_owned(),
        ),
        s if s.is_server_error() => {
            tracing::error!(error = %error, "request failed");
            loupe_services::error_tracking::capture_error(&loupe_core::Error::internal(
                error.to_string(),
            ));
            (
                codes::INTERNAL,
                "the server could not complete the request".to_owned(),
            )
        }
        _ => (codes::REQUEST_INVALID, error.to_string()),
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    problem_response(problem(status, code, detail, Vec::new()))
}

/// A problem as a response with its own status (also one the
/// [`ApiError`] enum does not list, such as 405).
pub(crate) fn problem_response(body: Problem) -> poem::Response {
    use poem_openapi::types::ToJSON;
    let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    poem::Response::builder()
        .status(status)
        .content_type("application/problem+json")
        .body(body.to_json_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses() {
        let cases = [
            (Error::not_found("query", "q1"), 404),
            (Error::refused(codes::ACCESS_ROLE, "no"), 403),
            (Error::unauthenticated(codes::AUTH_INVALID_TOKEN, "no"), 401),
            (
                Error::field("name", codes::field::REQUIRED, "a name is needed"),
                422,
            ),
            (
                Error::invalid_input(codes::RESULTS_OUT_OF_RANGE, "bad"),
                400,
            ),
            (Error::stale("changed"), 412),
            (Error::conflict(codes::DASHBOARD_SLUG_TAKEN, "taken"), 409),
            (Error::internal("boom at /srv/secret/path"), 500),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error).as_u16(), status, "{error}");
        }
    }

    #[test]
    fn internal_detail_stays_in_the_log() {
        let e = ApiError::from(Error::internal("boom at /srv/secret/path"));
        assert!(!e.problem().detail.contains("/srv"));
        assert_eq!(e.problem().code, "internal");
    }
}
