//! The x and y axes that lines, bars, areas and scatter plots share: the
//! x axis as categories, time or numbers, tick labels that do not overlap
//! (turned, thinned or fewer), grid lines and axis titles.
//!
//! The x axis is a category axis for bars and for text columns, a time
//! axis for dates and timestamps, and a linear one for numbers.

use crate::format;
use crate::render::{AXIS, GRID, INK, MUTED, Rect};
use crate::scale::{self, Linear, Ticks};
use crate::svg::Doc;
use crate::text;

const TICK_SIZE: f64 = 11.0;
const AXIS_TITLE_SIZE: f64 = 12.0;
/// The longest a category label gets before it is cut.
const MAX_CATEGORY_LABEL: f64 = 140.0;

/// What the x axis spans.
#[derive(Debug, Clone)]
pub(crate) enum XDomain {
    /// Numbers or instants from `min` to `max`; `nice` widens to round
    /// values (scatter), otherwise the data's extent is the domain.
    Continuous {
        min: f64,
        max: f64,
        time: bool,
        nice: bool,
    },
    /// Categories, in order.
    Band(Vec<String>),
}

/// The x axis, laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum XScale {
    Continuous(Linear),
    /// Category `i` is centred at `x0 + (i + 0.5) * band`.
    Band {
        x0: f64,
        band: f64,
    },
}

impl XScale {
    pub(crate) fn px(&self, x: f64) -> f64 {
        match self {
            XScale::Continuous(s) => s.map(x),
            XScale::Band { x0, band } => x0 + (x + 0.5) * band,
        }
    }
}

/// Both axes and the plot area between them.
#[derive(Debug)]
pub(crate) struct Axes {
    pub(crate) plot: Rect,
    pub(crate) x: XScale,
    pub(crate) x_ticks: Vec<(f64, String)>,
    /// Category labels turned 45 degrees to fit.
    pub(crate) x_rotated: bool,
    pub(crate) y: Linear,
    pub(crate) y_ticks: Ticks,
}

