//! Scatter plots: points over a numeric or time x axis, sized by a column
//! and coloured by series.

use crate::data::{Kind, Rows};
use crate::error::Result;
use crate::format;
use crate::options::ScatterOptions;
use crate::render::axes::{XDomain, axis_title, draw_axes, extent, layout};
use crate::render::series::{MAX_SERIES, SeriesIndex};
use crate::render::{LegendEntry, Page, color, nulls_note};

/// Scatter plots.
pub(crate) fn draw(page: &mut Page, rows: &Rows<'_>, o: &ScatterOptions) -> Result<()> {
    let x_col = rows.column("options.x", &o.x)?;
    let xs = x_col.positions()?;
    let ys = rows.column("options.y", &o.y)?.numbers()?;
    let sizes = match &o.size {
        Some(name) => Some(rows.column("options.size", name)?.numbers()?),
        None => None,
    };
    let split = match &o.series {
        Some(name) => Some(rows.column("options.series", name)?.texts()?),
        None => None,
    };
    if rows.len() == 0 {
        page.empty("No rows");
        return Ok(());
    }

    let mut index = SeriesIndex::default();
    // (series, x, y, size)
    let mut points: Vec<(usize, f64, f64, Option<f64>)> = Vec::with_capacity(xs.len());
    let mut nulls = 0;
    for (row, x) in xs.iter().enumerate() {
        let y = ys.get(row).copied().flatten();
        let size = sizes.as_ref().map(|s| s.get(row).copied().flatten());
        let (Some(x), Some(y), None | Some(Some(_))) = (*x, y, size) else {
            nulls += 1;
            continue;
        };
        let key = split.as_ref().map(|s| s.get(row).unwrap_or(&None));
        let Some(series) = index.get(key, 0, &o.y, 1) else {
            continue;
        };
        points.push((series, x, y, size.flatten()));
    }
    if index.hidden > 0 {
        page.note(format!(
            "First {MAX_SERIES} series shown, {}",
            crate::render::and_more(index.hidden, "not drawn")
        ));
    }
    if let Some(note) = nulls_note(nulls, "row with a NULL value", "rows with NULL values") {
        page.note(note);
    }
    if points.is_empty() {
        page.empty("No values to draw");
        return Ok(());
    }
    if split.is_some() {
        let entries: Vec<LegendEntry> = index
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| LegendEntry {
                name: name.clone(),
                color: color(i),
                detail: None,
            })
            .collect();
        page.legend_top(&entries);
    }
    let (x_min, x_max) = extent(points.iter().map(|p| p.1));
    let (y_min, y_max) = extent(points.iter().map(|p| p.2));
    let x_domain = XDomain::Continuous {
        min: x_min,
        max: x_max,
        time: x_col.kind() == Kind::Time,
        nice: true,
    };
    let x_title = axis_title(None, Some(&o.x));
    let y_title = axis_title(None, Some(&o.y));
    let axes = layout(page.body(), &x_domain, y_min, y_max, &x_title, &y_title);
    draw_axes(&mut page.doc, &axes, &x_title, &y_title);

    let (s_min, s_max) = extent(points.iter().filter_map(|p| p.3));
    let radius = |size: Option<f64>| match size {
        Some(s) if s_max > s_min => 3.0 + 13.0 * ((s - s_min) / (s_max - s_min)).sqrt(),
        Some(_) => 7.0,
        None if points.len() > 5000 => 1.8,
        None if points.len() > 1000 => 2.5,
        None => 4.0,
    };
    page.doc.group("plot");
    for series in 0..index.names.len().max(1) {
        let name = index.names.get(series).map_or(o.y.as_str(), String::as_str);
        page.doc
            .el("g")
            .attr("class", "series")
            .attr("data-series", name)
            .attr("fill", color(series))
            .attr("fill-opacity", if sizes.is_some() { "0.6" } else { "0.75" })
            .open();
        for &(_, x, y, size) in points.iter().filter(|p| p.0 == series) {
            let el = page
                .doc
                .el("circle")
                .attr("class", "point")
                .attr("data-x", &format::data(x))
                .attr("data-y", &format::data(y));
            let el = match size {
                Some(s) => el.attr("data-size", &format::data(s)),
                None => el,
            };
            el.num("cx", axes.x.px(x))
                .num("cy", axes.y.map(y))
                .num("r", radius(size))
                .close();
        }
        page.doc.end("g");
    }
    page.doc.end("g");
    Ok(())
}
