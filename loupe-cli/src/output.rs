//! Where and how a query's result is written: streamed batch by batch in
//! a file format, or as a bounded, aligned preview.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches;
use futures::StreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use loupe_core::{
    BatchWriter, CatalogInfo, CsvFormulas, Error, ExportFormat, ExportOptions, SendableBatchStream,
    batch_data_size,
};

use crate::args::OutputFormat;
use crate::failure::Failure;

/// Longest cell shown in the table preview, in characters.
const MAX_CELL: usize = 48;

/// The destination of a result.
pub(crate) struct Sink {
    out: Box<dyn Write + Send>,
    path: Option<String>,
}

impl Sink {
    pub(crate) fn open(path: Option<&Path>, format: OutputFormat) -> Result<Self, Failure> {
        match path {
            Some(path) => {
                let file = File::create(path)
                    .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
                Ok(Self {
                    out: Box::new(BufWriter::with_capacity(1 << 20, file)),
                    path: Some(path.display().to_string()),
                })
            }
            None => {
                let stdout = std::io::stdout();
                if let Some(binary) = export_format(format).filter(|f| f.is_binary())
                    && stdout.is_terminal()
                {
                    return Err(Failure::Usage(format!(
                        "{binary} is a binary format; write it to a file with --output, or pipe it"
                    )));
                }
                Ok(Self {
                    out: Box::new(BufWriter::with_capacity(1 << 16, stdout)),
                    path: None,
                })
            }
        }
    }
}

fn export_format(format: OutputFormat) -> Option<ExportFormat> {
    Some(match format {
        OutputFormat::Table => return None,
        OutputFormat::Csv => ExportFormat::Csv,
        OutputFormat::Json => ExportFormat::Json,
        OutputFormat::Ndjson => ExportFormat::Ndjson,
        OutputFormat::Parquet => ExportFormat::Parquet,
        OutputFormat::Arrow => ExportFormat::Arrow,
        OutputFormat::Xlsx => ExportFormat::Xlsx,
    })
}

/// Rows, bytes and time, shown while a query runs (on a terminal only).
struct Progress {
    bar: Option<ProgressBar>,
    rows: u64,
    bytes: u64,
    started: Instant,
}

impl Progress {
    fn start() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message("running");
            bar
        });
        Self {
            bar,
            rows: 0,
            bytes: 0,
            started: Instant::now(),
        }
    }

    fn add(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        self.bytes += batch_data_size(batch);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} rows, {}", self.rows, HumanBytes(self.bytes)));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Parses `--csv-formulas`, by core's names for the choices.
pub(crate) fn csv_formulas(text: &str) -> Result<CsvFormulas, String> {
    CsvFormulas::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = CsvFormulas::ALL.iter().map(|c| c.name()).collect();
        format!("{text:?} is not one of: {}", names.join(", "))
    })
}

/// Writes the stream to the sink in `format`, batch by batch.
pub(crate) async fn write(
    mut stream: SendableBatchStream,
    mut sink: Sink,
    format: OutputFormat,
    preview_rows: usize,
    options: ExportOptions,
) -> Result<(), Failure> {
    let mut progress = Progress::start();
    let result = match export_format(format) {
        Some(export) => {
            let mut writer =
                BatchWriter::with_options(export, &mut sink.out, stream.schema(), options)?;
            let mut streamed = Ok(());
            while let Some(batch) = stream.next().await {
                match batch.and_then(|b| {
                    progress.add(&b);
                    writer.write(&b)
                }) {
                    Ok(()) => {}
                    Err(e) => {
                        streamed = Err(e);
                        break;
                    }
                }
            }
            streamed.and_then(|()| writer.finish().map(|_| ()))
        }
        None => preview(&mut stream, &mut sink, &mut progress, preview_rows).await,
    };
    progress.finish();
    result?;
    sink.out.flush().map_err(|e| Failure::from(io_error(e)))?;
    if let Some(truncation) = stream.truncation() {
        eprintln!("loupe: the result is truncated: {truncation}");
    }
    if let Some(path) = &sink.path
        && std::io::stderr().is_terminal()
    {
        eprintln!(
            "loupe: wrote {} rows to {path} in {:.1}s",
            progress.rows,
            progress.started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn io_error(source: std::io::Error) -> Error {
    Error::Io {
        message: "cannot write the output".into(),
        source,
    }
}

/// Keeps the first rows for display and counts the rest without keeping them.
async fn preview(
    stream: &mut SendableBatchStream,
    sink: &mut Sink,
    progress: &mut Progress,
    preview_rows: usize,
) -> Result<(), Error> {
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut kept_rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        progress.add(&batch);
        if kept_rows < preview_rows {
            let take = batch.num_rows().min(preview_rows - kept_rows);
            kept_rows += take;
            kept.push(batch.slice(0, take));
        }
    }
    progress.finish();
    let table = preview_table(&stream.schema(), &kept)?;
    let total = progress.rows;
    let footer = if (kept_rows as u64) < total {
        format!("{kept_rows} of {total} rows shown")
    } else if total == 1 {
        "1 row".to_owned()
    } else {
        format!("{total} rows")
    };
    writeln!(sink.out, "{table}\n{footer}").map_err(io_error)
}

/// An aligned table of `batches`, with long cells cut short.
fn preview_table(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Result<String, Error> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    let text_schema = Arc::new(Schema::new(fields));
    let options = FormatOptions::default().with_null("NULL");
    let mut text_batches = Vec::with_capacity(batches.len().max(1));
    for batch in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for column in batch.columns() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let cells: StringArray = (0..column.len())
                .map(|i| Some(shorten(&formatter.value(i).to_string())))
                .collect();
            columns.push(Arc::new(cells));
        }
        text_batches.push(RecordBatch::try_new(text_schema.clone(), columns)?);
    }
    if text_batches.is_empty() {
        text_batches.push(RecordBatch::new_empty(text_schema));
    }
    Ok(pretty_format_batches(&text_batches)?.to_string())
}

fn shorten(cell: &str) -> String {
    let cell = cell.replace(['\n', '\r', '\t'], " ");
    if cell.chars().count() <= MAX_CELL {
        cell
    } else {
        let cut: String = cell.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    }
}

/// The catalog as indented text.
pub(crate) fn catalog_text(catalog: &CatalogInfo) -> String {
    let mut out = String::new();
    for schema in &catalog.schemas {
        for table in &schema.tables {
            let about = table
                .description
                .as_deref()
                .map(|d| format!("  -- {d}"))
                .unwrap_or_default();
            out.push_str(&format!("{}.{}{about}\n", schema.name, table.name));
            let width = table
                .columns
                .iter()
                .map(|c| c.name.len())
                .max()
                .unwrap_or(0);
            for column in &table.columns {
                let null = if column.nullable { "" } else { " not null" };
                out.push_str(&format!(
                    "    {:<width$}  {}{null}\n",
                    column.name, column.data_type
                ));
            }
        }
    }
    if out.is_empty() {
        out.push_str("(no tables)\n");
    }
    out
}

/// Prints to standard output, treating a closed pipe as the end.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::from(io_error(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut() {
        assert_eq!(shorten("a\nb"), "a b");
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), MAX_CELL);
        assert!(shorten(&long).ends_with('…'));
    }
}
