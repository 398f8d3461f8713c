//! Tables: the first rows of a result as a grid, and pivot tables, which
//! aggregate values by row and column keys and are drawn as the same grid.
//!
//! A grid shows the rows and columns that fit the image, each column as
//! wide as its widest text (up to a limit), numbers aligned right; notes
//! say what was left out.

use std::collections::HashMap;

use crate::data::{Kind, Rows};
use crate::error::Result;
use crate::format;
use crate::options::{Aggregation, PivotOptions, TableOptions};
use crate::render::{FAINT, GRID, INK, Page, Rect, and_more};
use crate::text;

const SIZE: f64 = 12.0;
const ROW_H: f64 = 24.0;
const CELL_PAD: f64 = 8.0;
const MIN_COL: f64 = 56.0;
const MAX_COL: f64 = 260.0;
/// The most column headers a pivot makes from its column keys and values.
const MAX_PIVOT_COLUMNS: usize = 60;
/// The height a note under the grid takes.
const NOTE_H: f64 = 16.0;

/// A grid to draw: headers, which columns hold numbers, and cells (`None`
/// is a NULL).
#[derive(Debug, Default)]
struct Grid {
    headers: Vec<String>,
    numeric: Vec<bool>,
    cells: Vec<Vec<Option<String>>>,
}

/// How many rows of a grid fit in `body` (at least one).
fn rows_that_fit(body: Rect) -> usize {
    (((body.h - ROW_H) / ROW_H).floor() as usize).max(1)
}

/// How many columns could fit at their narrowest.
fn columns_that_fit(body: Rect) -> usize {
    ((body.w / MIN_COL).floor() as usize).max(1)
}

pub(crate) fn table(page: &mut Page, rows: &Rows<'_>, o: &TableOptions) -> Result<()> {
    let names: Vec<(String, String)> = if o.columns.is_empty() {
        rows.names()
            .iter()
            .map(|n| ("options.columns".to_owned(), n.clone()))
            .collect()
    } else {
        o.columns
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("options.columns[{i}]"), n.clone()))
            .collect()
    };
    let mut columns = Vec::with_capacity(names.len());
    for (field, name) in &names {
        columns.push(rows.column(field, name)?);
    }
    if rows.len() == 0 || columns.is_empty() {
        page.empty("No rows");
        return Ok(());
    }
    // The notes take room from the body, but are known only once the rows
    // that fit are: room is kept for a note on rows, and one on columns
    // when there are more than could fit.
    let columns_note = columns.len() > columns_that_fit(page.body());
    let provisional = Rect {
        h: page.body().h - NOTE_H * if columns_note { 2.0 } else { 1.0 },
        ..page.body()
    };
    let page_size = o.page_size.map_or(usize::MAX, |p| p.max(1) as usize);
    let shown_rows = rows_that_fit(provisional).min(page_size).min(rows.len());
    let shown_cols = columns_that_fit(provisional).min(columns.len());
    let mut grid = Grid::default();
    let mut cells_by_column = Vec::with_capacity(shown_cols);
    for column in &columns[..shown_cols] {
        grid.headers.push(column.name.clone());
        let numeric = column.kind() == Kind::Number;
        grid.numeric.push(numeric);
        let cells = if numeric && !column.is_integer() {
            let values: Vec<Option<f64>> = column.numbers()?.into_iter().take(shown_rows).collect();
            number_cells(&values)
        } else if column.kind() == Kind::Time {
            column.labels()?.into_iter().take(shown_rows).collect()
        } else {
            column.head_texts(shown_rows)?
        };
        cells_by_column.push(cells);
    }
    // NaN and infinity read as numbers would be NULLs here: show the text.
    for (c, column) in columns[..shown_cols].iter().enumerate() {
        if grid.numeric[c] && !column.is_integer() {
            let raw = column.head_texts(shown_rows)?;
            for (cell, raw) in cells_by_column[c].iter_mut().zip(raw) {
                if cell.is_none() {
                    *cell = raw;
                }
            }
        }
    }
    grid.cells = (0..shown_rows)
        .map(|r| {
            cells_by_column
                .iter()
                .map(|col| col.get(r).cloned().flatten())
                .collect()
        })
        .collect();
    let more_rows = page.take_more_rows();
    if more_rows {
        page.note(format!(
            "First {} rows shown; the result has more than {}",
            format::fixed(shown_rows as f64, 0, true),
            format::fixed(rows.len() as f64, 0, true)
        ));
    } else if shown_rows < rows.len() {
        page.note(format!(
            "First {} of {} rows shown",
            format::fixed(shown_rows as f64, 0, true),
            format::fixed(rows.len() as f64, 0, true)
        ));
    }
    draw_grid(page, grid, columns.len() - shown_cols, "table");
    Ok(())
}

