//! `/queries/{id}/results/latest.{csv,json,parquet,xlsx}`: the newest
//! stored result of a saved query for the parameter values in the URL,
//! the URL a spreadsheet imports (Google Sheets `IMPORTDATA`, Excel Power
//! Query "From Web"). Which result, and whether the caller may read it,
//! is `LatestResultService`'s decision; this module reads the values from
//! the query string, answers conditional requests, and streams the file
//! through the downloads' own code (`runs::Download`). Nothing here runs
//! a query.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loupe_core::{Error, ExportFormat, ExportOptions, ParameterValues, codes};
use loupe_services::LatestResult;
use poem::http::StatusCode;
use poem::http::header::{CACHE_CONTROL, ETAG, LAST_MODIFIED};
use poem::web::headers::{self, Header as _};
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::{Header, Path};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::{ApiResponse, OpenApi};
use serde_json::Value;

use super::ApiTags;
use super::runs::{Download, REVALIDATE, Validators, document_header, download_schema};
use crate::caller::{ResultsAuth, URL_KEY_PARAM};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// A parameter's value in the query string is `p_<name>=<value>`
/// (`?p_region=EMEA`); a name given twice is a list.
pub(crate) const PARAMETER_PREFIX: &str = "p_";

/// The longest file name stem taken from a query's name.
const MAX_STEM: usize = 100;

/// Latest results of saved queries.
#[derive(Debug)]
pub(crate) struct LatestResultsApi(pub(crate) Arc<AppState>);

/// A format a latest-result URL serves, one route each.
pub(crate) trait LatestFormat: Send + Sync {
    /// The format.
    const FORMAT: ExportFormat;
}

/// `latest.csv`.
#[derive(Debug)]
pub(crate) struct CsvFile;
/// `latest.json`.
#[derive(Debug)]
pub(crate) struct JsonFile;
/// `latest.parquet`.
#[derive(Debug)]
pub(crate) struct ParquetFile;
/// `latest.xlsx`.
#[derive(Debug)]
pub(crate) struct XlsxFile;

impl LatestFormat for CsvFile {
    const FORMAT: ExportFormat = ExportFormat::Csv;
}
impl LatestFormat for JsonFile {
    const FORMAT: ExportFormat = ExportFormat::Json;
}
impl LatestFormat for ParquetFile {
    const FORMAT: ExportFormat = ExportFormat::Parquet;
}
impl LatestFormat for XlsxFile {
    const FORMAT: ExportFormat = ExportFormat::Xlsx;
}

/// The conditional headers of a request, parsed; a header that does not
/// parse is ignored, as RFC 9110 says of dates.
#[derive(Debug, Default)]
struct Conditions {
    if_none_match: Option<headers::IfNoneMatch>,
    if_modified_since: Option<headers::IfModifiedSince>,
}

impl Conditions {
    fn new(if_none_match: Option<&str>, if_modified_since: Option<&str>) -> Self {
        Self {
            if_none_match: typed(if_none_match),
            if_modified_since: typed(if_modified_since),
        }
    }

    /// Whether the client's copy is current (RFC 9110 §13.2.2): by its
    /// `ETag` when it sent one (weak comparison), else by its date.
    fn unchanged(&self, etag: &headers::ETag, modified: SystemTime) -> bool {
        match (&self.if_none_match, &self.if_modified_since) {
            (Some(tags), _) => !tags.precondition_passes(etag),
            (None, Some(since)) => !since.is_modified(modified),
            (None, None) => false,
        }
    }
}

/// A typed header from its text, if it parses.
fn typed<H: headers::Header>(value: Option<&str>) -> Option<H> {
    let value = poem::http::HeaderValue::from_str(value?.trim()).ok()?;
    H::decode(&mut std::iter::once(&value)).ok()
}

/// The parameter values in a query string: `p_<name>=<value>`, a name
/// given twice a list; `api_key` is the caller's. Anything else is a
/// field error naming it, so that `?region=EMEA` (no prefix) is not
/// silently the default region.
fn parameter_values(query: Option<&str>) -> Result<ParameterValues, Error> {
    let mut values = ParameterValues::new();
    let mut unknown = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == URL_KEY_PARAM {
            continue;
        }
        let Some(parameter) = name.strip_prefix(PARAMETER_PREFIX) else {
            unknown.push(loupe_core::FieldError::new(
                name.as_ref(),
                codes::field::UNKNOWN,
                format!(
                    "{name:?} is not a query parameter of this URL: give a parameter's value as \
                     `{PARAMETER_PREFIX}<name>` (`{PARAMETER_PREFIX}{name}=…`)"
                ),
            ));
            continue;
        };
        let value = Value::String(value.into_owned());
        match values.remove(parameter) {
            None => values.insert(parameter.to_owned(), value),
            Some(Value::Array(mut items)) => {
                items.push(value);
                values.insert(parameter.to_owned(), Value::Array(items))
            }
            Some(first) => values.insert(parameter.to_owned(), Value::Array(vec![first, value])),
        };
    }
    if unknown.is_empty() {
        Ok(values)
    } else {
        Err(Error::Validation(unknown))
    }
}

