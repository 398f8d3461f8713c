//! Lines, bars and areas: series over an x column.
//!
//! Rows that share a category (and series) are added up; on a linear or
//! time axis rows are drawn in x order.

use std::collections::HashMap;

use crate::data::{Kind, Rows};
use crate::error::Result;
use crate::format;
use crate::options::SeriesOptions;
use crate::render::axes::{Axes, XDomain, XScale, axis_title, draw_axes, extent, layout};
use crate::render::{LegendEntry, Page, color, nulls_note};
use crate::svg::{Doc, PathData};

/// The most series drawn; more would repeat colours.
pub(crate) const MAX_SERIES: usize = crate::render::PALETTE.len();
/// The most categories a bar chart draws.
pub(crate) const MAX_BARS: usize = 30;

/// How series are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Line,
    Bar,
    Area,
}

/// The series, as the axes will place them.
#[derive(Debug)]
struct Series {
    name: String,
    /// (x, y): x is a number, an instant, or a category's index.
    points: Vec<(f64, f64)>,
}

/// Series drawn from rows, with what was left out.
#[derive(Debug, Default)]
struct Collected {
    series: Vec<Series>,
    categories: Vec<String>,
    hidden_series: usize,
    hidden_categories: usize,
    nulls: usize,
}

/// Line, bar and area charts.
pub(crate) fn draw(page: &mut Page, rows: &Rows<'_>, o: &SeriesOptions, mark: Mark) -> Result<()> {
    let x_col = rows.column("options.x", &o.x)?;
    let mut ys = Vec::with_capacity(o.y.len());
    for (i, name) in o.y.iter().enumerate() {
        let column = rows.column(&format!("options.y[{i}]"), name)?;
        ys.push((column.name.clone(), column.numbers()?));
    }
    let split = match &o.series {
        Some(name) => Some(rows.column("options.series", name)?.texts()?),
        None => None,
    };
    let band = mark == Mark::Bar || x_col.kind() == Kind::Text;
    let (xs, labels) = if band {
        (Vec::new(), x_col.labels()?)
    } else {
        (x_col.positions()?, Vec::new())
    };
    if rows.len() == 0 {
        page.empty("No rows");
        return Ok(());
    }

    let collected = if band {
        let limit = if mark == Mark::Bar {
            MAX_BARS
        } else {
            usize::MAX
        };
        collect_band(&labels, &ys, split.as_deref(), limit)
    } else {
        collect_continuous(&xs, &ys, split.as_deref())
    };
    if collected.hidden_categories > 0 {
        page.note(format!(
            "First {} categories shown, {}",
            collected.categories.len(),
            crate::render::and_more(collected.hidden_categories, "not drawn")
        ));
    }
    if collected.hidden_series > 0 {
        page.note(format!(
            "First {MAX_SERIES} series shown, {}",
            crate::render::and_more(collected.hidden_series, "not drawn")
        ));
    }
    if let Some(note) = nulls_note(collected.nulls, "NULL value", "NULL values") {
        page.note(note);
    }
    if collected.series.iter().all(|s| s.points.is_empty()) {
        page.empty("No values to draw");
        return Ok(());
    }

    let stacked = o.stacked && mark != Mark::Line;
    let layers = Layers::new(&collected.series, stacked, band, mark);
    let (mut y_min, mut y_max) = layers.extent(stacked);
    if mark != Mark::Line {
        y_min = y_min.min(0.0);
        y_max = y_max.max(0.0);
    }
    let x_domain = if band {
        XDomain::Band(collected.categories.clone())
    } else {
        let (min, max) = extent(
            collected
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        XDomain::Continuous {
            min,
            max,
            time: x_col.kind() == Kind::Time,
            nice: false,
        }
    };
    if o.y.len() > 1 || split.is_some() {
        let entries: Vec<LegendEntry> = collected
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                name: s.name.clone(),
                color: color(i),
                detail: None,
            })
            .collect();
        page.legend_top(&entries);
    }
    let x_title = axis_title(o.x_label.as_deref(), Some(&o.x));
    let default_y = (o.y.len() == 1).then(|| o.y[0].as_str());
    let y_title = axis_title(o.y_label.as_deref(), default_y);
    let axes = layout(page.body(), &x_domain, y_min, y_max, &x_title, &y_title);
    draw_axes(&mut page.doc, &axes, &x_title, &y_title);

    page.doc.group("plot");
    match mark {
        Mark::Bar => draw_bars(&mut page.doc, &axes, &collected, &layers, stacked),
        Mark::Line | Mark::Area => draw_lines(&mut page.doc, &axes, &collected, &layers, mark),
    }
    page.doc.end("g");
    Ok(())
}

