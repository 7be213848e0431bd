//! Writing one record per input to standard output, as JSON Lines or CSV.
//!
//! Both formats carry the same fields. JSON Lines leaves out what was not computed; CSV has a
//! fixed header chosen from what was requested, with empty cells where a value is missing, so
//! a spreadsheet or `csv` tool sees the same columns on every row.

use std::collections::HashMap;
use std::io::{self, Write};

use hashsieve_core::pdq::Dihedral;
use hashsieve_core::signals::{PdqMode, ReadError, SignalOptions, Signals};
use serde::Serialize;

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Writes records in one format.
pub enum RecordWriter<W: Write> {
    Json(W),
    Csv { writer: Box<csv::Writer<W>>, columns: Vec<String> },
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    path: &'a str,
    #[serde(flatten)]
    signals: &'a Signals,
}

#[derive(Serialize)]
struct JsonFailure<'a> {
    path: &'a str,
    error: String,
}

impl<W: Write> RecordWriter<W> {
    /// A writer for `format`; a CSV writer prints its header at once.
    pub fn new(format: Format, options: &SignalOptions, out: W) -> io::Result<Self> {
        Ok(match format {
            Format::Json => RecordWriter::Json(out),
            Format::Csv => {
                let columns = csv_columns(options);
                let mut writer = Box::new(csv::Writer::from_writer(out));
                writer.write_record(&columns)?;
                RecordWriter::Csv { writer, columns }
            }
        })
    }

    /// Writes the record of one input, named `path` (`-` for standard input).
    pub fn write(&mut self, path: &str, result: &Result<Signals, ReadError>) -> io::Result<()> {
        match self {
            RecordWriter::Json(out) => {
                match result {
                    Ok(signals) => serde_json::to_writer(&mut *out, &JsonRecord { path, signals })?,
                    Err(err) => serde_json::to_writer(
                        &mut *out,
                        &JsonFailure { path, error: err.source.to_string() },
                    )?,
                }
                out.write_all(b"\n")
            }
            RecordWriter::Csv { writer, columns } => {
                let row = match result {
                    Ok(signals) => csv_row(columns, path, signals),
                    Err(err) => {
                        let mut row = vec![String::new(); columns.len()];
                        row[0] = path.to_string();
                        *row.last_mut().expect("columns end with errors") = err.source.to_string();
                        row
                    }
                };
                writer.write_record(&row).map_err(io::Error::from)
            }
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            RecordWriter::Json(out) => out.flush(),
            RecordWriter::Csv { writer, .. } => writer.flush(),
        }
    }
}

fn csv_columns(options: &SignalOptions) -> Vec<String> {
    let mut columns = vec!["path".to_string(), "size".to_string()];
    columns.extend(options.digests.iter().map(|kind| kind.name().to_string()));
    if options.needs_image() {
        columns.extend(["format", "width", "height"].map(String::from));
    }
    match options.pdq {
        PdqMode::Off => {}
        PdqMode::Hash => columns.extend(["pdq", "pdq_quality"].map(String::from)),
        PdqMode::Dihedral => {
            columns.extend(["pdq", "pdq_quality"].map(String::from));
            columns.extend(Dihedral::ALL[1..].iter().map(|d| format!("pdq_{}", d.name())));
        }
    }
    columns.extend(options.image_hashes.iter().map(|&kind| kind.name().to_string()));
    columns.push("errors".to_string());
    columns
}

fn csv_row(columns: &[String], path: &str, signals: &Signals) -> Vec<String> {
    let mut values: HashMap<String, String> = HashMap::new();
    values.insert("path".into(), path.to_string());
    values.insert("size".into(), signals.size.to_string());
    for (kind, value) in signals.digests.iter() {
        values.insert(kind.name().into(), hex::encode(value));
    }
    if let Some(image) = &signals.image {
        values.insert("format".into(), image.format.clone());
        values.insert("width".into(), image.width.to_string());
        values.insert("height".into(), image.height.to_string());
    }
    if let Some(pdq) = &signals.pdq {
        values.insert("pdq".into(), pdq.hash.to_hex());
        values.insert("pdq_quality".into(), pdq.quality.to_string());
        for (variant, hash) in Dihedral::ALL.iter().zip(pdq.dihedral.iter().flatten()).skip(1) {
            values.insert(format!("pdq_{}", variant.name()), hash.to_hex());
        }
    }
    for (kind, hash) in &signals.image_hashes {
        values.insert(kind.name().into(), hash.to_string());
    }
    let errors: Vec<String> = signals.errors.iter().map(ToString::to_string).collect();
    values.insert("errors".into(), errors.join("; "));
    columns.iter().map(|column| values.remove(column).unwrap_or_default()).collect()
}