/// An axis title: the option when given (none when empty), else the
/// default.
pub(crate) fn axis_title(option: Option<&str>, default: Option<&str>) -> Option<String> {
    let title = option.or(default)?;
    let title = text::one_line(title);
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// The least and greatest of `values` that are finite; (0, 0) for none.
pub(crate) fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

fn tick_count(length: f64, spacing: f64) -> usize {
    ((length / spacing).floor() as usize).clamp(2, 12)
}

/// Lays both axes out in `body`: room for the y labels on the left, the x
/// labels (turned when they do not fit) and the titles.
pub(crate) fn layout(
    body: Rect,
    x_domain: &XDomain,
    y_min: f64,
    y_max: f64,
    x_title: &Option<String>,
    y_title: &Option<String>,
) -> Axes {
    let title_room = AXIS_TITLE_SIZE + 10.0;
    let left_of_labels = body.x + if y_title.is_some() { title_room } else { 0.0 };
    let x_title_h = if x_title.is_some() { title_room } else { 0.0 };
    let widest = |ticks: &Ticks| {
        ticks
            .labels
            .iter()
            .map(|l| text::width(l, TICK_SIZE))
            .fold(0.0, f64::max)
    };
    // A first guess of the plot's height gives the y labels' width, which
    // gives the plot's width and so the x labels' height; then the y ticks
    // are placed for the height that is left, and once more if their
    // labels came out wider than the room made for them.
    let guess_h = (body.h - 24.0 - x_title_h).max(10.0);
    let mut label_w = widest(&scale::nice_within(y_min, y_max, guess_h, 48.0).2);
    let mut attempt = 0;
    loop {
        let plot_x = left_of_labels + label_w + 8.0;
        let plot_w = (body.right() - plot_x - 8.0).max(10.0);
        let (x, x_ticks, x_rotated, labels_h) = layout_x(x_domain, plot_x, plot_w, body.h);
        let plot_h = (body.h - labels_h - x_title_h).max(10.0);
        let (lo, hi, y_ticks) = scale::nice_within(y_min, y_max, plot_h, 48.0);
        let needed = widest(&y_ticks);
        if needed <= label_w || attempt == 1 {
            let plot = Rect {
                x: plot_x,
                y: body.y,
                w: plot_w,
                h: plot_h,
            };
            let y = Linear {
                d0: lo,
                d1: hi,
                r0: plot.bottom(),
                r1: plot.y,
            };
            return Axes {
                plot,
                x,
                x_ticks,
                x_rotated,
                y,
                y_ticks,
            };
        }
        label_w = needed;
        attempt += 1;
    }
}

/// The x scale, its ticks (pixel, label), whether labels are turned, and
/// the height the labels take.
fn layout_x(
    domain: &XDomain,
    x0: f64,
    w: f64,
    body_h: f64,
) -> (XScale, Vec<(f64, String)>, bool, f64) {
    let straight_h = TICK_SIZE + 14.0;
    match domain {
        XDomain::Continuous {
            min,
            max,
            time,
            nice,
        } => {
            let (lo, hi) = if *nice || min == max {
                let (lo, hi, _) = scale::nice(*min, *max, tick_count(w, 90.0));
                if *time {
                    // Round numbers are no use for instants: a little air.
                    let pad = ((max - min) * 0.03).max(if min == max { 3_600_000.0 } else { 0.0 });
                    (min - pad, max + pad)
                } else {
                    (lo, hi)
                }
            } else {
                (*min, *max)
            };
            let s = Linear {
                d0: lo,
                d1: hi,
                r0: x0,
                r1: x0 + w,
            };
            let mut chosen = Vec::new();
            for count in (2..=tick_count(w, 80.0)).rev() {
                let ticks = if *time {
                    scale::time(lo, hi, count)
                } else {
                    scale::inner(lo, hi, count)
                };
                let placed: Vec<(f64, String)> = ticks
                    .values
                    .iter()
                    .zip(ticks.labels)
                    .map(|(v, l)| (s.map(*v), l))
                    .collect();
                let fits = placed.windows(2).all(|pair| {
                    let gap = pair[1].0 - pair[0].0;
                    gap >= (text::width(&pair[0].1, TICK_SIZE) + text::width(&pair[1].1, TICK_SIZE))
                        / 2.0
                        + 12.0
                });
                chosen = placed;
                if fits {
                    break;
                }
            }
            (XScale::Continuous(s), chosen, false, straight_h)
        }
        XDomain::Band(categories) => {
            let n = categories.len().max(1);
            let band = w / n as f64;
            let labels: Vec<String> = categories
                .iter()
                .map(|c| text::fit(&text::one_line(c), TICK_SIZE, MAX_CATEGORY_LABEL))
                .collect();
            let widest = labels
                .iter()
                .map(|l| text::width(l, TICK_SIZE))
                .fold(0.0, f64::max);
            let scale = XScale::Band { x0, band };
            if widest + 8.0 <= band {
                let ticks = labels
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| (scale.px(i as f64), l))
                    .collect();
                return (scale, ticks, false, straight_h);
            }
            // Turned 45 degrees, a label needs about 1.5 times the font
            // size across; thin out to every k-th when even that is too much.
            let every = ((TICK_SIZE * 1.6) / band).ceil().max(1.0) as usize;
            // At most a third of the body's height for labels.
            let room = (body_h / 3.0 - 10.0).max(20.0);
            let longest = (room / std::f64::consts::FRAC_1_SQRT_2).min(MAX_CATEGORY_LABEL);
            let ticks: Vec<(f64, String)> = categories
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == 0)
                .map(|(i, c)| {
                    let px = scale.px(i as f64);
                    // A turned label reaches 0.7 of its length left of its
                    // tick: the first ones are cut to stay on the canvas.
                    let room = ((px - 4.0) / std::f64::consts::FRAC_1_SQRT_2).min(longest);
                    (px, text::fit(&text::one_line(c), TICK_SIZE, room))
                })
                .collect();
            let widest = ticks
                .iter()
                .map(|(_, l)| text::width(l, TICK_SIZE))
                .fold(0.0, f64::max);
            let h = widest * std::f64::consts::FRAC_1_SQRT_2 + TICK_SIZE + 12.0;
            (scale, ticks, true, h)
        }
    }
}

