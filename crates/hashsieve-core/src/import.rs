//! Importers for the formats hash lists arrive in.
//!
//! Each importer streams: it reads one record at a time and hands each entry to a callback, so a
//! list of any size is imported in constant memory per record. The hash kind is declared by the
//! caller, never guessed. A record that cannot be used is never dropped silently: in
//! [`Mode::Strict`] the import fails with an [`ImportError`] naming the file, record and field;
//! in [`Mode::Lenient`] it is skipped and listed in the [`ImportReport`].
//!
//! Formats (examples in `docs/HASH-LISTS.md`):
//! - [`import_lines`]: one hash per line; also `md5sum`/`sha1sum`/`sha256sum` output, whose file
//!   name becomes the entry's id. Blank lines and `#` comments are ignored.
//! - [`import_csv`]: CSV with a header row; columns are found by name, case-insensitively. This
//!   covers ThreatExchange/HMA-style PDQ lists (`hash,quality,…`).
//! - [`import_vics`]: Project VIC VICS JSON (the OData `value` array of version 2, or the `Media`
//!   array of version 1), whose media records carry MD5, SHA-1 and PhotoDNA values with a
//!   category; here the field names declare the kinds.
//!
//! ```
//! use hashsieve_core::hashes::HashKind;
//! use hashsieve_core::import::{import_csv, Mode};
//!
//! let list = "ID,MD5,Category\nx1,d41d8cd98f00b204e9800998ecf8427e,1\n";
//! let mut entries = Vec::new();
//! let report = import_csv(list.as_bytes(), "list.csv", HashKind::Md5, Mode::Strict, |e| entries.push(e))?;
//! assert_eq!(report.imported, 1);
//! assert_eq!(entries[0].id.as_deref(), Some("x1"));
//! assert_eq!(entries[0].category.as_deref(), Some("1"));
//! # Ok::<(), hashsieve_core::import::ImportError>(())
//! ```

use std::io::BufRead;

use crate::hashes::HashKind;

/// One entry of a hash list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedEntry {
    /// The declared kind.
    pub kind: HashKind,
    /// The hash value, `kind.value_len()` bytes.
    pub value: Vec<u8>,
    /// The list's identifier for the entry, if it has one.
    pub id: Option<String>,
    /// Category or label (e.g. a Project VIC category number).
    pub category: Option<String>,
    /// Where the entry came from, if the list says.
    pub source: Option<String>,
    /// PDQ quality recorded with the hash, if the list has it.
    pub quality: Option<u8>,
}

impl ImportedEntry {
    /// An entry with a value and no provenance beyond its list.
    pub fn new(kind: HashKind, value: Vec<u8>) -> ImportedEntry {
        ImportedEntry { kind, value, id: None, category: None, source: None, quality: None }
    }

    /// The same entry with an id.
    pub fn with_id(mut self, id: impl Into<String>) -> ImportedEntry {
        self.id = Some(id.into());
        self
    }

    /// The same entry with a category.
    pub fn with_category(mut self, category: impl Into<String>) -> ImportedEntry {
        self.category = Some(category.into());
        self
    }
}

/// What to do with a record that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fail the import.
    Strict,
    /// Skip the record and report it.
    Lenient,
}

/// A record that could not be imported, or a file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: record {record}{}: {reason}", field.as_ref().map(|f| format!(", field {f}")).unwrap_or_default())]
pub struct ImportError {
    /// The list's file name, as given to the importer.
    pub file: String,
    /// The 1-based line (plain lists) or record (CSV, header excluded) number; 0 for the file.
    pub record: u64,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of an import that finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries handed to the callback.
    pub imported: u64,
    /// Records skipped in [`Mode::Lenient`], each with its reason.
    pub skipped: Vec<ImportError>,
}

impl ImportReport {
    fn reject(&mut self, mode: Mode, error: ImportError) -> Result<(), ImportError> {
        match mode {
            Mode::Strict => Err(error),
            Mode::Lenient => {
                self.skipped.push(error);
                Ok(())
            }
        }
    }
}

