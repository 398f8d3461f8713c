//! Pie charts: the values added up per label, the largest slices first,
//! the rest gathered in an "Other" slice, and a legend with each slice's
//! share and value.

use std::collections::HashMap;
use std::f64::consts::{FRAC_PI_2, TAU};

use crate::data::Rows;
use crate::error::Result;
use crate::format;
use crate::options::PieOptions;
use crate::render::{INK, MUTED, Page, color, nulls_note};
use crate::svg::PathData;
use crate::text;

/// The most slices drawn; past it, the largest `MAX_SLICES - 1` and
/// "Other" (so no colour repeats).
pub(crate) const MAX_SLICES: usize = crate::render::PALETTE.len();
const OTHER_COLOR: &str = "#B8BEC6";
const LEGEND_SIZE: f64 = 12.0;
const ROW_H: f64 = 22.0;

/// A slice: its label, value and colour.
#[derive(Debug)]
struct Slice {
    label: String,
    value: f64,
    color: &'static str,
}

pub(crate) fn draw(page: &mut Page, rows: &Rows<'_>, o: &PieOptions) -> Result<()> {
    let labels = rows.column("options.label", &o.label)?.labels()?;
    let values = rows.column("options.value", &o.value)?.numbers()?;
    if rows.len() == 0 {
        page.empty("No rows");
        return Ok(());
    }
    let mut order: Vec<String> = Vec::new();
    let mut sums: HashMap<String, f64> = HashMap::new();
    let (mut nulls, mut negatives) = (0, 0);
    for (label, value) in labels.iter().zip(&values) {
        let Some(value) = value else {
            nulls += 1;
            continue;
        };
        if *value < 0.0 {
            negatives += 1;
            continue;
        }
        let label = label.clone().unwrap_or_else(|| "NULL".to_owned());
        match sums.get_mut(&label) {
            Some(sum) => *sum += value,
            None => {
                sums.insert(label.clone(), *value);
                order.push(label);
            }
        }
    }
    let mut slices: Vec<(String, f64)> = order
        .into_iter()
        .map(|label| {
            let value = sums.get(&label).copied().unwrap_or(0.0);
            (label, value)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    // Largest first; equal values keep the rows' order.
    slices.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = slices.iter().map(|s| s.1).sum();

    let mut drawn: Vec<Slice> = Vec::new();
    let mut hidden = 0;
    if slices.len() > MAX_SLICES {
        hidden = slices.len() - (MAX_SLICES - 1);
        let other: f64 = slices[MAX_SLICES - 1..].iter().map(|s| s.1).sum();
        slices.truncate(MAX_SLICES - 1);
        slices.push(("Other".to_owned(), other));
    }
    for (i, (label, value)) in slices.into_iter().enumerate() {
        let color = if hidden > 0 && i == MAX_SLICES - 1 {
            OTHER_COLOR
        } else {
            color(i)
        };
        drawn.push(Slice {
            label,
            value,
            color,
        });
    }
    if hidden > 0 {
        page.note(format!(
            "Top {} slices shown, and {} more in Other",
            MAX_SLICES - 1,
            format::fixed(hidden as f64, 0, true)
        ));
    }
    if negatives > 0 {
        page.note(if negatives == 1 {
            "1 negative value left out".to_owned()
        } else {
            format!(
                "{} negative values left out",
                format::fixed(negatives as f64, 0, true)
            )
        });
    }
    if let Some(note) = nulls_note(nulls, "NULL value", "NULL values") {
        page.note(note);
    }
    if drawn.is_empty() || !(total > 0.0 && total.is_finite()) {
        page.empty("No values above zero to draw");
        return Ok(());
    }

    let body = page.body();
    let share = |v: f64| v / total;
    let percent = |v: f64| {
        let p = share(v) * 100.0;
        if p < 0.1 {
            "<0.1%".to_owned()
        } else {
            format!("{p:.1}%")
        }
    };
    // The legend is three columns: name, share, value; numbers aligned
    // right.
    let column = |texts: &[String]| {
        texts
            .iter()
            .map(|t| text::width(t, LEGEND_SIZE))
            .fold(0.0, f64::max)
    };
    let shares: Vec<String> = drawn.iter().map(|s| percent(s.value)).collect();
    let mut amounts: Vec<String> = drawn.iter().map(|s| format::value(s.value)).collect();
    let share_w = column(&shares);
    let mut amount_w = column(&amounts);
    // The legend takes at most 60% of the width: names are cut to what is
    // left, and on a small image the values make way for them.
    let most = body.w * 0.6;
    let fixed = |amount_w: f64| {
        LEGEND_SIZE + 6.0 + 14.0 + share_w + if amount_w > 0.0 { 12.0 + amount_w } else { 0.0 }
    };
    if most - fixed(amount_w) < 60.0 {
        amounts.iter_mut().for_each(String::clear);
        amount_w = 0.0;
    }
    let name_room = (most - fixed(amount_w)).clamp(20.0, 200.0);
    let names: Vec<String> = drawn
        .iter()
        .map(|s| text::fit(&text::one_line(&s.label), LEGEND_SIZE, name_room))
        .collect();
    let name_w = column(&names);
    let legend_w = fixed(amount_w) + name_w;
    let radius = ((body.w - legend_w - 40.0).min(body.h) / 2.0).max(10.0);
    let block_w = 2.0 * radius + 40.0 + legend_w;
    let left = body.x + ((body.w - block_w) / 2.0).max(0.0);
    let (cx, cy) = (left + radius, body.y + body.h / 2.0);

    page.doc.group("slices");
    let mut angle = -FRAC_PI_2;
    for slice in &drawn {
        let sweep = share(slice.value) * TAU;
        let el = if drawn.len() == 1 {
            page.doc
                .el("circle")
                .num("cx", cx)
                .num("cy", cy)
                .num("r", radius)
        } else {
            let (x0, y0) = (cx + radius * angle.cos(), cy + radius * angle.sin());
            let end = angle + sweep;
            let (x1, y1) = (cx + radius * end.cos(), cy + radius * end.sin());
            let mut d = PathData::default();
            d.move_to(cx, cy);
            d.line_to(x0, y0);
            d.arc_to(radius, sweep > std::f64::consts::PI, x1, y1);
            d.close();
            page.doc.el("path").attr("d", d.as_str())
        };
        el.attr("class", "slice")
            .attr("data-label", &slice.label)
            .attr("data-value", &format::data(slice.value))
            .attr(
                "data-percent",
                &format!("{:.1}", share(slice.value) * 100.0),
            )
            .attr("fill", slice.color)
            .attr("stroke", "#FFFFFF")
            .num("stroke-width", 1.5)
            .close();
        angle += sweep;
    }
    // Shares on the slices wide enough to hold them.
    let mut angle = -FRAC_PI_2;
    for slice in &drawn {
        let sweep = share(slice.value) * TAU;
        let label = format!("{:.0}%", share(slice.value) * 100.0);
        let size = (radius / 9.0).clamp(10.0, 14.0);
        let mid = angle + sweep / 2.0;
        let at = if drawn.len() == 1 { 0.0 } else { radius * 0.66 };
        let room = if drawn.len() == 1 {
            2.0 * radius
        } else {
            2.0 * at * (sweep / 2.0).sin().abs()
        };
        if sweep >= 0.3 && text::width(&label, size) + 6.0 < room && size * 1.6 < radius {
            page.doc
                .el("text")
                .attr("class", "slice-label")
                .num("x", cx + at * mid.cos())
                .num("y", cy + at * mid.sin() + size * 0.35)
                .attr("text-anchor", "middle")
                .num("font-size", size)
                .attr("fill", text_on(slice.color))
                .text(&label);
        }
        angle += sweep;
    }
    page.doc.end("g");

    let fits = ((body.h / ROW_H).floor() as usize).max(1);
    let legend_x = left + 2.0 * radius + 40.0;
    let share_right = legend_x + LEGEND_SIZE + 6.0 + name_w + 14.0 + share_w;
    let amount_right = share_right + 12.0 + amount_w;
    let with_amounts = amount_w > 0.0;
    let top = cy - (drawn.len().min(fits) as f64 * ROW_H) / 2.0;
    let doc = &mut page.doc;
    doc.group("legend");
    for (i, slice) in drawn.iter().enumerate().take(fits) {
        let y = top + i as f64 * ROW_H + 4.0;
        let baseline = y + LEGEND_SIZE * 0.85;
        doc.el("g")
            .attr("class", "legend-entry")
            .attr("data-series", &slice.label)
            .open();
        doc.el("rect")
            .attr("class", "swatch")
            .num("x", legend_x)
            .num("y", y + 1.0)
            .num("width", LEGEND_SIZE - 1.0)
            .num("height", LEGEND_SIZE - 1.0)
            .num("rx", 2.0)
            .attr("fill", slice.color)
            .close();
        doc.el("text")
            .attr("class", "legend-label")
            .num("x", legend_x + LEGEND_SIZE + 6.0)
            .num("y", baseline)
            .num("font-size", LEGEND_SIZE)
            .attr("fill", INK)
            .text(&names[i]);
        doc.el("text")
            .attr("class", "legend-detail")
            .num("x", share_right)
            .num("y", baseline)
            .attr("text-anchor", "end")
            .num("font-size", LEGEND_SIZE)
            .attr("fill", INK)
            .text(&shares[i]);
        if with_amounts {
            doc.el("text")
                .attr("class", "legend-value")
                .num("x", amount_right)
                .num("y", baseline)
                .attr("text-anchor", "end")
                .num("font-size", LEGEND_SIZE)
                .attr("fill", MUTED)
                .text(&amounts[i]);
        }
        doc.end("g");
    }
    doc.end("g");
    Ok(())
}

/// Ink that reads on `fill` (a `#RRGGBB` colour): white on dark colours,
/// near-black on light ones, by relative luminance.
fn text_on(fill: &str) -> &'static str {
    let channel = |i: usize| {
        let v = fill
            .get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map_or(0.0, |v| f64::from(v) / 255.0);
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    if luminance > 0.3 {
        crate::render::INK
    } else {
        "#FFFFFF"
    }
}

#[cfg(test)]
mod tests {
    use super::text_on;

    #[test]
    fn slice_labels_contrast_with_their_slice() {
        assert_eq!(text_on("#0072B2"), "#FFFFFF");
        assert_eq!(text_on("#F0E442"), crate::render::INK);
        assert_eq!(text_on("#E69F00"), crate::render::INK);
    }
}