pub(crate) fn draw_axes(
    doc: &mut Doc,
    axes: &Axes,
    x_title: &Option<String>,
    y_title: &Option<String>,
) {
    let plot = axes.plot;
    doc.group("grid");
    for v in &axes.y_ticks.values {
        let y = axes.y.map(*v);
        doc.el("line")
            .num("x1", plot.x)
            .num("x2", plot.right())
            .num("y1", y)
            .num("y2", y)
            .attr("stroke", if *v == 0.0 { AXIS } else { GRID })
            .num("stroke-width", 1.0)
            .close();
    }
    doc.end("g");

    doc.el("g")
        .attr("class", "axis")
        .attr("data-axis", "y")
        .open();
    for (v, label) in axes.y_ticks.values.iter().zip(&axes.y_ticks.labels) {
        doc.el("text")
            .attr("class", "tick")
            .attr("data-value", &format::data(*v))
            .num("x", plot.x - 8.0)
            .num("y", axes.y.map(*v) + TICK_SIZE * 0.35)
            .attr("text-anchor", "end")
            .num("font-size", TICK_SIZE)
            .attr("fill", MUTED)
            .text(label);
    }
    doc.end("g");

    doc.el("g")
        .attr("class", "axis")
        .attr("data-axis", "x")
        .open();
    doc.el("line")
        .attr("class", "domain")
        .num("x1", plot.x)
        .num("x2", plot.right())
        .num("y1", plot.bottom())
        .num("y2", plot.bottom())
        .attr("stroke", AXIS)
        .num("stroke-width", 1.0)
        .close();
    let label_y = plot.bottom() + 6.0 + TICK_SIZE;
    let page_right = plot.right() + 8.0 + crate::render::PAD - 2.0;
    for (x, label) in &axes.x_ticks {
        doc.el("line")
            .num("x1", *x)
            .num("x2", *x)
            .num("y1", plot.bottom())
            .num("y2", plot.bottom() + 4.0)
            .attr("stroke", AXIS)
            .close();
        let el = doc
            .el("text")
            .attr("class", "tick")
            .num("font-size", TICK_SIZE)
            .attr("fill", MUTED);
        if axes.x_rotated {
            let y = plot.bottom() + 8.0;
            el.num("x", *x)
                .num("y", y + TICK_SIZE * 0.35)
                .attr("text-anchor", "end")
                .attr("transform", &rotate(-45.0, *x, y))
                .text(label);
        } else {
            // Kept inside the canvas: the last label may be wider than the
            // room right of its tick.
            let half = text::width(label, TICK_SIZE) / 2.0;
            let (x, anchor) = if x + half > page_right {
                (page_right, "end")
            } else if x - half < 2.0 {
                (2.0, "start")
            } else {
                (*x, "middle")
            };
            el.num("x", x)
                .num("y", label_y)
                .attr("text-anchor", anchor)
                .text(label);
        }
    }
    doc.end("g");

    if let Some(title) = x_title {
        let fitted = text::fit(title, AXIS_TITLE_SIZE, plot.w);
        let labels_h = if axes.x_rotated {
            axes.x_ticks
                .iter()
                .map(|(_, l)| text::width(l, TICK_SIZE))
                .fold(0.0, f64::max)
                * std::f64::consts::FRAC_1_SQRT_2
                + TICK_SIZE
                + 12.0
        } else {
            TICK_SIZE + 14.0
        };
        doc.el("text")
            .attr("class", "axis-title")
            .attr("data-axis", "x")
            .num("x", plot.x + plot.w / 2.0)
            .num("y", plot.bottom() + labels_h + AXIS_TITLE_SIZE + 2.0)
            .attr("text-anchor", "middle")
            .num("font-size", AXIS_TITLE_SIZE)
            .attr("fill", INK)
            .text(&fitted);
    }
    if let Some(title) = y_title {
        let fitted = text::fit(title, AXIS_TITLE_SIZE, plot.h);
        let x = crate::render::PAD + AXIS_TITLE_SIZE * 0.85;
        let y = plot.y + plot.h / 2.0;
        doc.el("text")
            .attr("class", "axis-title")
            .attr("data-axis", "y")
            .num("x", x)
            .num("y", y)
            .attr("text-anchor", "middle")
            .attr("transform", &rotate(-90.0, x, y))
            .num("font-size", AXIS_TITLE_SIZE)
            .attr("fill", INK)
            .text(&fitted);
    }
}

fn rotate(degrees: f64, x: f64, y: f64) -> String {
    let mut s = format!("rotate({degrees} ");
    crate::svg::coord(&mut s, x);
    s.push(' ');
    crate::svg::coord(&mut s, y);
    s.push(')');
    s
}
