//! Shapes every resource shares: timestamps, lists, `ETag` and `If-Match`.

use chrono::{DateTime, TimeZone, Utc};
use loupe_services::meta::{ListPage, ListRequest};
use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};

use crate::problem::{ApiError, ApiResult};

/// A core timestamp (µs since the epoch) as a UTC time.
pub(crate) fn ts(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An optional core timestamp.
pub(crate) fn ts_opt(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.map(ts)
}

/// A UTC time as a core timestamp (µs).
pub(crate) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// The `ETag` of an object at `revision`.
pub(crate) fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

/// The answer to an update without `If-Match`.
pub(crate) fn if_match_missing() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_REQUIRED,
        "precondition.required",
        "send If-Match with the ETag from a GET of this object",
    )
}

/// The revision an update expects, from `If-Match`. Updates without it
/// are refused (428), so a client cannot overwrite a change it never saw.
pub(crate) fn if_match(header: Option<&str>) -> ApiResult<i64> {
    let Some(value) = header.filter(|h| !h.trim().is_empty()) else {
        return Err(if_match_missing());
    };
    let trimmed = value.trim();
    let tag = trimmed.strip_prefix("W/").unwrap_or(trimmed);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|r| *r >= 1)
        .ok_or_else(|| {
            ApiError::from(loupe_core::Error::field(
                "If-Match",
                "invalid",
                format!("{trimmed:?} is not an ETag such as \"3\"; GET the object again"),
            ))
        })
}

/// A list request from the common query parameters and a resource's
/// filters (those given).
pub(crate) fn list_request(
    limit: Option<u32>,
    offset: Option<u64>,
    sort: Option<String>,
    filters: &[(&str, Option<String>)],
) -> ListRequest {
    // An empty parameter (`?sort=`) is the same as a missing one.
    let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let mut request = ListRequest {
        limit,
        offset,
        sort: given(&sort),
        ..ListRequest::default()
    };
    for (name, value) in filters {
        if let Some(value) = given(value) {
            request = request.filter(name, value);
        }
    }
    request
}

/// A page of a list, mapped item by item.
pub(crate) fn page<T, U>(page: ListPage<T>, map: impl FnMut(T) -> U) -> Page<U>
where
    U: ParseFromJSON + ToJSON + Type,
{
    Page {
        items: page.items.into_iter().map(map).collect(),
        total: page.total,
        limit: page.limit,
        offset: page.offset,
    }
}

/// One page of a list.
#[derive(Debug, poem_openapi::Object)]
pub(crate) struct Page<T: ParseFromJSON + ToJSON + Type> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows in the whole list.
    pub total: u64,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

/// An object with its `ETag` (its revision), for `If-Match` on updates.
#[derive(Debug, ApiResponse)]
pub(crate) enum Tagged<T: ParseFromJSON + ToJSON + Type + Send> {
    /// The object.
    #[oai(status = 200)]
    Ok(
        Json<T>,
        /// The object's revision; send it back in `If-Match` to update it.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A created object with its `ETag`.
#[derive(Debug, ApiResponse)]
pub(crate) enum Created<T: ParseFromJSON + ToJSON + Type + Send> {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<T>,
        /// The object's revision; send it back in `If-Match` to update it.
        #[oai(header = "ETag")]
        String,
    ),
}

/// Nothing to return.
#[derive(Debug, ApiResponse)]
pub(crate) enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Responds with an object and its `ETag`.
pub(crate) fn tagged<T: ParseFromJSON + ToJSON + Type + Send>(body: T, revision: i64) -> Tagged<T> {
    Tagged::Ok(Json(body), etag(revision))
}

/// Responds 201 with an object and its `ETag`.
pub(crate) fn created<T: ParseFromJSON + ToJSON + Type + Send>(
    body: T,
    revision: i64,
) -> Created<T> {
    Created::Created(Json(body), etag(revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_strong_and_weak_etags() {
        assert_eq!(if_match(Some("\"3\"")).ok(), Some(3));
        assert_eq!(if_match(Some("W/\"12\"")).ok(), Some(12));
        for bad in ["3", "\"x\"", "\"0\"", "\"-1\""] {
            assert_eq!(
                if_match(Some(bad)).err().map(|e| e.problem().status),
                Some(422),
                "{bad:?}"
            );
        }
        assert_eq!(
            if_match(Some(" ")).err().map(|e| e.problem().status),
            Some(428)
        );
        assert_eq!(if_match(None).err().map(|e| e.problem().status), Some(428));
    }
}
