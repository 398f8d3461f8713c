//! SVG to PNG through resvg, with the shipped font as the only font: no
//! system fonts are looked up, and no file or image outside the document
//! is read.

use std::sync::{Arc, LazyLock};

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{self, ImageHrefResolver, fontdb};

use crate::error::{ChartError, Result};
use crate::render::{Frame, Size, render_svg};
use crate::text::{FAMILY, FONT};
use crate::{Chart, RecordBatch};

/// The font database every render uses: DejaVu Sans alone, and the
/// default for every generic family.
static FONTS: LazyLock<Arc<fontdb::Database>> = LazyLock::new(|| {
    let mut db = fontdb::Database::new();
    db.load_font_data(FONT.to_vec());
    db.set_sans_serif_family(FAMILY);
    db.set_serif_family(FAMILY);
    db.set_monospace_family(FAMILY);
    db.set_cursive_family(FAMILY);
    db.set_fantasy_family(FAMILY);
    Arc::new(db)
});

/// Draws `svg` as a PNG of `size` pixels, scaling the document's own size
/// to fit. Text is drawn with the shipped font whatever family the
/// document names.
///
/// # Errors
/// [`ChartError::SizeOutOfRange`] for a size outside the limits,
/// [`ChartError::Svg`] for markup that is not SVG, and
/// [`ChartError::Png`] if the image cannot be made.
pub fn svg_to_png(svg: &str, size: Size) -> Result<Vec<u8>> {
    let size = size.checked()?;
    let options = usvg::Options {
        font_family: FAMILY.to_owned(),
        fontdb: Arc::clone(&FONTS),
        // Charts hold no images; a document given from elsewhere must not
        // make the renderer read files or decode embedded ones.
        image_href_resolver: ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|source| ChartError::Svg { source })?;
    let mut pixmap = Pixmap::new(size.width, size.height).ok_or_else(|| ChartError::Png {
        message: format!("no pixmap of {}x{}", size.width, size.height),
    })?;
    let own = tree.size();
    let transform = Transform::from_scale(
        size.width as f32 / own.width(),
        size.height as f32 / own.height(),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| ChartError::Png {
        message: e.to_string(),
    })
}

/// [`render_svg`] then [`svg_to_png`] at the frame's size.
///
/// # Errors
/// Those of [`render_svg`] and [`svg_to_png`].
pub fn render_png(chart: &Chart, batches: &[RecordBatch], frame: &Frame<'_>) -> Result<Vec<u8>> {
    let svg = render_svg(chart, batches, frame)?;
    svg_to_png(svg.as_str(), frame.size)
}