/// An error about parameter values, with each field named as the URL
/// names it (`p_region`, not `parameters.region`).
fn in_url_terms(error: Error) -> Error {
    match error {
        Error::Validation(errors) => Error::Validation(
            errors
                .into_iter()
                .map(|mut e| {
                    if let Some(name) = e.field.strip_prefix("parameters.") {
                        e.field = format!("{PARAMETER_PREFIX}{name}");
                    }
                    e
                })
                .collect(),
        ),
        other => other,
    }
}

/// A file name for a query's result: its name in plain ASCII (letters,
/// digits, `_` and `.`, other runs of characters as one `-`), else the
/// query's id.
fn filename(query_name: &str, query_id: &str, format: ExportFormat) -> String {
    let mut stem = String::new();
    for c in query_name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            stem.push(c);
        } else if !stem.ends_with('-') {
            stem.push('-');
        }
    }
    let stem: String = stem
        .trim_matches(|c| c == '-' || c == '.')
        .chars()
        .take(MAX_STEM)
        .collect();
    let stem = match stem.trim_end_matches(['-', '.']) {
        "" => format!("query-{query_id}"),
        stem => stem.to_owned(),
    };
    format!("{stem}.{}", format.extension())
}

/// Whether `format` writes a result as the same bytes every time. An
/// XLSX workbook records when it was written (its document properties),
/// so two downloads of one result differ in those bytes alone.
fn byte_stable(format: ExportFormat) -> bool {
    !matches!(format, ExportFormat::Xlsx)
}

/// The validators of `run`'s result in `format`: an `ETag` from the run's
/// id and the format (a run's result never changes), strong where the
/// format writes the same bytes every time and weak (the same content)
/// where it does not, and the time the run finished.
fn validators(
    found: &LatestResult,
    format: ExportFormat,
) -> (Validators, Option<headers::ETag>, SystemTime) {
    let run = &found.run;
    let weak = if byte_stable(format) { "" } else { "W/" };
    let etag = format!("{weak}\"{}.{}\"", run.id, format.extension());
    let finished = run.finished_at.unwrap_or(run.queued_at);
    let modified =
        SystemTime::UNIX_EPOCH + Duration::from_micros(u64::try_from(finished).unwrap_or_default());
    let mut dates = Vec::new();
    headers::LastModified::from(modified).encode(&mut dates);
    let last_modified = dates
        .first()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Run ids are UUIDs, always a valid tag; one that were not would only
    // make every request a full one.
    let parsed = etag.parse().ok();
    (
        Validators {
            etag,
            last_modified,
        },
        parsed,
        modified,
    )
}

/// The answer of a latest-result route in format `F`: the file, or 304.
#[derive(Debug)]
pub(crate) struct Latest<F> {
    answer: Answer,
    format: PhantomData<F>,
}

#[derive(Debug)]
enum Answer {
    File(Download),
    NotModified(Validators),
}

impl<F: LatestFormat> IntoResponse for Latest<F> {
    fn into_response(self) -> Response {
        match self.answer {
            Answer::File(download) => download.into_response(),
            Answer::NotModified(validators) => Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(ETAG, validators.etag)
                .header(LAST_MODIFIED, validators.last_modified)
                .header(CACHE_CONTROL, REVALIDATE)
                .finish(),
        }
    }
}

impl<F: LatestFormat> ApiResponse for Latest<F> {
    fn meta() -> MetaResponses {
        let header = document_header;
        let etag = || {
            header(
                "ETag",
                "From the run that stored the result and the format; send it back in \
                 `If-None-Match`. Strong, except for XLSX (a workbook records when it was \
                 written).",
            )
        };
        let last_modified = || header("Last-Modified", "When that run finished.");
        let cache_control = || {
            header(
                "Cache-Control",
                "`private, no-cache`: a private cache may keep the file but asks again each \
                 time.",
            )
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The newest stored result, streamed. A response that ends \
                                  with an error instead of a complete body means reading the \
                                  result failed part way.",
                    status: Some(200),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: F::FORMAT.content_type(),
                        schema: download_schema(F::FORMAT),
                    }],
                    headers: vec![
                        etag(),
                        last_modified(),
                        header(
                            "Content-Disposition",
                            "`attachment; filename=\"<query name>.<format>\"`.",
                        ),
                        cache_control(),
                    ],
                },
                MetaResponse {
                    description: "The copy the client holds (`If-None-Match`, or else \
                                  `If-Modified-Since`) is still the newest result; no body.",
                    status: Some(304),
                    status_range: None,
                    content: Vec::new(),
                    headers: vec![etag(), last_modified(), cache_control()],
                },
            ],
        }
    }

    fn register(_registry: &mut Registry) {}
}

