//! Shapes every resource shares: timestamps, `ETag` out and `If-Match`
//! back in, the responses that carry them, and the conversions between
//! the API's enums and the services'. Lists have their own module,
//! [`super::lists`].

use chrono::{DateTime, TimeZone, Utc};
use loupe_core::codes;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaParamIn, MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object};

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
                codes::PRECONDITION_REQUIRED,
                "send If-Match with the ETag from a GET of this object",
            )
            .into());
        };
        Self::parse(value).ok_or_else(|| {
            ApiError::from(loupe_core::Error::field(
                name,
                codes::field::INVALID,
                format!(
                    "{:?} is not an ETag such as \"3\"; GET the object again",
                    value.trim()
                ),
            ))
            .into()
        })
    }
}

/// What a JSON body of a response can hold.
pub(crate) trait JsonBody: ParseFromJSON + ToJSON + Type + Send {}

impl<T: ParseFromJSON + ToJSON + Type + Send> JsonBody for T {}

/// An object with its `ETag` (its revision), for `If-Match` on updates.
#[derive(Debug, ApiResponse)]
pub(crate) enum Tagged<T: JsonBody> {
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
pub(crate) enum Created<T: JsonBody> {
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

/// An object of the services that has a revision (its `ETag`) and the
/// times it was created and last changed.
pub(crate) trait Revisioned {
    /// Increases with each change.
    fn revision(&self) -> i64;
    /// When it was created and when it last changed (µs).
    fn times(&self) -> (i64, i64);
}

macro_rules! revisioned {
    ($($ty:ty),* $(,)?) => {$(
        impl Revisioned for $ty {
            fn revision(&self) -> i64 {
                self.revision
            }

            fn times(&self) -> (i64, i64) {
                (self.created_at, self.updated_at)
            }
        }
    )*};
}

revisioned!(
    loupe_services::Alert,
    loupe_services::Canvas,
    loupe_services::Destination,
    loupe_services::Subscription,
    loupe_services::Dashboard,
    loupe_services::DatasourceRecord,
    loupe_services::Query,
    loupe_services::Schedule,
    loupe_services::User,
    loupe_services::Visualization,
);

/// The fields every revisioned object ends with: its revision and when
/// it was created and last changed. Objects take them with
/// `#[oai(flatten)]`, so the JSON and the document show them as the
/// object's own fields, in the same place.
#[derive(Debug, Object)]
pub(crate) struct Stamps {
    /// Increases with each change; the `ETag`.
    pub revision: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Stamps {
    /// The stamps of `object`.
    pub(crate) fn of(object: &impl Revisioned) -> Self {
        let (created_at, updated_at) = object.times();
        Self {
            revision: object.revision(),
            created_at: ts(created_at),
            updated_at: ts(updated_at),
        }
    }
}

/// Responds with an object as `D` and its `ETag`.
pub(crate) fn tagged<T: Revisioned, D: JsonBody + From<T>>(object: T) -> Tagged<D> {
    let etag = etag(object.revision());
    Tagged::Ok(Json(object.into()), etag)
}

/// Responds 201 with an object as `D` and its `ETag`.
pub(crate) fn created<T: Revisioned, D: JsonBody + From<T>>(object: T) -> Created<D> {
    let etag = etag(object.revision());
    Created::Created(Json(object.into()), etag)
}

/// `Cache-Control` of a response that carries a secret (a token, a key):
/// no cache may keep it.
pub(crate) fn no_store() -> String {
    "no-store".to_owned()
}

/// `From` both ways between an API enum and the services' enum with the
/// same variants, such as `same_variants!(RoleDto, Role: Viewer, Editor,
/// Admin)`. The matches are exhaustive both ways, so a variant added on
/// one side does not compile until the other has it too.
macro_rules! same_variants {
    ($api:ident, $core:ident: $($variant:ident),+ $(,)?) => {
        impl From<$core> for $api {
            fn from(value: $core) -> Self {
                match value {
                    $($core::$variant => Self::$variant,)+
                }
            }
        }

        impl From<$api> for $core {
            fn from(value: $api) -> Self {
                match value {
                    $($api::$variant => Self::$variant,)+
                }
            }
        }
    };
}
pub(crate) use same_variants;

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;

    use super::*;

    #[test]
    fn flattened_stamps_read_as_the_objects_own_fields() {
        #[derive(Debug, Object)]
        struct Flat {
            id: String,
            #[oai(flatten)]
            stamps: Stamps,
        }
        #[derive(Debug, Object)]
        struct Inline {
            id: String,
            revision: i64,
            created_at: DateTime<Utc>,
            updated_at: DateTime<Utc>,
        }
        let flat = Flat {
            id: "q1".to_owned(),
            stamps: Stamps {
                revision: 3,
                created_at: ts(1),
                updated_at: ts(2),
            },
        };
        let inline = Inline {
            id: "q1".to_owned(),
            revision: 3,
            created_at: ts(1),
            updated_at: ts(2),
        };
        assert_eq!(flat.to_json(), inline.to_json());
        let mut registry = Registry::new();
        let (flat, inline) = (
            registry.create_fake_schema::<Flat>(),
            registry.create_fake_schema::<Inline>(),
        );
        let names = |s: &MetaSchema| s.properties.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(names(&flat), names(&inline));
        assert_eq!(flat.required, inline.required);
    }

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
