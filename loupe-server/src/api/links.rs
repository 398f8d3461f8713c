//! `/links`: what the signed links in notifications open, without
//! signing in: a run's result as a download, a chart as an image. A link
//! names exactly one of them and when it expires; any change to it, or a
//! late use, is refused (403 `link.invalid`).

use std::sync::Arc;

use loupe_core::{ExportFormat, ExportOptions};
use loupe_services::{ImageFormat, RenderedImage};
use poem::Body;
use poem::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION};
use poem::{IntoResponse, Response};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::{ApiResponse, Enum, OpenApi};

use super::ApiTags;
use super::common::same_variants;
use super::runs::{Download, DownloadFormat};
use crate::problem::ApiResult;
use crate::state::AppState;

/// Signed links.
#[derive(Debug)]
pub(crate) struct LinksApi(pub(crate) Arc<AppState>);

/// What a chart is drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum ImageFormatDto {
    /// Scalable vector graphics (`image/svg+xml`).
    Svg,
    /// A PNG picture (`image/png`).
    Png,
}

impl ImageFormatDto {
    pub(crate) fn png() -> Self {
        Self::Png
    }
}

same_variants!(ImageFormatDto, ImageFormat: Svg, Png);

/// A rendered chart: PNG or SVG, as asked.
#[derive(Debug)]
pub(crate) struct Image(pub(crate) RenderedImage);

impl IntoResponse for Image {
    fn into_response(self) -> Response {
        let image = self.0;
        Response::builder()
            .content_type(image.format.content_type())
            .header(
                CONTENT_DISPOSITION,
                format!(
                    "inline; filename=\"{}.{}\"",
                    image.run_id,
                    image.format.name()
                ),
            )
            // Drawn from one stored result, which never changes.
            .header(CACHE_CONTROL, "private, max-age=300")
            // An SVG opened on its own runs no script from this origin.
            .header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            )
            .body(Body::from(image.bytes))
    }
}

impl ApiResponse for Image {
    fn meta() -> MetaResponses {
        let binary = MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        }));
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The chart, drawn from the stored result.",
                status: Some(200),
                status_range: None,
                content: [ImageFormat::Png, ImageFormat::Svg]
                    .into_iter()
                    .map(|f| MetaMediaType {
                        content_type: f.content_type(),
                        schema: binary.clone(),
                    })
                    .collect(),
                headers: vec![],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

#[OpenApi(prefix_path = "/links", tag = "ApiTags::Deliveries")]
impl LinksApi {
    /// Download a run's result through a signed link from a notification
    /// (no sign-in). Refused (403 `link.invalid`) when the link was
    /// changed or has expired.
    #[oai(
        path = "/runs/:id/download",
        method = "get",
        operation_id = "downloadLinkedResult"
    )]
    async fn download(
        &self,
        id: Path<String>,
        /// The format the link was signed for.
        format: Q<DownloadFormat>,
        /// When the link expires (Unix seconds).
        expires: Q<i64>,
        /// The link's signature.
        signature: Q<String>,
    ) -> ApiResult<Download> {
        let format = ExportFormat::from(format.0);
        let deliveries = &self.0.services().deliveries;
        let (run, result) = deliveries
            .linked_result(&id, format, expires.0, &signature)
            .await?;
        let options = ExportOptions::default();
        Ok(Download::of(&self.0, &run.id, &result, format, None, options).await?)
    }

    /// A chart of one run's result through a signed link from a
    /// notification (no sign-in). Refused (403 `link.invalid`) when the
    /// link was changed or has expired.
    #[oai(
        path = "/visualizations/:id/image",
        method = "get",
        operation_id = "getLinkedImage"
    )]
    async fn image(
        &self,
        id: Path<String>,
        /// The run whose result it shows.
        run: Q<String>,
        /// The format the link was signed for.
        format: Q<ImageFormatDto>,
        /// When the link expires (Unix seconds).
        expires: Q<i64>,
        /// The link's signature.
        signature: Q<String>,
    ) -> ApiResult<Image> {
        let deliveries = &self.0.services().deliveries;
        let image = deliveries
            .linked_image(&id, &run, format.0.into(), expires.0, &signature)
            .await?;
        Ok(Image(image))
    }
}