/// Numbers written with the same decimals down a column (the most any of
/// them needs, up to 6), so that points line up.
fn number_cells(values: &[Option<f64>]) -> Vec<Option<String>> {
    let decimals = values
        .iter()
        .flatten()
        .map(|v| {
            format::value(*v)
                .split_once('.')
                .map_or(0, |(_, fraction)| fraction.len())
        })
        .max()
        .unwrap_or(0)
        .min(6);
    values
        .iter()
        .map(|v| v.map(|v| format::fixed(v, decimals, true)))
        .collect()
}

/// What a pivot cell gathers.
#[derive(Debug, Clone, Copy)]
struct Acc {
    sum: f64,
    count: usize,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Acc {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn result(&self, aggregation: Aggregation) -> Option<f64> {
        match aggregation {
            Aggregation::Count => Some(self.count as f64),
            _ if self.count == 0 => None,
            Aggregation::Sum => Some(self.sum),
            Aggregation::Avg => Some(self.sum / self.count as f64),
            Aggregation::Min => Some(self.min),
            Aggregation::Max => Some(self.max),
        }
    }
}

/// Keys in order of first appearance.
#[derive(Debug, Default)]
struct Keys {
    index: HashMap<Vec<String>, usize>,
    keys: Vec<Vec<String>>,
}

impl Keys {
    fn get(&mut self, key: Vec<String>) -> usize {
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        self.keys.push(key.clone());
        self.index.insert(key, self.keys.len() - 1);
        self.keys.len() - 1
    }
}

fn key_at(columns: &[Vec<Option<String>>], row: usize) -> Vec<String> {
    columns
        .iter()
        .map(|c| {
            c.get(row)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "NULL".to_owned())
        })
        .collect()
}

