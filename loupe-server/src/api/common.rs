//! Shapes every resource shares: timestamps, `ETag` out and `If-Match`
//! back in, and the responses that carry them. Lists have their own
//! module, [`super::lists`].

use chrono::{DateTime, TimeZone, Utc};
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions};

use crate::problem::ApiError;

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

/// The revision an update or revert expects, from the `If-Match` header:
/// `#[oai(name = "If-Match")] if_match: IfMatch`. Without the header the
/// request is refused (428), so a client cannot overwrite a change it
/// never saw; a malformed one is invalid (422, naming the header). Both
/// are answered here, before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IfMatch(i64);

impl IfMatch {
    /// What an `ETag` looks like: a strong or weak quoted revision.
    const PATTERN: &'static str = r#"^(W/)?"[1-9][0-9]{0,17}"$"#;

    /// The revision the client last saw.
    pub(crate) fn revision(&self) -> i64 {
        self.0
    }

    /// A revision from an `ETag` such as `"3"` or `W/"3"` (what
    /// [`Self::PATTERN`] describes).
    fn parse(value: &str) -> Option<Self> {
        let trimmed = value.trim();
        let tag = trimmed.strip_prefix("W/").unwrap_or(trimmed);
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| {
                (1..=18).contains(&t.len())
                    && !t.starts_with('0')
                    && t.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|t| t.parse::<i64>().ok())
            .map(Self)
    }
}

impl<'a> ApiExtractor<'a> for IfMatch {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = true;
    type ParamType = Self;
    type ParamRawType = Self;

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(Self::PATTERN.to_owned()),
            ..MetaSchema::new("string")
        })))
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        // An empty header is no header; one that is not text is malformed.
        let value = request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
            .filter(|v| !v.trim().is_empty());
        let Some(value) = value else {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition.required",
                "send If-Match with the ETag from a GET of this object",
            )
            .into());
        };
        Self::parse(value).ok_or_else(|| {
            ApiError::from(loupe_core::Error::field(
                name,
                "invalid",
                format!(
                    "{:?} is not an ETag such as \"3\"; GET the object again",
                    value.trim()
                ),
            ))
            .into()
        })
    }
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

/// An object of the services that has a revision, its `ETag`.
pub(crate) trait Revisioned {
    /// Increases with each change.
    fn revision(&self) -> i64;
}

macro_rules! revisioned {
    ($($ty:ty),* $(,)?) => {$(
        impl Revisioned for $ty {
            fn revision(&self) -> i64 {
                self.revision
            }
        }
    )*};
}

revisioned!(
    loupe_services::Canvas,
    loupe_services::Dashboard,
    loupe_services::DatasourceRecord,
    loupe_services::Query,
    loupe_services::Schedule,
    loupe_services::User,
    loupe_services::Visualization,
);

/// Responds with an object as `D` and its `ETag`.
pub(crate) fn tagged<T, D>(object: T) -> Tagged<D>
where
    T: Revisioned,
    D: From<T> + ParseFromJSON + ToJSON + Type + Send,
{
    let revision = object.revision();
    Tagged::Ok(Json(D::from(object)), etag(revision))
}

/// Responds 201 with an object as `D` and its `ETag`.
pub(crate) fn created<T, D>(object: T) -> Created<D>
where
    T: Revisioned,
    D: From<T> + ParseFromJSON + ToJSON + Type + Send,
{
    let revision = object.revision();
    Created::Created(Json(D::from(object)), etag(revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_strong_and_weak_etags() {
        let revision = |v: &str| IfMatch::parse(v).map(|m| m.revision());
        assert_eq!(revision("\"3\""), Some(3));
        assert_eq!(revision("W/\"12\""), Some(12));
        let bad = [
            "3",
            "\"x\"",
            "\"0\"",
            "\"-1\"",
            "\"+1\"",
            "\"01\"",
            "*",
            "\"1234567890123456789\"",
        ];
        for bad in bad {
            assert_eq!(revision(bad), None, "{bad:?}");
        }
    }
}
