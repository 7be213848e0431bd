//! Provenance: which list an entry came from, its id, category and source.
//!
//! Entries of every hash kind point at a record by number; identical provenance is stored once,
//! so a VICS media record with an MD5, a SHA-1 and a PhotoDNA value has one record, and a list
//! with no ids or categories has one record per list. Records are 32 bytes:
//!
//! ```text
//! u32 list number, u8 quality (255 = none), 3 bytes zero,
//! (u32 offset, u32 length) × 3 into the strings section: id, category, source;
//! a length of u32::MAX means absent
//! ```

use std::collections::HashMap;
use std::ops::Range;

use super::IndexError;
use super::section::{SectionView, SectionWriter};

const RECORD_LEN: usize = 32;
const ABSENT: u32 = u32::MAX;
const NO_QUALITY: u8 = 255;

/// One record's contents, owned, as the builder collects them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RecordKey {
    pub(crate) list: u32,
    pub(crate) quality: Option<u8>,
    pub(crate) id: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) source: Option<String>,
}

/// Collects distinct records and their strings.
#[derive(Debug, Default)]
pub(crate) struct RecordsBuilder {
    numbers: HashMap<RecordKey, u32>,
    records: Vec<u8>,
    strings: Vec<u8>,
    string_offsets: HashMap<String, u32>,
}

impl RecordsBuilder {
    /// The record's number, adding it if it is new.
    pub(crate) fn intern(&mut self, key: RecordKey) -> Result<u32, IndexError> {
        if let Some(&number) = self.numbers.get(&key) {
            return Ok(number);
        }
        let number = u32::try_from(self.numbers.len())
            .ok()
            .filter(|&n| n < u32::MAX)
            .ok_or_else(|| IndexError::TooLarge("more than 4 billion distinct records".into()))?;
        self.records.extend(key.list.to_le_bytes());
        self.records.extend([key.quality.unwrap_or(NO_QUALITY), 0, 0, 0]);
        for text in [&key.id, &key.category, &key.source] {
            let (offset, len) = match text {
                None => (0, ABSENT),
                Some(text) => (self.string(text)?, text.len() as u32),
            };
            self.records.extend(offset.to_le_bytes());
            self.records.extend(len.to_le_bytes());
        }
        self.numbers.insert(key, number);
        Ok(number)
    }

    fn string(&mut self, text: &str) -> Result<u32, IndexError> {
        if let Some(&offset) = self.string_offsets.get(text) {
            return Ok(offset);
        }
        let offset = u32::try_from(self.strings.len())
            .ok()
            .filter(|_| self.strings.len() + text.len() < ABSENT as usize)
            .ok_or_else(|| IndexError::TooLarge("more than 4 GiB of ids and categories".into()))?;
        self.strings.extend(text.as_bytes());
        self.string_offsets.insert(text.to_string(), offset);
        Ok(offset)
    }

    /// The records section and the strings section.
    pub(crate) fn sections(&self) -> (Vec<u8>, Vec<u8>) {
        let mut records = SectionWriter::default();
        records.field((self.records.len() / RECORD_LEN) as u64).array(self.records.clone());
        let mut strings = SectionWriter::default();
        strings.array(self.strings.clone());
        (records.finish(), strings.finish())
    }
}

/// An entry's provenance, borrowed from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The list's number in [`Index::lists`](super::Index::lists).
    pub list: u32,
    /// The list's id for the entry.
    pub id: Option<&'a str>,
    /// Category or label.
    pub category: Option<&'a str>,
    /// Where the entry came from.
    pub source: Option<&'a str>,
    /// PDQ quality recorded in the list.
    pub quality: Option<u8>,
}

/// The records and strings sections, opened: where their arrays lie in the file.
#[derive(Debug, Clone)]
pub(crate) struct RecordsTable {
    records: Range<usize>,
    strings: Range<usize>,
}

impl RecordsTable {
    pub(crate) fn open(
        file: &[u8],
        records: Range<usize>,
        strings: Range<usize>,
    ) -> Result<RecordsTable, IndexError> {
        let view = SectionView::parse(file, records, "records", 1, 1)?;
        let count = view.fields[0];
        if count.checked_mul(RECORD_LEN as u64) != Some(view.arrays[0].len() as u64) {
            return Err(IndexError::Malformed("records section: length disagrees with its count".into()));
        }
        let strings = SectionView::parse(file, strings, "strings", 0, 1)?.arrays[0].clone();
        Ok(RecordsTable { records: view.arrays[0].clone(), strings })
    }

    /// The records over `file`, the bytes they were opened from.
    pub(crate) fn over<'a>(&self, file: &'a [u8]) -> Records<'a> {
        Records { records: &file[self.records.clone()], strings: &file[self.strings.clone()] }
    }
}

/// The records over the file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Records<'a> {
    records: &'a [u8],
    strings: &'a [u8],
}

impl<'a> Records<'a> {
    /// How many records there are.
    pub(crate) fn len(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    /// Record `number`, or `None` if there is no such record. A string that lies outside the
    /// strings section or is not UTF-8 reads as absent: only a corrupt file has one, and
    /// `verify` reports it.
    pub(crate) fn get(&self, number: u32) -> Option<Record<'a>> {
        let at = number as usize * RECORD_LEN;
        let bytes = self.records.get(at..at + RECORD_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let text = |i: usize| self.string(u32_at(i), u32_at(i + 4)).ok().flatten();
        Some(Record {
            list: u32_at(0),
            quality: Some(bytes[4]).filter(|&q| q != NO_QUALITY),
            id: text(8),
            category: text(16),
            source: text(24),
        })
    }

    fn string(&self, offset: u32, len: u32) -> Result<Option<&'a str>, ()> {
        if len == ABSENT {
            return Ok(None);
        }
        let start = offset as usize;
        let bytes = self.strings.get(start..start.checked_add(len as usize).ok_or(())?).ok_or(())?;
        std::str::from_utf8(bytes).map(Some).map_err(|_| ())
    }

    /// Checks every record: list numbers below `lists`, strings inside the section and UTF-8.
    pub(crate) fn verify(&self, lists: usize) -> Result<(), IndexError> {
        for number in 0..self.len() as u32 {
            let at = number as usize * RECORD_LEN;
            let bytes = &self.records[at..at + RECORD_LEN];
            let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
            let bad = |why: &str| IndexError::Malformed(format!("record {number}: {why}"));
            if u32_at(0) as usize >= lists {
                return Err(bad("names a list that does not exist"));
            }
            for field in [8, 16, 24] {
                if self.string(u32_at(field), u32_at(field + 4)).is_err() {
                    return Err(bad("a string lies outside the strings section or is not UTF-8"));
                }
            }
        }
        Ok(())
    }
}
