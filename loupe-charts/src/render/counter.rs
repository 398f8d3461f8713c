//! Counters: the first row's value as one big number, its label, and how
//! far it is from a target.

use crate::data::{Kind, Rows};
use crate::error::Result;
use crate::format::{self, NumberFormat};
use crate::options::CounterOptions;
use crate::render::{FAINT, INK, MUTED, Page};
use crate::text;

const UP: &str = "#1A7F37";
const DOWN: &str = "#CF222E";

pub(crate) fn draw(page: &mut Page, rows: &Rows<'_>, o: &CounterOptions) -> Result<()> {
    let value_col = rows.column("options.value", &o.value)?;
    let target = match &o.target {
        Some(name) => Some(rows.column("options.target", name)?.numbers()?),
        None => None,
    };
    let number_format = o.format.as_deref().map(NumberFormat::parse).transpose()?;
    let write = |v: f64| match &number_format {
        Some(f) => f.format(v),
        None => format::value(v),
    };
    let number = match value_col.kind() {
        Kind::Number => Some(value_col.numbers()?.first().copied().flatten()),
        _ => None,
    };
    if rows.len() == 0 {
        page.empty("No rows");
        return Ok(());
    }
    let (shown, raw, null) = match number {
        Some(Some(v)) => (write(v), format::data(v), false),
        Some(None) => ("NULL".to_owned(), String::new(), true),
        None => match value_col.texts()?.into_iter().next().flatten() {
            Some(t) => (text::one_line(&t), t, false),
            None => ("NULL".to_owned(), String::new(), true),
        },
    };
    let label = text::one_line(o.label.as_deref().unwrap_or(&o.value));
    let label = label.trim();
    let target = target.and_then(|t| t.first().copied().flatten());

    let body = page.body();
    let mut size = (body.h * 0.38).min(120.0);
    let w = text::width(&shown, size);
    if w > body.w * 0.92 {
        size *= body.w * 0.92 / w;
    }
    let size = size.max(10.0);
    let shown = text::fit(&shown, size, body.w);
    let label_size = (size * 0.2).clamp(12.0, 22.0);
    // Room under the number for its descenders ("$", ",").
    let gap = size * 0.2 + 8.0;
    let delta_size = (label_size * 0.85).max(11.0);
    let has_label = !label.is_empty();
    let delta = match (number.flatten(), target) {
        (Some(v), Some(t)) => Some((v, t)),
        _ => None,
    };
    // The block: the number's cap height, then the label, then the delta.
    let mut block = size * 0.73;
    if has_label {
        block += gap + label_size;
    }
    if delta.is_some() {
        block += 12.0 + delta_size;
    }
    let cx = body.x + body.w / 2.0;
    let mut y = body.y + (body.h - block) / 2.0 + size * 0.73;
    let el = page
        .doc
        .el("text")
        .attr("class", "counter-value")
        .attr("data-value", &raw)
        .num("x", cx)
        .num("y", y)
        .attr("text-anchor", "middle")
        .num("font-size", size)
        .attr("fill", if null { FAINT } else { INK });
    el.text(&shown);
    if has_label {
        y += gap + label_size;
        let fitted = text::fit(label, label_size, body.w);
        page.doc
            .el("text")
            .attr("class", "counter-label")
            .num("x", cx)
            .num("y", y)
            .attr("text-anchor", "middle")
            .num("font-size", label_size)
            .attr("fill", MUTED)
            .text(&fitted);
    }
    if let Some((v, t)) = delta {
        y += 12.0 + delta_size;
        let diff = v - t;
        let relative = if t != 0.0 {
            format!(" ({:+.1}%)", diff / t.abs() * 100.0)
        } else {
            String::new()
        };
        let arrow = if diff >= 0.0 { "▲" } else { "▼" };
        let line = format!(
            "{arrow} {}{relative} vs target {}",
            write(diff.abs()),
            write(t)
        );
        let fitted = text::fit(&line, delta_size, body.w);
        page.doc
            .el("text")
            .attr("class", "counter-target")
            .attr("data-target", &format::data(t))
            .attr("data-delta", &format::data(diff))
            .num("x", cx)
            .num("y", y)
            .attr("text-anchor", "middle")
            .num("font-size", delta_size)
            .attr("fill", if diff >= 0.0 { UP } else { DOWN })
            .text(&fitted);
    }
    Ok(())
}