/// Imports a list with one hash per line, or `md5sum`-style `HASH  NAME` lines (`HASH *NAME` in
/// binary mode), where NAME becomes the entry's id.
pub fn import_lines<R: BufRead>(
    mut reader: R,
    file: &str,
    kind: HashKind,
    mode: Mode,
    mut sink: impl FnMut(ImportedEntry),
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = reader.read_line(&mut line).map_err(|err| ImportError {
            file: file.to_string(),
            record: number,
            field: None,
            reason: format!("cannot be read: {err}"),
        })?;
        if read == 0 {
            return Ok(report);
        }
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (hash, name) = match text.split_once(char::is_whitespace) {
            Some((hash, rest)) => {
                let name = rest.trim_start();
                (hash, Some(name.strip_prefix('*').unwrap_or(name)))
            }
            None => (text, None),
        };
        match kind.parse_value(hash) {
            Ok(value) => {
                report.imported += 1;
                sink(ImportedEntry {
                    kind,
                    value,
                    id: name.filter(|n| !n.is_empty()).map(str::to_string),
                    category: None,
                    source: None,
                    quality: None,
                });
            }
            Err(err) => report.reject(
                mode,
                ImportError {
                    file: file.to_string(),
                    record: number,
                    field: Some("hash".into()),
                    reason: err.to_string(),
                },
            )?,
        }
    }
}

/// Header names recognised for each field, compared case-insensitively. The hash column may
/// also be named after the declared kind (`md5`, `pdq`, …).
const HASH_COLUMNS: [&str; 3] = ["hash", "value", "signal_value"];
const ID_COLUMNS: [&str; 5] = ["id", "entry_id", "mediaid", "media_id", "signal_id"];
const CATEGORY_COLUMNS: [&str; 3] = ["category", "label", "classification"];
const SOURCE_COLUMNS: [&str; 2] = ["source", "list"];
const QUALITY_COLUMNS: [&str; 1] = ["quality"];

/// Imports a CSV list with a header row. The hash column is `hash`, `value`, `signal_value` or
/// the kind's own name; `id`, `category`, `source` and `quality` columns are optional (see the
/// constants above for the names accepted).
pub fn import_csv<R: std::io::Read>(
    reader: R,
    file: &str,
    kind: HashKind,
    mode: Mode,
    mut sink: impl FnMut(ImportedEntry),
) -> Result<ImportReport, ImportError> {
    let error = |record: u64, field: Option<&str>, reason: String| ImportError {
        file: file.to_string(),
        record,
        field: field.map(str::to_string),
        reason,
    };
    let mut csv = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(reader);
    let headers =
        csv.headers().map_err(|e| error(0, None, format!("the header row cannot be read: {e}")))?.clone();
    let find = |names: &[&str]| headers.iter().position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)));
    let hash_column = find(&HASH_COLUMNS).or_else(|| find(&[kind.name()])).ok_or_else(|| {
        error(
            0,
            None,
            format!("no hash column: expected one named hash, value, signal_value or {}", kind.name()),
        )
    })?;
    let (id_column, category_column) = (find(&ID_COLUMNS), find(&CATEGORY_COLUMNS));
    let (source_column, quality_column) = (find(&SOURCE_COLUMNS), find(&QUALITY_COLUMNS));

    let mut report = ImportReport::default();
    let mut record = csv::StringRecord::new();
    let mut number = 0u64;
    loop {
        number += 1;
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(report),
            Ok(true) => {}
            Err(e) => {
                report.reject(mode, error(number, None, format!("not valid CSV: {e}")))?;
                continue;
            }
        }
        let cell = |column: Option<usize>| column.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let Some(hash) = cell(Some(hash_column)) else {
            report.reject(mode, error(number, Some(&headers[hash_column]), "empty".into()))?;
            continue;
        };
        let value = match kind.parse_value(hash) {
            Ok(value) => value,
            Err(err) => {
                report.reject(mode, error(number, Some(&headers[hash_column]), err.to_string()))?;
                continue;
            }
        };
        let quality = match cell(quality_column).map(|q| q.parse::<u8>()) {
            Some(Ok(q)) if q <= 100 => Some(q),
            Some(_) => {
                let column = &headers[quality_column.expect("a quality cell has a column")];
                report
                    .reject(mode, error(number, Some(column), "not a quality score from 0 to 100".into()))?;
                continue;
            }
            None => None,
        };
        report.imported += 1;
        sink(ImportedEntry {
            kind,
            value,
            id: cell(id_column).map(str::to_string),
            category: cell(category_column).map(str::to_string),
            source: cell(source_column).map(str::to_string),
            quality,
        });
    }
}

