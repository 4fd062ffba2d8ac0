//! `cordon sql`: the model as SQL functions over governed tables. Statements come from `-e`,
//! `-f`, or stdin (an interactive prompt with history when stdin is a terminal); each one is
//! one audited run. Results print as an aligned table on a terminal, CSV or JSON otherwise, or
//! go to a file with `-o` (CSV or Parquet, written atomically).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cordon::RunError;
use cordon::Runtime;
use cordon::drivers::sql::{ResultSink, SqlRequest, SqlSession, StatementOutput};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::args::{RuntimeArgs, current_dir};
use crate::run::ProgressBar;

#[derive(clap::Args)]
pub struct SqlArgs {
    /// The consumer's policy file: its bindings are the governed tables, its [table.*] the
    /// plain ones.
    #[arg(long)]
    policy: PathBuf,
    /// A package whose model the session offers as SQL functions (repeatable): a signed
    /// .cordon file, or a build directory holding cordon.toml.
    #[arg(long = "package", value_name = "PACKAGE")]
    packages: Vec<PathBuf>,
    /// Accept packages that are not signed (local development only).
    #[arg(long)]
    allow_unsigned: bool,
    /// The policy role to run as (required when the policy defines roles).
    #[arg(long)]
    role: Option<String>,
    /// The SQL to run (one or more statements separated by `;`).
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// A file of SQL statements to run.
    #[arg(short = 'f', long, value_name = "FILE.sql")]
    file: Option<PathBuf>,
    /// How results print [default: table on a terminal, csv otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the last statement's result to this file instead (.csv or .parquet), atomically.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// No progress line and no row counts.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(args.runtime.config()?)?;
    if args.allow_unsigned {
        eprintln!(
            "warning: --allow-unsigned: an unsigned package would run without any check of who made it; for local development only"
        );
    }
    let request = SqlRequest {
        policy: args.policy.clone(),
        base_dir: current_dir()?,
        packages: args.packages.clone(),
        role: args.role.clone(),
        allow_unsigned: args.allow_unsigned,
    };
    let session = SqlSession::open(&runtime, &request).context("cannot open the SQL session")?;
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let text = match (&args.execute, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        (None, None) if std::io::stdin().is_terminal() && args.output.is_none() => {
            return prompt(&session, format, args.quiet);
        }
        (None, None) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read SQL from stdin")?;
            text
        }
    };
    let statements = session.parse(&text)?;
    if statements.is_empty() {
        anyhow::bail!("no SQL statement to run");
    }
    let last = statements.len() - 1;
    for (index, statement) in statements.into_iter().enumerate() {
        match &args.output {
            Some(path) if index == last => {
                let started = Instant::now();
                let mut file = FileResult {
                    path: path.clone(),
                    writer: None,
                };
                let progress = Arc::new(ProgressBar::delayed(
                    !args.quiet && std::io::stderr().is_terminal(),
                    Duration::from_secs(1),
                ));
                let run = session.execute_into(statement, Arc::clone(&progress) as _, &mut file);
                progress.finish();
                run?;
                // Only a statement that ran to its end puts its file in place.
                let rows = match file.writer {
                    Some(writer) => writer.commit()?,
                    None => 0,
                };
                if !args.quiet {
                    eprintln!(
                        "wrote {rows} rows to {} in {:.3} s",
                        path.display(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Some(_) => {
                run_statement(&session, statement, args.quiet)?;
            }
            None => {
                let output = run_statement(&session, statement, args.quiet)?;
                print_output(&output, format)?;
            }
        }
    }
    Ok(())
}

/// `-o`: the result written to its file as it comes, put in place only at the end.
struct FileResult {
    path: PathBuf,
    writer: Option<cordon::sink::TableWriter>,
}

impl ResultSink for FileResult {
    fn start(&mut self, schema: &SchemaRef, model_derived: &[bool]) -> Result<(), RunError> {
        self.writer = Some(cordon::sink::TableWriter::create(
            &self.path,
            schema,
            model_derived,
        )?);
        Ok(())
    }

    fn batch(&mut self, batch: RecordBatch) -> Result<(), RunError> {
        match &mut self.writer {
            Some(writer) => Ok(writer.write(&batch)?),
            None => Err(RunError::Internal(
                "a result batch before its schema".into(),
            )),
        }
    }
}

/// Runs one statement with a progress line on stderr (on a terminal), and reports its rows.
fn run_statement(
    session: &SqlSession,
    statement: datafusion::sql::parser::Statement,
    quiet: bool,
) -> anyhow::Result<StatementOutput> {
    let started = Instant::now();
    let visible = !quiet && std::io::stderr().is_terminal();
    let progress = Arc::new(ProgressBar::delayed(visible, Duration::from_secs(1)));
    let result = session.execute(statement, Arc::clone(&progress) as _);
    progress.finish();
    let output = result?;
    if !quiet {
        let rows: usize = output.batches.iter().map(|b| b.num_rows()).sum();
        eprintln!(
            "{rows} row(s) in {:.3} s{}",
            started.elapsed().as_secs_f64(),
            if output.rows_scored > 0 {
                format!(", {} scored by the model", output.rows_scored)
            } else {
                String::new()
            }
        );
    }
    Ok(output)
}

fn print_output(output: &StatementOutput, format: Format) -> anyhow::Result<()> {
    // A statement without a result (CREATE VIEW, SET) prints nothing.
    if output.schema.fields().is_empty() {
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            let batches = printable(&output.batches)?;
            let table = pretty_format_batches(&batches)?;
            if output.batches.is_empty() {
                writeln!(out, "(no rows)")?;
            } else {
                writeln!(out, "{table}")?;
            }
        }
        Format::Csv => {
            cordon::sink::write_csv(
                &mut out,
                &output.schema,
                &output.batches,
                &output.model_derived,
            )?;
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut out);
            let batches: Vec<_> = output.batches.iter().collect();
            writer.write_batches(&batches)?;
            writer.finish()?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The interactive prompt: statements end with `;`, history kept for the session only (no
/// file is written: Cordon writes only what the policy names), `\q` or Ctrl-D to leave.
fn prompt(session: &SqlSession, format: Format, quiet: bool) -> anyhow::Result<()> {
    use rustyline::error::ReadlineError;

    let (tables, functions) = session.catalog();
    eprintln!("cordon sql: governed tables {}", tables.join(", "));
    for (function, scalar) in &functions {
        eprintln!(
            "  {function}('<table>'){}",
            if *scalar {
                format!(", {function}(columns...)")
            } else {
                String::new()
            }
        );
    }
    eprintln!("statements end with `;`; \\q to quit");
    let mut editor = rustyline::DefaultEditor::new().context("cannot start the prompt")?;
    let mut pending = String::new();
    loop {
        let line = match editor.readline(if pending.is_empty() {
            "cordon> "
        } else {
            "     -> "
        }) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            Err(error) => return Err(error).context("cannot read the prompt"),
        };
        if pending.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
            return Ok(());
        }
        pending.push_str(&line);
        pending.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(text.trim());
        // An error ends the statement, not the session.
        let result = session
            .parse(&text)
            .map_err(anyhow::Error::from)
            .and_then(|statements| {
                for statement in statements {
                    let output = run_statement(session, statement, quiet)?;
                    print_output(&output, format)?;
                }
                Ok(())
            });
        if let Err(error) = result {
            eprintln!("error: {error:#}");
        }
    }
}

/// The batches with every control character of their text shown as `\u{fffd}`: a terminal
/// would take a model's (or a table's) escape sequences as commands (retitle, rewrite the
/// screen, hide lines).
fn printable(batches: &[RecordBatch]) -> anyhow::Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if !matches!(
                field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
                continue;
            }
            let text = cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let shown: StringArray = (0..text.len())
                .map(|row| {
                    text.is_valid(row).then(|| {
                        text.value(row)
                            .chars()
                            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                            .collect::<String>()
                    })
                })
                .collect();
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(Arc::new(shown) as _);
        }
        out.push(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?);
    }
    Ok(out)
}