pub(crate) fn pivot(page: &mut Page, rows: &Rows<'_>, o: &PivotOptions) -> Result<()> {
    let mut row_cols = Vec::new();
    for (i, name) in o.rows.iter().enumerate() {
        row_cols.push(rows.column(&format!("options.rows[{i}]"), name)?.labels()?);
    }
    let mut col_cols = Vec::new();
    for (i, name) in o.columns.iter().enumerate() {
        col_cols.push(
            rows.column(&format!("options.columns[{i}]"), name)?
                .labels()?,
        );
    }
    let mut values = Vec::new();
    for (i, name) in o.values.iter().enumerate() {
        let column = rows.column(&format!("options.values[{i}]"), name)?;
        // Counting needs no numbers: a value is counted when it is not NULL.
        let numbers = if o.aggregation == Aggregation::Count && column.kind() != Kind::Number {
            column
                .texts()?
                .into_iter()
                .map(|t| t.map(|_| 1.0))
                .collect()
        } else {
            column.numbers()?
        };
        values.push(numbers);
    }
    if rows.len() == 0 {
        page.empty("No rows");
        return Ok(());
    }

    let mut row_keys = Keys::default();
    let mut col_keys = Keys::default();
    let mut cells: HashMap<(usize, usize, usize), Acc> = HashMap::new();
    for row in 0..rows.len() {
        let r = row_keys.get(key_at(&row_cols, row));
        let c = col_keys.get(key_at(&col_cols, row));
        for (v, column) in values.iter().enumerate() {
            let acc = cells.entry((r, c, v)).or_default();
            if let Some(x) = column.get(row).copied().flatten() {
                acc.add(x);
            }
        }
    }

    let value_title = |v: usize| format!("{} of {}", o.aggregation.as_str(), o.values[v]);
    let mut data_columns: Vec<(usize, usize, String)> = Vec::new();
    for (c, key) in col_keys.keys.iter().enumerate() {
        for v in 0..o.values.len() {
            let title = match (key.is_empty(), o.values.len()) {
                (true, _) => value_title(v),
                (false, 1) => key.join(" · "),
                (false, _) => format!("{} · {}", key.join(" · "), value_title(v)),
            };
            data_columns.push((c, v, title));
        }
    }
    let all_data_columns = data_columns.len();
    data_columns.truncate(MAX_PIVOT_COLUMNS);

    let mut grid = Grid::default();
    for name in &o.rows {
        grid.headers.push(name.clone());
        grid.numeric.push(false);
    }
    for (_, _, title) in &data_columns {
        grid.headers.push(title.clone());
        grid.numeric.push(true);
    }
    let columns_note = o.rows.len() + data_columns.len() > columns_that_fit(page.body());
    let fit = rows_that_fit(Rect {
        h: page.body().h - NOTE_H * if columns_note { 2.0 } else { 1.0 },
        ..page.body()
    });
    let shown = row_keys.keys.len().min(fit);
    // Column by column, so that each column's numbers share their decimals.
    let mut by_column: Vec<Vec<Option<String>>> = (0..o.rows.len())
        .map(|k| {
            row_keys.keys[..shown]
                .iter()
                .map(|key| key.get(k).cloned())
                .collect()
        })
        .collect();
    for (c, v, _) in &data_columns {
        let values: Vec<Option<f64>> = (0..shown)
            .map(|r| {
                cells
                    .get(&(r, *c, *v))
                    .and_then(|acc| acc.result(o.aggregation))
            })
            .collect();
        // An empty cell had no row, which is not a NULL.
        by_column.push(
            number_cells(&values)
                .into_iter()
                .map(|cell| Some(cell.unwrap_or_default()))
                .collect(),
        );
    }
    grid.cells = (0..shown)
        .map(|r| by_column.iter().map(|col| col[r].clone()).collect())
        .collect();
    if row_keys.keys.len() > fit {
        page.note(format!(
            "First {} of {} pivot rows shown",
            format::fixed(fit as f64, 0, true),
            format::fixed(row_keys.keys.len() as f64, 0, true)
        ));
    }
    let hidden = all_data_columns - data_columns.len();
    draw_grid(page, grid, hidden, "pivot");
    Ok(())
}