impl LatestResultsApi {
    /// The newest stored result of query `id` for the values in the URL,
    /// in `F`, or 304 when the client's copy is it.
    async fn serve<F: LatestFormat>(
        &self,
        auth: &ResultsAuth,
        id: &str,
        conditions: Conditions,
        req: &Request,
    ) -> ApiResult<Latest<F>> {
        let values = parameter_values(req.uri().query())?;
        let latest = &self.0.services().latest;
        let found = latest
            .find(auth.actor(), id, &values)
            .await
            .map_err(in_url_terms)?;
        let Some(found) = found else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::RESULT_NONE_YET,
                format!(
                    "query {id} has no stored result for these parameter values yet (for you: \
                     results follow your access); run it with these values \
                     (POST /api/v1/queries/{id}/runs) or schedule it, and this URL serves the \
                     result once the run has succeeded"
                ),
            ));
        };
        let format = F::FORMAT;
        let (validators, etag, modified) = validators(&found, format);
        let unchanged = etag.is_some_and(|etag| conditions.unchanged(&etag, modified));
        let answer = if unchanged {
            Answer::NotModified(validators)
        } else {
            let options = ExportOptions::default();
            let file = Download::of(&self.0, &found.run.id, &found.result, format, None, options)
                .await?
                .named(filename(&found.query_name, id, format))
                .revalidated(validators);
            Answer::File(file)
        };
        Ok(Latest {
            answer,
            format: PhantomData,
        })
    }
}

