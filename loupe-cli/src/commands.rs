//! The commands: parse, call the library, print.

use std::io::{IsTerminal, Read};

use std::sync::Arc;

use loupe_core::{
    Datasource, Error, ExecutionRequest, Executor, ExportOptions, Limits, ParquetResultStore,
    ResultId, Statement, StreamingExecutor, Template,
};
use tokio_util::sync::CancellationToken;

use crate::args::{Cli, Command, QueryArgs, SchemaArgs};
use crate::failure::Failure;
use crate::output;

pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Query(args) => query(args).await,
        Command::Sources => {
            sources();
            Ok(())
        }
        Command::Schema(args) => schema(args).await,
        Command::Runner(args) => crate::runner::run(args).await,
        Command::Admin(args) => crate::admin::run(args).await,
    }
}

async fn query(args: QueryArgs) -> Result<(), Failure> {
    let sql = read_sql(&args)?;
    let (defs, values) = loupe_core::parameters_from_flags(&args.params).map_err(Failure::Usage)?;
    let source = loupe_connectors::registry().from_url(&args.source)?;
    let statement = Template::parse(&sql, source.dialect())
        .map_err(Error::from)?
        .bind(&defs, &values)?;
    let limits = Limits {
        timeout: args.timeout,
        max_rows: args.max_rows,
        max_bytes: args.max_bytes,
    };
    if let Some(location) = &args.store {
        return store(location, source, statement, limits).await;
    }
    // Open the output first: a bad path should not cost a query.
    let sink = output::Sink::open(args.output.as_deref(), args.format)?;
    let stream = source.execute(&statement, &limits).await?;
    let options = ExportOptions::default().with_csv_formulas(args.csv_formulas);
    output::write(stream, sink, args.format, args.preview_rows, options).await
}

/// Runs the statement into a result store, as the server's runner does.
async fn store(
    location: &str,
    source: Arc<dyn Datasource>,
    statement: Statement,
    limits: Limits,
) -> Result<(), Failure> {
    let store = Arc::new(ParquetResultStore::open(location)?);
    let executor = StreamingExecutor::new(store);
    let request = ExecutionRequest {
        result_id: ResultId::generate(),
        datasource: source,
        statement,
        limits,
    };
    let outcome = executor.execute(request, CancellationToken::new()).await?;
    let result = &outcome.result;
    let truncated = result
        .truncation
        .map(|t| format!(" (truncated: {t})"))
        .unwrap_or_default();
    output::print(&format!(
        "{}\t{} rows\t{} bytes\t{:.2}s{truncated}\n",
        result.id,
        result.rows,
        result.bytes,
        outcome.elapsed.as_secs_f64()
    ))
}

fn read_sql(args: &QueryArgs) -> Result<String, Failure> {
    let sql = if let Some(path) = &args.file {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?
    } else {
        match args.sql.as_deref() {
            Some("-") | None => {
                let mut stdin = std::io::stdin();
                if stdin.is_terminal() {
                    return Err(Failure::Usage(
                        "no SQL given: pass it as an argument, with --file, or on standard input"
                            .into(),
                    ));
                }
                let mut sql = String::new();
                stdin
                    .read_to_string(&mut sql)
                    .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
                sql
            }
            Some(sql) => sql.to_owned(),
        }
    };
    if sql.trim().is_empty() {
        return Err(Failure::Usage("the SQL is empty".into()));
    }
    Ok(sql)
}

fn sources() {
    let registry = loupe_connectors::registry();
    for factory in registry.factories() {
        let schemes = factory.url_schemes().join(", ");
        println!(
            "{}  {} (URL schemes: {schemes})",
            factory.kind(),
            factory.description()
        );
        for option in factory.options() {
            let mut notes = Vec::new();
            if option.required {
                notes.push("required".to_owned());
            }
            if option.secret {
                notes.push("secret".to_owned());
            }
            if let Some(default) = option.default {
                notes.push(format!("default {default}"));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" [{}]", notes.join(", "))
            };
            println!("    {:<18} {}{notes}", option.name, option.description);
        }
    }
}

async fn schema(args: SchemaArgs) -> Result<(), Failure> {
    let source = loupe_connectors::registry().from_url(&args.source)?;
    let catalog = source.introspect().await?;
    let text = if args.json {
        serde_json::to_string_pretty(&catalog)
            .map_err(|e| Failure::Failed(format!("cannot encode the catalog: {e}")))?
    } else {
        output::catalog_text(&catalog)
    };
    output::print(&text)
}