/// Draws `grid` in the page's body: column widths from their texts,
/// shrunk to fit (or columns left out, counted with `hidden_columns`).
fn draw_grid(page: &mut Page, mut grid: Grid, mut hidden_columns: usize, class: &str) {
    let body_guess = page.body();
    let natural: Vec<f64> = (0..grid.headers.len())
        .map(|c| {
            let header = text::width(&text::one_line(&grid.headers[c]), SIZE);
            let widest = grid
                .cells
                .iter()
                .filter_map(|row| row.get(c).cloned().flatten())
                .map(|cell| text::width(&text::one_line(&cell), SIZE))
                .fold(header, f64::max);
            (widest + 2.0 * CELL_PAD).clamp(MIN_COL, MAX_COL)
        })
        .collect();
    // A column gives up at most half its width; columns are kept while
    // their narrowest still fit.
    let narrowest: Vec<f64> = natural
        .iter()
        .map(|w| w.min(MIN_COL.max(w * 0.5)))
        .collect();
    let mut keep = 0;
    let mut used = 0.0;
    for n in &narrowest {
        if used + n > body_guess.w {
            break;
        }
        used += n;
        keep += 1;
    }
    let keep = keep.max(1).min(grid.headers.len());
    hidden_columns += grid.headers.len() - keep;
    grid.headers.truncate(keep);
    grid.numeric.truncate(keep);
    for row in &mut grid.cells {
        row.truncate(keep);
    }
    if hidden_columns > 0 {
        page.note(format!(
            "First {} columns shown, {}",
            keep,
            and_more(hidden_columns, "not shown")
        ));
    }
    let body = page.body();
    let total: f64 = natural[..keep].iter().sum();
    // Fill the width: narrow tables stretch; wide ones shrink each column
    // toward its narrowest, in proportion to what it can give up.
    let widths: Vec<f64> = if total <= body.w {
        natural[..keep]
            .iter()
            .map(|w| w * body.w / total.max(1.0))
            .collect()
    } else {
        let floor: f64 = narrowest[..keep].iter().sum();
        let slack = total - floor;
        let left = (body.w - floor).max(0.0);
        natural[..keep]
            .iter()
            .zip(&narrowest)
            .map(|(w, n)| {
                n + if slack > 0.0 {
                    (w - n) * left / slack
                } else {
                    0.0
                }
            })
            .collect()
    };
    let rows_fit = rows_that_fit(body).min(grid.cells.len());

    let doc = &mut page.doc;
    doc.group(class);
    doc.el("rect")
        .attr("class", "header-background")
        .num("x", body.x)
        .num("y", body.y)
        .num("width", body.w)
        .num("height", ROW_H)
        .attr("fill", "#F3F5F7")
        .close();
    for r in 0..rows_fit {
        let y = body.y + (r + 1) as f64 * ROW_H;
        if r % 2 == 1 {
            doc.el("rect")
                .attr("class", "stripe")
                .num("x", body.x)
                .num("y", y)
                .num("width", body.w)
                .num("height", ROW_H)
                .attr("fill", "#FAFBFC")
                .close();
        }
        doc.el("line")
            .num("x1", body.x)
            .num("x2", body.right())
            .num("y1", y + ROW_H)
            .num("y2", y + ROW_H)
            .attr("stroke", GRID)
            .close();
    }
    doc.el("line")
        .num("x1", body.x)
        .num("x2", body.right())
        .num("y1", body.y + ROW_H)
        .num("y2", body.y + ROW_H)
        .attr("stroke", "#AEB6BF")
        .close();
    let mut x = body.x;
    for (c, header) in grid.headers.iter().enumerate() {
        let w = widths[c];
        let (tx, anchor) = if grid.numeric[c] {
            (x + w - CELL_PAD, "end")
        } else {
            (x + CELL_PAD, "start")
        };
        let room = (w - 2.0 * CELL_PAD).max(4.0);
        doc.el("text")
            .attr("class", "header")
            .attr("data-col", header)
            .num("x", tx)
            .num("y", body.y + ROW_H / 2.0 + SIZE * 0.35)
            .attr("text-anchor", anchor)
            .num("font-size", SIZE)
            .attr("fill", INK)
            .text(&text::fit(&text::one_line(header), SIZE, room));
        for (r, row) in grid.cells.iter().take(rows_fit).enumerate() {
            let y = body.y + (r + 1) as f64 * ROW_H + ROW_H / 2.0 + SIZE * 0.35;
            let (shown, class, fill) = match row.get(c).cloned().flatten() {
                Some(cell) => (text::fit(&text::one_line(&cell), SIZE, room), "cell", INK),
                None => ("NULL".to_owned(), "cell null", FAINT),
            };
            doc.el("text")
                .attr("class", class)
                .attr("data-row", &r.to_string())
                .attr("data-col", header)
                .num("x", tx)
                .num("y", y)
                .attr("text-anchor", anchor)
                .num("font-size", SIZE)
                .attr("fill", fill)
                .text(&shown);
        }
        x += w;
    }
    doc.end("g");
}