/// One media record of a VICS document. Unknown fields are ignored; numbers and strings are
/// both accepted where exporters differ.
#[derive(Debug, serde::Deserialize)]
struct VicsMedia {
    #[serde(rename = "MediaID", alias = "MediaId", alias = "ID", default)]
    media_id: Option<serde_json::Value>,
    #[serde(rename = "Category", default)]
    category: Option<serde_json::Value>,
    #[serde(rename = "MD5", alias = "Md5", default)]
    md5: Option<String>,
    #[serde(rename = "SHA1", alias = "Sha1", default)]
    sha1: Option<String>,
    #[serde(rename = "PhotoDNA", alias = "PhotoDna", default)]
    photodna: Option<String>,
}

fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Imports a Project VIC VICS JSON document, streaming its media array. Each media record
/// yields one entry per hash it carries among `kinds` (MD5, SHA-1, PhotoDNA), with the media id
/// as the entry id and the VICS category. A record whose hash does not parse is handled per
/// `mode`; JSON that is not well-formed fails the import (a stream cannot resynchronise).
pub fn import_vics<R: std::io::Read>(
    reader: R,
    file: &str,
    kinds: &[HashKind],
    mode: Mode,
    mut sink: impl FnMut(ImportedEntry),
) -> Result<ImportReport, ImportError> {
    use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Importer<'a, F> {
        file: &'a str,
        kinds: &'a [HashKind],
        mode: Mode,
        sink: &'a mut F,
        report: ImportReport,
        media_arrays: u32,
        /// A strict-mode rejection, carried out of serde's error type.
        rejected: Option<ImportError>,
    }

    impl<F: FnMut(ImportedEntry)> Importer<'_, F> {
        fn media(&mut self, number: u64, media: VicsMedia) -> Result<(), ImportError> {
            let id = media.media_id.as_ref().and_then(json_text);
            let category = media.category.as_ref().and_then(json_text);
            let fields = [
                (HashKind::Md5, "MD5", media.md5),
                (HashKind::Sha1, "SHA1", media.sha1),
                (HashKind::PhotoDna, "PhotoDNA", media.photodna),
            ];
            for (kind, field, text) in fields {
                let Some(text) = text.filter(|t| !t.trim().is_empty() && self.kinds.contains(&kind)) else {
                    continue;
                };
                match kind.parse_value(&text) {
                    Ok(value) => {
                        self.report.imported += 1;
                        (self.sink)(ImportedEntry {
                            kind,
                            value,
                            id: id.clone(),
                            category: category.clone(),
                            source: None,
                            quality: None,
                        });
                    }
                    Err(err) => {
                        let error = ImportError {
                            file: self.file.to_string(),
                            record: number,
                            field: Some(field.into()),
                            reason: err.to_string(),
                        };
                        self.report.reject(self.mode, error)?;
                    }
                }
            }
            Ok(())
        }
    }

    struct MediaArray<'b, 'a, F>(&'b mut Importer<'a, F>);

    impl<'de, F: FnMut(ImportedEntry)> DeserializeSeed<'de> for MediaArray<'_, '_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }

    impl<'de, F: FnMut(ImportedEntry)> Visitor<'de> for MediaArray<'_, '_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of VICS media records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            self.0.media_arrays += 1;
            let mut number = 0;
            while let Some(media) = seq.next_element::<VicsMedia>()? {
                number += 1;
                if let Err(err) = self.0.media(number, media) {
                    self.0.rejected = Some(err);
                    return Err(serde::de::Error::custom("strict import stopped"));
                }
            }
            Ok(())
        }
    }

    struct Document<'b, 'a, F>(&'b mut Importer<'a, F>);

    impl<'de, F: FnMut(ImportedEntry)> Visitor<'de> for Document<'_, '_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a VICS JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "value" || key == "Media" {
                    map.next_value_seed(MediaArray(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    let mut importer = Importer {
        file,
        kinds,
        mode,
        sink: &mut sink,
        report: ImportReport::default(),
        media_arrays: 0,
        rejected: None,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let parsed = deserializer.deserialize_map(Document(&mut importer)).and_then(|()| deserializer.end());
    let fail = |reason: String| ImportError { file: file.to_string(), record: 0, field: None, reason };
    if let Some(rejected) = importer.rejected {
        return Err(rejected);
    }
    parsed.map_err(|e| fail(format!("not a VICS JSON document: {e}")))?;
    if importer.media_arrays == 0 {
        return Err(fail("no media array (expected a \"value\" or \"Media\" array)".into()));
    }
    Ok(importer.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_lines(
        text: &str,
        kind: HashKind,
        mode: Mode,
    ) -> Result<(Vec<ImportedEntry>, ImportReport), ImportError> {
        let mut entries = Vec::new();
        let report = import_lines(text.as_bytes(), "list.txt", kind, mode, |e| entries.push(e))?;
        Ok((entries, report))
    }

    #[test]
    fn md5sum_output_and_bare_hashes_import() {
        let text = "# comment\n\nd41d8cd98f00b204e9800998ecf8427e  empty file.bin\n\
                    900150983cd24fb0d6963f7d28e17f72 *abc.txt\n0cc175b9c0f1b6a831c399e269772661\n";
        let (entries, report) = collect_lines(text, HashKind::Md5, Mode::Strict).unwrap();
        assert_eq!(report, ImportReport { imported: 3, skipped: vec![] });
        assert_eq!(entries[0].id.as_deref(), Some("empty file.bin"));
        assert_eq!(entries[1].id.as_deref(), Some("abc.txt"));
        assert_eq!(entries[2].id, None);
        assert_eq!(hex::encode(&entries[1].value), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn strict_fails_naming_the_line_and_lenient_reports_every_skip() {
        let text = "d41d8cd98f00b204e9800998ecf8427e\nnot-a-hash\n900150983cd24fb0d6963f7d28e17f72\nabc\n";
        let err = collect_lines(text, HashKind::Md5, Mode::Strict).unwrap_err();
        assert_eq!((err.file.as_str(), err.record, err.field.as_deref()), ("list.txt", 2, Some("hash")));
        assert!(err.to_string().starts_with("list.txt: record 2, field hash: a md5 value has 32 hex digits"));
        let (entries, report) = collect_lines(text, HashKind::Md5, Mode::Lenient).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(report.imported, 2);
        assert_eq!(report.skipped.iter().map(|e| e.record).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn a_64_digit_line_is_whatever_kind_is_declared() {
        let line = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n";
        for kind in [HashKind::Sha256, HashKind::Pdq, HashKind::Blake3] {
            let (entries, _) = collect_lines(line, kind, Mode::Strict).unwrap();
            assert_eq!(entries[0].kind, kind);
        }
        assert!(collect_lines(line, HashKind::Sha1, Mode::Strict).is_err());
    }

    fn collect_csv(
        text: &str,
        kind: HashKind,
        mode: Mode,
    ) -> Result<(Vec<ImportedEntry>, ImportReport), ImportError> {
        let mut entries = Vec::new();
        let report = import_csv(text.as_bytes(), "list.csv", kind, mode, |e| entries.push(e))?;
        Ok((entries, report))
    }

    #[test]
    fn threatexchange_style_pdq_csv_imports_with_quality() {
        let text = "hash,quality,signal_id,label\n\
            f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,123,bridge\n\
            D0F8F1CCC0F4A84D0A370A3A228F67F0B36E2ED5B6623E1D33E6339C4E9C9B22,87,,\n";
        let (entries, report) = collect_csv(text, HashKind::Pdq, Mode::Strict).unwrap();
        assert_eq!(report.imported, 2);
        assert_eq!(entries[0].quality, Some(100));
        assert_eq!(entries[0].id.as_deref(), Some("123"));
        assert_eq!(entries[0].category.as_deref(), Some("bridge"));
        assert_eq!(entries[1].id, None, "empty cells are absent values");
        assert_eq!(entries[1].value[0], 0xd0);
    }

    #[test]
    fn csv_columns_are_found_by_name_in_any_case_and_order() {
        let text = "Category,SHA1,Source\n2,a9993e364706816aba3e25717850c26c9cd0d89d,hotline-x\n";
        let (entries, _) = collect_csv(text, HashKind::Sha1, Mode::Strict).unwrap();
        assert_eq!(entries[0].category.as_deref(), Some("2"));
        assert_eq!(entries[0].source.as_deref(), Some("hotline-x"));
        assert_eq!(hex::encode(&entries[0].value), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn csv_errors_name_record_and_field() {
        let err = collect_csv("id,category\n1,2\n", HashKind::Md5, Mode::Strict).unwrap_err();
        assert_eq!(err.record, 0);
        assert!(err.reason.contains("no hash column"), "{err}");

        let text = "md5,quality\nd41d8cd98f00b204e9800998ecf8427e,\nshort,\nd41d8cd98f00b204e9800998ecf8427e,101\n,\n";
        let err = collect_csv(text, HashKind::Md5, Mode::Strict).unwrap_err();
        assert_eq!((err.record, err.field.as_deref()), (2, Some("md5")));
        let (entries, report) = collect_csv(text, HashKind::Md5, Mode::Lenient).unwrap();
        assert_eq!(entries.len(), 1);
        let skipped: Vec<(u64, Option<&str>)> =
            report.skipped.iter().map(|e| (e.record, e.field.as_deref())).collect();
        assert_eq!(skipped, [(2, Some("md5")), (3, Some("quality")), (4, Some("md5"))]);
    }

    fn collect_vics(text: &str, mode: Mode) -> Result<(Vec<ImportedEntry>, ImportReport), ImportError> {
        let mut entries = Vec::new();
        let kinds = [HashKind::Md5, HashKind::Sha1, HashKind::PhotoDna];
        let report = import_vics(text.as_bytes(), "vics.json", &kinds, mode, |e| entries.push(e))?;
        Ok((entries, report))
    }

    #[test]
    fn vics_odata_documents_stream_media_with_categories() {
        let photodna = hex::encode([7u8; 144]);
        let text = format!(
            r#"{{"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media",
               "value":[
                 {{"MediaID":1,"Category":1,"MD5":"D41D8CD98F00B204E9800998ECF8427E","SHA1":"a9993e364706816aba3e25717850c26c9cd0d89d","MediaSize":0,"IsPrecategorized":"false"}},
                 {{"MediaID":"m-2","Category":0,"MD5":"","PhotoDNA":"{photodna}","Tags":["x"]}}
               ]}}"#
        );
        let (entries, report) = collect_vics(&text, Mode::Strict).unwrap();
        assert_eq!(report.imported, 3);
        let summary: Vec<(HashKind, Option<&str>, Option<&str>)> =
            entries.iter().map(|e| (e.kind, e.id.as_deref(), e.category.as_deref())).collect();
        assert_eq!(
            summary,
            [
                (HashKind::Md5, Some("1"), Some("1")),
                (HashKind::Sha1, Some("1"), Some("1")),
                (HashKind::PhotoDna, Some("m-2"), Some("0")),
            ]
        );
        assert_eq!(entries[2].value, vec![7u8; 144]);
    }

    #[test]
    fn vics_version_one_media_arrays_and_kind_selection() {
        let text = r#"{"Media":[{"MediaID":5,"Category":2,"MD5":"d41d8cd98f00b204e9800998ecf8427e","SHA1":"a9993e364706816aba3e25717850c26c9cd0d89d"}]}"#;
        let mut entries = Vec::new();
        let report =
            import_vics(text.as_bytes(), "v1.json", &[HashKind::Sha1], Mode::Strict, |e| entries.push(e))
                .unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(entries[0].kind, HashKind::Sha1);
    }

    #[test]
    fn vics_bad_records_and_bad_documents() {
        let text = r#"{"value":[{"MediaID":1,"MD5":"d41d8cd98f00b204e9800998ecf8427e"},{"MediaID":2,"MD5":"xyz"},{"MediaID":3,"SHA1":"a9993e364706816aba3e25717850c26c9cd0d89d"}]}"#;
        let err = collect_vics(text, Mode::Strict).unwrap_err();
        assert_eq!((err.record, err.field.as_deref()), (2, Some("MD5")));
        let (entries, report) = collect_vics(text, Mode::Lenient).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(report.skipped.len(), 1);

        for bad in [
            r#"{"value":[{"MediaID":1,"MD5":"d41d8cd98f00b204e9800998ecf8427e"}"#,
            "[]",
            r#"{"other":1}"#,
            "",
        ] {
            let err = collect_vics(bad, Mode::Lenient).unwrap_err();
            assert_eq!(err.record, 0, "{bad}: {err}");
        }
    }
}