#[OpenApi(prefix_path = "/queries", tag = "ApiTags::Queries")]
impl LatestResultsApi {
    /// The newest stored result of a saved query as CSV, for these
    /// parameter values: the URL a spreadsheet imports.
    ///
    /// Give each parameter's value as `p_<name>=<value>` in the query
    /// string (`?p_region=EMEA&p_since=2024-01-01`); a name given twice is
    /// a list (`p_country=FR&p_country=DE`); defaults fill the rest. The
    /// values are checked as for a run: a value that does not fit answers
    /// 422 naming `p_<name>`, and any other query parameter answers 422
    /// too. The result is the newest succeeded run of the query's current
    /// SQL with these values, among the runs the caller may read (a caller
    /// under row-level restrictions only gets results computed under
    /// theirs). Nothing runs here: without such a run the answer is 404
    /// `result.none_yet`; run the query with these values or schedule it.
    ///
    /// Send `If-None-Match` with the `ETag` (or `If-Modified-Since`) to
    /// get 304 while the result is unchanged. CSV cells that a spreadsheet
    /// would run as formulas are escaped, as in downloads.
    ///
    /// Besides a session or `Authorization: Key <API key>`, an API key
    /// scoped to this query may come in the URL as `?api_key=<key>`, for
    /// imports that send nothing but a URL. URLs are kept in histories
    /// and proxy logs: any other key is refused there (403
    /// `access.scope`).
    #[oai(
        path = "/:id/results/latest.csv",
        method = "get",
        operation_id = "getLatestResultCsv"
    )]
    async fn csv(
        &self,
        auth: ResultsAuth,
        id: Path<String>,
        /// `ETag`s of the copies the client holds: 304 when one is the
        /// newest result's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// The time of the client's copy: 304 when the newest result is
        /// no newer. Ignored with `If-None-Match`.
        #[oai(name = "If-Modified-Since")]
        if_modified_since: Header<Option<String>>,
        req: &Request,
    ) -> ApiResult<Latest<CsvFile>> {
        let conditions = Conditions::new(if_none_match.as_deref(), if_modified_since.as_deref());
        self.serve(&auth, &id, conditions, req).await
    }

    /// The newest stored result of a saved query as JSON (an array of
    /// row objects), for these parameter values. Values, conditional
    /// requests and keys as for `latest.csv`.
    #[oai(
        path = "/:id/results/latest.json",
        method = "get",
        operation_id = "getLatestResultJson"
    )]
    async fn json(
        &self,
        auth: ResultsAuth,
        id: Path<String>,
        /// `ETag`s of the copies the client holds: 304 when one is the
        /// newest result's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// The time of the client's copy: 304 when the newest result is
        /// no newer. Ignored with `If-None-Match`.
        #[oai(name = "If-Modified-Since")]
        if_modified_since: Header<Option<String>>,
        req: &Request,
    ) -> ApiResult<Latest<JsonFile>> {
        let conditions = Conditions::new(if_none_match.as_deref(), if_modified_since.as_deref());
        self.serve(&auth, &id, conditions, req).await
    }

    /// The newest stored result of a saved query as Parquet, for these
    /// parameter values. Values, conditional requests and keys as for
    /// `latest.csv`.
    #[oai(
        path = "/:id/results/latest.parquet",
        method = "get",
        operation_id = "getLatestResultParquet"
    )]
    async fn parquet(
        &self,
        auth: ResultsAuth,
        id: Path<String>,
        /// `ETag`s of the copies the client holds: 304 when one is the
        /// newest result's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// The time of the client's copy: 304 when the newest result is
        /// no newer. Ignored with `If-None-Match`.
        #[oai(name = "If-Modified-Since")]
        if_modified_since: Header<Option<String>>,
        req: &Request,
    ) -> ApiResult<Latest<ParquetFile>> {
        let conditions = Conditions::new(if_none_match.as_deref(), if_modified_since.as_deref());
        self.serve(&auth, &id, conditions, req).await
    }

    /// The newest stored result of a saved query as an Excel workbook,
    /// for these parameter values. Values, conditional requests and keys
    /// as for `latest.csv`.
    #[oai(
        path = "/:id/results/latest.xlsx",
        method = "get",
        operation_id = "getLatestResultXlsx"
    )]
    async fn xlsx(
        &self,
        auth: ResultsAuth,
        id: Path<String>,
        /// `ETag`s of the copies the client holds: 304 when one is the
        /// newest result's.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        /// The time of the client's copy: 304 when the newest result is
        /// no newer. Ignored with `If-None-Match`.
        #[oai(name = "If-Modified-Since")]
        if_modified_since: Header<Option<String>>,
        req: &Request,
    ) -> ApiResult<Latest<XlsxFile>> {
        let conditions = Conditions::new(if_none_match.as_deref(), if_modified_since.as_deref());
        self.serve(&auth, &id, conditions, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_prefixed_names_and_repeats_make_lists() {
        let values = parameter_values(Some(
            "p_region=EMEA&api_key=secret&p_country=FR&p_country=DE&p_country=ES&p_note=a%20b%26c",
        ))
        .unwrap();
        assert_eq!(values["region"], "EMEA");
        assert_eq!(values["country"], serde_json::json!(["FR", "DE", "ES"]));
        assert_eq!(values["note"], "a b&c");
        assert!(!values.contains_key("api_key"));
        assert!(parameter_values(None).unwrap().is_empty());
    }

    #[test]
    fn names_without_the_prefix_are_refused_each_by_name() {
        let refused = parameter_values(Some("region=EMEA&p_ok=1&format=csv")).unwrap_err();
        let fields: Vec<&str> = refused
            .field_errors()
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["region", "format"]);
    }

    #[test]
    fn binding_errors_name_the_url_parameter() {
        let error = in_url_terms(Error::field(
            "parameters.region",
            codes::field::INVALID,
            "wrong",
        ));
        assert_eq!(error.field_errors()[0].field, "p_region");
    }

    #[test]
    fn file_names_are_plain_ascii_from_the_query_name() {
        let csv = ExportFormat::Csv;
        assert_eq!(
            filename("Sales by region", "q1", csv),
            "Sales-by-region.csv"
        );
        assert_eq!(
            filename("../\"evil\"\\name", "q1", ExportFormat::Xlsx),
            "evil-name.xlsx"
        );
        assert_eq!(filename("Umsätze 2024", "q1", csv), "Ums-tze-2024.csv");
        assert_eq!(filename("日本", "q1", csv), "query-q1.csv");
        assert_eq!(filename(&"x".repeat(300), "q1", csv).len(), MAX_STEM + 4);
    }

    #[test]
    fn an_etag_match_wins_over_the_date() {
        let etag: headers::ETag = "\"r1.csv\"".parse().unwrap();
        let finished = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = "Tue, 14 Nov 2023 22:13:20 GMT";
        let unchanged = |inm: Option<&str>, ims: Option<&str>| {
            Conditions::new(inm, ims).unchanged(&etag, finished)
        };
        assert!(unchanged(Some("\"r1.csv\""), None));
        assert!(unchanged(Some("W/\"r1.csv\""), None), "weak comparison");
        assert!(unchanged(Some("\"r0.csv\", \"r1.csv\""), None));
        assert!(unchanged(Some("*"), None));
        assert!(
            !unchanged(Some("\"r0.csv\""), Some(date)),
            "the tag decides"
        );
        assert!(unchanged(None, Some(date)));
        assert!(!unchanged(None, Some("Tue, 14 Nov 2023 22:13:19 GMT")));
        assert!(!unchanged(None, Some("yesterday")), "a bad date is ignored");
        assert!(!unchanged(None, None));
    }
}