/// Series keys, in order of first appearance, up to [`MAX_SERIES`].
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    index: HashMap<(Option<String>, usize), Option<usize>>,
    pub(crate) names: Vec<String>,
    pub(crate) hidden: usize,
}

impl SeriesIndex {
    /// The series of `key` (a value of the series column) and y column
    /// `y`, or `None` when it is past the limit.
    pub(crate) fn get(
        &mut self,
        key: Option<&Option<String>>,
        y: usize,
        y_name: &str,
        ys: usize,
    ) -> Option<usize> {
        let k = (key.cloned().flatten(), y);
        if let Some(found) = self.index.get(&k) {
            return *found;
        }
        let slot = if self.names.len() < MAX_SERIES {
            let name = match key {
                None => y_name.to_owned(),
                Some(value) => {
                    let value = value.as_deref().unwrap_or("NULL");
                    if ys > 1 {
                        format!("{value} · {y_name}")
                    } else {
                        value.to_owned()
                    }
                }
            };
            self.names.push(name);
            Some(self.names.len() - 1)
        } else {
            self.hidden += 1;
            None
        };
        self.index.insert(k, slot);
        slot
    }
}

type YColumns = [(String, Vec<Option<f64>>)];

/// Values per category and series, added up; categories past `limit`
/// are counted, not drawn.
fn collect_band(
    labels: &[Option<String>],
    ys: &YColumns,
    split: Option<&[Option<String>]>,
    limit: usize,
) -> Collected {
    let mut categories: Vec<String> = Vec::new();
    let mut by_label: HashMap<&str, Option<usize>> = HashMap::new();
    let mut hidden_categories = 0;
    let mut index = SeriesIndex::default();
    let mut sums: Vec<HashMap<usize, f64>> = Vec::new();
    let mut nulls = 0;
    for (row, label) in labels.iter().enumerate() {
        let label = label.as_deref().unwrap_or("NULL");
        let category = *by_label.entry(label).or_insert_with(|| {
            if categories.len() < limit {
                categories.push(label.to_owned());
                Some(categories.len() - 1)
            } else {
                hidden_categories += 1;
                None
            }
        });
        let Some(category) = category else { continue };
        for (yi, (y_name, values)) in ys.iter().enumerate() {
            let key = split.map(|s| s.get(row).unwrap_or(&None));
            let Some(v) = values.get(row).copied().flatten() else {
                nulls += 1;
                continue;
            };
            let Some(series) = index.get(key, yi, y_name, ys.len()) else {
                continue;
            };
            if sums.len() <= series {
                sums.resize_with(series + 1, HashMap::new);
            }
            *sums[series].entry(category).or_insert(0.0) += v;
        }
    }
    sums.resize_with(index.names.len(), HashMap::new);
    let series = index
        .names
        .into_iter()
        .zip(sums)
        .map(|(name, sums)| {
            let mut points: Vec<(f64, f64)> =
                sums.into_iter().map(|(c, v)| (c as f64, v)).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect();
    Collected {
        series,
        categories,
        hidden_series: index.hidden,
        hidden_categories,
        nulls,
    }
}

/// Points per series in x order; rows with a NULL x or y are counted.
fn collect_continuous(
    xs: &[Option<f64>],
    ys: &YColumns,
    split: Option<&[Option<String>]>,
) -> Collected {
    let mut index = SeriesIndex::default();
    let mut points: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut nulls = 0;
    for (row, x) in xs.iter().enumerate() {
        for (yi, (y_name, values)) in ys.iter().enumerate() {
            let (Some(x), Some(y)) = (*x, values.get(row).copied().flatten()) else {
                nulls += 1;
                continue;
            };
            let key = split.map(|s| s.get(row).unwrap_or(&None));
            let Some(series) = index.get(key, yi, y_name, ys.len()) else {
                continue;
            };
            if points.len() <= series {
                points.resize_with(series + 1, Vec::new);
            }
            points[series].push((x, y));
        }
    }
    points.resize_with(index.names.len(), Vec::new);
    let series = index
        .names
        .into_iter()
        .zip(points)
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect();
    Collected {
        series,
        categories: Vec::new(),
        hidden_series: index.hidden,
        hidden_categories: 0,
        nulls,
    }
}

/// What is drawn for each series: (x, low, high) per point. Unstacked,
/// low is 0 for bars and areas; stacked, each series sits on the ones
/// before it (positive values upward, negative downward).
#[derive(Debug)]
struct Layers {
    layers: Vec<Vec<(f64, f64, f64)>>,
}

impl Layers {
    fn new(series: &[Series], stacked: bool, band: bool, mark: Mark) -> Self {
        if !stacked {
            return Self {
                layers: series
                    .iter()
                    .map(|s| s.points.iter().map(|&(x, y)| (x, 0.0, y)).collect())
                    .collect(),
            };
        }
        // Every x any series has; a series without a value there adds 0
        // (an area must close over the same xs as the one below it).
        let mut xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        let mut up = vec![0.0; xs.len()];
        let mut down = vec![0.0; xs.len()];
        let mut layers = Vec::with_capacity(series.len());
        for s in series {
            let mut at: HashMap<u64, f64> = HashMap::new();
            for &(x, y) in &s.points {
                *at.entry(x.to_bits()).or_insert(0.0) += y;
            }
            let mut layer = Vec::with_capacity(xs.len());
            for (i, &x) in xs.iter().enumerate() {
                let y = at.get(&x.to_bits()).copied();
                // Bars draw only what a series has; areas need every x.
                if y.is_none() && (band && mark == Mark::Bar) {
                    continue;
                }
                let y = y.unwrap_or(0.0);
                let (base, total) = if y >= 0.0 {
                    (&mut up[i], y)
                } else {
                    (&mut down[i], y)
                };
                let low = *base;
                *base += total;
                layer.push((x, low, *base));
            }
            layers.push(layer);
        }
        Self { layers }
    }

    /// The least and greatest y drawn. An unstacked layer's low is only
    /// the baseline, which bars and areas add themselves.
    fn extent(&self, stacked: bool) -> (f64, f64) {
        let values = self.layers.iter().flatten();
        if stacked {
            extent(values.flat_map(|&(_, low, high)| [low, high]))
        } else {
            extent(values.map(|&(_, _, high)| high))
        }
    }
}

fn draw_bars(doc: &mut Doc, axes: &Axes, collected: &Collected, layers: &Layers, stacked: bool) {
    let XScale::Band { band, .. } = axes.x else {
        return;
    };
    let n = collected.series.len().max(1);
    let slots = if stacked { 1 } else { n };
    // A group fills 80% of its band, and a bar is at most 64 px wide.
    let bar_w = (band * 0.8 / slots as f64).min(64.0);
    let gap = if bar_w > 6.0 { 1.0 } else { 0.0 };
    let group_w = bar_w * slots as f64;
    let zero = axes.y.map(0.0);
    for (si, (series, layer)) in collected.series.iter().zip(&layers.layers).enumerate() {
        doc.el("g")
            .attr("class", "series")
            .attr("data-series", &series.name)
            .attr("fill", color(si))
            .open();
        for &(x, low, high) in layer {
            let category = collected
                .categories
                .get(x as usize)
                .map_or("", String::as_str);
            let left = axes.x.px(x) - group_w / 2.0 + if stacked { 0.0 } else { si as f64 * bar_w };
            let (y0, y1) = if stacked {
                (axes.y.map(low), axes.y.map(high))
            } else {
                (zero, axes.y.map(high))
            };
            doc.el("rect")
                .attr("class", "bar")
                .attr("data-x", category)
                .attr("data-y", &format::data(high - low))
                .num("x", left + gap / 2.0)
                .num("y", y0.min(y1))
                .num("width", (bar_w - gap).max(0.5))
                .num("height", (y1 - y0).abs())
                .close();
        }
        doc.end("g");
    }
}

fn draw_lines(doc: &mut Doc, axes: &Axes, collected: &Collected, layers: &Layers, mark: Mark) {
    let stacked_area = mark == Mark::Area && layers.layers.len() > 1;
    let zero = axes
        .y
        .map(0.0_f64.clamp(axes.y.d0.min(axes.y.d1), axes.y.d0.max(axes.y.d1)));
    for (si, (series, layer)) in collected.series.iter().zip(&layers.layers).enumerate() {
        let c = color(si);
        doc.el("g")
            .attr("class", "series")
            .attr("data-series", &series.name)
            .attr("data-points", &layer.len().to_string())
            .open();
        let mut line = PathData::default();
        for (i, &(x, _, high)) in layer.iter().enumerate() {
            let (px, py) = (axes.x.px(x), axes.y.map(high));
            if i == 0 {
                line.move_to(px, py);
            } else {
                line.line_to(px, py);
            }
        }
        if mark == Mark::Area && !layer.is_empty() {
            let mut area = PathData::default();
            for (i, &(x, _, high)) in layer.iter().enumerate() {
                let (px, py) = (axes.x.px(x), axes.y.map(high));
                if i == 0 {
                    area.move_to(px, py);
                } else {
                    area.line_to(px, py);
                }
            }
            for &(x, low, _) in layer.iter().rev() {
                let base = if stacked_area || low != 0.0 {
                    axes.y.map(low)
                } else {
                    zero
                };
                area.line_to(axes.x.px(x), base);
            }
            area.close();
            doc.el("path")
                .attr("class", "area")
                .attr("d", area.as_str())
                .attr("fill", c)
                .attr("fill-opacity", if stacked_area { "0.55" } else { "0.22" })
                .close();
        }
        if !line.is_empty() {
            doc.el("path")
                .attr("class", "line")
                .attr("d", line.as_str())
                .attr("fill", "none")
                .attr("stroke", c)
                .num("stroke-width", if mark == Mark::Line { 2.0 } else { 1.5 })
                .attr("stroke-linejoin", "round")
                .attr("stroke-linecap", "round")
                .close();
        }
        // Markers where they help: on lines with few points, and on a
        // lone point, which has no line to show it.
        let sparse = mark == Mark::Line && (layer.len() as f64) <= axes.plot.w / 14.0;
        if layer.len() == 1 || sparse {
            for &(x, low, high) in layer {
                doc.el("circle")
                    .attr("class", "point")
                    .attr("data-x", &x_data(collected, x))
                    .attr("data-y", &format::data(high - low))
                    .num("cx", axes.x.px(x))
                    .num("cy", axes.y.map(high))
                    .num("r", if mark == Mark::Line { 3.0 } else { 2.5 })
                    .attr("fill", c)
                    .attr("stroke", "#FFFFFF")
                    .num("stroke-width", 1.0)
                    .close();
            }
        }
        doc.end("g");
    }
}

/// A point's x as data: its category's label or the number.
fn x_data(collected: &Collected, x: f64) -> String {
    if collected.categories.is_empty() {
        format::data(x)
    } else {
        collected
            .categories
            .get(x as usize)
            .cloned()
            .unwrap_or_default()
    }
}
